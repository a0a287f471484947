package wire

import (
	"errors"
	"testing"

	"github.com/srsproxy/srsproxy/srs"
)

func TestRoundTripAndTruncation(t *testing.T) {
	t.Parallel()
	r := srs.Review{ID: "r-ß", Season: "SEASON-2026", Player: "p", QuestionID: "q", Subject: "s", Topic: "t", Stage: "st",
		Grade: srs.Easy, ReviewedAt: -5, DurationMS: 1 << 40, ElapsedDays: 3, Sidecar: "host:1",
		Before: srs.Schedule{State: srs.StateLearning, Step: 1, Stability: 0.001, Difficulty: 10, Due: 1, LastReview: 0, Reps: 1},
		After:  srs.Schedule{State: srs.StateReview, Stability: 36500, Difficulty: 1, Due: 1 << 50, LastReview: 7, Reps: 2, Lapses: 9}}
	b := AppendReview(nil, r)
	got, err := DecodeReview(b)
	if err != nil || got != r {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for n := range len(b) {
		if _, err := DecodeReview(b[:n]); err == nil {
			t.Fatalf("%d of %d bytes decoded without error", n, len(b))
		}
	}
	if _, err := DecodeReview(append(b, 0)); err == nil || errors.Is(err, ErrTruncated) {
		t.Fatalf("trailing byte: %v", err)
	}
}
