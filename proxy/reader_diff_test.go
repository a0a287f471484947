package proxy

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// refParseAll is parseAll with the reference reader of reader_ref_test.go.
func refParseAll(input string, chunk, maxArgs, maxBulk int) ([]parsed, error) {
	p := newRefReader(chunkReader{strings.NewReader(input), chunk}, maxArgs, maxBulk)
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

func sameRead(t *testing.T, input string, chunk int) {
	t.Helper()
	const maxArgs, maxBulk = 8, 1024
	got, gerr := parseAll(input, chunk, maxArgs, maxBulk)
	want, werr := refParseAll(input, chunk, maxArgs, maxBulk)
	if !reflect.DeepEqual(got, want) || fmt.Sprint(gerr) != fmt.Sprint(werr) {
		t.Fatalf("input %.300q in chunks of %d:\n got %q, %v\nwant %q, %v", input, chunk, got, gerr, want, werr)
	}
}

var readerDiffSeeds = []string{
	resp("SRS.DUE", "p", "SEASON-2026", "LIMIT", "20") + resp("PING"),
	"*2\r\n$4\r\nECHO\r\n$0000000000000000003\r\nabc\r\n",
	"*2\r\n$4\r\nECHO\r\n$000000000000000003\r\nabc\r\n",
	"*2\r\n$4\r\nECHO\r\n$-1\r\n",
	"*2\r\n$4\r\nECHO\r\n$\r\n",
	"*2\r\n$4\r\nECHO\r\n$3\n",
	"*2\r\n$4\r\nECHO\r\n$3 \r\nabc\r\n",
	"*2\r\n$4\r\nECHO\r\n+3\r\nabc\r\n",
	"*2\r\n$4\r\nECHO\r\n$999999999999999999\r\n",
	"*2\r\n$4\r\nECHO\r\n$2000\r\n" + strings.Repeat("x", 2000) + "\r\n" + resp("PING"),
	"*2\r\n$4\r\nECHO\r\n$3\r\nabcd\r\n",
	"*9\r\n" + strings.Repeat("$1\r\na\r\n", 9) + resp("PING"),
	"PING\r\n" + resp("ECHO", "x"),
}

func TestReaderMatchesReference(t *testing.T) {
	t.Parallel()
	for _, in := range readerDiffSeeds {
		for chunk := 1; chunk <= len(in)+1; chunk++ {
			sameRead(t, in, chunk)
		}
	}
}

// FuzzReaderMatchesReference compares the reader with the reference one.
func FuzzReaderMatchesReference(f *testing.F) {
	for _, s := range readerDiffSeeds {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		sameRead(t, string(data), int(chunk)+1)
		sameRead(t, string(data), len(data)+1)
	})
}
