package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	rcache "github.com/srsproxy/srsproxy/backend/redis"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

const importUsage = `usage: srsproxy import memora --from DSN --table tracker|state [options]

Copies memora's schedules into srsproxy's MariaDB (--mysql), then drops the
imported students' cache entries in Redis (--redis) so the next SRS.DUE
loads them. Resumable and idempotent: progress is kept per import in the
target's import_runs table; running it again resumes an unfinished pass, or
starts a new pass over a finished one (nothing is doubled, and a card
reviewed through srsproxy after the pass started is never overwritten).

`

// importConfig is the import's whole configuration.
type importConfig struct {
	From          string // source DSN (memora's database)
	Table         string // tracker | state
	Season        string
	DefaultSeason string
	SubjectColumn string
	TopicColumn   string
	SourceTZ      string
	DryRun        bool
	PageRows      int
	Workers       int
	Progress      string // auto | bar | log
	Conn          Config // the sidecar's --mysql and --redis settings
	NoCache       bool   // --redis off
}

// parseImport reads the flags of `srsproxy import memora`, with the
// sidecar's SRSPROXY_* environment variables for the shared ones.
func parseImport(args []string, getenv func(string) string, stderr io.Writer) (importConfig, error) {
	var c importConfig
	fs := flag.NewFlagSet("srsproxy import memora", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage); fs.PrintDefaults() }
	fs.StringVar(&c.From, "from", "", "memora's MariaDB DSN (user:pass@tcp(host:3306)/db), read only")
	fs.StringVar(&c.Table, "table", "", "tracker (tabPlayer Memory Tracker) or state (tabMemora Memory State)")
	fs.StringVar(&c.Season, "season", "", "the season of the state table (required there), or one season of the tracker to import")
	fs.StringVar(&c.DefaultSeason, "default-season", "", "the season of tracker rows whose season is '' (default: skip them)")
	fs.StringVar(&c.SubjectColumn, "subject-column", "", "source column holding the card's subject")
	fs.StringVar(&c.TopicColumn, "topic-column", "", "source column holding the card's topic")
	fs.StringVar(&c.SourceTZ, "source-timezone", "UTC", "time zone of the source's DATETIME values")
	fs.BoolVar(&c.DryRun, "dry-run", false, "read and map everything, print the summary, write nothing")
	fs.IntVar(&c.PageRows, "page-rows", 20000, "source rows per keyset page")
	fs.IntVar(&c.Workers, "workers", 4, "pages read and written at once (the source's reads are random primary-key reads: several at once overlap their I/O)")
	fs.StringVar(&c.Progress, "progress", "auto", "bar (a progress bar), log (a line every few seconds) or auto (bar on a terminal)")
	fs.StringVar(&c.Conn.MySQL, "mysql", "", "srsproxy's MariaDB DSN, the target (default root@tcp(127.0.0.1:3306)/srs)")
	fs.Var(listFlag{&c.Conn.Redis}, "redis", "upstream Redis addresses of the sidecars, comma-separated, or off (default 127.0.0.1:6379)")
	fs.BoolVar(&c.Conn.RedisCluster, "redis-cluster", false, "the upstream is a Redis Cluster even with one --redis address")
	fs.StringVar(&c.Conn.RedisPrefix, "redis-prefix", "", "key prefix of the sidecars in the upstream Redis (default srs)")
	shared := map[string]bool{}
	for _, name := range append(connFlags(fs, &c.Conn), "mysql", "redis", "redis-cluster", "redis-prefix") {
		shared[name] = true
	}
	if err := applyEnv(fs, getenv, shared); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if len(c.Conn.Redis) == 1 && c.Conn.Redis[0] == "off" {
		c.NoCache, c.Conn.Redis = true, nil
	}
	c.Conn = c.Conn.withDefaults()
	return c, c.validate()
}

