package optimize

import (
	"errors"
	"math"
	"testing"
)

// TestPretrainMatchesFSRSRs rebuilds the data of fsrs-rs's
// test_search_parameters (first grade Again; pass counts per elapsed day)
// and checks the fitted initial stability, 0.7355089 there.
func TestPretrainMatchesFSRSRs(t *testing.T) {
	data := []struct{ days, n, pass int }{{1, 435, 377}, {2, 97, 88}, {3, 63, 46}, {4, 38, 29}, {5, 28, 19}}
	var cards []Card
	for _, d := range data {
		for k := range d.n {
			g := 1
			if k < d.pass {
				g = 3
			}
			cards = append(cards, Card{{Grade: 1}, {Grade: g, Days: d.days, At: 1}})
		}
	}
	initSet := items(cards, 0)
	s0, counts, ok := pretrain(cards, initSet, 0.94302857)
	if !ok || counts[1] != 661 {
		t.Fatalf("pretrain: ok %v counts %v", ok, counts)
	}
	if math.Abs(s0[0]-0.7355089) > 1e-5 {
		t.Errorf("w0 = %.7f, fsrs-rs 0.7355089", s0[0])
	}
}

// TestSmoothAndFillMatchesFSRSRs uses fsrs-rs's test_smooth_and_fill cases.
func TestSmoothAndFillMatchesFSRSRs(t *testing.T) {
	for _, c := range []struct {
		st     map[int]float64
		counts map[int]int
		want   [4]float64
	}{
		{map[int]float64{1: 0.4, 3: 2.3, 4: 10.9}, map[int]int{1: 1, 2: 1, 3: 1, 4: 1}, [4]float64{0.4, 1.1227008, 2.3, 10.9}},
		{map[int]float64{2: 0.35}, map[int]int{2: 1}, [4]float64{0.05738148, 0.35, 0.6242943, 2.2453482}},
		{map[int]float64{1: 3, 2: 2, 3: 5, 4: 9}, map[int]int{1: 10, 2: 1, 3: 5, 4: 5}, [4]float64{3, 3, 5, 9}},
	} {
		got := smoothAndFill(c.st, c.counts)
		for i := range got {
			if math.Abs(got[i]-c.want[i]) > 1e-5 {
				t.Errorf("smoothAndFill = %v, want %v", got, c.want)
				break
			}
		}
	}
}

// TestCosineMatchesFSRSRs uses fsrs-rs's test_lr_scheduler.
func TestCosineMatchesFSRSRs(t *testing.T) {
	want := []float64{0.04, 0.03618033988749895, 0.026180339887498946, 0.013819660112501051,
		0.0038196601125010526, 0, 0.003819660112501051, 0.013819660112501048, 0.026180339887498943,
		0.03618033988749895, 0.039999999999999994}
	c := cosine{tMax: 5, init: 4e-2, step: -1, cur: 4e-2}
	for i, w := range want {
		if got := c.next(); math.Abs(got-w) > 1e-12 {
			t.Errorf("step %d: lr %v, fsrs-rs %v", i, got, w)
		}
	}
}

// TestFitIsDeterministic fits the same log with two workers twice and with
// one and three workers, and wants the same weights to the last bit, within
// the clamps.
func TestFitIsDeterministic(t *testing.T) {
	cards := Cards(season(3, 8000))
	a, err := FitParams(cards, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := FitParams(cards, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := FitParams(cards, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Trained || a.Params != b.Params {
		t.Errorf("two fits differ:\n%v\n%v", a.Params, b.Params)
	}
	d, err := FitParams(cards, Options{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if a.Params != c.Params || a.Params != d.Params {
		t.Errorf("workers change the fit:\n2 %v\n1 %v\n3 %v", a.Params, c.Params, d.Params)
	}
	for i, w := range a.Params {
		if r := clipRanges[i]; w < r[0] || w > r[1] {
			t.Errorf("w%d = %v outside [%v, %v]", i, w, r[0], r[1])
		}
	}
}

// TestFitSmallLogs covers fsrs-rs's fallbacks: too few items give the
// defaults, a few dozen give pre-trained w0–w3 and default w4–w20.
func TestFitSmallLogs(t *testing.T) {
	fit, err := FitParams([]Card{{{Grade: 3}, {Grade: 3, Days: 2, At: 1}}}, Options{})
	if err != nil || fit.Params != defaultParams || fit.Trained {
		t.Errorf("one item: %+v, %v", fit, err)
	}
	var cards []Card
	for k := range 40 {
		cards = append(cards, Card{{Grade: 3}, {Grade: 3 - 2*(k%5/4), Days: 3, At: 1}})
	}
	fit, err = FitParams(cards, Options{})
	if err != nil || fit.Trained || fit.Params[4] != defaultParams[4] || fit.Params[2] == defaultParams[2] {
		t.Errorf("40 first reviews: %+v, %v", fit, err)
	}
}

// TestInvalidInput names the bad card and review.
func TestInvalidInput(t *testing.T) {
	for _, cards := range [][]Card{
		{{{Grade: 5}}},
		{{{Grade: 3}, {Grade: 3, Days: -1}}},
		{{{Grade: 3, At: 5}, {Grade: 3, Days: 1, At: 4}}},
	} {
		if _, err := FitParams(cards, Options{}); !errors.Is(err, ErrInput) {
			t.Errorf("%v: err %v, want ErrInput", cards, err)
		}
		if _, err := Evaluate(cards, defaultParams, 0); !errors.Is(err, ErrInput) {
			t.Errorf("Evaluate %v: err %v, want ErrInput", cards, err)
		}
	}
}

// TestSinceKeepsLaterCards: only cards first reviewed at or after Since
// are items.
func TestSinceKeepsLaterCards(t *testing.T) {
	cards := Cards(season(5, 4000))
	all, err := Evaluate(cards, defaultParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	since := int64(60) * dayMS
	later, err := Evaluate(cards, defaultParams, since)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, it := range items(cards, 0) {
		if cards[it.card][0].At >= since {
			n++
		}
	}
	if later.Items != n || later.Items >= all.Items {
		t.Errorf("since: %d items, want %d (of %d)", later.Items, n, all.Items)
	}
}
