package redis

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/internal/faults"
)

// watcherHarness is a Watcher on a private redis-server, with what it reported.
type watcherHarness struct {
	w       *Watcher
	admin   *goredis.Client
	changes chan []string
	lost    chan struct{}
}

func newWatcherHarness(t *testing.T) *watcherHarness {
	t.Helper()
	srv := faults.StartRedis(t)
	h := &watcherHarness{
		admin:   goredis.NewClient(&goredis.Options{Addr: srv.Addr(), Protocol: 2}),
		changes: make(chan []string, 100),
		lost:    make(chan struct{}, 100),
	}
	t.Cleanup(func() { h.admin.Close() })
	h.w = NewWatcher(Options{Addrs: []string{srv.Addr()}, Prefix: "wt"},
		func(players []string) { h.changes <- players },
		func() { h.lost <- struct{}{} },
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { h.w.Close() })
	return h
}

// watch waits until the watcher is subscribed, then watches the player.
func (h *watcherHarness) watch(t *testing.T, player string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := h.w.Watch(context.Background(), "SEASON-2026", player)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Watch %s: %v", player, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// write changes the player's version key, as any sidecar's write does.
func (h *watcherHarness) write(t *testing.T, player string) {
	t.Helper()
	if err := h.admin.Incr(context.Background(), UserKeys("wt", "SEASON-2026", player)[1]).Err(); err != nil {
		t.Fatal(err)
	}
}

func (h *watcherHarness) nextChange(t *testing.T) []string {
	t.Helper()
	select {
	case p := <-h.changes:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no change reported in 5s")
		return nil
	}
}

func (h *watcherHarness) waitLost(t *testing.T) {
	t.Helper()
	select {
	case <-h.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("loss not reported in 5s")
	}
}

// TestWatcherReportsChangesOnce: a watched version key changed by another
// client is reported once (Redis tracks a read key until it changes).
func TestWatcherReportsChangesOnce(t *testing.T) {
	t.Parallel()
	h := newWatcherHarness(t)
	h.watch(t, "alice")
	h.watch(t, "alice") // already watched: no second GET needed
	h.write(t, "alice")
	if got := h.nextChange(t); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("changes = %v, want [alice]", got)
	}
	h.write(t, "alice") // no longer watched: not reported
	h.watch(t, "bob")
	h.write(t, "bob")
	if got := h.nextChange(t); len(got) != 1 || got[0] != "bob" {
		t.Fatalf("changes = %v, want [bob] (alice's second write must not be reported)", got)
	}
	h.watch(t, "alice")
	h.write(t, "alice")
	if got := h.nextChange(t); got[0] != "alice" {
		t.Fatalf("after watching again: %v", got)
	}
}

// TestWatcherRecovers: a killed subscriber, a killed reader and a flushed
// database each lose invalidations; the watcher reports the loss and works
// again afterwards.
func TestWatcherRecovers(t *testing.T) {
	t.Parallel()
	h := newWatcherHarness(t)
	ctx := context.Background()
	check := func(step string) {
		t.Helper()
		h.watch(t, "carol")
		h.write(t, "carol")
		if got := h.nextChange(t); got[0] != "carol" {
			t.Fatalf("%s: changes = %v", step, got)
		}
	}
	check("start")

	h.watch(t, "carol")
	if err := h.admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	h.waitLost(t)
	check("after the subscriber was killed")

	h.watch(t, "carol")
	list, err := h.admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "redir=") && !strings.Contains(line, "redir=-1") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			if err := h.admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("killed %d tracking readers, want 1:\n%s", killed, list)
	}
	// The next Watch reconnects the reader, which must forget its marks.
	h.watch(t, "dave")
	h.waitLost(t)
	check("after the reader was killed")

	h.watch(t, "carol")
	if err := h.admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	h.waitLost(t)
	check("after FLUSHALL")
}

func TestWatcherClusterUnsupported(t *testing.T) {
	t.Parallel()
	w := NewWatcher(Options{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, func([]string) {}, func() {}, slog.Default())
	defer w.Close()
	if err := w.Watch(context.Background(), "SEASON-2026", "p"); !errors.Is(err, ErrWatchUnsupported) {
		t.Fatalf("Watch on a cluster: %v", err)
	}
}

func TestPlayerOfVersionKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		key, player string
		ok          bool
	}{
		{UserKeys("srs", "SEASON-2026", "p|1")[1], "p|1", true},
		{UserKeys("srs", "SEASON-2026", "p")[0], "", false}, // the card hash
		{UserKeys("other", "SEASON-2026", "p")[1], "", false},
		{"srs:{nobar}:v3", "", false},
	} {
		player, ok := playerOfVersionKey("srs", c.key)
		if player != c.player || ok != c.ok {
			t.Errorf("playerOfVersionKey(%q) = %q, %v; want %q, %v", c.key, player, ok, c.player, c.ok)
		}
	}
}
