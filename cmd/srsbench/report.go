package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Report is everything one run measured; it is written as JSON and markdown.
type Report struct {
	Date    string       `json:"date"`
	Profile string       `json:"profile"`
	Seconds float64      `json:"seconds"`
	Machine Machine      `json:"machine"`
	Params  Params       `json:"parameters"`
	Seeds   []SeedResult `json:"seed"`
	Runs    []RunResult  `json:"runs"`
	Ratios  []Ratio      `json:"ratios"`
	System  System       `json:"system"`
	Targets []Target     `json:"targets"`
	Notes   []string     `json:"notes,omitempty"`
}

// Machine describes where the numbers come from.
type Machine struct {
	CPU              string  `json:"cpu"`
	Cores            int     `json:"cores"`
	MemoryGiB        float64 `json:"memory_gib"`
	Kernel           string  `json:"kernel"`
	OS               string  `json:"os"`
	Go               string  `json:"go"`
	Redis            string  `json:"redis"`
	MariaDB          string  `json:"mariadb"`
	InnoDBBufferPool string  `json:"innodb_buffer_pool"`
	Twemproxy        string  `json:"twemproxy"`
	GitCommit        string  `json:"git_commit"`
	LoadAvg          string  `json:"loadavg_at_start"`
	NoFile           uint64  `json:"rlimit_nofile"`
}

// Params are the run's sizes, durations and rates.
type Params struct {
	Scales         []int64            `json:"scales_cards"`
	CardsPerUser   int                `json:"cards_per_user"`
	CachedShare    float64            `json:"cached_share"`
	MaxCachedUsers int                `json:"max_cached_users"`
	ConnsLow       int                `json:"conns_low"`
	ConnsHigh      int                `json:"conns_high"`
	Warmup         string             `json:"warmup"`
	Duration       string             `json:"duration"`
	OpenRates      map[string]float64 `json:"open_loop_rates"`
	MariaDBPool    int                `json:"mariadb_baseline_pool"`
	RedisSettings  string             `json:"redis"`
	SidecarFlags   string             `json:"sidecar_flags"`
	Client         string             `json:"client"`
}

func (p *Params) fill(o Options) {
	for _, s := range o.Scales {
		p.Scales = append(p.Scales, s.Cards)
	}
	p.CardsPerUser, p.CachedShare, p.MaxCachedUsers = o.CardsPerUser, o.CachedShare, o.MaxCached
	p.ConnsLow, p.ConnsHigh = o.ConnsLow, o.ConnsHigh
	p.Warmup, p.Duration = o.Warmup.String(), o.Duration.String()
	p.OpenRates = map[string]float64{"due": o.RateDue, "review": o.RateReview, "session (sessions/s)": o.RateSession,
		"mixed": o.RateMixed, "safe-mode due": o.RateSafe}
	p.MariaDBPool = maxMariaConns
	p.Client = "raw RESP2 client, one connection and goroutine per worker, one request in flight per connection (a session pipelines its 50 reviews)"
}

// SeedResult is the seeding of one scale.
type SeedResult struct {
	Season              string  `json:"season"`
	Cards               int64   `json:"cards"`
	Users               int     `json:"users"`
	CachedUsers         int     `json:"cached_users"`
	PartitionCreateMS   float64 `json:"partition_create_ms"`
	MariaDBSeconds      float64 `json:"mariadb_seconds"`
	RowsPerSecond       float64 `json:"mariadb_rows_per_second"`
	RedisSeconds        float64 `json:"redis_seconds"`
	RedisCardsPerSecond float64 `json:"redis_cards_per_second"`
}

// RunResult is one measurement.
type RunResult struct {
	Cards    int64   `json:"cards"`
	Scenario string  `json:"scenario"`
	Mode     string  `json:"mode"`
	Target   string  `json:"target"`
	Conns    int     `json:"conns"`
	Rate     float64 `json:"rate,omitempty"`
	loadResult
	CPU       map[string]float64 `json:"cpu_cores,omitempty"`      // cores used in the measured window, by process
	RedisCmds map[string]CmdStat `json:"redis_commands,omitempty"` // upstream Redis commandstats over the run
	Note      string             `json:"note,omitempty"`
}

// CmdStat is one line of Redis INFO commandstats.
type CmdStat struct {
	Calls       int64   `json:"calls"`
	UsecPerCall float64 `json:"usec_per_call"`
}

// MarshalJSON flattens the load result into the run.
func (r RunResult) MarshalJSON() ([]byte, error) {
	type plain struct {
		Cards      int64              `json:"cards"`
		Scenario   string             `json:"scenario"`
		Mode       string             `json:"mode"`
		Target     string             `json:"target"`
		Conns      int                `json:"conns"`
		Rate       float64            `json:"rate,omitempty"`
		Seconds    float64            `json:"seconds"`
		Throughput float64            `json:"throughput"`
		Latency    Latency            `json:"latency"`
		Kinds      map[string]Latency `json:"latency_by_command,omitempty"`
		Errors     int64              `json:"errors"`
		ErrorKinds map[string]int64   `json:"error_kinds,omitempty"`
		Workers    int                `json:"connected"`
		CPU        map[string]float64 `json:"cpu_cores,omitempty"`
		RedisCmds  map[string]CmdStat `json:"redis_commands,omitempty"`
		Note       string             `json:"note,omitempty"`
	}
	return json.Marshal(plain{r.Cards, r.Scenario, r.Mode, r.Target, r.Conns, r.Rate, r.Seconds,
		math.Round(r.Throughput), r.Latency, r.Kinds, r.Errors, r.ErrorKinds, r.Workers, r.CPU, r.RedisCmds, r.Note})
}

// Ratio compares the sidecar with a baseline in one configuration.
type Ratio struct {
	Cards      int64   `json:"cards"`
	Mode       string  `json:"mode"`
	Conns      int     `json:"conns"`
	Baseline   string  `json:"baseline"`
	Throughput float64 `json:"throughput_ratio"` // sidecar / baseline
	P99        float64 `json:"p99_ratio"`        // sidecar / baseline
}

// System holds the figures that are not a load run.
type System struct {
	Memory                     []MemoryFigure `json:"redis_memory"`
	DrainLagP50MS              float64        `json:"drain_lag_p50_ms"`
	DrainLagP99MS              float64        `json:"drain_lag_p99_ms"`
	DrainLagMaxMS              float64        `json:"drain_lag_max_ms"`
	DrainSamples               int            `json:"drain_lag_samples"`
	DrainRowsPerSecond         float64        `json:"drain_rows_per_second"`
	DrainRows                  int64          `json:"drain_rows"`
	QueueDepthMax              int64          `json:"queue_depth_max"`
	DrainCatchUpSeconds        float64        `json:"drain_catch_up_seconds"`
	PartitionCreateLoadedMS    float64        `json:"partition_create_loaded_ms"`
	PartitionCreateLoadedCards int64          `json:"partition_create_loaded_cards"`
	Archive                    string         `json:"archive"`
	ArchiveSeconds             float64        `json:"archive_seconds,omitempty"`
	Rebuild                    string         `json:"rebuild"`
	RebuildCardsPerSecond      float64        `json:"rebuild_cards_per_second,omitempty"`
	DrainBacklog               DrainBacklog   `json:"drain_backlog"`
	// DrainAfterMixedRowsPerSecond is the drain at capacity: the review_log
	// rows the sidecar wrote while it worked off the backlog the mixed load
	// left, over that time (0: too small a backlog to time).
	DrainAfterMixedRowsPerSecond float64 `json:"drain_after_mixed_rows_per_second"`
}

// DrainBacklog is the drain flat out: a backlog queued while MariaDB was cut,
// drained once it was back.
type DrainBacklog struct {
	Rows          int64   `json:"rows"`
	Seconds       float64 `json:"seconds"`
	RowsPerSecond float64 `json:"rows_per_second"`
}

