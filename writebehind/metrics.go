package writebehind

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// instruments are the queue's OpenTelemetry instruments.
type instruments struct {
	batchSize                             metric.Int64Histogram
	latency                               metric.Float64Histogram
	drained, retries, deadLetters, fsyncs metric.Int64Counter
	reg                                   metric.Registration
}

func newInstruments(m metric.Meter, stats func() Stats) (instruments, error) {
	var (
		in          instruments
		depth, size metric.Int64ObservableGauge
		age         metric.Float64ObservableGauge
		errs        [10]error
	)
	in.batchSize, errs[0] = m.Int64Histogram("srsproxy_drain_batch_size",
		metric.WithDescription("Reviews per drain transaction."), metric.WithUnit("{review}"))
	in.latency, errs[1] = m.Float64Histogram("srsproxy_drain_latency_seconds",
		metric.WithDescription("Time of a successful drain transaction, dead letters included."), metric.WithUnit("s"))
	in.drained, errs[2] = m.Int64Counter("srsproxy_drain_reviews",
		metric.WithDescription("Reviews removed from the queue after the store took them (dead letters included)."))
	in.retries, errs[3] = m.Int64Counter("srsproxy_drain_retries",
		metric.WithDescription("Failed store calls that will be retried."))
	in.deadLetters, errs[4] = m.Int64Counter("srsproxy_drain_dead_letters",
		metric.WithDescription("Reviews the store rejected for good, moved to the dead-letter file."))
	in.fsyncs, errs[5] = m.Int64Counter("srsproxy_queue_fsyncs",
		metric.WithDescription("Fsyncs of the queue log."))
	depth, errs[6] = m.Int64ObservableGauge("srsproxy_queue_depth",
		metric.WithDescription("Undrained reviews."), metric.WithUnit("{review}"))
	size, errs[7] = m.Int64ObservableGauge("srsproxy_queue_bytes",
		metric.WithDescription("Log bytes of the undrained reviews."), metric.WithUnit("By"))
	age, errs[8] = m.Float64ObservableGauge("srsproxy_queue_oldest_age_seconds",
		metric.WithDescription("Age of the oldest undrained review."), metric.WithUnit("s"))
	in.reg, errs[9] = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(depth, int64(s.Depth))
		o.ObserveInt64(size, s.Bytes)
		o.ObserveFloat64(age, s.OldestAge.Seconds())
		return nil
	}, depth, size, age)
	return in, errors.Join(errs[:]...)
}

func (in instruments) recordBatch(n int, took time.Duration) {
	in.batchSize.Record(context.Background(), int64(n))
	in.latency.Record(context.Background(), took.Seconds())
}
