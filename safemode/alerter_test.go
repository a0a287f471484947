package safemode

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logRecords is a slog.Handler that keeps the records and announces them.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
	ch      chan slog.Record // optional; sent to without blocking
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	if h.ch != nil {
		select {
		case h.ch <- r.Clone():
		default:
		}
	}
	return nil
}

// count returns how many records have the level and message.
func (h *logRecords) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}

// posted is one request the test webhook received.
type posted struct {
	contentType string
	body        payload
	raw         map[string]any
}

// webhook starts a server that answers each POST with status(n), n counting
// from 1, and sends what it received on the returned channel.
func webhook(t *testing.T, status func(n int) int) (*httptest.Server, <-chan posted, *atomic.Int64) {
	t.Helper()
	ch := make(chan posted, 1100)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		data, _ := io.ReadAll(r.Body)
		var p posted
		p.contentType = r.Header.Get("Content-Type")
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		if err := json.Unmarshal(data, &p.body); err != nil {
			t.Errorf("body %q: %v", data, err)
		}
		_ = json.Unmarshal(data, &p.raw)
		code := status(int(n))
		w.WriteHeader(code)
		if code/100 == 2 {
			ch <- p
		}
	}))
	t.Cleanup(srv.Close)
	return srv, ch, &hits
}

func receive(t *testing.T, ch <-chan posted) posted {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook received nothing")
		return posted{}
	}
}

func ok(int) int { return http.StatusOK }

func TestAlerterPostsJSON(t *testing.T) {
	t.Parallel()
	srv, got, _ := webhook(t, ok)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	a := NewAlerter(AlerterConfig{URL: srv.URL, Sidecar: "host-a:6380", Now: func() time.Time { return at }})
	a.Start(t.Context())
	defer a.Stop()
	a.Alert(EventEntered, "safe mode entered: redis unreachable")
	p := receive(t, got)
	if p.contentType != "application/json" {
		t.Errorf("Content-Type = %q", p.contentType)
	}
	if p.raw["text"] != "safe mode entered: redis unreachable" {
		t.Errorf("text = %v; body %v", p.raw["text"], p.raw)
	}
	want := payload{Text: "safe mode entered: redis unreachable", Event: EventEntered, Sidecar: "host-a:6380", Time: at}
	if !p.body.Time.Equal(want.Time) || p.body.Text != want.Text || p.body.Event != want.Event || p.body.Sidecar != want.Sidecar {
		t.Errorf("body = %+v, want %+v", p.body, want)
	}
	a.Alert(EventLeft, "safe mode left")
	if p := receive(t, got); p.body.Event != EventLeft || p.body.Text != "safe mode left" {
		t.Errorf("second alert = %+v", p.body)
	}
}

func TestAlerterRetries(t *testing.T) {
	t.Parallel()
	srv, got, hits := webhook(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	sleeps := &sleepLog{}
	a := NewAlerter(AlerterConfig{URL: srv.URL, Sleep: sleeps.Sleep})
	a.Start(t.Context())
	a.Alert(EventEntered, "entered")
	if p := receive(t, got); p.body.Text != "entered" {
		t.Fatalf("delivered %+v", p.body)
	}
	a.Stop()
	if n := hits.Load(); n != 3 {
		t.Fatalf("the webhook was hit %d times, want 3 (two failures, one success)", n)
	}
	if len(got) != 0 {
		t.Fatal("the alert was delivered more than once")
	}
	if want := []time.Duration{500 * time.Millisecond, time.Second}; !slices.Equal(sleeps.Calls(), want) {
		t.Fatalf("backoffs %v, want %v", sleeps.Calls(), want)
	}
}

func TestAlerterGivesUp(t *testing.T) {
	t.Parallel()
	failing, _, failingHits := webhook(t, func(int) int { return http.StatusServiceUnavailable })
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // connection refused: a network error
	for _, tc := range []struct {
		name string
		url  string
		hits *atomic.Int64
	}{
		{"status 503", failing.URL, failingHits},
		{"network error", closed.URL, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logRecords{ch: make(chan slog.Record, 100)}
			sleeps := &sleepLog{}
			a := NewAlerter(AlerterConfig{URL: tc.url, Attempts: 3, Backoff: time.Second,
				Sleep: sleeps.Sleep, Logger: slog.New(logs)})
			a.Start(t.Context())
			defer a.Stop()
			a.Alert(EventEntered, "entered")
			for r := range logs.ch {
				if r.Level == slog.LevelError {
					if r.Message != "alert not delivered" {
						t.Fatalf("ERROR log %q", r.Message)
					}
					break
				}
			}
			if tc.hits != nil && tc.hits.Load() != 3 {
				t.Fatalf("the webhook was hit %d times, want Attempts = 3", tc.hits.Load())
			}
			if want := []time.Duration{time.Second, 2 * time.Second}; !slices.Equal(sleeps.Calls(), want) {
				t.Fatalf("backoffs %v, want %v", sleeps.Calls(), want)
			}
		})
	}
}

