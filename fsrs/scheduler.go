// Package fsrs implements FSRS-6, the spaced-repetition scheduler Anki uses by
// default: the memory model (stability, difficulty, retrievability), the
// learning and relearning steps, interval fuzz, and the migration of FSRS-4.5
// and FSRS-5 weights.
package fsrs

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

const (
	dayMS = 86_400_000

	minRetention = 0.7
	maxRetention = 0.99
	maxInterval  = 36500          // days; also the default maximum interval
	minStep      = time.Second    // shortest learning or relearning step
	maxStep      = 24 * time.Hour // steps must be shorter than a day
)

// Scheduler schedules cards for one season's configuration. It is immutable
// and safe for concurrent use.
type Scheduler struct {
	cfg        srs.SchedulerConfig // effective: defaults filled, params migrated
	m          model
	learning   []int64 // learning steps in ms
	relearning []int64 // relearning steps in ms
	longTerm   bool    // no steps at all and short-term off
	days       dayClock
}

// New validates cfg and fills its defaults (see srs.SchedulerConfig): nil
// params are DefaultParams, 17 or 19 are migrated (see MigrateParams), nil
// steps are the defaults [1m 10m] and [10m], empty non-nil steps are none, a
// zero retention is 0.9, a zero maximum interval is 36500 days and an empty
// timezone is UTC. DayStart is taken as it is: 0 is midnight.
//
// It returns an error naming the field when the params are not accepted by
// MigrateParams, the desired retention is outside [0.7, 0.99], the maximum
// interval is outside [1, 36500] days, or a step is outside [1s, 24h) or
// shorter than the step before it, the timezone is not an IANA zone (see
// LoadTimezone), or the day start is neither an hour 0–23 nor
// srs.DayStartLegacy.
func New(cfg srs.SchedulerConfig) (*Scheduler, error) {
	w, err := MigrateParams(cfg.Params)
	if err != nil {
		return nil, err
	}
	cfg.Params = w[:]
	if cfg.DesiredRetention == 0 {
		cfg.DesiredRetention = 0.9
	}
	if !(cfg.DesiredRetention >= minRetention && cfg.DesiredRetention <= maxRetention) {
		return nil, fmt.Errorf("fsrs: desired retention %v not in [%v, %v]", cfg.DesiredRetention, minRetention, maxRetention)
	}
	if cfg.MaximumInterval == 0 {
		cfg.MaximumInterval = maxInterval
	}
	if cfg.MaximumInterval < 1 || cfg.MaximumInterval > maxInterval {
		return nil, fmt.Errorf("fsrs: maximum interval %d days not in [1, %d]", cfg.MaximumInterval, maxInterval)
	}
	if cfg.LearningSteps == nil {
		cfg.LearningSteps = []time.Duration{time.Minute, 10 * time.Minute}
	}
	if cfg.RelearningSteps == nil {
		cfg.RelearningSteps = []time.Duration{10 * time.Minute}
	}
	cfg.LearningSteps = slices.Clone(cfg.LearningSteps)
	cfg.RelearningSteps = slices.Clone(cfg.RelearningSteps)
	learning, err := stepsMS("learning", cfg.LearningSteps)
	if err != nil {
		return nil, err
	}
	relearning, err := stepsMS("relearning", cfg.RelearningSteps)
	if err != nil {
		return nil, err
	}
	cfg.Timezone = cmp.Or(cfg.Timezone, "UTC")
	days, err := newDayClock(cfg.Timezone, cfg.DayStart)
	if err != nil {
		return nil, err
	}
	return &Scheduler{
		cfg:        cfg,
		m:          newModel(w),
		learning:   learning,
		relearning: relearning,
		longTerm:   len(learning) == 0 && len(relearning) == 0 && !cfg.EnableShortTerm,
		days:       days,
	}, nil
}

// stepsMS validates steps and converts them to milliseconds.
func stepsMS(name string, steps []time.Duration) ([]int64, error) {
	ms := make([]int64, len(steps))
	for i, d := range steps {
		if d < minStep || d >= maxStep {
			return nil, fmt.Errorf("fsrs: %s step %d (%v) not in [%v, %v)", name, i+1, d, minStep, maxStep)
		}
		if i > 0 && d < steps[i-1] {
			return nil, fmt.Errorf("fsrs: %s step %d (%v) is shorter than the step before it", name, i+1, d)
		}
		ms[i] = d.Milliseconds()
	}
	return ms, nil
}

// Config returns the effective configuration: defaults filled and the params
// migrated to 21 weights. The slices are copies.
func (s *Scheduler) Config() srs.SchedulerConfig {
	cfg := s.cfg
	cfg.Params = slices.Clone(cfg.Params)
	cfg.LearningSteps = slices.Clone(cfg.LearningSteps)
	cfg.RelearningSteps = slices.Clone(cfg.RelearningSteps)
	return cfg
}

// Outcome is the result of one review.
type Outcome struct {
	srs.Schedule     // the card after the review
	IntervalDays int // days until Due when the card is in Review after the review; 0 for a step
	ElapsedDays  int // days between the previous review and this one (see ElapsedDays); 0 for a new card
}

// Next applies grade g at now (unix ms) to card and returns the card after
// the review. seed identifies the card (see Seed): fuzz is drawn from seed
// and card.Reps, so replaying the same reviews gives the same schedule.
// The caller guarantees that g is valid and now >= card.LastReview.
//
// A better grade never gives an earlier due time than a worse one.
func (s *Scheduler) Next(card srs.Schedule, g srs.Grade, now int64, seed uint64) Outcome {
	elapsed := 0
	if card.State != srs.StateNew {
		elapsed = s.ElapsedDays(card.LastReview, now)
	}
	c := s.candidates(card, elapsed, fuzzFactor(seed, card.Reps))[g-1]
	out := Outcome{
		Schedule: srs.Schedule{
			State:      c.state,
			Step:       c.step,
			Stability:  c.s,
			Difficulty: c.d,
			Due:        now + c.delay,
			LastReview: now,
			Reps:       card.Reps + 1,
			Lapses:     card.Lapses,
		},
		ElapsedDays: elapsed,
	}
	if c.days > 0 {
		out.Due = now + int64(c.days)*dayMS
		out.IntervalDays = c.days
	}
	if card.State == srs.StateReview && g == srs.Again {
		out.Lapses++
	}
	return out
}

// ElapsedDays is FSRS's t between a review at last and one at now (unix ms):
// the day boundaries crossed between them in the season's timezone, a day
// starting at its DayStart hour, so a review at 21:00 and the next at 08:00
// are a day apart with DayStart 4; with srs.DayStartLegacy, the whole
// 24-hour periods between them. It is 0 when now is not after last.
func (s *Scheduler) ElapsedDays(last, now int64) int { return s.days.elapsed(last, now) }

// candidate is the card after one of the four grades.
type candidate struct {
	state srs.State
	step  int
	s, d  float64
	days  int   // > 0 when the card is in Review after the review
	delay int64 // ms until the learning or relearning step; used when days == 0
}

// candidates computes the outcome of every grade, so that their intervals
// can be kept in order.
func (s *Scheduler) candidates(card srs.Schedule, elapsed int, f float64) [4]candidate {
	var c [4]candidate
	for i := range c {
		g := srs.Grade(i + 1)
		c[i].s, c[i].d = s.m.nextMemory(card.State == srs.StateNew, card.Stability, card.Difficulty, elapsed, g, s.cfg.EnableShortTerm)
		s.transition(&c[i], card, g)
		if c[i].state == srs.StateReview {
			c[i].days = s.reviewDays(s.m.interval(s.cfg.DesiredRetention, c[i].s), f)
		}
	}
	s.order(&c)
	// Anki's answer_easy: Easy leaving (re)learning graduates to at least a
	// day past Good's interval, also when Good stays in a step; Good's
	// interval is then the one its memory state would be given.
	good, easy := &c[srs.Good-1], &c[srs.Easy-1]
	if card.State != srs.StateReview && !s.longTerm && good.days == 0 && easy.days > 0 {
		gd := s.reviewDays(s.m.interval(s.cfg.DesiredRetention, good.s), f)
		easy.days = min(max(easy.days, gd+1), s.cfg.MaximumInterval)
	}
	return c
}

