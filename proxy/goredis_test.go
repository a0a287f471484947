package proxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestGoRedis connects go-redis v9 with default options (RESP3, HELLO 3 then
// CLIENT MAINT_NOTIFICATIONS and CLIENT SETINFO on connect) and with RESP2.
func TestGoRedis(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	for _, proto := range []int{0, 3, 2} {
		t.Run(fmt.Sprintf("Protocol=%d", proto), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := redis.NewClient(&redis.Options{Addr: s.addr, Protocol: proto})
			t.Cleanup(func() { rdb.Close() })
			wantProto := proto
			if proto == 0 {
				wantProto = 3
			}

			t.Run("Ping", func(t *testing.T) {
				if got, err := rdb.Ping(ctx).Result(); err != nil || got != "PONG" {
					t.Fatalf("Ping = %q, %v", got, err)
				}
			})
			t.Run("handshake", func(t *testing.T) {
				info, err := rdb.ClientInfo(ctx).Result()
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(info.LibName, "go-redis(") || info.LibVer != redis.Version() || info.Resp != wantProto {
					t.Errorf("CLIENT INFO = lib-name %q lib-ver %q resp %d, want go-redis %s resp %d",
						info.LibName, info.LibVer, info.Resp, redis.Version(), wantProto)
				}
			})
			t.Run("map reply", func(t *testing.T) {
				v, err := rdb.Do(ctx, "test.types").Result()
				if err != nil {
					t.Fatal(err)
				}
				var double any
				switch m := v.(type) {
				case map[any]any: // RESP3
					double = m["double"]
					if m["true"] != true || m["null"] != nil || m["int"] != int64(-42) {
						t.Errorf("map = %#v", m)
					}
				case []any: // RESP2: flat field, value
					if len(m) != 20 || m[8] != "double" {
						t.Fatalf("array = %#v", m)
					}
					double = m[9]
				default:
					t.Fatalf("reply %T %#v", v, v)
				}
				if want := map[int]any{3: 3.25, 2: "3.25"}[wantProto]; double != want {
					t.Errorf("double = %#v, want %#v", double, want)
				}
			})
			t.Run("pipeline of 50", func(t *testing.T) {
				cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					for i := range 50 {
						p.Echo(ctx, i)
					}
					return nil
				})
				if err != nil || len(cmds) != 50 {
					t.Fatalf("Pipelined: %d cmds, %v", len(cmds), err)
				}
				for i, c := range cmds {
					if got := c.(*redis.StringCmd).Val(); got != fmt.Sprint(i) {
						t.Fatalf("reply %d = %q", i, got)
					}
				}
			})
			t.Run("TxPipeline", func(t *testing.T) {
				var ping *redis.StatusCmd
				var echo *redis.StringCmd
				_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
					ping = p.Ping(ctx)
					echo = p.Echo(ctx, "in tx")
					return nil
				})
				if err != nil || ping.Val() != "PONG" || echo.Val() != "in tx" {
					t.Fatalf("TxPipelined: %v %q %q", err, ping.Val(), echo.Val())
				}
			})
			t.Run("unknown command keeps the connection", func(t *testing.T) {
				conn := rdb.Conn()
				defer conn.Close()
				id := conn.ClientID(ctx).Val()
				err := conn.Do(ctx, "no.such", "x").Err()
				if err == nil || !strings.HasPrefix(err.Error(), "ERR unknown command 'no.such'") {
					t.Fatalf("unknown command: %v", err)
				}
				if got := conn.ClientID(ctx).Val(); got != id || id == 0 {
					t.Fatalf("CLIENT ID %d after the error, was %d", got, id)
				}
				if v, err := conn.Echo(ctx, "ok").Result(); err != nil || v != "ok" {
					t.Fatalf("Echo = %q, %v", v, err)
				}
			})
			t.Run("COMMAND", func(t *testing.T) {
				cmds, err := rdb.Command(ctx).Result()
				if err != nil {
					t.Fatal(err)
				}
				if c := cmds["test.admin"]; c == nil || c.Arity != 1 || len(cmds) != len(s.mux.Commands()) {
					t.Fatalf("COMMAND: %d commands, test.admin %+v", len(cmds), c)
				}
			})
			t.Run("INFO", func(t *testing.T) {
				info, err := rdb.Info(ctx, "server").Result()
				if err != nil || !strings.Contains(info, "redis_version:"+RedisVersion+"\r\n") {
					t.Fatalf("INFO = %q, %v", info, err)
				}
			})
		})
	}
}

// TestGoRedisAuth logs in with a password only (HELLO 3 AUTH default …) and
// with a user, over both protocols.
func TestGoRedisAuth(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{RequirePass: "secret", Users: map[string]User{
		"app": {Name: "app", Password: "app-pass", Role: RoleApp},
	}})
	for _, tc := range []struct {
		user, pass string
		proto      int
		want       string
	}{
		{"", "secret", 3, "default/3/admin"},
		{"", "secret", 2, "default/2/admin"},
		{"app", "app-pass", 3, "app/3/app"},
		{"app", "app-pass", 2, "app/2/app"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := redis.NewClient(&redis.Options{Addr: s.addr, Username: tc.user, Password: tc.pass, Protocol: tc.proto})
			defer rdb.Close()
			if got, err := rdb.Do(ctx, "TEST.WHOAMI").Text(); err != nil || got != tc.want {
				t.Fatalf("TEST.WHOAMI = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		rdb := redis.NewClient(&redis.Options{Addr: s.addr, Password: "wrong", MaxRetries: -1})
		defer rdb.Close()
		err := rdb.Ping(context.Background()).Err()
		if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Fatalf("Ping with a wrong password: %v", err)
		}
	})
	t.Run("role", func(t *testing.T) {
		t.Parallel()
		rdb := redis.NewClient(&redis.Options{Addr: s.addr, Username: "app", Password: "app-pass"})
		defer rdb.Close()
		err := rdb.Do(context.Background(), "TEST.ADMIN").Err()
		if err == nil || err.Error() != "NOPERM User app has no permissions to run the 'test.admin' command" {
			t.Fatalf("TEST.ADMIN as app: %v", err)
		}
	})
}

// TestGoRedisConcurrent runs many clients at once, for the race detector.
func TestGoRedisConcurrent(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: s.addr, PoolSize: 16})
	defer rdb.Close()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				msg := fmt.Sprintf("%d-%d", g, i)
				if got, err := rdb.Echo(ctx, msg).Result(); err != nil || got != msg {
					t.Errorf("Echo(%s) = %q, %v", msg, got, err)
					return
				}
				if i%10 == 0 {
					if err := rdb.Do(ctx, "CLIENT", "LIST").Err(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