// A webhook that hangs never blocks Alert, and Stop stays bounded.
func TestAlerterHangingWebhookNeverBlocks(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}))
	defer srv.Close()
	defer close(release) // runs first: lets the handlers end before Close waits for them

	logs := &logRecords{}
	a := NewAlerter(AlerterConfig{URL: srv.URL, QueueSize: 16, Timeout: 500 * time.Millisecond,
		Sleep: (&sleepLog{}).Sleep, Logger: slog.New(logs)})
	a.Start(t.Context())
	a.Alert(EventEntered, "first")
	<-entered // the sender is stuck in the first POST

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			a.Alert(EventEntered, "again")
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Alert blocked behind a hanging webhook")
	}
	// Drops are logged rate-limited (logx): the first, not one per drop.
	if n := logs.count(slog.LevelWarn, "alert dropped: webhook queue full"); n != 1 {
		t.Fatalf("%d drop lines logged for %d drops, want 1 (rate-limited)", n, 1000-16-1)
	}

	stopped := make(chan struct{})
	go func() { a.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return while the webhook hangs")
	}
	if n := logs.count(slog.LevelError, "alert not delivered at shutdown"); n == 0 {
		t.Fatal("the undelivered alerts were not logged at ERROR on Stop")
	}
}

// Alerts still queued at Stop get a last attempt.
func TestAlerterStopDeliversPending(t *testing.T) {
	t.Parallel()
	srv, got, _ := webhook(t, ok)
	a := NewAlerter(AlerterConfig{URL: srv.URL})
	for _, text := range []string{"one", "two", "three"} {
		a.Alert(EventEntered, text)
	}
	a.Start(t.Context())
	a.Stop()
	var texts []string
	for len(got) > 0 {
		texts = append(texts, (<-got).body.Text)
	}
	if want := []string{"one", "two", "three"}; !slices.Equal(texts, want) {
		t.Fatalf("delivered %v, want %v", texts, want)
	}
}

func TestAlerterStopIdempotent(t *testing.T) {
	t.Parallel()
	srv, _, hits := webhook(t, ok)

	NewAlerter(AlerterConfig{URL: srv.URL}).Stop() // never started

	a := NewAlerter(AlerterConfig{URL: srv.URL})
	a.Start(t.Context())
	a.Start(t.Context())
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(a.Stop)
	}
	wg.Wait()
	a.Stop()
	a.Start(t.Context()) // after Stop: does nothing
	a.Alert(EventLeft, "after stop")
	a.Stop()
	if n := hits.Load(); n != 0 {
		t.Fatalf("the webhook was hit %d times", n)
	}
}

// Without a URL alerts are only logged.
func TestAlerterNoURL(t *testing.T) {
	t.Parallel()
	logs := &logRecords{}
	a := NewAlerter(AlerterConfig{Logger: slog.New(logs)})
	a.Start(t.Context())
	a.Alert(EventEntered, "entered")
	a.Stop()
	if n := logs.count(slog.LevelWarn, "alert"); n != 1 {
		t.Fatalf("%d alert logs, want 1", n)
	}
}

// The sender ends with its context too.
func TestAlerterContextEnds(t *testing.T) {
	t.Parallel()
	srv, got, _ := webhook(t, ok)
	ctx, cancel := context.WithCancel(t.Context())
	a := NewAlerter(AlerterConfig{URL: srv.URL})
	a.Start(ctx)
	a.Alert(EventEntered, "entered")
	receive(t, got)
	cancel()
	a.Stop()
}

func TestAlerterConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (AlerterConfig{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	err := AlerterConfig{Attempts: -1, Backoff: -1, Timeout: -1, QueueSize: -1}.Validate()
	for _, field := range []string{"Attempts", "Backoff", "Timeout", "QueueSize"} {
		if err == nil || !strings.Contains(err.Error(), "AlerterConfig."+field) {
			t.Errorf("Validate = %v, want an error naming %s", err, field)
		}
	}
}
