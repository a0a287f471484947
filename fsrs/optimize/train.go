package optimize

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// defaultParams are FSRS-6's defaults (fsrs-rs's DEFAULT_PARAMETERS).
var defaultParams = Params{
	0.212, 1.2931, 2.3065, 8.2956, 6.4133, 0.8334, 3.0194, 0.001, 1.8722, 0.1666, 0.796,
	1.4835, 0.0614, 0.2629, 1.6483, 0.6014, 1.8729, 0.5425, 0.0912, 0.0658, 0.1542,
}

// DefaultParams returns FSRS-6's default weights.
func DefaultParams() Params { return defaultParams }

// paramsStddev scales the L2 pull of each weight (fsrs-rs's PARAMS_STDDEV).
var paramsStddev = [21]float64{
	6.43, 9.66, 17.58, 27.85, 0.57, 0.28, 0.6, 0.12, 0.39, 0.18, 0.33, 0.3, 0.09, 0.16, 0.57, 0.25,
	1.03, 0.31, 0.32, 0.14, 0.27,
}

// Options are the training hyperparameters; the zero value gives fsrs-rs's
// defaults.
type Options struct {
	Epochs       int     // 5
	BatchSize    int     // predictions per batch: 512
	LearningRate float64 // 0.04, annealed to 0 by a cosine
	Gamma        float64 // L2 strength: 1
	MaxSeqLen    int     // items with a longer history are not trained on: 256
	Seed         uint64  // batch order: 2023
	Since        int64   // only cards first reviewed at or after this unix ms are learnt from
	Workers      int     // goroutines per batch: GOMAXPROCS
	// LongTermOnly mirrors fsrs-rs with short-term scheduling off: w17–w19
	// start at 0 and, with w0–w3, are not trained.
	LongTermOnly bool
	// Progress, when set, is called after every batch with the predictions
	// done and the total over all epochs; it runs on the caller's goroutine.
	// Returning false stops training with ErrStopped.
	Progress func(done, total int) bool
}

func (o Options) withDefaults() Options {
	o.Epochs = cmp.Or(o.Epochs, 5)
	o.BatchSize = cmp.Or(o.BatchSize, 512)
	o.LearningRate = cmp.Or(o.LearningRate, 4e-2)
	if o.Gamma == 0 {
		o.Gamma = 1
	}
	o.MaxSeqLen = cmp.Or(o.MaxSeqLen, 256)
	o.Seed = cmp.Or(o.Seed, 2023)
	o.Workers = cmp.Or(o.Workers, runtime.GOMAXPROCS(0))
	return o
}

// ErrStopped is returned when Progress asked to stop.
var ErrStopped = errors.New("optimize: stopped")

// Fit is what FitParams found.
type Fit struct {
	Params   Params
	Items    int        // training predictions after the outlier filter
	InitS    [4]float64 // w0–w3 from pre-training
	Trained  bool       // false: too few items, Params are the defaults or the pre-trained ones
	Filtered int        // items dropped by the outlier filter
}

// FitParams fits FSRS-6's parameters to cards as fsrs-rs's
// compute_parameters does with short-term scheduling on and one
// relearning step. Fewer than 8 items give the defaults; fewer than 64
// (or only first long-term reviews) give the defaults with pre-trained
// w0–w3. It returns ErrInput for an invalid history and ErrStopped.
func FitParams(cards []Card, opt Options) (Fit, error) {
	opt = opt.withDefaults()
	if err := Validate(cards); err != nil {
		return Fit{}, err
	}
	all := items(cards, opt.Since)
	initSet, train := filterOutliers(cards, all)
	out := Fit{Params: defaultParams, Items: len(train), Filtered: len(all) - len(train)}
	if len(train) < 8 {
		return out, nil
	}
	pass := 0
	for _, it := range train {
		if cards[it.card][it.idx].Grade > 1 {
			pass++
		}
	}
	s0, counts, ok := pretrain(cards, initSet, float64(pass)/float64(len(train)))
	if !ok {
		return out, fmt.Errorf("%w: no first long-term reviews to pre-train on", ErrInput)
	}
	out.InitS = s0
	start := defaultParams
	copy(start[:4], s0[:])
	if opt.LongTermOnly {
		start[17], start[18], start[19] = 0, 0, 0
	}
	out.Params = start
	if len(train) == len(initSet) || len(train) < 64 {
		return out, nil
	}
	recencyWeight(train)
	train = slices.DeleteFunc(train, func(it item) bool { return int(it.idx)+1 > opt.MaxSeqLen })
	w, err := descend(cards, train, start, opt)
	if err != nil {
		return out, err
	}
	got := map[int]float64{}
	for g := range counts {
		got[g] = w[g-1]
	}
	s := smoothAndFill(got, counts)
	copy(w[:4], s[:])
	out.Params, out.Trained = w, true
	return out, nil
}

// batch is at most BatchSize items with histories of about the same length.
type batch struct {
	cards   []int32
	targets [][]scored
	n       int
}

// batches orders the items by history length (stably, so equal lengths
// stay in time order) and cuts them into batches of size, as fsrs-rs does
// for items without card ids. Each item replays its own history: batches
// then mix many cards, which keeps the gradient of a batch from being
// dominated by a few long cards.
func batches(train []item, size int) []batch {
	its := slices.Clone(train)
	slices.SortStableFunc(its, func(a, b item) int { return cmp.Compare(a.idx, b.idx) })
	var out []batch
	for chunk := range slices.Chunk(its, size) {
		b := batch{n: len(chunk)}
		for _, it := range chunk {
			b.cards = append(b.cards, it.card)
			b.targets = append(b.targets, []scored{{it.idx, it.weight}})
		}
		out = append(out, b)
	}
	return out
}

