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

// The field writers each write one name and its value into an open map.

func intField(w *proxy.Reply, name string, v int64) {
	w.String(name)
	w.Int(v)
}

func stringField(w *proxy.Reply, name, v string) {
	w.String(name)
	w.String(v)
}

func doubleField(w *proxy.Reply, name string, v float64) {
	w.String(name)
	w.Double(v)
}

func boolField(w *proxy.Reply, name string, v bool) {
	w.String(name)
	w.Bool(v)
}

// The field names of the replies written on every request, encoded once.
var (
	keyQuestionID       = proxy.NewKey("question_id")
	keyDue              = proxy.NewKey("due")
	keyIntervalDays     = proxy.NewKey("interval_days")
	keyScheduledMinutes = proxy.NewKey("scheduled_minutes")
	keyState            = proxy.NewKey("state")
	keyStability        = proxy.NewKey("stability")
	keyDifficulty       = proxy.NewKey("difficulty")
	keyRetrievability   = proxy.NewKey("retrievability")
	keyReps             = proxy.NewKey("reps")
	keyLapses           = proxy.NewKey("lapses")
	keyLastReview       = proxy.NewKey("last_review")
	keyReviewID         = proxy.NewKey("review_id")
	keyDuplicate        = proxy.NewKey("duplicate")
	keyTotalDue         = proxy.NewKey("total_due")
	keyDegraded         = proxy.NewKey("degraded")
	keySeason           = proxy.NewKey("season")
	keyItems            = proxy.NewKey("items")
	keySubject          = proxy.NewKey("subject")
	keyTopic            = proxy.NewKey("topic")
	keyStage            = proxy.NewKey("stage")
)

func writeReview(w *proxy.Reply, res engine.ReviewResult) {
	r := &res.Review
	w.Map(13)
	w.Key(keyQuestionID)
	w.String(r.QuestionID)
	w.Key(keyDue)
	w.Int(r.After.Due)
	w.Key(keyIntervalDays)
	w.Int(int64(res.IntervalDays))
	w.Key(keyScheduledMinutes)
	w.Int((r.After.Due - r.ReviewedAt) / 60000)
	w.Key(keyState)
	w.String(r.After.State.String())
	w.Key(keyStability)
	w.Double(r.After.Stability)
	w.Key(keyDifficulty)
	w.Double(r.After.Difficulty)
	w.Key(keyRetrievability)
	w.Double(res.Retrievability)
	w.Key(keyReps)
	w.Int(int64(r.After.Reps))
	w.Key(keyLapses)
	w.Int(int64(r.After.Lapses))
	w.Key(keyLastReview)
	w.Int(r.After.LastReview)
	w.Key(keyReviewID)
	w.String(r.ID)
	w.Key(keyDuplicate)
	w.Bool(res.Duplicate)
}

func writeDue(w *proxy.Reply, res engine.DueResult) {
	w.Map(4)
	w.Key(keyTotalDue)
	w.Int(res.Total)
	w.Key(keyDegraded)
	w.Bool(res.Degraded)
	w.Key(keySeason)
	w.String(res.Season)
	w.Key(keyItems)
	w.Array(len(res.Cards))
	for i := range res.Cards {
		c := &res.Cards[i]
		w.Map(10)
		w.Key(keyQuestionID)
		w.String(c.QuestionID)
		w.Key(keyDue)
		w.Int(c.Due)
		w.Key(keyState)
		w.String(c.State.String())
		w.Key(keyStability)
		w.Double(c.Stability)
		w.Key(keyDifficulty)
		w.Double(c.Difficulty)
		w.Key(keyReps)
		w.Int(int64(c.Reps))
		w.Key(keyLapses)
		w.Int(int64(c.Lapses))
		w.Key(keySubject)
		w.String(c.Subject)
		w.Key(keyTopic)
		w.String(c.Topic)
		w.Key(keyStage)
		w.String(c.Stage)
	}
}

