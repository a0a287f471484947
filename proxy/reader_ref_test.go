package proxy

// The request reader as it was before the bulk-header fast path, kept to
// check that the new one parses the same requests and fails the same way.

import (
	"bytes"
	"fmt"
	"io"
)

// refReader parses requests from a connection: RESP multibulk commands and
// inline commands. A command that breaks MaxArgs, MaxBulk or maxCommandBytes is
// drained without being buffered and returned as refused, so the connection
// stays usable.
type refReader struct {
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
}

func newRefReader(rd io.Reader, maxArgs, maxBulk int) *refReader {
	return &refReader{
		rd:      rd,
		maxArgs: maxArgs,
		maxBulk: maxBulk,
		maxCmd:  max(maxCommandBytes, 2*maxBulk),
		buf:     make([]byte, minBuf),
		bulk:    -1,
	}
}

// next returns the next complete request in the buffer. ok is false when more
// data is needed; err is a protocolError.
func (p *refReader) next() (req request, ok bool, err error) {
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
			p.left, p.start, p.marks, p.size = n, p.r, p.marks[:0], 0
			if n > p.maxArgs {
				p.refused = fmt.Sprintf("ERR too many arguments: more than MaxArgs %d", p.maxArgs)
			}
		}
		if p.bulk < 0 {
			line, ok, err := p.line("too big bulk count string")
			if !ok || err != nil {
				return request{}, false, err
			}
			if line[0] != '$' {
				return request{}, false, protocolError(fmt.Sprintf("expected '$', got '%c'", line[0]))
			}
			n, ok := parseLen(line[1:])
			if !ok || n < 0 || n > max(protoMaxBulk, p.maxBulk) {
				return request{}, false, protocolError("invalid bulk length")
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

// alloc returns n argument slots from the batch's backing store.
func (p *refReader) alloc(n int) [][]byte {
	if len(p.argv)+n > cap(p.argv) {
		p.argv = make([][]byte, 0, max(2*cap(p.argv), n, 64))
	}
	p.argv = p.argv[:len(p.argv)+n]
	return p.argv[len(p.argv)-n:]
}

// line returns the next CRLF-terminated line without its CRLF and consumes it.
func (p *refReader) line(tooBig string) ([]byte, bool, error) {
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
func (p *refReader) inline() (request, bool, error) {
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

// fill reads more data. It must only be called once the requests returned so
// far are no longer used: it moves the unparsed data to the front of the
// buffer, which the arguments of those requests alias.
func (p *refReader) fill() error {
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
		nb := make([]byte, max(need, 2*len(p.buf)))
		copy(nb, p.buf[keep:p.w])
		p.buf = nb
	case len(p.buf) > minBuf && need <= minBuf:
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
