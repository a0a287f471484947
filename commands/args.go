package commands

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on argument sizes. They keep keys, rows and replies bounded.
const (
	MaxIDLen        = 128 // player, question and review ids, bytes
	MaxLabelLen     = 128 // subject, topic, stage, bytes
	MaxDurationMS   = 24 * 60 * 60 * 1000
	MaxDueLimit     = 50
	DefaultDueLimit = 20
)

// ArgError is a bad argument; it reaches the client as "ERR <message>".
type ArgError struct{ Msg string }

func (e *ArgError) Error() string { return e.Msg }

func argErr(format string, a ...any) error { return &ArgError{Msg: fmt.Sprintf(format, a...)} }

// cursor walks a command's arguments (args[0] is the command name).
type cursor struct {
	cmd  string
	args [][]byte
	i    int
}

func newCursor(args [][]byte) *cursor {
	return &cursor{cmd: strings.ToUpper(string(args[0])), args: args, i: 1}
}

func (c *cursor) more() bool { return c.i < len(c.args) }

// next returns the next argument, named for the error when it is missing.
func (c *cursor) next(name string) (string, error) {
	if c.i >= len(c.args) {
		return "", argErr("%s: missing %s", c.cmd, name)
	}
	s := string(c.args[c.i])
	c.i++
	return s, nil
}

// id reads a required identifier (player, question, review id).
func (c *cursor) id(name string) (string, error) {
	s, err := c.next(name)
	if err != nil {
		return "", err
	}
	return s, checkText(name, s, MaxIDLen)
}

// label reads a subject, topic or stage.
func (c *cursor) label(name string) (string, error) {
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
func (c *cursor) int(name string, lo, hi int64) (int64, error) {
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
func (c *cursor) float(name string, lo, hi float64) (float64, error) {
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
func (c *cursor) onOff(name string) (bool, error) {
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
func (c *cursor) keyword() string {
	s := strings.ToUpper(string(c.args[c.i]))
	c.i++
	return s
}

func (c *cursor) unknownOption(opt string) error {
	return argErr("%s: unknown option %q", c.cmd, clip(opt))
}

// checkText refuses empty, overlong, non-UTF-8 or control-character text.
func checkText(name, s string, max int) error {
	switch {
	case s == "":
		return argErr("%s must not be empty", name)
	case len(s) > max:
		return argErr("%s is longer than %d bytes", name, max)
	case !utf8.ValidString(s):
		return argErr("%s must be valid UTF-8", name)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return argErr("%s must not contain control characters", name)
		}
	}
	return nil
}

// clip shortens user text quoted back in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
