package fsrs

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// vector is one entry of testdata/fsrs-vectors.json. Fields whose shape
// depends on the kind stay raw and are decoded by that kind's runner.
type vector struct {
	ID                     string          `json:"id"`
	Kind                   string          `json:"kind"`
	Params                 []float64       `json:"params"`
	DesiredRetention       float64         `json:"desired_retention"`
	EnableFuzz             bool            `json:"enable_fuzz"`
	EnableShortTerm        bool            `json:"enable_short_term"`
	LearningStepsMinutes   []float64       `json:"learning_steps_minutes"`
	RelearningStepsMinutes []float64       `json:"relearning_steps_minutes"`
	MaximumInterval        int             `json:"maximum_interval"`
	Reviews                []vectorReview  `json:"reviews"`
	Tolerance              float64         `json:"tolerance"`
	Expected               json.RawMessage `json:"expected"`
	ComputedTrace          json.RawMessage `json:"computed_trace"`
	Cases                  json.RawMessage `json:"cases"`
	Extra                  json.RawMessage `json:"extra"`
	S                      json.RawMessage `json:"S"`
	D                      json.RawMessage `json:"D"`
	R                      []float64       `json:"R"`
	Ratings                []srs.Grade     `json:"ratings"`
}

type vectorReview struct {
	Rating      srs.Grade `json:"rating"`
	ElapsedDays int64     `json:"elapsed_days"`
}

var vectorRunners = map[string]func(*testing.T, vector){
	"memory_state":           runMemoryState,
	"scheduler_first_review": runFirstReview,
	"scheduler_sequence":     runSequence,
	"retrievability":         runRetrievability,
	"primitive_difficulty":   runPrimitiveDifficulty,
	"primitive_stability":    runPrimitiveStability,
	"fuzz":                   runFuzz,
}

