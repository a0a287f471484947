// Package commands implements the SRS.* commands: argument parsing, replies
// in RESP2 and RESP3 shapes, documentation, and the mapping of domain errors
// to RESP error prefixes. Handlers are thin: parse, call the engine, reply.
package commands

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/proxy"
)

// durableWait bounds how long a reply waits for its review's fsync.
const durableWait = 30 * time.Second

// Options are what the commands need besides the engine.
type Options struct {
	Logger *slog.Logger
	Meter  metric.Meter                          // nil: no metrics
	Tracer trace.Tracer                          // nil: no spans
	Status func(context.Context) (Status, error) // SRS.STATUS; nil: the command is not registered
	// Watch arranges for changes of a user-season made through any sidecar
	// to reach this sidecar's tracking clients (the Redis watcher); nil, or
	// an error, makes a tracked reply volatile (docs/TRACKING.md).
	Watch func(ctx context.Context, season, player string) error
}

// handlers binds the commands to an engine.
type handlers struct {
	eng    *engine.Engine
	log    *slog.Logger
	mux    *proxy.Mux
	tracer trace.Tracer
	status func(context.Context) (Status, error)
	watch  func(ctx context.Context, season, player string) error

	calls   metric.Int64Counter
	latency metric.Float64Histogram
	attrs   sync.Map // command+result → metric.MeasurementOption
}

// handler is a command body: it writes the reply on success and returns the
// error otherwise, which the wrapper renders, counts and traces.
type handler func(ctx context.Context, w *proxy.Reply, args [][]byte) error

// Register adds every SRS.* command to mux.
func Register(mux *proxy.Mux, eng *engine.Engine, opts Options) error {
	h := &handlers{eng: eng, log: opts.Logger, mux: mux, tracer: opts.Tracer, status: opts.Status, watch: opts.Watch}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.tracer == nil {
		h.tracer = tracenoop.NewTracerProvider().Tracer("")
	}
	meter := opts.Meter
	if meter == nil {
		meter = metricnoop.NewMeterProvider().Meter("")
	}
	var err error
	if h.calls, err = meter.Int64Counter("srsproxy_commands", metric.WithDescription("SRS commands by command and result (ok or the error prefix)")); err != nil {
		return err
	}
	if h.latency, err = meter.Float64Histogram("srsproxy_command_duration_seconds", metric.WithUnit("s"),
		metric.WithDescription("SRS command latency inside the sidecar, by command and result"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)); err != nil {
		return err
	}
	cmds := []proxy.Command{
		{Name: "SRS.REVIEW", Arity: -5, Role: proxy.RoleApp, Handler: h.wrap("SRS.REVIEW", h.review),
			Syntax:  "SRS.REVIEW player season question grade|CORRECT 0|1 MS n [ATTEMPTS n] [AT ms] [ID review_id] [SUBJECT s] [TOPIC t] [STAGE st] [DURATION ms]",
			Summary: "Apply a student's answer (grade 1-4, or correct/time/attempts) with FSRS-6 and acknowledge it once it is durable."},
		{Name: "SRS.DUE", Arity: -3, Role: proxy.RoleApp, CacheKey: 1, Handler: h.wrap("SRS.DUE", h.due),
			Syntax:  "SRS.DUE player season [SUBJECT s] [LIMIT n] [AT ms]",
			Summary: "List a student's due questions, most overdue first (LIMIT 1-50, default 20)."},
		{Name: "SRS.CARD", Arity: 4, Role: proxy.RoleApp, CacheKey: 1, Handler: h.wrap("SRS.CARD", h.card),
			Syntax:  "SRS.CARD player season question",
			Summary: "Return one card's full FSRS state and current retrievability, or nil."},
		{Name: "SRS.SEASON", Arity: -2, Role: proxy.RoleApp, Handler: h.wrap("SRS.SEASON", h.season),
			Syntax:  "SRS.SEASON CREATE name [START yyyy-mm-dd] [END yyyy-mm-dd] | ACTIVATE name | DEACTIVATE name | SET name [RETENTION r] [PARAMS w0 ... wN | PARAMS FROM JOB id] [LEARNING m,...|NONE] [RELEARNING m,...|NONE] [MAXIVL days] [FUZZ ON|OFF] [SHORTTERM ON|OFF] [TIMEZONE tz] [DAYSTART h|LEGACY] [CACHE ON|OFF] [AUTOARCHIVE ON|OFF [CONFIRM]] | INFO name | LIST",
			Summary: "Create, activate, configure and inspect seasons (INFO and LIST for every user, the rest admin only)."},
		{Name: "SRS.HELP", Arity: 1, Role: proxy.RoleApp, Handler: h.wrap("SRS.HELP", h.help),
			Syntax:  "SRS.HELP",
			Summary: "List the SRS commands with their syntax."},
	}
	cmds = append(cmds,
		proxy.Command{Name: "SRS.ARCHIVE", Arity: -2, Role: proxy.RoleAdmin, Handler: h.wrap("SRS.ARCHIVE", h.archive),
			Syntax:  "SRS.ARCHIVE season CONFIRM | SRS.ARCHIVE INFO season | SRS.ARCHIVE PURGE season CONFIRM",
			Summary: "Archive an inactive season by partition operations (O(1)), inspect an archive, or purge one past retention."},
		proxy.Command{Name: "SRS.REBUILD", Arity: 2, Role: proxy.RoleAdmin, Handler: h.wrap("SRS.REBUILD", h.rebuild),
			Syntax:  "SRS.REBUILD season",
			Summary: "Start a cache rebuild of a season from MariaDB; replies a job id for SRS.JOB."},
		proxy.Command{Name: "SRS.OPTIMIZE", Arity: -2, Role: proxy.RoleAdmin, Handler: h.wrap("SRS.OPTIMIZE", h.optimize),
			Syntax:  "SRS.OPTIMIZE season [SINCE yyyy-mm-dd] [MINREVIEWS n]",
			Summary: "Start fitting the season's FSRS-6 parameters to its review log; replies a job id for SRS.JOB, whose result holds them (SRS.SEASON SET name PARAMS FROM JOB id applies them)."},
		proxy.Command{Name: "SRS.JOB", Arity: 2, Role: proxy.RoleAdmin, Handler: h.wrap("SRS.JOB", h.job),
			Syntax:  "SRS.JOB id",
			Summary: "Progress of a background job: state, processed, total, rate, started, finished, error, result."},
		proxy.Command{Name: "SRS.RECONCILE", Arity: -1, Role: proxy.RoleAdmin, Handler: h.wrap("SRS.RECONCILE", h.reconcile),
			Syntax:  "SRS.RECONCILE [season] [SAMPLE n]",
			Summary: "Compare a sample of cached cards (100-100000, default 10000) with MariaDB and correct the cache; cards with reviews still queued are skipped."},
	)
	if h.status != nil {
		cmds = append(cmds, proxy.Command{Name: "SRS.STATUS", Arity: 1, Role: proxy.RoleAdmin, Handler: h.wrap("SRS.STATUS", h.statusCmd),
			Syntax:  "SRS.STATUS",
			Summary: "Report the sidecar's health: upstream Redis, breaker and Safe Mode, queue and drain, cache memory, cached users by season."})
	}
	for _, c := range cmds {
		c.Group, c.Since = "srs", "0.1.0"
		mux.Handle(c)
	}
	return nil
}

