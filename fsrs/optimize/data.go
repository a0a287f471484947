// Package optimize fits FSRS-6's 21 parameters to review histories, as the
// fsrs-rs optimiser does: the same training items (one per review on a new
// day, with the card's whole earlier history), the same outlier filter,
// pre-training of the initial stabilities w0–w3, recency weights, binary
// cross-entropy of the recall prediction with an L2 pull towards the
// starting parameters, Adam with a cosine learning rate, and the fsrs-rs
// parameter clamps after every step. It does no I/O and, for a given input
// and Options, always returns the same parameters.
package optimize

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
)

// Review is one review of a card.
type Review struct {
	Grade int   // 1 Again, 2 Hard, 3 Good, 4 Easy
	Days  int   // elapsed days since the card's previous review, as the season counts days; 0 for the first
	At    int64 // when (unix ms): orders the reviews of all cards for recency weights and SINCE
}

// Card is the review history of one card, oldest first, starting with its
// first review as a new card.
type Card []Review

// ErrInput reports an invalid review history.
var ErrInput = errors.New("optimize: invalid input")

// Validate returns an ErrInput error naming the first card with a grade
// outside 1–4, negative elapsed days, or reviews out of time order.
func Validate(cards []Card) error {
	for c, card := range cards {
		for i, r := range card {
			switch {
			case r.Grade < 1 || r.Grade > 4:
				return fmt.Errorf("%w: card %d review %d: grade %d", ErrInput, c, i, r.Grade)
			case r.Days < 0:
				return fmt.Errorf("%w: card %d review %d: %d elapsed days", ErrInput, c, i, r.Days)
			case i > 0 && r.At < card[i-1].At:
				return fmt.Errorf("%w: card %d review %d: earlier than review %d", ErrInput, c, i, i-1)
			}
		}
	}
	return nil
}

// item is one prediction: review idx of card, predicted from reviews 0..idx-1.
// Only reviews on a later day than the previous one (Days > 0) are items,
// as fsrs-rs's conversion of a review log keeps them.
type item struct {
	card   int32
	idx    int32
	at     int64
	weight float64
}

// items returns the items of the cards first reviewed at or after since
// (unix ms), in time order (ties by card, then review), as fsrs-rs sorts
// them by review id. (Anki's "ignore reviews before" keeps the same cards:
// it drops earlier reviews and then every card whose history no longer
// starts with its first learning.)
func items(cards []Card, since int64) []item {
	var out []item
	for c, card := range cards {
		if len(card) == 0 || card[0].At < since {
			continue
		}
		for i := 1; i < len(card); i++ {
			if card[i].Days > 0 {
				out = append(out, item{card: int32(c), idx: int32(i), at: card[i].At})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b item) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.card, b.card), cmp.Compare(a.idx, b.idx))
	})
	return out
}

// longTermCount is the number of reviews 1..idx of card on a new day (the
// item's "long-term review count" in fsrs-rs).
func longTermCount(card Card, idx int32) int {
	n := 0
	for _, r := range card[1 : idx+1] {
		if r.Days > 0 {
			n++
		}
	}
	return n
}

// firstLongTerm is the first review of card after the first on a new day.
func firstLongTerm(card Card) Review {
	for _, r := range card[1:] {
		if r.Days > 0 {
			return r
		}
	}
	return Review{}
}

// recencyWeight gives the items in time order fsrs-rs's weights,
// 0.25 + 0.75·(k/(n−1))³ for the k-th of n: recent reviews count more.
func recencyWeight(its []item) {
	n := max(float64(len(its))-1, 1)
	for k := range its {
		x := float64(k) / n
		its[k].weight = 0.25 + 0.75*x*x*x
	}
}

// outlierPair is (first grade, days to the first long-term review).
type outlierPair struct{ grade, days int }

// filterOutliers follows fsrs-rs: the items that are a card's first
// long-term review are grouped by the card's first grade and their elapsed
// days; within each grade the smallest groups (at least 20 items or 5 %,
// whichever is more) are removed, and so is any group with fewer than 6
// items or more than 100 days (365 for Easy). It returns the kept first
// long-term items (the pre-training set) and the items whose card survives.
func filterOutliers(cards []Card, its []item) (initSet, train []item) {
	initSet, removed := outliers(cards, its)
	return initSet, survivors(cards, its, removed)
}

// outliers returns the kept first long-term items of its and the removed
// (grade, days) pairs.
func outliers(cards []Card, its []item) (initSet []item, removed map[outlierPair]bool) {
	type group struct {
		days int
		its  []item
	}
	byGrade := map[int]map[int][]item{}
	for _, it := range its {
		card := cards[it.card]
		if longTermCount(card, it.idx) != 1 {
			continue
		}
		g, d := card[0].Grade, card[it.idx].Days
		if byGrade[g] == nil {
			byGrade[g] = map[int][]item{}
		}
		byGrade[g][d] = append(byGrade[g][d], it)
	}
	removed = map[outlierPair]bool{}
	for _, g := range slices.Sorted(maps.Keys(byGrade)) {
		var groups []group
		total := 0
		for d, v := range byGrade[g] {
			groups = append(groups, group{d, v})
			total += len(v)
		}
		// Largest first, then longer delays first; walked from the end.
		slices.SortFunc(groups, func(a, b group) int {
			return cmp.Or(cmp.Compare(len(b.its), len(a.its)), cmp.Compare(b.days, a.days))
		})
		limit := 100
		if g == 4 {
			limit = 365
		}
		done := 0
		for k := len(groups) - 1; k >= 0; k-- {
			sg := groups[k]
			if done+len(sg.its) >= max(20, total/20) {
				if len(sg.its) >= 6 && sg.days <= limit {
					initSet = append(initSet, sg.its...)
				} else {
					removed[outlierPair{g, sg.days}] = true
				}
			} else {
				done += len(sg.its)
				removed[outlierPair{g, sg.days}] = true
			}
		}
	}
	return initSet, removed
}

// survivors are the items of its whose card's first long-term review is
// not in a removed pair.
func survivors(cards []Card, its []item, removed map[outlierPair]bool) []item {
	var out []item
	for _, it := range its {
		card := cards[it.card]
		if !removed[outlierPair{card[0].Grade, firstLongTerm(card).Days}] {
			out = append(out, it)
		}
	}
	return out
}

// Split divides cards into a training and a held-out set: each card goes
// to the held-out set with probability testFraction, drawn from seed, so
// the same cards and seed always give the same split.
func Split(cards []Card, testFraction float64, seed uint64) (train, test []Card) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, c := range cards {
		if rng.Float64() < testFraction {
			test = append(test, c)
		} else {
			train = append(train, c)
		}
	}
	return train, test
}
