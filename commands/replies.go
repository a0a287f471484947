package commands

import (
	"time"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/proxy"
	"github.com/srsproxy/srsproxy/srs"
)

// Replies are maps in RESP3 and flat field/value arrays in RESP2. Integers
// are integers; stability, difficulty and retrievability are doubles at full
// precision.

func writeReview(w *proxy.Reply, res engine.ReviewResult) {
	r := res.Review
	w.Map(13)
	w.String("question_id")
	w.String(r.QuestionID)
	w.String("due")
	w.Int(r.After.Due)
	w.String("interval_days")
	w.Int(int64(res.IntervalDays))
	w.String("scheduled_minutes")
	w.Int((r.After.Due - r.ReviewedAt) / 60000)
	w.String("state")
	w.String(r.After.State.String())
	w.String("stability")
	w.Double(r.After.Stability)
	w.String("difficulty")
	w.Double(r.After.Difficulty)
	w.String("retrievability")
	w.Double(res.Retrievability)
	w.String("reps")
	w.Int(int64(r.After.Reps))
	w.String("lapses")
	w.Int(int64(r.After.Lapses))
	w.String("last_review")
	w.Int(r.After.LastReview)
	w.String("review_id")
	w.String(r.ID)
	w.String("duplicate")
	w.Bool(res.Duplicate)
}

func writeDue(w *proxy.Reply, res engine.DueResult) {
	w.Map(4)
	w.String("total_due")
	w.Int(res.Total)
	w.String("degraded")
	w.Bool(res.Degraded)
	w.String("season")
	w.String(res.Season)
	w.String("items")
	w.Array(len(res.Cards))
	for _, c := range res.Cards {
		w.Map(10)
		w.String("question_id")
		w.String(c.QuestionID)
		w.String("due")
		w.Int(c.Due)
		w.String("state")
		w.String(c.State.String())
		w.String("stability")
		w.Double(c.Stability)
		w.String("difficulty")
		w.Double(c.Difficulty)
		w.String("reps")
		w.Int(int64(c.Reps))
		w.String("lapses")
		w.Int(int64(c.Lapses))
		w.String("subject")
		w.String(c.Subject)
		w.String("topic")
		w.String(c.Topic)
		w.String("stage")
		w.String(c.Stage)
	}
}

func writeCard(w *proxy.Reply, info engine.CardInfo) {
	c := info.Card
	w.Map(15)
	w.String("question_id")
	w.String(c.QuestionID)
	w.String("player")
	w.String(c.Player)
	w.String("season")
	w.String(c.Season)
	w.String("subject")
	w.String(c.Subject)
	w.String("topic")
	w.String(c.Topic)
	w.String("stage")
	w.String(c.Stage)
	w.String("state")
	w.String(c.State.String())
	w.String("step")
	w.Int(int64(c.Step))
	w.String("stability")
	w.Double(c.Stability)
	w.String("difficulty")
	w.Double(c.Difficulty)
	w.String("retrievability")
	w.Double(info.Retrievability)
	w.String("due")
	w.Int(c.Due)
	w.String("last_review")
	w.Int(c.LastReview)
	w.String("reps")
	w.Int(int64(c.Reps))
	w.String("lapses")
	w.Int(int64(c.Lapses))
}

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