func (c importConfig) validate() error {
	switch {
	case c.From == "":
		return errors.New("--from is required (memora's DSN)")
	case c.Table != "tracker" && c.Table != "state":
		return fmt.Errorf("--table %q: want tracker or state", c.Table)
	case c.Table == "state" && c.Season == "":
		return errors.New("--season is required with --table state (the state table has no season)")
	case c.Table == "state" && c.DefaultSeason != "":
		return errors.New("--default-season applies to --table tracker only (use --season)")
	case c.Season != "" && !srs.ValidSeasonName(c.Season):
		return fmt.Errorf("--season %q: %w", c.Season, srs.ErrInvalidSeasonName)
	case c.DefaultSeason != "" && !srs.ValidSeasonName(c.DefaultSeason):
		return fmt.Errorf("--default-season %q: %w", c.DefaultSeason, srs.ErrInvalidSeasonName)
	case c.SubjectColumn != "" && !identRe.MatchString(c.SubjectColumn):
		return fmt.Errorf("--subject-column %q: want a column name ([A-Za-z_][A-Za-z0-9_]*)", c.SubjectColumn)
	case c.TopicColumn != "" && !identRe.MatchString(c.TopicColumn):
		return fmt.Errorf("--topic-column %q: want a column name ([A-Za-z_][A-Za-z0-9_]*)", c.TopicColumn)
	case c.PageRows < 100 || c.PageRows > 1000000:
		return fmt.Errorf("--page-rows %d: want 100-1000000", c.PageRows)
	case c.Workers < 1 || c.Workers > 32:
		return fmt.Errorf("--workers %d: want 1-32", c.Workers)
	case c.Progress != "auto" && c.Progress != "bar" && c.Progress != "log":
		return fmt.Errorf("--progress %q: want auto, bar or log", c.Progress)
	}
	if _, err := time.LoadLocation(c.SourceTZ); err != nil {
		return fmt.Errorf("--source-timezone %q: %w", c.SourceTZ, err)
	}
	if _, err := mysql.ParseDSN(c.From); err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	return c.Conn.validateTLS()
}

// sourceLabel names the source without its password.
func sourceLabel(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "?"
	}
	return cfg.Net + "(" + cfg.Addr + ")/" + cfg.DBName
}

// id is the import's identity: what it reads and how it maps it. The same
// command run again is the same import (and resumes it).
func (c importConfig) id() (id, options string) {
	options = fmt.Sprintf("memora table=%s from=%s season=%s default-season=%s subject-column=%s topic-column=%s source-timezone=%s",
		c.Table, sourceLabel(c.From), c.Season, c.DefaultSeason, c.SubjectColumn, c.TopicColumn, c.SourceTZ)
	sum := sha256.Sum256([]byte(options))
	return "memora-" + c.Table + "-" + hex.EncodeToString(sum[:8]), options
}

// importCounts are an import pass's counters, saved with its cursor.
type importCounts struct {
	Rows       int64            `json:"rows"`       // source rows read
	Duplicates int64            `json:"duplicates"` // rows collapsed into a newer row of the same card
	Cards      int64            `json:"cards"`      // cards mapped
	Inserted   int64            `json:"inserted"`
	Updated    int64            `json:"updated"`
	Unchanged  int64            `json:"unchanged"`
	Kept       int64            `json:"kept"`         // newer in srsproxy: not overwritten
	Students   int64            `json:"students"`     // user-seasons whose cache entry was dropped
	Skipped    map[string]int64 `json:"skipped"`      // rows by reason
	Created    []string         `json:"created"`      // seasons created
	WouldCreat []string         `json:"would_create"` // --dry-run: seasons it would create
}

func (c *importCounts) add(m mapped, w mariadb.ImportWrite, students int) {
	c.Rows += m.read
	c.Duplicates += m.duplicates
	c.Cards += int64(len(m.cards))
	c.Inserted += int64(w.Inserted)
	c.Updated += int64(w.Updated)
	c.Unchanged += int64(w.Unchanged)
	c.Kept += int64(w.Kept)
	c.Students += int64(students)
	if c.Skipped == nil {
		c.Skipped = map[string]int64{}
	}
	for k, v := range m.skipped {
		c.Skipped[k] += v
	}
}

func (c importCounts) skippedTotal() int64 {
	var n int64
	for _, v := range c.Skipped {
		n += v
	}
	return n
}

// format writes the summary.
func (c importCounts) format(w io.Writer, dryRun, noCache bool, elapsed time.Duration) {
	verb := "written"
	if dryRun {
		verb = "that would be written"
	}
	rate := float64(c.Rows) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "rows read:             %d (%.0f rows/s over %s)\n", c.Rows, rate, elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "duplicates collapsed:  %d\n", c.Duplicates)
	fmt.Fprintf(w, "cards %s: %d\n", verb, c.Cards)
	if !dryRun {
		fmt.Fprintf(w, "  inserted %d, updated %d, unchanged %d, kept (newer in srsproxy) %d\n", c.Inserted, c.Updated, c.Unchanged, c.Kept)
		fmt.Fprintf(w, "students' cache dropped: %d%s\n", c.Students, map[bool]string{true: " (--redis off)"}[noCache])
	}
	fmt.Fprintf(w, "rows skipped:          %d\n", c.skippedTotal())
	for _, k := range slices.Sorted(maps.Keys(c.Skipped)) {
		fmt.Fprintf(w, "  %-34s %d\n", k+":", c.Skipped[k])
	}
	if len(c.Created) > 0 {
		fmt.Fprintf(w, "seasons created:       %s\n", strings.Join(c.Created, " "))
	}
	if len(c.WouldCreat) > 0 {
		fmt.Fprintf(w, "seasons to create:     %s\n", strings.Join(c.WouldCreat, " "))
	}
}

