package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBarrier(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})

	t.Run("passing barrier delivers the reply", func(t *testing.T) {
		t.Parallel()
		c := s.dial(t)
		if got := c.do("TEST.BARRIER", "ok"); got != "+OK\r\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("failing barrier closes the connection unanswered", func(t *testing.T) {
		t.Parallel()
		c := s.dial(t)
		// Every reply of the batch is withheld, the PINGs' too.
		c.send(resp("PING") + resp("TEST.BARRIER", "fail") + resp("PING"))
		if got := c.readEOF(); got != "" {
			t.Fatalf("client received %q, want nothing", got)
		}
		if !strings.Contains(s.logs.String(), "disk full") {
			t.Errorf("barrier error not logged:\n%s", s.logs)
		}
	})
	t.Run("failing barrier inside EXEC", func(t *testing.T) {
		t.Parallel()
		c := s.dial(t)
		if got := c.do("MULTI"); got != "+OK\r\n" {
			t.Fatal(got)
		}
		c.do("TEST.BARRIER", "fail")
		c.send(resp("EXEC"))
		if got := c.readEOF(); got != "" {
			t.Fatalf("client received %q, want nothing", got)
		}
	})
	t.Run("barriers run once per batch", func(t *testing.T) {
		t.Parallel()
		calls := make(chan int, 10)
		s := startServer(t, Config{}, func(m *Mux) {
			m.Handle(Command{Name: "COUNTED", Arity: 1, Handler: func(_ context.Context, w *Reply, _ [][]byte) {
				w.BeforeFlush(func() error { calls <- 1; return nil })
				w.Simple("OK")
			}})
		})
		c := s.dial(t)
		c.send(resp("COUNTED") + resp("COUNTED") + resp("COUNTED"))
		for range 3 {
			c.read()
		}
		if len(calls) != 3 {
			t.Fatalf("%d barrier calls, want 3", len(calls))
		}
		c.do("PING") // a batch without barriers calls none
		if len(calls) != 3 {
			t.Fatalf("%d barrier calls after PING, want 3", len(calls))
		}
	})
}

func TestPanicKeepsConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	c := s.dial(t)
	c.send(resp("TEST.PANIC") + resp("PING"))
	if got := c.read() + c.read(); got != "-ERR internal error\r\n+PONG\r\n" {
		t.Fatalf("got %q", got)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "boom") || !strings.Contains(logs, "goroutine") {
		t.Errorf("panic not logged with its stack:\n%s", logs)
	}
}

