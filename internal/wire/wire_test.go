package wire

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/srsproxy/srsproxy/srs"
)

func TestRoundTripAndTruncation(t *testing.T) {
	t.Parallel()
	r := srs.Review{ID: "r-ß", Season: "SEASON-2026", Player: "p", QuestionID: "q", Subject: "s", Topic: "t", Stage: "st",
		Grade: srs.Easy, ReviewedAt: -5, DurationMS: 1 << 40, ElapsedDays: 3, Sidecar: "host:1",
		Before: srs.Schedule{State: srs.StateLearning, Step: 1, Stability: 0.001, Difficulty: 10, Due: 1, LastReview: 0, Reps: 1, LastID: 42, Recall: 0.5},
		After:  srs.Schedule{State: srs.StateReview, Stability: 36500, Difficulty: 1, Due: 1 << 50, LastReview: 7, Reps: 2, Lapses: 9, LastID: 1 << 63, Recall: 0.9}}
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

// TestVersion1 decodes bytes of release 1's layout (no LastID, no Recall),
// written here by hand so the test does not depend on the encoder.
func TestVersion1(t *testing.T) {
	t.Parallel()
	want := srs.Review{ID: "r", Season: "SEASON-2026", Player: "p", QuestionID: "q", Grade: srs.Good, ReviewedAt: 1000,
		After: srs.Schedule{State: srs.StateReview, Stability: 2, Difficulty: 5, Due: 2000, LastReview: 1000, Reps: 1}}
	var b []byte
	for _, s := range []string{want.ID, want.Season, want.Player, want.QuestionID, "", "", ""} {
		b = appendString(b, s)
	}
	for _, v := range []int64{int64(want.Grade), want.ReviewedAt, 0, 0} {
		b = binary.AppendVarint(b, v)
	}
	for _, s := range []srs.Schedule{want.Before, want.After} {
		b = binary.AppendVarint(b, int64(s.State))
		b = binary.AppendVarint(b, int64(s.Step))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.Stability))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.Difficulty))
		for _, v := range []int64{s.Due, s.LastReview, int64(s.Reps), int64(s.Lapses)} {
			b = binary.AppendVarint(b, v)
		}
	}
	b = appendString(b, "")
	got, err := DecodeReviewV1(b)
	if err != nil || got != want {
		t.Fatalf("v1: %+v %v", got, err)
	}
	if _, err := DecodeReview(b); err == nil {
		t.Fatal("v1 bytes decoded as v2")
	}
}
