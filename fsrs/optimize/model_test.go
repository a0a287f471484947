package optimize

import (
	"math"
	"testing"
)

// fsrsRsBatch is the batch of fsrs-rs's training test (test_loss_and_grad):
// four histories of six reviews, each followed by the predicted review.
func fsrsRsBatch() ([]Card, [][]scored) {
	t := [6][4]int{{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 1}, {0, 1, 1, 3}, {1, 3, 3, 5}, {3, 6, 6, 12}}
	r := [6][4]int{{1, 2, 3, 4}, {3, 4, 2, 4}, {1, 4, 4, 3}, {4, 3, 3, 3}, {3, 1, 3, 3}, {2, 3, 3, 4}}
	delta := [4]int{4, 11, 12, 23}
	label := [4]int{1, 1, 1, 0}
	var cards []Card
	var targets [][]scored
	for c := range 4 {
		var card Card
		for k := range 6 {
			card = append(card, Review{Grade: r[k][c], Days: t[k][c]})
		}
		g := 1
		if label[c] == 1 {
			g = 3
		}
		card = append(card, Review{Grade: g, Days: delta[c]})
		cards = append(cards, card)
		targets = append(targets, []scored{{6, 1}})
	}
	return cards, targets
}

// TestLossAndGradMatchFSRSRs checks the summed loss and its gradient at the
// default parameters against the values fsrs-rs's own test asserts (f32).
func TestLossAndGradMatchFSRSRs(t *testing.T) {
	cards, targets := fsrsRsBatch()
	w := defaultParams
	p := newParams(&w)
	var gw [21]float64
	var cw cardWork
	loss := 0.0
	for c := range cards {
		loss += p.cardLossGrad(cards[c], targets[c], &cw, &gw)
	}
	if math.Abs(loss-4.0466027) > 1e-5 {
		t.Errorf("loss = %.7f, fsrs-rs 4.0466027", loss)
	}
	want := [21]float64{-0.095688485, -0.0051607806, -0.0012249565, 0.007462064, 0.03650761,
		-0.082112335, 0.0593964, -2.1474836, 0.57626534, -2.8751316, 0.7154875, -0.028993709,
		0.0099172965, -0.2189217, -0.0017800558, -0.089381434, 0.299141, 0.068104014,
		-0.011605468, -0.25398168, 0.27700496}
	for i := range want {
		if math.Abs(gw[i]-want[i]) > 1e-4*max(1, math.Abs(want[i])) {
			t.Errorf("dL/dw%d = %.7f, fsrs-rs %.7f", i, gw[i], want[i])
		}
	}
}

// TestGradMatchesFiniteDifferences checks the analytic gradient on
// simulated cards at non-default parameters, where every branch is taken.
func TestGradMatchesFiniteDifferences(t *testing.T) {
	sims := Simulate(SimConfig{Seed: 7, Groups: []Group{{Params: defaultParams, Students: 3}},
		CardsPerStudent: 20, Days: 200, ParamNoise: 0.2})
	cards := Cards(sims)
	w := defaultParams
	w[7], w[17], w[18], w[19] = 0.05, 0.6, 0.4, 0.2
	lossAt := func(w Params) (float64, [21]float64) {
		p := newParams(&w)
		var gw [21]float64
		var cw cardWork
		l := 0.0
		for _, c := range cards {
			var tg []scored
			for i := 1; i < len(c); i++ {
				if c[i].Days > 0 {
					tg = append(tg, scored{int32(i), 1})
				}
			}
			if len(tg) > 0 {
				l += p.cardLossGrad(c, tg, &cw, &gw)
			}
		}
		return l, gw
	}
	_, gw := lossAt(w)
	for i := range w {
		h := 1e-6 * max(1, math.Abs(w[i]))
		up, down := w, w
		up[i] += h
		down[i] -= h
		lu, _ := lossAt(up)
		ld, _ := lossAt(down)
		fd := (lu - ld) / (2 * h)
		if math.Abs(fd-gw[i]) > 1e-3*max(1, math.Abs(fd)) {
			t.Errorf("dL/dw%d: analytic %.6f, finite difference %.6f", i, gw[i], fd)
		}
	}
}
