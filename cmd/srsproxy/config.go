package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/proxy"
)

// Config is the sidecar's whole configuration. The zero value of each field
// means its default; every flag has an SRSPROXY_<NAME> environment variable.
type Config struct {
	Listen           string        // RESP listen address
	Redis            []string      // upstream Redis addresses
	RedisCluster     bool          // Redis Cluster even with one seed address (several addresses always mean a cluster)
	RedisPassword    string        //
	RedisUsername    string        // upstream ACL user
	RequirePassFile  string        // file holding the default user's password (keeps it out of ps)
	MaxClients       int           // client connections served at once (default 10000, below the FD limit)
	MaxMemoryClients int64         // memory of all clients' buffered commands (default: a quarter of the memory limit)
	RedisPrefix      string        // key prefix in the upstream Redis
	CacheTTL         time.Duration // sliding expiry of an idle user-season
	ReviewIDWindow   time.Duration // deprecated (release 1's review-id memory); accepted and ignored
	MySQL            string        // MariaDB DSN; the database is created if missing
	MySQLReplica     string        // optional read-only replica DSN for Safe Mode due lists and archive reads
	QueueDir         string        // durable local queue (default: defaultQueueDir)
	queueDirDefault  bool          // QueueDir was filled in by withDefaults
	QueueMaxBytes    int64         // undrained bytes before SRS.REVIEW is refused
	QueueMaxMemory   int64         // heap of the queue's in-memory index before SRS.REVIEW is refused
	Fsync            string        // always | interval
	FsyncInterval    time.Duration //
	AdminListen      string        // HTTP health and metrics; "off" disables
	Pprof            bool          // serve /debug/pprof/ on the admin listener
	RequirePass      string        // password of the "default" admin user
	Users            string        // users file: "name role password" per line
	SidecarID        string        // recorded with each review; default host:port
	LogFormat        string        // text | json
	LogLevel         string        // debug | info | warn | error
	ShutdownTimeout  time.Duration // bound on the drain at shutdown

	// TLS, each file PEM (Config.validateTLS checks the pairs).
	RedisTLS           bool   // TLS to the upstream Redis (also on when any other RedisTLS* field is set)
	RedisTLSCA         string // CA that signed the upstream's certificate ("" = system roots)
	RedisTLSCert       string // client certificate presented to the upstream (its mutual TLS)
	RedisTLSKey        string // private key of RedisTLSCert
	RedisTLSServerName string // name the upstream's certificate is verified against ("" = the --redis host)
	MySQLTLSCA         string // CA for MariaDB; sets tls=srsproxy-<digest> in the DSN
	TLSCert, TLSKey    string // serve RESP over TLS on --listen
	TLSCA              string // CA of the clients' certificates: the listener requires one (mutual TLS)

	RedisTimeout     time.Duration // read/write timeout of upstream calls
	RedisPoolSize    int           // upstream connections per node; also the bound on concurrent upstream calls
	NearCacheMB      int           // memory for in-process copies of recently used user-seasons
	TrackingMaxKeys  int           // keys the CLIENT TRACKING table holds
	TrackingMaxAge   time.Duration // longest a tracking client keeps a reply without an invalidation
	BreakerFailures  int           // consecutive availability failures that open the breaker
	BreakerOpen      time.Duration // time open before a half-open probe
	SafeTop          int           // SRS.DUE items in Safe Mode (5–10)
	SafeRPM          int           // Safe Mode requests per minute of this sidecar
	SafeUserInterval time.Duration // per-user interval in Safe Mode
	SafeWait         time.Duration // how long an over-budget request may wait; 0 = refuse at once (the flag's default is 2s)
	AlertWebhook     string        // Slack-compatible webhook for Safe Mode alerts

	Retention       time.Duration // archives older than this become eligible for deletion
	ReconcileEvery  time.Duration // period of the cluster-wide reconciliation job
	ReconcileSample int           // cards compared per reconciliation run
}

// defaultAdmin is the admin listener of a sidecar listening on listen: the
// same host, port + 10000 (6380 → 16380), so two sidecars on one host never
// clash; an ephemeral port when that does not fit.
func defaultAdmin(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p == 0 || p+10000 > 65535 {
		return net.JoinHostPort(cmp.Or(host, "127.0.0.1"), "0")
	}
	return net.JoinHostPort(host, strconv.Itoa(p+10000))
}

