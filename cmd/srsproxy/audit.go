package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// Acked is one acknowledged review: the proof obligation of invariant 1.
// Review ids are scoped to their card.
type Acked struct{ Season, Player, Question, ReviewID string }

// AuditReport is what an audit found.
type AuditReport struct {
	Acked, Missing, Doubled int
	Cards, Mismatched       int
	Problems                []string // the first few, for the log
}

// Clean reports whether the store satisfies invariants 1–3 for the acked reviews.
func (r AuditReport) Clean() bool { return r.Missing == 0 && r.Doubled == 0 && r.Mismatched == 0 }

func (r AuditReport) String() string {
	return fmt.Sprintf("acked %d, missing %d, doubled %d; cards replayed %d, mismatched %d",
		r.Acked, r.Missing, r.Doubled, r.Cards, r.Mismatched)
}

func (r *AuditReport) problem(format string, a ...any) {
	if len(r.Problems) < 20 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
	}
}

// ReadAcked parses "season player question review_id" lines.
func ReadAcked(rd io.Reader) ([]Acked, error) {
	var out []Acked
	sc := bufio.NewScanner(rd)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: want 'season player question review_id'", n)
		}
		out = append(out, Acked{Season: f[0], Player: f[1], Question: f[2], ReviewID: f[3]})
	}
	return out, sc.Err()
}

// Audit proves that every acknowledged review is logged exactly once and
// that every card with logged reviews equals the replay of its log in
// reviewed_at order with the season's scheduler.
func Audit(ctx context.Context, store *mariadb.Store, acked []Acked) (AuditReport, error) {
	rep := AuditReport{Acked: len(acked)}
	bySeason := map[string][]mariadb.ReviewKey{}
	for _, a := range acked {
		bySeason[a.Season] = append(bySeason[a.Season], mariadb.ReviewKey{Player: a.Player, Question: a.Question, ID: a.ReviewID})
	}
	for season, ids := range bySeason {
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), 1000)]
			ids = ids[len(chunk):]
			counts, err := store.ReviewIDs(ctx, season, chunk)
			if err != nil {
				return rep, err
			}
			for _, id := range chunk {
				switch n := counts[id]; {
				case n == 0:
					rep.Missing++
					rep.problem("missing: %s %+v", season, id)
				case n > 1:
					rep.Doubled++
					rep.problem("logged %d times: %s %+v", n, season, id)
				}
			}
		}
	}
	scheds := map[string]*fsrs.Scheduler{}
	err := store.CardsWithReviews(ctx, func(c srs.Card) error {
		sched, ok := scheds[c.Season]
		if !ok {
			s, err := store.Season(ctx, c.Season)
			if err != nil {
				return err
			}
			if sched, err = fsrs.New(s.Scheduler); err != nil {
				return err
			}
			scheds[c.Season] = sched
		}
		log, err := store.ReviewLog(ctx, c.Season, c.Player, c.QuestionID)
		if err != nil || len(log) == 0 {
			return err
		}
		rep.Cards++
		var st srs.Schedule
		seed := fsrs.Seed(c.Season, c.Player, c.QuestionID)
		for _, r := range log {
			st = sched.Next(st, r.Grade, r.ReviewedAt, seed).Schedule
		}
		if !sameSchedule(st, c.Schedule) {
			rep.Mismatched++
			rep.problem("card %s/%s/%s: row %+v, replay of %d reviews %+v", c.Season, c.Player, c.QuestionID, c.Schedule, len(log), st)
		}
		return nil
	})
	return rep, err
}

func sameSchedule(a, b srs.Schedule) bool {
	close := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(x)) }
	return a.State == b.State && a.Step == b.Step && a.Due == b.Due && a.LastReview == b.LastReview &&
		a.Reps == b.Reps && a.Lapses == b.Lapses && close(a.Stability, b.Stability) && close(a.Difficulty, b.Difficulty)
}

// runAudit is `srsproxy audit --mysql DSN --acked FILE`; exit 0 when clean.
func runAudit(args []string) int {
	fs := flag.NewFlagSet("srsproxy audit", flag.ContinueOnError)
	dsn := fs.String("mysql", "root@tcp(127.0.0.1:3306)/srs", "MariaDB DSN")
	ackedPath := fs.String("acked", "", "file of acknowledged reviews, one 'season player question review_id' per line")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *ackedPath == "" {
		fmt.Fprintln(os.Stderr, "srsproxy audit: --acked is required")
		return 2
	}
	f, err := os.Open(*ackedPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "srsproxy audit:", err)
		return 2
	}
	defer f.Close()
	acked, err := ReadAcked(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "srsproxy audit: --acked:", err)
		return 2
	}
	ctx := context.Background()
	store, err := mariadb.Open(ctx, *dsn, newLogger(Config{}.withDefaults()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "srsproxy audit:", err)
		return 2
	}
	defer store.Close()
	rep, err := Audit(ctx, store, acked)
	if err != nil {
		fmt.Fprintln(os.Stderr, "srsproxy audit:", err)
		return 2
	}
	for _, p := range rep.Problems {
		fmt.Println(p)
	}
	fmt.Println("audit:", rep)
	if !rep.Clean() {
		return 1
	}
	return 0
}