func stamp(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func minutes(steps []time.Duration) []float64 {
	m := make([]float64, len(steps))
	for i, s := range steps {
		m[i] = s.Minutes()
	}
	return m
}

func writeDoubles(w *proxy.Reply, fs []float64) {
	w.Array(len(fs))
	for _, f := range fs {
		w.Double(f)
	}
}

func writeSeasonInfo(w *proxy.Reply, info engine.SeasonInfo) {
	s, sc := info.Season, info.Season.Scheduler
	w.Map(20)
	w.String("name")
	w.String(s.Name)
	w.String("start")
	w.String(date(s.Start))
	w.String("end")
	w.String(date(s.End))
	w.String("is_active")
	w.Bool(s.IsActive)
	w.String("partition_created")
	w.Bool(s.PartitionCreated)
	w.String("enable_cache")
	w.Bool(s.EnableCache)
	w.String("auto_archive")
	w.Bool(s.AutoArchive)
	w.String("archived_at")
	w.Int(stamp(s.ArchivedAt))
	w.String("archive_state")
	w.String(string(s.Archive))
	w.String("purge_eligible")
	w.Bool(s.PurgeEligible)
	w.String("created_at")
	w.Int(stamp(s.CreatedAt))
	w.String("desired_retention")
	w.Double(sc.DesiredRetention)
	w.String("params")
	writeDoubles(w, sc.Params)
	w.String("learning_steps")
	writeDoubles(w, minutes(sc.LearningSteps))
	w.String("relearning_steps")
	writeDoubles(w, minutes(sc.RelearningSteps))
	w.String("maximum_interval")
	w.Int(int64(sc.MaximumInterval))
	w.String("enable_fuzz")
	w.Bool(sc.EnableFuzz)
	w.String("enable_short_term")
	w.Bool(sc.EnableShortTerm)
	w.String("cards")
	w.Int(info.Cards)
	w.String("status")
	w.String(seasonStatus(s))
}

// seasonStatus names the lifecycle stage: created (no partition yet), ready
// (partition, not active), active, archiving, archived, purged.
func seasonStatus(s srs.Season) string {
	switch {
	case s.Archive != srs.ArchiveNone:
		return string(s.Archive)
	case s.IsActive:
		return "active"
	case !s.PartitionCreated:
		return "created"
	}
	return "ready"
}

func writeSeasonList(w *proxy.Reply, seasons []srs.Season) {
	w.Array(len(seasons))
	for _, s := range seasons {
		w.Map(5)
		w.String("name")
		w.String(s.Name)
		w.String("status")
		w.String(seasonStatus(s))
		w.String("start")
		w.String(date(s.Start))
		w.String("end")
		w.String(date(s.End))
		w.String("enable_cache")
		w.Bool(s.EnableCache)
	}
}

func writeArchive(w *proxy.Reply, rep engine.ArchiveReport) {
	w.Map(5)
	w.String("cards_archived")
	w.Int(rep.Cards)
	w.String("log_rows_archived")
	w.Int(rep.LogRows)
	w.String("cache_keys_deleted")
	w.Int(rep.CacheKeys)
	w.String("seconds")
	w.Double(rep.Seconds)
	w.String("move_seconds")
	w.Double(rep.MoveSeconds)
}

func writeArchiveInfo(w *proxy.Reply, info engine.ArchiveInfo) {
	s := info.Season
	w.Map(7)
	w.String("season")
	w.String(s.Name)
	w.String("archive_state")
	w.String(string(s.Archive))
	w.String("archived_at")
	w.Int(stamp(s.ArchivedAt))
	w.String("cards")
	w.Int(info.Cards)
	w.String("log_rows")
	w.Int(info.LogRows)
	w.String("purge_eligible")
	w.Bool(s.PurgeEligible)
	w.String("eligible_at")
	w.Int(stamp(info.EligibleAt))
}

func writeJob(w *proxy.Reply, j mariadb.Job) {
	end := j.Finished
	if end.IsZero() {
		end = j.Updated
	}
	rate := 0.0
	if secs := end.Sub(j.Started).Seconds(); secs > 0 {
		rate = float64(j.Processed) / secs
	}
	w.Map(11)
	w.String("id")
	w.String(j.ID)
	w.String("kind")
	w.String(j.Kind)
	w.String("season")
	w.String(j.Season)
	w.String("state")
	w.String(j.State)
	w.String("processed")
	w.Int(j.Processed)
	w.String("total")
	w.Int(j.Total)
	w.String("rate")
	w.Double(rate)
	w.String("started")
	w.Int(stamp(j.Started))
	w.String("finished")
	w.Int(stamp(j.Finished))
	w.String("error")
	w.String(j.Error)
	w.String("owner")
	w.String(j.Owner)
}

func writeReconcile(w *proxy.Reply, rep engine.ReconcileReport) {
	w.Map(7)
	w.String("seasons")
	w.Array(len(rep.Seasons))
	for _, s := range rep.Seasons {
		w.String(s)
	}
	w.String("sampled")
	w.Int(int64(rep.Sampled))
	w.String("discrepancies")
	w.Int(int64(rep.Discrepancies))
	w.String("corrected")
	w.Int(int64(rep.Corrected))
	w.String("skipped_pending")
	w.Int(int64(rep.SkippedPending))
	w.String("rate")
	w.Double(rep.Rate)
	w.String("alert")
	w.Bool(rep.Alert)
}