// wrap turns a handler into a proxy.Handler that renders its error, counts
// the command by result, records its latency and traces it.
func (h *handlers) wrap(name string, fn handler) proxy.Handler {
	// Built once per command, so a successful call allocates no options.
	startOpts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	ok := h.attrSet(name, "ok")
	okAdd, okRecord := []metric.AddOption{ok}, []metric.RecordOption{ok}
	return func(ctx context.Context, w *proxy.Reply, args [][]byte) {
		start := time.Now()
		ctx, span := h.tracer.Start(ctx, name, startOpts...)
		add, record := okAdd, okRecord
		if err := fn(ctx, w, args); err != nil {
			msg := errorReply(h.log, name, err)
			w.Error(msg)
			result, _, _ := strings.Cut(msg, " ")
			span.SetStatus(codes.Error, msg)
			attrs := h.attrSet(name, result)
			add, record = []metric.AddOption{attrs}, []metric.RecordOption{attrs}
		}
		span.End()
		h.calls.Add(ctx, 1, add...)
		h.latency.Record(ctx, time.Since(start).Seconds(), record...)
	}
}

func (h *handlers) attrSet(name, result string) metric.MeasurementOption {
	key := name + " " + result
	if v, ok := h.attrs.Load(key); ok {
		return v.(metric.MeasurementOption)
	}
	v := metric.WithAttributeSet(attribute.NewSet(attribute.String("command", name), attribute.String("result", result)))
	h.attrs.Store(key, v)
	return v
}

func (h *handlers) review(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	req, err := ParseReview(args)
	if err != nil {
		return err
	}
	res, err := h.eng.Review(ctx, req)
	if err != nil {
		return err
	}
	w.Changed(req.Player)
	// The reply leaves only after the review is on disk (group commit: the
	// wait runs when the connection flushes, once for a whole pipeline). A
	// review written ahead of the cache, or a duplicate the record shows, is
	// on disk already (Wait nil).
	if wait := res.Wait; wait != nil { // only the func is captured: res stays on the stack
		w.BeforeFlush(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), durableWait)
			defer cancel()
			return wait(ctx)
		})
	}
	writeReview(w, res)
	return nil
}

