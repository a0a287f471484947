package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// bench is one run of the benchmark: the processes it started, the
// connections it holds and the report it fills in.
type bench struct {
	o   Options
	ctx context.Context
	dir string // temp dir: queues, logs, redis dirs

	dsn    *mysql.Config
	admin  *sql.DB // the benchmark database, for seeding and counts
	baseDB *sql.DB // the MariaDB baseline's pool

	redis, twem, sidecar *proc
	redisAddr, twemAddr  string
	// aof is a private redis-server with appendfsync always: the anchor of
	// durable reviews (HSET acknowledged after its fsync).
	aof     *proc
	aofAddr string
	// mariaGate sits between the sidecar and MariaDB (gate.go).
	mariaGate   *gate
	sidecarAddr string
	adminAddr   string
	sidecarArgs []string

	rep     *Report
	seasons []*dataset
	noPprof bool

	hasArchive, hasRebuild bool  // the sidecar has SRS.ARCHIVE, SRS.REBUILD + SRS.JOB (issue 5)
	safe                   *proc // the Safe Mode sidecar while it runs
	mariadbPid             int
	failed                 bool // keep the temp dir with the logs
}

// Run runs the whole benchmark and returns its report. Every process it
// starts is stopped before it returns.
func Run(ctx context.Context, o Options) (_ *Report, err error) {
	started := time.Now()
	b := &bench{o: o, ctx: ctx, rep: &Report{Date: started.UTC().Format(time.RFC3339), Profile: o.Profile}}
	defer func() {
		b.failed = err != nil
		b.cleanup()
	}()
	if err := b.setup(); err != nil {
		return nil, err
	}
	var primary *dataset
	for _, sc := range o.Scales {
		ds, err := b.seedScale(sc)
		if err != nil {
			return nil, err
		}
		if err := b.scaleRuns(sc, ds); err != nil {
			return nil, err
		}
		if sc.Full {
			primary = ds
		}
	}
	if err := b.systemFigures(primary); err != nil {
		return nil, err
	}
	b.rep.Seconds = time.Since(started).Seconds()
	b.rep.evaluate(o)
	return b.rep, nil
}

func (b *bench) setup() error {
	o := b.o
	var err error
	if b.dir, err = os.MkdirTemp("", "srsbench-"); err != nil {
		return err
	}
	nofile, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	if need := uint64(o.ConnsHigh) + 512; nofile < need {
		o.logf("srsbench: RLIMIT_NOFILE is %d, below the %d that %d connections need; runs may fail to connect", nofile, need, o.ConnsHigh)
	}
	b.rep.Machine = describeMachine()
	b.mariadbPid = findProcess("mariadbd", "mysqld")
	b.rep.Machine.NoFile = nofile
	if _, err := os.Stat(o.Bin); err != nil {
		return fmt.Errorf("sidecar binary %s: %w (run make build)", o.Bin, err)
	}

	// MariaDB: our own database, dropped and recreated.
	if b.dsn, err = mysql.ParseDSN(o.MySQL); err != nil {
		return fmt.Errorf("--mysql: %w", err)
	}
	if !strings.HasPrefix(b.dsn.DBName, "srsbench") {
		return fmt.Errorf("--mysql: the database name must start with srsbench (it is dropped), got %q", b.dsn.DBName)
	}
	root := *b.dsn
	root.DBName = ""
	rootDB, err := openDB(&root, 2)
	if err != nil {
		return err
	}
	defer rootDB.Close()
	ctx := b.ctx
	if changed, err := ensureLocalInfile(ctx, rootDB); err != nil {
		return err
	} else if changed {
		b.note("The MariaDB server had local_infile=OFF; the bench ran SET GLOBAL local_infile = 1 (a server-wide setting) for LOAD DATA LOCAL INFILE.")
	}
	if _, err := rootDB.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+b.dsn.DBName+"`"); err != nil {
		return fmt.Errorf("drop database %s: %w", b.dsn.DBName, err)
	}
	if err := rootDB.QueryRowContext(ctx, "SELECT VERSION()").Scan(&b.rep.Machine.MariaDB); err != nil {
		return err
	}
	var name string
	var pool int64
	if err := rootDB.QueryRowContext(ctx, "SHOW VARIABLES LIKE 'innodb_buffer_pool_size'").Scan(&name, &pool); err == nil {
		b.rep.Machine.InnoDBBufferPool = fmt.Sprintf("%d MiB", pool>>20)
	}

	// Redis: private, with the recommended settings, unless one is given.
	if o.Redis == "" {
		if b.redis, b.redisAddr, err = startRedis(b.dir, "redis", recommendedRedis...); err != nil {
			return fmt.Errorf("redis-server: %w", err)
		}
		b.rep.Params.RedisSettings = "private redis-server, no persistence, " + strings.Join(recommendedRedis, " ")
	} else {
		b.redisAddr = o.Redis
		b.rep.Params.RedisSettings = "existing server " + o.Redis + " (settings as found)"
	}
	if v, err := redisVersion(b.redisAddr); err == nil {
		b.rep.Machine.Redis = v
	}

	// The durable-write anchor: Redis fsyncing every write before it answers.
	if b.aof, b.aofAddr, err = startRedis(b.dir, "redis-aof", "--appendonly", "yes", "--appendfsync", "always"); err != nil {
		o.logf("srsbench: redis-server with appendfsync always did not start (%v): its baseline is skipped", err)
		b.note("Redis appendfsync-always baseline skipped: " + err.Error())
	}

	// twemproxy in front of the same Redis.
	if bin := o.nutcrackerPath(); bin == "" {
		o.logf("srsbench: nutcracker (twemproxy, Debian package nutcracker) is not installed: the twemproxy baseline is skipped. Install it with: apt-get install -y nutcracker")
		b.note("twemproxy baseline skipped: nutcracker is not installed (apt-get install -y nutcracker).")
	} else {
		b.rep.Machine.Twemproxy = nutcrackerVersion(bin)
		if b.twem, b.twemAddr, err = startTwemproxy(b.dir, bin, b.redisAddr); err != nil {
			o.logf("srsbench: twemproxy did not start (%v): its baseline is skipped", err)
			b.note("twemproxy baseline skipped: " + err.Error())
		}
	}

	// The sidecar: it creates the database and migrates the schema.
	if err := b.startSidecar(); err != nil {
		return err
	}
	if b.admin, err = openDB(b.dsn, 8); err != nil {
		return err
	}
	if b.baseDB, err = openDB(b.dsn, maxMariaConns); err != nil {
		return err
	}
	help, err := b.sidecarDo("SRS.HELP")
	if err != nil {
		return fmt.Errorf("SRS.HELP: %w", err)
	}
	helpText := fmt.Sprint(help)
	b.rep.System.Archive, b.rep.System.Rebuild = "n/a (issue 5)", "n/a (issue 5)"
	b.hasArchive = strings.Contains(helpText, "SRS.ARCHIVE")
	b.hasRebuild = strings.Contains(helpText, "SRS.REBUILD") && strings.Contains(helpText, "SRS.JOB")
	b.rep.Params.fill(o)
	b.rep.Params.SidecarFlags = strings.Join(b.sidecarArgs, " ")
	return nil
}

