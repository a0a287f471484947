package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// A review whose AT lies before its season's START is refused as an
// invalid AT, before any card is read or written (the fakes hold no cards:
// reaching the cache or the queue would panic).
func TestReviewATBeforeSeasonStart(t *testing.T) {
	t.Parallel()
	s := activeSeason("SEASON-2027", 0.9)
	s.Start = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	e, _, _ := seasonEngine(t, &seasonStore{season: s})
	for _, tc := range []struct {
		name string
		at   int64
	}{
		{"a millisecond before", s.Start.UnixMilli() - 1},
		{"a year before", s.Start.AddDate(-1, 0, 0).UnixMilli()},
		{"the first millisecond of unix time", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Review(context.Background(), ReviewRequest{Player: "p", Season: s.Name, Question: "q", Grade: srs.Good, At: tc.at})
			var invalid *srs.InvalidError
			if !errors.As(err, &invalid) || invalid.Field != "AT" || !strings.Contains(err.Error(), "before the start of season SEASON-2027 (2027-01-01)") {
				t.Fatalf("Review AT %d: %v, want an InvalidError on AT naming the season's start", tc.at, err)
			}
		})
	}
}
