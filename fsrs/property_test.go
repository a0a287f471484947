package fsrs

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// TestProperties drives random cards and configurations through random
// review sequences and checks, after every review, that S and D stay in
// range, that a better grade never falls due sooner, and that Next is
// deterministic. Each subtest fixes fuzz, short-term and whether there are
// steps; everything else is random.
func TestProperties(t *testing.T) {
	t.Parallel()
	const iterations = 20_000 // in all, over the 8 subtests
	const reviews = 6         // per random card
	for variant := range 8 {
		fuzz, shortTerm, steps := variant&1 != 0, variant&2 != 0, variant&4 != 0
		name := fmt.Sprintf("fuzz=%v,short-term=%v,steps=%v", fuzz, shortTerm, steps)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(variant), 42))
			for i := range iterations / 8 {
				cfg := randomConfig(rng, fuzz, shortTerm, steps)
				s, err := New(cfg)
				if err != nil {
					t.Fatalf("New(%+v): %v", cfg, err)
				}
				card := randomCard(rng)
				seed := rng.Uint64()
				for r := range reviews {
					now := card.LastReview + randomGap(rng)
					var outs [4]Outcome
					for g := srs.Again; g <= srs.Easy; g++ {
						outs[g-1] = s.Next(card, g, now, seed)
						if again := s.Next(card, g, now, seed); again != outs[g-1] {
							t.Fatalf("not deterministic: %+v then %+v", outs[g-1], again)
						}
					}
					if err := checkOutcomes(s, card, now, outs); err != nil {
						t.Fatalf("iteration %d review %d: %v\nconfig %+v\ncard %+v at +%d ms",
							i, r, err, s.Config(), card, now-card.LastReview)
					}
					card = outs[rng.IntN(4)].Schedule
				}
			}
		})
	}
}

// checkOutcomes checks the four outcomes of one card at one time.
func checkOutcomes(s *Scheduler, card srs.Schedule, now int64, outs [4]Outcome) error {
	maxDays := s.Config().MaximumInterval
	prev := int64(0)
	for i, o := range outs {
		g := i + 1
		switch {
		case !(o.Stability >= minStability && o.Stability <= maxStability):
			return fmt.Errorf("grade %d: S = %v", g, o.Stability)
		case !(o.Difficulty >= minDifficulty && o.Difficulty <= maxDifficulty):
			return fmt.Errorf("grade %d: D = %v", g, o.Difficulty)
		case o.Reps != card.Reps+1 || o.LastReview != now:
			return fmt.Errorf("grade %d: reps %d, last review %d", g, o.Reps, o.LastReview)
		case o.State == srs.StateReview && (o.IntervalDays < 1 || o.IntervalDays > maxDays || o.Due != now+int64(o.IntervalDays)*dayMS):
			return fmt.Errorf("grade %d: review in %d days, due +%d ms", g, o.IntervalDays, o.Due-now)
		case o.State != srs.StateReview && (o.IntervalDays != 0 || o.Due-now < minStep.Milliseconds() || o.Due-now > 36*time.Hour.Milliseconds()):
			return fmt.Errorf("grade %d: %v step due +%d ms, %d days", g, o.State, o.Due-now, o.IntervalDays)
		case o.Due-now < prev:
			return fmt.Errorf("grade %d due +%d ms, before grade %d's +%d ms", g, o.Due-now, g-1, prev)
		}
		prev = o.Due - now
	}
	return nil
}

func randomConfig(rng *rand.Rand, fuzz, shortTerm, steps bool) srs.SchedulerConfig {
	cfg := srs.SchedulerConfig{
		DesiredRetention: 0.7 + 0.29*rng.Float64(),
		MaximumInterval:  []int{0, 1, 2, 7, 100, 36500, 1 + rng.IntN(36500)}[rng.IntN(7)],
		EnableFuzz:       fuzz,
		EnableShortTerm:  shortTerm,
		LearningSteps:    []time.Duration{},
		RelearningSteps:  []time.Duration{},
	}
	if rng.IntN(4) > 0 { // otherwise the defaults
		w := make([]float64, 21)
		for i, r := range paramRanges {
			w[i] = r[0] + (r[1]-r[0])*rng.Float64()
		}
		cfg.Params = w
	}
	if steps {
		cfg.LearningSteps = randomSteps(rng)
		cfg.RelearningSteps = randomSteps(rng)
		if len(cfg.LearningSteps)+len(cfg.RelearningSteps) == 0 {
			cfg.LearningSteps = nil // the defaults
		}
	}
	return cfg
}

func randomSteps(rng *rand.Rand) []time.Duration {
	steps := make([]time.Duration, rng.IntN(4))
	for i := range steps {
		steps[i] = minStep + time.Duration(rng.Int64N(int64(maxStep-minStep)))
	}
	slices.Sort(steps)
	return steps
}

// randomCard returns a new card or one in a random state with a memory state
// anywhere in range and a step that may lie past the configured steps.
func randomCard(rng *rand.Rand) srs.Schedule {
	state := srs.State(rng.IntN(4))
	if state == srs.StateNew {
		return srs.Schedule{LastReview: base}
	}
	return srs.Schedule{
		State:      state,
		Step:       rng.IntN(4),
		Stability:  math.Exp(math.Log(minStability) + (math.Log(maxStability)-math.Log(minStability))*rng.Float64()),
		Difficulty: minDifficulty + (maxDifficulty-minDifficulty)*rng.Float64(),
		LastReview: base,
		Reps:       1 + rng.IntN(100),
		Lapses:     rng.IntN(10),
	}
}

// randomGap is the time to the next review: the same instant, within the day,
// whole days, or any time up to 3 years.
func randomGap(rng *rand.Rand) int64 {
	switch rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return rng.Int64N(dayMS)
	case 2:
		return (1 + rng.Int64N(60)) * dayMS
	default:
		return rng.Int64N(3 * 365 * dayMS)
	}
}
