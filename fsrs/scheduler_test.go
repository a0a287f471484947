package fsrs

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

func mustNew(t testing.TB, cfg srs.SchedulerConfig) *Scheduler {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	got := mustNew(t, srs.SchedulerConfig{EnableShortTerm: true}).Config()
	want := srs.DefaultSchedulerConfig()
	if !slices.Equal(got.Params, DefaultParams[:]) || got.DesiredRetention != want.DesiredRetention ||
		got.MaximumInterval != want.MaximumInterval || !slices.Equal(got.LearningSteps, want.LearningSteps) ||
		!slices.Equal(got.RelearningSteps, want.RelearningSteps) || got.EnableFuzz || !got.EnableShortTerm {
		t.Errorf("Config() = %+v, want %+v with default params", got, want)
	}

	none := mustNew(t, srs.SchedulerConfig{LearningSteps: []time.Duration{}, RelearningSteps: []time.Duration{}}).Config()
	if none.LearningSteps == nil || len(none.LearningSteps) != 0 || none.RelearningSteps == nil || len(none.RelearningSteps) != 0 {
		t.Errorf("empty steps became %v and %v, want none", none.LearningSteps, none.RelearningSteps)
	}
}

func TestConfigIsACopy(t *testing.T) {
	t.Parallel()
	in := srs.SchedulerConfig{Params: slices.Clone(DefaultParams[:19]), LearningSteps: []time.Duration{time.Minute}}
	s := mustNew(t, in)
	in.Params[0], in.LearningSteps[0] = 50, time.Hour
	c := s.Config()
	c.Params[1], c.LearningSteps[0], c.RelearningSteps[0] = 50, time.Hour, time.Hour
	c = s.Config()
	if len(c.Params) != 21 || c.Params[0] != DefaultParams[0] || c.Params[1] != DefaultParams[1] || c.Params[20] != 0.5 ||
		c.LearningSteps[0] != time.Minute || c.RelearningSteps[0] != 10*time.Minute {
		t.Errorf("Config() changed through aliased slices: %+v", c)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	steps := func(d ...time.Duration) []time.Duration { return d }
	tests := []struct {
		name string
		cfg  srs.SchedulerConfig
		want string
	}{
		{"params length", srs.SchedulerConfig{Params: make([]float64, 5)}, "5 parameters"},
		{"params NaN", srs.SchedulerConfig{Params: withValue(7, math.NaN())}, "w7 is NaN"},
		{"retention low", srs.SchedulerConfig{DesiredRetention: 0.69}, "desired retention"},
		{"retention high", srs.SchedulerConfig{DesiredRetention: 0.995}, "desired retention"},
		{"retention negative", srs.SchedulerConfig{DesiredRetention: -0.9}, "desired retention"},
		{"retention NaN", srs.SchedulerConfig{DesiredRetention: math.NaN()}, "desired retention"},
		{"interval negative", srs.SchedulerConfig{MaximumInterval: -1}, "maximum interval"},
		{"interval high", srs.SchedulerConfig{MaximumInterval: 36501}, "maximum interval"},
		{"learning zero", srs.SchedulerConfig{LearningSteps: steps(0)}, "learning step 1"},
		{"learning negative", srs.SchedulerConfig{LearningSteps: steps(time.Minute, -time.Minute)}, "learning step 2"},
		{"learning sub-second", srs.SchedulerConfig{LearningSteps: steps(time.Millisecond)}, "learning step 1"},
		{"learning a day", srs.SchedulerConfig{LearningSteps: steps(24 * time.Hour)}, "learning step 1"},
		{"learning descending", srs.SchedulerConfig{LearningSteps: steps(10*time.Minute, time.Minute)}, "learning step 2"},
		{"relearning a day", srs.SchedulerConfig{RelearningSteps: steps(time.Hour, 24*time.Hour)}, "relearning step 2"},
		{"relearning descending", srs.SchedulerConfig{RelearningSteps: steps(time.Hour, time.Minute)}, "relearning step 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewAcceptsLimits(t *testing.T) {
	t.Parallel()
	for _, cfg := range []srs.SchedulerConfig{
		{DesiredRetention: 0.7, MaximumInterval: 1},
		{DesiredRetention: 0.99, MaximumInterval: 36500},
		{LearningSteps: []time.Duration{time.Second, time.Second, 24*time.Hour - 1}},
	} {
		if _, err := New(cfg); err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
		}
	}
}

const minute = int64(time.Minute / time.Millisecond)

// TestSteps checks the step rules of the spec one by one.
func TestSteps(t *testing.T) {
	t.Parallel()
	def := mustNew(t, srs.SchedulerConfig{EnableShortTerm: true})
	one := mustNew(t, srs.SchedulerConfig{EnableShortTerm: true, LearningSteps: []time.Duration{10 * time.Minute}})
	noRelearn := mustNew(t, srs.SchedulerConfig{EnableShortTerm: true, RelearningSteps: []time.Duration{}})
	noSteps := mustNew(t, srs.SchedulerConfig{EnableShortTerm: true, LearningSteps: []time.Duration{}, RelearningSteps: []time.Duration{}})
	longSingle := mustNew(t, srs.SchedulerConfig{EnableShortTerm: true, LearningSteps: []time.Duration{20 * time.Hour},
		Params: withValue(2, 0.5)}) // Good graduates at 1 day
	newCard := srs.Schedule{}
	learning1 := srs.Schedule{State: srs.StateLearning, Step: 1, Stability: 2, Difficulty: 5, LastReview: base, Reps: 1}
	stale := srs.Schedule{State: srs.StateLearning, Step: 5, Stability: 2, Difficulty: 5, LastReview: base, Reps: 1}
	review := srs.Schedule{State: srs.StateReview, Stability: 20, Difficulty: 5, LastReview: base - 20*dayMS, Reps: 5, Lapses: 1}
	relearning := srs.Schedule{State: srs.StateRelearning, Stability: 3, Difficulty: 7, LastReview: base, Reps: 6, Lapses: 2}
	tests := []struct {
		name   string
		s      *Scheduler
		card   srs.Schedule
		g      srs.Grade
		state  srs.State
		step   int
		due    int64 // ms after now for a step; 0 for Review
		lapses int
	}{
		{"new again", def, newCard, srs.Again, srs.StateLearning, 0, 1 * minute, 0},
		{"new hard mean of two steps", def, newCard, srs.Hard, srs.StateLearning, 0, 5*minute + 30_000, 0},
		{"new good next step", def, newCard, srs.Good, srs.StateLearning, 1, 10 * minute, 0},
		{"new easy graduates", def, newCard, srs.Easy, srs.StateReview, 0, 0, 0},
		{"single step hard 1.5x", one, newCard, srs.Hard, srs.StateLearning, 0, 15 * minute, 0},
		{"single step good graduates", one, newCard, srs.Good, srs.StateReview, 0, 0, 0},
		{"single long step hard not after good", longSingle, newCard, srs.Hard, srs.StateLearning, 0, 24 * 60 * minute, 0},
		{"later step again", def, learning1, srs.Again, srs.StateLearning, 0, minute, 0},
		{"later step hard stays", def, learning1, srs.Hard, srs.StateLearning, 1, 10 * minute, 0},
		{"last step good graduates", def, learning1, srs.Good, srs.StateReview, 0, 0, 0},
		{"stale step hard graduates", def, stale, srs.Hard, srs.StateReview, 0, 0, 0},
		{"stale step again restarts", def, stale, srs.Again, srs.StateLearning, 0, minute, 0},
		{"no steps new", noSteps, newCard, srs.Again, srs.StateReview, 0, 0, 0},
		{"review again relearns", def, review, srs.Again, srs.StateRelearning, 0, 10 * minute, 2},
		{"review again without relearning steps", noRelearn, review, srs.Again, srs.StateReview, 0, 0, 2},
		{"review hard", def, review, srs.Hard, srs.StateReview, 0, 0, 1},
		{"relearning again keeps lapses", def, relearning, srs.Again, srs.StateRelearning, 0, 10 * minute, 2},
		{"relearning hard single step", def, relearning, srs.Hard, srs.StateRelearning, 0, 15 * minute, 2},
		{"relearning good graduates", def, relearning, srs.Good, srs.StateReview, 0, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := base + 5*minute
			out := tt.s.Next(tt.card, tt.g, now, 1)
			if out.State != tt.state || out.Step != tt.step || out.Lapses != tt.lapses || out.Reps != tt.card.Reps+1 || out.LastReview != now {
				t.Errorf("got %v step %d lapses %d reps %d last %d; want %v step %d lapses %d reps %d last %d",
					out.State, out.Step, out.Lapses, out.Reps, out.LastReview, tt.state, tt.step, tt.lapses, tt.card.Reps+1, now)
			}
			switch {
			case tt.state == srs.StateReview:
				if out.IntervalDays < 1 || out.Due != now+int64(out.IntervalDays)*dayMS {
					t.Errorf("review due %d with %d days", out.Due-now, out.IntervalDays)
				}
			case out.IntervalDays != 0 || out.Due-now != tt.due:
				t.Errorf("step due after %d ms (%d days), want %d ms", out.Due-now, out.IntervalDays, tt.due)
			}
		})
	}
}

// TestElapsedDaysLegacy checks the rule of seasons made before day
// boundaries: whole 24-hour periods.
func TestElapsedDaysLegacy(t *testing.T) {
	t.Parallel()
	s := mustNew(t, srs.SchedulerConfig{DayStart: srs.DayStartLegacy})
	card := srs.Schedule{State: srs.StateReview, Stability: 10, Difficulty: 5, LastReview: base}
	for _, tt := range []struct {
		after int64
		want  int
	}{{0, 0}, {dayMS - 1, 0}, {dayMS, 1}, {2*dayMS - 1, 1}, {30 * dayMS, 30}} {
		if got := s.Next(card, srs.Good, base+tt.after, 0).ElapsedDays; got != tt.want {
			t.Errorf("%d ms after: elapsed %d, want %d", tt.after, got, tt.want)
		}
	}
	if got := s.Next(srs.Schedule{}, srs.Good, base, 0).ElapsedDays; got != 0 {
		t.Errorf("new card: elapsed %d, want 0", got)
	}
}

// TestLongTermOrdering checks the long-term mode's ordering of a new card's
// intervals: the default S0 round to 1, 1, 2 and 8 days.
func TestLongTermOrdering(t *testing.T) {
	t.Parallel()
	s := mustNew(t, srs.SchedulerConfig{LearningSteps: []time.Duration{}, RelearningSteps: []time.Duration{}})
	want := []int{1, 2, 3, 8}
	for g := srs.Again; g <= srs.Easy; g++ {
		out := s.Next(srs.Schedule{}, g, base, 0)
		if out.State != srs.StateReview || out.IntervalDays != want[g-1] {
			t.Errorf("grade %d: %v %d days, want review %d days", g, out.State, out.IntervalDays, want[g-1])
		}
	}
}

func TestShortTermOff(t *testing.T) {
	t.Parallel()
	s := mustNew(t, srs.SchedulerConfig{})
	card := srs.Schedule{State: srs.StateLearning, Stability: 3, Difficulty: 5, LastReview: base, Reps: 1}
	for g := srs.Hard; g <= srs.Easy; g++ {
		if got := s.Next(card, g, base+minute, 0).Stability; got != 3 {
			t.Errorf("same-day grade %d: S = %v, want 3 (R = 1)", g, got)
		}
	}
	if got := s.Next(card, srs.Again, base+minute, 0).Stability; got > 3 {
		t.Errorf("same-day lapse: S = %v, want at most 3", got)
	}
}

func TestFuzz(t *testing.T) {
	t.Parallel()
	plain := mustNew(t, srs.SchedulerConfig{})
	fuzzed := mustNew(t, srs.SchedulerConfig{EnableFuzz: true})
	card := srs.Schedule{State: srs.StateReview, Stability: 40, Difficulty: 5, LastReview: base, Reps: 7}
	now := base + 40*dayMS
	want := plain.Next(card, srs.Good, now, 0).IntervalDays
	seen := map[int]bool{}
	for seed := range uint64(1000) {
		got := fuzzed.Next(card, srs.Good, now, seed).IntervalDays
		if d := fuzzDelta(float64(want)) + 1; math.Abs(float64(got-want)) > d {
			t.Fatalf("seed %d: %d days, more than %v from %d", seed, got, d, want)
		}
		seen[got] = true
	}
	if len(seen) < 5 {
		t.Errorf("fuzz gave only %v around %d days", seen, want)
	}
}

func TestFuzzFactor(t *testing.T) {
	t.Parallel()
	var sum float64
	const n = 100_000
	for i := range n {
		f := fuzzFactor(Seed("SEASON-2025", "p", "q"), i)
		if f < 0 || f >= 1 {
			t.Fatalf("fuzzFactor = %v, want [0, 1)", f)
		}
		sum += f
	}
	if mean := sum / n; math.Abs(mean-0.5) > 0.01 {
		t.Errorf("mean fuzz factor %v, want about 0.5", mean)
	}
}

func TestSeed(t *testing.T) {
	t.Parallel()
	if got := Seed("SEASON-2025", "alice", "q1"); got != 0x8affddacb657507e {
		t.Errorf("Seed = %#x, want FNV-1a 64 of the NUL-joined fields", got)
	}
	if Seed("a", "bc", "d") == Seed("ab", "c", "d") {
		t.Error("fields are not separated")
	}
}

func TestRetrievability(t *testing.T) {
	t.Parallel()
	s := mustNew(t, srs.SchedulerConfig{})
	card := srs.Schedule{State: srs.StateReview, Stability: 10, Difficulty: 5, LastReview: base}
	tests := []struct {
		name string
		card srs.Schedule
		now  int64
		want float64
	}{
		{"new card", srs.Schedule{}, base, 0},
		{"at review", card, base, 1},
		{"before review", card, base - dayMS, 1},
		{"after S days", card, base + 10*dayMS, 0.9},
		{"half a day", card, base + dayMS/2, s.m.retrievability(0.5, 10)},
	}
	for _, tt := range tests {
		if got := s.Retrievability(tt.card, tt.now); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s: R = %v, want %v", tt.name, got, tt.want)
		}
	}
	prev := 1.0
	for d := int64(1); d < 1000; d *= 2 {
		r := s.Retrievability(card, base+d*dayMS)
		if r >= prev || r <= 0 {
			t.Fatalf("R after %d days = %v, want in (0, %v)", d, r, prev)
		}
		prev = r
	}
}

func TestGradeFromAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		correct  bool
		ms       int64
		attempts int
		want     srs.Grade
	}{
		{false, 500, 1, srs.Again},
		{true, 500, 2, srs.Again},
		{false, 9000, 3, srs.Again},
		{true, 0, 1, srs.Easy},
		{true, 1999, 1, srs.Easy},
		{true, 2000, 1, srs.Good},
		{true, 4999, 1, srs.Good},
		{true, 5000, 1, srs.Hard},
		{true, 60_000, 0, srs.Hard},
	}
	for _, tt := range tests {
		if got := GradeFromAnswer(tt.correct, tt.ms, tt.attempts); got != tt.want {
			t.Errorf("GradeFromAnswer(%v, %d, %d) = %d, want %d", tt.correct, tt.ms, tt.attempts, got, tt.want)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	s := mustNew(b, srs.SchedulerConfig{EnableFuzz: true, EnableShortTerm: true})
	card := srs.Schedule{State: srs.StateReview, Stability: 12, Difficulty: 5.5, LastReview: base, Reps: 9}
	seed := Seed("SEASON-2025", "alice", "q1")
	for b.Loop() {
		s.Next(card, srs.Good, base+13*dayMS, seed)
	}
}

// TestEasyPastGoodInStep checks Anki's answer_easy: Easy leaving a step
// graduates at least a day past the interval Good's memory state would get,
// also when Good itself stays in a step. With w2 = w3 both are 5 days.
func TestEasyPastGoodInStep(t *testing.T) {
	t.Parallel()
	w := DefaultParams
	w[2], w[3] = 5, 5
	s := mustNew(t, srs.SchedulerConfig{Params: w[:], EnableShortTerm: true})
	good := s.Next(srs.Schedule{}, srs.Good, base, 0)
	easy := s.Next(srs.Schedule{}, srs.Easy, base, 0)
	if good.State != srs.StateLearning || easy.State != srs.StateReview {
		t.Fatalf("good %v, easy %v", good.State, easy.State)
	}
	if gd := int(math.Round(s.m.interval(0.9, good.Stability))); easy.IntervalDays != gd+1 || gd != 5 {
		t.Errorf("easy %d days, good's interval %d days; want easy = good + 1 = 6", easy.IntervalDays, gd)
	}
	// Relearning: a lapse on a review card, then Easy while Good would stay
	// on the next relearning step.
	s2 := mustNew(t, srs.SchedulerConfig{Params: w[:], EnableShortTerm: true,
		RelearningSteps: []time.Duration{10 * time.Minute, time.Hour}})
	card := srs.Schedule{State: srs.StateRelearning, Stability: 5, Difficulty: 5, LastReview: base, Reps: 4, Lapses: 1}
	g := s2.Next(card, srs.Good, base+dayMS, 0)
	e := s2.Next(card, srs.Easy, base+dayMS, 0)
	if gd := int(math.Round(s2.m.interval(0.9, g.Stability))); g.State != srs.StateRelearning || e.IntervalDays < gd+1 {
		t.Errorf("relearning: good %v (interval %d), easy %d days", g.State, gd, e.IntervalDays)
	}
}
