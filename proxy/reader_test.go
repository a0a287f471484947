package proxy

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// parsed is a request copied out of the reader.
type parsed struct {
	args    []string
	refused string
}

// String shows the arguments joined by "|", a refused request as "!error".
func (p parsed) String() string {
	if p.refused != "" {
		return "!" + p.refused
	}
	return strings.Join(p.args, "|")
}

// parseAll reads every request of input, delivered chunk bytes at a time.
func parseAll(input string, chunk, maxArgs, maxBulk int) ([]parsed, error) {
	p := newReader(chunkReader{strings.NewReader(input), chunk}, maxArgs, maxBulk)
	var out []parsed
	for {
		req, ok, err := p.next()
		switch {
		case err != nil:
			return out, err
		case ok:
			r := parsed{refused: req.refused}
			for _, a := range req.args {
				r.args = append(r.args, string(a))
			}
			out = append(out, r)
		default:
			if err := p.fill(); err != nil {
				if errors.Is(err, io.EOF) {
					return out, nil
				}
				return out, err
			}
		}
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 3000)
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"one", resp("GET", "k"), []string{"GET|k"}, ""},
		{"pipeline", resp("A") + resp("B", "") + resp("C", "x\r\ny"), []string{"A", "B|", "C|x\r\ny"}, ""},
		{"empty multibulk ignored", "*0\r\n*-1\r\n" + resp("A"), []string{"A"}, ""},
		{"inline", "PING\r\nECHO  a\tb\n\r\n", []string{"PING", "ECHO|a|b"}, ""},
		{"inline quotes", `SET "a b" 'c\'d' "\x41\x4a\n\z"` + "\r\n", []string{"SET|a b|c'd|AJ\nz"}, ""},
		{"inline empty quotes", `ECHO ""` + "\r\n", []string{"ECHO|"}, ""},
		{"large argument", resp("SET", big), []string{"SET|" + big}, ""},
		{"too many args", resp("A", "1", "2", "3", "4", "5", "6", "7", "8") + resp("B"),
			[]string{"!ERR too many arguments: more than MaxArgs 8", "B"}, ""},
		{"too big", resp("A", strings.Repeat("y", 5000), "z") + resp("B"),
			[]string{"!ERR argument of 5000 bytes is larger than MaxBulk 4096", "B"}, ""},
		{"too big inline arg", "ECHO " + strings.Repeat("i", 4097) + "\r\nB\r\n",
			[]string{"!ERR argument of 4097 bytes is larger than MaxBulk 4096", "B"}, ""},
		{"too many inline args", "a 1 2 3 4 5 6 7 8\r\nB\r\n", []string{"!ERR too many arguments: more than MaxArgs 8", "B"}, ""},
		{"partial at EOF", resp("A") + "*2\r\n$1\r\nx", []string{"A"}, ""},
		{"bad count", "*1x\r\n", nil, "invalid multibulk length"},
		{"huge count", "*99999999999\r\n", nil, "invalid multibulk length"},
		{"huge bulk", "*1\r\n$9223372036854775807\r\n", nil, "invalid bulk length"},
		{"bulk beyond Redis", "*1\r\n$536870913\r\n", nil, "invalid bulk length"},
		{"negative bulk", "*1\r\n$-1\r\n", nil, "invalid bulk length"},
		{"not a bulk", "*1\r\n:1\r\n", nil, "expected '$', got ':'"},
		{"no CR", "*1\n", nil, "line not terminated by CRLF"},
		{"bulk without CRLF", "*1\r\n$1\r\nabc", nil, "bulk string not terminated by CRLF"},
		{"unbalanced", "ECHO 'a\r\n", nil, "unbalanced quotes in request"},
		{"quote glued", `ECHO "a"b` + "\r\n", nil, "unbalanced quotes in request"},
		{"inline too long", strings.Repeat("a", maxLine+10), nil, "too big inline request"},
		{"header too long", "*" + strings.Repeat("1", maxLine+10), nil, "too big mbulk count string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, chunk := range []int{1, 7, 1 << 20} {
				reqs, err := parseAll(tc.in, chunk, 8, 4096)
				var got []string
				for _, r := range reqs {
					got = append(got, r.String())
				}
				if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Errorf("chunk %d: requests %.300q, want %.300q", chunk, got, tc.want)
				}
				var pe protocolError
				switch {
				case tc.err == "" && err != nil:
					t.Errorf("chunk %d: %v", chunk, err)
				case tc.err != "" && (!errors.As(err, &pe) || string(pe) != tc.err):
					t.Errorf("chunk %d: error %v, want %q", chunk, err, tc.err)
				}
			}
		})
	}
}

