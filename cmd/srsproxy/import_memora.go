package main

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/srsproxy/srsproxy/commands"
	"github.com/srsproxy/srsproxy/srs"
)

// memora's two schedule tables (Frappe: "tab" + the doctype's name).
const (
	trackerTable = "tabPlayer Memory Tracker"
	stateTable   = "tabMemora Memory State"
)

// trackerIntervals are the tracker's levels 1–4 in days; level 0 is a new card.
var trackerIntervals = [...]float64{1: 1, 2: 3, 3: 7, 4: 14}

const dayMS = 86400000

// Skip reasons, as the summary prints them.
const (
	skipNoPlayer     = "no player"
	skipBadPlayer    = "bad player id"
	skipBadQuestion  = "bad question_id"
	skipEmptySeason  = "empty season (no --default-season)"
	skipBadSeason    = "bad season name"
	skipArchived     = "season archived"
	skipNullDue      = "NULL review date"
	skipNullModified = "NULL modified"
	skipBadLevel     = "level not 0-4"
	skipUnknownState = "unknown state"
	skipBadStability = "bad stability"
	skipBadDiffic    = "bad difficulty"
	skipBadLabel     = "bad subject/topic"
)

// identRe is a column name the import may splice into SQL (quoted).
var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// sourceRow is one row of either memora table; fields a table lacks stay zero.
type sourceRow struct {
	name, player, question, season string
	level                          sql.NullFloat64
	difficulty                     sql.NullFloat64
	due, modified                  sql.NullTime
	state                          sql.NullString
	subject, topic                 sql.NullString
}

// memoraSource reads one memora table by keyset pages of whole players.
type memoraSource struct {
	db          *sql.DB
	table       string // trackerTable or stateTable
	tracker     bool
	hasSeason   bool   // the tracker has its season column
	season      string // --season ("" = every season of the tracker)
	defSeason   string // --default-season
	subjectCol  string
	topicCol    string
	pageRows    int
	readTimeout time.Duration
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// check verifies the table, its columns and an index that starts with
// player (the keyset read needs one: without it every page is a scan of the
// whole table).
func (s *memoraSource) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.readTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, s.table)
	if err != nil {
		return fmt.Errorf("--from: columns of %s: %w", s.table, err)
	}
	cols := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return fmt.Errorf("--from: columns of %s: %w", s.table, err)
		}
		cols[strings.ToLower(c)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("--from: columns of %s: %w", s.table, err)
	}
	if len(cols) == 0 {
		return fmt.Errorf("--from: the source database has no table %q", s.table)
	}
	need := []string{"name", "player", "question_id", "stability", "modified"}
	if s.tracker {
		need = append(need, "next_review_date")
	} else {
		need = append(need, "difficulty", "next_review", "state")
	}
	for _, c := range need {
		if !cols[c] {
			return fmt.Errorf("--from: table %q has no column %s", s.table, c)
		}
	}
	s.hasSeason = s.tracker && cols["season"]
	if s.subjectCol != "" && !cols[strings.ToLower(s.subjectCol)] {
		return fmt.Errorf("--subject-column: table %q has no column %s", s.table, s.subjectCol)
	}
	if s.topicCol != "" && !cols[strings.ToLower(s.topicCol)] {
		return fmt.Errorf("--topic-column: table %q has no column %s", s.table, s.topicCol)
	}
	var n int
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND SEQ_IN_INDEX = 1 AND COLUMN_NAME = 'player'`, s.table).Scan(&n)
	if err != nil {
		return fmt.Errorf("--from: indexes of %s: %w", s.table, err)
	}
	if n == 0 {
		return fmt.Errorf("--from: table %q has no index starting with player; the import reads it in player order and would scan the whole table for every page; add one first: ALTER TABLE %s ADD INDEX player_idx (player)", s.table, quoteIdent(s.table))
	}
	return nil
}

// estimate is the table's row count as the server estimates it (for the ETA).
func (s *memoraSource) estimate(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, s.readTimeout)
	defer cancel()
	var n sql.NullInt64
	s.db.QueryRowContext(ctx, `SELECT TABLE_ROWS FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, s.table).Scan(&n)
	return n.Int64
}

// countNoPlayer counts rows the keyset never reaches (player NULL or ”).
func (s *memoraSource) countNoPlayer(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.readTimeout)
	defer cancel()
	var n int64
	where, args := s.seasonFilter()
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+quoteIdent(s.table)+
		" WHERE (player IS NULL OR player = '')"+where, args...).Scan(&n)
	return n, err
}

// seasonFilter restricts the read to the rows that land in --season.
func (s *memoraSource) seasonFilter() (string, []any) {
	if !s.tracker || s.season == "" {
		return "", nil
	}
	if !s.hasSeason {
		if s.defSeason == s.season {
			return "", nil
		}
		return " AND FALSE", nil
	}
	if s.defSeason == s.season {
		return " AND (season = ? OR season = '' OR season IS NULL)", []any{s.season}
	}
	return " AND season = ?", []any{s.season}
}

