package optimize

import "math"

// Bounds of the memory state (fsrs-rs's S_MIN, S_MAX, D_MIN, D_MAX).
const (
	sMin = 0.001
	sMax = 36500.0
	dMin = 1.0
	dMax = 10.0
)

// Params are FSRS-6's 21 weights.
type Params [21]float64

// params holds the values every step of one weight vector needs.
type params struct {
	w          *Params
	decay      float64 // −w20
	factor     float64 // 0.9^(1/decay) − 1
	dFactor    float64 // d factor / d decay
	expW8      float64
	floorDiv   float64 // e^(w17·w18)
	easyD      float64 // D0(Easy), unclamped
	exp3W5     float64
	expW5ByRat [4]float64 // e^(w5·(G−1))
}

func newParams(w *Params) params {
	decay := -w[20]
	e := math.Pow(0.9, 1/decay)
	p := params{w: w, decay: decay, factor: e - 1, dFactor: e * (-math.Log(0.9) / (decay * decay)),
		expW8: math.Exp(w[8]), floorDiv: math.Exp(w[17] * w[18]), exp3W5: math.Exp(3 * w[5])}
	p.easyD = w[4] - p.exp3W5 + 1
	for g := range 4 {
		p.expW5ByRat[g] = math.Exp(w[5] * float64(g))
	}
	return p
}

// recall is R(t, s) = (1 + factor·t/s)^decay.
func (p *params) recall(t, s float64) float64 {
	r, _ := p.recallLn(t, s)
	return r
}

// recallLn is R(t, s) and ln(1 + factor·t/s), which recallGrad needs.
func (p *params) recallLn(t, s float64) (r, lnBase float64) {
	lnBase = math.Log(1 + p.factor*t/s)
	return math.Exp(p.decay * lnBase), lnBase
}

// recallGrad returns dR/ds and dR/dw20 at (t, s) where R = r and
// lnBase = ln(1 + factor·t/s).
func (p *params) recallGrad(t, s, r, lnBase float64) (ds, dw20 float64) {
	base := 1 + p.factor*t/s
	ds = r * p.decay / base * (-t * p.factor / (s * s))
	dDecay := r * (lnBase + p.decay/base*(t/s*p.dFactor))
	return ds, -dDecay
}

// Branches of a step, for the backward pass.
const (
	brShort      = iota // same day, S·SInc
	brShortFloor        // same day success with SInc < 1: S kept
	brSuccess
	brFailure
	brFailureFloor // lapse capped at S/e^(w17·w18)
)

// step is one review after the first, with what its gradient needs.
type step struct {
	ls, ld  float64 // the state before the review
	r       float64 // R(t, ls) for a review on a new day
	lnBase  float64 // ln(1 + factor·t/ls)
	lnS     float64 // ln ls
	x, y, z float64 // branch values kept for back: see next
	raw     float64 // S′ before clamping
	nd      float64 // D′ before mean reversion
	branch  uint8
	sPass   bool // S′ within [sMin, sMax]: the clamp passes gradient
	dPass   bool // D″ within [1, 10]
	grade   int8
	elapsed float64
}

// initState is the state after the first review.
func (p *params) initState(g int) (s, d float64) {
	return clamp(p.w[g-1], sMin, sMax), clamp(p.w[4]-p.expW5ByRat[g-1]+1, dMin, dMax)
}

func clamp(x, lo, hi float64) float64 { return min(max(x, lo), hi) }
func within(x, lo, hi float64) bool   { return x >= lo && x <= hi }

