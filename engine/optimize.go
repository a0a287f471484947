package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/fsrs/optimize"
	"github.com/srsproxy/srsproxy/srs"
)

// OptimizeKind is the kind of SRS.OPTIMIZE jobs.
const OptimizeKind = "optimize"

// DefaultMinReviews is SRS.OPTIMIZE's MINREVIEWS when not given.
const DefaultMinReviews = 400

// Held-out split of SRS.OPTIMIZE: a fifth of the cards, drawn with a fixed
// seed, so the same log always gives the same split and result.
const (
	optimizeTestFraction = 0.2
	optimizeSplitSeed    = 1
	optimizePage         = 5000 // review-log rows per keyset page
)

// OptimizeRequest is SRS.OPTIMIZE's arguments.
type OptimizeRequest struct {
	Season     string
	Since      time.Time // zero: the whole log; else only cards first reviewed on or after this UTC date are learnt from
	MinReviews int       // 0: DefaultMinReviews
}

// OptimizeResult is an optimize job's result, stored as the job's JSON
// result (version 1). Params are applied only by SRS.SEASON SET name
// PARAMS FROM JOB id.
type OptimizeResult struct {
	Version    int              `json:"version"`
	Since      string           `json:"since,omitempty"` // yyyy-mm-dd
	MinReviews int              `json:"min_reviews"`
	Done       bool             `json:"done"`           // false while the job runs: only the arguments are set
	LogRows    int64            `json:"log_rows"`       // review-log rows read
	Cards      int              `json:"cards"`          // card histories that start with a new card
	Reviews    int              `json:"reviews"`        // reviews on a new day learnt from (both splits)
	Trained    bool             `json:"trained"`        // false: too few reviews for gradient descent (fsrs-rs's fallbacks)
	Params     []float64        `json:"params"`         // the fitted 21 weights
	Current    []float64        `json:"current_params"` // the season's weights when the job ran
	Fitted     optimize.Metrics `json:"fitted"`         // the fitted weights on the held-out cards
	CurrentM   optimize.Metrics `json:"current"`        // the season's weights on the held-out cards
	Seconds    float64          `json:"seconds"`        // fitting time
}

// logReader is the store's access to a season's review log
// (backend/mariadb.Store implements it).
type logReader interface {
	ReviewLogPage(ctx context.Context, season string, after mariadb.ReviewKey, limit int) ([]mariadb.LogEntry, error)
	CountReviewLog(ctx context.Context, season string) (int64, error)
}

// ErrOptimizeUnsupported is returned when the store cannot read review logs.
var ErrOptimizeUnsupported = errors.New("the store cannot read review logs")

// StartOptimize starts fitting the season's FSRS-6 parameters to its
// review log and returns the job id at once; SRS.JOB polls it and shows the
// result when done. Nothing about the season changes. Errors:
// srs.ErrInvalidSeasonName, srs.ErrUnknownSeason, *srs.SeasonArchivedError,
// *srs.InvalidError for MINREVIEWS, a store error.
func (e *Engine) StartOptimize(ctx context.Context, req OptimizeRequest) (string, error) {
	if !srs.ValidSeasonName(req.Season) {
		return "", srs.ErrInvalidSeasonName
	}
	if req.MinReviews < 0 {
		return "", &srs.InvalidError{Field: "MINREVIEWS", Msg: "must be at least 1"}
	}
	logs, ok := e.store.(logReader)
	if !ok {
		return "", ErrOptimizeUnsupported
	}
	s, err := e.store.Season(ctx, req.Season)
	if err != nil {
		return "", err
	}
	if s.Archive != srs.ArchiveNone {
		return "", &srs.SeasonArchivedError{Season: s.Name, ArchivedAt: s.ArchivedAt}
	}
	total, err := logs.CountReviewLog(ctx, s.Name)
	if err != nil {
		return "", err
	}
	args := OptimizeResult{Version: 1, MinReviews: cmp.Or(req.MinReviews, DefaultMinReviews)}
	if !req.Since.IsZero() {
		args.Since = req.Since.UTC().Format(time.DateOnly)
	}
	data, err := json.Marshal(args)
	if err != nil {
		return "", err
	}
	now := e.cfg.Now()
	// Total: the log's rows twice, once read and once learnt from.
	j := mariadb.Job{ID: uuid.Must(uuid.NewV7()).String(), Kind: OptimizeKind, Season: s.Name, State: mariadb.JobRunning,
		Total: 2 * total, Owner: e.cfg.Sidecar, Started: now, Updated: now, Result: string(data)}
	if err := e.store.CreateJob(ctx, j); err != nil {
		return "", err
	}
	e.goJob(j)
	return j.ID, nil
}

