package optimize

import (
	"maps"
	"math"
	"slices"
)

// initSMax is the upper bound of a fitted initial stability (fsrs-rs's INIT_S_MAX).
const initSMax = 100.0

// pretrain fits each first grade's initial stability to the outcome of the
// cards' first long-term review, as fsrs-rs's parameter initialisation
// does: per first grade, the pass rate per elapsed day (Laplace-smoothed
// towards averageRecall) is fitted with the default forgetting curve by a
// ternary search on [0.001, 100], with an L1 pull of 1/16 towards the
// default; then smoothAndFill orders and fills the four values. It returns
// w0–w3 and the number of items per first grade, and ok = false when no
// grade has data.
func pretrain(cards []Card, initSet []item, averageRecall float64) (s0 [4]float64, counts map[int]int, ok bool) {
	type point struct{ pass, n float64 }
	byGrade := map[int]map[int]*point{}
	for _, it := range initSet {
		card := cards[it.card]
		g := card[0].Grade
		first := firstLongTerm(card)
		if byGrade[g] == nil {
			byGrade[g] = map[int]*point{}
		}
		pt := byGrade[g][first.Days]
		if pt == nil {
			pt = &point{}
			byGrade[g][first.Days] = pt
		}
		pt.n++
		if first.Grade > 1 {
			pt.pass++
		}
	}
	def := newParams(&defaultParams)
	counts = map[int]int{}
	fitted := map[int]float64{}
	for g, pts := range byGrade {
		days := slices.Sorted(maps.Keys(pts))
		t := make([]float64, len(days))
		recall := make([]float64, len(days))
		n := make([]float64, len(days))
		for i, dd := range days {
			pt := pts[dd]
			t[i], n[i] = float64(dd), pt.n
			recall[i] = (pt.pass + averageRecall) / (pt.n + 1) // (mean·n + average)/(n + 1)
			counts[g] += int(pt.n)
		}
		defS := defaultParams[g-1]
		loss := func(s float64) float64 {
			l := 0.0
			for i := range t {
				y := def.recall(t[i], s)
				l -= (recall[i]*math.Log(y) + (1-recall[i])*math.Log(1-y)) * n[i]
			}
			return l + math.Abs(s-defS)/16
		}
		lo, hi := sMin, initSMax
		best := defS
		for iter := 0; hi-lo > 2.220446049250313e-16 && iter < 1000; iter++ {
			m1, m2 := lo+(hi-lo)/3, hi-(hi-lo)/3
			if loss(m1) < loss(m2) {
				hi = m2
			} else {
				lo = m1
			}
			best = (hi + lo) / 2
		}
		fitted[g] = best
	}
	if len(fitted) == 0 {
		return s0, counts, false
	}
	return smoothAndFill(fitted, counts), counts, true
}

// smoothAndFill makes the initial stabilities grow with the grade (a pair
// out of order takes the value of the grade with more items) and fills the
// grades without data from the others with fsrs-rs's fixed exponents, then
// clamps them to [0.001, 100].
func smoothAndFill(st map[int]float64, counts map[int]int) [4]float64 {
	for g := range st {
		if _, ok := counts[g]; !ok {
			delete(st, g)
		}
	}
	for _, pr := range [][2]int{{1, 2}, {2, 3}, {3, 4}, {1, 3}, {2, 4}, {1, 4}} {
		small, okS := st[pr[0]]
		big, okB := st[pr[1]]
		if okS && okB && small > big {
			if counts[pr[0]] > counts[pr[1]] {
				st[pr[1]] = small
			} else {
				st[pr[0]] = big
			}
		}
	}
	const w1, w2 = 0.41, 0.54
	var a [5]float64 // a[g] for grade g; 0 = missing
	for g, v := range st {
		a[g] = v
	}
	have := func(gs ...int) bool {
		for g := 1; g <= 4; g++ {
			if slices.Contains(gs, g) != (a[g] != 0) {
				return false
			}
		}
		return true
	}
	pow := math.Pow
	var out [4]float64
	switch len(st) {
	case 1:
		for g, v := range st {
			f := v / defaultParams[g-1]
			for i := range 4 {
				out[i] = defaultParams[i] * f
			}
		}
		slices.Sort(out[:])
	case 2:
		switch {
		case have(3, 4):
			a[2] = pow(a[3], 1/(1-w2)) * pow(a[4], 1-1/(1-w2))
			a[1] = pow(a[2], 1/w1) * pow(a[3], 1-1/w1)
		case have(2, 4):
			a[3] = pow(a[2], 1-w2) * pow(a[4], w2)
			a[1] = pow(a[2], 1/w1) * pow(a[3], 1-1/w1)
		case have(2, 3):
			a[4] = pow(a[2], 1-1/w2) * pow(a[3], 1/w2)
			a[1] = pow(a[2], 1/w1) * pow(a[3], 1-1/w1)
		case have(1, 4):
			k := w1 + w2 - w1*w2
			a[2] = pow(a[1], w1/k) * pow(a[4], 1-w1/k)
			a[3] = pow(a[1], 1-w2/k) * pow(a[4], w2/k)
		case have(1, 3):
			a[2] = pow(a[1], w1) * pow(a[3], 1-w1)
			a[4] = pow(a[2], 1-1/w2) * pow(a[3], 1/w2)
		case have(1, 2):
			a[3] = pow(a[1], 1-1/(1-w1)) * pow(a[2], 1/(1-w1))
			a[4] = pow(a[2], 1-1/w2) * pow(a[3], 1/w2)
		}
		copy(out[:], a[1:])
	case 3:
		switch {
		case a[1] == 0:
			a[1] = pow(a[2], 1/w1) * pow(a[3], 1-1/w1)
		case a[2] == 0:
			a[2] = pow(a[1], w1) * pow(a[3], 1-w1)
		case a[3] == 0:
			a[3] = pow(a[2], 1-w2) * pow(a[4], w2)
		case a[4] == 0:
			a[4] = pow(a[2], 1-1/w2) * pow(a[3], 1/w2)
		}
		copy(out[:], a[1:])
	default:
		copy(out[:], a[1:])
	}
	for i := range out {
		out[i] = clamp(out[i], sMin, initSMax)
	}
	return out
}
