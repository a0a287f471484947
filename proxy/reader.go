package proxy

import (
	"bytes"
	"fmt"
	"io"
)

// The proxy reads requests itself instead of using redcon's Reader, which has
// no limits at all: it buffers any announced bulk in full, spins on a huge
// multibulk count ("*99999999999\r\n") and panics with an index out of range on
// a bulk length near MaxInt64, taking the whole process down.

const (
	// maxLine bounds an inline command and a "*n" or "$n" header line, as in Redis.
	maxLine = 64 << 10
	// minBuf is the read buffer a connection starts with and returns to.
	minBuf = 16 << 10
	// maxCommandBytes bounds the arguments of one command together, so that
	// MaxArgs × MaxBulk (4 GiB by default) cannot be buffered.
	maxCommandBytes = 64 << 20
	// Beyond Redis's own limits a count is a protocol error rather than a
	// command to drain and refuse.
	protoMaxArgs = 1 << 20
	protoMaxBulk = 512 << 20
)

// protocolError is malformed RESP. The connection gets "-ERR Protocol error: …"
// and is closed, as Redis does: the stream cannot be resynchronised.
type protocolError string

func (e protocolError) Error() string { return "Protocol error: " + string(e) }

// request is one command read from a connection.
type request struct {
	// args are the arguments, args[0] the command name. They alias the read
	// buffer and are valid until the next fill.
	args [][]byte
	// refused, if set, is the error for a command that broke a limit; its
	// arguments were discarded as they arrived.
	refused string
}

// reader parses requests from a connection: RESP multibulk commands and
// inline commands. A command that breaks MaxArgs, MaxBulk or maxCommandBytes is
// drained without being buffered and returned as refused, so the connection
// stays usable.
type reader struct {
	rd      io.Reader
	maxArgs int
	maxBulk int
	maxCmd  int

	buf  []byte
	r, w int // buf[r:w] is not parsed yet

	// The multibulk command being read.
	left    int    // arguments still to read; 0 between commands
	start   int    // offset in buf of its first argument header
	marks   []int  // begin, end of each argument read, relative to start
	size    int    // bytes of its arguments so far
	bulk    int    // length of the argument whose header was read, or -1
	skip    int    // bytes of a refused command still to discard
	refused string // why the command is refused, if it is

	argv [][]byte // backing store for the args of the current batch

	// grow, if set, accounts a change of the buffer's size before it is
	// made; an error stops the growth and is returned by fill.
	grow func(delta int64) error

	// unauth is set while the connection has not authenticated: as in Redis,
	// a command may then have at most unauthMaxArgs arguments of at most
	// unauthMaxBulk bytes, else the connection is closed with a protocol
	// error — so clients that never authenticate cannot make the sidecar
	// buffer MaxArgs × MaxBulk each.
	unauth bool
}

// Redis's limits for a connection that has not authenticated.
const (
	unauthMaxArgs = 10
	unauthMaxBulk = 16 << 10
)

func newReader(rd io.Reader, maxArgs, maxBulk int) *reader {
	return &reader{
		rd:      rd,
		maxArgs: maxArgs,
		maxBulk: maxBulk,
		maxCmd:  max(maxCommandBytes, 2*maxBulk),
		buf:     make([]byte, minBuf),
		bulk:    -1,
	}
}

// partial reports whether part of a command has been read: the client owes
// the rest.
func (p *reader) partial() bool { return p.left > 0 || p.skip > 0 || p.w > p.r }

