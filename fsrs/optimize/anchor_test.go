package optimize

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var anchorReviews = flag.Int("anchor-reviews", 60_000, "reviews per simulated season in TestAgainstFSRSRs (try 1000000)")

// anchorDir holds the pinned fsrs-rs binding (make deps installs it).
const anchorDir = "../../testdata/optimizer"

// groupA is a group close to the defaults: a little more stable, less
// sensitive to difficulty.
var groupA = Params{0.3, 1.8, 3.2, 11, 6.0, 0.7, 2.6, 0.005, 2.0, 0.15, 0.9,
	1.3, 0.05, 0.25, 1.8, 0.65, 1.7, 0.6, 0.1, 0.05, 0.13}

// groupB is a student group whose memory differs clearly from the defaults:
// lower initial stabilities, steeper forgetting, stronger same-day effects.
var groupB = Params{0.1, 0.6, 1.6, 5.5, 7.0, 0.6, 2.2, 0.02, 1.5, 0.25, 1.1,
	1.9, 0.1, 0.35, 1.2, 0.4, 2.3, 0.4, 0.2, 0.12, 0.25}

// season simulates about n reviews of students in two groups (groupA and
// groupB).
func season(seed uint64, n int) []SimCard {
	per := max(n/2/320, 1) // about 320 reviews per student over a 240-day season
	return Simulate(SimConfig{Seed: seed, Groups: []Group{{Params: groupA, Students: per}, {Params: groupB, Students: per}},
		CardsPerStudent: 40, Days: 240, ParamNoise: 0.1})
}

type anchorInput struct {
	Cards    [][][2]int  `json:"cards"`
	Train    [][2]int32  `json:"train"`
	Test     [][2]int32  `json:"test"`
	Evaluate [][]float64 `json:"evaluate"`
	LongTerm bool        `json:"longTermOnly"`
}

type anchorMetrics struct {
	LogLoss  float64 `json:"logLoss"`
	RMSEBins float64 `json:"rmseBins"`
}

type anchorOutput struct {
	Params    []float64       `json:"params"`
	Seconds   float64         `json:"seconds"`
	Fitted    anchorMetrics   `json:"fitted"`
	Evaluated []anchorMetrics `json:"evaluated"`
}

// runAnchor fits fsrs-rs's optimiser to train and evaluates it and each of
// evaluate on test, through testdata/optimizer/anchor.mjs.
func runAnchor(t *testing.T, train, test []Card, evaluate ...Params) anchorOutput {
	t.Helper()
	return runAnchorWith(t, false, train, test, evaluate...)
}

// runAnchorWith is runAnchor, with fsrs-rs's short-term scheduling off when
// longTerm is set.
func runAnchorWith(t *testing.T, longTerm bool, train, test []Card, evaluate ...Params) anchorOutput {
	t.Helper()
	if _, err := os.Stat(filepath.Join(anchorDir, "node_modules", "@open-spaced-repetition", "binding")); err != nil {
		t.Fatalf("fsrs-rs binding not installed (run make deps): %v", err)
	}
	in := anchorInput{LongTerm: longTerm}
	for _, c := range append(append([]Card{}, train...), test...) {
		rc := make([][2]int, len(c))
		for i, r := range c {
			rc[i] = [2]int{r.Grade, r.Days}
		}
		in.Cards = append(in.Cards, rc)
	}
	for _, it := range items(train, 0) {
		in.Train = append(in.Train, [2]int32{it.card, it.idx})
	}
	for _, it := range items(test, 0) {
		in.Test = append(in.Test, [2]int32{it.card + int32(len(train)), it.idx})
	}
	for _, w := range evaluate {
		in.Evaluate = append(in.Evaluate, w[:])
	}
	path := filepath.Join(t.TempDir(), "input.json")
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "anchor.mjs", path)
	cmd.Dir = anchorDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node anchor.mjs: %v\n%s", err, stderr.String())
	}
	var out anchorOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || (len(train) > 0 && len(out.Params) != 21) || len(out.Evaluated) != len(evaluate) {
		t.Fatalf("anchor output %q: %v", stdout.String(), err)
	}
	return out
}

