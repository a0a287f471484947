package safemode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srsproxy/srsproxy/internal/logx"
	"github.com/srsproxy/srsproxy/internal/startstop"
)

// Defaults of AlerterConfig.
const (
	DefaultAttempts  = 5
	DefaultBackoff   = 500 * time.Millisecond
	DefaultTimeout   = 5 * time.Second
	DefaultQueueSize = 64
)

// Alert events the wiring sends; any other string is allowed.
const (
	EventEntered = "safe_mode_entered"
	EventLeft    = "safe_mode_left"
)

// AlerterConfig configures an Alerter. The zero value of every field means
// its default.
type AlerterConfig struct {
	// URL is a Slack-compatible incoming webhook; "" disables posting
	// (alerts are still logged).
	URL string
	// Sidecar names this sidecar in the payload; omitted when "".
	Sidecar string
	// Attempts is how many times one alert is posted at most; default 5.
	Attempts int
	// Backoff is the delay before the first retry, doubling after each;
	// default 500ms.
	Backoff time.Duration
	// Timeout bounds one POST, and the last attempt of Stop as a whole,
	// so Stop takes at most twice Timeout; default 5s.
	Timeout time.Duration
	// QueueSize bounds the alerts waiting to be sent; default 64. When it
	// is full the oldest waiting alert is dropped, with a WARN log, so the
	// latest state always gets through.
	QueueSize int
	// Client posts the alerts; default a new http.Client (Timeout bounds
	// each POST through its context).
	Client *http.Client
	// Logger receives every alert (WARN), drops (WARN) and failed
	// deliveries (ERROR); default discards.
	Logger *slog.Logger
	// Now stamps the payload's time; default time.Now.
	Now func() time.Time
	// Sleep waits between attempts, returning ctx.Err() if ctx ends first;
	// default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Validate reports every invalid field, each error naming it.
func (c AlerterConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"Attempts", int64(c.Attempts)},
		{"Backoff", int64(c.Backoff)},
		{"Timeout", int64(c.Timeout)},
		{"QueueSize", int64(c.QueueSize)},
	} {
		if f.value < 0 {
			errs = append(errs, fmt.Errorf("safemode: AlerterConfig.%s must not be negative", f.name))
		}
	}
	return errors.Join(errs...)
}

