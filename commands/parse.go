package commands

import (
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

const maxMS = 1<<53 - 1 // unix ms beyond any date we schedule; fits a double exactly

// season reads and validates a season name (invariant 6: before any SQL).
func (c *cursor) season() (string, error) {
	b, err := c.raw("season")
	if err != nil {
		return "", err
	}
	s, ok := internSeason(b)
	if !ok {
		return "", argErr("invalid season name %q: must match ^SEASON-\\d{4}(-[A-Z0-9_]+)?$ and be at most %d bytes", clip(string(b)), srs.MaxSeasonNameLen)
	}
	return s, nil
}

// seasons holds season names that passed srs.ValidSeasonName, so that the
// hot commands neither run its regular expression nor copy the name again
// for a season seen recently. Each slot holds one name; a collision replaces
// it.
var (
	seasons    [16]atomic.Pointer[string]
	seasonSeed = maphash.MakeSeed()
)

// internSeason returns b as a string if it is a valid season name.
func internSeason(b []byte) (string, bool) {
	slot := &seasons[maphash.Bytes(seasonSeed, b)%uint64(len(seasons))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p, true
	}
	if !srs.ValidSeasonName(view(b)) {
		return "", false
	}
	s := string(b)
	slot.Store(&s)
	return s, true
}

// ParseReview parses SRS.REVIEW player season question grade|CORRECT 0|1 MS n
// [ATTEMPTS n] [AT ms] [ID review_id] [SUBJECT s] [TOPIC t] [STAGE st] [DURATION ms].
//
// The request's strings share one allocation (the season is interned); when
// SUBJECT, TOPIC or STAGE is given, the strings its pointers point to are a
// second one. Errors are *ArgError.
func ParseReview(args [][]byte) (engine.ReviewRequest, error) {
	c := newCursor(args)
	var r engine.ReviewRequest
	player, err := c.idBytes("player")
	if err != nil {
		return r, err
	}
	if r.Season, err = c.season(); err != nil {
		return r, err
	}
	question, err := c.idBytes("question")
	if err != nil {
		return r, err
	}
	g, err := c.raw("grade")
	if err != nil {
		return r, err
	}
	var seen optionSet
	answered := strings.EqualFold(view(g), "CORRECT")
	if answered {
		var attempts bool
		if r.Grade, r.DurationMS, attempts, err = c.answer(); err != nil {
			return r, err
		}
		seen.add("MS", reviewOptions)
		if attempts {
			seen.add("ATTEMPTS", reviewOptions)
		}
	} else {
		n, err := strconv.Atoi(view(g))
		if err != nil || !srs.Grade(n).Valid() {
			return r, argErr("SRS.REVIEW: grade must be 1 (again), 2 (hard), 3 (good), 4 (easy) or CORRECT 0|1 MS n, got %q", clip(string(g)))
		}
		r.Grade = srs.Grade(n)
	}
	var id []byte
	var labels [3][]byte // SUBJECT, TOPIC, STAGE
	var given [3]bool
	for c.more() {
		label := -1
		opt := c.keyword()
		if !seen.add(opt, reviewOptions) {
			return r, givenTwice("SRS.REVIEW", opt)
		}
		switch opt {
		case "AT":
			r.At, err = c.int("AT", 1, maxMS)
		case "ID":
			id, err = c.idBytes("ID")
		case "SUBJECT":
			label = 0
		case "TOPIC":
			label = 1
		case "STAGE":
			label = 2
		case "DURATION":
			r.DurationMS, err = c.int("DURATION", 0, MaxDurationMS)
		case "MS", "ATTEMPTS":
			err = answerOrder(opt, answered)
		default:
			err = c.unknownOption(opt)
		}
		if label >= 0 {
			labels[label], err = c.labelBytes(labelNames[label])
			given[label] = true
		}
		if err != nil {
			return r, err
		}
	}
	dst := [6]*string{&r.Player, &r.Question, &r.ID}
	src := [6][]byte{player, question, id}
	n := 3
	if given != [3]bool{} {
		kept := new([3]string)
		for i, p := range [3]**string{&r.Subject, &r.Topic, &r.Stage} {
			if given[i] {
				*p = &kept[i]
				dst[n], src[n] = &kept[i], labels[i]
				n++
			}
		}
	}
	own(dst[:n], src[:n])
	return r, nil
}

var labelNames = [3]string{"SUBJECT", "TOPIC", "STAGE"}

// reviewOptions are the options of SRS.REVIEW, each allowed once. MS and
// ATTEMPTS belong to the CORRECT form and are marked given by it.
var reviewOptions = []string{"AT", "ID", "SUBJECT", "TOPIC", "STAGE", "DURATION", "MS", "ATTEMPTS"}

// answerOrder is the error for MS or ATTEMPTS met among the options, away
// from the CORRECT 0|1 MS n [ATTEMPTS n] they belong to.
func answerOrder(opt string, answered bool) error {
	if !answered {
		return argErr("SRS.REVIEW: %s is only allowed in CORRECT 0|1 MS n [ATTEMPTS n], in place of the grade", opt)
	}
	return argErr("SRS.REVIEW: %s must directly follow CORRECT 0|1 MS n", opt)
}

// answer parses memora's "CORRECT 0|1 MS n [ATTEMPTS n]" into a grade; given
// reports whether ATTEMPTS was.
func (c *cursor) answer() (g srs.Grade, ms int64, given bool, err error) {
	correct, err := c.int("CORRECT", 0, 1)
	if err != nil {
		return 0, 0, false, err
	}
	if kw, err := c.raw("MS"); err != nil || !strings.EqualFold(view(kw), "MS") {
		return 0, 0, false, argErr("SRS.REVIEW: CORRECT must be followed by MS n")
	}
	if ms, err = c.int("MS", 0, MaxDurationMS); err != nil {
		return 0, 0, false, err
	}
	attempts := int64(1)
	if c.more() && strings.EqualFold(view(c.args[c.i]), "ATTEMPTS") {
		c.i++
		given = true
		if attempts, err = c.int("ATTEMPTS", 1, 1000); err != nil {
			return 0, 0, false, err
		}
	}
	return fsrs.GradeFromAnswer(correct == 1, ms, int(attempts)), ms, given, nil
}

// ParseDue parses SRS.DUE player season [SUBJECT s] [LIMIT n] [AT ms]. The
// request's strings share one allocation (the season is interned). Errors
// are *ArgError.
func ParseDue(args [][]byte) (engine.DueRequest, error) {
	c := newCursor(args)
	r := engine.DueRequest{Limit: DefaultDueLimit}
	player, err := c.idBytes("player")
	if err != nil {
		return r, err
	}
	if r.Season, err = c.season(); err != nil {
		return r, err
	}
	var subject []byte
	var seen optionSet
	for c.more() {
		opt := c.keyword()
		if !seen.add(opt, dueOptions) {
			return r, givenTwice("SRS.DUE", opt)
		}
		switch opt {
		case "SUBJECT":
			subject, err = c.labelBytes("SUBJECT")
		case "LIMIT":
			var n int64
			n, err = c.int("LIMIT", 1, MaxDueLimit)
			r.Limit = int(n)
		case "AT":
			r.At, err = c.int("AT", 1, maxMS)
		default:
			err = c.unknownOption(opt)
		}
		if err != nil {
			return r, err
		}
	}
	own([]*string{&r.Player, &r.Subject}, [][]byte{player, subject})
	return r, nil
}

// dueOptions are the options of SRS.DUE, each allowed once.
var dueOptions = []string{"SUBJECT", "LIMIT", "AT"}

// CardRequest is SRS.CARD player season question.
type CardRequest struct{ Player, Season, Question string }

// ParseCard parses SRS.CARD player season question.
func ParseCard(args [][]byte) (CardRequest, error) {
	c := newCursor(args)
	var r CardRequest
	var err error
	if r.Player, err = c.id("player"); err != nil {
		return r, err
	}
	if r.Season, err = c.season(); err != nil {
		return r, err
	}
	if r.Question, err = c.id("question"); err != nil {
		return r, err
	}
	if c.more() {
		return r, argErr("SRS.CARD: unexpected argument %q", clip(string(args[c.i])))
	}
	return r, nil
}

// SeasonRequest is one SRS.SEASON subcommand.
type SeasonRequest struct {
	Verb       string // CREATE ACTIVATE DEACTIVATE SET INFO LIST
	Name       string
	Start, End time.Time
	Change     engine.SeasonChange
}

// Admin reports whether the subcommand changes state (admin role).
func (r SeasonRequest) Admin() bool { return r.Verb != "INFO" && r.Verb != "LIST" }

// ParseSeason parses SRS.SEASON CREATE name [START yyyy-mm-dd] [END yyyy-mm-dd]
// | ACTIVATE name | DEACTIVATE name | SET name options… | INFO name | LIST.
func ParseSeason(args [][]byte) (SeasonRequest, error) {
	c := newCursor(args)
	var r SeasonRequest
	verb, err := c.next("subcommand")
	if err != nil {
		return r, err
	}
	r.Verb = strings.ToUpper(verb)
	switch r.Verb {
	case "LIST":
	case "CREATE", "ACTIVATE", "DEACTIVATE", "SET", "INFO":
		if r.Name, err = c.season(); err != nil {
			return r, err
		}
	default:
		return r, argErr("SRS.SEASON: unknown subcommand %q (CREATE, ACTIVATE, DEACTIVATE, SET, INFO, LIST)", clip(verb))
	}
	switch r.Verb {
	case "CREATE":
		err = c.seasonDates(&r)
	case "SET":
		if !c.more() {
			return r, argErr("SRS.SEASON SET: nothing to set")
		}
		err = c.seasonChange(&r.Change)
	}
	if err == nil && c.more() {
		err = argErr("SRS.SEASON %s: unexpected argument %q", r.Verb, clip(string(args[c.i])))
	}
	return r, err
}

// Season dates: MariaDB's DATE holds 1000-01-01 to 9999-12-31, the engine
// takes the zero time.Time (0001-01-01) for a date not given, and reviews
// are timed in unix milliseconds from 1970 on.
var (
	minSeasonDate = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxSeasonDate = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

var dateOptions = []string{"START", "END"}

func (c *cursor) seasonDates(r *SeasonRequest) error {
	var seen optionSet
	for c.more() {
		opt := c.keyword()
		if !seen.add(opt, dateOptions) {
			return givenTwice("SRS.SEASON CREATE", opt)
		}
		var dst *time.Time
		switch opt {
		case "START":
			dst = &r.Start
		case "END":
			dst = &r.End
		default:
			return c.unknownOption(opt)
		}
		s, err := c.next(opt)
		if err != nil {
			return err
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return argErr("SRS.SEASON CREATE: %s must be a date yyyy-mm-dd, got %q", opt, clip(s))
		}
		if d.Before(minSeasonDate) || d.After(maxSeasonDate) {
			return argErr("SRS.SEASON CREATE: %s must be a date from %s to %s, got %q",
				opt, minSeasonDate.Format(time.DateOnly), maxSeasonDate.Format(time.DateOnly), clip(s))
		}
		*dst = d
	}
	return nil
}

// maxParams bounds PARAMS: FSRS accepts 17, 19 or 21 weights.
const maxParams = 21

// setOptions are the options of SRS.SEASON SET, each allowed once.
var setOptions = []string{"RETENTION", "PARAMS", "LEARNING", "RELEARNING", "MAXIVL", "FUZZ", "SHORTTERM", "CACHE", "AUTOARCHIVE", "CONFIRM", "TIMEZONE", "DAYSTART"}

func (c *cursor) seasonChange(ch *engine.SeasonChange) error {
	var seen optionSet
	for c.more() {
		var err error
		opt := c.keyword()
		if !seen.add(opt, setOptions) {
			return givenTwice("SRS.SEASON SET", opt)
		}
		switch opt {
		case "RETENTION":
			var f float64
			f, err = c.float("RETENTION", 0.7, 0.99)
			ch.Retention = &f
		case "PARAMS":
			if c.more() && strings.EqualFold(string(c.args[c.i]), "FROM") {
				ch.ParamsFromJob, err = c.paramsFromJob()
			} else {
				ch.Params, err = c.params()
			}
		case "LEARNING":
			ch.LearningSteps, err = c.steps("LEARNING")
		case "RELEARNING":
			ch.RelearningSteps, err = c.steps("RELEARNING")
		case "MAXIVL":
			var n int64
			n, err = c.int("MAXIVL", 1, 36500)
			v := int(n)
			ch.MaxInterval = &v
		case "FUZZ":
			ch.Fuzz, err = c.flag("FUZZ")
		case "SHORTTERM":
			ch.ShortTerm, err = c.flag("SHORTTERM")
		case "TIMEZONE":
			ch.Timezone, err = c.timezone()
		case "DAYSTART":
			ch.DayStart, err = c.dayStart()
		case "CACHE":
			ch.Cache, err = c.flag("CACHE")
		case "AUTOARCHIVE":
			ch.AutoArchive, err = c.flag("AUTOARCHIVE")
		case "CONFIRM":
			ch.Confirm = true
		default:
			err = c.unknownOption(opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *cursor) flag(name string) (*bool, error) {
	b, err := c.onOff(name)
	return &b, err
}

// timezone reads an IANA time zone name (TIMEZONE Europe/Berlin).
func (c *cursor) timezone() (*string, error) {
	s, err := c.next("TIMEZONE")
	if err != nil {
		return nil, err
	}
	if _, err := fsrs.LoadTimezone(s); err != nil || s == "" {
		return nil, argErr("SRS.SEASON SET: TIMEZONE must be an IANA time zone such as UTC or Europe/Berlin, got %q", clip(s))
	}
	return &s, nil
}

// dayStart reads the hour a new day starts, 0–23, or LEGACY (whole 24-hour
// periods, the rule of seasons made before day boundaries).
func (c *cursor) dayStart() (*int, error) {
	s, err := c.next("DAYSTART")
	if err != nil {
		return nil, err
	}
	h := srs.DayStartLegacy
	if !strings.EqualFold(s, "LEGACY") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 23 {
			return nil, argErr("SRS.SEASON SET: DAYSTART must be an hour 0–23 or LEGACY, got %q", clip(s))
		}
		h = n
	}
	return &h, nil
}

// paramsFromJob reads FROM JOB id.
func (c *cursor) paramsFromJob() (string, error) {
	c.i++ // FROM
	if !c.more() || !strings.EqualFold(string(c.args[c.i]), "JOB") {
		return "", argErr("SRS.SEASON SET: PARAMS FROM must be followed by JOB id")
	}
	c.i++
	return c.id("PARAMS FROM JOB id")
}

// params reads up to 21 numbers until the next option keyword.
func (c *cursor) params() ([]float64, error) {
	var w []float64
	for c.more() && len(w) < maxParams {
		if _, err := strconv.ParseFloat(string(c.args[c.i]), 64); err != nil {
			break // the next option
		}
		f, err := c.float("PARAMS", -1e6, 1e6)
		if err != nil {
			return nil, err
		}
		w = append(w, f)
	}
	if n := len(w); n != 17 && n != 19 && n != 21 {
		return nil, argErr("SRS.SEASON SET: PARAMS takes 17, 19 or 21 weights, got %d", n)
	}
	return w, nil
}

// Learning and relearning steps, as the scheduler takes them: at least a
// second, shorter than a day.
const (
	minStep = time.Second
	maxStep = 24 * time.Hour
)

// steps reads "1,10" (minutes) or NONE. A step must be finite and, as a
// duration, in [1s, 24h): NaN, Inf, negative and tiny values are refused
// here, before they turn into a nonsense time.Duration.
func (c *cursor) steps(name string) (*[]time.Duration, error) {
	s, err := c.next(name)
	if err != nil {
		return nil, err
	}
	steps := []time.Duration{}
	if strings.EqualFold(s, "NONE") {
		return &steps, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > 10 {
		return nil, argErr("SRS.SEASON SET: %s takes at most 10 steps", name)
	}
	for _, p := range parts {
		m, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		// !(in range) also catches NaN; the range check comes first so
		// that the conversion cannot overflow.
		ok := err == nil && m > 0 && m < maxStep.Minutes()
		d := time.Duration(0)
		if ok {
			d = time.Duration(math.Round(m * float64(time.Minute)))
		}
		if !ok || d < minStep || d >= maxStep {
			return nil, argErr("SRS.SEASON SET: %s must be minutes from 1/60 (1 second) to under 1440 (1 day) separated by commas, or NONE; got %q", name, clip(s))
		}
		steps = append(steps, d)
	}
	return &steps, nil
}

// ArchiveRequest is SRS.ARCHIVE season CONFIRM | INFO season | PURGE season CONFIRM.
type ArchiveRequest struct {
	Verb   string // ARCHIVE, INFO or PURGE
	Season string
}

// ParseArchive parses SRS.ARCHIVE. Without CONFIRM the destructive forms
// return an error that explains what they would do.
func ParseArchive(args [][]byte) (ArchiveRequest, error) {
	c := newCursor(args)
	r := ArchiveRequest{Verb: "ARCHIVE"}
	first, err := c.next("season")
	if err != nil {
		return r, err
	}
	if v := strings.ToUpper(first); v == "INFO" || v == "PURGE" {
		r.Verb = v
	} else {
		c.i-- // the first argument is the season
	}
	if r.Season, err = c.season(); err != nil {
		return r, err
	}
	confirmed := c.more() && strings.EqualFold(string(c.args[c.i]), "CONFIRM")
	if confirmed {
		c.i++
	}
	if c.more() {
		return r, argErr("SRS.ARCHIVE: unexpected argument %q", clip(string(args[c.i])))
	}
	switch {
	case r.Verb == "ARCHIVE" && !confirmed:
		return r, argErr("SRS.ARCHIVE %s moves the season's cards and review log out of the live tables into archive tables (kept %s, then purgeable only by SRS.ARCHIVE PURGE), deletes its cache keys and makes it refuse reviews and due reads for good; repeat with CONFIRM", r.Season, "3 years by default")
	case r.Verb == "PURGE" && !confirmed:
		return r, argErr("SRS.ARCHIVE PURGE %s drops the season's archive tables for good; only an archive past retention can be purged; repeat with CONFIRM", r.Season)
	case r.Verb == "INFO" && confirmed:
		return r, argErr("SRS.ARCHIVE INFO takes no CONFIRM")
	}
	return r, nil
}

// ReconcileRequest is SRS.RECONCILE [season] [SAMPLE n].
type ReconcileRequest struct {
	Season string // "" for every active season
	Sample int
}

// Reconcile sample bounds.
const (
	MinSample     = 100
	MaxSample     = 100000
	DefaultSample = 10000
)

var reconcileOptions = []string{"SAMPLE"}

// ParseReconcile parses SRS.RECONCILE [season] [SAMPLE n].
func ParseReconcile(args [][]byte) (ReconcileRequest, error) {
	c := newCursor(args)
	r := ReconcileRequest{Sample: DefaultSample}
	var err error
	if c.more() && !strings.EqualFold(string(c.args[c.i]), "SAMPLE") {
		if r.Season, err = c.season(); err != nil {
			return r, err
		}
	}
	var seen optionSet
	for c.more() {
		opt := c.keyword()
		if !seen.add(opt, reconcileOptions) {
			return r, givenTwice("SRS.RECONCILE", opt)
		}
		switch opt {
		case "SAMPLE":
			var n int64
			n, err = c.int("SAMPLE", MinSample, MaxSample)
			r.Sample = int(n)
		default:
			err = c.unknownOption(opt)
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// MaxMinReviews bounds SRS.OPTIMIZE's MINREVIEWS.
const MaxMinReviews = 1_000_000_000

var optimizeOptions = []string{"SINCE", "MINREVIEWS"}

// ParseOptimize parses SRS.OPTIMIZE season [SINCE yyyy-mm-dd] [MINREVIEWS n].
func ParseOptimize(args [][]byte) (engine.OptimizeRequest, error) {
	c := newCursor(args)
	var r engine.OptimizeRequest
	var err error
	if r.Season, err = c.season(); err != nil {
		return r, err
	}
	var seen optionSet
	for c.more() {
		opt := c.keyword()
		if !seen.add(opt, optimizeOptions) {
			return r, givenTwice("SRS.OPTIMIZE", opt)
		}
		switch opt {
		case "SINCE":
			var s string
			if s, err = c.next("SINCE"); err != nil {
				return r, err
			}
			d, perr := time.Parse(time.DateOnly, s)
			if perr != nil || d.Before(minSeasonDate) || d.After(maxSeasonDate) {
				return r, argErr("SRS.OPTIMIZE: SINCE must be a date yyyy-mm-dd from %s to %s, got %q",
					minSeasonDate.Format(time.DateOnly), maxSeasonDate.Format(time.DateOnly), clip(s))
			}
			r.Since = d
		case "MINREVIEWS":
			var n int64
			n, err = c.int("MINREVIEWS", 1, MaxMinReviews)
			r.MinReviews = int(n)
		default:
			err = c.unknownOption(opt)
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}