// bindingOrder is the items of cards as the binding's evaluate sees them:
// before calling fsrs-rs it moves the first long-term reviews that pass
// the outlier filter to the front (grouped as the filter walks them), drops
// the cards the filter removes, and fsrs-rs then gives recency weights in
// that order.
func bindingOrder(cards []Card) []item {
	all := items(cards, 0)
	var first, rest []item
	for _, it := range all {
		if longTermCount(cards[it.card], it.idx) == 1 {
			first = append(first, it)
		} else {
			rest = append(rest, it)
		}
	}
	kept, removed := outliers(cards, first)
	rest = survivors(cards, rest, removed)
	out := append(kept, rest...)
	recencyWeight(out)
	return out
}

// fitBindingOrder trains as the binding feeds fsrs-rs: items in
// bindingOrder (so with its recency weights), filtered again as
// compute_parameters does. It shows how much of a gap to fsrs-rs comes from
// that order rather than from the optimiser.
func fitBindingOrder(cards []Card) Params {
	its := bindingOrder(cards)
	initSet, train := filterOutliers(cards, its)
	pass := 0
	for _, it := range train {
		if cards[it.card][it.idx].Grade > 1 {
			pass++
		}
	}
	s0, counts, _ := pretrain(cards, initSet, float64(pass)/float64(len(train)))
	start := defaultParams
	copy(start[:4], s0[:])
	recencyWeight(train)
	w, _ := descend(cards, train, start, Options{}.withDefaults())
	got := map[int]float64{}
	for g := range counts {
		got[g] = w[g-1]
	}
	s := smoothAndFill(got, counts)
	copy(w[:4], s[:])
	return w
}

// recallGap is the mean |R(w) − R(truth)| over the items of cards: how far
// w's predictions are from the memory that generated the reviews. (The
// weights themselves are not identifiable one by one; their predictions
// are.)
func recallGap(cards []Card, w, truth Params) float64 {
	its := items(cards, 0)
	a, b := predictions(cards, its, &w), predictions(cards, its, &truth)
	sum := 0.0
	for k := range a {
		sum += math.Abs(a[k] - b[k])
	}
	return sum / float64(len(a))
}

// paramDistance is the RMS of the weight differences in units of fsrs-rs's
// PARAMS_STDDEV.
func paramDistance(a, b Params) float64 {
	sum := 0.0
	for i := range a {
		d := (a[i] - b[i]) / paramsStddev[i]
		sum += d * d
	}
	return math.Sqrt(sum / 21)
}

