package proxy

import (
	"strings"
	"testing"
)

// loopReader returns the same bytes forever, as a client pipelining one
// command over and over would.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.data[l.off:])
		n += k
		l.off = (l.off + k) % len(l.data)
	}
	return n, nil
}

// BenchmarkReaderNext measures parsing one command from a connection's read
// buffer, refills included: ns/op is per command.
func BenchmarkReaderNext(b *testing.B) {
	for _, bc := range []struct {
		name string
		cmd  string
	}{
		{"due", resp("SRS.DUE", "student-000123", "SEASON-2026", "LIMIT", "20", "SUBJECT", "math")},
		{"review", resp("SRS.REVIEW", "student-000123", "SEASON-2026", "q-000042", "3",
			"ID", "0f8c2a9e-6b1d-4c53-9a57-2b1e4f0c9d11", "SUBJECT", "math", "TOPIC", "algebra", "DURATION", "4200")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newReader(&loopReader{data: []byte(strings.Repeat(bc.cmd, 64))}, 1024, 512<<20)
			b.SetBytes(int64(len(bc.cmd)))
			b.ReportAllocs()
			for b.Loop() {
				for {
					req, ok, err := r.next()
					if err != nil {
						b.Fatal(err)
					}
					if ok {
						if len(req.args) < 3 {
							b.Fatalf("parsed %q", req.args)
						}
						break
					}
					if err := r.fill(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
