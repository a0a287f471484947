package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// clientsDir holds the scripts that drive the Python and Node.js clients and
// the package.json / package-lock.json that pin the Node.js ones.
const clientsDir = "../../testdata/clients"

// clientCase is one real client with one set of connection options.
type clientCase struct {
	name   string
	season string
	player string
	// proto is the protocol the server must see on the connection (CLIENT INFO resp=).
	proto int
	// lib is the lib-name the client sets with CLIENT SETINFO ("" if it sets none).
	lib string
	// shape is how the client hands map replies to the application.
	shape replyShape
	// replayed: the review replies checked are those of a replay of the same
	// review ids, so they carry duplicate = true.
	replayed bool
	// unknown prefixes the unknown command's error as the client reports it.
	unknown string
	run     func(t *testing.T, addr string, c clientCase, base int64) clientReport
}

// replyShape records how a review reply reached the application: as a map or
// a flat array, with duplicate a bool or an integer, stability a double or a
// string.
type replyShape struct {
	Map       string `json:"map"`
	Duplicate string `json:"duplicate"`
	Stability string `json:"stability"`
}

var (
	resp2Shape = replyShape{Map: "array", Duplicate: "int", Stability: "string"}
	resp3Shape = replyShape{Map: "map", Duplicate: "bool", Stability: "double"}
)

// clientReport is what one client saw, the JSON the scripts in
// testdata/clients print. Values are as the client decoded them (strings,
// numbers, booleans); norm compares them across clients.
type clientReport struct {
	Client           string           `json:"client"`
	Types            replyShape       `json:"types"`
	Reviews          []map[string]any `json:"reviews"`
	Due              map[string]any   `json:"due"`
	ClientInfoBefore string           `json:"client_info_before"`
	UnknownError     string           `json:"unknown_error"`
	After            map[string]any   `json:"after"`
	ClientInfoAfter  string           `json:"client_info_after"`
}

const unknownERR = "ERR unknown command 'SRS.NOPE'"

