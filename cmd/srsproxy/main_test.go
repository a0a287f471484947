package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"
)

// env returns an environment variable or a default.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// testEnv is an isolated database and key prefix on the machine's MariaDB and Redis.
type testEnv struct {
	DSN, Prefix, Redis string
}

func newTestEnv(t *testing.T) testEnv {
	t.Helper()
	base := env("SRS_TEST_MYSQL", "root@tcp(127.0.0.1:3306)/")
	db := randomName("srs_e2e_")
	e := testEnv{DSN: base + db, Prefix: randomName("srse2e"), Redis: env("SRS_TEST_REDIS", "127.0.0.1:6379")}
	t.Cleanup(func() {
		if conn, err := sql.Open("mysql", base); err == nil {
			conn.Exec("DROP DATABASE IF EXISTS " + db)
			conn.Close()
		}
		rdb := goredis.NewClient(&goredis.Options{Addr: e.Redis})
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, e.Prefix+":*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return e
}

// startMain runs an in-process sidecar on a free port.
func startMain(t *testing.T, e testEnv, extra ...string) *Main {
	t.Helper()
	m := &Main{}
	args := append([]string{
		"--listen", "127.0.0.1:0", "--admin-listen", "off", "--mysql", e.DSN,
		"--redis", e.Redis, "--redis-prefix", e.Prefix, "--queue-dir", t.TempDir(),
	}, extra...)
	if err := m.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func client(t *testing.T, addr string, proto int) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: proto})
	t.Cleanup(func() { c.Close() })
	return c
}

func mustDo(t *testing.T, c *goredis.Client, args ...any) any {
	t.Helper()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

// asMap turns a RESP3 map or a RESP2 flat array into a map.
func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	switch m := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[k.(string)] = val
		}
		return out
	case map[string]any:
		return m
	case []any:
		out := make(map[string]any, len(m)/2)
		for i := 0; i+1 < len(m); i += 2 {
			out[m[i].(string)] = m[i+1]
		}
		return out
	}
	t.Fatalf("not a map: %T %v", v, v)
	return nil
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--listen", "nope"}, want: "--listen"},
		{args: []string{"--fsync", "sometimes"}, want: "--fsync"},
		{args: []string{"--queue-max-bytes", "12XB"}, want: "queue-max-bytes"},
		{args: []string{"--mysql", "::bad"}, want: "--mysql"},
		{env: map[string]string{"SRSPROXY_REDIS_PREFIX": "a{b"}, want: "--redis-prefix"},
		{env: map[string]string{"SRSPROXY_CACHE_TTL": "soon"}, want: "SRSPROXY_CACHE_TTL"},
		{args: []string{"--log-format", "xml"}, want: "--log-format"},
	} {
		_, err := ParseConfig(tc.args, func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want one naming %s", tc.args, tc.env, err, tc.want)
		}
	}
	c, err := ParseConfig(nil, func(k string) string {
		return map[string]string{"SRSPROXY_LISTEN": "127.0.0.1:7001", "SRSPROXY_QUEUE_MAX_BYTES": "2GiB"}[k]
	})
	if err != nil || c.Listen != "127.0.0.1:7001" || c.QueueMaxBytes != 2<<30 || c.Redis[0] != "127.0.0.1:6379" {
		t.Fatalf("env defaults: %+v %v", c, err)
	}
}

// The admin listener follows the RESP port, so two sidecars on one host do
// not clash (issue 12), and profiles are off unless asked for.
func TestAdminListenerDefault(t *testing.T) {
	t.Parallel()
	for listen, want := range map[string]string{
		"127.0.0.1:6380":  "127.0.0.1:16380",
		"127.0.0.1:6381":  "127.0.0.1:16381",
		"[::1]:7000":      "[::1]:17000",
		"127.0.0.1:0":     "127.0.0.1:0",
		"127.0.0.1:60000": "127.0.0.1:0",
	} {
		c, err := ParseConfig([]string{"--listen", listen}, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if got := c.withDefaults().AdminListen; got != want {
			t.Errorf("--listen %s: admin %s, want %s", listen, got, want)
		}
		if c.Pprof {
			t.Errorf("--listen %s: pprof on by default", listen)
		}
	}
}
