package statuspage

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/srsproxy/srsproxy/commands"
)

func TestQuantile(t *testing.T) {
	t.Parallel()
	bounds := []float64{0.001, 0.01, 0.1}
	for _, tc := range []struct {
		name string
		q    float64
		cum  []uint64
		want float64
	}{
		{"empty", 0.5, []uint64{0, 0, 0, 0}, -1},
		{"all in the first bucket", 0.5, []uint64{10, 10, 10, 10}, 0.0005},
		{"middle of the second bucket", 0.5, []uint64{0, 10, 10, 10}, 0.0055},
		{"p99 in the third", 0.99, []uint64{50, 90, 100, 100}, 0.01 + 0.09*(99.0-90)/10},
		{"+Inf bucket answers the top bound", 0.99, []uint64{0, 0, 0, 10}, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.q, bounds, tc.cum); abs(got-tc.want) > 1e-12 {
				t.Fatalf("quantile(%v, %v) = %v, want %v", tc.q, tc.cum, got, tc.want)
			}
		})
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// TestRatesFromMetrics drives the clock: per-command rates, quantiles and
// the hit ratio come from the difference of two gathers a window apart.
func TestRatesFromMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "srsproxy_commands_total"}, []string{"command", "result"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "srsproxy_command_duration_seconds",
		Buckets: []float64{0.001, 0.01, 0.1}}, []string{"command", "result"})
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "srsproxy_cache_reads_total"}, []string{"result"})
	reg.MustRegister(calls, lat, reads)
	now := time.Unix(1_800_000_000, 0)
	var drained uint64
	p := New(Config{Gatherer: reg, Now: func() time.Time { return now }, Window: 10 * time.Second,
		Status: func(context.Context, bool) commands.Status {
			return commands.Status{Drained: drained, BreakerState: "closed", QueueDepth: 7}
		}})
	p.Sample(context.Background())
	for range 100 {
		calls.WithLabelValues("SRS.DUE", "ok").Inc()
		lat.WithLabelValues("SRS.DUE", "ok").Observe(0.0005)
	}
	calls.WithLabelValues("SRS.DUE", "BUSY").Add(10)
	reads.WithLabelValues("hit").Add(30)
	reads.WithLabelValues("miss").Add(10)
	drained = 50
	now = now.Add(10 * time.Second)
	p.Sample(context.Background())
	d := p.Document()
	if len(d.Commands) != 1 {
		t.Fatalf("commands %+v", d.Commands)
	}
	c := d.Commands[0]
	if c.Command != "SRS.DUE" || c.Rate != 11 || c.ErrorRate != 1 || c.Total != 110 || c.P50MS != 0.5 || c.P99MS != 0.99 {
		t.Fatalf("SRS.DUE stats %+v", c)
	}
	if d.HitRatio != 0.75 || d.DrainRate != 5 || d.Status["queue_depth"] != 7 {
		t.Fatalf("hit ratio %v drain rate %v status %v", d.HitRatio, d.DrainRate, d.Status)
	}
	if n := len(d.History); n != 2 || d.History[1].RequestRate != 11 || d.History[1].DrainRate != 5 {
		t.Fatalf("history %+v", d.History)
	}
}

func TestHandlerServesPageAndJSON(t *testing.T) {
	t.Parallel()
	p := New(Config{Status: func(_ context.Context, io bool) commands.Status {
		return commands.Status{RedisConnected: io, BreakerState: "open"}
	}})
	mux := http.NewServeMux()
	p.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]string{"/": "<title>srsproxy status</title>", "/assets/app.js": "/status.json", "/assets/style.css": ".tiles"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) || resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, b[:min(200, len(b))])
		}
	}
	// The first view samples with I/O at once.
	resp, err := http.Get(srv.URL + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d Document
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Format != FormatVersion || !d.Watched || d.Status["redis_connected"] != true || d.Status["breaker_state"] != "open" {
		t.Fatalf("document %+v", d)
	}
}
