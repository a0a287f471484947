package fsrs

import (
	"fmt"
	"math"
)

// DefaultParams are FSRS-6's 21 default weights.
var DefaultParams = [21]float64{
	0.212, 1.2931, 2.3065, 8.2956, 6.4133, 0.8334, 3.0194, 0.001, 1.8722, 0.1666, 0.796,
	1.4835, 0.0614, 0.2629, 1.6483, 0.6014, 1.8729, 0.5425, 0.0912, 0.0658, 0.1542,
}

// paramRanges are the [min, max] each weight is clamped to (the fsrs-rs clipper's ranges).
var paramRanges = [21][2]float64{
	{0.001, 100}, {0.001, 100}, {0.001, 100}, {0.001, 100},
	{1, 10}, {0.001, 4}, {0.001, 4}, {0.001, 0.75}, {0, 4.5}, {0, 0.8}, {0.001, 3.5},
	{0.001, 5}, {0.001, 0.25}, {0.001, 0.9}, {0, 4}, {0, 1}, {1, 6},
	{0, 2}, {0, 2}, {0, 0.8}, {0.1, 0.8},
}

// MigrateParams turns a weight vector of FSRS-4.5 (17 values), FSRS-5 (19) or
// FSRS-6 (21) into FSRS-6's 21 weights, each clamped to its allowed range.
// A nil or empty w gives DefaultParams. It returns an error for any other
// length and for a NaN or infinite weight.
func MigrateParams(w []float64) ([21]float64, error) {
	if len(w) == 0 {
		return DefaultParams, nil
	}
	for i, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return [21]float64{}, fmt.Errorf("fsrs: parameter w%d is %v", i, v)
		}
	}
	var out [21]float64
	switch len(w) {
	case 21:
		copy(out[:], w)
	case 19:
		copy(out[:], w)
		out[20] = 0.5 // FSRS-5's fixed decay; w19 stays 0
	case 17:
		copy(out[:], w)
		w5 := max(w[5], 0) // FSRS-4.5 kept w5 positive; this keeps the log defined
		out[4] = w[4] + 2*w5
		out[5] = math.Log(1+3*w5) / 3
		out[6] = w[6] + 0.5
		out[20] = 0.5 // w17–w19 stay 0: FSRS-4.5 had no same-day term
	default:
		return [21]float64{}, fmt.Errorf("fsrs: %d parameters; want 17, 19 or 21", len(w))
	}
	for i, r := range paramRanges {
		out[i] = min(max(out[i], r[0]), r[1])
	}
	return out, nil
}
