package fsrs

import (
	"math"

	"github.com/srsproxy/srsproxy/srs"
)

// Bounds of the memory state.
const (
	minStability  = 0.001
	maxStability  = 36500.0
	minDifficulty = 1.0
	maxDifficulty = 10.0
)

// model holds the FSRS-6 formulas for one weight vector.
type model struct {
	w      [21]float64
	decay  float64 // −w20
	factor float64 // 0.9^(1/decay) − 1, so that R(S, S) = 0.9
}

func newModel(w [21]float64) model {
	decay := -w[20]
	return model{w: w, decay: decay, factor: math.Pow(0.9, 1/decay) - 1}
}

func clampStability(s float64) float64  { return min(max(s, minStability), maxStability) }
func clampDifficulty(d float64) float64 { return min(max(d, minDifficulty), maxDifficulty) }

// retrievability is the forgetting curve R(t, S) for t days since the last review.
func (m *model) retrievability(t, s float64) float64 {
	return math.Pow(1+m.factor*t/s, m.decay)
}

// interval is I(r, S), the fractional days after which R falls to r.
func (m *model) interval(r, s float64) float64 {
	return s / m.factor * (math.Pow(r, 1/m.decay) - 1)
}

func (m *model) initStability(g srs.Grade) float64 { return clampStability(m.w[g-1]) }

// rawInitDifficulty is D0(G) before clamping; mean reversion needs it unclamped.
func (m *model) rawInitDifficulty(g srs.Grade) float64 {
	return m.w[4] - math.Exp(m.w[5]*float64(g-1)) + 1
}

func (m *model) initDifficulty(g srs.Grade) float64 {
	return clampDifficulty(m.rawInitDifficulty(g))
}

// dampedDifficulty is D′: the grade's change, damped as D approaches 10.
func (m *model) dampedDifficulty(d float64, g srs.Grade) float64 {
	delta := -m.w[6] * float64(g-3)
	return d + delta*(10-d)/9
}

// nextDifficulty is D″: D′ reverted towards D0(Easy), clamped.
func (m *model) nextDifficulty(d float64, g srs.Grade) float64 {
	w7 := m.w[7]
	return clampDifficulty(w7*m.rawInitDifficulty(srs.Easy) + (1-w7)*m.dampedDifficulty(d, g))
}

// recallStability is S′ after a successful review (Hard, Good or Easy) at retrievability r.
func (m *model) recallStability(s, d, r float64, g srs.Grade) float64 {
	w := &m.w
	h, b := 1.0, 1.0
	switch g {
	case srs.Hard:
		h = w[15]
	case srs.Easy:
		b = w[16]
	}
	inc := math.Exp(w[8]) * (11 - d) * math.Pow(s, -w[9]) * (math.Exp(w[10]*(1-r)) - 1) * h * b
	return clampStability(s * (1 + inc))
}

// forgetStability is S′ after a lapse at retrievability r. With short-term
// scheduling the result is at most S/e^(w17·w18), otherwise at most S.
func (m *model) forgetStability(s, d, r float64, shortTerm bool) float64 {
	w := &m.w
	next := w[11] * math.Pow(d, -w[12]) * (math.Pow(s+1, w[13]) - 1) * math.Exp(w[14]*(1-r))
	limit := s
	if shortTerm {
		limit = s / math.Exp(w[17]*w[18])
	}
	return clampStability(min(next, limit))
}

// sameDayStability is S′ after a review on the day of the previous one.
func (m *model) sameDayStability(s float64, g srs.Grade) float64 {
	w := &m.w
	inc := math.Exp(w[17]*(float64(g)-3+w[18])) * math.Pow(s, -w[19])
	if g >= srs.Hard {
		inc = max(inc, 1) // a success never lowers S (current fsrs-rs and Anki)
	}
	return clampStability(s * inc)
}

// nextMemory returns S and D after grade g, t whole days after the previous
// review of a card with memory state (s, d); first is true for a new card.
func (m *model) nextMemory(first bool, s, d float64, t int, g srs.Grade, shortTerm bool) (float64, float64) {
	if first {
		return m.initStability(g), m.initDifficulty(g)
	}
	s, d = clampStability(s), clampDifficulty(d) // a stored state may come from other weights
	nd := m.nextDifficulty(d, g)
	if t == 0 && shortTerm {
		return m.sameDayStability(s, g), nd
	}
	r := m.retrievability(float64(t), s) // 1 when t = 0: success keeps S
	if g == srs.Again {
		return m.forgetStability(s, d, r, shortTerm), nd
	}
	return m.recallStability(s, d, r, g), nd
}
