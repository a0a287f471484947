package proxy

import (
	"bytes"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden RESP transcripts in testdata/resp")

// step is what a golden test sends at once and how many replies it reads
// back; eof means reading until the server closes the connection.
type step struct {
	send    string
	replies int
	eof     bool
}

// cmd is one command sent as RESP; cmds several pipelined in one write.
func cmd(args ...string) step { return step{send: resp(args...), replies: 1} }

func cmds(cs ...[]string) step {
	var st step
	for _, c := range cs {
		st.send += resp(c...)
		st.replies++
	}
	return st
}

// raw sends bytes as they are.
func raw(s string, replies int) step { return step{send: s, replies: replies} }

// closing sends bytes after which the server closes the connection.
func closing(s string) step { return step{send: s, eof: true} }

// connectionSteps exercise every built-in; the RESP3 transcript runs them
// after HELLO 3.
var connectionSteps = []step{
	cmd("PING"),
	cmd("ping", "hello world"),
	cmd("PiNg", "a", "b"),
	cmd("ECHO", "hi"),
	cmd("ECHO"),
	raw("PING\r\n", 1),
	raw("\r\n  \r\nPING \"quoted \\x41\\n\"\r\necho 'single \\' q'\r\nECHO a b\r\n", 3),
	cmds([]string{"PING"}, []string{"ECHO", "two"}, []string{"NOSUCH"}),
	cmd("NOSUCH", "arg 1", "arg2"),
	cmd("nosuch"),
	cmd("SELECT", "0"),
	cmd("SELECT", "1"),
	cmd("SELECT", "x"),
	cmd("AUTH", "pass"),
	cmd("AUTH", "default", "anything"),
	cmd("AUTH", "alice", "pass"),
	cmd("AUTH", "a", "b", "c"),
	cmd("CLIENT", "ID"),
	cmd("CLIENT", "GETNAME"),
	cmd("CLIENT", "SETNAME", "app-1"),
	cmd("CLIENT", "GETNAME"),
	cmd("CLIENT", "SETNAME", "bad name"),
	cmd("CLIENT", "SETINFO", "LIB-NAME", "go-redis(,go1.26.0)"),
	cmd("CLIENT", "setinfo", "lib-ver", "9.23.0"),
	cmd("CLIENT", "SETINFO", "LIB-NAME", "has space"),
	cmd("CLIENT", "SETINFO", "COLOR", "red"),
	cmd("CLIENT", "INFO"),
	cmd("CLIENT", "LIST"),
	cmd("CLIENT", "SETNAME"),
	cmd("CLIENT", "MAINT_NOTIFICATIONS", "on", "moving-endpoint-type", "internal-ip"),
	cmd("CLIENT", "HELP"),
	cmd("CLIENT"),
	cmd("INFO", "server", "clients", "persistence", "stats", "replication", "keyspace"), // Memory varies: see TestInfo
	cmd("INFO", "server"),
	cmd("INFO", "CLIENTS", "persistence"),
	cmd("INFO", "nosuch"),
	cmd("COMMAND", "COUNT"),
	cmd("COMMAND", "LIST"),
	cmd("COMMAND", "INFO", "ping", "nosuch", "test.admin"),
	cmd("COMMAND", "DOCS", "hello", "nosuch", "multi"),
	cmd("COMMAND", "NOSUCH"),
	cmd("COMMAND"),
	cmd("COMMAND", "DOCS"),
	cmd("HELLO"),
	cmd("HELLO", "4"),
	cmd("HELLO", "x"),
	cmd("HELLO", "3", "FOO"),
	cmd("HELLO", "3", "AUTH", "default"),
	cmd("HELLO", "3", "SETNAME", "bad name"),
	cmd("HELLO", "3", "AUTH", "alice", "x"),
	cmd("HELLO", "2", "AUTH", "default", "any", "SETNAME", "renamed"),
	cmd("CLIENT", "GETNAME"),
	cmd("RESET"),
	cmd("CLIENT", "GETNAME"),
	cmd("TEST.WHOAMI"),
	closing(resp("QUIT") + resp("PING")),
}

// typeSteps exercise every Reply method.
var typeSteps = []step{
	cmd("TEST.TYPES"),
	cmd("TEST.DOUBLE", "0.1"),
	cmd("TEST.DOUBLE", "-0"),
	cmd("TEST.DOUBLE", "1e21"),
	cmd("TEST.DOUBLE", "123456789"),
	cmd("TEST.DOUBLE", "inf"),
	cmd("TEST.DOUBLE", "-inf"),
	cmd("TEST.DOUBLE", "nan"),
	cmd("TEST.ERROR", "SEASONARCHIVED season is archived"),
	cmd("TEST.ERROR", "no prefix here"),
	cmd("TEST.ERROR", "ERR two\r\nlines"),
	cmd("TEST.PANIC"),
	cmd("TEST.TWICE"),
	cmd("TEST.WHOAMI"),
	cmd("TEST.ADMIN"),
}

var transactionSteps = []step{
	cmd("EXEC"),
	cmd("DISCARD"),
	cmd("MULTI"),
	cmd("PING"),
	cmd("ECHO", "x"),
	cmd("TEST.TYPES"),
	cmd("TEST.PANIC"),
	cmd("EXEC"),
	cmd("MULTI"),
	cmd("MULTI"),
	cmd("PING"),
	cmd("DISCARD"),
	cmd("PING"),
	cmd("MULTI"),
	cmd("NOSUCH"),
	cmd("PING"),
	cmd("EXEC"),
	cmd("MULTI"),
	cmd("ECHO"),
	cmd("EXEC"),
	cmd("MULTI"),
	cmd("PING"),
	cmd("PING"),
	cmd("PING"),
	cmd("PING"),
	cmd("PING"),
	cmd("EXEC"),
	cmd("MULTI"),
	cmd("EXEC"),
	cmds([]string{"MULTI"}, []string{"PING"}, []string{"RESET"}, []string{"EXEC"}),
	cmds([]string{"MULTI"}, []string{"ECHO", "a"}, []string{"EXEC"}, []string{"PING"}),
}

var authSteps = []step{
	cmd("PING"),
	cmd("NOSUCH"),
	cmd("CLIENT", "ID"),
	cmd("HELLO", "3"),
	cmd("HELLO", "3", "AUTH", "default", "wrong"),
	cmd("AUTH", "wrong"),
	cmd("AUTH", "nobody", "secret"),
	cmd("AUTH", "secret"),
	cmd("TEST.WHOAMI"),
	cmd("TEST.ADMIN"),
	cmd("AUTH", "app", "app-pass"),
	cmd("TEST.WHOAMI"),
	cmd("TEST.ADMIN"),
	cmd("MULTI"),
	cmd("TEST.ADMIN"),
	cmd("EXEC"),
	cmd("AUTH", "app", "wrong"),
	cmd("TEST.WHOAMI"),
	cmd("RESET"),
	cmd("TEST.WHOAMI"),
	cmd("HELLO", "3", "AUTH", "app", "app-pass", "SETNAME", "worker"),
	cmd("CLIENT", "GETNAME"),
	cmd("RESET"),
	cmd("AUTH", "root", "root-pass"),
	cmd("TEST.ADMIN"),
	cmd("RESET"),
	closing(resp("QUIT")),
}

var limitSteps = []step{
	cmd("ECHO", "1", "2", "3", "4", "5", "6", "7", "8"),
	cmd("PING"),
	cmd("ECHO", strings.Repeat("x", 1025)),
	cmd("ECHO", strings.Repeat("x", 1024)[:10]),
	raw("*12\r\n$4\r\nECHO\r\n"+strings.Repeat("$1\r\nx\r\n", 11)+resp("PING"), 2),
	raw("*0\r\n*-1\r\n"+resp("PING"), 1),
	raw("ECHO 1 2 3 4 5 6 7 8 9\r\nPING\r\n", 2),
	cmds([]string{"MULTI"}, []string{"ECHO", strings.Repeat("y", 2000)}, []string{"EXEC"}),
	closing(resp("PING") + "*1\r\n$x\r\n"),
}

// goldenCases are the transcripts under testdata/resp.
var goldenCases = []struct {
	name  string
	cfg   Config
	steps []step
}{
	{"connection-resp2", Config{}, connectionSteps},
	{"connection-resp3", Config{}, append([]step{cmd("HELLO", "3")}, connectionSteps...)},
	{"types-resp2", Config{}, typeSteps},
	{"types-resp3", Config{}, append([]step{cmd("HELLO", "3")}, typeSteps...)},
	{"transactions", Config{MaxMultiQueued: 4}, transactionSteps},
	{"auth", Config{RequirePass: "secret", Users: map[string]User{
		"app":  {Name: "app", Password: "app-pass", Role: RoleApp},
		"root": {Name: "root", Password: "root-pass", Role: RoleAdmin},
	}}, authSteps},
	{"limits", Config{MaxArgs: 8, MaxBulk: 1024}, limitSteps},
	{"protocol-expected-dollar", Config{}, []step{closing(resp("PING") + "*1\r\n+PING\r\n")}},
	{"protocol-bad-multibulk", Config{}, []step{closing("*x\r\n")}},
	{"protocol-huge-bulk-length", Config{}, []step{closing("*1\r\n$9223372036854775807\r\nab\r\n")}},
	{"protocol-missing-crlf", Config{}, []step{closing("*1\r\n$4\r\nPINGxx")}},
	{"protocol-unbalanced-quotes", Config{}, []step{closing("ECHO \"abc\r\n")}},
}

// TestGolden replays each transcript against a fresh server and compares
// the exact bytes received with testdata/resp/NAME.txt (-update rewrites).
// Ports are replaced by fixed-width placeholders, which keeps bulk lengths
// right as long as the kernel hands out 5-digit ports.
func TestGolden(t *testing.T) {
	t.Parallel()
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			t.Parallel()
			cfg := gc.cfg
			cfg.Version = "1.2.3"
			s := startServerClock(t, cfg, func() time.Time { return epoch })
			c := s.dial(t)
			var out bytes.Buffer
			out.WriteString("# Golden RESP transcript of the proxy package: \"> \" is what the client sent,\n")
			out.WriteString("# \"< \" each line received. Regenerate: go test ./proxy -run TestGolden -update\n")
			for _, st := range gc.steps {
				out.WriteString("\n> " + escape(st.send) + "\n")
				var got string
				if st.eof {
					c.send(st.send)
					got = c.readEOF() + "<EOF>"
				} else {
					c.send(st.send)
					for range st.replies {
						got += c.read()
					}
				}
				for line := range strings.SplitAfterSeq(got, "\r\n") {
					if line != "" {
						out.WriteString("< " + escape(line) + "\n")
					}
				}
			}
			text := placeholders(out.String(), s.addr, c.nc.LocalAddr().String())
			path := filepath.Join("..", "testdata", "resp", gc.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(want) != text {
				t.Errorf("transcript differs from %s (run with -update to accept):\n%s", path, diff(string(want), text))
			}
		})
	}
}

// escape shows bytes as a Go string literal's body.
func escape(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// placeholders replaces the server's and the client's port.
func placeholders(text, server, client string) string {
	_, sp, _ := net.SplitHostPort(server)
	_, cp, _ := net.SplitHostPort(client)
	return strings.NewReplacer(":"+sp, ":SPORT", ":"+cp, ":CPORT").Replace(text)
}

// diff returns the first differing line of two texts with its neighbours.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n want: " + wl + "\n  got: " + gl
		}
	}
	return ""
}
