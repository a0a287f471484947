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

func newInstruments(m metric.Meter, stats func() Stats, health func() error) (instruments, error) {
	var (
		in                                instruments
		depth, size, held, stalled, wrote metric.Int64ObservableGauge
		age                               metric.Float64ObservableGauge
		errs                              [13]error
	)
	in.batchSize, errs[0] = m.Int64Histogram("srsproxy_drain_batch_size",
		metric.WithDescription("Reviews per drain batch (one store call; the MariaDB store splits a big one into concurrent transactions by user)."), metric.WithUnit("{review}"))
	in.latency, errs[1] = m.Float64Histogram("srsproxy_drain_latency_seconds",
		metric.WithDescription("Time of a successful drain batch, dead letters included."), metric.WithUnit("s"))
	in.drained, errs[2] = m.Int64Counter("srsproxy_drain_reviews",
		metric.WithDescription("Reviews removed from the queue after the store took them (dead letters included)."))
	in.retries, errs[3] = m.Int64Counter("srsproxy_drain_retries",
		metric.WithDescription("Failed store calls that will be retried."))
	in.deadLetters, errs[4] = m.Int64Counter("srsproxy_drain_dead_letters",
		metric.WithDescription("Reviews the store rejected for good, moved to the dead-letter file."))
	// Rare events start at zero, so alerts on increase() see the first one.
	for _, c := range []metric.Int64Counter{in.retries, in.deadLetters} {
		if c != nil {
			c.Add(context.Background(), 0)
		}
	}
	in.fsyncs, errs[5] = m.Int64Counter("srsproxy_queue_fsyncs",
		metric.WithDescription("Fsyncs of the queue log."))
	depth, errs[6] = m.Int64ObservableGauge("srsproxy_queue_depth",
		metric.WithDescription("Undrained reviews."), metric.WithUnit("{review}"))
	size, errs[7] = m.Int64ObservableGauge("srsproxy_queue_bytes",
		metric.WithDescription("Log bytes of the undrained reviews."), metric.WithUnit("By"))
	age, errs[8] = m.Float64ObservableGauge("srsproxy_queue_oldest_age_seconds",
		metric.WithDescription("Age of the oldest undrained review."), metric.WithUnit("s"))
	held, errs[10] = m.Int64ObservableGauge("srsproxy_queue_held",
		metric.WithDescription("Entries awaiting Release or Cancel (unsettled ones after a restart included)."), metric.WithUnit("{review}"))
	stalled, errs[11] = m.Int64ObservableGauge("srsproxy_queue_stalled",
		metric.WithDescription("1 when reviews wait and the drainer made no progress for the stall threshold."))
	wrote, errs[12] = m.Int64ObservableGauge("srsproxy_queue_writable",
		metric.WithDescription("1 when the queue accepts reviews; 0 when its disk refuses writes or the log failed."))
	in.reg, errs[9] = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(depth, int64(s.Depth))
		o.ObserveInt64(size, s.Bytes)
		o.ObserveFloat64(age, s.OldestAge.Seconds())
		o.ObserveInt64(held, int64(s.Held))
		o.ObserveInt64(stalled, boolGauge(s.Stalled))
		o.ObserveInt64(wrote, boolGauge(health() == nil))
		return nil
	}, depth, size, age, held, stalled, wrote)
	return in, errors.Join(errs[:]...)
}

func boolGauge(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (in instruments) recordBatch(n int, took time.Duration) {
	in.batchSize.Record(context.Background(), int64(n))
	in.latency.Record(context.Background(), took.Seconds())
}