// transition sets c's state, step and step delay after grade g.
func (s *Scheduler) transition(c *candidate, card srs.Schedule, g srs.Grade) {
	step := max(card.Step, 0)
	state, steps := srs.StateLearning, s.learning
	switch card.State {
	case srs.StateNew:
		step = 0
	case srs.StateRelearning:
		state, steps = srs.StateRelearning, s.relearning
	case srs.StateReview:
		if g != srs.Again {
			c.state = srs.StateReview
			return
		}
		state, steps, step = srs.StateRelearning, s.relearning, 0
	}
	delay, next, ok := stepDelay(steps, step, g)
	if !ok {
		c.state = srs.StateReview
		return
	}
	c.state, c.step, c.delay = state, next, delay
}

// stepDelay returns the delay (ms) and step index after grade g on step
// `step` of steps, or ok = false when the card graduates to Review.
func stepDelay(steps []int64, step int, g srs.Grade) (delay int64, next int, ok bool) {
	// A step past the end means the steps were shortened since: graduate (as py-fsrs).
	if len(steps) == 0 || (step >= len(steps) && g != srs.Again) {
		return 0, 0, false
	}
	switch g {
	case srs.Again:
		return steps[0], 0, true
	case srs.Hard:
		switch {
		case step > 0:
			return steps[step], step, true
		case len(steps) == 1:
			return steps[0] * 3 / 2, 0, true // Anki caps this at step + 1 day; steps < 24h never reach it
		default:
			return (steps[0] + steps[1]) / 2, 0, true
		}
	case srs.Good:
		if step+1 < len(steps) {
			return steps[step+1], step + 1, true
		}
	}
	return 0, 0, false
}

// reviewDays rounds (or, with fuzz on, fuzzes) a review interval into whole
// days within [1, MaximumInterval]. Unlike ts-fsrs, the fuzz range is not
// raised above the days just elapsed: minimum 1, as Anki's review fuzz.
func (s *Scheduler) reviewDays(ivl float64, f float64) int {
	if !s.cfg.EnableFuzz {
		return roundedInterval(ivl, 1, s.cfg.MaximumInterval)
	}
	return fuzzedInterval(ivl, 1, s.cfg.MaximumInterval, f)
}

// order keeps the day intervals of better grades from being shorter, which
// fuzz or unusual weights (such as w1 > w2) could otherwise cause.
func (s *Scheduler) order(c *[4]candidate) {
	again, hard, good, easy := &c[0], &c[1], &c[2], &c[3]
	if s.longTerm { // every grade leads to Review
		again.days = min(again.days, hard.days)
		hard.days = max(hard.days, again.days+1)
		good.days = max(good.days, hard.days+1)
		easy.days = max(easy.days, good.days+1)
	} else {
		if hard.days > 0 && good.days > 0 {
			hard.days = min(hard.days, good.days)
			good.days = max(good.days, hard.days+1)
		}
		if good.days > 0 && easy.days > 0 {
			easy.days = max(easy.days, good.days+1)
		}
		// Not in the spec: without relearning steps a lapse stays in Review,
		// and fuzz could make it outlast Hard.
		if again.days > 0 && hard.days > 0 {
			again.days = min(again.days, hard.days)
		}
		// Not in the spec: 1.5 × a single step of up to 24h can outlast a
		// graduating Good of 1 day.
		if hard.days == 0 && good.days > 0 {
			hard.delay = min(hard.delay, int64(good.days)*dayMS)
		}
	}
	for i := range c {
		c[i].days = min(c[i].days, s.cfg.MaximumInterval)
	}
}

// Retrievability is R(t, S), the probability of recalling the card at now
// (unix ms), t being the fractional days since its last review (0 if now is
// earlier). A new card (or one without stability) has never been learnt, so
// its retrievability is 0 rather than undefined.
func (s *Scheduler) Retrievability(card srs.Schedule, now int64) float64 {
	if card.State == srs.StateNew || card.Stability <= 0 {
		return 0
	}
	t := max(float64(now-card.LastReview)/dayMS, 0)
	return s.m.retrievability(t, card.Stability)
}

// roundedInterval is an interval without fuzz: rounded half away from zero
// and clamped to [minimum, maximum].
func roundedInterval(interval float64, minimum, maximum int) int {
	return int(min(max(math.Round(interval), float64(minimum)), float64(maximum)))
}
