package fsrs

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestMigrateParams(t *testing.T) {
	t.Parallel()
	fsrs5 := []float64{0.40255, 1.18385, 3.173, 15.69105, 7.1949, 0.5345, 1.4604, 0.0046, 1.54575, 0.1192,
		1.01925, 1.9395, 0.11, 0.29605, 2.2698, 0.2315, 2.9898, 0.51655, 0.6621}
	fsrs45 := []float64{0.4072, 1.1829, 3.1262, 15.4722, 7.2102, 0.5316, 1.0651, 0.0234, 1.616, 0.1544,
		1.0824, 1.9813, 0.0953, 0.2975, 2.2042, 0.2407, 2.9466}
	// w4 + 2·w5, ln(1 + 3·w5)/3 and w6 + 0.5, worked out by hand.
	fsrs45Migrated := [21]float64{0.4072, 1.1829, 3.1262, 15.4722, 8.2734, 0.3178364807855877, 1.5651, 0.0234,
		1.616, 0.1544, 1.0824, 1.9813, 0.0953, 0.2975, 2.2042, 0.2407, 2.9466, 0, 0, 0, 0.5}
	var lows, highs [21]float64
	for i, r := range paramRanges {
		lows[i], highs[i] = r[0], r[1]
	}
	tests := []struct {
		name string
		in   []float64
		want [21]float64
	}{
		{"nil", nil, DefaultParams},
		{"empty", []float64{}, DefaultParams},
		{"fsrs6", DefaultParams[:], DefaultParams},
		{"fsrs5", fsrs5, [21]float64(append(slices.Clone(fsrs5), 0, 0.5))},
		{"fsrs4.5", fsrs45, fsrs45Migrated},
		{"clamp low", slices.Repeat([]float64{-1}, 21), lows},
		{"clamp high", slices.Repeat([]float64{1000}, 21), highs},
		{"fsrs4.5 negative w5", []float64{1, 1, 1, 1, 5, -1, 1, 0.1, 1, 0.1, 1, 1, 0.1, 0.1, 1, 0.5, 2},
			[21]float64{1, 1, 1, 1, 5, 0.001, 1.5, 0.1, 1, 0.1, 1, 1, 0.1, 0.1, 1, 0.5, 2, 0, 0, 0, 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := MigrateParams(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-12 {
					t.Errorf("w%d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestMigrateParamsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []float64
		want string
	}{
		{"one", []float64{1}, "1 parameters"},
		{"sixteen", make([]float64, 16), "16 parameters"},
		{"eighteen", make([]float64, 18), "18 parameters"},
		{"twenty", make([]float64, 20), "20 parameters"},
		{"twenty-two", make([]float64, 22), "22 parameters"},
		{"NaN", withValue(3, math.NaN()), "w3 is NaN"},
		{"Inf", withValue(20, math.Inf(1)), "w20 is +Inf"},
		{"-Inf", withValue(0, math.Inf(-1)), "w0 is -Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := MigrateParams(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// withValue returns the default weights with w[i] set to v.
func withValue(i int, v float64) []float64 {
	w := DefaultParams
	w[i] = v
	return w[:]
}