// withDefaults fills unset fields.
func (c Config) withDefaults() Config {
	c.Listen = cmp.Or(c.Listen, "127.0.0.1:6380")
	if len(c.Redis) == 0 {
		c.Redis = []string{"127.0.0.1:6379"}
	}
	c.RedisPrefix = cmp.Or(c.RedisPrefix, "srs")
	c.CacheTTL = cmp.Or(c.CacheTTL, 24*time.Hour)
	c.MySQL = cmp.Or(c.MySQL, "root@tcp(127.0.0.1:3306)/srs")
	if c.QueueDir == "" {
		c.QueueDir, c.queueDirDefault = defaultQueueDir(c.Listen, os.Getenv, os.Getuid()), true
	}
	c.QueueMaxBytes = cmp.Or(c.QueueMaxBytes, 1<<30)
	c.QueueMaxMemory = cmp.Or(c.QueueMaxMemory, 256<<20)
	c.Fsync = cmp.Or(c.Fsync, "always")
	c.FsyncInterval = cmp.Or(c.FsyncInterval, 100*time.Millisecond)
	c.AdminListen = cmp.Or(c.AdminListen, defaultAdmin(c.Listen))
	c.LogFormat = cmp.Or(c.LogFormat, "text")
	c.LogLevel = cmp.Or(c.LogLevel, "info")
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 10*time.Second)
	c.RedisTimeout = cmp.Or(c.RedisTimeout, 250*time.Millisecond)
	c.RedisPoolSize = cmp.Or(c.RedisPoolSize, engine.DefaultMaxInFlight)
	c.NearCacheMB = cmp.Or(c.NearCacheMB, 1024)
	c.TrackingMaxKeys = cmp.Or(c.TrackingMaxKeys, proxy.DefaultTrackingMaxKeys)
	c.TrackingMaxAge = cmp.Or(c.TrackingMaxAge, proxy.DefaultTrackingMaxAge)
	c.BreakerFailures = cmp.Or(c.BreakerFailures, 5)
	c.BreakerOpen = cmp.Or(c.BreakerOpen, 5*time.Second)
	c.SafeTop = cmp.Or(c.SafeTop, 10)
	c.SafeRPM = cmp.Or(c.SafeRPM, 500)
	c.SafeUserInterval = cmp.Or(c.SafeUserInterval, 30*time.Second)
	c.Retention = cmp.Or(c.Retention, 3*engine.Year)
	c.ReconcileEvery = cmp.Or(c.ReconcileEvery, time.Hour)
	c.ReconcileSample = cmp.Or(c.ReconcileSample, 10000)
	if c.SidecarID == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(c.Listen)
		c.SidecarID = cmp.Or(host, "srsproxy") + ":" + port
	}
	return c
}

