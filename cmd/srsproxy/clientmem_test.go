package main

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMaxMemoryClientsFlag: --maxmemory-clients reaches the RESP server;
// connections holding big partial commands past it are cut, a small client
// is still served.
func TestMaxMemoryClientsFlag(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := startMain(t, e, "--maxmemory-clients", "4MiB")
	var conns []net.Conn
	for range 8 {
		nc, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		// 1000 KiB announced (under the 1 MiB argument limit), 64 KiB sent.
		if _, err := nc.Write([]byte("*2\r\n$4\r\nECHO\r\n$" + strconv.Itoa(1000<<10) + "\r\n" + strings.Repeat("x", 64<<10))); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	c := client(t, m.Addr(), 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info := mustDo(t, c, "INFO", "memory", "stats").(string)
		if !strings.Contains(info, "maxmemory_clients:4194304") {
			t.Fatalf("INFO: %s", info)
		}
		ev := regexp.MustCompile(`evicted_clients:(\d+)`).FindStringSubmatch(info)
		mem := regexp.MustCompile(`mem_clients_normal:(\d+)`).FindStringSubmatch(info)
		if ev != nil && ev[1] != "0" && mem != nil && len(mem[1]) > 0 {
			n, _ := strconv.ParseInt(mem[1], 10, 64)
			if n <= 4<<20 {
				t.Logf("8 connections × 1000 KiB partial commands under a 4 MiB budget: %s evicted, %d bytes held", ev[1], n)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no client evicted within 10 s: %s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := mustDo(t, c, "PING"); got != "PONG" {
		t.Fatalf("PING: %v", got)
	}
}
