package proxy

import (
	"math"
	"strconv"

	"github.com/tidwall/redcon"
)

// Reply writes one reply in the connection's protocol (RESP2 or RESP3). A
// handler must write exactly one value: a scalar, or an Array/Map header
// followed by its elements. A handler that writes none, more than one, or an
// unfinished aggregate has its output replaced by "ERR internal error" and
// logged, so the stream never goes out of step with the client.
//
// Values are appended to the connection's reply buffer, which is kept from
// one batch to the next, so writing a reply allocates only when the buffer
// grows. Simple strings and errors are encoded with redcon's Append
// functions (which copy a text with newlines to replace them), the rest here.
type Reply struct {
	b     []byte // replies not yet flushed
	proto int
	user  string
	c     *conn

	tops int // top-level values begun by the current handler
	open int // elements the open aggregates still expect

	read trackedRead // the cacheable read being answered, if tracked
}

// Proto returns 2 or 3, the protocol the client chose with HELLO.
func (w *Reply) Proto() int { return w.proto }

// User returns the name of the authenticated user ("default" without auth).
func (w *Reply) User() string { return w.user }

// Role returns the role of the authenticated user, for handlers whose
// subcommands need more than the command's Role (RoleAdmin without auth).
func (w *Reply) Role() Role { return w.c.role }

// BeforeFlush registers wait as a durability barrier of the connection. Before
// any reply of the current batch reaches the socket, every registered wait is
// called; if one returns an error the connection is closed without sending the
// buffered replies, so no client sees an acknowledgement that was not made
// durable.
func (w *Reply) BeforeFlush(wait func() error) { w.c.barriers = append(w.c.barriers, wait) }

// Error writes an error. msg must start with an upper-case prefix word such
// as "ERR bad LIMIT"; without one "ERR " is added. Newlines become spaces.
func (w *Reply) Error(msg string) {
	w.value(0)
	if !hasErrorPrefix(msg) {
		msg = "ERR " + msg
	}
	w.b = redcon.AppendError(w.b, msg)
}

// hasErrorPrefix reports whether msg starts with a word of capitals, digits
// and underscores, such as "ERR" or "SEASONARCHIVED".
func hasErrorPrefix(msg string) bool {
	i := 0
	for i < len(msg) && ('A' <= msg[i] && msg[i] <= 'Z' || i > 0 && (msg[i] == '_' || '0' <= msg[i] && msg[i] <= '9')) {
		i++
	}
	return i > 0 && (i == len(msg) || msg[i] == ' ')
}

// Simple writes a simple string such as OK. Newlines become spaces.
func (w *Reply) Simple(s string) {
	w.value(0)
	w.b = redcon.AppendString(w.b, s)
}

// Int writes an integer.
func (w *Reply) Int(n int64) {
	w.value(0)
	w.b = appendHeader(w.b, ':', n)
}

// Bulk writes a binary-safe string.
func (w *Reply) Bulk(b []byte) {
	w.value(0)
	w.b = appendHeader(w.b, '$', int64(len(b)))
	w.b = append(w.b, b...)
	w.b = append(w.b, '\r', '\n')
}

// String writes a binary-safe string.
func (w *Reply) String(s string) {
	w.value(0)
	w.b = appendHeader(w.b, '$', int64(len(s)))
	w.b = append(w.b, s...)
	w.b = append(w.b, '\r', '\n')
}

// Key is a bulk string encoded once, for the field names that handlers
// write in every reply. Make one with NewKey; the zero Key is the empty
// string.
type Key struct{ enc string }

// NewKey encodes s as a bulk string.
func NewKey(s string) Key { return Key{string(redcon.AppendBulkString(nil, s))} }

// Key writes k: the same bytes as String of the text k was made of.
func (w *Reply) Key(k Key) {
	w.value(0)
	if k.enc == "" {
		w.b = append(w.b, "$0\r\n\r\n"...)
		return
	}
	w.b = append(w.b, k.enc...)
}