func (c AlerterConfig) withDefaults() AlerterConfig {
	if c.Attempts <= 0 {
		c.Attempts = DefaultAttempts
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	return c
}

// payload is the JSON body of one POST; Slack reads text and ignores the rest.
type payload struct {
	Text    string    `json:"text"`
	Event   string    `json:"event"`
	Sidecar string    `json:"sidecar,omitempty"`
	Time    time.Time `json:"time"`
}

// Alerter tells operators about Safe Mode by a JSON POST to a webhook. Alert
// never blocks; one background goroutine, owned through Start and Stop,
// delivers the alerts in order.
type Alerter struct {
	cfg   AlerterConfig
	queue chan payload
	qmu   sync.Mutex // serializes the drop-oldest dance of Alert
	logs  *logx.Limiter

	mu       sync.Mutex
	started  bool
	stopped  atomic.Bool
	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewAlerter returns an Alerter; call Start to begin delivering. It does not
// validate cfg; fields that Validate would reject fall back to their
// defaults.
func NewAlerter(cfg AlerterConfig) *Alerter {
	cfg = cfg.withDefaults()
	return &Alerter{cfg: cfg, queue: make(chan payload, cfg.QueueSize), logs: logx.New(10*time.Second, cfg.Now)}
}

// Alert logs the alert and queues it for the webhook, returning at once
// whatever the endpoint does. When the queue is full the oldest waiting
// alert is dropped with a WARN log (rate-limited: one line per 10 s, with a
// count of the others). Alerts queued before Start wait for it;
// alerts queued after Stop are only logged.
func (a *Alerter) Alert(event, text string) {
	a.cfg.Logger.Warn("alert", "event", event, "text", text)
	if a.cfg.URL == "" || a.stopped.Load() {
		return
	}
	p := payload{Text: text, Event: event, Sidecar: a.cfg.Sidecar, Time: a.cfg.Now().UTC()}
	a.qmu.Lock()
	defer a.qmu.Unlock()
	for {
		select {
		case a.queue <- p:
			return
		default:
		}
		select {
		case old := <-a.queue:
			a.logs.Warn(a.cfg.Logger, "alert dropped: webhook queue full", "event", old.Event, "text", old.Text)
		default:
		}
	}
}

// Start starts the sender, which runs until ctx ends or Stop, then makes the
// last attempt described at Stop. It does nothing when called again, or after
// Stop.
func (a *Alerter) Start(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started {
		return
	}
	a.started = true
	ctx, a.cancel = context.WithCancel(ctx)
	a.done = make(chan struct{})
	go a.run(ctx)
}

// Stop stops the sender and waits for it: a POST under way finishes (within
// Timeout), then an alert waiting to be retried and the alerts still queued
// get one last attempt each, all within one more Timeout. Alerts not
// delivered are logged at ERROR. Stop is idempotent; without Start it does
// nothing.
func (a *Alerter) Stop() {
	a.stopOnce.Do(func() {
		a.stopped.Store(true)
		a.mu.Lock()
		a.started = true // a later Start does nothing
		cancel, done := a.cancel, a.done
		a.mu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
	})
}

// run delivers queued alerts until ctx ends, then makes the last attempt.
func (a *Alerter) run(ctx context.Context) {
	defer close(a.done)
	var left []payload
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case p := <-a.queue:
			delivered := true
			// A panic (a broken Client) drops this alert, not the sender.
			startstop.Safely("alert delivery", a.cfg.Logger, func() { delivered = a.deliver(ctx, p) })
			if !delivered {
				left = append(left, p)
			}
		}
	}
	a.stopped.Store(true) // from now on Alert only logs
drain:
	for {
		select {
		case p := <-a.queue:
			left = append(left, p)
		default:
			break drain
		}
	}
	if len(left) == 0 {
		return
	}
	last, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.Timeout)
	defer cancel()
	for _, p := range left {
		err := last.Err()
		if err == nil {
			startstop.Safely("alert delivery", a.cfg.Logger, func() { err = a.post(last, p) })
		}
		if err != nil {
			a.cfg.Logger.Error("alert not delivered at shutdown", "event", p.Event, "text", p.Text, "err", err)
		}
	}
}

// deliver posts p up to Attempts times with doubling backoff. A POST under
// way is not cut short when ctx ends (it is bounded by Timeout), so Stop
// does not resend an alert the webhook was just accepting; a wait between
// attempts is cut short. It
// reports false when ctx ended during a wait, so p is still owed its last
// attempt; every other failure it has logged.
func (a *Alerter) deliver(ctx context.Context, p payload) bool {
	backoff := a.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := a.post(context.WithoutCancel(ctx), p)
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil:
			a.cfg.Logger.Error("alert not delivered at shutdown", "event", p.Event, "text", p.Text,
				"attempts", attempt, "err", err)
			return true
		case attempt >= a.cfg.Attempts:
			a.cfg.Logger.Error("alert not delivered", "event", p.Event, "text", p.Text,
				"attempts", attempt, "err", err)
			return true
		}
		a.cfg.Logger.Debug("alert attempt failed", "event", p.Event, "attempt", attempt, "err", err)
		if a.cfg.Sleep(ctx, backoff) != nil {
			return false
		}
		backoff *= 2
	}
}

// post makes one POST of p within Timeout; a non-2xx status is an error.
func (a *Alerter) post(ctx context.Context, p payload) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post alert: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post alert: webhook answered %s", resp.Status)
	}
	return nil
}
