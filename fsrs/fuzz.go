package fsrs

import (
	"hash/fnv"
	"math"
)

// fuzzedInterval spreads a review interval of at least 2.5 days over a range
// that widens with it, and picks the day at fraction f ∈ [0, 1) of that range.
// Both the interval and the range are first constrained to [minimum, maximum]
// (Anki's constrained fuzz bounds).
func fuzzedInterval(interval float64, minimum, maximum int, f float64) int {
	minimum = min(minimum, maximum)
	interval = min(max(interval, float64(minimum)), float64(maximum))
	delta := fuzzDelta(interval)
	lower := min(max(int(math.Round(interval-delta)), minimum), maximum)
	upper := min(max(int(math.Round(interval+delta)), minimum), maximum)
	return int(math.Floor(float64(lower) + f*float64(upper-lower+1)))
}

// fuzzDelta is the half-width of the fuzz range: 0 below 2.5 days, then 1 day
// plus 15% of the part in [2.5, 7], 10% of the part in [7, 20] and 5% beyond.
func fuzzDelta(interval float64) float64 {
	if interval < 2.5 {
		return 0
	}
	return 1 +
		0.15*max(0, min(interval, 7)-2.5) +
		0.10*max(0, min(interval, 20)-7) +
		0.05*max(0, interval-20)
}

// fuzzFactor derives a fraction in [0, 1) from the card's seed and its
// review count (a splitmix64 step), so each review of a card gets its own.
func fuzzFactor(seed uint64, reps int) float64 {
	x := seed + uint64(reps)*0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// Seed identifies a card for Next's fuzz: the FNV-1a 64 hash of season,
// player and question joined by NUL bytes.
func Seed(season, player, question string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(season))
	h.Write([]byte{0})
	h.Write([]byte(player))
	h.Write([]byte{0})
	h.Write([]byte(question))
	return h.Sum64()
}