// optimize runs an optimize job: it reads the season's log in keyset
// pages, fits the parameters on four fifths of the cards and scores the
// fitted and the season's current parameters on the rest. An interrupted
// job starts again from the beginning (the fit is deterministic).
func (e *Engine) optimize(ctx context.Context, j *mariadb.Job) error {
	var res OptimizeResult
	if err := json.Unmarshal([]byte(j.Result), &res); err != nil || res.Version != 1 {
		return fmt.Errorf("optimize job %s: arguments %q: %v", j.ID, j.Result, err)
	}
	var since int64
	if res.Since != "" {
		d, err := time.Parse(time.DateOnly, res.Since)
		if err != nil {
			return fmt.Errorf("optimize job %s: since %q: %w", j.ID, res.Since, err)
		}
		since = d.UnixMilli()
	}
	s, err := e.store.Season(ctx, j.Season)
	if err != nil {
		return err
	}
	current, err := fsrs.MigrateParams(s.Scheduler.Params)
	if err != nil {
		return err
	}
	j.Processed = 0
	cards, rows, err := e.readLog(ctx, j)
	if err != nil {
		return err
	}
	res.LogRows, res.Cards = rows, len(cards)
	opt := optimize.Options{Since: since, LongTermOnly: !s.Scheduler.EnableShortTerm}
	for _, c := range cards {
		if c[0].At < since {
			continue
		}
		for _, r := range c[1:] {
			if r.Days > 0 {
				res.Reviews++
			}
		}
	}
	if res.Reviews < res.MinReviews {
		return fmt.Errorf("%d reviews on a new day to learn from%s, fewer than MINREVIEWS %d", res.Reviews, sinceNote(res.Since), res.MinReviews)
	}
	train, test := optimize.Split(cards, optimizeTestFraction, optimizeSplitSeed)
	base := j.Processed
	last := e.cfg.Now()
	opt.Progress = func(done, total int) bool {
		j.Processed = base + int64(float64(j.Total-base)*float64(done)/float64(max(total, 1)))
		if now := e.cfg.Now(); now.Sub(last) >= time.Second {
			last = now
			if err := e.store.UpdateJob(ctx, *j); err != nil {
				e.log.Warn("optimize progress", "job", j.ID, "err", err)
			}
		}
		return ctx.Err() == nil
	}
	start := time.Now()
	fit, err := optimize.FitParams(train, opt)
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Fitted, err = optimize.Evaluate(test, fit.Params, since); err != nil {
		return fmt.Errorf("held-out cards, fitted parameters: %w", err)
	}
	if res.CurrentM, err = optimize.Evaluate(test, current, since); err != nil {
		return fmt.Errorf("held-out cards, current parameters: %w", err)
	}
	res.Done, res.Trained = true, fit.Trained
	res.Params, res.Current = fit.Params[:], current[:]
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	j.Result, j.Processed = string(data), j.Total
	return nil
}

// readLog reads the season's review log into card histories. Cards are
// contiguous in primary-key order; a card's rows are put in the order they
// apply (reviewed_at, after_reps, review id) and kept only if the first is
// a new card's review (an incomplete history would start from a wrong
// state).
func (e *Engine) readLog(ctx context.Context, j *mariadb.Job) ([]optimize.Card, int64, error) {
	logs := e.store.(logReader)
	var (
		cards []optimize.Card
		cur   []mariadb.LogEntry
		after mariadb.ReviewKey
		rows  int64
	)
	flush := func() {
		if len(cur) == 0 {
			return
		}
		slices.SortFunc(cur, func(a, b mariadb.LogEntry) int {
			return cmp.Or(cmp.Compare(a.ReviewedAt, b.ReviewedAt), cmp.Compare(a.AfterReps, b.AfterReps), cmp.Compare(a.ID, b.ID))
		})
		if c := toCard(cur); c != nil {
			cards = append(cards, c)
		}
		cur = cur[:0]
	}
	for {
		page, err := logs.ReviewLogPage(ctx, j.Season, after, optimizePage)
		if err != nil {
			return nil, 0, err
		}
		for _, r := range page {
			if len(cur) > 0 && (cur[0].Player != r.Player || cur[0].Question != r.Question) {
				flush()
			}
			cur = append(cur, r)
		}
		rows += int64(len(page))
		j.Processed = min(rows, j.Total/2)
		if err := e.store.UpdateJob(ctx, *j); err != nil {
			return nil, 0, err
		}
		if len(page) < optimizePage {
			flush()
			return cards, rows, nil
		}
		last := page[len(page)-1]
		after = mariadb.ReviewKey{Player: last.Player, Question: last.Question, ID: last.ID}
	}
}

// toCard turns one card's ordered log rows into a history, or nil when it
// does not start at a new card or holds a grade outside 1–4.
func toCard(rows []mariadb.LogEntry) optimize.Card {
	if rows[0].BeforeState != srs.StateNew {
		return nil
	}
	c := make(optimize.Card, len(rows))
	for i, r := range rows {
		if r.Grade < 1 || r.Grade > 4 || r.ElapsedDays < 0 {
			return nil
		}
		c[i] = optimize.Review{Grade: r.Grade, Days: r.ElapsedDays, At: r.ReviewedAt}
		if i == 0 {
			c[i].Days = 0
		}
	}
	return c
}

// OptimizedParams returns the fitted weights of a finished optimize job of
// season, for SRS.SEASON SET name PARAMS FROM JOB id. Errors:
// mariadb.ErrUnknownJob, *srs.InvalidError naming JOB when the job is of
// another kind or season, not done, or failed; a store error.
func (e *Engine) OptimizedParams(ctx context.Context, season, id string) ([]float64, error) {
	j, err := e.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) error {
		return &srs.InvalidError{Field: "PARAMS FROM JOB", Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case j.Kind != OptimizeKind:
		return nil, bad("job %s is a %s job, not an SRS.OPTIMIZE job", id, j.Kind)
	case j.Season != season:
		return nil, bad("job %s optimised season %s, not %s", id, j.Season, season)
	case j.State != mariadb.JobDone:
		return nil, bad("job %s is %s, not done", id, j.State)
	}
	var res OptimizeResult
	if err := json.Unmarshal([]byte(j.Result), &res); err != nil || !res.Done || len(res.Params) != 21 {
		return nil, bad("job %s has no fitted parameters", id)
	}
	return res.Params, nil
}

func sinceNote(since string) string {
	if since == "" {
		return ""
	}
	return " (cards first reviewed since " + since + ")"
}