func writeCard(w *proxy.Reply, info engine.CardInfo) {
	c := info.Card
	w.Map(15)
	stringField(w, "question_id", c.QuestionID)
	stringField(w, "player", c.Player)
	stringField(w, "season", c.Season)
	stringField(w, "subject", c.Subject)
	stringField(w, "topic", c.Topic)
	stringField(w, "stage", c.Stage)
	stringField(w, "state", c.State.String())
	intField(w, "step", int64(c.Step))
	doubleField(w, "stability", c.Stability)
	doubleField(w, "difficulty", c.Difficulty)
	doubleField(w, "retrievability", info.Retrievability)
	intField(w, "due", c.Due)
	intField(w, "last_review", c.LastReview)
	intField(w, "reps", int64(c.Reps))
	intField(w, "lapses", int64(c.Lapses))
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
	w.Map(22)
	stringField(w, "name", s.Name)
	stringField(w, "start", date(s.Start))
	stringField(w, "end", date(s.End))
	boolField(w, "is_active", s.IsActive)
	boolField(w, "partition_created", s.PartitionCreated)
	boolField(w, "enable_cache", s.EnableCache)
	boolField(w, "auto_archive", s.AutoArchive)
	intField(w, "archived_at", stamp(s.ArchivedAt))
	stringField(w, "archive_state", string(s.Archive))
	boolField(w, "purge_eligible", s.PurgeEligible)
	intField(w, "created_at", stamp(s.CreatedAt))
	doubleField(w, "desired_retention", sc.DesiredRetention)
	w.String("params")
	writeDoubles(w, sc.Params)
	w.String("learning_steps")
	writeDoubles(w, minutes(sc.LearningSteps))
	w.String("relearning_steps")
	writeDoubles(w, minutes(sc.RelearningSteps))
	intField(w, "maximum_interval", int64(sc.MaximumInterval))
	boolField(w, "enable_fuzz", sc.EnableFuzz)
	boolField(w, "enable_short_term", sc.EnableShortTerm)
	stringField(w, "timezone", sc.Timezone)
	intField(w, "day_start", int64(sc.DayStart)) // -1: the legacy 24-hour rule
	intField(w, "cards", info.Cards)
	stringField(w, "status", seasonStatus(s))
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
		stringField(w, "name", s.Name)
		stringField(w, "status", seasonStatus(s))
		stringField(w, "start", date(s.Start))
		stringField(w, "end", date(s.End))
		boolField(w, "enable_cache", s.EnableCache)
	}
}

func writeArchive(w *proxy.Reply, rep engine.ArchiveReport) {
	w.Map(5)
	intField(w, "cards_archived", rep.Cards)
	intField(w, "log_rows_archived", rep.LogRows)
	intField(w, "cache_keys_deleted", rep.CacheKeys)
	doubleField(w, "seconds", rep.Seconds)
	doubleField(w, "move_seconds", rep.MoveSeconds)
}

func writeArchiveInfo(w *proxy.Reply, info engine.ArchiveInfo) {
	s := info.Season
	w.Map(7)
	stringField(w, "season", s.Name)
	stringField(w, "archive_state", string(s.Archive))
	intField(w, "archived_at", stamp(s.ArchivedAt))
	intField(w, "cards", info.Cards)
	intField(w, "log_rows", info.LogRows)
	boolField(w, "purge_eligible", s.PurgeEligible)
	intField(w, "eligible_at", stamp(info.EligibleAt))
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
	w.Map(12)
	stringField(w, "id", j.ID)
	stringField(w, "kind", j.Kind)
	stringField(w, "season", j.Season)
	stringField(w, "state", j.State)
	intField(w, "processed", j.Processed)
	intField(w, "total", j.Total)
	doubleField(w, "rate", rate)
	intField(w, "started", stamp(j.Started))
	intField(w, "finished", stamp(j.Finished))
	stringField(w, "error", j.Error)
	stringField(w, "owner", j.Owner)
	stringField(w, "result", j.Result)
}

func writeReconcile(w *proxy.Reply, rep engine.ReconcileReport) {
	w.Map(7)
	w.String("seasons")
	w.Array(len(rep.Seasons))
	for _, s := range rep.Seasons {
		w.String(s)
	}
	intField(w, "sampled", int64(rep.Sampled))
	intField(w, "discrepancies", int64(rep.Discrepancies))
	intField(w, "corrected", int64(rep.Corrected))
	intField(w, "skipped_pending", int64(rep.SkippedPending))
	doubleField(w, "rate", rep.Rate)
	boolField(w, "alert", rep.Alert)
}
