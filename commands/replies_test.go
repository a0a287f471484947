package commands

import (
	"bytes"
	"math"
	"testing"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/proxy"
	"github.com/srsproxy/srsproxy/srs"
)

// refWriteReview and refWriteDue are the reply writers as they were before
// the field names were encoded once; the new ones must write the same bytes.
func refWriteReview(w *proxy.Reply, res engine.ReviewResult) {
	r := res.Review
	w.Map(13)
	stringField(w, "question_id", r.QuestionID)
	intField(w, "due", r.After.Due)
	intField(w, "interval_days", int64(res.IntervalDays))
	intField(w, "scheduled_minutes", (r.After.Due-r.ReviewedAt)/60000)
	stringField(w, "state", r.After.State.String())
	doubleField(w, "stability", r.After.Stability)
	doubleField(w, "difficulty", r.After.Difficulty)
	doubleField(w, "retrievability", res.Retrievability)
	intField(w, "reps", int64(r.After.Reps))
	intField(w, "lapses", int64(r.After.Lapses))
	intField(w, "last_review", r.After.LastReview)
	stringField(w, "review_id", r.ID)
	boolField(w, "duplicate", res.Duplicate)
}

func refWriteDue(w *proxy.Reply, res engine.DueResult) {
	w.Map(4)
	intField(w, "total_due", res.Total)
	boolField(w, "degraded", res.Degraded)
	stringField(w, "season", res.Season)
	w.String("items")
	w.Array(len(res.Cards))
	for _, c := range res.Cards {
		w.Map(10)
		stringField(w, "question_id", c.QuestionID)
		intField(w, "due", c.Due)
		stringField(w, "state", c.State.String())
		doubleField(w, "stability", c.Stability)
		doubleField(w, "difficulty", c.Difficulty)
		intField(w, "reps", int64(c.Reps))
		intField(w, "lapses", int64(c.Lapses))
		stringField(w, "subject", c.Subject)
		stringField(w, "topic", c.Topic)
		stringField(w, "stage", c.Stage)
	}
}

func TestRepliesMatchReference(t *testing.T) {
	t.Parallel()
	due := benchDue()
	odd := due
	odd.Cards = append([]srs.Card(nil), due.Cards[:3]...)
	odd.Cards[0].Stability, odd.Cards[0].Difficulty = math.Inf(1), math.NaN()
	odd.Cards[1].Subject, odd.Cards[1].QuestionID, odd.Cards[1].State = "", "ü\r\nq", srs.State(9)
	odd.Cards[2].Due, odd.Cards[2].Reps = -1, 1<<40
	odd.Degraded, odd.Total = true, 0
	empty := engine.DueResult{Season: "SEASON-2026"}
	rev := benchReview()
	dup := rev
	dup.Duplicate, dup.Retrievability, dup.Review.ID = true, math.Inf(-1), ""
	for _, proto := range []int{2, 3} {
		for i, res := range []engine.DueResult{due, odd, empty} {
			got, want := proxy.NewReplyRecorder(proto), proxy.NewReplyRecorder(proto)
			writeDue(&got.Reply, res)
			refWriteDue(&want.Reply, res)
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("RESP%d due %d:\n got %q\nwant %q", proto, i, got.Bytes(), want.Bytes())
			}
		}
		for i, res := range []engine.ReviewResult{rev, dup} {
			got, want := proxy.NewReplyRecorder(proto), proxy.NewReplyRecorder(proto)
			writeReview(&got.Reply, res)
			refWriteReview(&want.Reply, res)
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("RESP%d review %d:\n got %q\nwant %q", proto, i, got.Bytes(), want.Bytes())
			}
		}
	}
}
