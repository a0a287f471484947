package core

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// The differential test against ts-fsrs, the reference TypeScript FSRS
// (npm, pinned in testdata/tsfsrs/package-lock.json; `make test` installs
// it). Random review histories, from fixed seeds, are applied through
// Decide — the function the engine calls for every review — with a
// scheduler built from a season's configuration as the engine builds it,
// and replayed through ts-fsrs at the same instants. After every review the
// state, learning step, due time, elapsed days, S and D must agree.
//
// The seasons use TIMEZONE UTC DAYSTART 0: ts-fsrs counts elapsed days by
// UTC calendar dates. Fuzz is off (ts-fsrs draws it from another
// generator). Parameters are chosen inside both libraries' clamps: ts-fsrs
// also raises S0 to at least 0.1, keeps w19 ≥ 0.01 with short-term on, and
// lowers the w17/w18 ceiling when there are several relearning steps.
//
// Where this sidecar follows Anki (or FSRS.md) and ts-fsrs does not, a step
// may differ in its due time only (state, S and D still agree); those rules are listed in
// ankiRules, each with the value the sidecar must then give, and the steps
// they explain are counted per configuration.

// tsConfig is one season configuration, as the sidecar and ts-fsrs take it.
type tsConfig struct {
	name      string
	histories int
	cfg       srs.SchedulerConfig
	ts        map[string]any
}

func tsConfigs() []tsConfig {
	utc := func(c srs.SchedulerConfig) srs.SchedulerConfig {
		c.Timezone, c.DayStart = "UTC", 0
		return c
	}
	def := srs.DefaultSchedulerConfig()
	longTerm := def
	longTerm.LearningSteps, longTerm.RelearningSteps, longTerm.EnableShortTerm = []time.Duration{}, []time.Duration{}, false
	custom := srs.SchedulerConfig{
		Params: []float64{0.4, 0.9, 3.1, 12.5, 6.9, 0.6, 2.4, 0.02, 1.6, 0.2, 0.9,
			1.2, 0.08, 0.3, 1.4, 0.45, 2.2, 0.45, 0.15, 0.12, 0.25},
		DesiredRetention: 0.85,
		LearningSteps:    []time.Duration{2 * time.Minute, 15 * time.Minute, time.Hour},
		RelearningSteps:  []time.Duration{5 * time.Minute, 30 * time.Minute},
		MaximumInterval:  1000,
		EnableShortTerm:  true,
	}
	// An FSRS-5 vector (19 weights, migrated), long-term mode.
	fsrs5 := srs.SchedulerConfig{
		Params: []float64{0.3, 1.1, 2.9, 9.5, 7.1, 0.5, 1.9, 0.005, 1.5, 0.12, 1.0,
			1.9, 0.1, 0.32, 1.7, 0.5, 2.6, 0.6, 0.2},
		DesiredRetention: 0.95,
		LearningSteps:    []time.Duration{},
		RelearningSteps:  []time.Duration{},
		MaximumInterval:  36500,
	}
	oneStep := def
	oneStep.LearningSteps, oneStep.RelearningSteps = []time.Duration{10 * time.Minute}, []time.Duration{}
	return []tsConfig{
		{"default (short-term, steps 1m 10m / 10m)", 300, utc(def), map[string]any{}},
		{"long-term (no steps, short-term off)", 300, utc(longTerm), map[string]any{
			"enable_short_term": false, "learning_steps": []string{}, "relearning_steps": []string{}}},
		{"custom: 21 weights, retention 0.85, steps 2m 15m 1h / 5m 30m, max 1000 d", 300, utc(custom), map[string]any{
			"w": custom.Params, "request_retention": 0.85, "maximum_interval": 1000,
			"learning_steps": []string{"2m", "15m", "1h"}, "relearning_steps": []string{"5m", "30m"}}},
		{"FSRS-5 weights, long-term, retention 0.95", 150, utc(fsrs5), map[string]any{
			"w": fsrs5.Params, "request_retention": 0.95, "enable_short_term": false,
			"learning_steps": []string{}, "relearning_steps": []string{}}},
		{"one learning step 10m, no relearning steps", 150, utc(oneStep), map[string]any{
			"learning_steps": []string{"10m"}, "relearning_steps": []string{}}},
	}
}

// tsStep is ts-fsrs's card after one review (testdata/tsfsrs/driver.mjs).
type tsStep struct {
	State    srs.State `json:"state"`
	Step     int       `json:"step"`
	Due      int64     `json:"due"`
	S        float64   `json:"s"`
	D        float64   `json:"d"`
	Days     int       `json:"days"`
	Elapsed  int       `json:"elapsed"`
	GoodDays int       `json:"good_days"`
}

