package faults

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer answers every line with the same line; it stops with the test.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip writes a line and reads the echo within timeout.
func roundTrip(c net.Conn, r *bufio.Reader, line string, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := r.ReadString('\n')
	if len(got) > 0 {
		got = got[:len(got)-1]
	}
	return got, err
}

type conn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return conn{c, bufio.NewReader(c)}
}

func mustEcho(t *testing.T, c conn, line string) {
	t.Helper()
	if got, err := roundTrip(c, c.r, line, 2*time.Second); err != nil || got != line {
		t.Fatalf("echo %q: got %q, %v", line, got, err)
	}
}

// mustHang checks that a request gets no answer within d and that the
// connection is still open (a read deadline, not EOF or a reset, ends it).
func mustHang(t *testing.T, c conn, line string, d time.Duration) {
	t.Helper()
	got, err := roundTrip(c, c.r, line, d)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled request %q: got %q, %v; want no answer and the connection open (a read timeout)", line, got, err)
	}
}

// TestGateStall: a stall keeps the connections open and answers nothing in
// either direction, also on connections accepted during it; Restore closes
// the stalled connections and new ones forward again.
func TestGateStall(t *testing.T) {
	t.Parallel()
	p := NewProxy(t, echoServer(t))
	before := dial(t, p.Addr())
	mustEcho(t, before, "hello")

	p.Stall()
	mustHang(t, before, "during the stall", 200*time.Millisecond)
	during := dial(t, p.Addr()) // accepted, never answered
	mustHang(t, during, "new connection", 200*time.Millisecond)
	if n := len(p.Attempts()); n != 1 {
		t.Errorf("%d connection attempts recorded during the stall, want 1", n)
	}
	// Lots of bytes are read and dropped: the client's writes never block.
	big := make([]byte, 4<<20)
	_ = during.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := during.Write(big); err != nil {
		t.Errorf("writing 4 MiB to a stalled connection: %v (the proxy must read and drop them)", err)
	}
	// Nothing that was sent during the stall arrives later either.
	mustHang(t, before, "still stalled", 200*time.Millisecond)

	p.Restore()
	_ = before.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := before.r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a connection that lived through the stall: read %v, want it closed by Restore", err)
	}
	after := dial(t, p.Addr())
	mustEcho(t, after, "back")
}

// TestGateCut: a cut closes the connections at once and new ones are closed
// as they arrive; Restore forwards again.
func TestGateCut(t *testing.T) {
	t.Parallel()
	p := NewProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	mustEcho(t, c, "hello")
	p.Cut()
	if _, err := roundTrip(c, c.r, "after the cut", 2*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("request after the cut: %v, want the connection closed", err)
	}
	n := dial(t, p.Addr())
	if _, err := roundTrip(n, n.r, "new", 2*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection during the cut: %v, want it closed", err)
	}
	p.Restore()
	mustEcho(t, dial(t, p.Addr()), "back")
}

// TestGateStallThenCut: a cut during a stall drops the held connections.
func TestGateStallThenCut(t *testing.T) {
	t.Parallel()
	p := NewProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	mustEcho(t, c, "hello")
	p.Stall()
	held := dial(t, p.Addr())
	mustHang(t, held, "held", 100*time.Millisecond)
	p.Cut()
	for _, x := range []conn{c, held} {
		_ = x.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := x.r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read after the cut: %v, want the connection closed", err)
		}
	}
	if n := p.Conns(); n != 0 {
		deadline := time.Now().Add(2 * time.Second)
		for p.Conns() != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n = p.Conns(); n != 0 {
			t.Errorf("%d connections still tracked after the cut", n)
		}
	}
}