// TestAgainstFSRSRs fits each student group's simulated log with this
// package and with fsrs-rs (through its Node binding) and compares them on
// a held-out fifth of the cards: the Go fit's log loss must be within 1 %
// of fsrs-rs's, Evaluate must agree with fsrs-rs's evaluate, and the fit
// must predict closer to the generating memory than the defaults do.
func TestAgainstFSRSRs(t *testing.T) {
	sims := season(42, *anchorReviews)
	truths := []Params{groupA, groupB}
	for g, truth := range truths {
		t.Run(fmt.Sprintf("group%d", g), func(t *testing.T) {
			var cards []Card
			for _, s := range sims {
				if s.Group == g {
					cards = append(cards, s.Reviews)
				}
			}
			train, test := Split(cards, 0.2, 1)
			start := time.Now()
			fit, err := FitParams(train, Options{})
			if err != nil {
				t.Fatal(err)
			}
			goSeconds := time.Since(start).Seconds()
			if !fit.Trained {
				t.Fatalf("not trained: %+v", fit)
			}
			var rs anchorOutput
			rs = runAnchor(t, train, test, fit.Params, defaultParams, truth)
			var rsParams Params
			copy(rsParams[:], rs.Params)
			goM, rsM, defM, trueM := rs.Evaluated[0], rs.Fitted, rs.Evaluated[1], rs.Evaluated[2]

			// Our Evaluate is fsrs-rs's evaluate (f32 there, f64 here).
			own, err := evaluateItems(test, bindingOrder(test), fit.Params)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(own.LogLoss-goM.LogLoss) > 1e-4 || math.Abs(own.RMSEBins-goM.RMSEBins) > 1e-4 {
				t.Errorf("Evaluate = %+v, fsrs-rs evaluate %+v", own, goM)
			}
			if goM.LogLoss > 1.01*rsM.LogLoss {
				t.Errorf("log loss: Go %.5f > 1.01 × fsrs-rs %.5f", goM.LogLoss, rsM.LogLoss)
			}
			gapFit, gapDef, gapRs := recallGap(test, fit.Params, truth), recallGap(test, defaultParams, truth), recallGap(test, rsParams, truth)
			if gapFit >= gapDef {
				t.Errorf("recall gap to the generating memory: fitted %.4f, defaults %.4f", gapFit, gapDef)
			}
			t.Logf("%d reviews (%d train items, %d test items); Go fit %.2f s, fsrs-rs %.2f s",
				Reviews(cards), fit.Items, own.Items, goSeconds, rs.Seconds)
			t.Logf("| params | log loss | RMSE(bins) | mean |R − R_true| | weight distance |")
			t.Logf("| defaults | %.4f | %.4f | %.4f | %.3f |", defM.LogLoss, defM.RMSEBins, gapDef, paramDistance(defaultParams, truth))
			t.Logf("| Go optimiser | %.4f | %.4f | %.4f | %.3f |", goM.LogLoss, goM.RMSEBins, gapFit, paramDistance(fit.Params, truth))
			if bo, err := evaluateItems(test, bindingOrder(test), fitBindingOrder(train)); err == nil {
				t.Logf("| Go optimiser, binding's item order | %.4f | %.4f | | |", bo.LogLoss, bo.RMSEBins)
			}
			t.Logf("| fsrs-rs | %.4f | %.4f | %.4f | %.3f |", rsM.LogLoss, rsM.RMSEBins, gapRs, paramDistance(rsParams, truth))
			t.Logf("| generating | %.4f | %.4f | 0 | 0 |", trueM.LogLoss, trueM.RMSEBins)
			t.Logf("Go %v\nfsrs-rs %v", fit.Params, rs.Params)
		})
	}
}

// TestLongTermOnlyAgainstFSRSRs fits with short-term scheduling off
// (LongTermOnly; fsrs-rs's enableShortTerm false): w17–w19 stay 0, w0–w3
// stay pre-trained, and the held-out log loss is within 1 % of fsrs-rs's.
func TestLongTermOnlyAgainstFSRSRs(t *testing.T) {
	var cards []Card
	for _, s := range season(43, 40_000) {
		if s.Group == 1 {
			cards = append(cards, s.Reviews)
		}
	}
	train, test := Split(cards, 0.2, 1)
	fit, err := FitParams(train, Options{LongTermOnly: true})
	if err != nil || !fit.Trained {
		t.Fatal(fit, err)
	}
	if fit.Params[17] != 0 || fit.Params[18] != 0 || fit.Params[19] != 0 || [4]float64(fit.Params[:4]) != fit.InitS {
		t.Errorf("w0–w3 %v (pre-trained %v), w17–w19 %v", fit.Params[:4], fit.InitS, fit.Params[17:20])
	}
	rs := runAnchorWith(t, true, train, test, fit.Params)
	t.Logf("log loss: Go %.4f, fsrs-rs %.4f; fsrs-rs %v", rs.Evaluated[0].LogLoss, rs.Fitted.LogLoss, rs.Params)
	if rs.Evaluated[0].LogLoss > 1.01*rs.Fitted.LogLoss {
		t.Errorf("log loss: Go %.5f > 1.01 × fsrs-rs %.5f", rs.Evaluated[0].LogLoss, rs.Fitted.LogLoss)
	}
}

// BenchmarkFit1M fits a simulated season of about a million reviews
// (go test -run XXX -bench Fit1M ./fsrs/optimize/).
func BenchmarkFit1M(b *testing.B) {
	cards := Cards(season(9, 1_000_000))
	b.Logf("%d reviews, %d cards", Reviews(cards), len(cards))
	for b.Loop() {
		fit, err := FitParams(cards, Options{})
		if err != nil || !fit.Trained {
			b.Fatal(err, fit)
		}
	}
}
