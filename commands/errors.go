package commands

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/safemode"
	"github.com/srsproxy/srsproxy/srs"
)

// errorPrefix pairs a domain error with the RESP error prefix a client sees.
type errorPrefix struct {
	err    error
	prefix string
}

// errorPrefixes is the one registry of domain errors and their prefixes.
// "ERR" is reserved for argument errors; anything not listed here is an
// internal error: the client gets "ERR internal error", the log the details.
var errorPrefixes = mustUniquePrefixes([]errorPrefix{
	{srs.ErrUnknownSeason, "NOSEASON"},
	{srs.ErrSeasonInactive, "SEASONINACTIVE"},
	{srs.ErrSeasonExists, "SEASONEXISTS"},
	{srs.ErrInvalidSeasonName, "BADSEASON"},
	{srs.ErrReviewTooOld, "STALEREVIEW"},
	{srs.ErrReviewInFuture, "FUTUREREVIEW"},
	{srs.ErrQueueFull, "QUEUEFULL"},
	{srs.ErrCacheUnavailable, "CACHEDOWN"},
	{srs.ErrStoreUnavailable, "STOREDOWN"},
	// TRYAGAIN: retry shortly, nothing was done. Also *engine.OverloadError
	// (matches ErrContention): admission control shed the request before
	// any upstream call, "TRYAGAIN sidecar overloaded; retry in 10ms".
	{engine.ErrContention, "TRYAGAIN"},
	{engine.ErrUnconfirmed, "UNCONFIRMED"},
	{engine.ErrSeasonActive, "SEASONACTIVE"},
	{engine.ErrNotArchived, "NOTARCHIVED"},
	{engine.ErrNotEligible, "NOTELIGIBLE"},
	{engine.ErrNeedConfirmation, "CONFIRM"},
	{mariadb.ErrUnknownJob, "NOJOB"},
})

func mustUniquePrefixes(list []errorPrefix) []errorPrefix {
	seen := map[string]bool{"ERR": true, "SEASONARCHIVED": true, "NOPERM": true, "BUSY": true, "MISCONF": true}
	for _, p := range list {
		if seen[p.prefix] {
			panic("commands: duplicate error prefix " + p.prefix)
		}
		seen[p.prefix] = true
	}
	return list
}

// PermError is a command the user's role does not allow.
type PermError struct{ User, Command string }

func (e *PermError) Error() string {
	return fmt.Sprintf("User %s has no permissions to run the '%s' command (admin only)", e.User, e.Command)
}

// errorReply renders err for the client, logging internal errors in full.
func errorReply(log *slog.Logger, cmd string, err error) string {
	var arg *ArgError
	if errors.As(err, &arg) {
		return "ERR " + arg.Msg
	}
	var invalid *srs.InvalidError
	if errors.As(err, &invalid) {
		return "ERR " + invalid.Error()
	}
	var perm *PermError
	if errors.As(err, &perm) {
		return "NOPERM " + perm.Error()
	}
	var busy *safemode.BusyError
	if errors.As(err, &busy) {
		return "BUSY " + busy.Error()
	}
	var disk *srs.QueueDiskError
	if errors.As(err, &disk) {
		return "MISCONF " + disk.Error()
	}
	var archived *srs.SeasonArchivedError
	if errors.As(err, &archived) {
		return "SEASONARCHIVED " + archived.Error()
	}
	for _, p := range errorPrefixes {
		if errors.Is(err, p.err) {
			return fmt.Sprintf("%s %s", p.prefix, err.Error())
		}
	}
	log.Error("command failed", "cmd", cmd, "err", err)
	return "ERR internal error"
}
