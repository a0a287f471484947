package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCommands are registered by every test server besides the built-ins.
func testCommands(m *Mux) {
	m.Handle(Command{Name: "TEST.TYPES", Arity: 1, Summary: "Writes one value of every reply type.",
		Syntax: "TEST.TYPES", Since: "0.1.0", Group: "test",
		Handler: func(_ context.Context, w *Reply, _ [][]byte) {
			w.Map(10)
			w.String("simple")
			w.Simple("OK")
			w.String("int")
			w.Int(-42)
			w.String("bulk")
			w.Bulk([]byte("a\r\nb"))
			w.String("null")
			w.Null()
			w.String("double")
			w.Double(3.25)
			w.String("true")
			w.Bool(true)
			w.String("false")
			w.Bool(false)
			w.String("array")
			w.Array(3)
			w.Int(1)
			w.String("two")
			w.Null()
			w.String("map")
			w.Map(1)
			w.String("k")
			w.String("v")
			w.String("error")
			w.Error("WRONGTYPE nested\nerror")
		}})
	m.Handle(Command{Name: "TEST.DOUBLE", Arity: 2, Summary: "Writes its argument as a double.",
		Handler: func(_ context.Context, w *Reply, args [][]byte) {
			f, err := strconv.ParseFloat(string(args[1]), 64)
			if err != nil {
				w.Error("ERR not a float")
				return
			}
			w.Double(f)
		}})
	m.Handle(Command{Name: "TEST.ERROR", Arity: 2, Summary: "Writes its argument as an error.",
		Handler: func(_ context.Context, w *Reply, args [][]byte) { w.Error(string(args[1])) }})
	m.Handle(Command{Name: "TEST.ADMIN", Arity: 1, Role: RoleAdmin, Summary: "Admin only.",
		Handler: func(_ context.Context, w *Reply, _ [][]byte) { w.Simple("OK") }})
	m.Handle(Command{Name: "TEST.WHOAMI", Arity: 1, Summary: "Writes the user, protocol and role.",
		Handler: func(_ context.Context, w *Reply, _ [][]byte) {
			w.String(fmt.Sprintf("%s/%d/%s", w.User(), w.Proto(), w.Role()))
		}})
	m.Handle(Command{Name: "TEST.PANIC", Arity: 1, Summary: "Panics after writing half a reply.",
		Handler: func(_ context.Context, w *Reply, _ [][]byte) {
			w.Array(2)
			w.Int(1)
			panic("boom")
		}})
	m.Handle(Command{Name: "TEST.TWICE", Arity: 1, Summary: "Wrongly writes two replies.",
		Handler: func(_ context.Context, w *Reply, _ [][]byte) {
			w.Simple("OK")
			w.Simple("OK")
		}})
	m.Handle(Command{Name: "TEST.BARRIER", Arity: 2, Summary: "Replies OK behind a barrier that passes or fails.",
		Handler: func(_ context.Context, w *Reply, args [][]byte) {
			fail := string(args[1]) == "fail"
			w.BeforeFlush(func() error {
				if fail {
					return errors.New("disk full")
				}
				return nil
			})
			w.Simple("OK")
		}})
}

// testServer is a running server with the test commands.
type testServer struct {
	*Server
	addr string
	logs *syncBuffer
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startServer serves cfg with the test commands plus those that extra adds,
// on 127.0.0.1:0, until the test ends.
func startServer(t testing.TB, cfg Config, extra ...func(*Mux)) *testServer {
	t.Helper()
	return startServerClock(t, cfg, nil, extra...)
}

// startServerClock is startServer with a clock; nil means time.Now.
func startServerClock(t testing.TB, cfg Config, now func() time.Time, extra ...func(*Mux)) *testServer {
	t.Helper()
	m := NewMux()
	testCommands(m)
	for _, f := range extra {
		f(m)
	}
	logs := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := NewServer(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		s.now, s.started = now, now()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: s, addr: s.Addr().String(), logs: logs}
}

// rawConn is a client speaking raw bytes.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func (s *testServer) dial(t testing.TB) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// resp encodes a command as a RESP array of bulk strings.
func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// do sends one command and returns its raw reply.
func (c *rawConn) do(args ...string) string {
	c.t.Helper()
	c.send(resp(args...))
	return c.read()
}

// read returns the next raw reply.
func (c *rawConn) read() string {
	c.t.Helper()
	var b bytes.Buffer
	if err := readValue(c.br, &b); err != nil {
		c.t.Fatalf("read reply: %v (got %q)", err, b.String())
	}
	return b.String()
}

// readValue copies one RESP2 or RESP3 value from br to out, checking its framing.
func readValue(br *bufio.Reader, out *bytes.Buffer) error {
	line, err := br.ReadBytes('\n')
	out.Write(line)
	if err != nil {
		return err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return fmt.Errorf("bad line %q", line)
	}
	n, nerr := strconv.Atoi(string(line[1 : len(line)-2]))
	switch line[0] {
	case '+', '-', ':', '_', ',', '#', '(':
		return nil
	case '$', '=', '!':
		if nerr != nil {
			return nerr
		}
		if n < 0 {
			return nil
		}
		body := make([]byte, n+2)
		k, err := io.ReadFull(br, body)
		out.Write(body[:k])
		if err != nil {
			return err
		}
		if string(body[n:]) != "\r\n" {
			return fmt.Errorf("bulk not terminated by CRLF")
		}
		return nil
	case '*', '~', '>', '%', '|':
		if nerr != nil {
			return nerr
		}
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		for range n {
			if err := readValue(br, out); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown type %q", line[0])
}

// readEOF reads what is left until the server closes the connection.
func (c *rawConn) readEOF() string {
	c.t.Helper()
	rest, err := io.ReadAll(c.br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset by peer") {
		c.t.Fatalf("read until EOF: %v (got %q)", err, rest)
	}
	return string(rest)
}
