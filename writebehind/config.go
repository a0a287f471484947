package writebehind

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// FsyncMode says when an appended entry counts as durable.
type FsyncMode int

const (
	// FsyncAlways (the default) makes Wait return only after an fsync that
	// covers the entry. Concurrent appends share one fsync (group commit).
	FsyncAlways FsyncMode = iota
	// FsyncInterval fsyncs every Config.FsyncInterval and lets Wait return at
	// once. A power loss or kernel crash can lose the reviews acknowledged
	// in the last interval; a killed process loses nothing, because its
	// writes are already in the page cache.
	FsyncInterval
)

// Config configures a Queue. The zero value of every field but Dir means its default.
type Config struct {
	Dir            string        // queue directory, created if missing; required
	Fsync          FsyncMode     // default FsyncAlways
	FsyncInterval  time.Duration // fsync period under FsyncInterval; default 100ms
	MaxBytes       int64         // cap on undrained bytes; at the cap Append returns srs.ErrQueueFull; default 1 GiB
	MaxMemory      int64         // cap on the in-memory index's estimated heap; at the cap Append returns srs.ErrQueueFull; default 256 MiB
	BatchSize      int           // max reviews per drain batch (ApplyReviews call); default 2000
	BatchWait      time.Duration // max wait to fill a batch; default 20ms
	RetryMin       time.Duration // shortest backoff after a store error; default 50ms
	RetryMax       time.Duration // longest backoff after a store error; default 10s
	DeadLetterPath string        // JSON lines of rejected reviews; default Dir/deadletter.jsonl
	Logger         *slog.Logger  // default discards
	Meter          metric.Meter  // default noop
	Now            func() time.Time
	// StallAfter is how long entries may wait with no drain progress before
	// Stats.Stalled says so; default 30s.
	StallAfter time.Duration
	// FS is the file layer; nil means the operating system's (OSFS).
	FS FS

	segmentSize int64         // bytes after which the log starts a new segment file; default 64 MiB
	tailReclaim int64         // a fully drained tail this big is replaced by an empty segment; default 1 MiB
	reserveSize int64         // bytes kept in the reserve file for settle records on a full disk; default 64 KiB
	diskProbe   time.Duration // how often a disk that refuses writes is tried; default 1s
}

// Validate reports every invalid field, each error naming it.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("writebehind: Config.Dir is required"))
	}
	if c.Fsync != FsyncAlways && c.Fsync != FsyncInterval {
		errs = append(errs, fmt.Errorf("writebehind: Config.Fsync: unknown mode %d", c.Fsync))
	}
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"FsyncInterval", int64(c.FsyncInterval)},
		{"MaxBytes", c.MaxBytes},
		{"MaxMemory", c.MaxMemory},
		{"StallAfter", int64(c.StallAfter)},
		{"BatchSize", int64(c.BatchSize)},
		{"BatchWait", int64(c.BatchWait)},
		{"RetryMin", int64(c.RetryMin)},
		{"RetryMax", int64(c.RetryMax)},
	} {
		if f.value < 0 {
			errs = append(errs, fmt.Errorf("writebehind: Config.%s must not be negative", f.name))
		}
	}
	if d := c.withDefaults(); d.RetryMin > d.RetryMax {
		errs = append(errs, fmt.Errorf("writebehind: Config.RetryMin (%v) exceeds Config.RetryMax (%v)", d.RetryMin, d.RetryMax))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	c.FsyncInterval = cmp.Or(c.FsyncInterval, 100*time.Millisecond)
	c.MaxBytes = cmp.Or(c.MaxBytes, 1<<30)
	c.MaxMemory = cmp.Or(c.MaxMemory, 256<<20)
	c.StallAfter = cmp.Or(c.StallAfter, 30*time.Second)
	if c.FS == nil {
		c.FS = OSFS{}
	}
	// Measured with backend/mariadb's BenchmarkDrainBatchSizes (one batch of
	// each size in turn, srsbench's rows, 2-core machine, MariaDB 10.11 with
	// a 128 MB buffer pool). In one transaction (2026-12-03, before shards)
	// rows/s grew with the batch up to about 1000 and no further (50: 5,305,
	// 100: 6,793, 250: 7,476, 500: 7,957, 1000: 8,945, 2000: 8,957). Since
	// ApplyReviews splits a batch into up to 4 concurrent transactions of at
	// least 250 reviews (backend/mariadb.DefaultDrainShards), a batch needs
	// 2000 to give each about 500: on the machine shared with other work
	// (load 4–7), 100: 2,009, 250: 3,336, 500: 3,317, 1000: 4,833, 2000:
	// 5,538, 4000: 5,920. A batch's transactions, and so the time other
	// drainers wait for its card locks, grow with it (p50 about 250 ms at
	// 2000 on that loaded machine).
	// BatchWait only matters when fewer than BatchSize reviews are pending,
	// i.e. below the drain's capacity: 20ms bounds the latency it adds there,
	// and a backlog drains in full batches whatever it is.
	c.BatchSize = cmp.Or(c.BatchSize, 2000)
	c.BatchWait = cmp.Or(c.BatchWait, 20*time.Millisecond)
	c.RetryMin = cmp.Or(c.RetryMin, 50*time.Millisecond)
	c.RetryMax = cmp.Or(c.RetryMax, 10*time.Second)
	c.DeadLetterPath = cmp.Or(c.DeadLetterPath, filepath.Join(c.Dir, "deadletter.jsonl"))
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	if c.Meter == nil {
		c.Meter = noop.Meter{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.segmentSize = cmp.Or(c.segmentSize, 64<<20)
	c.tailReclaim = cmp.Or(c.tailReclaim, 1<<20)
	c.reserveSize = cmp.Or(c.reserveSize, 64<<10)
	c.diskProbe = cmp.Or(c.diskProbe, time.Second)
	return c
}
