package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// With the standard OTEL_EXPORTER_OTLP_ENDPOINT set, every SRS command is a
// span exported over OTLP/HTTP; without it tracing is off (the other tests).
func TestTracesExportedOverOTLP(t *testing.T) {
	var posts atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	e := newTestEnv(t)
	m := &Main{}
	if err := m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--admin-listen", "off", "--mysql", e.DSN,
		"--redis", e.Redis, "--redis-prefix", e.Prefix, "--queue-dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	if !m.tel.Tracing() {
		m.Close()
		t.Fatal("tracing is off although OTEL_EXPORTER_OTLP_ENDPOINT is set")
	}
	c := client(t, m.Addr(), 3)
	mustDo(t, c, "SRS.SEASON", "LIST")
	if err := m.Close(); err != nil { // flushes the span batch
		t.Fatal(err)
	}
	if posts.Load() == 0 {
		t.Fatal("no OTLP trace export reached the collector")
	}
}
