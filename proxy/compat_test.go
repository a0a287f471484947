package proxy

import (
	"context"
	"fmt"
	"net"
	osexec "os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRueidisHandshake replays what rueidis v1.0.80 with default options
// pipelines on every new connection, then the cluster probe its NewClient
// sends (CLUSTER SHARDS as HELLO reports 7.x, CLUSTER SLOTS before 7), and
// checks every reply is the success rueidis requires.
func TestRueidisHandshake(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{Version: "1.2.3"})
	c := s.dial(t)
	c.send(resp("HELLO", "3") + resp("CLIENT", "TRACKING", "ON", "OPTIN") +
		resp("CLIENT", "SETINFO", "LIB-NAME", "rueidis") + resp("CLIENT", "SETINFO", "LIB-VER", "1.0.80"))
	hello := c.read()
	for _, want := range []string{"$7\r\nversion\r\n$5\r\n7.2.0\r\n", "$16\r\nsrsproxy_version\r\n$5\r\n1.2.3\r\n", ":3\r\n"} {
		if !strings.Contains(hello, want) {
			t.Errorf("HELLO 3 = %q, want it to contain %q", hello, want)
		}
	}
	for _, step := range []string{"TRACKING ON OPTIN", "SETINFO LIB-NAME", "SETINFO LIB-VER"} {
		if got := c.read(); got != "+OK\r\n" {
			t.Errorf("CLIENT %s = %q, want +OK", step, got)
		}
	}
	_, port, _ := net.SplitHostPort(s.addr)
	shards := c.do("CLUSTER", "SHARDS")
	want := "*1\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n%7\r\n$2\r\nid\r\n$40\r\n"
	if !strings.HasPrefix(shards, want) || !strings.Contains(shards, "$4\r\nport\r\n:"+port+"\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n") ||
		!strings.HasSuffix(shards, "$6\r\nhealth\r\n$6\r\nonline\r\n") {
		t.Errorf("CLUSTER SHARDS = %q", shards)
	}
	if got := c.do("CLUSTER", "SLOTS"); !strings.HasPrefix(got, "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:"+port+"\r\n$40\r\n") {
		t.Errorf("CLUSTER SLOTS = %q", got)
	}
	if got := c.do("CLIENT", "TRACKINGINFO"); got != "%3\r\n$5\r\nflags\r\n*2\r\n+on\r\n+optin\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n" {
		t.Errorf("CLIENT TRACKINGINFO = %q", got)
	}
	// rueidis's DoCache sends CLIENT CACHING YES before a cached read.
	if got := c.do("CLIENT", "CACHING", "YES"); got != "+OK\r\n" {
		t.Errorf("CLIENT CACHING YES = %q", got)
	}
}

