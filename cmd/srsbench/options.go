package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// scale is one season of the benchmark. Full scales run every scenario;
// the others only the due reads that compare cost growth.
type scale struct {
	Cards int64
	Full  bool
}

// Options configure a run; a profile fills the sizes and durations, flags
// override them.
type Options struct {
	Profile    string
	Bin        string // the sidecar binary
	Nutcracker string // twemproxy binary; "" looks it up in PATH
	MySQL      string // DSN; its database is dropped and recreated, so it must start with "srsbench"
	Redis      string // an existing upstream Redis; "" starts a private one with the recommended settings
	Prefix     string // Redis key prefix
	Out        string // directory for <profile>.md and <profile>.json; "" writes nothing
	CPUProfile string // directory for sidecar CPU profiles (needs /debug/pprof/ on its admin listener)
	Keep       bool   // keep the database afterwards
	Log        io.Writer

	Scales       []scale
	CardsPerUser int
	CachedShare  float64 // share of users loaded into Redis
	MaxCached    int     // and at most this many
	ConnsLow     int
	ConnsHigh    int
	Warmup       time.Duration
	Duration     time.Duration
	SeedParallel int
	Quiesce      time.Duration // at most this long waiting for an idle machine before a scale's load

	RateDue     float64 // open loop, requests/s
	RateReview  float64
	RateSession float64 // sessions/s
	RateMixed   float64
	RateSafe    float64
}

// profile returns the settings of a named profile.
func profile(name string) (Options, error) {
	o := Options{Profile: name, CardsPerUser: 500, CachedShare: 0.5, MaxCached: 20_000,
		ConnsLow: 50, ConnsHigh: 10_000, SeedParallel: 2, Quiesce: time.Minute,
		RateDue: 5000, RateReview: 2000, RateSession: 20, RateMixed: 5000, RateSafe: 1000}
	switch name {
	case "quick":
		o.Scales = []scale{{1000, false}, {3000, true}}
		o.CardsPerUser = 100
		o.ConnsLow, o.ConnsHigh = 4, 32
		o.Quiesce = 0
		o.Warmup, o.Duration = 100*time.Millisecond, 400*time.Millisecond
		o.RateDue, o.RateReview, o.RateSession, o.RateMixed, o.RateSafe = 400, 200, 10, 400, 100
	case "default":
		o.Scales = []scale{{1_000_000, false}, {10_000_000, true}}
		o.Warmup, o.Duration = time.Second, 6*time.Second
	case "full":
		o.Scales = []scale{{1_000_000, false}, {10_000_000, true}, {100_000_000, false}}
		o.Warmup, o.Duration = 3*time.Second, 15*time.Second
	default:
		return o, fmt.Errorf("--profile: want quick, default or full, got %q", name)
	}
	return o, nil
}

// ParseOptions reads the flags; the profile is applied first.
func ParseOptions(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("srsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prof := fs.String("profile", "default", "quick (seconds, used by the tests), default (make bench: 1M and 10M cards) or full (adds 100M)")
	bin := fs.String("bin", "bin/srsproxy", "the sidecar binary (make build)")
	nut := fs.String("nutcracker", "", "twemproxy binary (default: nutcracker in PATH; missing = the twemproxy baseline is skipped)")
	dsn := fs.String("mysql", "root@tcp(127.0.0.1:3306)/srsbench", "MariaDB DSN; its database (name starting with srsbench) is dropped and recreated")
	redis := fs.String("redis", "", "use this upstream Redis instead of a private redis-server with the recommended settings")
	prefix := fs.String("prefix", "srsbench", "Redis key prefix")
	out := fs.String("out", "docs/benchmarks", "directory for <profile>.md and <profile>.json; empty writes nothing")
	cpu := fs.String("cpuprofile", "", "directory for pprof CPU profiles of the sidecar under the due and review loads")
	keep := fs.Bool("keep", false, "keep the benchmark database and the temp dir (logs, queues) afterwards")
	cards := fs.String("cards", "", "comma-separated scales in cards, overriding the profile's (e.g. 1000000,10000000); the largest runs every scenario")
	perUser := fs.Int("cards-per-user", 0, "cards per user (profile default)")
	conns := fs.Int("conns", 0, "the high connection count (profile default; default profile 10000)")
	connsLow := fs.Int("conns-low", 0, "the low connection count (profile default; default profile 50)")
	dur := fs.Duration("duration", 0, "measured time of each run (profile default)")
	warm := fs.Duration("warmup", 0, "unmeasured time before each run (profile default)")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o, err := profile(*prof)
	if err != nil {
		return o, err
	}
	o.Bin, o.Nutcracker, o.MySQL, o.Redis, o.Prefix, o.Out, o.CPUProfile, o.Keep = *bin, *nut, *dsn, *redis, *prefix, *out, *cpu, *keep
	if *cards != "" {
		o.Scales = nil
		for _, s := range strings.Split(*cards, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil || n < 1 {
				return o, fmt.Errorf("--cards: bad scale %q", s)
			}
			o.Scales = append(o.Scales, scale{Cards: n})
		}
		largest := 0
		for i, s := range o.Scales {
			if s.Cards > o.Scales[largest].Cards {
				largest = i
			}
		}
		o.Scales[largest].Full = true
	}
	if *perUser > 0 {
		o.CardsPerUser = *perUser
	}
	if *conns > 0 {
		o.ConnsHigh = *conns
	}
	if *connsLow > 0 {
		o.ConnsLow = *connsLow
	}
	if *dur > 0 {
		o.Duration = *dur
	}
	if *warm > 0 {
		o.Warmup = *warm
	}
	return o, o.validate()
}

func (o *Options) validate() error {
	if o.CardsPerUser < sessionSize {
		return fmt.Errorf("--cards-per-user must be at least %d (a session answers %d cards)", sessionSize, sessionSize)
	}
	for _, s := range o.Scales {
		if s.Cards < int64(o.CardsPerUser) {
			return fmt.Errorf("--cards: scale %d is smaller than one user's %d cards", s.Cards, o.CardsPerUser)
		}
	}
	if o.ConnsLow < 1 || o.ConnsHigh < 1 {
		return fmt.Errorf("--conns and --conns-low must be positive")
	}
	return nil
}

// nutcrackerPath finds the twemproxy binary; "" when it is not installed.
func (o *Options) nutcrackerPath() string {
	if o.Nutcracker != "" {
		return o.Nutcracker
	}
	for _, p := range []string{"nutcracker", "/usr/sbin/nutcracker", "/usr/local/sbin/nutcracker"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

func (o *Options) logf(format string, a ...any) {
	w := o.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, format+"\n", a...)
}

// label names a scale: 1M, 10M, 3K, 2500.
func label(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.FormatInt(n/1_000_000, 10) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.FormatInt(n/1000, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}