// TestReaderReleasesBuffer checks that a connection gives back the buffer a
// large argument needed.
func TestReaderReleasesBuffer(t *testing.T) {
	t.Parallel()
	in := resp("SET", strings.Repeat("v", 1<<20)) + resp("PING")
	p := newReader(strings.NewReader(in), 8, 2<<20)
	var got []string
	for len(got) < 2 {
		req, ok, err := p.next()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, string(req.args[0]))
			continue
		}
		if err := p.fill(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.fill(); !errors.Is(err, io.EOF) {
		t.Fatalf("fill = %v, want EOF", err)
	}
	if len(p.buf) != minBuf {
		t.Fatalf("buffer of %d bytes kept, want %d", len(p.buf), minBuf)
	}
}

// FuzzServe feeds arbitrary bytes to a connection: the server must neither
// panic nor hang, and must close the connection once the input ends.
func FuzzServe(f *testing.F) {
	for _, seed := range []string{
		resp("PING"),
		resp("HELLO", "3") + resp("TEST.TYPES") + resp("CLIENT", "LIST"),
		resp("MULTI") + resp("ECHO", "x") + resp("TEST.PANIC") + resp("EXEC"),
		resp("MULTI") + resp("NOSUCH") + resp("EXEC") + resp("DISCARD"),
		resp("AUTH", "a", "b") + resp("RESET") + resp("QUIT"),
		"*1\r\n$9223372036854775807\r\nab\r\n",
		"*99999999999\r\n$1\r\na\r\n",
		"*3\r\n$1\r\na\r\n$2000\r\n",
		"ECHO \"a\\x4\" 'b\r\n",
		resp("TEST.BARRIER", "fail"),
		resp("COMMAND", "DOCS") + resp("INFO", "all"),
	} {
		f.Add([]byte(seed))
	}
	s := startServer(f, Config{MaxArgs: 8, MaxBulk: 1024, MaxMultiQueued: 4,
		Logger: slog.New(slog.DiscardHandler)})
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			nc.Write(data)
			nc.(*net.TCPConn).CloseWrite()
		}()
		if _, err := io.Copy(io.Discard, nc); err != nil && !strings.Contains(err.Error(), "reset by peer") {
			t.Fatalf("server did not close the connection: %v", err)
		}
	})
}

// FuzzReader checks that how the bytes are split into reads does not change
// what is parsed, and that no request breaks the limits.
func FuzzReader(f *testing.F) {
	for _, seed := range []string{
		resp("SET", "k", "v") + resp("GET", "k"),
		"PING\r\nECHO \"a b\" 'c'\r\n",
		resp("A", strings.Repeat("x", 100)) + "*0\r\n" + resp("B"),
		"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n*1\r\n$1\r\nd\r\n",
	} {
		f.Add([]byte(seed), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		const maxArgs, maxBulk = 8, 1024
		whole, werr := parseAll(string(data), len(data)+1, maxArgs, maxBulk)
		split, serr := parseAll(string(data), int(chunk)+1, maxArgs, maxBulk)
		if !reflect.DeepEqual(whole, split) || (werr == nil) != (serr == nil) {
			t.Fatalf("whole: %q, %v\nin chunks of %d: %q, %v", whole, werr, int(chunk)+1, split, serr)
		}
		for _, r := range whole {
			if len(r.args) > maxArgs || slices.ContainsFunc(r.args, func(a string) bool { return len(a) > maxBulk }) {
				t.Fatalf("request %.200q breaks the limits", r.args)
			}
		}
	})
}