// TestRealClients runs the same session through every client the README
// promises works with default options: the handshake, 50 reviews in one
// pipeline, SRS.DUE, then an unknown command and a good command on the same
// connection.
func TestRealClients(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := startMain(t, e)
	admin := client(t, m.Addr(), 3)
	// Six hours ago, so the Again cards (due minutes after their review) are
	// due now and the Easy ones (due days later) are not.
	base := time.Now().Add(-6 * time.Hour).UnixMilli()

	py := []string{"/usr/bin/python3", "redis_py.py"}
	// node runs file with the npm package pkg (ioredis.js and node-redis.js
	// drive more than one package of the same API), then the protocol if set.
	node := func(file, pkg, proto string) func(*testing.T, string, clientCase, int64) clientReport {
		argv := []string{"node", file, pkg}
		if proto != "" {
			argv = append(argv, proto)
		}
		return script(needNode(pkg), argv...)
	}
	cases := []clientCase{
		{name: "redis-cli", season: "SEASON-2026-CLI", player: "cli-student", proto: 2, shape: resp2Shape,
			replayed: true, unknown: unknownERR, run: runRedisCLI},
		{name: "redis-cli-3", season: "SEASON-2026-CLI3", player: "cli3-student", proto: 3, shape: resp3Shape,
			replayed: true, unknown: unknownERR, run: runRedisCLI},
		{name: "go-redis", season: "SEASON-2026-GO", player: "go-student", proto: 3, lib: "go-redis(",
			shape: resp3Shape, unknown: unknownERR, run: runGoClient("go-redis "+goredis.Version(), dialGoRedis)},
		{name: "go-redis-resp2", season: "SEASON-2026-GO2", player: "go2-student", proto: 2, lib: "go-redis(",
			shape: resp2Shape, unknown: unknownERR, run: runGoClient("go-redis "+goredis.Version(), dialGoRedis)},
		// redigo speaks RESP2 and sets no lib-name.
		{name: "redigo", season: "SEASON-2026-REDIGO", player: "redigo-student", proto: 2, shape: resp2Shape,
			unknown: unknownERR, run: runGoClient("redigo "+modVersion(t, "github.com/gomodule/redigo"), dialRedigo)},
		// rueidis, like redis-py, drops the ERR code from the message. With
		// default options it asks CLUSTER SLOTS, is told of one node owning
		// every slot, and runs as a cluster client.
		{name: "rueidis", season: "SEASON-2026-RUEIDIS", player: "rueidis-student", proto: 3, lib: "rueidis",
			shape: resp3Shape, unknown: "unknown command 'SRS.NOPE'", run: runGoClient("rueidis "+rueidis.LibVer, dialRueidis)},
		// redis-py drops the ERR code from the message and raises ResponseError.
		{name: "redis-py", season: "SEASON-2026-PY", player: "py-student", proto: 2, shape: resp2Shape,
			unknown: "ResponseError: unknown command 'SRS.NOPE'", run: script(needRedisPy, py...)},
		// ioredis 6 speaks RESP3 by default but hands replies over in RESP2 shapes.
		{name: "ioredis", season: "SEASON-2026-IO", player: "io-student", proto: 3, lib: "ioredis",
			shape: resp2Shape, unknown: unknownERR, run: node("ioredis.js", "ioredis", "")},
		{name: "ioredis-resp2", season: "SEASON-2026-IO2", player: "io2-student", proto: 2, lib: "ioredis",
			shape: resp2Shape, unknown: unknownERR, run: node("ioredis.js", "ioredis", "2")},
		// ioredis's cluster client, seeded with the sidecar, finds one node.
		{name: "ioredis-cluster", season: "SEASON-2026-IOC", player: "ioc-student", proto: 3, lib: "ioredis",
			shape: resp2Shape, unknown: unknownERR, run: node("ioredis.js", "ioredis", "cluster")},
		// iovalkey, ioredis's fork, speaks RESP2 and sets no lib-name.
		{name: "iovalkey", season: "SEASON-2026-IOVALKEY", player: "iovalkey-student", proto: 2, shape: resp2Shape,
			unknown: unknownERR, run: node("ioredis.js", "iovalkey", "")},
		{name: "node-redis", season: "SEASON-2026-NODE", player: "node-student", proto: 3, lib: "node-redis",
			shape: resp3Shape, unknown: unknownERR, run: node("node-redis.js", "redis", "")},
		{name: "node-redis-resp2", season: "SEASON-2026-NODE2", player: "node2-student", proto: 2, lib: "node-redis",
			shape: resp2Shape, unknown: unknownERR, run: node("node-redis.js", "redis", "2")},
		// node-redis 4 speaks RESP2 only; node-redis 5 RESP2 unless told RESP: 3.
		{name: "node-redis-4", season: "SEASON-2026-NODE4", player: "node4-student", proto: 2, lib: "node-redis",
			shape: resp2Shape, unknown: unknownERR, run: node("node-redis.js", "redis4", "")},
		{name: "node-redis-5", season: "SEASON-2026-NODE5", player: "node5-student", proto: 2, lib: "node-redis",
			shape: resp2Shape, unknown: unknownERR, run: node("node-redis.js", "redis5", "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			createSeason(t, admin, c.season)
			r := c.run(t, m.Addr(), c, base)
			t.Logf("%s: %s", c.name, r.Client)
			checkReport(t, c, r, base)
		})
	}
}

// reviewPlan is the session every client sends (testdata/clients/session.js
// and redis_py.py build the same one): ten questions reviewed five times, one
// minute apart, Good for four rounds, then Again for the even questions and
// Easy for the odd ones. Afterwards exactly the five even questions are due.
func reviewPlan(player, season string, base int64) [][]string {
	cmds := make([][]string, 0, 50)
	for i := range 50 {
		k, round := i%10, i/10
		grade := 3 // Good
		if round == 4 && k%2 == 0 {
			grade = 1 // Again
		} else if round == 4 {
			grade = 4 // Easy
		}
		cmds = append(cmds, []string{"SRS.REVIEW", player, season, fmt.Sprintf("q-%02d", k), strconv.Itoa(grade),
			"AT", strconv.FormatInt(base+int64(i)*60000, 10), "ID", fmt.Sprintf("%s-r-%d", player, i), "SUBJECT", "math"})
	}
	return cmds
}