func (s *memoraSource) columns() string {
	cols := []string{"name", "player", "question_id", "stability", "modified"}
	switch {
	case !s.tracker:
		cols = append(cols, "''", "difficulty", "next_review", "state")
	case s.hasSeason:
		cols = append(cols, "season", "NULL", "next_review_date", "NULL")
	default:
		cols = append(cols, "''", "NULL", "next_review_date", "NULL")
	}
	for _, c := range []string{s.subjectCol, s.topicCol} {
		if c == "" {
			cols = append(cols, "NULL")
		} else {
			cols = append(cols, quoteIdent(c))
		}
	}
	return strings.Join(cols, ", ")
}

// bound finds the page after the player after ("" to start): about pageRows
// rows, always whole players. A keyset in two steps: an index-only read of
// the next pageRows players' index entries gives the page's last player (hi),
// then rows, a range read, takes every row of the players in (after, hi]
// (never OFFSET, never a sort of the table). Players
// compare in the source's collation (a case-insensitive one makes "Ann" and
// "ann" one position of the keyset), and both steps do so. more is false
// after the last page. The range reads of several pages may run at once.
//
// The range read fetches each row by its primary key from the player
// index: with Frappe's random hash names those are random reads of the
// table, so a source larger than its buffer pool reads at the speed of its
// disk (see README, "Migrating from memora").
func (s *memoraSource) bound(ctx context.Context, after string) (hi string, more bool, err error) {
	qctx, cancel := context.WithTimeout(ctx, s.readTimeout)
	defer cancel()
	var b sql.NullString
	err = s.db.QueryRowContext(qctx, "SELECT MAX(player) FROM (SELECT player FROM "+quoteIdent(s.table)+
		" WHERE player > ? ORDER BY player LIMIT ?) page", after, s.pageRows).Scan(&b)
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", s.table, err)
	}
	return b.String, b.Valid, nil
}

// rows reads the rows of the players in (after, hi], the page bound found.
func (s *memoraSource) rows(ctx context.Context, after, hi string) ([]sourceRow, error) {
	where, args := s.seasonFilter()
	return s.query(ctx, "SELECT "+s.columns()+" FROM "+quoteIdent(s.table)+" WHERE player > ? AND player <= ?"+where,
		append([]any{after, hi}, args...)...)
}

func (s *memoraSource) query(ctx context.Context, query string, args ...any) ([]sourceRow, error) {
	ctx, cancel := context.WithTimeout(ctx, s.readTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.table, err)
	}
	defer rows.Close()
	out := make([]sourceRow, 0, s.pageRows)
	for rows.Next() {
		var (
			r                      sourceRow
			name, question, season sql.NullString
		)
		if err := rows.Scan(&name, &r.player, &question, &r.level, &r.modified,
			&season, &r.difficulty, &r.due, &r.state, &r.subject, &r.topic); err != nil {
			return nil, fmt.Errorf("read %s: %w", s.table, err)
		}
		r.name, r.question, r.season = name.String, question.String, season.String
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.table, err)
	}
	return out, nil
}

// seasonInfo is what the mapping needs of a target season.
type seasonInfo struct {
	ok       bool    // the season takes cards (exists or will be created, not archived)
	skip     string  // the skip reason when not ok
	d0       float64 // D0(Good) under the season's parameters
	creating bool    // --dry-run: it would be created
}

// mapper turns a page of source rows into cards.
type mapper struct {
	tracker   bool
	season    string // the state table's season
	defSeason string
	seasons   func(name string) (seasonInfo, error)
}

// mapped is a page's cards and what happened to its rows.
type mapped struct {
	cards      []srs.Card
	read       int64
	duplicates int64
	skipped    map[string]int64
}

// cardSeason is the season a row lands in, or the reason it lands nowhere.
func (m *mapper) cardSeason(r *sourceRow) (string, string) {
	if !m.tracker {
		return m.season, ""
	}
	name := r.season
	if name == "" {
		if m.defSeason == "" {
			return "", skipEmptySeason
		}
		name = m.defSeason
	}
	if !srs.ValidSeasonName(name) {
		return "", skipBadSeason
	}
	return name, ""
}

// validID reports an id srsproxy accepts: 1–128 bytes of UTF-8 without
// control characters.
func validID(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || 0x7f <= r && r <= 0x9f {
			return false
		}
	}
	return true
}

func validLabel(s string) bool { return s == "" || validID(s, commands.MaxLabelLen) }