// Null writes a null: "_" in RESP3, the null bulk string "$-1" in RESP2.
func (w *Reply) Null() {
	w.value(0)
	if w.proto == 3 {
		w.b = append(w.b, '_', '\r', '\n')
		return
	}
	w.b = redcon.AppendNull(w.b)
}

// Double writes a float as its shortest round-trip text ("inf", "-inf" and
// "nan" for the special values): a RESP3 double, or in RESP2 a bulk string
// of the same text.
func (w *Reply) Double(f float64) {
	w.value(0)
	if w.proto == 3 {
		w.b = append(w.b, ',')
		w.b = appendDouble(w.b, f)
		w.b = append(w.b, '\r', '\n')
		return
	}
	var tmp [32]byte
	text := appendDouble(tmp[:0], f)
	w.b = appendHeader(w.b, '$', int64(len(text)))
	w.b = append(w.b, text...)
	w.b = append(w.b, '\r', '\n')
}

// appendDouble appends f as its shortest round-trip text, or inf, -inf, nan.
func appendDouble(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	case math.IsNaN(f):
		return append(b, "nan"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// Bool writes a RESP3 boolean (#t or #f), in RESP2 the integer 1 or 0.
func (w *Reply) Bool(b bool) {
	w.value(0)
	switch {
	case w.proto == 3 && b:
		w.b = append(w.b, "#t\r\n"...)
	case w.proto == 3:
		w.b = append(w.b, "#f\r\n"...)
	case b:
		w.b = append(w.b, ":1\r\n"...)
	default:
		w.b = append(w.b, ":0\r\n"...)
	}
}

// Array writes the header of an array of n elements, which must follow.
func (w *Reply) Array(n int) {
	w.value(n)
	w.b = appendHeader(w.b, '*', int64(n))
}

// Map writes the header of a map of n field/value pairs, which must follow:
// a RESP3 map, in RESP2 a flat array of 2n elements.
func (w *Reply) Map(n int) {
	w.value(2 * n)
	if w.proto == 3 {
		w.b = appendHeader(w.b, '%', int64(n))
		return
	}
	w.b = appendHeader(w.b, '*', int64(2*n))
}

// verbatim writes text as a RESP3 verbatim string of format txt, as Redis
// does for INFO and CLIENT INFO; a bulk string in RESP2.
func (w *Reply) verbatim(text string) {
	w.value(0)
	if w.proto == 3 {
		w.b = append(w.b, '=')
		w.b = strconv.AppendInt(w.b, int64(len(text)+4), 10)
		w.b = append(w.b, "\r\ntxt:"...)
		w.b = append(w.b, text...)
		w.b = append(w.b, '\r', '\n')
		return
	}
	w.b = redcon.AppendBulkString(w.b, text)
}

// appendHeader appends a type byte, n and CRLF, as redcon does for ':', '$'
// and '*', with the lengths of most field names and values spelt without
// strconv.
func appendHeader(b []byte, c byte, n int64) []byte {
	switch {
	case 0 <= n && n < 10:
		return append(b, c, byte('0'+n), '\r', '\n')
	case 10 <= n && n < 100:
		return append(b, c, byte('0'+n/10), byte('0'+n%10), '\r', '\n')
	}
	b = append(b, c)
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\r', '\n')
}

// value counts one value written; n is the number of elements it opens.
func (w *Reply) value(n int) {
	if w.open > 0 {
		w.open--
	} else {
		w.tops++
	}
	w.open += n
}

// replyState is the accounting of one handler's reply.
type replyState struct{ tops, open int }

// begin starts the reply of a handler, returning the enclosing state (set when
// a handler runs inside another, as queued commands inside EXEC do).
func (w *Reply) begin() replyState {
	s := replyState{w.tops, w.open}
	w.tops, w.open = 0, 0
	return s
}

// complete reports whether the handler wrote exactly one whole value.
func (w *Reply) complete() bool { return w.tops == 1 && w.open == 0 }

// end restores the enclosing state and counts the finished reply in it.
func (w *Reply) end(outer replyState) {
	w.tops, w.open = outer.tops, outer.open
	if w.tops > 0 {
		w.value(0)
	}
}