// checkReport checks what a client saw against the plan.
func checkReport(t *testing.T, c clientCase, r clientReport, base int64) {
	t.Helper()
	now := time.Now().UnixMilli()

	// Handshake: the protocol and library the server recorded, and the same
	// connection before and after the unknown command.
	before, after := clientInfo(r.ClientInfoBefore), clientInfo(r.ClientInfoAfter)
	if before["resp"] != strconv.Itoa(c.proto) || !strings.HasPrefix(before["lib-name"], c.lib) || (c.lib == "" && before["lib-name"] != "") {
		t.Errorf("CLIENT INFO %q: want resp=%d lib-name=%s…", r.ClientInfoBefore, c.proto, c.lib)
	}
	if before["id"] == "" || before["id"] != after["id"] {
		t.Errorf("the unknown command must leave the connection open: CLIENT INFO before %q, after %q",
			r.ClientInfoBefore, r.ClientInfoAfter)
	}
	if r.Types != c.shape {
		t.Errorf("reply shapes %+v, want %+v", r.Types, c.shape)
	}

	// The 50 review replies, in order.
	if len(r.Reviews) != 50 {
		t.Fatalf("%d review replies, want 50", len(r.Reviews))
	}
	dup := map[bool]string{true: "1", false: "0"}[c.replayed]
	for i, rv := range r.Reviews {
		k, round := i%10, i/10
		want := map[string]string{
			"question_id": fmt.Sprintf("q-%02d", k),
			"reps":        strconv.Itoa(round + 1),
			"review_id":   fmt.Sprintf("%s-r-%d", c.player, i),
			"last_review": strconv.FormatInt(base+int64(i)*60000, 10),
			"duplicate":   dup,
		}
		if round == 4 && k%2 == 0 {
			want["state"], want["lapses"] = "relearning", "1"
		} else if round == 4 {
			want["state"], want["lapses"] = "review", "0"
		}
		for f, w := range want {
			if got := norm(rv[f]); got != w {
				t.Errorf("review %d: %s = %q, want %q (%v)", i, f, got, w, rv)
			}
		}
		if due, last := normInt(rv["due"]), normInt(rv["last_review"]); due <= last {
			t.Errorf("review %d: due %d not after last_review %d", i, due, last)
		}
	}

	// SRS.DUE: the five Again cards, most overdue first.
	if norm(r.Due["total_due"]) != "5" || norm(r.Due["degraded"]) != "0" || norm(r.Due["season"]) != c.season {
		t.Errorf("SRS.DUE = %v, want total_due 5, degraded false, season %s", r.Due, c.season)
	}
	items, _ := r.Due["items"].([]any)
	if len(items) != 5 {
		t.Fatalf("SRS.DUE items = %v, want 5", r.Due["items"])
	}
	for j, it := range items {
		item, _ := it.(map[string]any)
		review := r.Reviews[40+2*j]
		want := map[string]string{
			"question_id": fmt.Sprintf("q-%02d", 2*j), "state": "relearning", "reps": "5", "lapses": "1",
			"subject": "math", "topic": "", "stage": "",
			"due": norm(review["due"]), "stability": norm(review["stability"]), "difficulty": norm(review["difficulty"]),
		}
		for f, w := range want {
			if got := norm(item[f]); got != w {
				t.Errorf("SRS.DUE item %d: %s = %q, want %q (%v)", j, f, got, w, item)
			}
		}
		if due := normInt(item["due"]); due > now {
			t.Errorf("SRS.DUE item %d is due at %d, after now %d", j, due, now)
		}
	}

	// The unknown command, then a good one on the same connection.
	if !strings.HasPrefix(r.UnknownError, c.unknown) {
		t.Errorf("unknown command: error %q, want prefix %q", r.UnknownError, c.unknown)
	}
	want := map[string]string{"question_id": "q-00", "player": c.player, "season": c.season, "reps": "5",
		"lapses": "1", "state": "relearning", "subject": "math"}
	for f, w := range want {
		if got := norm(r.After[f]); got != w {
			t.Errorf("SRS.CARD after the unknown command: %s = %q, want %q (%v)", f, got, w, r.After)
		}
	}
}

// clientInfo parses a CLIENT INFO line into its fields. In RESP3 the line is
// a verbatim string; rueidis hands it over with its format, "txt:".
func clientInfo(s string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(strings.TrimPrefix(s, "txt:")) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = v
		}
	}
	return out
}

// norm renders a reply value the same way whichever client decoded it:
// booleans as 1/0 (RESP2's integers), numbers in their shortest form.
func norm(v any) string {
	switch v := v.(type) {
	case nil:
		return "<nil>"
	case string:
		return v
	case bool:
		return map[bool]string{true: "1", false: "0"}[v]
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		return v.String()
	}
	return fmt.Sprintf("%v", v)
}

func normInt(v any) int64 {
	n, _ := strconv.ParseInt(norm(v), 10, 64)
	return n
}

