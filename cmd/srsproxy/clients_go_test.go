package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	redigo "github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// goConn is one Go client's connection as the session uses it. Replies are
// plain Go values: string, int64, bool, float64, []any, or a map (go-redis's
// map[any]any, rueidis's map[string]any).
type goConn interface {
	// pipeline sends cmds in one round trip and returns their replies in order.
	pipeline(ctx context.Context, cmds [][]string) ([]any, error)
	do(ctx context.Context, args ...string) (any, error)
	close()
}

// runGoClient returns a runner for a Go client: dial connects with the
// client case's options, then the session runs on that connection as the
// scripts in testdata/clients run it.
func runGoClient(client string, dial func(t *testing.T, addr string, c clientCase) goConn) func(*testing.T, string, clientCase, int64) clientReport {
	return func(t *testing.T, addr string, c clientCase, base int64) clientReport {
		t.Helper()
		ctx := context.Background()
		conn := dial(t, addr, c)
		defer conn.close()
		r := clientReport{Client: client}
		do := func(args ...string) any {
			t.Helper()
			v, err := conn.do(ctx, args...)
			if err != nil {
				t.Fatalf("%s: %v", strings.Join(args, " "), err)
			}
			return v
		}

		replies, err := conn.pipeline(ctx, reviewPlan(c.player, c.season, base))
		if err != nil {
			t.Fatalf("pipeline: %v", err)
		}
		for _, v := range replies {
			r.Reviews = append(r.Reviews, plainMap(t, v))
		}
		_, flat := replies[0].([]any)
		r.Types = shapeOf(flat, r.Reviews[0])

		r.Due = plainMap(t, do("SRS.DUE", c.player, c.season))
		r.ClientInfoBefore = fmt.Sprint(do("CLIENT", "INFO"))
		if _, err := conn.do(ctx, "SRS.NOPE", c.player); err != nil {
			r.UnknownError = err.Error()
		}
		r.After = plainMap(t, do("SRS.CARD", c.player, c.season, "q-00"))
		r.ClientInfoAfter = fmt.Sprint(do("CLIENT", "INFO"))
		return r
	}
}

// shapeOf records how a review reply reached the application: flat when the
// client handed over an array rather than a map; review is the same reply as
// a map.
func shapeOf(flat bool, review map[string]any) replyShape {
	s := resp2Shape
	if !flat {
		s.Map = "map"
	}
	if _, ok := review["duplicate"].(bool); ok {
		s.Duplicate = "bool"
	}
	if _, ok := review["stability"].(float64); ok {
		s.Stability = "double"
	}
	return s
}

// goRedisConn is go-redis with default options (RESP3) or Protocol: 2.
type goRedisConn struct{ rdb *goredis.Client }

func dialGoRedis(t *testing.T, addr string, c clientCase) goConn {
	opts := &goredis.Options{Addr: addr}
	if c.proto == 2 {
		opts.Protocol = 2
	}
	return goRedisConn{goredis.NewClient(opts)}
}

func (g goRedisConn) pipeline(ctx context.Context, cmds [][]string) ([]any, error) {
	pipe := g.rdb.Pipeline()
	var sent []*goredis.Cmd
	for _, args := range cmds {
		sent = append(sent, pipe.Do(ctx, anyArgs(args)...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]any, len(sent))
	for i, cmd := range sent {
		out[i] = cmd.Val()
	}
	return out, nil
}

func (g goRedisConn) do(ctx context.Context, args ...string) (any, error) {
	return g.rdb.Do(ctx, anyArgs(args)...).Result()
}

func (g goRedisConn) close() { g.rdb.Close() }

// redigoConn is redigo's redis.Dial with default options (RESP2, no CLIENT
// SETINFO); the pipeline is Send, Flush, Receive.
type redigoConn struct{ conn redigo.Conn }

func dialRedigo(t *testing.T, addr string, _ clientCase) goConn {
	t.Helper()
	conn, err := redigo.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("redigo: dial %s: %v", addr, err)
	}
	return redigoConn{conn}
}

func (r redigoConn) pipeline(_ context.Context, cmds [][]string) ([]any, error) {
	for _, args := range cmds {
		if err := r.conn.Send(args[0], anyArgs(args[1:])...); err != nil {
			return nil, err
		}
	}
	if err := r.conn.Flush(); err != nil {
		return nil, err
	}
	out := make([]any, len(cmds))
	for i := range cmds {
		v, err := r.conn.Receive()
		if err != nil {
			return nil, fmt.Errorf("review %d: %w", i, err)
		}
		out[i] = redigoPlain(v)
	}
	return out, nil
}

func (r redigoConn) do(_ context.Context, args ...string) (any, error) {
	v, err := r.conn.Do(args[0], anyArgs(args[1:])...)
	return redigoPlain(v), err
}

func (r redigoConn) close() { r.conn.Close() }

// redigoPlain turns redigo's bulk strings ([]byte) into strings, in arrays too.
func redigoPlain(v any) any {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = redigoPlain(x)
		}
		return out
	}
	return v
}

// rueidisConn is rueidis.NewClient with nothing but the address set: RESP3,
// client-side caching (CLIENT TRACKING ON OPTIN) and its cluster probing.
type rueidisConn struct{ client rueidis.Client }

func dialRueidis(t *testing.T, addr string, _ clientCase) goConn {
	t.Helper()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
	if err != nil {
		t.Fatalf("rueidis: connect %s: %v", addr, err)
	}
	return rueidisConn{client}
}

// build makes an arbitrary command; an SRS command's first argument, the
// player, is its key.
func (r rueidisConn) build(args []string) rueidis.Completed {
	if strings.HasPrefix(args[0], "SRS.") && len(args) > 1 {
		return r.client.B().Arbitrary(args[0]).Keys(args[1]).Args(args[2:]...).Build()
	}
	return r.client.B().Arbitrary(args...).Build()
}

func (r rueidisConn) pipeline(ctx context.Context, cmds [][]string) ([]any, error) {
	built := make(rueidis.Commands, len(cmds))
	for i, args := range cmds {
		built[i] = r.build(args)
	}
	out := make([]any, len(cmds))
	for i, res := range r.client.DoMulti(ctx, built...) {
		v, err := res.ToAny()
		if err != nil {
			return nil, fmt.Errorf("review %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

func (r rueidisConn) do(ctx context.Context, args ...string) (any, error) {
	return r.client.Do(ctx, r.build(args)).ToAny()
}

func (r rueidisConn) close() { r.client.Close() }

// modVersion is the version go.mod requires of the module path (test
// binaries carry no dependency versions in their build info).
func modVersion(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatalf("go.mod: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	t.Fatalf("go.mod does not require %s", path)
	return ""
}

func anyArgs(args []string) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}

// plainMap turns a map reply (RESP3 map or RESP2 flat array) into a
// map[string]any, with "items" a list of such maps.
func plainMap(t *testing.T, v any) map[string]any {
	t.Helper()
	m := asMap(t, v)
	if items, ok := m["items"].([]any); ok {
		out := make([]any, len(items))
		for i, it := range items {
			out[i] = asMap(t, it)
		}
		m["items"] = out
	}
	return m
}