// Target is one of issue 6's targets with its verdict.
type Target struct {
	Name     string `json:"name"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"` // nil: not measured in this run
	From     string `json:"from"`
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func (r *Report) find(cards int64, scenario, mode, target string, conns int) *RunResult {
	for i := range r.Runs {
		x := &r.Runs[i]
		if x.Cards == cards && x.Scenario == scenario && x.Mode == mode && x.Target == target && x.Conns == conns {
			return x
		}
	}
	return nil
}

// evaluate computes the ratios and the verdicts on issue 6's targets from
// the measured runs; nothing here is assumed.
func (r *Report) evaluate(o Options) {
	var primary, smallest int64
	for _, s := range o.Scales {
		if s.Full {
			primary = s.Cards
		}
		if smallest == 0 || s.Cards < smallest {
			smallest = s.Cards
		}
	}
	for _, x := range r.Runs {
		if x.Target != targetSidecar || x.Scenario != "due" {
			continue
		}
		for _, base := range []string{targetRedis, targetTwemproxy, targetMariaDB} {
			y := r.find(x.Cards, "due", x.Mode, base, x.Conns)
			if y == nil || y.Throughput == 0 || y.Latency.P99 == 0 {
				continue
			}
			r.Ratios = append(r.Ratios, Ratio{Cards: x.Cards, Mode: x.Mode, Conns: x.Conns, Baseline: base,
				Throughput: round3(x.Throughput / y.Throughput), P99: round3(x.Latency.P99 / y.Latency.P99)})
		}
	}
	lo, hi := o.ConnsLow, o.ConnsHigh
	verdict := func(ok bool) *bool { return &ok }
	add := func(name, measured, from string, met *bool) {
		r.Targets = append(r.Targets, Target{Name: name, Measured: measured, Met: met, From: from})
	}
	missing := func(name string) { add(name, "not measured", "", nil) }

	// Issue 11's targets, each against its anchor in this run.
	// 1. SRS.DUE closed-loop throughput ≥ twemproxy's raw ZRANGEBYSCORE.
	name := fmt.Sprintf("SRS.DUE closed loop c=%d ≥ 1.0× twemproxy ZRANGEBYSCORE req/s", lo)
	if s, t := r.find(primary, "due", "closed", targetSidecar, lo), r.find(primary, "due", "closed", targetTwemproxy, lo); s != nil && t != nil {
		add(name, fmt.Sprintf("%.0f vs %.0f req/s (×%.2f)", s.Throughput, t.Throughput, s.Throughput/t.Throughput),
			fmt.Sprintf("%s due closed c=%d", label(primary), lo), verdict(s.Throughput >= t.Throughput))
	} else {
		missing(name)
	}
	// 2. SRS.DUE p99 ≤ 1.5 ms, closed loop at the low connection count.
	name = fmt.Sprintf("SRS.DUE p99 ≤ 1.5 ms closed loop c=%d", lo)
	if s := r.find(primary, "due", "closed", targetSidecar, lo); s != nil {
		m := fmt.Sprintf("%.3f ms", s.Latency.P99)
		if t := r.find(primary, "due", "closed", targetTwemproxy, lo); t != nil {
			m += fmt.Sprintf(" (twemproxy %.3f ms)", t.Latency.P99)
		}
		add(name, m, fmt.Sprintf("%s due closed c=%d", label(primary), lo), verdict(s.Latency.P99 <= 1.5))
	} else {
		missing(name)
	}
	// 3. Redis CPU per SRS.DUE ≤ 2× a raw ZRANGEBYSCORE: every command the
	// sidecar sent during the run, over the requests it served.
	name = "Redis µs per SRS.DUE (all commands) ≤ 2× a raw ZRANGEBYSCORE"
	if s, raw := r.find(primary, "due", "closed", targetSidecar, lo), r.find(primary, "due", "closed", targetRedis, lo); s != nil && raw != nil && raw.RedisCmds["zrangebyscore"].Calls > 0 {
		per := redisUsecPerRequest(s)
		base := raw.RedisCmds["zrangebyscore"].UsecPerCall
		add(name, fmt.Sprintf("%.2f vs %.2f µs (×%.2f; %s)", per, base, per/base, cmdSummary(s.RedisCmds)),
			fmt.Sprintf("%s due closed c=%d, INFO commandstats", label(primary), lo), verdict(per <= 2*base))
	} else {
		missing(name)
	}
	// 4. Durable SRS.REVIEW ≥ 0.5× Redis appendfsync-always HSET, p99 ≤ 5 ms.
	name = fmt.Sprintf("durable SRS.REVIEW closed loop c=%d ≥ 0.5× Redis appendfsync-always HSET req/s, p99 ≤ 5 ms", lo)
	if s, a := r.find(primary, "review", "closed", targetSidecar, lo), r.find(primary, "review", "closed", targetRedisAOF, lo); s != nil && a != nil {
		add(name, fmt.Sprintf("%.0f vs %.0f req/s (×%.2f), p99 %.3f ms (HSET %.3f ms)", s.Throughput, a.Throughput, s.Throughput/a.Throughput, s.Latency.P99, a.Latency.P99),
			fmt.Sprintf("%s review closed c=%d", label(primary), lo), verdict(s.Throughput >= 0.5*a.Throughput && s.Latency.P99 <= 5))
	} else {
		missing(name)
	}
	// 5. ≤ 64 bytes of Redis per cached card with the recommended settings.
	name = "≤ 64 bytes of Redis per cached card (card hash + version and labels keys), recommended settings"
	var rec *MemoryFigure
	for i := range r.System.Memory {
		if m := &r.System.Memory[i]; m.Settings == "recommended" && m.Cards == primary {
			rec = m
		}
	}
	if rec != nil {
		m := fmt.Sprintf("%.1f B (hash %.1f + version and labels %.1f)", rec.BytesPerCard, rec.StateBytes, rec.VersionBytes)
		for _, d := range r.System.Memory {
			if d.Settings == "defaults" && d.Cards == primary {
				m += fmt.Sprintf("; Redis defaults %.1f B", d.BytesPerCard)
			}
		}
		add(name, m, fmt.Sprintf("MEMORY USAGE over %d users of %s", rec.SampledUsers, label(primary)), verdict(rec.BytesPerCard <= 64))
	} else {
		missing(name)
	}
	// 6. Drain ≥ 20,000 review rows/s sustained.
	name = "drain ≥ 20,000 review rows/s sustained"
	if d := r.System.DrainBacklog; d.Rows > 0 {
		add(name, fmt.Sprintf("%.0f rows/s (%d rows queued while the drain was held, drained in %.2f s)", d.RowsPerSecond, d.Rows, d.Seconds),
			fmt.Sprintf("%s review backlog", label(primary)), verdict(d.RowsPerSecond >= 20000))
	} else {
		missing(name)
	}
	// 7. 10,000 connections, open loop mixed: due p99 < 20 ms, review p99 < 100 ms.
	name = fmt.Sprintf("%d connections, open loop %.0f req/s mixed: SRS.DUE p99 < 20 ms, SRS.REVIEW p99 < 100 ms", hi, o.RateMixed)
	if s := r.find(primary, "mixed", "open", targetSidecar, hi); s != nil {
		due, rev := s.Kinds["due"], s.Kinds["review"]
		m := fmt.Sprintf("due %.3f ms, review %.3f ms, %d errors", due.P99, rev.P99, s.Errors)
		if r.System.DrainSamples > 0 {
			m += fmt.Sprintf("; drain lag p99 %.0f ms", r.System.DrainLagP99MS)
		}
		add(name, m, fmt.Sprintf("%s mixed open c=%d", label(primary), hi), verdict(due.Count > 0 && due.P99 < 20 && rev.P99 < 100 && s.Errors == 0))
	} else {
		missing(name)
	}
	// 8. SRS.DUE p99 flat within 20% across the scales (closed loop: a
	// service-time property).
	name = "SRS.DUE p99 flat within 20% across " + scalesLabel(o.Scales)
	var p99s []string
	var lo99, hi99 float64
	for _, sc := range o.Scales {
		if x := r.find(sc.Cards, "due", "closed", targetSidecar, lo); x != nil {
			p99s = append(p99s, fmt.Sprintf("%s %.3f ms", label(sc.Cards), x.Latency.P99))
			if lo99 == 0 || x.Latency.P99 < lo99 {
				lo99 = x.Latency.P99
			}
			hi99 = max(hi99, x.Latency.P99)
		}
	}
	if len(p99s) > 1 {
		add(name, strings.Join(p99s, " → ")+fmt.Sprintf(" (spread %+.0f%%)", 100*(hi99/lo99-1)),
			fmt.Sprintf("due closed c=%d at each scale", lo), verdict(hi99 <= 1.2*lo99))
	} else {
		missing(name)
	}
}

// redisUsecPerRequest is Redis's own time for every command of a run over
// the requests the run completed.
func redisUsecPerRequest(x *RunResult) float64 {
	var usec float64
	for name, c := range x.RedisCmds {
		if name != "info" && name != "config|resetstat" {
			usec += float64(c.Calls) * c.UsecPerCall
		}
	}
	n := x.Throughput * x.Seconds
	if n == 0 {
		return 0
	}
	return usec / n
}

// cmdSummary lists a run's Redis commands by calls.
func cmdSummary(cmds map[string]CmdStat) string {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		if n != "info" && n != "config|resetstat" {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool { return cmds[names[i]].Calls > cmds[names[j]].Calls })
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d × %.2f µs", n, cmds[n].Calls, cmds[n].UsecPerCall))
	}
	return strings.Join(parts, ", ")
}