// script returns a runner for one of the scripts in testdata/clients.
// argv is the interpreter, the script and its options; the runner puts
// host:port season player base_ms between the script and its options, and
// reads the JSON report the script prints.
func script(need func(t *testing.T), argv ...string) func(*testing.T, string, clientCase, int64) clientReport {
	return func(t *testing.T, addr string, c clientCase, base int64) clientReport {
		t.Helper()
		need(t)
		args := append([]string{argv[1], addr, c.season, c.player, strconv.FormatInt(base, 10)}, argv[2:]...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], args...)
		cmd.Dir = clientsDir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %s: %v\n%s", argv[0], strings.Join(args, " "), err, stderr.String())
		}
		var r clientReport
		dec := json.NewDecoder(&stdout)
		dec.UseNumber()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: report is not JSON: %v\n%s", argv[1], err, stdout.String())
		}
		return r
	}
}

// needRedisPy fails (never skips) when Debian's redis-py is missing.
func needRedisPy(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("/usr/bin/python3", "-c", "import redis").CombinedOutput(); err != nil {
		t.Fatalf("redis-py for /usr/bin/python3 is missing (%v: %s); install it: apt-get install python3-redis", err, out)
	}
}

// needNode fails (never skips) when node or the npm package pkg is missing,
// or when the installed version is not the one package.json pins (for an
// alias such as "npm:redis@4.7.1", the version after the last @).
func needNode(pkg string) func(t *testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if _, err := exec.LookPath("node"); err != nil {
			t.Fatalf("node is missing (%v); install it: apt-get install nodejs npm", err)
		}
		var pinned struct {
			Dependencies map[string]string `json:"dependencies"`
		}
		var installed struct {
			Version string `json:"version"`
		}
		readJSON(t, filepath.Join(clientsDir, "package.json"), &pinned)
		b, err := os.ReadFile(filepath.Join(clientsDir, "node_modules", pkg, "package.json"))
		if err != nil {
			t.Fatalf("npm package %s is not installed (%v); install it: cd testdata/clients && npm ci", pkg, err)
		}
		pin := pinned.Dependencies[pkg]
		if err := json.Unmarshal(b, &installed); err != nil || pin == "" || installed.Version != pin[strings.LastIndex(pin, "@")+1:] {
			t.Fatalf("npm package %s %s is installed, package.json pins %q (%v); reinstall: cd testdata/clients && npm ci",
				pkg, installed.Version, pin, err)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// runRedisCLI runs the session through redis-cli (RESP2, or -3): the 50
// reviews in one round trip with --pipe, then a console session, formatted
// as at the prompt (--no-raw, as redis-cli prints to a terminal), that
// replays the same 50 reviews (each answered with its stored result) and runs
// SRS.DUE, CLIENT INFO, an unknown command, SRS.CARD, CLIENT INFO.
func runRedisCLI(t *testing.T, addr string, c clientCase, base int64) clientReport {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli is missing (%v); install it: apt-get install redis-tools", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	flags := []string{"-h", host, "-p", port}
	if c.proto == 3 {
		flags = append(flags, "-3")
	}
	plan := reviewPlan(c.player, c.season, base)

	var mass bytes.Buffer // the mass-insert format --pipe expects: RESP commands
	for _, cmd := range plan {
		fmt.Fprintf(&mass, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(&mass, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	out := runCLI(t, cli, append(flags, "--pipe"), mass.String())
	if !strings.Contains(out, "errors: 0, replies: 50") {
		t.Fatalf("redis-cli --pipe: want errors: 0, replies: 50, got:\n%s", out)
	}

	var session strings.Builder
	for _, cmd := range plan {
		session.WriteString(strings.Join(cmd, " ") + "\n")
	}
	fmt.Fprintf(&session, "SRS.DUE %s %s\nCLIENT INFO\nSRS.NOPE %s\nSRS.CARD %s %s q-00\nCLIENT INFO\n",
		c.player, c.season, c.player, c.player, c.season)
	out = runCLI(t, cli, append(flags, "--no-raw"), session.String())

	r := clientReport{Client: "redis-cli"}
	if v, err := exec.Command(cli, "--version").Output(); err == nil {
		r.Client = strings.TrimSpace(string(v))
	}
	p := &cliParser{t: t, toks: cliTokens(out), out: out}
	for range plan {
		r.Reviews = append(r.Reviews, p.mapReply("review reply"))
	}
	r.Due = p.mapReply("SRS.DUE reply")
	r.ClientInfoBefore = p.next("CLIENT INFO").s
	if tok := p.next("unknown command error"); tok.kind == "error" {
		r.UnknownError = tok.s
	}
	r.After = p.mapReply("SRS.CARD reply")
	r.ClientInfoAfter = p.next("CLIENT INFO").s
	if p.i != len(p.toks) {
		t.Errorf("redis-cli printed more than expected: %v", p.toks[p.i:])
	}

	// RESP3 maps print as `1# "field" => value`; doubles and booleans as
	// (double) and (true)/(false). RESP2 prints flat arrays of strings and
	// integers.
	r.Types = shapeOf(!strings.Contains(out, `1# "question_id" => `), r.Reviews[0])
	return r
}

func runCLI(t *testing.T, cli string, args []string, stdin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cliToken is one value redis-cli printed: a quoted string, (integer) n,
// (double) x, (true), (false), (nil), (empty array) or (error) message.
type cliToken struct {
	kind string // "string", "integer", "double", "true", "false", "nil", "empty array", "error"
	s    string
}

var cliValue = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"|\((integer|double)\) (\S+)|\((true|false|nil|empty array)\)`)

// cliTokens reads redis-cli's formatted output as a stream of values,
// dropping the layout (indexes "1)", map markers "1#" and "=>", indentation).
func cliTokens(out string) []cliToken {
	var toks []cliToken
	for line := range strings.SplitSeq(out, "\n") {
		if _, msg, ok := strings.Cut(line, "(error) "); ok {
			toks = append(toks, cliToken{kind: "error", s: msg})
			continue
		}
		if strings.HasPrefix(line, "id=") { // redis-cli prints CLIENT INFO raw
			toks = append(toks, cliToken{kind: "string", s: line})
			continue
		}
		for _, m := range cliValue.FindAllStringSubmatch(line, -1) {
			switch {
			case m[2] != "":
				toks = append(toks, cliToken{kind: m[2], s: m[3]})
			case m[4] != "":
				toks = append(toks, cliToken{kind: m[4]})
			default:
				s, err := strconv.Unquote(`"` + m[1] + `"`)
				if err != nil {
					s = m[1]
				}
				toks = append(toks, cliToken{kind: "string", s: s})
			}
		}
	}
	return toks
}

// cliParser rebuilds map replies from redis-cli's value stream.
type cliParser struct {
	t    *testing.T
	toks []cliToken
	i    int
	out  string
}

func (p *cliParser) next(what string) cliToken {
	p.t.Helper()
	if p.i >= len(p.toks) {
		p.t.Fatalf("redis-cli output ends before the %s:\n%s", what, p.out)
	}
	p.i++
	return p.toks[p.i-1]
}

// cliField is what a reply's field name looks like.
var cliField = regexp.MustCompile(`^[a-z][a-z_]*$`)

// mapReply reads field, value pairs until the next token is not a field of
// this map: not a field name, or a field that starts a new reply
// (question_id, total_due). "items" holds a list of maps.
func (p *cliParser) mapReply(what string) map[string]any {
	p.t.Helper()
	m := map[string]any{}
	for first := true; ; first = false {
		if p.i >= len(p.toks) || p.toks[p.i].kind != "string" || !cliField.MatchString(p.toks[p.i].s) ||
			(!first && (p.toks[p.i].s == "question_id" || p.toks[p.i].s == "total_due")) {
			if first {
				p.t.Fatalf("redis-cli: want the %s, got %v:\n%s", what, p.toks[min(p.i, len(p.toks)-1)], p.out)
			}
			return m
		}
		field := p.next(what).s
		if field == "items" {
			items := []any{}
			if p.i < len(p.toks) && p.toks[p.i].kind == "empty array" {
				p.i++
			}
			for p.i < len(p.toks) && p.toks[p.i].kind == "string" && p.toks[p.i].s == "question_id" {
				items = append(items, p.mapReply("SRS.DUE item"))
			}
			m[field] = items
			continue
		}
		tok := p.next(what)
		switch tok.kind {
		case "string":
			m[field] = tok.s
		case "integer":
			n, _ := strconv.ParseInt(tok.s, 10, 64)
			m[field] = n
		case "double":
			f, _ := strconv.ParseFloat(tok.s, 64)
			m[field] = f
		case "true", "false":
			m[field] = tok.kind == "true"
		default:
			p.t.Fatalf("redis-cli: %s field %s: unexpected %v:\n%s", what, field, tok, p.out)
		}
	}
}