// Validate reports the first invalid setting, naming it.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	_, _, err := net.SplitHostPort(c.Listen)
	check(err == nil, "--listen %q: %v", c.Listen, err)
	errs = append(errs, c.validateTLS())
	check(c.RequirePass == "" || c.RequirePassFile == "", "--requirepass and --requirepass-file are exclusive")
	if c.AdminListen != "off" {
		_, _, err = net.SplitHostPort(c.AdminListen)
		check(err == nil, "--admin-listen %q: want host:port or off (%v)", c.AdminListen, err)
	}
	for _, a := range c.Redis {
		_, _, err = net.SplitHostPort(a)
		check(err == nil, "--redis %q: %v", a, err)
	}
	check(!strings.ContainsAny(c.RedisPrefix, "{}"), "--redis-prefix %q must not contain '{' or '}'", c.RedisPrefix)
	_, err = mysql.ParseDSN(c.MySQL)
	check(err == nil, "--mysql: %v", err)
	if c.MySQLReplica != "" {
		rc, err := mysql.ParseDSN(c.MySQLReplica)
		check(err == nil, "--mysql-replica: %v", err)
		check(err != nil || rc.DBName != "", "--mysql-replica %q names no database", c.MySQLReplica)
	}
	check(c.QueueMaxBytes >= 1<<20, "--queue-max-bytes must be at least 1MiB, got %d", c.QueueMaxBytes)
	check(c.MaxMemoryClients == 0 || c.MaxMemoryClients >= 1<<20, "--maxmemory-clients must be at least 1MiB, got %d", c.MaxMemoryClients)
	check(c.QueueMaxMemory >= 1<<20, "--queue-max-memory must be at least 1MiB, got %d", c.QueueMaxMemory)
	check(c.Fsync == "always" || c.Fsync == "interval", "--fsync must be always or interval, got %q", c.Fsync)
	check(c.FsyncInterval > 0 && c.FsyncInterval <= 10*time.Second, "--fsync-interval must be in (0, 10s], got %s", c.FsyncInterval)
	check(c.CacheTTL >= time.Minute, "--cache-ttl must be at least 1m, got %s", c.CacheTTL)
	check(c.LogFormat == "text" || c.LogFormat == "json", "--log-format must be text or json, got %q", c.LogFormat)
	check(c.ShutdownTimeout > 0, "--shutdown-timeout must be positive")
	check(c.RedisTimeout >= 10*time.Millisecond && c.RedisTimeout <= 10*time.Second, "--redis-timeout must be in [10ms, 10s], got %s", c.RedisTimeout)
	check(c.RedisPoolSize >= 1 && c.RedisPoolSize <= 100000, "--redis-pool-size must be in [1, 100000], got %d", c.RedisPoolSize)
	check(c.NearCacheMB >= 1 && c.NearCacheMB <= 1<<20, "--near-cache-mb must be in [1, 1048576], got %d", c.NearCacheMB)
	check(c.TrackingMaxKeys >= 1 && c.TrackingMaxKeys <= 10_000_000, "--tracking-max-keys must be in [1, 10000000], got %d", c.TrackingMaxKeys)
	check(c.TrackingMaxAge >= time.Second && c.TrackingMaxAge <= 24*time.Hour, "--tracking-max-age must be in [1s, 24h], got %s", c.TrackingMaxAge)
	check(c.BreakerFailures >= 1 && c.BreakerFailures <= 1000, "--breaker-failures must be in [1, 1000], got %d", c.BreakerFailures)
	check(c.BreakerOpen >= 100*time.Millisecond, "--breaker-open must be at least 100ms, got %s", c.BreakerOpen)
	check(c.SafeTop >= 5 && c.SafeTop <= 10, "--safe-top must be in [5, 10], got %d", c.SafeTop)
	check(c.SafeRPM >= 1, "--safe-rpm must be positive, got %d", c.SafeRPM)
	check(c.SafeUserInterval >= 0, "--safe-user-interval must not be negative")
	check(c.SafeWait >= 0 && c.SafeWait <= time.Minute, "--safe-wait must be in [0, 1m], got %s", c.SafeWait)
	check(c.Retention >= 24*time.Hour, "--retention must be at least 1d, got %s", c.Retention)
	check(c.ReconcileEvery >= time.Minute, "--reconcile-every must be at least 1m, got %s", c.ReconcileEvery)
	check(c.ReconcileSample >= 100 && c.ReconcileSample <= 100000, "--reconcile-sample must be in [100, 100000], got %d", c.ReconcileSample)
	if c.AlertWebhook != "" {
		u, err := url.Parse(c.AlertWebhook)
		check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "", "--alert-webhook %q: want an http(s) URL", c.AlertWebhook)
	}
	var lvl levelFlag
	check(lvl.Set(c.LogLevel) == nil, "--log-level must be debug, info, warn or error, got %q", c.LogLevel)
	if c.Users != "" {
		_, err := os.Stat(c.Users)
		check(err == nil, "--users: %v", err)
	}
	return errors.Join(errs...)
}

// validateTLS checks that the TLS files come in their pairs; the sidecar's
// Validate and the import's validate share it. Errors name the flags.
func (c Config) validateTLS() error {
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.TLSCA != "" && c.TLSCert == "":
		return errors.New("--tls-ca needs --tls-cert and --tls-key: it verifies the client certificates of the TLS listener")
	case (c.RedisTLSCert == "") != (c.RedisTLSKey == ""):
		return errors.New("--redis-tls-cert and --redis-tls-key go together")
	}
	return nil
}

// connFlags registers on fs the upstream identity and TLS flags, which the
// sidecar and `srsproxy import` share, and returns their names.
func connFlags(fs *flag.FlagSet, c *Config) []string {
	own := flag.NewFlagSet("", flag.ContinueOnError)
	own.StringVar(&c.RedisPassword, "redis-password", "", "upstream Redis password")
	own.StringVar(&c.RedisUsername, "redis-username", "", "upstream Redis ACL username (default: the default user)")
	own.BoolVar(&c.RedisTLS, "redis-tls", false, "connect to the upstream Redis over TLS (implied by each --redis-tls-* flag)")
	own.StringVar(&c.RedisTLSCA, "redis-tls-ca", "", "PEM file of the CA of the upstream Redis's certificate (default: the system's roots)")
	own.StringVar(&c.RedisTLSCert, "redis-tls-cert", "", "PEM client certificate presented to the upstream Redis (its --tls-auth-clients); needs --redis-tls-key")
	own.StringVar(&c.RedisTLSKey, "redis-tls-key", "", "PEM private key of --redis-tls-cert")
	own.StringVar(&c.RedisTLSServerName, "redis-tls-server-name", "", "name the upstream Redis's certificate is verified against, e.g. when --redis is an IP address (default: the --redis host)")
	own.StringVar(&c.MySQLTLSCA, "mysql-tls-ca", "", "PEM file of the CA of MariaDB's certificate: connect over TLS and verify it")
	var names []string
	own.VisitAll(func(f *flag.Flag) {
		fs.Var(f.Value, f.Name, f.Usage)
		names = append(names, f.Name)
	})
	return names
}