// next applies grade g, t days after the previous review, to (s, d), as
// fsrs-rs's model step does with short-term scheduling on. It keeps in st
// what back needs, so that the backward pass computes no exponentials the
// forward pass already did.
func (p *params) next(s, d float64, t, g int, st *step) (float64, float64) {
	w := p.w
	ls, ld := s, d
	lnS := math.Log(ls)
	st.ls, st.ld, st.lnS, st.grade, st.elapsed = ls, ld, lnS, int8(g), float64(t)
	var ns float64
	if t == 0 {
		sinc := math.Exp(w[17]*(float64(g)-3+w[18]) - w[19]*lnS)
		st.branch = brShort
		if g >= 2 && sinc < 1 {
			sinc, st.branch = 1, brShortFloor
		}
		ns = ls * sinc
	} else {
		r, lnBase := p.recallLn(float64(t), ls)
		st.r, st.lnBase = r, lnBase
		if g == 1 {
			lnS1 := math.Log(ls + 1)
			pd := math.Exp(-w[12] * math.Log(ld))
			pw := math.Exp(w[13] * lnS1)
			e14 := math.Exp((1 - r) * w[14])
			raw := w[11] * pd * (pw - 1) * e14
			st.x, st.y, st.z = pd*e14, pw, lnS1 // raw = w11·x·(y − 1)
			floor := ls / p.floorDiv
			st.branch = brFailure
			ns = raw
			if floor < raw {
				st.branch, ns = brFailureFloor, floor
			}
		} else {
			hb := 1.0
			switch g {
			case 2:
				hb = w[15]
			case 4:
				hb = w[16]
			}
			core := p.expW8 * (11 - ld) * math.Exp(-w[9]*lnS) // without hb and (e10 − 1)
			e10 := math.Exp((1 - r) * w[10])
			st.x, st.y, st.z = core, e10, hb
			st.branch = brSuccess
			ns = ls * (core*(e10-1)*hb + 1)
		}
	}
	st.raw = ns
	st.sPass = within(ns, sMin, sMax)
	nd := ld - w[6]*(float64(g)-3)*(10-ld)/9
	st.nd = nd
	mr := w[7]*(p.easyD-nd) + nd
	st.dPass = within(mr, dMin, dMax)
	return clamp(ns, sMin, sMax), clamp(mr, dMin, dMax)
}

// back propagates (gs, gd) = dL/d(S″, D″) of step st into gw and returns
// dL/d(ls, ld).
func (p *params) back(st *step, gs, gd float64, gw *[21]float64) (float64, float64) {
	w := p.w
	if !st.sPass {
		gs = 0
	}
	if !st.dPass {
		gd = 0
	}
	g := float64(st.grade)
	ls, ld := st.ls, st.ld
	// Difficulty: D″ = w7·E + (1 − w7)·nd, nd = ld − w6·(g − 3)·(10 − ld)/9.
	gw[7] += gd * (p.easyD - st.nd)
	gw[4] += gd * w[7]
	gw[5] += gd * w[7] * (-3 * p.exp3W5)
	gnd := gd * (1 - w[7])
	gw[6] += gnd * (-(g - 3) * (10 - ld) / 9)
	gld := gnd * (1 + w[6]*(g-3)/9)
	if gs == 0 {
		return 0, gld
	}
	var gls, gr float64
	switch st.branch {
	case brShort:
		ns := st.raw
		gls = gs * ns / ls * (1 - w[19])
		gw[17] += gs * ns * (g - 3 + w[18])
		gw[18] += gs * ns * w[17]
		gw[19] += gs * ns * (-st.lnS)
		return gls, gld
	case brShortFloor:
		return gs, gld
	case brSuccess:
		core, e10, hb := st.x, st.y, st.z
		inc := core * (e10 - 1) * hb
		gls = gs * (1 + inc*(1-w[9]))
		gld += gs * ls * (-inc / (11 - ld))
		gw[8] += gs * ls * inc
		gw[9] += gs * ls * inc * (-st.lnS)
		gw[10] += gs * ls * core * hb * e10 * (1 - st.r)
		switch st.grade {
		case 2:
			gw[15] += gs * ls * core * (e10 - 1)
		case 4:
			gw[16] += gs * ls * core * (e10 - 1)
		}
		gr = gs * ls * core * hb * e10 * (-w[10])
	case brFailure:
		pde14, pw, lnS1 := st.x, st.y, st.z
		raw := st.raw
		gw[11] += gs * pde14 * (pw - 1)
		gw[12] += gs * raw * (-math.Log(ld))
		gw[13] += gs * w[11] * pde14 * pw * lnS1
		gw[14] += gs * raw * (1 - st.r)
		gld += gs * raw * (-w[12] / ld)
		gls = gs * w[11] * pde14 * w[13] * pw / (ls + 1)
		gr = gs * raw * (-w[14])
	case brFailureFloor:
		ns := st.raw
		gls = gs / p.floorDiv
		gw[17] += gs * ns * (-w[18])
		gw[18] += gs * ns * (-w[17])
		return gls, gld
	}
	if gr != 0 {
		dRds, dRdw20 := p.recallGrad(st.elapsed, ls, st.r, st.lnBase)
		gls += gr * dRds
		gw[20] += gr * dRdw20
	}
	return gls, gld
}