func TestVectors(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../testdata/fsrs-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []vector
	if err := json.Unmarshal(data, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vectors {
		t.Run(v.ID, func(t *testing.T) {
			t.Parallel()
			run, ok := vectorRunners[v.Kind]
			if !ok {
				t.Fatalf("vector kind %q has no runner", v.Kind)
			}
			if v.Tolerance == 0 {
				v.Tolerance = 1e-4 // FSRS.md's default
			}
			run(t, v)
		})
	}
}

// scheduler builds the scheduler a vector describes.
func (v vector) scheduler(t *testing.T) *Scheduler {
	t.Helper()
	s, err := New(srs.SchedulerConfig{
		Params:           v.Params,
		DesiredRetention: v.DesiredRetention,
		LearningSteps:    minutes(v.LearningStepsMinutes),
		RelearningSteps:  minutes(v.RelearningStepsMinutes),
		MaximumInterval:  v.MaximumInterval,
		EnableFuzz:       v.EnableFuzz,
		EnableShortTerm:  v.EnableShortTerm,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func minutes(m []float64) []time.Duration {
	if m == nil {
		return nil
	}
	d := make([]time.Duration, len(m))
	for i, x := range m {
		d[i] = time.Duration(x * float64(time.Minute))
	}
	return d
}

func decode(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g (±%g)", what, got, want, tol)
	}
}

var base = time.Date(2022, 11, 29, 12, 30, 0, 0, time.UTC).UnixMilli()

func runMemoryState(t *testing.T, v vector) {
	var want struct{ Stability, Difficulty float64 }
	var trace struct{ States [][2]float64 }
	decode(t, v.Expected, &want)
	decode(t, v.ComputedTrace, &trace)
	if len(trace.States) != len(v.Reviews) {
		t.Fatalf("trace has %d states for %d reviews", len(trace.States), len(v.Reviews))
	}
	s := v.scheduler(t)
	var card srs.Schedule
	now := base
	for i, r := range v.Reviews {
		now += r.ElapsedDays * dayMS
		out := s.Next(card, r.Rating, now, 0)
		if out.ElapsedDays != int(r.ElapsedDays) && i > 0 {
			t.Errorf("review %d: elapsed %d, want %d", i, out.ElapsedDays, r.ElapsedDays)
		}
		near(t, "trace S", out.Stability, trace.States[i][0], v.Tolerance)
		near(t, "trace D", out.Difficulty, trace.States[i][1], v.Tolerance)
		card = out.Schedule
	}
	near(t, "S", card.Stability, want.Stability, v.Tolerance)
	near(t, "D", card.Difficulty, want.Difficulty, v.Tolerance)
}

func runFirstReview(t *testing.T, v vector) {
	var want struct {
		Stability, Difficulty float64
		ScheduledDays         int `json:"scheduled_days"`
		State                 string
		Reps, Lapses          int
	}
	decode(t, v.Expected, &want)
	if len(v.Reviews) != 1 {
		t.Fatalf("%d reviews, want 1", len(v.Reviews))
	}
	out := v.scheduler(t).Next(srs.Schedule{}, v.Reviews[0].Rating, base, 0)
	near(t, "S", out.Stability, want.Stability, v.Tolerance)
	near(t, "D", out.Difficulty, want.Difficulty, v.Tolerance)
	if out.IntervalDays != want.ScheduledDays || !strings.EqualFold(out.State.String(), want.State) ||
		out.Reps != want.Reps || out.Lapses != want.Lapses {
		t.Errorf("got %d days %v reps %d lapses %d, want %d days %s reps %d lapses %d",
			out.IntervalDays, out.State, out.Reps, out.Lapses, want.ScheduledDays, want.State, want.Reps, want.Lapses)
	}
	if d := out.Due - base; out.IntervalDays > 0 && d != int64(out.IntervalDays)*dayMS {
		t.Errorf("due after %d ms, want %d days", d, out.IntervalDays)
	}
}

func runSequence(t *testing.T, v vector) {
	var want struct {
		ScheduledDays []int    `json:"scheduled_days"`
		StatesBefore  []string `json:"states_go"`
	}
	var trace struct {
		Timestamps []string `json:"review_timestamps_utc"`
		Steps      [][5]any `json:"steps"` // elapsed days, S, D, scheduled days, state after
	}
	decode(t, v.Expected, &want)
	decode(t, v.ComputedTrace, &trace)
	n := len(v.Reviews)
	if len(want.ScheduledDays) != n || len(want.StatesBefore) != n || len(trace.Steps) != n || len(trace.Timestamps) != n {
		t.Fatalf("expected arrays do not match %d reviews", n)
	}
	s := v.scheduler(t)
	card := srs.Schedule{}
	now := base
	for i, r := range v.Reviews {
		at, err := time.Parse("2006-01-02T15:04Z", trace.Timestamps[i])
		if err != nil {
			t.Fatal(err)
		}
		if now != at.UnixMilli() {
			t.Fatalf("review %d at %v, trace says %v", i, time.UnixMilli(now).UTC(), at)
		}
		if !strings.EqualFold(card.State.String(), want.StatesBefore[i]) {
			t.Errorf("review %d: state before %v, want %s", i, card.State, want.StatesBefore[i])
		}
		out := s.Next(card, r.Rating, now, 0)
		step := trace.Steps[i]
		if out.IntervalDays != want.ScheduledDays[i] || out.ElapsedDays != int(step[0].(float64)) ||
			!strings.EqualFold(out.State.String(), step[4].(string)) {
			t.Errorf("review %d: %d days elapsed, %d scheduled, %v; want %v, %d, %s",
				i, out.ElapsedDays, out.IntervalDays, out.State, step[0], want.ScheduledDays[i], step[4])
		}
		near(t, "trace S", out.Stability, step[1].(float64), v.Tolerance)
		near(t, "trace D", out.Difficulty, step[2].(float64), v.Tolerance)
		card, now = out.Schedule, out.Due
	}
}

func runRetrievability(t *testing.T, v vector) {
	var cases []struct{ T, S float64 }
	var want struct{ R []float64 }
	decode(t, v.Cases, &cases)
	decode(t, v.Expected, &want)
	if len(want.R) != len(cases) {
		t.Fatalf("%d cases, %d expected", len(cases), len(want.R))
	}
	s := v.scheduler(t)
	for i, c := range cases {
		card := srs.Schedule{State: srs.StateReview, Stability: c.S, LastReview: base}
		near(t, "R", s.Retrievability(card, base+int64(c.T*dayMS)), want.R[i], v.Tolerance)
	}
}

// runPrimitives checks every expected series with the function its key names.
func runPrimitives(t *testing.T, v vector, funcs map[string]func(i int) float64) {
	t.Helper()
	var want map[string][]float64
	decode(t, v.Expected, &want)
	for key, series := range want {
		f, ok := funcs[key]
		if !ok {
			t.Errorf("no check for expected %q", key)
			continue
		}
		for i, x := range series {
			near(t, key, f(i), x, v.Tolerance)
		}
	}
}

func runPrimitiveDifficulty(t *testing.T, v vector) {
	var d float64
	decode(t, v.D, &d)
	m := v.scheduler(t).m
	damped := func(i int) float64 { return m.dampedDifficulty(d, v.Ratings[i]) }
	next := func(i int) float64 { return m.nextDifficulty(d, v.Ratings[i]) }
	runPrimitives(t, v, map[string]func(int) float64{
		"after_linear_damping":           damped,
		"after_mean_reversion_and_clamp": next,
		"ts_fsrs_f64":                    next,
	})
}

func runPrimitiveStability(t *testing.T, v vector) {
	var s float64
	var d []float64
	decode(t, v.S, &s)
	decode(t, v.D, &d)
	m := v.scheduler(t).m
	recall := func(i int) float64 { return m.recallStability(s, d[i], v.R[i], v.Ratings[i]) }
	forget := func(i int) float64 { return m.forgetStability(s, d[i], v.R[i], true) }
	short := func(i int) float64 { return m.sameDayStability(s, v.Ratings[i]) }
	runPrimitives(t, v, map[string]func(int) float64{
		"stability_after_success(S,D[i],R[i],rating[i])": recall,
		"stability_after_failure(S,D[i],R[i])":           forget,
		"stability_short_term(S=5,rating)":               short,
		"ts_fsrs_f64_recall":                             recall,
		"ts_fsrs_f64_forget":                             forget,
		"ts_fsrs_f64_short":                              short,
	})
}

func runFuzz(t *testing.T, v vector) {
	var cases []struct {
		Interval         float64
		Minimum, Maximum int
		FuzzFactor       []float64 `json:"fuzz_factor"`
		Expected         []int
	}
	var extra struct {
		NoFuzzFactor []struct {
			Interval float64
			Min, Max int
			Expected int
		} `json:"no_fuzz_factor"`
	}
	decode(t, v.Cases, &cases)
	decode(t, v.Extra, &extra)
	if len(cases) == 0 || len(extra.NoFuzzFactor) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases {
		if len(c.FuzzFactor) != len(c.Expected) {
			t.Fatalf("case %+v: factors and expectations differ in length", c)
		}
		for i, f := range c.FuzzFactor {
			if got := fuzzedInterval(c.Interval, c.Minimum, c.Maximum, f); got != c.Expected[i] {
				t.Errorf("fuzzedInterval(%v, %d, %d, %v) = %d, want %d", c.Interval, c.Minimum, c.Maximum, f, got, c.Expected[i])
			}
		}
	}
	for _, c := range extra.NoFuzzFactor {
		if got := roundedInterval(c.Interval, c.Min, c.Max); got != c.Expected {
			t.Errorf("roundedInterval(%v, %d, %d) = %d, want %d", c.Interval, c.Min, c.Max, got, c.Expected)
		}
	}
}