// bytesFlag parses sizes such as 512MiB, 1GiB or a plain byte count.
type bytesFlag struct{ p *int64 }

func (b bytesFlag) String() string {
	if b.p == nil {
		return ""
	}
	return strconv.FormatInt(*b.p, 10)
}

func (b bytesFlag) Set(s string) error {
	units := []struct {
		suffix string
		mul    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("want a size like 512MiB or 1GiB, got %q", s)
			}
			*b.p = n * u.mul
			return nil
		}
	}
	return fmt.Errorf("want a size like 512MiB, got %q", s)
}

// listFlag parses a comma-separated list.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(s string) error {
	*l.p = nil
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			*l.p = append(*l.p, a)
		}
	}
	return nil
}

// longDuration parses Go durations plus days (d), months (mo, 30.44 days)
// and years (y, 365.25 days).
type longDuration struct{ p *time.Duration }

func (l longDuration) String() string {
	if l.p == nil {
		return ""
	}
	return l.p.String()
}

func (l longDuration) Set(s string) error {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"y", engine.Year}, {"mo", engine.Year / 12}, {"d", 24 * time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(num, 64)
			if err != nil || n <= 0 {
				return fmt.Errorf("want a period like 3y, 18mo or 90d, got %q", s)
			}
			*l.p = time.Duration(n * float64(u.unit))
			return nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a period like 3y, 18mo or 90d, got %q", s)
	}
	*l.p = d
	return nil
}

type levelFlag struct{ s string }

func (l *levelFlag) Set(s string) error {
	switch s {
	case "debug", "info", "warn", "error":
		l.s = s
		return nil
	}
	return fmt.Errorf("unknown level %q", s)
}

// applyEnv sets each flag of fs (those only accepts; nil: all) from its
// SRSPROXY_<NAME> environment variable when set (flag names upper-cased,
// '-' → '_'). It returns the first bad value, naming the variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string, only map[string]bool) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if only != nil && !only[f.Name] {
			return
		}
		env := "SRSPROXY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s: %w", env, err)
			}
		}
	})
	return envErr
}