// page maps a page: rows of one card collapse to the newest modified
// (then the greatest name), which becomes the card.
func (m *mapper) page(rows []sourceRow) (mapped, error) {
	out := mapped{read: int64(len(rows)), skipped: map[string]int64{}}
	type keyed struct {
		season string
		row    *sourceRow
	}
	ks := make([]keyed, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		season, why := m.cardSeason(r)
		switch {
		case why != "":
		case !validID(r.player, commands.MaxIDLen):
			why = skipBadPlayer
		case !validID(r.question, commands.MaxIDLen):
			why = skipBadQuestion
		}
		if why != "" {
			out.skipped[why]++
			continue
		}
		ks = append(ks, keyed{season, r})
	}
	// Newest first within a card.
	slices.SortFunc(ks, func(a, b keyed) int {
		return cmp.Or(strings.Compare(a.row.player, b.row.player), strings.Compare(a.season, b.season),
			strings.Compare(a.row.question, b.row.question),
			-compareTime(a.row.modified, b.row.modified), -strings.Compare(a.row.name, b.row.name))
	})
	for i := 0; i < len(ks); {
		j := i + 1
		for j < len(ks) && ks[j].row.player == ks[i].row.player && ks[j].season == ks[i].season && ks[j].row.question == ks[i].row.question {
			j++
		}
		out.duplicates += int64(j - i - 1)
		c, why, err := m.card(ks[i].season, ks[i].row, j-i)
		if err != nil {
			return mapped{}, err
		}
		if why != "" {
			out.skipped[why]++
		} else {
			out.cards = append(out.cards, c)
		}
		i = j
	}
	return out, nil
}

func compareTime(a, b sql.NullTime) int {
	switch {
	case !a.Valid || a.Time.IsZero():
		if !b.Valid || b.Time.IsZero() {
			return 0
		}
		return -1
	case !b.Valid || b.Time.IsZero():
		return 1
	}
	return a.Time.Compare(b.Time)
}

func validTime(t sql.NullTime) bool { return t.Valid && !t.Time.IsZero() }

// card maps a card's newest row; rows is how many source rows it had.
func (m *mapper) card(season string, r *sourceRow, rows int) (srs.Card, string, error) {
	info, err := m.seasons(season)
	if err != nil {
		return srs.Card{}, "", err
	}
	if !info.ok {
		return srs.Card{}, info.skip, nil
	}
	c := srs.Card{Season: season, Player: r.player, QuestionID: r.question,
		Subject: r.subject.String, Topic: r.topic.String}
	if !validLabel(c.Subject) || !validLabel(c.Topic) {
		return srs.Card{}, skipBadLabel, nil
	}
	if m.tracker {
		return m.trackerCard(c, info, r, rows)
	}
	return m.stateCard(c, r, rows)
}

// trackerCard: level 1–4 → Review with S the level's interval, D = D0(Good),
// due next_review_date, last review due − S; level 0 → New, due as given.
// reps counts the tracker's rows of the card: it inserted one per answer.
func (m *mapper) trackerCard(c srs.Card, info seasonInfo, r *sourceRow, rows int) (srs.Card, string, error) {
	if !validTime(r.due) {
		return srs.Card{}, skipNullDue, nil
	}
	lv := r.level.Float64
	if !r.level.Valid || lv != math.Trunc(lv) || lv < 0 || lv > 4 {
		return srs.Card{}, skipBadLevel, nil
	}
	c.Due = r.due.Time.UnixMilli()
	if lv == 0 {
		c.State = srs.StateNew
		return c, "", nil
	}
	c.State = srs.StateReview
	c.Stability = trackerIntervals[int(lv)]
	c.Difficulty = info.d0
	c.LastReview = c.Due - int64(c.Stability)*dayMS
	c.Reps = rows
	return c, "", nil
}

var memoraStates = map[string]srs.State{
	"new": srs.StateNew, "learning": srs.StateLearning, "review": srs.StateReview, "relearning": srs.StateRelearning,
}

// stateCard: the state table's state, S, D and due as given; the last
// review is when memora last wrote the row (modified).
func (m *mapper) stateCard(c srs.Card, r *sourceRow, rows int) (srs.Card, string, error) {
	st, ok := memoraStates[strings.ToLower(strings.TrimSpace(r.state.String))]
	if !ok {
		return srs.Card{}, skipUnknownState, nil
	}
	if !validTime(r.due) {
		return srs.Card{}, skipNullDue, nil
	}
	c.State, c.Due = st, r.due.Time.UnixMilli()
	if st == srs.StateNew {
		return c, "", nil
	}
	s, d := r.level.Float64, r.difficulty.Float64
	switch {
	case !r.level.Valid || math.IsNaN(s) || s <= 0 || s > 36500:
		return srs.Card{}, skipBadStability, nil
	case !r.difficulty.Valid || math.IsNaN(d) || d < 1 || d > 10:
		return srs.Card{}, skipBadDiffic, nil
	case !validTime(r.modified):
		return srs.Card{}, skipNullModified, nil
	}
	c.Stability, c.Difficulty = s, d
	c.LastReview = r.modified.Time.UnixMilli()
	c.Reps = max(1, rows)
	return c, "", nil
}