// TestClientTracking checks CLIENT TRACKING's options and errors, which
// follow Redis 7's, and what TRACKINGINFO and GETREDIR report.
func TestClientTracking(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	other := s.dial(t)
	otherID := strings.TrimSuffix(strings.TrimPrefix(other.do("CLIENT", "ID"), ":"), "\r\n")
	c := s.dial(t)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"CLIENT", "TRACKINGINFO"}, "*6\r\n$5\r\nflags\r\n*1\r\n+off\r\n$8\r\nredirect\r\n:-1\r\n$8\r\nprefixes\r\n*0\r\n"},
		{[]string{"CLIENT", "GETREDIR"}, ":-1\r\n"},
		{[]string{"CLIENT", "CACHING", "YES"}, "-ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.\r\n"},
		{[]string{"CLIENT", "TRACKING"}, "-ERR wrong number of arguments for 'client|tracking' command\r\n"},
		{[]string{"CLIENT", "TRACKING", "maybe"}, "-ERR syntax error\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "NOSUCH"}, "-ERR syntax error\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"}, "-ERR You can't use both OPTIN and OPTOUT\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "BCAST", "OPTIN"}, "-ERR OPTIN and OPTOUT are not compatible with BCAST\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "PREFIX", "srs:"}, "-ERR PREFIX option requires BCAST mode to be enabled\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "REDIRECT", "999999"}, "-ERR The client ID you want redirect to does not exist\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "REDIRECT", "x"}, "-ERR value is not an integer or out of range\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "b", "NOLOOP", "REDIRECT", otherID}, "+OK\r\n"},
		{[]string{"CLIENT", "TRACKINGINFO"}, "*6\r\n$5\r\nflags\r\n*3\r\n+on\r\n+bcast\r\n+noloop\r\n$8\r\nredirect\r\n:" + otherID +
			"\r\n$8\r\nprefixes\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
		{[]string{"CLIENT", "GETREDIR"}, ":" + otherID + "\r\n"},
		{[]string{"CLIENT", "TRACKING", "on"}, "-ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.\r\n"},
		{[]string{"CLIENT", "TRACKING", "off"}, "+OK\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "OPTOUT"}, "+OK\r\n"},
		{[]string{"CLIENT", "TRACKING", "on", "OPTIN"}, "-ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.\r\n"},
		{[]string{"CLIENT", "CACHING", "YES"}, "-ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.\r\n"},
		{[]string{"CLIENT", "CACHING", "no"}, "+OK\r\n"},
		{[]string{"CLIENT", "CACHING", "perhaps"}, "-ERR syntax error\r\n"},
		{[]string{"CLIENT", "GETREDIR"}, ":0\r\n"},
		{[]string{"RESET"}, "+RESET\r\n"},
		{[]string{"CLIENT", "GETREDIR"}, ":-1\r\n"},
	}
	for _, st := range steps {
		if got := c.do(st.args...); got != st.want {
			t.Errorf("%s = %q, want %q", strings.Join(st.args, " "), got, st.want)
		}
	}
}

// TestCluster checks the one-node cluster the CLUSTER subcommands describe
// is consistent: one id, the connection's local address, every slot.
func TestCluster(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	c := s.dial(t)
	_, port, _ := net.SplitHostPort(s.addr)
	id := c.do("CLUSTER", "MYID")
	if len(id) != len("$40\r\n")+40+2 || !strings.HasPrefix(id, "$40\r\n") {
		t.Fatalf("CLUSTER MYID = %q", id)
	}
	id = id[5:45]
	checks := []struct {
		args []string
		want string
	}{
		{[]string{"CLUSTER", "MYSHARDID"}, "$40\r\n" + id + "\r\n"},
		{[]string{"CLUSTER", "SLOTS"}, "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:" + port + "\r\n$40\r\n" + id + "\r\n"},
		{[]string{"CLUSTER", "SHARDS"}, "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$40\r\n" + id +
			"\r\n$4\r\nport\r\n:" + port + "\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n" +
			"$18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"},
		{[]string{"CLUSTER", "NODES"}, bulk(id + " 127.0.0.1:" + port + "@0 myself,master - 0 0 1 connected 0-16383\n")},
		{[]string{"READONLY"}, "+OK\r\n"},
		{[]string{"READWRITE"}, "+OK\r\n"},
		{[]string{"ASKING"}, "+OK\r\n"},
		{[]string{"CLUSTER", "NOSUCH"}, "-ERR unknown subcommand 'NOSUCH'. Try CLUSTER HELP.\r\n"},
		{[]string{"CLUSTER", "SLOTS", "x"}, "-ERR wrong number of arguments for 'cluster|slots' command\r\n"},
	}
	for _, ch := range checks {
		if got := c.do(ch.args...); got != ch.want {
			t.Errorf("%s = %q, want %q", strings.Join(ch.args, " "), got, ch.want)
		}
	}
	info := c.do("CLUSTER", "INFO")
	for _, want := range []string{"cluster_state:ok\r\n", "cluster_slots_assigned:16384\r\n", "cluster_known_nodes:1\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("CLUSTER INFO = %q, want %q in it", info, want)
		}
	}
}

func bulk(s string) string { return "$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n" }

// TestGoRedisCluster runs a go-redis ClusterClient with default options
// (CLUSTER SLOTS, then commands routed by slot) and one with ReadOnly, which
// sends READONLY on each connection, against the server.
func TestGoRedisCluster(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReadOnly=%v", readOnly), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{s.addr}, ReadOnly: readOnly})
			t.Cleanup(func() { rdb.Close() })
			if got, err := rdb.Ping(ctx).Result(); err != nil || got != "PONG" {
				t.Fatalf("Ping = %q, %v", got, err)
			}
			for i := range 20 { // commands whose arguments hash to many slots
				v, err := rdb.Do(ctx, "TEST.ERROR", fmt.Sprintf("OK player-%d", i)).Result()
				if err == nil || err.Error() != fmt.Sprintf("OK player-%d", i) {
					t.Fatalf("TEST.ERROR = %v, %v", v, err)
				}
			}
			if got, err := rdb.Do(ctx, "TEST.WHOAMI").Text(); err != nil || got != "default/3/admin" {
				t.Fatalf("TEST.WHOAMI = %q, %v", got, err)
			}
			pipe := rdb.Pipeline()
			a := pipe.Do(ctx, "TEST.DOUBLE", "1.5")
			b := pipe.Echo(ctx, "hi")
			if _, err := pipe.Exec(ctx); err != nil || a.Val() != 1.5 || b.Val() != "hi" {
				t.Fatalf("pipeline = %v %v, %v", a.Val(), b.Val(), err)
			}
			slots, err := rdb.ClusterSlots(ctx).Result()
			if err != nil || len(slots) != 1 || slots[0].Start != 0 || slots[0].End != 16383 || slots[0].Nodes[0].Addr != s.addr {
				t.Fatalf("ClusterSlots = %+v, %v", slots, err)
			}
			shards, err := rdb.ClusterShards(ctx).Result()
			if err != nil || len(shards) != 1 || len(shards[0].Nodes) != 1 || shards[0].Nodes[0].ID != slots[0].Nodes[0].ID {
				t.Fatalf("ClusterShards = %+v, %v", shards, err)
			}
		})
	}
}