func TestShutdownWaitsForInFlightCommand(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	ctxErr := make(chan error, 1)
	s := startServer(t, Config{}, func(m *Mux) {
		m.Handle(Command{Name: "SLOW", Arity: 1, Handler: func(ctx context.Context, w *Reply, _ [][]byte) {
			close(started)
			<-release
			ctxErr <- ctx.Err()
			w.Simple("DONE")
		}})
	})
	busy, idle := s.dial(t), s.dial(t)
	idle.do("PING")
	busy.send(resp("SLOW") + resp("PING"))
	<-started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The idle connection is closed at once, the busy one is not.
	if got := idle.readEOF(); got != "" {
		t.Fatalf("idle connection got %q", got)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a command was running", err)
	default:
	}
	close(release)
	if got := busy.read() + busy.read(); got != "+DONE\r\n+PONG\r\n" {
		t.Fatalf("in-flight replies %q", got)
	}
	if got := busy.readEOF(); got != "" {
		t.Fatalf("after the batch got %q", got)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-ctxErr; err != nil {
		t.Fatalf("handler context cancelled during Shutdown: %v", err)
	}
	if n := s.Clients(); n != 0 {
		t.Fatalf("%d clients after Shutdown", n)
	}
}

func TestShutdownBoundedByContext(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	s := startServer(t, Config{}, func(m *Mux) {
		m.Handle(Command{Name: "STUCK", Arity: 1, Handler: func(ctx context.Context, w *Reply, _ [][]byte) {
			close(started)
			<-ctx.Done() // only the forced close ends it
			w.Simple("LATE")
		}})
	})
	c := s.dial(t)
	c.send(resp("STUCK"))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if got := c.readEOF(); got != "" {
		t.Fatalf("got %q after forced close", got)
	}
}

func TestServeAfterShutdown(t *testing.T) {
	t.Parallel()
	s, err := NewServer(Config{Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.ListenAndServe(); err != nil {
		t.Fatalf("ListenAndServe after Shutdown = %v, want nil", err)
	}
}

func TestListenAndServeAddr(t *testing.T) {
	t.Parallel()
	s, err := NewServer(Config{Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ListenAndServe() }()
	addr := s.Addr()
	if addr == nil || strings.HasSuffix(addr.String(), ":0") {
		t.Fatalf("Addr = %v", addr)
	}
	ts := &testServer{Server: s, addr: addr.String()}
	if got := ts.dial(t).do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING = %q", got)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("ListenAndServe = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err == nil {
		t.Fatal("second Serve succeeded")
	}
}

func TestListenError(t *testing.T) {
	t.Parallel()
	s, err := NewServer(Config{Addr: "127.0.0.1:-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ListenAndServe(); err == nil {
		t.Fatal("ListenAndServe on a bad address succeeded")
	}
	if s.Addr() != nil {
		t.Fatal("Addr after a failed listen is not nil")
	}
}

func TestLimitsKeepConnection(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{MaxArgs: 8, MaxBulk: 1024})
	c := s.dial(t)
	// A large refused argument arrives in many writes and is drained.
	c.send("*2\r\n$4\r\nECHO\r\n$100000\r\n")
	for range 100 {
		c.send(strings.Repeat("z", 1000))
	}
	c.send("\r\n")
	if got := c.read(); got != "-ERR argument of 100000 bytes is larger than MaxBulk 1024\r\n" {
		t.Fatalf("got %q", got)
	}
	if got := c.do("ECHO", "still here"); got != "$10\r\nstill here\r\n" {
		t.Fatalf("got %q", got)
	}
}

func TestCommandSizeLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{MaxBulk: 1 << 20})
	c := s.dial(t)
	big := strings.Repeat("b", 1<<20)
	var req strings.Builder
	n := maxCommandBytes>>20 + 1
	req.WriteString("*" + strconv.Itoa(n+1) + "\r\n$4\r\nECHO\r\n")
	for range n {
		req.WriteString("$" + strconv.Itoa(len(big)) + "\r\n" + big + "\r\n")
	}
	c.send(req.String())
	if got := c.read(); got != "-ERR command is larger than 67108864 bytes\r\n" {
		t.Fatalf("got %q", got)
	}
	if got := c.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("got %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string // field named in the error; "" for valid
	}{
		{Config{}, ""},
		{Config{MaxArgs: 3}, "Config.MaxArgs"},
		{Config{MaxBulk: 10}, "Config.MaxBulk"},
		{Config{MaxMultiQueued: -1}, "Config.MaxMultiQueued"},
		{Config{RequirePass: "x", Users: map[string]User{"default": {Name: "default", Password: "y"}}}, "Config.RequirePass"},
		{Config{Users: map[string]User{"a": {Name: "b", Password: "y"}}}, `Config.Users["a"]`},
		{Config{Users: map[string]User{"a": {Name: "a"}}}, `Config.Users["a"]`},
		{Config{Users: map[string]User{"a": {Name: "a", Password: "p", Role: 7}}}, `Config.Users["a"]`},
		{Config{Users: map[string]User{"a b": {Name: "a b", Password: "p"}}}, "Config.Users"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want it to name %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewServer(Config{MaxArgs: 1}, nil); err == nil {
		t.Error("NewServer accepted an invalid Config")
	}
}

func TestLoadUsers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	users, err := LoadUsers(write("ok", "# accounts\n\nalice app s3cret\n  bob   admin  pw#1  \n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]User{
		"alice": {Name: "alice", Password: "s3cret", Role: RoleApp},
		"bob":   {Name: "bob", Password: "pw#1", Role: RoleAdmin},
	}
	if len(users) != len(want) || users["alice"] != want["alice"] || users["bob"] != want["bob"] {
		t.Fatalf("LoadUsers = %+v", users)
	}
	for name, text := range map[string]string{
		"fields": "alice app\n",
		"role":   "# x\nalice root pw\n",
		"dup":    "a app x\nb app y\na admin z\n",
	} {
		_, err := LoadUsers(write(name, text))
		line := map[string]string{"fields": ":1:", "role": ":2:", "dup": ":3:"}[name]
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, name)+line) {
			t.Errorf("%s: error %v does not name the line %s", name, err, line)
		}
	}
	if _, err := LoadUsers(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestMuxHandlePanics(t *testing.T) {
	t.Parallel()
	h := func(context.Context, *Reply, [][]byte) {}
	for name, c := range map[string]Command{
		"empty name":     {Arity: 1, Handler: h},
		"long name":      {Name: strings.Repeat("N", 65), Arity: 1, Handler: h},
		"nil handler":    {Name: "X", Arity: 1},
		"zero arity":     {Name: "X", Handler: h},
		"built-in clash": {Name: "ping", Arity: 1, Handler: h},
		"duplicate":      {Name: "dup", Arity: 1, Handler: h},
	} {
		t.Run(name, func(t *testing.T) {
			m := NewMux()
			m.Handle(Command{Name: "DUP", Arity: 1, Handler: h})
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%+v) did not panic", c)
				}
			}()
			m.Handle(c)
		})
	}
	t.Run("after NewServer", func(t *testing.T) {
		m := NewMux()
		if _, err := NewServer(Config{}, m); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if recover() == nil {
				t.Error("Handle after NewServer did not panic")
			}
		}()
		m.Handle(Command{Name: "LATE", Arity: 1, Handler: h})
	})
}

func TestMuxCommands(t *testing.T) {
	t.Parallel()
	m := NewMux()
	m.Handle(Command{Name: "srs.due", Arity: -3, Handler: func(context.Context, *Reply, [][]byte) {}})
	cmds := m.Commands()
	var names []string
	for _, c := range cmds {
		names = append(names, c.Name)
	}
	got := strings.Join(names, " ")
	want := "ASKING AUTH CLIENT CLUSTER COMMAND DBSIZE DISCARD ECHO EXEC HELLO INFO MULTI PING PTTL QUIT READONLY READWRITE RESET SCAN SELECT SRS.DUE SUBSCRIBE TYPE UNSUBSCRIBE"
	if got != want {
		t.Fatalf("Commands = %s\nwant %s", got, want)
	}
}

func TestClients(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	a, b := s.dial(t), s.dial(t)
	a.do("PING")
	b.do("PING")
	if n := s.Clients(); n != 2 {
		t.Fatalf("Clients = %d, want 2", n)
	}
	a.send(resp("QUIT"))
	a.readEOF()
	list := b.do("CLIENT", "LIST")
	if strings.Count(list, "id=") != 1 {
		t.Fatalf("CLIENT LIST after QUIT: %q", list)
	}
}
