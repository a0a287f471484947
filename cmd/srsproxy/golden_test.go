package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden RESP transcripts in testdata/srs")

// readValue copies one complete RESP2/RESP3 value from r to out.
func readValue(r *bufio.Reader, out *bytes.Buffer) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	out.WriteString(line)
	body := strings.TrimSuffix(line[1:], "\r\n")
	switch line[0] {
	case '$', '=', '!':
		n, _ := strconv.Atoi(body)
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r, buf); err != nil {
			return err
		}
		out.Write(buf)
	case '*', '~', '>', '%':
		n, _ := strconv.Atoi(body)
		if line[0] == '%' {
			n *= 2
		}
		for range max(n, 0) {
			if err := readValue(r, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// resp encodes a command as a RESP array of bulk strings.
func resp(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// TestGoldenTranscripts replays fixed command sequences over raw TCP, in
// RESP2 and RESP3, and compares every byte of the replies with
// testdata/srs/*.txt. Times are fixed with AT so the replies are stable.
func TestGoldenTranscripts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := startMain(t, e)
	setup := client(t, m.Addr(), 3)
	// The season starts before t0: a review before its season's START is refused.
	mustDo(t, setup, "SRS.SEASON", "CREATE", "SEASON-2025-GOLD", "START", "2025-09-01", "END", "2026-06-30")
	mustDo(t, setup, "SRS.SEASON", "ACTIVATE", "SEASON-2025-GOLD")
	const t0 = "1764000000000" // 2025-11-24T16:00:00Z
	script := [][]string{
		{"SRS.REVIEW", "alice", "SEASON-2025-GOLD", "q1", "3", "AT", t0, "ID", "g-1", "SUBJECT", "math", "TOPIC", "algebra", "STAGE", "s1"},
		{"SRS.REVIEW", "alice", "SEASON-2025-GOLD", "q1", "3", "AT", "1764000600000", "ID", "g-2"},
		{"SRS.REVIEW", "alice", "SEASON-2025-GOLD", "q1", "1", "AT", "1764000600000", "ID", "g-2"},
		{"SRS.REVIEW", "alice", "SEASON-2025-GOLD", "q2", "CORRECT", "0", "MS", "2500", "AT", t0, "ID", "g-3", "SUBJECT", "bio"},
		{"SRS.REVIEW", "alice", "SEASON-2025-GOLD", "q3", "4", "AT", t0, "ID", "g-4", "SUBJECT", "math"},
		{"SRS.DUE", "alice", "SEASON-2025-GOLD", "AT", "1764090000000"},
		{"SRS.DUE", "alice", "SEASON-2025-GOLD", "SUBJECT", "math", "LIMIT", "1", "AT", "1765000000000"},
		{"SRS.DUE", "nobody", "SEASON-2025-GOLD", "AT", t0},
		{"SRS.REVIEW", "alice", "SEASON-2025-GOLD", "q1", "3", "AT", t0, "ID", "g-5"},
		{"SRS.REVIEW", "alice", "SEASON-2025-GOLD", "q1", "9"},
		{"SRS.DUE", "alice", "SEASON-2099"},
		{"SRS.CARD", "alice", "SEASON-2025-GOLD", "never"},
		{"SRS.NOPE", "x"},
		{"PING"},
	}
	for _, proto := range []string{"2", "3"} {
		t.Run("resp"+proto, func(t *testing.T) {
			conn, err := net.Dial("tcp", m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			r := bufio.NewReader(conn)
			var got bytes.Buffer
			var discard bytes.Buffer
			conn.Write(resp("HELLO", proto))
			if err := readValue(r, &discard); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range script {
				// Each protocol run has its own student and review ids.
				cmd = slices.Clone(cmd)
				for i, a := range cmd {
					cmd[i] = strings.NewReplacer("alice", "alice"+proto, "g-", "g"+proto+"-").Replace(a)
				}
				fmt.Fprintf(&got, "> %s\n", strings.Join(cmd, " "))
				conn.Write(resp(cmd...))
				if err := readValue(r, &got); err != nil {
					t.Fatalf("%v: %v", cmd, err)
				}
				got.WriteString("\n")
			}
			path := filepath.Join("..", "..", "testdata", "srs", "transcript-resp"+proto+".txt")
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenTranscripts -update ./cmd/srsproxy/)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("transcript differs from %s (rerun with -update after checking):\n%s", path, got.String())
			}
		})
	}
}