// ParseConfig reads flags, with SRSPROXY_<NAME> environment variables as
// defaults (flag names upper-cased, '-' → '_'). It fails naming the setting.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("srsproxy", flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", "", "RESP listen address (default 127.0.0.1:6380)")
	fs.Var(listFlag{&c.Redis}, "redis", "upstream Redis addresses, comma-separated; several = Redis Cluster (default 127.0.0.1:6379)")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", false, "the upstream is a Redis Cluster even with one --redis (seed) address")
	connFlags(fs, &c)
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) to serve RESP over TLS on --listen; needs --tls-key")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "PEM file of the CA of the clients' certificates: with --tls-cert, every client must present a certificate signed by it (mutual TLS)")
	fs.IntVar(&c.MaxClients, "maxclients", 0, "client connections served at once; more are refused with 'ERR max number of clients reached' (default 10000, lowered to fit the file-descriptor limit)")
	fs.Var(bytesFlag{&c.MaxMemoryClients}, "maxmemory-clients", "memory all client connections may hold in partial commands and MULTI queues; past it the largest are disconnected (default: a quarter of the memory limit: cgroup memory.max, GOMEMLIMIT or RAM)")
	fs.StringVar(&c.RequirePassFile, "requirepass-file", "", "file whose first line is the default user's password (instead of --requirepass, which ps shows)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "", "key prefix in the upstream Redis (default srs)")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", 0, "sliding expiry of an idle user's cache entry (default 24h)")
	fs.DurationVar(&c.ReviewIDWindow, "review-id-window", 0, "deprecated and ignored: release 2 recognises retries from the card record (docs/CORE.md)")
	fs.StringVar(&c.MySQL, "mysql", "", "MariaDB DSN (default root@tcp(127.0.0.1:3306)/srs)")
	fs.StringVar(&c.MySQLReplica, "mysql-replica", "", "optional read-only MariaDB replica DSN: Safe Mode SRS.DUE and archive reads go there, never the reads before a review")
	fs.StringVar(&c.QueueDir, "queue-dir", "", "durable local queue directory (default $STATE_DIRECTORY under systemd, else /var/lib/srsproxy/<port> for root, ~/.local/state/srsproxy/<port> for other users)")
	fs.Var(bytesFlag{&c.QueueMaxBytes}, "queue-max-bytes", "undrained queue bytes before reviews are refused (default 1GiB)")
	fs.Var(bytesFlag{&c.QueueMaxMemory}, "queue-max-memory", "heap of the queue's index of undrained reviews (~290 B each) before reviews are refused (default 256MiB)")
	fs.StringVar(&c.Fsync, "fsync", "", "always (ack after fsync, default) or interval (ack before fsync; up to --fsync-interval of acks can be lost on power loss)")
	fs.DurationVar(&c.FsyncInterval, "fsync-interval", 0, "fsync period with --fsync interval (default 100ms)")
	fs.StringVar(&c.AdminListen, "admin-listen", "", "HTTP address for /healthz, /readyz, /metrics, or off (default: the --listen host, its port + 10000)")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go profiles at /debug/pprof/ on the admin listener (off by default: they expose internals)")
	fs.StringVar(&c.RequirePass, "requirepass", "", "password of the default (admin) user")
	fs.StringVar(&c.Users, "users", "", "users file: one 'name role password' per line, role app or admin")
	fs.StringVar(&c.SidecarID, "sidecar-id", "", "id recorded with each review (default hostname:port)")
	fs.StringVar(&c.LogFormat, "log-format", "", "text or json (default text)")
	fs.StringVar(&c.LogLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 0, "how long shutdown drains the queue before leaving the rest on disk (default 10s)")
	fs.DurationVar(&c.RedisTimeout, "redis-timeout", 0, "read/write timeout of upstream Redis calls (default 250ms)")
	fs.IntVar(&c.TrackingMaxKeys, "tracking-max-keys", 0, "players the CLIENT TRACKING table remembers; past it the one expiring soonest is invalidated early (default 100000)")
	fs.DurationVar(&c.TrackingMaxAge, "tracking-max-age", 0, "longest a tracking client may keep an SRS.DUE/SRS.CARD reply: an invalidation is sent then even without a change (default 1m)")
	fs.IntVar(&c.NearCacheMB, "near-cache-mb", 0, "memory (MiB) for in-process copies of recently used students' cards, validated against Redis by one GET per read (default 1024: ~19,000 students of 500 cards)")
	fs.IntVar(&c.RedisPoolSize, "redis-pool-size", 0, "upstream Redis connections (per cluster node); at most this many upstream calls run at once, more wait briefly, then get TRYAGAIN (default 256)")
	fs.IntVar(&c.BreakerFailures, "breaker-failures", 0, "consecutive upstream failures that open the breaker into Safe Mode (default 5)")
	fs.DurationVar(&c.BreakerOpen, "breaker-open", 0, "time the breaker stays open before a half-open probe (default 5s)")
	fs.IntVar(&c.SafeTop, "safe-top", 0, "SRS.DUE items served in Safe Mode, 5-10 (default 10)")
	fs.IntVar(&c.SafeRPM, "safe-rpm", 0, "Safe Mode requests per minute of this sidecar: the system-wide budget divided by the number of sidecars (default 500)")
	fs.DurationVar(&c.SafeUserInterval, "safe-user-interval", 0, "Safe Mode: one request per user per interval (default 30s)")
	fs.DurationVar(&c.SafeWait, "safe-wait", 2*time.Second, "Safe Mode: how long an over-budget request waits before BUSY; 0 refuses at once")
	fs.StringVar(&c.AlertWebhook, "alert-webhook", "", "Slack-compatible webhook told when Safe Mode is entered and left, and of reconciliation alerts")
	fs.Var(longDuration{&c.Retention}, "retention", "archives older than this are flagged eligible for deletion, e.g. 3y, 18mo, 90d (default 3y)")
	fs.DurationVar(&c.ReconcileEvery, "reconcile-every", 0, "period of the cluster-wide cache reconciliation job (default 1h)")
	fs.IntVar(&c.ReconcileSample, "reconcile-sample", 0, "cards the periodic reconciliation compares, 100-100000 (default 10000)")

	if err := applyEnv(fs, getenv, nil); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c = c.withDefaults()
	return c, c.Validate()
}
