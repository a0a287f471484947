// Package srs holds the domain types of the spaced-repetition engine: seasons,
// cards, reviews, grades and the errors the engine reports. It imports nothing
// of ours, so every other package can depend on it.
package srs

import (
	"regexp"
	"time"
)

// Grade is a student's rating of a recall: 1 Again, 2 Hard, 3 Good, 4 Easy.
type Grade int8

// The four FSRS grades.
const (
	Again Grade = 1
	Hard  Grade = 2
	Good  Grade = 3
	Easy  Grade = 4
)

// Valid reports whether g is one of the four grades.
func (g Grade) Valid() bool { return g >= Again && g <= Easy }

// State is the FSRS learning state of a card.
type State int8

// Card states: New → Learning → Review ⇄ Relearning.
const (
	StateNew        State = 0
	StateLearning   State = 1
	StateReview     State = 2
	StateRelearning State = 3
)

var stateNames = [...]string{"new", "learning", "review", "relearning"}

// String returns the lower-case name used in replies and logs.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// Schedule is the FSRS memory state of one card. Times are unix milliseconds.
type Schedule struct {
	State      State
	Step       int     // index into the learning or relearning steps
	Stability  float64 // days until recall probability falls to 90%
	Difficulty float64 // 1..10
	Due        int64   // unix ms
	LastReview int64   // unix ms; 0 for a card never reviewed
	Reps       int     // reviews applied; also the card's version
	Lapses     int
	// LastID is ReviewHash of the id of the review that produced this state
	// (0: none, or not known, as for rows written before format 2). In a
	// review's Before it names the review it built on, so the chain of a
	// card's history can be checked.
	LastID uint64
	// Recall is the recall probability the card had when its last review was
	// given, before it (0 for a card never reviewed). It lets a repeated
	// review id be answered from the state alone.
	Recall float64
}

// ReviewHash is the 64-bit FNV-1a hash of a review id, never 0. It is part of
// the card record and of stored rows, so it must never change.
func ReviewHash(id string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= prime
	}
	if h == 0 {
		return 1
	}
	return h
}

// NewerThan reports whether s is a later version of the same card than o:
// a later last review, or the same instant with more reviews applied.
func (s Schedule) NewerThan(o Schedule) bool {
	if s.LastReview != o.LastReview {
		return s.LastReview > o.LastReview
	}
	return s.Reps > o.Reps
}

// Card is one student × one question × one season.
type Card struct {
	Season     string
	Player     string
	QuestionID string
	Subject    string
	Topic      string
	Stage      string
	Schedule
}

// Review is one acknowledged answer: the queue entry, the review-log row and
// the record the drainer applies to the card.
type Review struct {
	ID          string // review_id, the idempotency key (unique per card: season, player, question)
	Season      string
	Player      string
	QuestionID  string
	Subject     string
	Topic       string
	Stage       string
	Grade       Grade
	ReviewedAt  int64 // unix ms
	DurationMS  int64
	ElapsedDays int
	Before      Schedule
	After       Schedule
	Sidecar     string // the sidecar that acknowledged it
}

// Card returns the card state this review leaves behind.
func (r Review) Card() Card {
	return Card{
		Season: r.Season, Player: r.Player, QuestionID: r.QuestionID,
		Subject: r.Subject, Topic: r.Topic, Stage: r.Stage,
		Schedule: r.After,
	}
}

// SchedulerConfig is a season's FSRS configuration.
type SchedulerConfig struct {
	Params           []float64       // 17, 19 or 21 weights; nil means the defaults
	DesiredRetention float64         // (0, 1); 0 means 0.9
	LearningSteps    []time.Duration // nil means the default [1m 10m]; empty non-nil means none
	RelearningSteps  []time.Duration // nil means the default [10m]; empty non-nil means none
	MaximumInterval  int             // days; 0 means 36500
	EnableFuzz       bool
	EnableShortTerm  bool
	// Timezone and DayStart say how elapsed days are counted: the number of
	// day boundaries between two reviews, a day starting at DayStart o'clock
	// (0–23) local time in Timezone (an IANA name; "" means UTC), as Anki
	// counts them. DayStart DayStartLegacy counts whole 24-hour periods
	// instead: the rule of seasons created before day boundaries existed.
	Timezone string
	DayStart int
}

// Day rules: the hour a new day starts by default (Anki's), and the marker of
// the legacy rule (whole 24-hour periods since the last review).
const (
	DefaultDayStart = 4
	DayStartLegacy  = -1
)

// DefaultSchedulerConfig is the configuration a new season starts with.
func DefaultSchedulerConfig() SchedulerConfig {
	return SchedulerConfig{
		DesiredRetention: 0.9,
		LearningSteps:    []time.Duration{time.Minute, 10 * time.Minute},
		RelearningSteps:  []time.Duration{10 * time.Minute},
		MaximumInterval:  36500,
		EnableShortTerm:  true,
		Timezone:         "UTC",
		DayStart:         DefaultDayStart,
	}
}

// ArchiveState is where a season is in its archive lifecycle.
type ArchiveState string

// Archive states. From ArchiveInProgress on, the season takes no reviews and
// no due reads (invariant 5).
const (
	ArchiveNone       ArchiveState = ""          // live
	ArchiveInProgress ArchiveState = "archiving" // marked; partitions being moved
	ArchiveDone       ArchiveState = "archived"  // cards and log live in archive tables
	ArchivePurged     ArchiveState = "purged"    // archive tables dropped on admin approval
)

// Season is an academic period whose cards live in their own partition.
type Season struct {
	Name             string
	Start, End       time.Time // dates (UTC midnight); zero when unset
	IsActive         bool
	PartitionCreated bool
	EnableCache      bool
	AutoArchive      bool
	Archive          ArchiveState
	ArchivedAt       time.Time // when archiving started; zero while live
	PurgeEligible    bool      // the archive is past retention; SRS.ARCHIVE PURGE may drop it
	CreatedAt        time.Time
	Scheduler        SchedulerConfig
}

// seasonName is the whitelist every season name must match before it reaches
// SQL (invariant 6). The 64-byte cap keeps partition names within MariaDB's limit.
var seasonName = regexp.MustCompile(`^SEASON-\d{4}(-[A-Z0-9_]+)?$`)

// MaxSeasonNameLen bounds season names so derived identifiers fit MariaDB's 64.
const MaxSeasonNameLen = 48

// ValidSeasonName reports whether name is an acceptable season name.
func ValidSeasonName(name string) bool {
	return len(name) <= MaxSeasonNameLen && seasonName.MatchString(name)
}