func openDB(cfg *mysql.Config, conns int) (*sql.DB, error) {
	c := *cfg
	c.InterpolateParams = true
	c.ParseTime = true
	conn, err := mysql.NewConnector(&c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

func (b *bench) note(s string) { b.rep.Notes = append(b.rep.Notes, s) }

// startSidecar runs bin/srsproxy against our database, Redis and prefix,
// with its queue in the temp dir and its admin listener on a free port.
func (b *bench) startSidecar() error {
	var err error
	if b.sidecarAddr, err = freeAddr(); err != nil {
		return err
	}
	if b.adminAddr, err = freeAddr(); err != nil {
		return err
	}
	if b.mariaGate == nil {
		if b.mariaGate, err = newGate(b.dsn.Addr); err != nil {
			return err
		}
	}
	viaGate := *b.dsn
	viaGate.Addr = b.mariaGate.addr()
	b.sidecarArgs = []string{"--mysql", viaGate.FormatDSN(), "--redis", b.redisAddr,
		"--redis-prefix", b.o.Prefix, "--queue-dir", filepath.Join(b.dir, "queue"),
		"--sidecar-id", "srsbench", "--log-level", "warn"}
	args := append([]string{"--listen", b.sidecarAddr, "--admin-listen", b.adminAddr, "--pprof"}, b.sidecarArgs...)
	if b.sidecar, err = startProc(b.dir, "srsproxy", b.o.Bin, args...); err != nil {
		return err
	}
	return waitRESP(b.sidecar, b.sidecarAddr, 60*time.Second)
}

// sidecarDo runs one command on a fresh connection to the sidecar.
func (b *bench) sidecarDo(args ...string) (any, error) {
	return doOnce(b.sidecarAddr, args...)
}

func doOnce(addr string, args ...string) (any, error) {
	c, err := dialRESP(addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.nc.SetDeadline(time.Now().Add(2 * time.Minute))
	return c.do(args...)
}

func (b *bench) cleanup() {
	if b.admin != nil {
		b.admin.Close()
	}
	if b.baseDB != nil {
		b.baseDB.Close()
	}
	b.sidecar.stop(30 * time.Second)
	b.mariaGate.close()
	b.twem.stop(5 * time.Second)
	b.aof.stop(5 * time.Second)
	if b.o.Redis != "" && b.redisAddr != "" {
		if err := deleteKeys(b.redisAddr, b.o.Prefix); err != nil {
			b.o.logf("srsbench: cleaning %s:* from %s: %v", b.o.Prefix, b.redisAddr, err)
		}
	}
	b.redis.stop(5 * time.Second)
	if b.dsn != nil && !b.o.Keep {
		root := *b.dsn
		root.DBName = ""
		if db, err := openDB(&root, 1); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+b.dsn.DBName+"`"); err != nil {
				b.o.logf("srsbench: drop database %s: %v", b.dsn.DBName, err)
			}
			cancel()
			db.Close()
		}
	}
	if b.dir != "" {
		if b.o.Keep || b.failed {
			b.o.logf("srsbench: logs and queues kept in %s", b.dir)
		} else {
			os.RemoveAll(b.dir)
		}
	}
}

// deleteKeys removes prefix:* from an existing Redis (SCAN + UNLINK).
func deleteKeys(addr, prefix string) error {
	c, err := dialRESP(addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	cursor := "0"
	for {
		v, err := c.do("SCAN", cursor, "MATCH", prefix+":*", "COUNT", "1000")
		if err != nil {
			return err
		}
		a, _ := v.([]any)
		if len(a) != 2 {
			return errors.New("SCAN: unexpected reply")
		}
		cursor, _ = a[0].(string)
		keys, _ := a[1].([]any)
		if len(keys) > 0 {
			args := []string{"UNLINK"}
			for _, k := range keys {
				args = append(args, fmt.Sprint(k))
			}
			if _, err := c.do(args...); err != nil {
				return err
			}
		}
		if cursor == "0" {
			return nil
		}
	}
}

// seedScale creates the season of a scale through the sidecar, loads its
// cards into MariaDB and its cached users into Redis.
func (b *bench) seedScale(sc scale) (*dataset, error) {
	o := b.o
	users := int(sc.Cards / int64(o.CardsPerUser))
	cached := min(int(float64(users)*o.CachedShare), o.MaxCached)
	cached = max(cached, 1)
	ds := newDataset("SEASON-2026-C"+label(sc.Cards), users, o.CardsPerUser, cached, time.Now().UnixMilli())
	b.seasons = append(b.seasons, ds)
	seed := SeedResult{Season: ds.Season, Cards: ds.Cards(), Users: users, CachedUsers: ds.Cached}

	t0 := time.Now()
	if _, err := b.sidecarDo("SRS.SEASON", "CREATE", ds.Season, "START", "2026-01-01", "END", "2027-12-31"); err != nil {
		return nil, fmt.Errorf("SRS.SEASON CREATE %s: %w", ds.Season, err)
	}
	seed.PartitionCreateMS = msSince(t0)
	if _, err := b.sidecarDo("SRS.SEASON", "ACTIVATE", ds.Season); err != nil {
		return nil, fmt.Errorf("SRS.SEASON ACTIVATE %s: %w", ds.Season, err)
	}

	o.logf("seed %s: %d users × %d cards = %d cards into MariaDB (LOAD DATA LOCAL INFILE)…", ds.Season, users, o.CardsPerUser, ds.Cards())
	t0 = time.Now()
	last := time.Now()
	err := seedMariaDB(b.ctx, b.admin, ds, o.SeedParallel, func(done int64) {
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			o.logf("  %d/%d rows, %.0f rows/s", done, ds.Cards(), float64(done)/time.Since(t0).Seconds())
		}
	})
	if err != nil {
		return nil, err
	}
	seed.MariaDBSeconds = time.Since(t0).Seconds()
	seed.RowsPerSecond = float64(ds.Cards()) / seed.MariaDBSeconds
	o.logf("  %.1fs, %.0f rows/s", seed.MariaDBSeconds, seed.RowsPerSecond)

	o.logf("seed %s: %d cached users into Redis through backend/redis Cache.Load…", ds.Season, ds.Cached)
	cache, err := newCache(b.redisAddr, o.Prefix)
	if err != nil {
		return nil, err
	}
	defer cache.Close()
	t0 = time.Now()
	if err := seedRedis(b.ctx, cache, ds, 0, ds.Cached, 4); err != nil {
		return nil, err
	}
	if err := seedAnchor(b.redisAddr, o.Prefix, ds); err != nil {
		return nil, fmt.Errorf("seed the raw Redis baseline's sorted sets: %w", err)
	}
	seed.RedisSeconds = time.Since(t0).Seconds()
	seed.RedisCardsPerSecond = float64(ds.Cached*ds.CardsPerUser) / seed.RedisSeconds
	o.logf("  %.1fs, %.0f cards/s", seed.RedisSeconds, seed.RedisCardsPerSecond)
	b.rep.Seeds = append(b.rep.Seeds, seed)

	// Memory per cached card with the settings in force (recommended on the
	// private server) and, on a second private server, with Redis defaults.
	if mf, err := measureMemory(b.redisAddr, o.Prefix, ds, sampleUsers(ds, 500)); err != nil {
		o.logf("srsbench: memory figure: %v", err)
	} else {
		mf.Settings = "recommended"
		if o.Redis != "" {
			mf.Settings = "as found on " + o.Redis
		}
		b.rep.System.Memory = append(b.rep.System.Memory, mf)
	}
	if mf, err := b.defaultsMemory(ds, 200); err != nil {
		o.logf("srsbench: memory figure with defaults: %v", err)
	} else {
		b.rep.System.Memory = append(b.rep.System.Memory, mf)
	}
	return ds, nil
}

// defaultsMemory loads a sample of users into a private redis-server with
// the default settings and measures them there.
func (b *bench) defaultsMemory(ds *dataset, n int) (MemoryFigure, error) {
	p, addr, err := startRedis(b.dir, "redis-defaults")
	if err != nil {
		return MemoryFigure{}, err
	}
	defer p.stop(5 * time.Second)
	cache, err := newCache(addr, b.o.Prefix)
	if err != nil {
		return MemoryFigure{}, err
	}
	defer cache.Close()
	users := sampleUsers(ds, n)
	for _, u := range users {
		if _, err := cache.Load(b.ctx, ds.Season, ds.player(u), ds.userCards(u)); err != nil {
			return MemoryFigure{}, err
		}
	}
	mf, err := measureMemory(addr, b.o.Prefix, ds, users)
	mf.Settings = "defaults"
	return mf, err
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// measure runs one load and records it.
func (b *bench) measure(ds *dataset, scenario, mode, target string, conns int, rate float64) (*RunResult, error) {
	var d driver
	switch target {
	case targetSidecar:
		d = &sidecarDriver{addr: b.sidecarAddr, ds: ds, scenario: scenario}
	case targetRedis:
		d = newRedisDriver(b.redisAddr, b.o.Prefix, ds)
	case targetTwemproxy:
		if b.twem == nil {
			return nil, nil
		}
		d = newRedisDriver(b.twemAddr, b.o.Prefix, ds)
	case targetRedisAOF:
		if b.aof == nil {
			return nil, nil
		}
		d = newAOFDriver(b.aofAddr, b.o.Prefix, ds)
	case targetMariaDB:
		b.baseDB.SetMaxOpenConns(min(conns, maxMariaConns))
		b.baseDB.SetMaxIdleConns(min(conns, maxMariaConns))
		d = &mariaDriver{db: b.baseDB, ds: ds, names: ds.cachedPlayers()}
	default:
		return nil, fmt.Errorf("unknown target %q", target)
	}
	return b.measureDriver(ds, d, scenario, mode, target, conns, rate)
}

func (b *bench) measureDriver(ds *dataset, d driver, scenario, mode, target string, conns int, rate float64) (*RunResult, error) {
	if mode != "open" {
		rate = 0
	}
	r := RunResult{Cards: ds.Cards(), Scenario: scenario, Mode: mode, Target: target, Conns: conns, Rate: rate}
	if target == targetSidecar {
		r.Note = b.waitHealthy(30 * time.Second)
	}
	pids := b.pids(target)
	var snaps [2]cpuSnap
	spec := loadSpec{Mode: mode, Conns: conns, Rate: rate, Warmup: b.o.Warmup, Duration: b.o.Duration,
		Mark: func(phase int) { snaps[phase] = takeSnap(pids) }}
	usesRedis := target == targetSidecar || target == targetRedis || target == targetTwemproxy
	if usesRedis && b.redis != nil {
		_, _ = doOnce(b.redisAddr, "CONFIG", "RESETSTAT")
	}
	res, err := runLoad(b.ctx, d, spec)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s c=%d %s: %w", label(ds.Cards()), scenario, mode, conns, target, err)
	}
	r.loadResult = res
	r.CPU = cores(snaps[0], snaps[1])
	if usesRedis && b.redis != nil {
		r.RedisCmds = commandStats(b.redisAddr)
	}
	b.rep.Runs = append(b.rep.Runs, r)
	b.o.logf("  %-4s %-7s %-6s c=%-5d %-13s %9.0f req/s  p50 %8.3f  p99 %9.3f  p99.9 %9.3f ms  errors %d%s  cpu %s%s",
		label(r.Cards), scenario, mode, conns, target, res.Throughput, res.Latency.P50, res.Latency.P99, res.Latency.P999,
		res.Errors, errSample(res.ErrorKinds), cpuString(r.CPU), noteString(r.Note))
	return &b.rep.Runs[len(b.rep.Runs)-1], nil
}

func noteString(s string) string {
	if s == "" {
		return ""
	}
	return " [" + s + "]"
}

// cpuString renders the CPU figure compactly: client/srsproxy/redis/… cores.
func cpuString(m map[string]float64) string {
	var parts []string
	for _, k := range []string{"client", "srsproxy", "srsproxy-safe", "redis", "nutcracker", "mariadb", "host"} {
		if v, ok := m[k]; ok && (v >= 0.01 || k == "host") {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// pids are the processes whose CPU a run accounts for.
func (b *bench) pids(target string) map[string]int {
	m := map[string]int{"client": os.Getpid(), "mariadb": b.mariadbPid}
	if b.sidecar != nil {
		m["srsproxy"] = b.sidecar.cmd.Process.Pid
	}
	if b.redis != nil {
		m["redis"] = b.redis.cmd.Process.Pid
	}
	if b.twem != nil {
		m["nutcracker"] = b.twem.cmd.Process.Pid
	}
	if target == targetSafeMode && b.safe != nil {
		m["srsproxy-safe"] = b.safe.cmd.Process.Pid
	}
	return m
}

// commandStats reads INFO commandstats.
func commandStats(addr string) map[string]CmdStat {
	v, err := doOnce(addr, "INFO", "commandstats")
	if err != nil {
		return nil
	}
	s, _ := v.(string)
	out := map[string]CmdStat{}
	for _, l := range strings.Split(s, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(l, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(l, "cmdstat_") {
			continue
		}
		var st CmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				st.Calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec_per_call":
				st.UsecPerCall, _ = strconv.ParseFloat(v, 64)
			}
		}
		if name != "config" && name != "info" && st.Calls > 0 {
			out[name] = st
		}
	}
	return out
}

// waitHealthy waits until the sidecar's breaker is closed (a run before may
// have opened it); it returns a note when it is not.
func (b *bench) waitHealthy(timeout time.Duration) string {
	t0 := time.Now()
	for {
		st, err := b.status()
		if err == nil && st["breaker_state"] == "closed" && asInt(st["safe_mode_since"]) == 0 {
			if w := time.Since(t0); w > time.Second {
				return fmt.Sprintf("waited %.0fs for the breaker to close", w.Seconds())
			}
			return ""
		}
		if time.Since(t0) > timeout {
			return fmt.Sprintf("started with the breaker %v (Safe Mode) after waiting %s", st["breaker_state"], timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func errSample(m map[string]int64) string {
	for _, k := range sortedKeys(m) {
		return fmt.Sprintf(" (%s ×%d)", k, m[k])
	}
	return ""
}

// scaleRuns measures one scale: due reads on every target at the low
// connection count, and on full scales the rest.
func (b *bench) scaleRuns(sc scale, ds *dataset) error {
	o := b.o
	targets := []string{targetSidecar, targetRedis, targetTwemproxy, targetMariaDB}
	due := func(conns int, mode string) error {
		for _, t := range targets {
			if t == targetMariaDB && mode == "closed" && conns > maxMariaConns {
				continue // its pool caps it at maxMariaConns: more workers only queue
			}
			if _, err := b.measure(ds, "due", mode, t, conns, o.RateDue); err != nil {
				return err
			}
		}
		return nil
	}
	if w := quiesce(o.Quiesce, b.rep.Machine.Cores); w > time.Second {
		o.logf("waited %s for the machine to go idle after seeding", w)
	}
	if err := b.warmNearCache(ds); err != nil {
		return err
	}
	o.logf("load %s (%d cards):", ds.Season, ds.Cards())
	for _, conns := range []int{o.ConnsLow, o.ConnsHigh} {
		// At the high count the open loop goes first: a saturating closed
		// loop of 10,000 connections may open the breaker.
		modes := []string{"closed", "open"}
		if conns == o.ConnsHigh && conns != o.ConnsLow {
			modes = []string{"open", "closed"}
		}
		for _, mode := range modes {
			if conns == o.ConnsLow && mode == "closed" && sc.Full {
				if err := b.withProfile("due", func() error { return due(conns, mode) }); err != nil {
					return err
				}
				continue
			}
			if err := due(conns, mode); err != nil {
				return err
			}
		}
		if !sc.Full {
			return nil
		}
	}
	writes := []struct {
		scenario, mode string
		conns          int
		rate           float64
	}{
		{"review", "closed", o.ConnsLow, 0},
		{"review", "open", o.ConnsLow, o.RateReview},
		{"session", "closed", o.ConnsLow, 0},
		{"session", "open", o.ConnsLow, o.RateSession},
		{"mixed", "closed", o.ConnsLow, 0},
	}
	for _, w := range writes {
		run := func() error {
			_, err := b.measure(ds, w.scenario, w.mode, targetSidecar, w.conns, w.rate)
			return err
		}
		var err error
		if w.scenario == "review" && w.mode == "closed" {
			err = b.withProfile("review", run)
			if err == nil {
				_, err = b.measure(ds, "review", "closed", targetRedisAOF, w.conns, 0)
			}
		} else {
			err = run()
		}
		if err != nil {
			return err
		}
		if _, err := b.waitDrained(2 * time.Minute); err != nil {
			return err
		}
	}
	if err := b.drainBacklog(ds); err != nil {
		return err
	}
	if err := b.mixedOpen(ds); err != nil {
		return err
	}
	return b.safeMode(ds)
}

// warmNearCache sends one SRS.DUE per cached user, so the runs measure a
// sidecar that has served its students before (its near-cache holds them,
// as in steady state), not the first fetch of each: a 6-second run touches
// each of 10,000 users about three times, and a cold start would make a
// third of the due reads whole-student fetches. The fetches this costs are
// timed and reported.
func (b *bench) warmNearCache(ds *dataset) error {
	c, err := dialRESP(b.sidecarAddr, 30*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	t0 := time.Now()
	names := ds.cachedPlayers()
	for lo := 0; lo < len(names); lo += 100 {
		hi := min(lo+100, len(names))
		for _, p := range names[lo:hi] {
			c.send("SRS.DUE", p, ds.Season, "LIMIT", "1")
		}
		if err := c.flush(); err != nil {
			return err
		}
		for range names[lo:hi] {
			if err := c.skip(); err != nil {
				return err
			}
		}
	}
	b.o.logf("  near-cache warmed: %d users in %.1f s", len(names), time.Since(t0).Seconds())
	b.note(fmt.Sprintf("%s: before the runs, one SRS.DUE per cached user warmed the sidecar's near-cache (%d users, %.1f s); the runs measure the steady state.",
		label(ds.Cards()), len(names), time.Since(t0).Seconds()))
	return nil
}

// withProfile fetches a CPU profile of the sidecar while fn runs, when
// --cpuprofile is set and the sidecar serves /debug/pprof/.
func (b *bench) withProfile(name string, fn func() error) error {
	if b.o.CPUProfile == "" || b.noPprof {
		return fn()
	}
	secs := int(b.o.Duration.Seconds())
	done := make(chan error, 1)
	go func() {
		time.Sleep(b.o.Warmup)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.adminAddr, max(secs, 1))
		resp, err := http.Get(url)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("%s: %s (the sidecar has no pprof endpoint on its admin listener)", url, resp.Status)
			return
		}
		if err := os.MkdirAll(b.o.CPUProfile, 0o755); err != nil {
			done <- err
			return
		}
		f, err := os.Create(filepath.Join(b.o.CPUProfile, "srsproxy-"+name+".pprof"))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		done <- err
	}()
	err := fn()
	if perr := <-done; perr != nil {
		b.noPprof = true
		b.o.logf("srsbench: CPU profile %s: %v", name, perr)
		b.note("CPU profile not taken: " + perr.Error())
	} else {
		b.o.logf("  CPU profile of the sidecar under %s: %s", name, filepath.Join(b.o.CPUProfile, "srsproxy-"+name+".pprof"))
	}
	return err
}

// status reads SRS.STATUS.
func (b *bench) status() (map[string]any, error) {
	v, err := b.sidecarDo("SRS.STATUS")
	if err != nil {
		return nil, err
	}
	return flatMap(v), nil
}

// waitDrained waits until the sidecar's queue is empty.
func (b *bench) waitDrained(timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for {
		st, err := b.status()
		if err != nil {
			return 0, fmt.Errorf("SRS.STATUS: %w", err)
		}
		if asInt(st["queue_depth"]) == 0 {
			return time.Since(t0), nil
		}
		if time.Since(t0) > timeout {
			return 0, fmt.Errorf("queue not drained after %s (depth %d)", timeout, asInt(st["queue_depth"]))
		}
		select {
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *bench) reviewLogRows(season string) (int64, error) {
	var n int64
	err := b.admin.QueryRowContext(b.ctx, "SELECT COUNT(*) FROM review_log WHERE season = ?", season).Scan(&n)
	return n, err
}

// drainBacklog measures the drain flat out: with the sidecar's MariaDB link
// cut, a closed-loop review load fills the queue (reviews are acknowledged
// from the cache and the queue alone); then the link is restored and the
// drained counter of SRS.STATUS is sampled until the queue is empty. The
// rate counts from the first drained batch, so the time the sidecar takes to
// notice MariaDB is back is left out.
func (b *bench) drainBacklog(ds *dataset) error {
	o := b.o
	b.mariaGate.setCut(true)
	d := &sidecarDriver{addr: b.sidecarAddr, ds: ds, scenario: "review"}
	res, err := runLoad(b.ctx, d, loadSpec{Mode: "closed", Conns: o.ConnsLow, Warmup: o.Warmup, Duration: 2 * o.Duration})
	if err != nil {
		b.mariaGate.setCut(false)
		return fmt.Errorf("review load with the drain held: %w", err)
	}
	st, err := b.status()
	if err != nil {
		b.mariaGate.setCut(false)
		return err
	}
	queued, start := asInt(st["queue_depth"]), asInt(st["drained"])
	b.mariaGate.setCut(false)
	o.logf("  drain backlog: %d reviews queued with MariaDB cut (%.0f req/s acknowledged, %d errors); draining…", queued, res.Throughput, res.Errors)
	var first time.Time
	var firstDrained int64
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := b.status()
		if err != nil {
			return err
		}
		drained := asInt(st["drained"])
		if first.IsZero() && drained > start {
			first, firstDrained = time.Now(), drained
		}
		if asInt(st["queue_depth"]) == 0 && !first.IsZero() {
			secs := time.Since(first).Seconds()
			rows := drained - firstDrained
			if secs > 0 && rows > 0 {
				b.rep.System.DrainBacklog = DrainBacklog{Rows: drained - start, Seconds: secs, RowsPerSecond: float64(rows) / secs}
				o.logf("  drained %d rows, %.0f rows/s", drained-start, float64(rows)/secs)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backlog of %d reviews not drained in 5 minutes", queued)
		}
		select {
		case <-b.ctx.Done():
			return b.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// mixedOpen runs the mixed scenario open loop at the high connection count
// while sampling SRS.STATUS for drain lag and counting review_log rows.
func (b *bench) mixedOpen(ds *dataset) error {
	o := b.o
	before, err := b.reviewLogRows(ds.Season)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	samples := make(chan []float64, 1)
	var depthMax int64
	go func() {
		var lags []float64
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				samples <- lags
				return
			case <-tick.C:
				st, err := b.status()
				if err != nil {
					continue
				}
				lag := max(asInt(st["drain_lag_ms"]), asInt(st["queue_oldest_age_ms"]))
				lags = append(lags, float64(lag))
				depthMax = max(depthMax, asInt(st["queue_depth"]))
			}
		}
	}()
	t0 := time.Now()
	_, err = b.measure(ds, "mixed", "open", targetSidecar, o.ConnsHigh, o.RateMixed)
	elapsed := time.Since(t0)
	close(stop)
	lags := <-samples
	if err != nil {
		return err
	}
	after, err := b.reviewLogRows(ds.Season)
	if err != nil {
		return err
	}
	catchUp, err := b.waitDrained(3 * time.Minute)
	if err != nil {
		return err
	}
	final, err := b.reviewLogRows(ds.Season)
	if err != nil {
		return err
	}
	s := &b.rep.System
	s.DrainSamples = len(lags)
	s.DrainLagP50MS, s.DrainLagP99MS, s.DrainLagMaxMS = quantile(lags, 0.5), quantile(lags, 0.99), quantile(lags, 1)
	s.DrainRowsPerSecond = float64(after-before) / elapsed.Seconds()
	s.DrainRows = final - before
	s.QueueDepthMax = depthMax
	s.DrainCatchUpSeconds = catchUp.Seconds()
	// Timed by 100 ms polls: only a backlog of a second or more says what
	// the drain sustains.
	if backlog := final - after; catchUp >= time.Second && backlog > 0 {
		s.DrainAfterMixedRowsPerSecond = float64(backlog) / catchUp.Seconds()
	}
	o.logf("  drain under mixed load: lag p99 %.0f ms (max %.0f ms, %d samples), %.0f review_log rows/s, queue depth max %d, caught up %.1fs after the load (%.0f rows/s)",
		s.DrainLagP99MS, s.DrainLagMaxMS, s.DrainSamples, s.DrainRowsPerSecond, depthMax, s.DrainCatchUpSeconds, s.DrainAfterMixedRowsPerSecond)
	return nil
}

// safeMode runs SRS.DUE on a second sidecar whose upstream Redis is a dead
// port, so its breaker opens and every read is served from MariaDB. Its
// limiter is opened wide (--safe-rpm very high, --safe-user-interval 1ms):
// this measures the Safe Mode read path, not the rate limit.
func (b *bench) safeMode(ds *dataset) error {
	o := b.o
	dead, err := freeAddr()
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"--listen", addr, "--admin-listen", "off", "--mysql", b.dsn.FormatDSN(), "--redis", dead,
		"--redis-prefix", o.Prefix, "--queue-dir", filepath.Join(b.dir, "queue-safe"), "--sidecar-id", "srsbench-safe",
		"--log-level", "error", "--breaker-failures", "1", "--breaker-open", "1h",
		"--safe-rpm", "100000000", "--safe-user-interval", "1us", "--safe-wait", "2s"}
	p, err := startProc(b.dir, "srsproxy-safe", o.Bin, args...)
	if err != nil {
		return err
	}
	b.safe = p
	defer func() {
		p.stop(10 * time.Second)
		b.safe = nil
	}()
	if err := waitRESP(p, addr, 60*time.Second); err != nil {
		return err
	}
	// Open the breaker: the first read fails on the dead upstream.
	names := ds.cachedPlayers()
	degraded := false
	for i := 0; i < 20 && !degraded; i++ {
		v, err := doOnce(addr, "SRS.DUE", names[i%len(names)], ds.Season, "LIMIT", "20")
		degraded = err == nil && asInt(flatMap(v)["degraded"]) == 1
	}
	if !degraded {
		return fmt.Errorf("safe-mode sidecar never served a degraded SRS.DUE:\n%s", p.tail())
	}
	b.note("Safe Mode runs: a second sidecar whose --redis is a dead port (breaker open), --safe-rpm 100000000 --safe-user-interval 1us so the limiter does not dominate; Safe Mode serves at most --safe-top (10) items, not 20.")
	for _, mode := range []string{"closed", "open"} {
		d := &sidecarDriver{addr: addr, ds: ds, scenario: "due"}
		if _, err := b.measureDriver(ds, d, "due", mode, targetSafeMode, o.ConnsLow, o.RateSafe); err != nil {
			return err
		}
	}
	return nil
}

// systemFigures: partition creation on the loaded tables, a cache rebuild
// of the smallest season and the archive of the primary one (last: it takes
// the season out of service).
func (b *bench) systemFigures(primary *dataset) error {
	t0 := time.Now()
	if _, err := b.sidecarDo("SRS.SEASON", "CREATE", "SEASON-2026-CEMPTY", "START", "2026-01-01", "END", "2027-12-31"); err != nil {
		return fmt.Errorf("SRS.SEASON CREATE SEASON-2026-CEMPTY: %w", err)
	}
	var total int64
	for _, ds := range b.seasons {
		total += ds.Cards()
	}
	b.rep.System.PartitionCreateLoadedMS = msSince(t0)
	b.rep.System.PartitionCreateLoadedCards = total
	b.o.logf("partition creation with %d cards in the table: %.1f ms", total, b.rep.System.PartitionCreateLoadedMS)
	if b.hasRebuild && len(b.seasons) > 0 {
		b.rebuild(b.seasons[0])
	}
	if b.hasArchive && primary != nil {
		b.archive(primary)
	}
	return nil
}

// rebuild runs SRS.REBUILD on a season and polls SRS.JOB until it ends.
// A failure is reported in the figure, not as a failed benchmark.
func (b *bench) rebuild(ds *dataset) {
	s := &b.rep.System
	v, err := b.sidecarDo("SRS.REBUILD", ds.Season)
	if err != nil {
		s.Rebuild = "failed: " + err.Error()
		return
	}
	id, _ := v.(string)
	t0 := time.Now()
	for {
		v, err := b.sidecarDo("SRS.JOB", id)
		if err != nil {
			s.Rebuild = "failed: SRS.JOB: " + err.Error()
			return
		}
		j := flatMap(v)
		state, _ := j["state"].(string)
		if state != "running" {
			if state != "done" {
				s.Rebuild = fmt.Sprintf("job %s ended %s: %v", id, state, j["error"])
				return
			}
			rate, _ := strconv.ParseFloat(fmt.Sprint(j["rate"]), 64)
			s.Rebuild = fmt.Sprintf("%.0f cards/s (SRS.REBUILD %s: %d cards, %.1f s wall)", rate, ds.Season, asInt(j["processed"]), time.Since(t0).Seconds())
			s.RebuildCardsPerSecond = rate
			b.o.logf("rebuild %s: %s", ds.Season, s.Rebuild)
			return
		}
		if time.Since(t0) > 10*time.Minute {
			s.Rebuild = "not finished after 10 minutes"
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// archive deactivates a season and archives it with SRS.ARCHIVE … CONFIRM.
func (b *bench) archive(ds *dataset) {
	s := &b.rep.System
	if _, err := b.sidecarDo("SRS.SEASON", "DEACTIVATE", ds.Season); err != nil {
		s.Archive = "failed: SRS.SEASON DEACTIVATE: " + err.Error()
		return
	}
	t0 := time.Now()
	v, err := b.sidecarDo("SRS.ARCHIVE", ds.Season, "CONFIRM")
	if err != nil {
		s.Archive = "failed: " + err.Error()
		return
	}
	wall := time.Since(t0).Seconds()
	m := flatMap(v)
	secs, _ := strconv.ParseFloat(fmt.Sprint(m["seconds"]), 64)
	move, _ := strconv.ParseFloat(fmt.Sprint(m["move_seconds"]), 64)
	s.ArchiveSeconds = wall
	s.Archive = fmt.Sprintf("%.2f s wall for %s (%d cards, %d log rows, %d cache keys; sidecar reports %.2f s, partition moves %.2f s)",
		wall, ds.Season, asInt(m["cards_archived"]), asInt(m["log_rows_archived"]), asInt(m["cache_keys_deleted"]), secs, move)
	b.o.logf("archive %s: %s", ds.Season, s.Archive)
}