// next returns the next complete request in the buffer. ok is false when more
// data is needed; err is a protocolError.
func (p *reader) next() (req request, ok bool, err error) {
	for {
		if p.skip > 0 {
			n := min(p.skip, p.w-p.r)
			p.r += n
			p.skip -= n
			if p.skip > 0 {
				return request{}, false, nil
			}
			if p.left == 0 {
				req.refused, p.refused = p.refused, ""
				return req, true, nil
			}
		}
		if p.left == 0 {
			if p.r == p.w {
				return request{}, false, nil
			}
			if p.buf[p.r] != '*' {
				return p.inline()
			}
			line, ok, err := p.line("too big mbulk count string")
			if !ok || err != nil {
				return request{}, false, err
			}
			n, ok := parseLen(line[1:])
			if !ok || n > max(protoMaxArgs, p.maxArgs) {
				return request{}, false, protocolError("invalid multibulk length")
			}
			if n <= 0 {
				continue // Redis ignores "*0" and "*-1"
			}
			if p.unauth && n > unauthMaxArgs {
				return request{}, false, protocolError("unauthenticated multibulk length")
			}
			p.left, p.start, p.marks, p.size = n, p.r, p.marks[:0], 0
			if n > p.maxArgs {
				p.refused = fmt.Sprintf("ERR too many arguments: more than MaxArgs %d", p.maxArgs)
			}
		}
		if p.bulk < 0 {
			n, ok := p.bulkHeader()
			if !ok {
				line, ok, err := p.line("too big bulk count string")
				if !ok || err != nil {
					return request{}, false, err
				}
				if line[0] != '$' {
					return request{}, false, protocolError(fmt.Sprintf("expected '$', got '%c'", line[0]))
				}
				if n, ok = parseLen(line[1:]); !ok || n < 0 {
					return request{}, false, protocolError("invalid bulk length")
				}
			}
			if n > max(protoMaxBulk, p.maxBulk) {
				return request{}, false, protocolError("invalid bulk length")
			}
			if p.unauth && n > unauthMaxBulk {
				return request{}, false, protocolError("unauthenticated bulk length")
			}
			switch {
			case p.refused != "":
			case n > p.maxBulk:
				p.refused = fmt.Sprintf("ERR argument of %d bytes is larger than MaxBulk %d", n, p.maxBulk)
			case p.size+n > p.maxCmd:
				p.refused = fmt.Sprintf("ERR command is larger than %d bytes", p.maxCmd)
			}
			if p.refused != "" {
				p.left--
				p.skip = n + 2
				continue
			}
			p.bulk = n
		}
		if p.w-p.r < p.bulk+2 {
			return request{}, false, nil
		}
		end := p.r + p.bulk
		if p.buf[end] != '\r' || p.buf[end+1] != '\n' {
			return request{}, false, protocolError("bulk string not terminated by CRLF")
		}
		p.marks = append(p.marks, p.r-p.start, end-p.start)
		p.size += p.bulk
		p.r, p.bulk = end+2, -1
		p.left--
		if p.left == 0 {
			base := p.buf[p.start:]
			args := p.alloc(len(p.marks) / 2)
			for i := range args {
				args[i] = base[p.marks[2*i]:p.marks[2*i+1]:p.marks[2*i+1]]
			}
			return request{args: args}, true, nil
		}
	}
}

// bulkHeader consumes a well-formed bulk header, "$", 1 to 18 digits and
// CRLF, without searching for the line's end first. Anything else is left to
// line and parseLen, which report what is wrong with it.
func (p *reader) bulkHeader() (int, bool) {
	b := p.buf[p.r:p.w]
	if len(b) < 4 || b[0] != '$' {
		return 0, false
	}
	n := 0
	for i := 1; i < len(b) && i <= 19; i++ {
		c := b[i]
		if '0' <= c && c <= '9' {
			n = n*10 + int(c-'0')
			continue
		}
		if c == '\r' && i > 1 && i+1 < len(b) && b[i+1] == '\n' {
			p.r += i + 2
			return n, true
		}
		return 0, false
	}
	return 0, false
}

// alloc returns n argument slots from the batch's backing store.
func (p *reader) alloc(n int) [][]byte {
	if len(p.argv)+n > cap(p.argv) {
		p.argv = make([][]byte, 0, max(2*cap(p.argv), n, 64))
	}
	p.argv = p.argv[:len(p.argv)+n]
	return p.argv[len(p.argv)-n:]
}

// line returns the next CRLF-terminated line without its CRLF and consumes it.
func (p *reader) line(tooBig string) ([]byte, bool, error) {
	i := bytes.IndexByte(p.buf[p.r:p.w], '\n')
	if i < 0 {
		if p.w-p.r > maxLine {
			return nil, false, protocolError(tooBig)
		}
		return nil, false, nil
	}
	if i == 0 || p.buf[p.r+i-1] != '\r' {
		return nil, false, protocolError("line not terminated by CRLF")
	}
	line := p.buf[p.r : p.r+i-1]
	if len(line) == 0 {
		return nil, false, protocolError("empty header line")
	}
	p.r += i + 1
	return line, true, nil
}

// inline parses a command typed on one line, as with telnet or nc. Empty
// lines are skipped.
func (p *reader) inline() (request, bool, error) {
	for p.r < p.w && p.buf[p.r] != '*' {
		i := bytes.IndexByte(p.buf[p.r:p.w], '\n')
		if i < 0 {
			if p.w-p.r > maxLine {
				return request{}, false, protocolError("too big inline request")
			}
			return request{}, false, nil
		}
		line := bytes.TrimSuffix(p.buf[p.r:p.r+i], []byte{'\r'})
		p.r += i + 1
		args, err := splitInline(line)
		if err != nil {
			return request{}, false, err
		}
		if len(args) == 0 {
			continue
		}
		if len(args) > p.maxArgs {
			return request{refused: fmt.Sprintf("ERR too many arguments: more than MaxArgs %d", p.maxArgs)}, true, nil
		}
		for _, a := range args {
			if len(a) > p.maxBulk {
				return request{refused: fmt.Sprintf("ERR argument of %d bytes is larger than MaxBulk %d", len(a), p.maxBulk)}, true, nil
			}
		}
		return request{args: args}, true, nil
	}
	return p.next()
}

// splitInline splits a line into arguments like redis-cli and Redis do:
// white space separates, "double quotes" understand \n \r \t \b \a \\ \" \xHH,
// 'single quotes' only \'. A closing quote must be followed by a space.
func splitInline(line []byte) ([][]byte, error) {
	var args [][]byte
	for {
		for len(line) > 0 && isSpace(line[0]) {
			line = line[1:]
		}
		if len(line) == 0 {
			return args, nil
		}
		var arg []byte
		switch q := line[0]; q {
		case '"', '\'':
			i := 1
			for ; ; i++ {
				if i >= len(line) {
					return nil, protocolError("unbalanced quotes in request")
				}
				c := line[i]
				if c == q {
					break
				}
				if c == '\\' && i+1 < len(line) {
					i++
					c = line[i]
					switch {
					case q == '\'' && c != '\'':
						arg = append(arg, '\\')
					case q == '"' && c == 'x' && i+2 < len(line) && isHex(line[i+1]) && isHex(line[i+2]):
						c = unhex(line[i+1])<<4 | unhex(line[i+2])
						i += 2
					case q == '"':
						c = unescape(c)
					}
				}
				arg = append(arg, c)
			}
			line = line[i+1:]
			if len(line) > 0 && !isSpace(line[0]) {
				return nil, protocolError("unbalanced quotes in request")
			}
			if arg == nil {
				arg = []byte{}
			}
		default:
			i := 0
			for i < len(line) && !isSpace(line[i]) {
				i++
			}
			arg, line = bytes.Clone(line[:i]), line[i:]
		}
		args = append(args, arg)
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}

// parseLen parses a decimal length of at most 18 digits, possibly negative,
// so that adding to it cannot overflow.
func parseLen(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// resize accounts the buffer's new size with grow.
func (p *reader) resize(size int) error {
	if p.grow == nil {
		return nil
	}
	return p.grow(int64(size - len(p.buf)))
}

// fill reads more data. It must only be called once the requests returned so
// far are no longer used: it moves the unparsed data to the front of the
// buffer, which the arguments of those requests alias.
func (p *reader) fill() error {
	keep := p.r
	if p.left > 0 && p.refused == "" {
		keep = p.start // arguments of the command being read are still needed
	}
	live := p.w - keep
	need := live + minBuf/2
	if p.bulk >= 0 {
		need = max(need, p.w-keep+(p.bulk+2-(p.w-p.r)))
	}
	switch {
	case need > len(p.buf):
		size := max(need, 2*len(p.buf))
		if err := p.resize(size); err != nil {
			return err
		}
		nb := make([]byte, size)
		copy(nb, p.buf[keep:p.w])
		p.buf = nb
	case len(p.buf) > minBuf && need <= minBuf:
		_ = p.resize(minBuf)
		nb := make([]byte, minBuf) // give a big buffer back once it is drained
		copy(nb, p.buf[keep:p.w])
		p.buf = nb
	default:
		copy(p.buf, p.buf[keep:p.w])
	}
	p.r -= keep
	p.w -= keep
	p.start -= keep
	p.argv = p.argv[:0]
	n, err := p.rd.Read(p.buf[p.w:])
	p.w += n
	if n > 0 {
		return nil
	}
	return err
}
