package commands

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
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

// cursor walks a command's arguments (args[0] is the command name). The
// arguments alias the connection's read buffer: the byte methods return them
// as they are, for values that are checked and dropped; what a request keeps
// is copied once, by own.
type cursor struct {
	args [][]byte
	i    int
}

func newCursor(args [][]byte) *cursor { return &cursor{args: args, i: 1} }

// cmd is the command name for error messages.
func (c *cursor) cmd() string { return strings.ToUpper(string(c.args[0])) }

func (c *cursor) more() bool { return c.i < len(c.args) }

// raw returns the next argument, named for the error when it is missing.
func (c *cursor) raw(name string) ([]byte, error) {
	if c.i >= len(c.args) {
		return nil, argErr("%s: missing %s", c.cmd(), name)
	}
	b := c.args[c.i]
	c.i++
	return b, nil
}

// next returns a copy of the next argument.
func (c *cursor) next(name string) (string, error) {
	b, err := c.raw(name)
	return string(b), err
}

// idBytes reads a required identifier (player, question, review id).
func (c *cursor) idBytes(name string) ([]byte, error) {
	b, err := c.raw(name)
	if err != nil {
		return nil, err
	}
	return b, checkText(name, view(b), MaxIDLen)
}

// id is idBytes copied.
func (c *cursor) id(name string) (string, error) {
	b, err := c.idBytes(name)
	return string(b), err
}

// labelBytes reads a subject, topic or stage, which may be empty.
func (c *cursor) labelBytes(name string) ([]byte, error) {
	b, err := c.raw(name)
	if err != nil || len(b) == 0 {
		return b, err
	}
	return b, checkText(name, view(b), MaxLabelLen)
}

// int reads an integer in [lo, hi].
func (c *cursor) int(name string, lo, hi int64) (int64, error) {
	b, err := c.raw(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(view(b), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, argErr("%s: %s must be an integer in [%d, %d], got %q", c.cmd(), name, lo, hi, clip(string(b)))
	}
	return n, nil
}

// float reads a finite number in [lo, hi].
func (c *cursor) float(name string, lo, hi float64) (float64, error) {
	b, err := c.raw(name)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(view(b), 64)
	if err != nil || f < lo || f > hi || f != f {
		return 0, argErr("%s: %s must be a number in [%g, %g], got %q", c.cmd(), name, lo, hi, clip(string(b)))
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
	return false, argErr("%s: %s must be ON or OFF, got %q", c.cmd(), name, clip(s))
}

// keyword reads the next option name, upper-cased. A known option comes back
// as a constant; only an unknown one is copied.
func (c *cursor) keyword() string {
	b := c.args[c.i]
	c.i++
	if kw, ok := knownKeyword(b); ok {
		return kw
	}
	return strings.ToUpper(string(b))
}

// knownKeyword upper-cases b in place of strings.ToUpper when it is ASCII
// and one of the option names; anything else (non-ASCII text may upper-case
// to a keyword, as "ſubject" does) takes strings.ToUpper.
func knownKeyword(b []byte) (string, bool) {
	var up [16]byte
	if len(b) > len(up) {
		return "", false
	}
	for i, ch := range b {
		switch {
		case ch >= 0x80:
			return "", false
		case 'a' <= ch && ch <= 'z':
			ch -= 'a' - 'A'
		}
		up[i] = ch
	}
	switch kw := up[:len(b)]; string(kw) {
	case "AT":
		return "AT", true
	case "ID":
		return "ID", true
	case "SUBJECT":
		return "SUBJECT", true
	case "TOPIC":
		return "TOPIC", true
	case "STAGE":
		return "STAGE", true
	case "DURATION":
		return "DURATION", true
	case "LIMIT":
		return "LIMIT", true
	case "SAMPLE":
		return "SAMPLE", true
	}
	return "", false
}

func (c *cursor) unknownOption(opt string) error {
	return argErr("%s: unknown option %q", c.cmd(), clip(opt))
}

// optionSet records which of a command's options were given, a bit per
// name in a fixed list, so that an option given twice is refused rather
// than the last one silently winning.
type optionSet uint32

// add marks opt given and reports false if it was given before. An opt not
// in names (an unknown option, refused elsewhere) is never a repeat.
func (s *optionSet) add(opt string, names []string) bool {
	for i, name := range names {
		if name == opt {
			bit := optionSet(1) << i
			if *s&bit != 0 {
				return false
			}
			*s |= bit
			return true
		}
	}
	return true
}

// givenTwice is the error for a repeated option; cmd is the command as the
// other messages of its parser name it ("SRS.REVIEW", "SRS.SEASON SET").
func givenTwice(cmd, opt string) error {
	return argErr("%s: option %s given twice", cmd, opt)
}

// view is b as a string without a copy, for a value that is checked and
// dropped before the handler returns (b aliases the read buffer).
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// own copies what a request keeps of its arguments into strings that share
// one allocation: *dst[i] becomes a copy of src[i].
func own(dst []*string, src [][]byte) {
	n := 0
	for _, b := range src {
		n += len(b)
	}
	buf := make([]byte, n)
	for i, b := range src {
		if len(b) == 0 {
			*dst[i] = ""
			continue
		}
		k := copy(buf, b)
		*dst[i] = view(buf[:k])
		buf = buf[k:]
	}
}

// checkText refuses empty, overlong, non-UTF-8 or control-character text
// (C0, DEL and C1: U+0000–U+001F, U+007F–U+009F).
func checkText(name, s string, max int) error {
	if s != "" && len(s) <= max && plainASCII(s) {
		return nil
	}
	switch {
	case s == "":
		return argErr("%s must not be empty", name)
	case len(s) > max:
		return argErr("%s is longer than %d bytes", name, max)
	case !utf8.ValidString(s):
		return argErr("%s must be valid UTF-8", name)
	}
	for _, r := range s {
		if r < 0x20 || 0x7f <= r && r <= 0x9f {
			return argErr("%s must not contain control characters", name)
		}
	}
	return nil
}

// plainASCII reports whether s is printable ASCII, which checkText accepts
// without decoding runes.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// clip shortens user text quoted back in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
