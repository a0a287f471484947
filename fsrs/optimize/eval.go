package optimize

import (
	"fmt"
	"math"
)

// Metrics is how well a weight vector predicts a set of reviews.
type Metrics struct {
	LogLoss  float64 `json:"log_loss"`  // recency-weighted binary cross-entropy
	RMSEBins float64 `json:"rmse_bins"` // fsrs-rs's RMSE over (interval, length, lapses) bins
	Items    int     `json:"items"`
}

// Evaluate scores w on every review on a new day of the cards first
// reviewed at or after since, as fsrs-rs's evaluate does: items in time order with recency
// weights, log loss = weighted mean cross-entropy, and RMSE(bins) = the
// weight-averaged squared gap between mean prediction and pass rate in
// each bin of (elapsed days, long-term review count, lapses). It returns
// ErrInput for an invalid history or no items.
func Evaluate(cards []Card, w Params, since int64) (Metrics, error) {
	if err := Validate(cards); err != nil {
		return Metrics{}, err
	}
	its := items(cards, since)
	if len(its) == 0 {
		return Metrics{}, fmt.Errorf("%w: no reviews to evaluate", ErrInput)
	}
	recencyWeight(its)
	return evaluateItems(cards, its, w)
}

// evaluateItems scores w on its, weighted by their weights.
func evaluateItems(cards []Card, its []item, w Params) (Metrics, error) {
	pred := predictions(cards, its, &w)
	type bin struct{ pred, act, n, weight float64 }
	bins := map[[3]int]*bin{}
	loss, wsum := 0.0, 0.0
	for k, it := range its {
		card := cards[it.card]
		r := pred[k]
		y := 0.0
		if card[it.idx].Grade > 1 {
			y = 1
		}
		loss += (y*math.Log(r) + (1-y)*math.Log(1-r)) * it.weight
		wsum += it.weight
		key := binOf(card, it.idx)
		b := bins[key]
		if b == nil {
			b = &bin{}
			bins[key] = b
		}
		b.pred += r
		b.act += y
		b.n++
		b.weight += it.weight
	}
	se, bw := 0.0, 0.0
	for _, b := range bins {
		d := b.pred/b.n - b.act/b.n
		se += d * d * b.weight
		bw += b.weight
	}
	m := Metrics{LogLoss: -loss / wsum, RMSEBins: math.Sqrt(se / bw), Items: len(its)}
	if math.IsNaN(m.LogLoss) || math.IsInf(m.LogLoss, 0) || math.IsNaN(m.RMSEBins) {
		return m, fmt.Errorf("%w: parameters give a non-finite loss", ErrInput)
	}
	return m, nil
}

// predictions returns R for each item, replaying each card once.
func predictions(cards []Card, its []item, w *Params) []float64 {
	p := newParams(w)
	out := make([]float64, len(its))
	byCard := map[int32][]int{}
	for k, it := range its {
		byCard[it.card] = append(byCard[it.card], k)
	}
	var st step
	for c, ks := range byCard {
		card := cards[c]
		last := 0
		for _, k := range ks {
			last = max(last, int(its[k].idx))
		}
		s := make([]float64, last)
		cs, cd := p.initState(card[0].Grade)
		s[0] = cs
		for i := 1; i < last; i++ {
			cs, cd = p.next(cs, cd, card[i].Days, card[i].Grade, &st)
			s[i] = cs
		}
		for _, k := range ks {
			it := its[k]
			out[k] = p.recall(float64(card[it.idx].Days), s[it.idx-1])
		}
	}
	return out
}

// binOf is fsrs-rs's r_matrix_index of the item (card, idx).
func binOf(card Card, idx int32) [3]int {
	bucket := func(x, base, scale float64) int {
		return int(math.Round(scale * math.Pow(base, math.Floor(math.Log(x)/math.Log(base)))))
	}
	t := float64(card[idx].Days)
	length := float64(longTermCount(card, idx)) + 1
	lapses := 0
	for _, r := range card[1:idx] {
		if r.Grade == 1 && r.Days > 0 {
			lapses++
		}
	}
	key := [3]int{bucket(t, 3.62, 248), bucket(length, 1.89, 1.99), 0}
	if lapses > 0 {
		key[2] = bucket(float64(lapses), 1.73, 1.65)
	}
	return key
}
