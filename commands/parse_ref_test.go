package commands

// The parsers as they were before the zero-allocation rewrite, kept to check
// that the new ones return the same requests and the same errors.
//
// Changed on purpose since (issue 12, "bad input"): an option given twice is
// refused ("option X given twice") where the last one used to win, and MS or
// ATTEMPTS among the options is refused with its own message instead of
// "unknown option". refParseReview and refParseDue hold those rules with a map, written
// independently of the parsers' optionSet. (C1 control characters are
// refused by checkText, which both sides share.)

import (
	"strconv"
	"strings"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// refCursor walks a command's arguments (args[0] is the command name).
type refCursor struct {
	cmd  string
	args [][]byte
	i    int
}

func refNewCursor(args [][]byte) *refCursor {
	return &refCursor{cmd: strings.ToUpper(string(args[0])), args: args, i: 1}
}

func (c *refCursor) more() bool { return c.i < len(c.args) }

// next returns the next argument, named for the error when it is missing.
func (c *refCursor) next(name string) (string, error) {
	if c.i >= len(c.args) {
		return "", argErr("%s: missing %s", c.cmd, name)
	}
	s := string(c.args[c.i])
	c.i++
	return s, nil
}

// id reads a required identifier (player, question, review id).
func (c *refCursor) id(name string) (string, error) {
	s, err := c.next(name)
	if err != nil {
		return "", err
	}
	return s, checkText(name, s, MaxIDLen)
}

// label reads a subject, topic or stage.
func (c *refCursor) label(name string) (string, error) {
	s, err := c.next(name)
	if err != nil {
		return "", err
	}
	if s == "" {
		return s, nil
	}
	return s, checkText(name, s, MaxLabelLen)
}

// int reads an integer in [lo, hi].
func (c *refCursor) int(name string, lo, hi int64) (int64, error) {
	s, err := c.next(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, argErr("%s: %s must be an integer in [%d, %d], got %q", c.cmd, name, lo, hi, clip(s))
	}
	return n, nil
}

// float reads a finite number in [lo, hi].
func (c *refCursor) float(name string, lo, hi float64) (float64, error) {
	s, err := c.next(name)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < lo || f > hi || f != f {
		return 0, argErr("%s: %s must be a number in [%g, %g], got %q", c.cmd, name, lo, hi, clip(s))
	}
	return f, nil
}

// onOff reads ON or OFF.
func (c *refCursor) onOff(name string) (bool, error) {
	s, err := c.next(name)
	if err != nil {
		return false, err
	}
	switch strings.ToUpper(s) {
	case "ON":
		return true, nil
	case "OFF":
		return false, nil
	}
	return false, argErr("%s: %s must be ON or OFF, got %q", c.cmd, name, clip(s))
}

// keyword reads the next option name, upper-cased.
func (c *refCursor) keyword() string {
	s := strings.ToUpper(string(c.args[c.i]))
	c.i++
	return s
}

func (c *refCursor) unknownOption(opt string) error {
	return argErr("%s: unknown option %q", c.cmd, clip(opt))
}

// season reads and validates a season name (invariant 6: before any SQL).
func (c *refCursor) season() (string, error) {
	s, err := c.next("season")
	if err != nil {
		return "", err
	}
	if !srs.ValidSeasonName(s) {
		return "", argErr("invalid season name %q: must match ^SEASON-\\d{4}(-[A-Z0-9_]+)?$ and be at most %d bytes", clip(s), srs.MaxSeasonNameLen)
	}
	return s, nil
}

// refParseReview parses SRS.REVIEW player season question grade|CORRECT 0|1 MS n
// [ATTEMPTS n] [AT ms] [ID review_id] [SUBJECT s] [TOPIC t] [STAGE st] [DURATION ms].
func refParseReview(args [][]byte) (engine.ReviewRequest, error) {
	c := refNewCursor(args)
	var r engine.ReviewRequest
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
	g, err := c.next("grade")
	if err != nil {
		return r, err
	}
	given := map[string]bool{}
	answered := strings.EqualFold(g, "CORRECT")
	if answered {
		var attempts bool
		if r.Grade, r.DurationMS, attempts, err = c.answer(); err != nil {
			return r, err
		}
		given["MS"], given["ATTEMPTS"] = true, attempts
	} else {
		n, err := strconv.Atoi(g)
		if err != nil || !srs.Grade(n).Valid() {
			return r, argErr("SRS.REVIEW: grade must be 1 (again), 2 (hard), 3 (good), 4 (easy) or CORRECT 0|1 MS n, got %q", clip(g))
		}
		r.Grade = srs.Grade(n)
	}
	for c.more() {
		opt := c.keyword()
		if given[opt] {
			return r, refGivenTwice("SRS.REVIEW", opt)
		}
		given[opt] = true
		switch opt {
		case "AT":
			r.At, err = c.int("AT", 1, maxMS)
		case "ID":
			r.ID, err = c.id("ID")
		case "SUBJECT":
			r.Subject, err = c.optLabel("SUBJECT")
		case "TOPIC":
			r.Topic, err = c.optLabel("TOPIC")
		case "STAGE":
			r.Stage, err = c.optLabel("STAGE")
		case "DURATION":
			r.DurationMS, err = c.int("DURATION", 0, MaxDurationMS)
		case "MS", "ATTEMPTS":
			if answered {
				err = argErr("SRS.REVIEW: %s must directly follow CORRECT 0|1 MS n", opt)
			} else {
				err = argErr("SRS.REVIEW: %s is only allowed in CORRECT 0|1 MS n [ATTEMPTS n], in place of the grade", opt)
			}
		default:
			err = c.unknownOption(opt)
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// answer parses memora's "CORRECT 0|1 MS n [ATTEMPTS n]" into a grade and
// whether ATTEMPTS was given.
func (c *refCursor) answer() (srs.Grade, int64, bool, error) {
	correct, err := c.int("CORRECT", 0, 1)
	if err != nil {
		return 0, 0, false, err
	}
	if kw, err := c.next("MS"); err != nil || !strings.EqualFold(kw, "MS") {
		return 0, 0, false, argErr("SRS.REVIEW: CORRECT must be followed by MS n")
	}
	ms, err := c.int("MS", 0, MaxDurationMS)
	if err != nil {
		return 0, 0, false, err
	}
	attempts, given := int64(1), false
	if c.more() && strings.EqualFold(string(c.args[c.i]), "ATTEMPTS") {
		c.i++
		given = true
		if attempts, err = c.int("ATTEMPTS", 1, 1000); err != nil {
			return 0, 0, false, err
		}
	}
	return fsrs.GradeFromAnswer(correct == 1, ms, int(attempts)), ms, given, nil
}

func refGivenTwice(cmd, opt string) error {
	return argErr("%s: option %s given twice", cmd, opt)
}

func (c *refCursor) optLabel(name string) (*string, error) {
	s, err := c.label(name)
	return &s, err
}

// refParseDue parses SRS.DUE player season [SUBJECT s] [LIMIT n] [AT ms].
func refParseDue(args [][]byte) (engine.DueRequest, error) {
	c := refNewCursor(args)
	r := engine.DueRequest{Limit: DefaultDueLimit}
	var err error
	if r.Player, err = c.id("player"); err != nil {
		return r, err
	}
	if r.Season, err = c.season(); err != nil {
		return r, err
	}
	given := map[string]bool{}
	for c.more() {
		opt := c.keyword()
		if given[opt] {
			return r, refGivenTwice("SRS.DUE", opt)
		}
		given[opt] = true
		switch opt {
		case "SUBJECT":
			r.Subject, err = c.label("SUBJECT")
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
	return r, nil
}

// CardRequest is SRS.CARD player season question.

// refParseCard parses SRS.CARD player season question.
func refParseCard(args [][]byte) (CardRequest, error) {
	c := refNewCursor(args)
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