type tsReview struct {
	At    int64     `json:"at"`
	Grade srs.Grade `json:"grade"`
}

type tsHistory struct {
	Config  string     `json:"config"`
	Reviews []tsReview `json:"reviews"`
}

// goStep is one review as the sidecar applied it.
type goStep struct {
	before srs.Schedule
	review srs.Review
}

// ankiRule is a documented Anki rule ts-fsrs does not follow. applies says
// whether the rule concerns a step; want is the due time (unix ms) the
// sidecar must then give, from the config, the review and ts-fsrs's answer.
type ankiRule struct {
	name, why string
	applies   func(c *fsrs.Scheduler, st goStep, ts tsStep) bool
	want      func(c *fsrs.Scheduler, st goStep, ts tsStep) int64
}

func inStep(s srs.State) bool { return s == srs.StateLearning || s == srs.StateRelearning }

// stepsOf returns the steps a card in state before follows after grade g.
func stepsOf(c *fsrs.Scheduler, before srs.State) []time.Duration {
	cfg := c.Config()
	if before == srs.StateRelearning || before == srs.StateReview {
		return cfg.RelearningSteps
	}
	return cfg.LearningSteps
}

var ankiRules = []ankiRule{
	{
		name: "maximum-interval-cap",
		why: "no interval passes the maximum interval, also after the intervals are ordered (FSRS.md: " +
			"scheduled days are clamped to [1, maximum interval]); ts-fsrs's ordering can push Good or Easy a day or two past it",
		applies: func(c *fsrs.Scheduler, st goStep, ts tsStep) bool {
			return st.review.After.State == srs.StateReview && ts.Days > c.Config().MaximumInterval
		},
		want: func(c *fsrs.Scheduler, st goStep, _ tsStep) int64 {
			return st.review.ReviewedAt + int64(c.Config().MaximumInterval)*86_400_000
		},
	},
	{
		name: "hard-repeats-later-step",
		why: "Hard on a (re)learning step other than the first repeats that step's delay, as Anki does; " +
			"ts-fsrs waits the mean of the first two steps",
		applies: func(c *fsrs.Scheduler, st goStep, _ tsStep) bool {
			return inStep(st.before.State) && st.before.Step >= 1 && st.review.Grade == srs.Hard && inStep(st.review.After.State)
		},
		want: func(c *fsrs.Scheduler, st goStep, _ tsStep) int64 {
			return st.review.ReviewedAt + stepsOf(c, st.before.State)[st.before.Step].Milliseconds()
		},
	},
	{
		name: "hard-delay-unrounded",
		why: "Hard on the first step waits the exact mean of the first two steps (or 1.5 × a single step), " +
			"as Anki does; ts-fsrs rounds it to whole minutes",
		applies: func(c *fsrs.Scheduler, st goStep, _ tsStep) bool {
			return (st.before.State == srs.StateNew || inStep(st.before.State) && st.before.Step == 0) &&
				st.review.Grade == srs.Hard && inStep(st.review.After.State)
		},
		want: func(c *fsrs.Scheduler, st goStep, _ tsStep) int64 {
			steps := stepsOf(c, st.before.State)
			d := steps[0] * 3 / 2
			if len(steps) > 1 {
				d = (steps[0] + steps[1]) / 2
			}
			return st.review.ReviewedAt + d.Milliseconds()
		},
	},
	{
		name: "easy-past-good",
		why: "Easy leaving (re)learning graduates to at least round(Good's interval) + 1 days, also when Good " +
			"stays in a step (Anki's answer_easy); ts-fsrs schedules Easy from its own stability alone",
		applies: func(c *fsrs.Scheduler, st goStep, _ tsStep) bool {
			return st.before.State != srs.StateReview && st.review.Grade == srs.Easy &&
				st.review.After.State == srs.StateReview && (len(c.Config().LearningSteps) > 0 || len(c.Config().RelearningSteps) > 0 || c.Config().EnableShortTerm)
		},
		want: func(c *fsrs.Scheduler, st goStep, ts tsStep) int64 {
			days := min(max(ts.Days, ts.GoodDays+1), c.Config().MaximumInterval)
			return st.review.ReviewedAt + int64(days)*86_400_000
		},
	},
}

