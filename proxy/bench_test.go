package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// BenchmarkPipeline measures the server side of pipelined commands: a batch
// of 100 ECHOs per write, replies read back in full.
func BenchmarkPipeline(b *testing.B) {
	s := startServer(b, Config{})
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	batch := []byte(strings.Repeat(resp("ECHO", "payload-0123456789"), 100))
	want := len(strings.Repeat("$18\r\npayload-0123456789\r\n", 100))
	br := bufio.NewReaderSize(nc, 64<<10)
	buf := make([]byte, want)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := nc.Write(batch); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(100*b.N), "ns/cmd")
}

// BenchmarkReply measures encoding a RESP3 map reply.
func BenchmarkReply(b *testing.B) {
	w := &Reply{proto: 3}
	b.ReportAllocs()
	for range b.N {
		w.b = w.b[:0]
		w.begin()
		w.Map(3)
		w.String("due")
		w.Int(1767225600000)
		w.String("stability")
		w.Double(12.345)
		w.String("cached")
		w.Bool(true)
	}
}

// fakeDue and fakeReview stand in for the SRS commands with an engine that
// answers at once: they check the arguments the way the real handlers'
// parsers do and write replies of the same shape (a due list of 20 cards,
// a review of 13 fields), so the benchmarks below measure the sidecar's own
// path per request: read, parse, dispatch, reply, flush.
func fakeSRS(m *Mux) {
	m.Handle(Command{Name: "SRS.DUE", Arity: -3, Handler: func(_ context.Context, w *Reply, args [][]byte) {
		if len(args[1]) == 0 || len(args[2]) == 0 {
			w.Error("ERR SRS.DUE: missing player")
			return
		}
		w.Map(4)
		w.String("total_due")
		w.Int(137)
		w.String("degraded")
		w.Bool(false)
		w.String("season")
		w.Bulk(args[2])
		w.String("items")
		w.Array(20)
		for i := range 20 {
			w.Map(10)
			w.String("question_id")
			w.String(benchQuestions[i])
			w.String("due")
			w.Int(1764000000000 + int64(i)*60000)
			w.String("state")
			w.String("review")
			w.String("stability")
			w.Double(12.345678901234 + float64(i))
			w.String("difficulty")
			w.Double(5.4321)
			w.String("reps")
			w.Int(int64(i + 3))
			w.String("lapses")
			w.Int(1)
			w.String("subject")
			w.String("math")
			w.String("topic")
			w.String("algebra")
			w.String("stage")
			w.String("s1")
		}
	}})
	m.Handle(Command{Name: "SRS.REVIEW", Arity: -5, Handler: func(_ context.Context, w *Reply, args [][]byte) {
		w.BeforeFlush(nopBarrier)
		w.Map(13)
		w.String("question_id")
		w.Bulk(args[3])
		w.String("due")
		w.Int(1764864000000)
		w.String("interval_days")
		w.Int(10)
		w.String("scheduled_minutes")
		w.Int(14400)
		w.String("state")
		w.String("review")
		w.String("stability")
		w.Double(10.123456789)
		w.String("difficulty")
		w.Double(4.98765)
		w.String("retrievability")
		w.Double(0.9)
		w.String("reps")
		w.Int(5)
		w.String("lapses")
		w.Int(0)
		w.String("last_review")
		w.Int(1764000000000)
		w.String("review_id")
		w.String("0f8c2a9e-6b1d-4c53-9a57-2b1e4f0c9d11")
		w.String("duplicate")
		w.Bool(false)
	}})
}

var benchQuestions = func() []string {
	q := make([]string, 20)
	for i := range q {
		q[i] = fmt.Sprintf("q-%06d", i)
	}
	return q
}()

func nopBarrier() error { return nil }

// BenchmarkServer sends one SRS.DUE or SRS.REVIEW at a time over loopback
// to a server with a fake engine and reads the reply back: ns/op is one
// round trip, allocs/op the server's and the client's together (the client
// side allocates nothing).
func BenchmarkServer(b *testing.B) {
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"due", []string{"SRS.DUE", "student-000123", "SEASON-2026", "LIMIT", "20"}},
		{"review", []string{"SRS.REVIEW", "student-000123", "SEASON-2026", "q-000042", "3",
			"ID", "0f8c2a9e-6b1d-4c53-9a57-2b1e4f0c9d11", "SUBJECT", "math", "DURATION", "4200"}},
	} {
		for _, proto := range []string{"2", "3"} {
			b.Run(bc.name+"/resp"+proto, func(b *testing.B) {
				s := startServer(b, Config{}, fakeSRS)
				c := s.dial(b)
				c.nc.SetDeadline(time.Time{})
				c.do("HELLO", proto)
				req := []byte(resp(bc.args...))
				buf := make([]byte, len(c.do(bc.args...)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.nc.Write(req); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c.br, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
