package engine

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// engineMetrics are the engine's instruments.
type engineMetrics struct {
	hit, miss      metric.MeasurementOption // attribute sets of cacheReads
	cacheReads     metric.Int64Counter
	loads          metric.Int64Counter
	safeServed     metric.Int64Counter
	safeRejections metric.Int64Counter
	reconciled     metric.Int64Counter
	discrepancies  metric.Int64Counter
}

func newEngineMetrics(m metric.Meter) (engineMetrics, error) {
	var em engineMetrics
	var err error
	em.hit = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "hit")))
	em.miss = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "miss")))
	if em.cacheReads, err = m.Int64Counter("srsproxy_cache_reads",
		metric.WithDescription("cache reads of a user-season by result: hit, or miss (followed by a lazy load)")); err != nil {
		return em, err
	}
	if em.loads, err = m.Int64Counter("srsproxy_cache_lazy_loads",
		metric.WithDescription("user-seasons loaded from MariaDB into the cache")); err != nil {
		return em, err
	}
	if em.safeServed, err = m.Int64Counter("srsproxy_safe_mode_requests",
		metric.WithDescription("requests served from MariaDB while the breaker was not closed")); err != nil {
		return em, err
	}
	if em.safeRejections, err = m.Int64Counter("srsproxy_safe_mode_rejections",
		metric.WithDescription("SRS.DUE requests refused by Safe Mode's rate limits")); err != nil {
		return em, err
	}
	if em.reconciled, err = m.Int64Counter("srsproxy_reconcile_cards",
		metric.WithDescription("cached cards compared with MariaDB by reconciliation")); err != nil {
		return em, err
	}
	em.discrepancies, err = m.Int64Counter("srsproxy_reconcile_discrepancies",
		metric.WithDescription("cached cards found older than or different from MariaDB (corrected from it)"))
	return em, err
}

// healthMetrics registers srsproxy_degraded{dependency}: 1 while the
// sidecar serves without that dependency (redis: Safe Mode; mariadb: its
// health probe fails), else 0. Alert on it; /readyz stays ready meanwhile.
func (e *Engine) healthMetrics(m metric.Meter) error {
	redis := metric.WithAttributeSet(attribute.NewSet(attribute.String("dependency", "redis")))
	mariadb := metric.WithAttributeSet(attribute.NewSet(attribute.String("dependency", "mariadb")))
	_, err := m.Int64ObservableGauge("srsproxy_degraded",
		metric.WithDescription("1 while the sidecar serves without a dependency (redis: Safe Mode; mariadb: health probe failing), else 0"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			d := e.Degraded()
			o.Observe(b2i(d.Redis), redis)
			o.Observe(b2i(d.MariaDB), mariadb)
			return nil
		}))
	if err != nil {
		return err
	}
	return e.admissionMetrics(m)
}

// admissionMetrics registers srsproxy_shed{reason} (exported as
// srsproxy_shed_total): cache calls refused by admission control with
// TRYAGAIN instead of queueing on the pool, by reason (queue_full, wait,
// pool); and srsproxy_upstream_in_flight, the calls holding a slot.
func (e *Engine) admissionMetrics(m metric.Meter) error {
	var reasons [shedReasons]metric.ObserveOption
	for i, name := range shedReasonNames {
		reasons[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", name)))
	}
	adm := e.safe.cfg.Admission
	_, err := m.Int64ObservableCounter("srsproxy_shed",
		metric.WithDescription("upstream calls refused by admission control (TRYAGAIN, nothing sent to Redis, not a breaker failure), by reason"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for i := range adm.shed {
				o.Observe(adm.shed[i].Load(), reasons[i])
			}
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = m.Int64ObservableGauge("srsproxy_upstream_in_flight",
		metric.WithDescription("upstream Redis calls in flight (bounded by admission control, sized to the pool)"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(len(adm.slots)))
			return nil
		}))
	return err
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
