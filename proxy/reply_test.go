package proxy

import (
	"bytes"
	"math"
	"strconv"
	"testing"

	"github.com/tidwall/redcon"
)

// TestReplyEncoding checks the writers against redcon's encoders and the
// RESP3 forms they replaced.
func TestReplyEncoding(t *testing.T) {
	t.Parallel()
	var ns []int64
	for n := int64(-12); n < 1200; n++ {
		ns = append(ns, n)
	}
	ns = append(ns, math.MaxInt64, math.MinInt64, 1764000000000, -1764000000000)
	for _, n := range ns {
		w := &Reply{proto: 2}
		w.Int(n)
		if want := redcon.AppendInt(nil, n); !bytes.Equal(w.b, want) {
			t.Fatalf("Int(%d) = %q, want %q", n, w.b, want)
		}
		if n < 0 || n > 1<<20 {
			continue
		}
		w.b = w.b[:0]
		w.Array(int(n))
		if want := redcon.AppendArray(nil, int(n)); !bytes.Equal(w.b, want) {
			t.Fatalf("Array(%d) = %q, want %q", n, w.b, want)
		}
		s := string(bytes.Repeat([]byte{'x'}, int(n)))
		w.b = w.b[:0]
		w.String(s)
		w.Bulk([]byte(s))
		w.Key(NewKey(s))
		if want := redcon.AppendBulkString(redcon.AppendBulk(redcon.AppendBulkString(nil, s), []byte(s)), s); !bytes.Equal(w.b, want) {
			t.Fatalf("String, Bulk, Key of %d bytes = %q, want %q", n, w.b, want)
		}
		w.b = w.b[:0]
		w.Map(int(n))
		if want := redcon.AppendArray(nil, 2*int(n)); !bytes.Equal(w.b, want) {
			t.Fatalf("RESP2 Map(%d) = %q, want %q", n, w.b, want)
		}
		w3 := &Reply{proto: 3}
		w3.Map(int(n))
		if want := "%" + strconv.Itoa(int(n)) + "\r\n"; string(w3.b) != want {
			t.Fatalf("RESP3 Map(%d) = %q, want %q", n, w3.b, want)
		}
	}
	var zero Reply
	zero.Key(Key{})
	if string(zero.b) != "$0\r\n\r\n" {
		t.Errorf("zero Key = %q", zero.b)
	}
	for _, f := range []float64{0, -0.0, 1, -1.5, 12.345678901234, 1e21, 1e-7, 5e-324, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN()} {
		text := strconv.FormatFloat(f, 'g', -1, 64)
		switch {
		case math.IsInf(f, 1):
			text = "inf"
		case math.IsInf(f, -1):
			text = "-inf"
		case math.IsNaN(f):
			text = "nan"
		}
		w2, w3 := &Reply{proto: 2}, &Reply{proto: 3}
		w2.Double(f)
		w3.Double(f)
		if want := redcon.AppendBulkString(nil, text); !bytes.Equal(w2.b, want) {
			t.Errorf("RESP2 Double(%v) = %q, want %q", f, w2.b, want)
		}
		if want := "," + text + "\r\n"; string(w3.b) != want {
			t.Errorf("RESP3 Double(%v) = %q, want %q", f, w3.b, want)
		}
	}
}
