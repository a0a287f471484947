package main

import (
	"context"
	"fmt"
	"syscall"

	"go.opentelemetry.io/otel/metric"
)

// diskMetrics registers the size and free space of the file system holding
// the queue directory (srsproxy_queue_disk_size_bytes and
// srsproxy_queue_disk_free_bytes, space available to the sidecar's user),
// read with statfs at each scrape, for the "disk nearly full" alert.
func (m *Main) diskMetrics(dir string) error {
	size, err := m.tel.Meter.Int64ObservableGauge("srsproxy_queue_disk_size_bytes",
		metric.WithDescription("size of the file system holding the queue directory"), metric.WithUnit("By"))
	if err != nil {
		return err
	}
	free, err := m.tel.Meter.Int64ObservableGauge("srsproxy_queue_disk_free_bytes",
		metric.WithDescription("bytes available to the sidecar on the file system holding the queue directory"), metric.WithUnit("By"))
	if err != nil {
		return err
	}
	_, err = m.tel.Meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", dir, err)
		}
		o.ObserveInt64(size, int64(st.Blocks)*st.Bsize)
		o.ObserveInt64(free, int64(st.Bavail)*st.Bsize)
		return nil
	}, size, free)
	return err
}