func (h *handlers) due(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	req, err := ParseDue(args)
	if err != nil {
		return err
	}
	h.beginTracked(ctx, w, req.Season, req.Player)
	res, err := h.eng.Due(ctx, req)
	if err != nil {
		return err
	}
	switch {
	case !res.Cached:
		w.Volatile()
	case req.At == 0 && res.NextDue > 0:
		w.ExpiresAt(time.UnixMilli(res.NextDue)) // a card becomes due: the list changes
	}
	writeDue(w, res)
	return nil
}

func (h *handlers) card(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	req, err := ParseCard(args)
	if err != nil {
		return err
	}
	h.beginTracked(ctx, w, req.Season, req.Player)
	info, found, err := h.eng.Card(ctx, req.Season, req.Player, req.Question)
	if !info.Cached {
		w.Volatile() // not found, or read from MariaDB
	}
	switch {
	case err != nil:
		return err
	case !found:
		w.Null()
	default:
		writeCard(w, info)
	}
	return nil
}

// beginTracked makes sure a reply a tracking client will cache hears of
// the user-season's changes, or is volatile.
func (h *handlers) beginTracked(ctx context.Context, w *proxy.Reply, season, player string) {
	if !w.Tracked() {
		return
	}
	if h.watch == nil || h.watch(ctx, season, player) != nil {
		w.Volatile()
	}
}

func (h *handlers) season(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	req, err := ParseSeason(args)
	if err != nil {
		return err
	}
	if req.Admin() && w.Role() != proxy.RoleAdmin {
		return &PermError{User: w.User(), Command: "SRS.SEASON " + req.Verb}
	}
	switch req.Verb {
	case "LIST":
		seasons, err := h.eng.Seasons(ctx)
		if err != nil {
			return err
		}
		writeSeasonList(w, seasons)
		return nil
	case "CREATE":
		_, err = h.eng.CreateSeason(ctx, req.Name, req.Start, req.End)
	case "ACTIVATE", "DEACTIVATE":
		_, err = h.eng.SetActive(ctx, req.Name, req.Verb == "ACTIVATE")
	case "SET":
		_, err = h.eng.ChangeSeason(ctx, req.Name, req.Change)
	}
	if err != nil {
		return err
	}
	if req.Verb != "CREATE" {
		w.ChangedAll() // the season's replies may all read differently now
	}
	info, err := h.eng.SeasonInfo(ctx, req.Name)
	if err != nil {
		return err
	}
	writeSeasonInfo(w, info)
	return nil
}

func (h *handlers) help(_ context.Context, w *proxy.Reply, _ [][]byte) error {
	var lines []string
	for _, c := range h.mux.Commands() {
		if strings.HasPrefix(c.Name, "SRS.") {
			lines = append(lines, c.Syntax+" -- "+c.Summary)
		}
	}
	w.Array(len(lines))
	for _, l := range lines {
		w.String(l)
	}
	return nil
}

func (h *handlers) archive(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	req, err := ParseArchive(args)
	if err != nil {
		return err
	}
	switch req.Verb {
	case "INFO":
		info, err := h.eng.ArchiveInfo(ctx, req.Season)
		if err != nil {
			return err
		}
		writeArchiveInfo(w, info)
	case "PURGE":
		if err := h.eng.Purge(ctx, req.Season); err != nil {
			return err
		}
		w.ChangedAll()
		w.Simple("OK")
	default:
		rep, err := h.eng.Archive(ctx, req.Season)
		if err != nil {
			return err
		}
		w.ChangedAll()
		writeArchive(w, rep)
	}
	return nil
}

func (h *handlers) rebuild(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	c := newCursor(args)
	season, err := c.season()
	if err != nil {
		return err
	}
	id, err := h.eng.StartRebuild(ctx, season)
	if err != nil {
		return err
	}
	w.String(id)
	return nil
}

func (h *handlers) optimize(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	req, err := ParseOptimize(args)
	if err != nil {
		return err
	}
	id, err := h.eng.StartOptimize(ctx, req)
	if err != nil {
		return err
	}
	w.String(id)
	return nil
}

func (h *handlers) job(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	c := newCursor(args)
	id, err := c.id("job id")
	if err != nil {
		return err
	}
	j, err := h.eng.Job(ctx, id)
	if err != nil {
		return err
	}
	writeJob(w, j)
	return nil
}

func (h *handlers) reconcile(ctx context.Context, w *proxy.Reply, args [][]byte) error {
	req, err := ParseReconcile(args)
	if err != nil {
		return err
	}
	rep, err := h.eng.Reconcile(ctx, req.Season, req.Sample)
	if err != nil {
		return err
	}
	writeReconcile(w, rep)
	return nil
}

func (h *handlers) statusCmd(ctx context.Context, w *proxy.Reply, _ [][]byte) error {
	st, err := h.status(ctx)
	if err != nil {
		return err
	}
	writeStatus(w, st)
	return nil
}