// runImport is `srsproxy import memora …`. It returns the exit status: 0
// done, 1 failed (progress so far is kept; run it again to resume), 2 bad
// usage.
func runImport(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "memora" {
		fmt.Fprint(stderr, importUsage+"run 'srsproxy import memora -h' for the options\n")
		return 2
	}
	c, err := parseImport(args[1:], os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "srsproxy import memora:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	imp := newImporter(c, stdout, stderr)
	if err := imp.run(ctx); err != nil {
		fmt.Fprintln(stderr, "srsproxy import memora:", err)
		if ctx.Err() != nil || imp.started {
			fmt.Fprintln(stderr, "srsproxy import memora: progress up to the last written page is saved; run the same command again to resume")
		}
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newImporter(c importConfig, stdout, stderr io.Writer) *importer {
	imp := &importer{cfg: c, stdout: stdout, stderr: stderr, saveEvery: time.Second,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	imp.bar = c.Progress == "bar" || c.Progress == "auto" && isTerminal(stderr)
	return imp
}

// importer runs one import.
type importer struct {
	saveEvery time.Duration // how often the cursor is saved
	onSaved   func()        // tests: called after each save of the cursor

	cfg            importConfig
	stdout, stderr io.Writer
	log            *slog.Logger
	bar            bool
	started        bool // a pass began: progress is saved

	store *mariadb.Store
	cache *rcache.Cache

	mu      sync.Mutex
	seasons map[string]seasonInfo
	counts  *importCounts // Created/WouldCreat are appended under mu
}

func (imp *importer) run(ctx context.Context) error {
	c := imp.cfg
	t0 := time.Now()
	loc, _ := time.LoadLocation(c.SourceTZ)
	srcCfg, _ := mysql.ParseDSN(c.From)
	srcCfg.ParseTime, srcCfg.Loc, srcCfg.InterpolateParams = true, loc, true
	srcCfg.Timeout = max(srcCfg.Timeout, 5*time.Second)
	connector, err := mysql.NewConnector(srcCfg)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	srcDB := sql.OpenDB(connector)
	defer srcDB.Close()
	srcDB.SetMaxOpenConns(4)
	src := &memoraSource{db: srcDB, table: trackerTable, tracker: c.Table == "tracker", season: c.Season,
		defSeason: c.DefaultSeason, subjectCol: c.SubjectColumn, topicCol: c.TopicColumn,
		pageRows: c.PageRows, readTimeout: 2 * time.Minute}
	if !src.tracker {
		src.table = stateTable
	}
	if err := src.check(ctx); err != nil {
		return err
	}

	dsn, err := mysqlDSN(c.Conn)
	if err != nil {
		return err
	}
	if c.DryRun {
		// Read only: no database created, no schema migrated.
		imp.store, err = mariadb.OpenDeferred(dsn, imp.log)
	} else {
		imp.store, err = mariadb.Open(ctx, dsn, imp.log)
	}
	if err != nil {
		return fmt.Errorf("--mysql: %w%s", err, plainRefusalHint(dsn, err))
	}
	defer imp.store.Close()
	if !c.DryRun && !c.NoCache {
		upTLS, err := redisTLS(c.Conn)
		if err != nil {
			return err
		}
		imp.cache, err = rcache.New(rcache.Options{Addrs: c.Conn.Redis, Cluster: c.Conn.RedisCluster, Username: c.Conn.RedisUsername,
			Password: c.Conn.RedisPassword, TLS: upTLS, Prefix: c.Conn.RedisPrefix, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		defer imp.cache.Close()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = imp.cache.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("--redis: %w (the imported students' cache entries must be dropped; --redis off if no sidecar uses this data yet)", err)
		}
	}

	id, options := c.id()
	run := mariadb.ImportRun{ID: id, Options: options, Pass: 1}
	counts := &importCounts{Skipped: map[string]int64{}}
	if !c.DryRun {
		if run, err = imp.store.BeginImport(ctx, id, options); err != nil {
			return err
		}
		imp.started = true
		if err := json.Unmarshal([]byte(run.Counts), counts); err != nil {
			return fmt.Errorf("import %s: saved counters: %w", id, err)
		}
		if counts.Skipped == nil {
			counts.Skipped = map[string]int64{}
		}
	}
	imp.counts = counts
	verb := "starting"
	if run.Resumed {
		verb = fmt.Sprintf("resuming after player %q (%d rows done)", run.Cursor, counts.Rows)
	}
	fmt.Fprintf(imp.stdout, "import %s pass %d: %s; %s\n", id, run.Pass, verb, options)
	if c.DryRun {
		fmt.Fprintln(imp.stdout, "dry run: nothing is written")
	}
	if run.Cursor == "" && !run.Resumed || c.DryRun {
		n, err := src.countNoPlayer(ctx)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		if n > 0 {
			counts.Rows += n
			counts.Skipped[skipNoPlayer] += n
		}
	}
	imp.seasons = map[string]seasonInfo{}
	m := &mapper{tracker: src.tracker, season: c.Season, defSeason: c.DefaultSeason, seasons: imp.season}
	prog := newImportProgress(imp.stderr, imp.bar, src.estimate(ctx), counts.Rows)
	err = imp.pipeline(ctx, src, m, run, counts, prog)
	prog.finish(counts.Rows, err == nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(imp.stdout, "import %s pass %d: done\n", id, run.Pass)
	counts.format(imp.stdout, c.DryRun, c.NoCache, time.Since(t0))
	return nil
}

// season is the mapper's view of a target season, looked up once; without
// --dry-run a missing season is created with its partitions.
func (imp *importer) season(name string) (seasonInfo, error) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	if info, ok := imp.seasons[name]; ok {
		return info, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		se      srs.Season
		created bool
		err     error
		info    seasonInfo
	)
	if imp.cfg.DryRun {
		se, err = imp.store.Season(ctx, name)
		if err != nil {
			// Unknown, or a target not prepared yet: it would be created.
			se, info.creating, err = srs.Season{Name: name, Scheduler: srs.DefaultSchedulerConfig()}, true, nil
			imp.counts.WouldCreat = append(imp.counts.WouldCreat, name)
		}
	} else {
		se, created, err = imp.store.EnsureImportSeason(ctx, name, time.Now())
		if err != nil {
			return seasonInfo{}, fmt.Errorf("season %s: %w", name, err)
		}
		if created {
			imp.counts.Created = append(imp.counts.Created, name)
		}
	}
	if se.Archive != srs.ArchiveNone {
		info.skip = skipArchived
	} else {
		sched, err := fsrs.New(se.Scheduler)
		if err != nil {
			return seasonInfo{}, fmt.Errorf("season %s: scheduler: %w", name, err)
		}
		info.ok = true
		info.d0 = sched.Next(srs.Schedule{}, srs.Good, 0, 0).Difficulty
	}
	imp.seasons[name] = info
	return info, nil
}

// pageJob is one page through the pipeline.
type pageJob struct {
	seq    int
	after  string // the players after this one…
	cursor string // …up to this one: the page's last player
	m      mapped
	w      mariadb.ImportWrite
	users  int
	err    error
	done   chan struct{}
}

// pipeline finds the pages' bounds in order (one goroutine), reads, maps and
// writes the pages on cfg.Workers goroutines, and advances the saved cursor
// in page order: the cursor only ever passes pages whose cards are all
// written and whose students' cache entries are dropped. A page written but not yet recorded
// when the import stops is written again on resume, which changes nothing.
func (imp *importer) pipeline(ctx context.Context, src *memoraSource, m *mapper, run mariadb.ImportRun, counts *importCounts, prog *importProgress) error {
	g, ctx := errgroup.WithContext(ctx)
	ordered := make(chan *pageJob, imp.cfg.Workers*2)
	work := make(chan *pageJob, imp.cfg.Workers)
	g.Go(func() error { // bounds: the keyset, in order
		defer close(ordered)
		defer close(work)
		cursor := run.Cursor
		for seq := 0; ; seq++ {
			hi, more, err := src.bound(ctx, cursor)
			if err != nil {
				return err
			}
			if !more {
				return nil
			}
			job := &pageJob{seq: seq, after: cursor, cursor: hi, done: make(chan struct{})}
			cursor = hi
			for _, ch := range []chan *pageJob{ordered, work} {
				select {
				case ch <- job:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	})
	// Each worker reads, maps and writes whole pages: the range reads (random
	// primary-key reads of the source) overlap as the writes do.
	for range imp.cfg.Workers {
		g.Go(func() error {
			for job := range work {
				job.err = imp.readWrite(ctx, src, m, run, job)
				close(job.done)
				if job.err != nil {
					return job.err
				}
			}
			return nil
		})
	}
	g.Go(func() error { // committer, in page order
		lastSave := time.Now()
		var last *pageJob
		save := func(done bool) error {
			if imp.cfg.DryRun || last == nil && !done {
				return nil
			}
			cursor := run.Cursor
			if last != nil {
				cursor = last.cursor
			}
			imp.mu.Lock()
			b, err := json.Marshal(counts)
			imp.mu.Unlock()
			if err != nil {
				return err
			}
			return imp.store.AdvanceImport(context.WithoutCancel(ctx), run, cursor, string(b), done)
		}
		for job := range ordered {
			select {
			case <-job.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if job.err != nil {
				return job.err
			}
			imp.mu.Lock()
			counts.add(job.m, job.w, job.users)
			imp.mu.Unlock()
			last = job
			prog.set(counts.Rows)
			if time.Since(lastSave) >= imp.saveEvery {
				if err := save(false); err != nil {
					return err
				}
				lastSave = time.Now()
				if imp.onSaved != nil {
					imp.onSaved()
				}
			}
		}
		if ctx.Err() != nil {
			save(false)
			return ctx.Err()
		}
		return save(true)
	})
	return g.Wait()
}

// readWrite reads and maps one page, then writes it.
func (imp *importer) readWrite(ctx context.Context, src *memoraSource, m *mapper, run mariadb.ImportRun, job *pageJob) error {
	rows, err := src.rows(ctx, job.after, job.cursor)
	if err != nil {
		return err
	}
	if job.m, err = m.page(rows); err != nil {
		return err
	}
	return imp.write(ctx, run, job)
}

// write writes one page's cards and drops their students' cache entries.
func (imp *importer) write(ctx context.Context, run mariadb.ImportRun, job *pageJob) error {
	if imp.cfg.DryRun || len(job.m.cards) == 0 {
		return nil
	}
	w, err := imp.store.WriteImported(ctx, run, job.m.cards)
	if err != nil {
		return err
	}
	job.w = w
	if imp.cache == nil {
		return nil
	}
	type user struct{ season, player string }
	seen := map[user]bool{}
	var users []user
	for _, c := range job.m.cards {
		if u := (user{c.Season, c.Player}); !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, u := range users {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(gctx, 5*time.Second)
			defer cancel()
			if err := imp.cache.Invalidate(cctx, u.season, u.player); err != nil {
				return fmt.Errorf("drop the cache entry of %s in %s: %w", u.player, u.season, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	job.users = len(users)
	return nil
}

// importProgress shows rows read: a progress bar (rows/s, ETA) on a
// terminal, a line every few seconds otherwise.
type importProgress struct {
	w        io.Writer
	bar      *progressbar.ProgressBar
	total    int64
	start    time.Time
	first    int64 // rows done before this run (a resume)
	lastLine time.Time
}

func newImportProgress(w io.Writer, bar bool, total, done int64) *importProgress {
	p := &importProgress{w: w, total: max(total, done), start: time.Now(), first: done, lastLine: time.Now()}
	if bar {
		// The server's row estimate: the bar may end before 100% or pass it.
		p.bar = progressbar.NewOptions64(p.total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		p.bar.Set64(done)
	}
	return p
}

func (p *importProgress) set(done int64) {
	if p.bar != nil {
		if done > p.total {
			p.total = done
			p.bar.ChangeMax64(done)
		}
		p.bar.Set64(done)
		return
	}
	if time.Since(p.lastLine) < 2*time.Second {
		return
	}
	p.lastLine = time.Now()
	el := time.Since(p.start).Seconds()
	rate := float64(done-p.first) / max(el, 1e-9)
	eta := "?"
	if rate > 0 && p.total > done {
		eta = (time.Duration(float64(p.total-done)/rate) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "import: %d of ~%d rows, %.0f rows/s, ETA %s\n", done, p.total, rate, eta)
}

// finish ends the bar at the rows read (the estimate was only that), at
// 100% when the import completed.
func (p *importProgress) finish(done int64, complete bool) {
	if p.bar == nil {
		return
	}
	if complete {
		p.bar.ChangeMax64(max(done, 1))
		p.bar.Finish()
		return
	}
	fmt.Fprintln(p.w)
}
