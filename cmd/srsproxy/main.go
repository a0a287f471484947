// Command srsproxy is the SRS sidecar: a RESP server in front of an upstream
// Redis and MariaDB that schedules reviews with FSRS-6. `srsproxy audit`
// checks a store against a list of acknowledged reviews.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	rcache "github.com/srsproxy/srsproxy/backend/redis"
	"github.com/srsproxy/srsproxy/commands"
	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/internal/dirtyset"
	"github.com/srsproxy/srsproxy/internal/health"
	"github.com/srsproxy/srsproxy/internal/statuspage"
	"github.com/srsproxy/srsproxy/proxy"
	"github.com/srsproxy/srsproxy/safemode"
	"github.com/srsproxy/srsproxy/srs"
	"github.com/srsproxy/srsproxy/telemetry"
	"github.com/srsproxy/srsproxy/writebehind"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "0.1.0-dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "audit" {
		os.Exit(runAudit(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "queue" {
		os.Exit(runQueue(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "import" {
		os.Exit(runImport(os.Args[2:], os.Stdout, os.Stderr))
	}
	m := &Main{}
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "srsproxy:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		m.Log.Error("start failed", "err", err)
		m.Close()
		os.Exit(1)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for done := false; !done; {
		select {
		case <-hup:
			m.ReloadUsers()
		case <-ctx.Done():
			done = true
		}
	}
	signal.Stop(hup)
	m.Log.Info("shutting down")
	if err := m.Close(); err != nil {
		m.Log.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

// Main is the wired sidecar: ParseFlags, Run, then Close.
type Main struct {
	Config Config
	Log    *slog.Logger

	store   *mariadb.Store
	replica *mariadb.Store // --mysql-replica; nil without one
	queue   *writebehind.Queue
	dirty   *dirtyset.Set // users written without the cache, kept across restarts
	// prepareDone stops the background schema preparation of a start with
	// MariaDB down; prepared is closed when it has ended.
	prepareDone, prepared chan struct{}
	cache                 *rcache.Cache
	watcher               *rcache.Watcher // tells tracking clients of changes made through other sidecars
	engine                *engine.Engine
	alerter               *safemode.Alerter
	tel                   *telemetry.Telemetry
	server                *proxy.Server
	admin                 *http.Server
	page                  *statuspage.Page // the status page at / on the admin listener
	done                  chan error
	started               time.Time
	drain                 health.DrainWatch // SRS.STATUS drain_stalled; the zero value is ready
}

// ParseFlags reads the configuration from args and the environment.
func (m *Main) ParseFlags(args []string) error {
	cfg, err := ParseConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	m.Config = cfg
	return nil
}

func newLogger(c Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// journal adapts the write-behind queue's ticket type to the engine.
type journal struct{ *writebehind.Queue }

func (j journal) Hold(r srs.Review) (uint64, error) {
	t, err := j.Queue.Hold(r)
	return uint64(t), err
}

func (j journal) Append(r srs.Review) (uint64, error) {
	t, err := j.Queue.Append(r)
	return uint64(t), err
}

func (j journal) Release(t uint64) error { return j.Queue.Release(writebehind.Ticket(t)) }
func (j journal) Cancel(t uint64) error  { return j.Queue.Cancel(writebehind.Ticket(t)) }

func (j journal) Unsettled() map[uint64]srs.Review {
	out := map[uint64]srs.Review{}
	for t, r := range j.Queue.Unsettled() {
		out[uint64(t)] = r
	}
	return out
}
func (j journal) Wait(ctx context.Context, t uint64) error {
	return j.Queue.Wait(ctx, writebehind.Ticket(t))
}

// Run opens the store, the queue and the cache, then starts serving. It
// returns once the listeners are up; Close shuts everything down in order.
func (m *Main) Run(ctx context.Context) (err error) {
	c := m.Config.withDefaults()
	m.started = time.Now()
	if m.Log == nil {
		m.Log = newLogger(c)
	}
	if m.tel, err = telemetry.New(ctx, "srsproxy", Version); err != nil {
		return err
	}
	m.page = m.newStatusPage()
	// The TLS files are read before anything is opened: a bad one stops the start.
	listenerTLS, err := serverTLS(c)
	if err != nil {
		return err
	}
	upstreamTLS, err := redisTLS(c)
	if err != nil {
		return err
	}
	dsn, err := mysqlDSN(c)
	if err != nil {
		return err
	}
	deferredStore, err := m.openStore(ctx, dsn)
	if err != nil {
		return err
	}
	var replica engine.Replica
	if c.MySQLReplica != "" {
		replicaDSN, err := mysqlTLS(c, "--mysql-replica", c.MySQLReplica)
		if err != nil {
			return err
		}
		if m.replica, err = mariadb.OpenReplica(replicaDSN, m.Log); err != nil {
			return fmt.Errorf("mysql replica: %w", err)
		}
		if err := m.replica.Ping(ctx); err != nil {
			m.Log.Warn("mysql replica not reachable at start; Safe Mode reads fall back to the primary while it is down", "err", err)
		}
		replica = m.replica
	}
	fsync := writebehind.FsyncAlways
	if c.Fsync == "interval" {
		fsync = writebehind.FsyncInterval
	}
	if err := checkQueueDir(c.QueueDir, c.queueDirDefault); err != nil {
		return err
	}
	m.queue, err = writebehind.Open(writebehind.Config{
		Dir: c.QueueDir, Fsync: fsync, FsyncInterval: c.FsyncInterval, MaxBytes: c.QueueMaxBytes, MaxMemory: c.QueueMaxMemory,
		Logger: m.Log, Meter: m.tel.Meter,
	})
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if m.dirty, err = dirtyset.Open(c.QueueDir); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := m.diskMetrics(c.QueueDir); err != nil {
		return err
	}
	cacheOpts := rcache.Options{
		Addrs: c.Redis, Cluster: c.RedisCluster, Username: c.RedisUsername, Password: c.RedisPassword, TLS: upstreamTLS,
		Prefix: c.RedisPrefix, TTL: c.CacheTTL,
		ReadTimeout: c.RedisTimeout, WriteTimeout: c.RedisTimeout, DialTimeout: 2 * c.RedisTimeout, PoolSize: c.RedisPoolSize,
		NearCacheBytes: int64(c.NearCacheMB) << 20,
	}
	m.cache, err = rcache.New(cacheOpts)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if err := m.cache.LoadScripts(ctx); err != nil {
		m.Log.Warn("upstream redis not reachable at start; scripts load on first use", "err", err)
	}
	m.alerter = safemode.NewAlerter(safemode.AlerterConfig{URL: c.AlertWebhook, Sidecar: c.SidecarID, Logger: m.Log})
	m.alerter.Start(context.WithoutCancel(ctx))
	maxWait := c.SafeWait
	if maxWait == 0 {
		maxWait = -1 // the limiter's "no waiting"
	}
	limiter := safemode.NewLimiter(safemode.LimiterConfig{PerMinute: c.SafeRPM, UserInterval: c.SafeUserInterval, MaxWait: maxWait})
	m.engine, err = engine.New(m.cache, m.store, journal{m.queue}, engine.Config{
		Sidecar: c.SidecarID, Logger: m.Log, Meter: m.tel.Meter, Retention: c.Retention, Replica: replica, Dirty: m.dirty,
		OnAlert: func(event, text string) {
			m.Log.Error(text, "event", event)
			m.alerter.Alert(event, text)
		},
		SafeMode: engine.SafeModeConfig{
			Failures: uint32(c.BreakerFailures), OpenFor: c.BreakerOpen, Top: c.SafeTop, Limiter: limiter,
			Unavailable: rcache.IsUnavailable, Timeout: rcache.IsTimeout, Ping: m.cache.Ping, OnChange: m.safeModeChanged,
			OnStoreBack: func() { m.queue.Kick() }, // drain at once when MariaDB is back
			// Overload is not an outage: as many upstream calls as pooled connections, then TRYAGAIN.
			Admission: engine.NewAdmission(engine.AdmissionConfig{MaxInFlight: c.RedisPoolSize, Overloaded: rcache.IsOverloaded}),
		},
	})
	if err != nil {
		return err
	}
	m.store.SetOnRecompute(m.engine.Recomputed)
	// Recovered entries may or may not have reached the cache before the
	// last process stopped: bring their cached cards up to date, then drain
	// (each drained batch catches the cache up: Engine.DrainTo).
	m.engine.Recover(ctx, m.queue.PendingUsers())
	m.queue.Start(context.WithoutCancel(ctx), m.engine.DrainTo(m.store))
	m.engine.Start(context.WithoutCancel(ctx))
	if deferredStore {
		m.prepareWhenBack()
	} else if err := m.engine.Resume(ctx); err != nil {
		m.Log.Warn("resume background jobs", "err", err)
	}
	m.engine.StartScheduler(context.WithoutCancel(ctx), m.tasks(c), time.Minute)

	pass, err := requirePass(c)
	if err != nil {
		return err
	}
	pcfg := proxy.Config{Addr: c.Listen, RequirePass: pass, Version: Version, Logger: m.Log,
		MaxClients: maxClients(c, m.Log.Warn), MaxMemoryClients: maxMemoryClients(c),
		TrackingMaxKeys: c.TrackingMaxKeys, TrackingMaxAge: c.TrackingMaxAge}
	if c.Users != "" {
		if pcfg.Users, err = proxy.LoadUsers(c.Users); err != nil {
			return fmt.Errorf("--users: %w", err)
		}
	}
	mux := proxy.NewMux()
	err = commands.Register(mux, m.engine, commands.Options{Logger: m.Log, Meter: m.tel.Meter, Tracer: m.tel.Tracer, Status: m.status,
		Watch: func(ctx context.Context, season, player string) error { return m.watcher.Watch(ctx, season, player) }})
	if err != nil {
		return err
	}
	if m.server, err = proxy.NewServer(pcfg, mux); err != nil {
		return err
	}
	m.watcher = rcache.NewWatcher(cacheOpts, m.server.Invalidate, m.server.InvalidateAll, m.Log)
	if err := m.trackingMetrics(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if listenerTLS != nil {
		ln = tls.NewListener(ln, listenerTLS)
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.server.Serve(ln) }()
	if c.AdminListen != "off" {
		if err := m.startAdmin(c.AdminListen); err != nil {
			return err
		}
	}
	m.Log.Info("srsproxy serving", "listen", ln.Addr().String(), "redis", c.Redis, "redis_cluster", c.RedisCluster || len(c.Redis) > 1,
		"mysql_replica", c.MySQLReplica != "", "queue", c.QueueDir,
		"fsync", c.Fsync, "sidecar", c.SidecarID, "version", Version, "tracing", m.tel.Tracing())
	return nil
}

// openStore opens MariaDB and migrates its schema. When the server cannot
// be reached (down, or stalled past mariadb.PrepareConnectTimeout), the sidecar starts anyway
// (deferred true): cached students are served and reviews queued, and
// prepareWhenBack prepares the schema once MariaDB answers (the drainer
// retries meanwhile). A refusal (bad credentials, a malformed DSN) stops the
// start.
func (m *Main) openStore(ctx context.Context, dsn string) (deferred bool, err error) {
	st, err := mariadb.OpenDeferred(dsn, m.Log)
	if err != nil {
		return false, fmt.Errorf("mysql: %w", err)
	}
	m.store = st
	switch err = st.Prepare(ctx); {
	case err == nil:
		return false, nil
	case !mariadb.IsUnreachable(err):
		return false, fmt.Errorf("mysql: %w%s", err, plainRefusalHint(dsn, err))
	}
	m.Log.Warn("MariaDB unreachable at start: serving cached students and queueing reviews; the schema is prepared when it answers", "err", err)
	return true, nil
}

// prepareWhenBack retries the schema preparation of a start with MariaDB
// down every 2 s until it succeeds (then resumes the background jobs and
// kicks the drainer) or Close stops it.
func (m *Main) prepareWhenBack() {
	m.prepareDone, m.prepared = make(chan struct{}), make(chan struct{})
	store, eng, queue, done, prepared := m.store, m.engine, m.queue, m.prepareDone, m.prepared
	go func() {
		defer close(prepared)
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Second):
			}
			ctx, cancel := context.WithTimeout(context.Background(), mariadb.DefaultLongTimeout)
			err := store.Prepare(ctx)
			if err == nil {
				m.Log.Info("MariaDB answers: schema prepared; draining")
				queue.Kick()
				if err := eng.Resume(ctx); err != nil {
					m.Log.Warn("resume background jobs", "err", err)
				}
			}
			cancel()
			if err == nil {
				return
			}
			m.Log.Debug("MariaDB still unreachable", "err", err)
		}
	}()
}

// ReloadUsers reads --users again and applies it to new logins (SIGHUP).
// A file that does not load is logged and the current users stay.
func (m *Main) ReloadUsers() {
	path := m.Config.Users
	if path == "" {
		m.Log.Warn("SIGHUP: no --users file to reload")
		return
	}
	users, err := proxy.LoadUsers(path)
	if err == nil {
		err = m.server.SetUsers(users)
	}
	if err != nil {
		m.Log.Error("SIGHUP: users file not reloaded; the current users stay", "file", path, "err", err)
		return
	}
	m.Log.Info("SIGHUP: users file reloaded", "file", path, "users", len(users))
}

// tasks are the cluster-wide periodic jobs: each runs once per period on
// whichever sidecar takes its MariaDB lock.
func (m *Main) tasks(c Config) []engine.Task {
	return []engine.Task{
		{Name: "retention", Every: 24 * time.Hour, Run: func(ctx context.Context) (string, error) {
			flagged, err := m.engine.FlagRetention(ctx)
			return fmt.Sprintf("flagged eligible for deletion: %v", flagged), err
		}},
		{Name: "auto-archive", Every: 24 * time.Hour, Run: func(ctx context.Context) (string, error) {
			archived, err := m.engine.AutoArchive(ctx)
			return fmt.Sprintf("archived: %v", archived), err
		}},
		{Name: "reconcile", Every: c.ReconcileEvery, Run: func(ctx context.Context) (string, error) {
			rep, err := m.engine.Reconcile(ctx, "", c.ReconcileSample)
			return fmt.Sprintf("%+v", rep), err
		}},
	}
}

// safeModeChanged tells operators at once: an ERROR log line and a webhook
// alert (the metric is the engine's srsproxy_safe_mode gauge).
func (m *Main) safeModeChanged(entered bool, since time.Time) {
	c := m.Config.withDefaults()
	m.page.SafeModeChanged(entered, since)
	if entered {
		cause := m.engine.LastCacheFailure()
		m.Log.Error("SAFE MODE entered: upstream Redis unavailable; SRS.DUE served from MariaDB under rate limits",
			"sidecar", c.SidecarID, "redis", c.Redis, "since", since, "cause", cause)
		m.alerter.Alert("safe_mode_entered", fmt.Sprintf(":rotating_light: srsproxy %s entered Safe Mode at %s: upstream Redis %v unavailable (%s); SRS.DUE is served from MariaDB (top %d, %d req/min).",
			c.SidecarID, since.UTC().Format(time.RFC3339), c.Redis, cause, c.SafeTop, c.SafeRPM))
		return
	}
	m.Log.Error("SAFE MODE left: upstream Redis is back; stale cache entries invalidated",
		"sidecar", c.SidecarID, "lasted", time.Since(since).Round(time.Millisecond))
	m.alerter.Alert("safe_mode_left", fmt.Sprintf(":white_check_mark: srsproxy %s left Safe Mode after %s; serving from Redis again.",
		c.SidecarID, time.Since(since).Round(time.Second)))
}

// statusBudget bounds the whole of SRS.STATUS, and statusPartTimeout each
// part of it that asks MariaDB (Redis parts use --redis-timeout); a part
// that runs out is reported in the errors field.
const (
	statusBudget      = 900 * time.Millisecond
	statusPartTimeout = 500 * time.Millisecond
)

// status gathers SRS.STATUS. It always answers: each part that does I/O has
// its own short deadline, and a part that fails or times out is reported in
// the errors field with the rest of the status, never as a failed command.
func (m *Main) status(ctx context.Context) (commands.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, statusBudget)
	defer cancel()
	c := m.Config.withDefaults()
	st := m.localStatus()
	deg := m.engine.Degraded()
	part := func(name string, timeout time.Duration, fn func(context.Context) error) bool {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := fn(pctx); err != nil {
			st.Errors[name] = err.Error()
			return false
		}
		return true
	}
	st.RedisConnected = part("redis", c.RedisTimeout, m.cache.Ping)
	if !st.RedisConnected {
		return st, nil
	}
	part("cache_memory", c.RedisTimeout, func(ctx context.Context) (err error) {
		st.CacheMemory, err = m.cache.MemoryUsed(ctx)
		if err != nil {
			st.CacheMemory = -1
		}
		return err
	})
	var names []string
	if deg.MariaDB { // do not wait on a MariaDB the probe sees down
		st.Errors["seasons"] = "MariaDB is unavailable"
		return st, nil
	}
	if !part("seasons", statusPartTimeout, func(ctx context.Context) error {
		seasons, err := m.store.Seasons(ctx)
		for _, s := range seasons {
			names = append(names, s.Name)
		}
		return err
	}) {
		return st, nil
	}
	// On a cluster a shard may be down (failing over) while PING, sent to
	// one node, answers: report the rest rather than fail the command.
	part("cached_users", 4*c.RedisTimeout, func(ctx context.Context) (err error) {
		st.CachedUsers, err = m.cache.CachedUsers(ctx, names)
		if err != nil {
			st.CachedUsers = nil
		}
		return err
	})
	return st, nil
}

// localStatus is the part of SRS.STATUS known without I/O.
func (m *Main) localStatus() commands.Status {
	q := m.queue.Stats()
	deg := m.engine.Degraded()
	_, stalled := m.drain.Observe(time.Now(), q.Drained, q.Depth, q.OldestAge)
	near := m.cache.NearStats()
	return commands.Status{
		BreakerState: m.engine.BreakerState(), SafeModeSince: m.engine.SafeModeSince(),
		DegradedRedis: deg.Redis, DegradedMariaDB: deg.MariaDB,
		QueueDepth: q.Depth, QueueBytes: q.Bytes, QueueOldest: q.OldestAge, DrainLag: q.LastDrainLag,
		DrainOldest: q.OldestAge, DrainStalled: stalled,
		Drained: q.Drained, DeadLetters: q.DeadLetters, CacheMemory: -1,
		NearUsers: near.Users, NearBytes: near.Bytes, NearHits: near.Hits, NearMisses: near.Misses,
		Version: Version, Uptime: time.Since(m.started), Sidecar: m.Config.withDefaults().SidecarID,
		Errors: map[string]string{},
	}
}

// Addr is the RESP listen address (useful with port 0).
func (m *Main) Addr() string { return m.server.Addr().String() }

// startAdmin serves the HTTP admin endpoints: /healthz (the process
// answers), /readyz (it can serve cached reads and take durable reviews),
// /metrics and the profiles.
func (m *Main) startAdmin(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/metrics", m.tel.Metrics)
	m.page.Register(mux) // the status page at /
	// Profiles of the hot path (srsbench fetches CPU profiles under load).
	if m.Config.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	}
	// queueHealth reports whether the queue can take reviews now: its disk
	// writes (*srs.QueueDiskError, a failed log) and its cap (srs.ErrQueueFull
	// when less than the room for a few reviews is left).
	queueHealth := func() error {
		if err := m.queue.Health(); err != nil {
			return err
		}
		const headroom = 16 << 10
		if q, limit := m.queue.Stats(), m.Config.withDefaults().QueueMaxBytes; q.Bytes+headroom > limit {
			return fmt.Errorf("%w (%d of %d bytes undrained)", srs.ErrQueueFull, q.Bytes, limit)
		}
		return nil
	}
	// Ready = serving: the RESP listener is up and the queue takes reviews,
	// so cached reads and durable reviews work. A dependency that is down
	// (Redis: Safe Mode; MariaDB: cached students only, reviews queued)
	// degrades the sidecar but does not make it unready — every sidecar of
	// the fleet shares those dependencies, and pulling them all would turn
	// a degraded service into an outage. Degradation is in the body, in
	// srsproxy_degraded and in SRS.STATUS. No I/O: it answers at once.
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if m.server == nil || m.engine == nil || m.queue == nil {
			http.Error(w, "not ready: starting", http.StatusServiceUnavailable)
			return
		}
		if err := queueHealth(); err != nil {
			http.Error(w, "not ready: queue: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		msg := "ready"
		d := m.engine.Degraded()
		if d.Redis {
			msg += " (safe mode: serving from MariaDB)"
		}
		if d.MariaDB {
			msg += " (degraded: MariaDB unavailable; cached students served, reviews queued)"
		}
		fmt.Fprintln(w, msg)
	})
	// A drain that stopped making progress is visible to alerts (DESIGN
	// invariant 8); each scrape is also a look for the DrainWatch.
	if _, err := m.tel.Meter.Int64ObservableGauge("srsproxy_drain_stalled",
		metric.WithDescription("1 while reviews wait and the drain has made no progress for over 30 s"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			q := m.queue.Stats()
			v := int64(0)
			if _, stalled := m.drain.Observe(time.Now(), q.Drained, q.Depth, q.OldestAge); stalled {
				v = 1
			}
			o.Observe(v)
			return nil
		})); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--admin-listen: %w", err)
	}
	m.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go m.admin.Serve(ln)
	m.page.Start(context.Background())
	return nil
}

// Close shuts down in order: stop accepting and finish in-flight commands,
// drain the queue for at most ShutdownTimeout (the rest stays on disk for the
// next start), then close the cache and the store.
func (m *Main) Close() error {
	timeout := m.Config.withDefaults().ShutdownTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if m.admin != nil {
		errs = append(errs, m.admin.Shutdown(ctx))
		m.page.Stop()
	}
	if m.server != nil {
		errs = append(errs, m.server.Shutdown(ctx))
		if err := <-m.done; err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if m.prepareDone != nil {
		close(m.prepareDone)
		<-m.prepared
		m.prepareDone = nil
	}
	if m.engine != nil {
		m.engine.Stop()
	}
	if m.dirty != nil {
		errs = append(errs, m.dirty.Close())
	}
	if m.queue != nil {
		if err := m.queue.Flush(ctx); err != nil {
			m.Log.Warn("queue not fully drained at shutdown; the rest is kept on disk", "err", err, "pending", m.queue.Stats().Depth)
		}
		errs = append(errs, m.queue.Close())
	}
	if m.watcher != nil {
		errs = append(errs, m.watcher.Close())
	}
	if m.cache != nil {
		errs = append(errs, m.cache.Close())
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
	}
	if m.replica != nil {
		errs = append(errs, m.replica.Close())
	}
	if m.alerter != nil {
		m.alerter.Stop()
	}
	if m.tel != nil {
		errs = append(errs, m.tel.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