// Probability bounds of the training loss (fsrs-rs's MIN_PROB, MAX_PROB).
const (
	minProb = 1e-7
	maxProb = 1 - 1e-7
)

// bce is the weighted binary cross-entropy of predicting r for label y and
// its derivative in r (zero where r is clamped).
func bce(r, y, weight float64) (loss, grad float64) {
	rc := clamp(r, minProb, maxProb)
	loss = -(y*math.Log(rc) + (1-y)*math.Log(1-rc)) * weight
	if r > minProb && r < maxProb {
		grad = -weight * (y/rc - (1-y)/(1-rc))
	}
	return loss, grad
}

// scored is one prediction within a card: review idx with its weight.
type scored struct {
	idx    int32
	weight float64
}

// cardWork holds one worker's buffers.
type cardWork struct {
	s, d  []float64
	steps []step
	gS    []float64 // dL/dS of the state after each review, from the items
}

// cardLossGrad adds to gw the gradient of the summed weighted loss of the
// items targets (sorted by idx) of card, and returns that loss.
func (p *params) cardLossGrad(card Card, targets []scored, cw *cardWork, gw *[21]float64) float64 {
	m := int(targets[len(targets)-1].idx) // states 0..m−1 are needed
	cw.s, cw.d = grow(cw.s, m), grow(cw.d, m)
	cw.gS = grow(cw.gS, m)
	if cap(cw.steps) < m {
		cw.steps = make([]step, m)
	}
	steps := cw.steps[:m]
	s, d := p.initState(card[0].Grade)
	cw.s[0], cw.d[0] = s, d
	for k := 1; k < m; k++ {
		s, d = p.next(s, d, card[k].Days, card[k].Grade, &steps[k])
		cw.s[k], cw.d[k] = s, d
	}
	clear(cw.gS[:m])
	loss := 0.0
	for _, tg := range targets {
		rv := card[tg.idx]
		prev := cw.s[tg.idx-1]
		t := float64(rv.Days)
		r, lnBase := p.recallLn(t, prev)
		y := 0.0
		if rv.Grade > 1 {
			y = 1
		}
		l, g := bce(r, y, tg.weight)
		loss += l
		if g != 0 {
			dRds, dRdw20 := p.recallGrad(t, prev, r, lnBase)
			cw.gS[tg.idx-1] += g * dRds
			gw[20] += g * dRdw20
		}
	}
	gs, gd := 0.0, 0.0
	for k := m - 1; k >= 1; k-- {
		gs += cw.gS[k]
		gs, gd = p.back(&steps[k], gs, gd, gw)
	}
	gs += cw.gS[0]
	g0 := card[0].Grade
	if within(p.w[g0-1], sMin, sMax) {
		gw[g0-1] += gs
	}
	if within(p.w[4]-p.expW5ByRat[g0-1]+1, dMin, dMax) {
		gw[4] += gd
		gw[5] += gd * (-float64(g0-1) * p.expW5ByRat[g0-1])
	}
	return loss
}

func grow(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}
