// Package telemetry sets up OpenTelemetry for the sidecar: meters exported
// as Prometheus text on the admin listener, and traces exported over OTLP
// when the standard OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT)
// variable is set, off otherwise.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry owns the meter and tracer providers of one sidecar.
type Telemetry struct {
	Meter    metric.Meter
	Tracer   trace.Tracer
	Metrics  http.Handler        // Prometheus text exposition
	Gatherer prometheus.Gatherer // the same metrics, for in-process readers (the status page)

	meters *sdkmetric.MeterProvider
	traces *sdktrace.TracerProvider // nil when tracing is off
}

// New builds the providers. Each sidecar gets its own Prometheus registry,
// so several in one test process do not collide.
func New(ctx context.Context, service, version string) (*Telemetry, error) {
	res := resource.NewSchemaless(semconv.ServiceName(service), semconv.ServiceVersion(version))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t := &Telemetry{meters: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))}
	t.Meter = t.meters.Meter(service)
	t.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	t.Gatherer = reg
	t.Tracer = noop.NewTracerProvider().Tracer(service)
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		t.traces = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.Tracer = t.traces.Tracer(service)
	}
	return t, nil
}

// Tracing reports whether spans are exported.
func (t *Telemetry) Tracing() bool { return t.traces != nil }

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.traces != nil {
		errs = append(errs, t.traces.Shutdown(ctx))
	}
	errs = append(errs, t.meters.Shutdown(ctx))
	return errors.Join(errs...)
}
