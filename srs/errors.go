package srs

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the domain. The RESP layer maps each to an error prefix.
var (
	ErrUnknownSeason     = errors.New("unknown season")
	ErrSeasonInactive    = errors.New("season is not active")
	ErrSeasonExists      = errors.New("season already exists")
	ErrInvalidSeasonName = errors.New("invalid season name: must match ^SEASON-\\d{4}(-[A-Z0-9_]+)?$ and be at most 48 bytes")
	ErrReviewTooOld      = errors.New("review is older than the card's last review")
	ErrReviewInFuture    = errors.New("review time is more than 5 minutes in the future")
	ErrQueueFull         = errors.New("write-behind queue is full; review not accepted, retry later")
	ErrCacheUnavailable  = errors.New("cache unavailable")
	// ErrStoreUnavailable refuses a request that needs MariaDB while it does
	// not answer (a student the cache lacks, a review older than the card's
	// last one); the client retries later.
	ErrStoreUnavailable = errors.New("MariaDB is unavailable and this request needs it; retry later")
)

// QueueDiskError is a durable queue that cannot write: its disk is full or
// failing. Reviews are refused (never acknowledged) until it clears.
type QueueDiskError struct {
	Dir string
	Err error
}

func (e *QueueDiskError) Error() string {
	return fmt.Sprintf("write-behind queue in %s cannot write (%v); reviews are refused until it can", e.Dir, e.Err)
}

func (e *QueueDiskError) Unwrap() error { return e.Err }

// SeasonArchivedError reports a season that was archived and takes no more reads or writes.
type SeasonArchivedError struct {
	Season     string
	ArchivedAt time.Time
}

func (e *SeasonArchivedError) Error() string {
	return fmt.Sprintf("season %s was archived on %s", e.Season, e.ArchivedAt.UTC().Format(time.RFC3339))
}

// InvalidError is a request value the domain refuses (a season's END before
// its START, a scheduler setting out of range). The RESP layer answers it as
// an argument error naming Field.
type InvalidError struct {
	Field string // the option, as the client wrote it: "END", "LEARNING", …
	Msg   string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }
