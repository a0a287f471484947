package main

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

// trackingMetrics registers the client-side caching figures
// (docs/TRACKING.md): tracking connections, tracked players, invalidations
// sent, and whether the Redis watcher can vouch for cached replies (while it
// cannot, every tracked reply is invalidated at once).
func (m *Main) trackingMetrics() error {
	meter := m.tel.Meter
	clients, err := meter.Int64ObservableGauge("srsproxy_tracking_clients",
		metric.WithDescription("client connections with CLIENT TRACKING on"))
	if err != nil {
		return err
	}
	keys, err := meter.Int64ObservableGauge("srsproxy_tracking_keys",
		metric.WithDescription("players in the client-tracking table"))
	if err != nil {
		return err
	}
	sent, err := meter.Int64ObservableCounter("srsproxy_tracking_invalidations",
		metric.WithDescription("invalidation messages sent to tracking clients"))
	if err != nil {
		return err
	}
	up, err := meter.Int64ObservableGauge("srsproxy_tracking_watcher_up",
		metric.WithDescription("1 while the Redis watcher is subscribed to invalidations; 0: tracked replies are invalidated at once"))
	if err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := m.server.Tracking()
		o.ObserveInt64(clients, st.Clients)
		o.ObserveInt64(keys, st.Keys)
		o.ObserveInt64(sent, st.Invalidations)
		v := int64(0)
		if m.watcher.Up() {
			v = 1
		}
		o.ObserveInt64(up, v)
		return nil
	}, clients, keys, sent, up)
	return err
}