// descend runs Adam over the batches for opt.Epochs epochs.
func descend(cards []Card, train []item, start Params, opt Options) (Params, error) {
	total := len(train)
	bs := batches(train, opt.BatchSize)
	iterations := float64((total/opt.BatchSize + 1) * opt.Epochs)
	lr := cosine{tMax: iterations, init: opt.LearningRate, step: -1, cur: opt.LearningRate}
	w := start
	var adam adam
	rng := rand.New(rand.NewPCG(opt.Seed, 0xf5125))
	order := make([]int, len(bs))
	workers := make([]cardWork, opt.Workers)
	grads := make([][21]float64, gradChunks)
	done := 0
	for range opt.Epochs {
		for i := range order {
			order[i] = i
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, bi := range order {
			b := &bs[bi]
			rate := lr.next()
			g := batchGrad(cards, b, &w, workers, grads)
			scale := opt.Gamma * float64(b.n) / float64(total)
			for i := range g {
				g[i] += 2 * (w[i] - start[i]) / (paramsStddev[i] * paramsStddev[i]) * scale
			}
			if opt.LongTermOnly {
				clear(g[:4])
				clear(g[17:20])
			}
			adam.step(&w, &g, rate)
			clip(&w, !opt.LongTermOnly)
			done += b.n
			if opt.Progress != nil && !opt.Progress(done, total*opt.Epochs) {
				return w, ErrStopped
			}
		}
	}
	return w, nil
}

// gradChunks is how many fixed runs of items a batch's gradient is summed
// in. The runs and their order do not depend on the number of workers, so
// neither does the result, to the last bit.
const gradChunks = 8

// batchGrad is the gradient of the batch's summed loss. The batch is cut
// into gradChunks contiguous runs; workers take runs k, k+n, k+2n, …; the
// runs' sums are added in run order.
func batchGrad(cards []Card, b *batch, w *Params, workers []cardWork, grads [][21]float64) [21]float64 {
	p := newParams(w)
	n := min(len(workers), gradChunks)
	var wg sync.WaitGroup
	for k := range n {
		run := func() {
			for c := k; c < gradChunks; c += n {
				lo, hi := c*len(b.cards)/gradChunks, (c+1)*len(b.cards)/gradChunks
				grads[c] = [21]float64{}
				for i := lo; i < hi; i++ {
					p.cardLossGrad(cards[b.cards[i]], b.targets[i], &workers[k], &grads[c])
				}
			}
		}
		if k == n-1 {
			run()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	wg.Wait()
	var g [21]float64
	for c := range gradChunks {
		for i := range g {
			g[i] += grads[c][i]
		}
	}
	return g
}

// adam is the Adam optimiser with fsrs-rs's constants.
type adam struct {
	m, v [21]float64
	t    int
}

func (a *adam) step(w *Params, g *[21]float64, lr float64) {
	const beta1, beta2, eps = 0.9, 0.999, 1e-8
	a.t++
	b1 := 1 - math.Pow(beta1, float64(a.t))
	b2 := 1 - math.Pow(beta2, float64(a.t))
	for i := range w {
		a.m[i] = beta1*a.m[i] + (1-beta1)*g[i]
		a.v[i] = beta2*a.v[i] + (1-beta2)*g[i]*g[i]
		w[i] -= lr * (a.m[i] / b1) / (math.Sqrt(a.v[i]/b2) + eps)
	}
}

// cosine is PyTorch's (and fsrs-rs's) recursive cosine annealing of the
// learning rate to 0 over tMax steps.
type cosine struct{ tMax, init, step, cur float64 }

func (c *cosine) next() float64 {
	c.step++
	switch {
	case c.step == 0:
		c.cur = c.init
	case math.Mod(c.step-1-c.tMax, 2*c.tMax) == 0:
		c.cur = c.init * (1 - math.Cos(math.Pi/c.tMax)) / 2
	default:
		c.cur = (1 + math.Cos(math.Pi*c.step/c.tMax)) / (1 + math.Cos(math.Pi*(c.step-1)/c.tMax)) * c.cur
	}
	return c.cur
}

// clipRanges are fsrs-rs's clamps with short-term scheduling on and one
// relearning step: FSRS.md's ranges, except w19 ≥ 0.01.
var clipRanges = [21][2]float64{
	{sMin, initSMax}, {sMin, initSMax}, {sMin, initSMax}, {sMin, initSMax},
	{dMin, dMax}, {0.001, 4}, {0.001, 4}, {0.001, 0.75}, {0, 4.5}, {0, 0.8}, {0.001, 3.5},
	{0.001, 5}, {0.001, 0.25}, {0.001, 0.9}, {0, 4}, {0, 1}, {1, 6},
	{0, 2}, {0, 2}, {0.01, 0.8}, {0.1, 0.8},
}

func clip(w *Params, shortTerm bool) {
	for i, r := range clipRanges {
		if i == 19 && !shortTerm {
			r[0] = 0
		}
		w[i] = clamp(w[i], r[0], r[1])
	}
}