// TestInfo checks the fields monitoring tools and redis-cli read.
func TestInfo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := make(chan time.Time, 1)
	clock <- now
	s := startServerClock(t, Config{Version: "1.2.3"}, func() time.Time {
		t := <-clock
		clock <- t
		return t
	})
	set := func(t time.Time) { <-clock; clock <- t }
	c := s.dial(t)
	fields := func(args ...string) map[string]string {
		t.Helper()
		m := map[string]string{}
		raw := c.do(append([]string{"INFO"}, args...)...)
		for line := range strings.SplitSeq(raw, "\r\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				m[k] = v
			} else if strings.HasPrefix(line, "# ") {
				m[line] = ""
			}
		}
		return m
	}
	f := fields()
	for _, sec := range []string{"Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "Keyspace"} {
		if _, ok := f["# "+sec]; !ok {
			t.Errorf("INFO lacks section %s", sec)
		}
	}
	want := map[string]string{"redis_version": "7.2.0", "srsproxy_version": "1.2.3", "connected_clients": "1",
		"total_connections_received": "1", "total_commands_processed": "0", "instantaneous_ops_per_sec": "0",
		"uptime_in_seconds": "0", "maxmemory_policy": "noeviction", "role": "master"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("INFO %s = %q, want %q", k, f[k], v)
		}
	}
	if n, err := strconv.ParseUint(f["used_memory"], 10, 64); err != nil || n == 0 {
		t.Errorf("INFO used_memory = %q", f["used_memory"])
	}
	for range 9 {
		c.do("PING")
	}
	set(now.Add(2 * time.Second))
	f = fields("stats")
	// 10 commands (the first INFO, 9 PINGs) in the 2 s since the last sample.
	if f["total_commands_processed"] != "10" || f["instantaneous_ops_per_sec"] != "5" {
		t.Errorf("INFO stats = %v, want 10 commands, 5 ops/s", f)
	}
	if got := c.do("DBSIZE"); got != ":0\r\n" {
		t.Errorf("DBSIZE = %q", got)
	}
	for _, st := range []struct{ args, want string }{
		{"SCAN 0", "*2\r\n$1\r\n0\r\n*0\r\n"},
		{"SCAN 0 MATCH srs:* COUNT 1000 TYPE hash", "*2\r\n$1\r\n0\r\n*0\r\n"},
		{"SCAN x", "-ERR invalid cursor\r\n"},
		{"SCAN 0 COUNT 0", "-ERR syntax error\r\n"},
		{"SCAN 0 MATCH", "-ERR syntax error\r\n"},
		{"TYPE k", "+none\r\n"},
	} {
		if got := c.do(strings.Fields(st.args)...); got != st.want {
			t.Errorf("%s = %q, want %q", st.args, got, st.want)
		}
	}
}

// TestRedisCLIAdmin runs redis-cli's admin modes against the server: each
// must exit 0 without an error, and --stat must print numbers.
func TestRedisCLIAdmin(t *testing.T) {
	t.Parallel()
	cli, err := osexec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed (Debian package redis-tools)")
	}
	s := startServer(t, Config{})
	host, port, _ := net.SplitHostPort(s.addr)
	for _, mode := range []string{"--bigkeys", "--memkeys", "--scan", "--keystats"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := osexec.CommandContext(ctx, cli, "-h", host, "-p", port, mode).CombinedOutput()
			if mode == "--keystats" && strings.Contains(string(out), "Unrecognized option") {
				t.Skip("redis-cli before 7.4 has no --keystats")
			}
			if err != nil || strings.Contains(string(out), "Couldn't determine DBSIZE") || strings.Contains(string(out), "ERR") {
				t.Fatalf("redis-cli %s: %v\n%s", mode, err, out)
			}
			if mode != "--scan" && !strings.Contains(string(out), "0 keys") {
				t.Errorf("redis-cli %s printed no key count:\n%s", mode, out)
			}
		})
	}
	t.Run("--stat", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		// redis-cli --stat runs until killed: stdbuf makes it write each line
		// as it prints it rather than buffer them all and lose them.
		stdbuf, err := osexec.LookPath("stdbuf")
		if err != nil {
			t.Skip("stdbuf not installed (coreutils)")
		}
		out, _ := osexec.CommandContext(ctx, stdbuf, "-oL", cli, "-h", host, "-p", port, "--stat", "-i", "0.2").CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 4 || !strings.Contains(lines[1], "keys") || strings.Contains(string(out), "-9223372036854775808") {
			t.Fatalf("redis-cli --stat printed:\n%s", out)
		}
		// keys mem clients blocked requests connections; the other subtests'
		// connections come and go.
		for _, line := range lines[2:] {
			f := append(strings.Fields(line), "", "", "", "", "", "")
			if n, err := strconv.Atoi(f[2]); f[0] != "0" || !strings.HasSuffix(f[1], "K") && !strings.HasSuffix(f[1], "M") ||
				err != nil || n < 1 || f[3] != "0" {
				t.Errorf("redis-cli --stat line = %q", line)
			}
		}
	})
}
