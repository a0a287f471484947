// Package commands implements the SRS.* commands: argument parsing, replies
// in RESP2 and RESP3 shapes, documentation, and the mapping of domain errors
// to RESP error prefixes. Handlers are thin: parse, call the engine, reply.
package commands

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/proxy"
)

// durableWait bounds how long a reply waits for its review's fsync.
const durableWait = 30 * time.Second

// handlers binds the commands to an engine.
type handlers struct {
	eng *engine.Engine
	log *slog.Logger
	mux *proxy.Mux
}

// Register adds every SRS.* command to mux.
func Register(mux *proxy.Mux, eng *engine.Engine, log *slog.Logger) {
	h := &handlers{eng: eng, log: log, mux: mux}
	for _, c := range []proxy.Command{
		{Name: "SRS.REVIEW", Arity: -5, Role: proxy.RoleApp, Handler: h.review,
			Syntax:  "SRS.REVIEW player season question grade|CORRECT 0|1 MS n [ATTEMPTS n] [AT ms] [ID review_id] [SUBJECT s] [TOPIC t] [STAGE st] [DURATION ms]",
			Summary: "Apply a student's answer (grade 1-4, or correct/time/attempts) with FSRS-6 and acknowledge it once it is durable."},
		{Name: "SRS.DUE", Arity: -3, Role: proxy.RoleApp, Handler: h.due,
			Syntax:  "SRS.DUE player season [SUBJECT s] [LIMIT n] [AT ms]",
			Summary: "List a student's due questions, most overdue first (LIMIT 1-50, default 20)."},
		{Name: "SRS.CARD", Arity: 4, Role: proxy.RoleApp, Handler: h.card,
			Syntax:  "SRS.CARD player season question",
			Summary: "Return one card's full FSRS state and current retrievability, or nil."},
		{Name: "SRS.SEASON", Arity: -2, Role: proxy.RoleApp, Handler: h.season,
			Syntax:  "SRS.SEASON CREATE name [START yyyy-mm-dd] [END yyyy-mm-dd] | ACTIVATE name | DEACTIVATE name | SET name [RETENTION r] [PARAMS w0 ... wN] [LEARNING m,...|NONE] [RELEARNING m,...|NONE] [MAXIVL days] [FUZZ ON|OFF] [SHORTTERM ON|OFF] [CACHE ON|OFF] | INFO name | LIST",
			Summary: "Create, activate, configure and inspect seasons (INFO and LIST for every user, the rest admin only)."},
		{Name: "SRS.HELP", Arity: 1, Role: proxy.RoleApp, Handler: h.help,
			Syntax:  "SRS.HELP",
			Summary: "List the SRS commands with their syntax."},
	} {
		c.Group, c.Since = "srs", "0.1.0"
		mux.Handle(c)
	}
}

func (h *handlers) fail(w *proxy.Reply, args [][]byte, err error) {
	w.Error(errorReply(h.log, strings.ToUpper(string(args[0])), err))
}

func (h *handlers) review(ctx context.Context, w *proxy.Reply, args [][]byte) {
	req, err := ParseReview(args)
	if err != nil {
		h.fail(w, args, err)
		return
	}
	res, err := h.eng.Review(ctx, req)
	if err != nil {
		h.fail(w, args, err)
		return
	}
	// The reply leaves only after the review is on disk (group commit: the
	// wait runs when the connection flushes, once for a whole pipeline).
	w.BeforeFlush(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), durableWait)
		defer cancel()
		return res.Wait(ctx)
	})
	writeReview(w, res)
}

func (h *handlers) due(ctx context.Context, w *proxy.Reply, args [][]byte) {
	req, err := ParseDue(args)
	if err != nil {
		h.fail(w, args, err)
		return
	}
	res, err := h.eng.Due(ctx, req)
	if err != nil {
		h.fail(w, args, err)
		return
	}
	writeDue(w, res)
}

func (h *handlers) card(ctx context.Context, w *proxy.Reply, args [][]byte) {
	req, err := ParseCard(args)
	if err != nil {
		h.fail(w, args, err)
		return
	}
	info, found, err := h.eng.Card(ctx, req.Season, req.Player, req.Question)
	switch {
	case err != nil:
		h.fail(w, args, err)
	case !found:
		w.Null()
	default:
		writeCard(w, info)
	}
}

func (h *handlers) season(ctx context.Context, w *proxy.Reply, args [][]byte) {
	req, err := ParseSeason(args)
	if err != nil {
		h.fail(w, args, err)
		return
	}
	if req.Admin() && w.Role() != proxy.RoleAdmin {
		w.Error("NOPERM User " + w.User() + " has no permissions to run 'SRS.SEASON " + req.Verb + "' (admin only)")
		return
	}
	switch req.Verb {
	case "LIST":
		seasons, err := h.eng.Seasons(ctx)
		if err != nil {
			h.fail(w, args, err)
			return
		}
		writeSeasonList(w, seasons)
		return
	case "INFO":
		info, err := h.eng.SeasonInfo(ctx, req.Name)
		if err != nil {
			h.fail(w, args, err)
			return
		}
		writeSeasonInfo(w, info)
		return
	case "CREATE":
		_, err = h.eng.CreateSeason(ctx, req.Name, req.Start, req.End)
	case "ACTIVATE", "DEACTIVATE":
		_, err = h.eng.SetActive(ctx, req.Name, req.Verb == "ACTIVATE")
	case "SET":
		_, err = h.eng.ChangeSeason(ctx, req.Name, req.Change)
	}
	if err != nil {
		h.fail(w, args, err)
		return
	}
	info, err := h.eng.SeasonInfo(ctx, req.Name)
	if err != nil {
		h.fail(w, args, err)
		return
	}
	writeSeasonInfo(w, info)
}

func (h *handlers) help(_ context.Context, w *proxy.Reply, _ [][]byte) {
	var lines []string
	for _, c := range h.mux.Commands() {
		if strings.HasPrefix(c.Name, "SRS.") {
			lines = append(lines, c.Syntax+" -- "+c.Summary)
		}
	}
	w.Array(len(lines))
	for _, l := range lines {
		w.String(l)
	}
}