// history draws one card's reviews: grades and answer times relative to the
// card's state (same instant, same day, just past UTC midnight, late in the
// same day, on time, early, late, years late), applied through Decide.
func history(t *testing.T, rng *rand.Rand, sched *fsrs.Scheduler, season, player string) []goStep {
	t.Helper()
	const dayMS = 86_400_000
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() + rng.Int64N(3*365*dayMS)
	var (
		card  srs.Card
		found bool
		out   []goStep
	)
	n := 1 + rng.IntN(20)
	for i := range n {
		if i > 0 {
			last, due := card.LastReview, card.Due
			gap := max(due-last, 60_000)
			switch p := rng.IntN(100); {
			case p < 5: // the same instant
			case p < 25: // later the same day, or not, minutes to hours on
				at = last + 1000 + rng.Int64N(3*3600_000)
			case p < 33: // just past the next UTC midnight
				at = (last/dayMS+1)*dayMS + rng.Int64N(10*60_000)
			case p < 40: // late the same UTC day
				at = max(last, (last/dayMS+1)*dayMS-1-rng.Int64N(30*60_000))
			case p < 55: // on time
				at = max(last, due)
			case p < 70: // early
				at = last + int64(float64(gap)*(0.05+0.9*rng.Float64()))
			case p < 93: // late
				at = max(last, due) + int64(float64(gap)*2*rng.Float64())
			default: // very late: years
				at = max(last, due) + (365+rng.Int64N(15*365))*dayMS
			}
		}
		g := srs.Grade([...]int{1, 1, 2, 2, 3, 3, 3, 3, 4, 4}[rng.IntN(10)])
		id := fmt.Sprintf("r%d", i)
		req := Request{Season: season, Player: player, Question: "q", Grade: g, At: at, AtGiven: true, ID: id, IDGiven: true}
		d := Decide(sched, card, found, req)
		if d.Verdict == AskLog && at == card.LastReview {
			// A second answer in the same millisecond: the engine asks the
			// review log, which lacks this id, and applies it.
			d = Decision{Verdict: Apply, Review: Next(sched, card, req)}
		}
		if d.Verdict != Apply {
			t.Fatalf("review %d at %d: verdict %v", i, at, d.Verdict)
		}
		out = append(out, goStep{before: card.Schedule, review: d.Review})
		card, found = d.Review.Card(), true
	}
	return out
}

// runTSFSRS replays the histories through ts-fsrs.
func runTSFSRS(t *testing.T, configs map[string]map[string]any, hs []tsHistory) [][]tsStep {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "tsfsrs")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is missing (%v); install it: apt-get install nodejs npm", err)
	}
	pj, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(pj, &pkg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "ts-fsrs", "package.json"))
	var inst struct {
		Version string `json:"version"`
	}
	if err == nil {
		err = json.Unmarshal(b, &inst)
	}
	if err != nil || inst.Version != pkg.Dependencies["ts-fsrs"] {
		t.Fatalf("ts-fsrs %s is not installed (found %q, %v); install it: make deps, or cd testdata/tsfsrs && npm ci",
			pkg.Dependencies["ts-fsrs"], inst.Version, err)
	}
	in, err := json.Marshal(map[string]any{"configs": configs, "histories": hs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "driver.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node driver.mjs: %v\n%s", err, stderr.String())
	}
	var out [][]tsStep
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("driver output: %v", err)
	}
	if len(out) != len(hs) {
		t.Fatalf("driver replayed %d histories, want %d", len(out), len(hs))
	}
	return out
}

// near reports whether a and b agree within tol, absolute below 1 and
// relative above.
func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*max(1, math.Abs(b)) }

func TestDifferentialTSFSRS(t *testing.T) {
	t.Parallel()
	const tol = 1e-6 // ts-fsrs rounds R, S, D and the interval modifier to 8 decimals at every step
	configs := tsConfigs()
	type run struct {
		conf  tsConfig
		sched *fsrs.Scheduler
		hists [][]goStep
	}
	var (
		runs  []run
		hs    []tsHistory
		tsCfg = map[string]map[string]any{}
	)
	for ci, c := range configs {
		// The scheduler as the engine builds it from a season's settings.
		season := srs.Season{Name: fmt.Sprintf("SEASON-2026-TS%d", ci), Scheduler: c.cfg}
		sched, err := fsrs.New(season.Scheduler)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		tsCfg[c.name] = c.ts
		r := run{conf: c, sched: sched}
		for h := range c.histories {
			rng := rand.New(rand.NewPCG(uint64(h), uint64(ci)+13))
			steps := history(t, rng, sched, season.Name, fmt.Sprintf("p%d", h))
			r.hists = append(r.hists, steps)
			th := tsHistory{Config: c.name}
			for _, st := range steps {
				th.Reviews = append(th.Reviews, tsReview{At: st.review.ReviewedAt, Grade: st.review.Grade})
			}
			hs = append(hs, th)
		}
		runs = append(runs, r)
	}
	ts := runTSFSRS(t, tsCfg, hs)

	k := 0
	for ci, r := range runs {
		var steps, exact, failed int
		explained := map[string]int{}
		var maxDS, maxDD float64
		paths := map[string]int{}
		for h, hist := range r.hists {
			want := ts[k]
			k++
			if len(want) != len(hist) {
				t.Fatalf("%s history %d: ts-fsrs gave %d steps, want %d", r.conf.name, h, len(want), len(hist))
			}
			for i, st := range hist {
				steps++
				got, w := st.review.After, want[i]
				same := "other day"
				if st.review.ElapsedDays == 0 {
					same = "same day"
				}
				paths[fmt.Sprintf("%v×%d×%s", st.before.State, st.review.Grade, same)]++
				maxDS = max(maxDS, math.Abs(got.Stability-w.S)/max(1, w.S))
				maxDD = max(maxDD, math.Abs(got.Difficulty-w.D))
				var bad []string
				if got.State != w.State || got.Step != w.Step {
					bad = append(bad, fmt.Sprintf("state %v step %d, ts-fsrs %v step %d", got.State, got.Step, w.State, w.Step))
				}
				if !near(got.Stability, w.S, tol) || !near(got.Difficulty, w.D, tol) {
					bad = append(bad, fmt.Sprintf("S %v D %v, ts-fsrs S %v D %v", got.Stability, got.Difficulty, w.S, w.D))
				}
				if i > 0 && st.review.ElapsedDays != w.Elapsed {
					bad = append(bad, fmt.Sprintf("elapsed %d days, ts-fsrs %d", st.review.ElapsedDays, w.Elapsed))
				}
				if got.Due != w.Due {
					rule := ""
					for _, ar := range ankiRules {
						if ar.applies(r.sched, st, w) {
							if wd := ar.want(r.sched, st, w); got.Due == wd {
								rule = ar.name
							} else {
								bad = append(bad, fmt.Sprintf("due %d, Anki rule %s wants %d", got.Due, ar.name, wd))
							}
							break
						}
					}
					if rule == "" && len(bad) == 0 {
						bad = append(bad, fmt.Sprintf("due %d (+%d ms), ts-fsrs %d (+%d ms)", got.Due, got.Due-st.review.ReviewedAt, w.Due, w.Due-st.review.ReviewedAt))
					}
					if rule != "" && len(bad) == 0 {
						explained[rule]++
						continue
					}
				}
				if len(bad) > 0 {
					failed++
					if failed <= 5 {
						t.Errorf("%s, history %d (seed %d/%d), review %d: %v grade %d at %d (elapsed %d), before %+v: %s",
							r.conf.name, h, h, ci+13, i, st.before.State, st.review.Grade, st.review.ReviewedAt,
							st.review.ElapsedDays, st.before, strings.Join(bad, "; "))
					}
					break // the rest of this history builds on a different card
				}
				exact++
			}
		}
		var ex []string
		for _, ar := range ankiRules {
			if n := explained[ar.name]; n > 0 {
				ex = append(ex, fmt.Sprintf("%s %d", ar.name, n))
			}
		}
		t.Logf("%s: %d histories, %d steps: %d agree in every field, %d differ only in due by a documented rule (%s), %d fail; max |ΔS|/S %.1e, max |ΔD| %.1e; %d of the state×grade×day paths",
			r.conf.name, len(r.hists), steps, exact, steps-exact-failed, strings.Join(ex, ", "), failed, maxDS, maxDD, len(paths))
		if failed > 0 {
			t.Errorf("%s: %d steps disagree with ts-fsrs", r.conf.name, failed)
		}
		// Every path the test means to cover is reached: a new card (no
		// elapsed days) and a review card under every grade, on the day of
		// the last review and later; learning and relearning cards too
		// where there are steps.
		want := map[srs.State][]string{srs.StateNew: {"same day"}, srs.StateReview: {"same day", "other day"}}
		if len(r.conf.cfg.LearningSteps) > 0 {
			want[srs.StateLearning] = []string{"same day", "other day"}
		}
		if len(r.conf.cfg.RelearningSteps) > 0 {
			want[srs.StateRelearning] = []string{"same day"}
		}
		for st, days := range want {
			for g := srs.Again; g <= srs.Easy; g++ {
				for _, day := range days {
					if paths[fmt.Sprintf("%v×%d×%s", st, g, day)] == 0 {
						t.Errorf("%s: no review of a %v card graded %d on the %s", r.conf.name, st, g, day)
					}
				}
			}
		}
	}
	for _, ar := range ankiRules {
		t.Logf("documented rule %s: %s", ar.name, ar.why)
	}
}