func scalesLabel(scales []scale) string {
	parts := make([]string, 0, len(scales))
	for _, s := range scales {
		parts = append(parts, label(s.Cards))
	}
	return strings.Join(parts, " → ")
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// round3 keeps three significant digits.
func round3(f float64) float64 {
	if f == 0 {
		return 0
	}
	p := math.Pow(10, 2-math.Floor(math.Log10(math.Abs(f))))
	return math.Round(f*p) / p
}

// --- machine description -----------------------------------------------------

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			}
		}
		m.MemoryGiB = math.Round(kb/1024/1024*10) / 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.GitCommit = strings.TrimSpace(string(out))
	}
	return m
}

func redisVersion(addr string) (string, error) {
	v, err := doOnce(addr, "INFO", "server")
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	for _, l := range strings.Split(s, "\r\n") {
		if x, ok := strings.CutPrefix(l, "redis_version:"); ok {
			return x, nil
		}
	}
	return "", fmt.Errorf("no redis_version")
}

func nutcrackerVersion(bin string) string {
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "This is nutcracker-"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// --- output ----------------------------------------------------------------------

// write stores <profile>.json and <profile>.md in dir.
func (r *Report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, r.Profile+".json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, r.Profile+".md"), []byte(r.Markdown()), 0o644)
}

func f0(x float64) string { return fmt.Sprintf("%.0f", x) }
func f3(x float64) string { return fmt.Sprintf("%.3f", x) }

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	m := r.Machine
	p("# srsbench — profile `%s`, %s", r.Profile, r.Date)
	p("")
	p("Generated by `cmd/srsbench` (`make bench`); see [../BENCHMARKS.md](../BENCHMARKS.md) for how to read it. Whole run: %.0f s.", r.Seconds)
	p("")
	p("## Machine")
	p("")
	p("| | |")
	p("|---|---|")
	p("| CPU | %s, %d cores |", m.CPU, m.Cores)
	p("| memory | %.1f GiB |", m.MemoryGiB)
	p("| kernel / OS | %s / %s |", m.Kernel, m.OS)
	p("| Go | %s |", m.Go)
	p("| Redis | %s |", m.Redis)
	p("| MariaDB | %s (innodb_buffer_pool_size %s) |", m.MariaDB, m.InnoDBBufferPool)
	p("| twemproxy | %s |", or(m.Twemproxy, "not installed"))
	p("| commit | %s |", or(m.GitCommit, "unknown"))
	p("| RLIMIT_NOFILE | %d |", m.NoFile)
	p("| load average at start | %s |", m.LoadAvg)
	p("")
	p("## Parameters")
	p("")
	pr := r.Params
	scales := make([]string, len(pr.Scales))
	for i, s := range pr.Scales {
		scales[i] = label(s)
	}
	p("- scales: %s cards, %d cards per user, %.0f%% of users cached (at most %d)", strings.Join(scales, ", "), pr.CardsPerUser, 100*pr.CachedShare, pr.MaxCachedUsers)
	p("- connections: %d and %d; warm-up %s, measured %s per run", pr.ConnsLow, pr.ConnsHigh, pr.Warmup, pr.Duration)
	rates := make([]string, 0, len(pr.OpenRates))
	for _, k := range sortedKeys(pr.OpenRates) {
		rates = append(rates, fmt.Sprintf("%s %.0f/s", k, pr.OpenRates[k]))
	}
	p("- open-loop rates: %s", strings.Join(rates, ", "))
	p("- upstream Redis: %s", pr.RedisSettings)
	p("- sidecar: `bin/srsproxy %s` (fsync always: a review is acknowledged after its fsync)", pr.SidecarFlags)
	p("- MariaDB baseline: a pool of at most %d connections shared by the workers", pr.MariaDBPool)
	p("- client: %s", pr.Client)
	p("")
	p("## Seed")
	p("")
	p("| season | cards | users | cached users | partition create ms | MariaDB s | rows/s | Redis load s | cards/s |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range r.Seeds {
		p("| %s | %d | %d | %d | %.1f | %.1f | %s | %.1f | %s |", s.Season, s.Cards, s.Users, s.CachedUsers, s.PartitionCreateMS,
			s.MariaDBSeconds, f0(s.RowsPerSecond), s.RedisSeconds, f0(s.RedisCardsPerSecond))
	}
	p("")
	p("## Load")
	p("")
	p("Latency in ms. Closed loop: each connection sends its next request when the reply arrives (max throughput). Open loop: fixed rate, latency from the intended send time (coordinated omission corrected). A session is 50 SRS.REVIEW in one pipeline; its throughput is sessions/s.")
	p("")
	p("CPU: cores each process used in the measured window — cl the bench client, sp the sidecar (sp-safe the Safe Mode one), rd the upstream redis-server, tw nutcracker, db mariadbd, host the whole machine, other = host minus ours: load from other processes on the machine, which makes that run's numbers less trustworthy.")
	p("")
	p("Redis µs/call: Redis's own time per call of the request's main command (INFO commandstats): the sidecar's Lua scripts (`evalsha`) or `zrangebyscore`.")
	p("")
	p("| cards | scenario | mode | conns | rate | target | req/s | p50 | p90 | p99 | p99.9 | max | errors | CPU | Redis µs/call |")
	p("|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, x := range r.Runs {
		rate := ""
		if x.Rate > 0 {
			rate = f0(x.Rate)
		}
		p("| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s |", label(x.Cards), x.Scenario, x.Mode, x.Conns, rate, x.Target,
			f0(x.Throughput), f3(x.Latency.P50), f3(x.Latency.P90), f3(x.Latency.P99), f3(x.Latency.P999), f3(x.Latency.Max), x.Errors, shortCPU(x.CPU), mainCmd(x.RedisCmds))
		for _, k := range sortedKeys(x.Kinds) {
			l := x.Kinds[k]
			p("| | ↳ %s | | | | | %d | %s | %s | %s | %s | %s | | | |", k, l.Count, f3(l.P50), f3(l.P90), f3(l.P99), f3(l.P999), f3(l.Max))
		}
	}
	var notes []string
	for _, x := range r.Runs {
		if x.Note != "" {
			notes = append(notes, fmt.Sprintf("- %s %s %s c=%d %s: %s", label(x.Cards), x.Scenario, x.Mode, x.Conns, x.Target, x.Note))
		}
	}
	if len(notes) > 0 {
		p("")
		p("Run notes:")
		p("")
		for _, n := range notes {
			p("%s", n)
		}
	}
	var errs []string
	for _, x := range r.Runs {
		for _, k := range sortedKeys(x.ErrorKinds) {
			errs = append(errs, fmt.Sprintf("- %s %s %s c=%d %s: `%s` ×%d", label(x.Cards), x.Scenario, x.Mode, x.Conns, x.Target, k, x.ErrorKinds[k]))
		}
	}
	if len(errs) > 0 {
		p("")
		p("Errors seen:")
		p("")
		for _, e := range errs {
			p("%s", e)
		}
	}
	p("")
	p("## Ratios (SRS.DUE over the baseline)")
	p("")
	p("Throughput ratio > 1: the sidecar served more; p99 ratio > 1: the sidecar's p99 is higher. The baselines return question ids only (Redis, twemproxy) or full rows (MariaDB); SRS.DUE returns every item's state and the due count.")
	p("")
	p("| cards | mode | conns | baseline | throughput sidecar/baseline | p99 sidecar/baseline |")
	p("|---|---|---:|---|---:|---:|")
	for _, x := range r.Ratios {
		p("| %s | %s | %d | %s | %.3g | %.3g |", label(x.Cards), x.Mode, x.Conns, x.Baseline, x.Throughput, x.P99)
	}
	p("")
	p("## System figures")
	p("")
	s := r.System
	p("| figure | value |")
	p("|---|---|")
	for _, mf := range s.Memory {
		p("| Redis bytes per cached card, %s settings (%s) | %.1f (version and labels keys %.1f, labels %s; card hash %.1f, %s; %d users sampled) |", mf.Settings, label(mf.Cards),
			mf.BytesPerCard, mf.VersionBytes, mf.VersionEncoding, mf.StateBytes, mf.StateEncoding, mf.SampledUsers)
	}
	if s.DrainSamples > 0 {
		p("| drain lag under mixed load (p50 / p99 / max) | %.0f / %.0f / %.0f ms |", s.DrainLagP50MS, s.DrainLagP99MS, s.DrainLagMaxMS)
		p("| drain rows/s under mixed load (review_log) | %.0f (%d rows; queue depth max %d; caught up %.1f s after the load) |", s.DrainRowsPerSecond, s.DrainRows, s.QueueDepthMax, s.DrainCatchUpSeconds)
		if s.DrainAfterMixedRowsPerSecond > 0 {
			p("| drain rows/s sustained (the backlog after the mixed load, review_log) | %.0f |", s.DrainAfterMixedRowsPerSecond)
		}
	}
	if d := s.DrainBacklog; d.Rows > 0 {
		p("| drain flat out: a backlog queued with MariaDB cut | %.0f rows/s (%d rows in %.2f s) |", d.RowsPerSecond, d.Rows, d.Seconds)
	}
	for _, sd := range r.Seeds {
		p("| season partition creation, %s | %.1f ms |", sd.Season, sd.PartitionCreateMS)
	}
	if s.PartitionCreateLoadedCards > 0 {
		p("| season partition creation with %s cards in the table | %.1f ms |", label(s.PartitionCreateLoadedCards), s.PartitionCreateLoadedMS)
	}
	for _, x := range r.Runs {
		if x.Target == targetSafeMode {
			p("| Safe Mode SRS.DUE p99, %s loop c=%d | %.3f ms (%.0f req/s) |", x.Mode, x.Conns, x.Latency.P99, x.Throughput)
		}
	}
	p("| archive seconds | %s |", s.Archive)
	p("| cache rebuild cards/s | %s |", s.Rebuild)
	p("")
	p("## Targets (issue 11)")
	p("")
	p("| target | measured | met | from |")
	p("|---|---|---|---|")
	for _, t := range r.Targets {
		met := "not measured"
		if t.Met != nil {
			met = map[bool]string{true: "met", false: "**not met**"}[*t.Met]
		}
		p("| %s | %s | %s | %s |", t.Name, t.Measured, met, t.From)
	}
	if len(r.Notes) > 0 {
		p("")
		p("## Notes")
		p("")
		for _, n := range r.Notes {
			p("- %s", n)
		}
	}
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// shortCPU renders a run's CPU figure for the table.
func shortCPU(m map[string]float64) string {
	var parts []string
	ours := 0.0
	for _, k := range [][2]string{{"client", "cl"}, {"srsproxy", "sp"}, {"srsproxy-safe", "sp-safe"}, {"redis", "rd"},
		{"nutcracker", "tw"}, {"mariadb", "db"}, {"host", "host"}} {
		v, ok := m[k[0]]
		if k[0] != "host" {
			ours += v
		}
		if ok && (v >= 0.05 || k[0] == "host") {
			parts = append(parts, fmt.Sprintf("%s %.2f", k[1], v))
		}
	}
	if other := m["host"] - ours; other >= 0.1 {
		parts = append(parts, fmt.Sprintf("**other %.2f**", other))
	}
	return strings.Join(parts, " · ")
}

// mainCmd is the Redis time per call of a run's main command.
func mainCmd(m map[string]CmdStat) string {
	for _, k := range []string{"evalsha", "zrangebyscore"} {
		if c, ok := m[k]; ok && c.Calls > 0 {
			return fmt.Sprintf("%s %.1f", k, c.UsecPerCall)
		}
	}
	return ""
}
