package commands

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/proxy"
	"github.com/srsproxy/srsproxy/srs"
)

// The benchmarks measure the protocol side of the two hot commands: parsing
// their arguments and writing their replies, alone and through a server
// whose engine is a fake that answers at once.

var (
	benchDueArgs = [][]byte{[]byte("SRS.DUE"), []byte("student-000123"), []byte("SEASON-2026"),
		[]byte("SUBJECT"), []byte("math"), []byte("LIMIT"), []byte("20")}
	benchReviewArgs = [][]byte{[]byte("SRS.REVIEW"), []byte("student-000123"), []byte("SEASON-2026"),
		[]byte("q-000042"), []byte("3"), []byte("ID"), []byte("0f8c2a9e-6b1d-4c53-9a57-2b1e4f0c9d11"),
		[]byte("SUBJECT"), []byte("math"), []byte("TOPIC"), []byte("algebra"), []byte("STAGE"), []byte("s1"),
		[]byte("DURATION"), []byte("4200")}
	benchAnswerArgs = [][]byte{[]byte("SRS.REVIEW"), []byte("student-000123"), []byte("SEASON-2026"),
		[]byte("q-000042"), []byte("CORRECT"), []byte("1"), []byte("MS"), []byte("3000"), []byte("AT"), []byte("1764000000000")}
)

func BenchmarkParseDue(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDue(benchDueArgs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseReview(b *testing.B) {
	for name, args := range map[string][][]byte{"grade": benchReviewArgs, "answer": benchAnswerArgs} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseReview(args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseError is the cost of a refused argument, the error path.
func BenchmarkParseError(b *testing.B) {
	args := [][]byte{[]byte("SRS.DUE"), []byte("p"), []byte("SEASON-2026"), []byte("LIMIT"), []byte("500")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDue(args); err == nil {
			b.Fatal("no error")
		}
	}
}

// benchDue is a due list of 20 cards as the engine returns it.
func benchDue() engine.DueResult {
	res := engine.DueResult{Season: "SEASON-2026", Total: 137}
	for i := range 20 {
		res.Cards = append(res.Cards, srs.Card{
			Season: "SEASON-2026", Player: "student-000123", QuestionID: fmt.Sprintf("q-%06d", i),
			Subject: "math", Topic: "algebra", Stage: "s1",
			Schedule: srs.Schedule{State: srs.StateReview, Stability: 12.345678901234 + float64(i), Difficulty: 5.4321,
				Due: 1764000000000 + int64(i)*60000, LastReview: 1763000000000, Reps: i + 3, Lapses: 1},
		})
	}
	return res
}

func benchReview() engine.ReviewResult {
	return engine.ReviewResult{
		Review: srs.Review{ID: "0f8c2a9e-6b1d-4c53-9a57-2b1e4f0c9d11", Season: "SEASON-2026", Player: "student-000123",
			QuestionID: "q-000042", Grade: srs.Good, ReviewedAt: 1764000000000,
			After: srs.Schedule{State: srs.StateReview, Stability: 10.123456789, Difficulty: 4.98765,
				Due: 1764864000000, LastReview: 1764000000000, Reps: 5}},
		IntervalDays: 10, Retrievability: 0.9,
	}
}

func BenchmarkWriteDue(b *testing.B) {
	res := benchDue()
	for _, proto := range []int{2, 3} {
		b.Run("resp"+strconv.Itoa(proto), func(b *testing.B) {
			rec := proxy.NewReplyRecorder(proto)
			b.ReportAllocs()
			for b.Loop() {
				rec.Reset()
				writeDue(&rec.Reply, res)
			}
			b.SetBytes(int64(len(rec.Bytes())))
		})
	}
}

func BenchmarkWriteReview(b *testing.B) {
	res := benchReview()
	for _, proto := range []int{2, 3} {
		b.Run("resp"+strconv.Itoa(proto), func(b *testing.B) {
			rec := proxy.NewReplyRecorder(proto)
			b.ReportAllocs()
			for b.Loop() {
				rec.Reset()
				writeReview(&rec.Reply, res)
			}
			b.SetBytes(int64(len(rec.Bytes())))
		})
	}
}

// BenchmarkServer runs whole requests through a proxy.Server: the real
// parsers and reply writers around a fake engine that returns a fixed result
// (and, for reviews, a durability wait that is already done). "bare" calls
// them directly; "wrapped" goes through the handlers' wrapper (metrics and
// tracing with no-op providers, as when none is configured). 64 requests are
// pipelined per write, so ns/op is the sidecar's CPU per request more than
// the loopback's latency.
func BenchmarkServer(b *testing.B) {
	due, review := benchDue(), benchReview()
	review.Wait = func(context.Context) error { return nil }
	fakeDue := func(_ context.Context, w *proxy.Reply, args [][]byte) error {
		req, err := ParseDue(args)
		if err != nil {
			return err
		}
		res := due
		res.Season = req.Season
		writeDue(w, res)
		return nil
	}
	fakeReview := func(_ context.Context, w *proxy.Reply, args [][]byte) error {
		req, err := ParseReview(args)
		if err != nil {
			return err
		}
		res := review
		res.Review.QuestionID = req.Question
		if res.Wait != nil {
			w.BeforeFlush(func() error { return res.Wait(context.Background()) })
		}
		writeReview(w, res)
		return nil
	}
	for _, wrapped := range []bool{false, true} {
		mux := proxy.NewMux()
		h := &handlers{log: discardLogger(), mux: mux}
		if err := h.noopTelemetry(); err != nil {
			b.Fatal(err)
		}
		for name, fn := range map[string]handler{"SRS.DUE": fakeDue, "SRS.REVIEW": fakeReview} {
			ph := h.wrap(name, fn)
			if !wrapped {
				ph = func(ctx context.Context, w *proxy.Reply, args [][]byte) {
					if err := fn(ctx, w, args); err != nil {
						w.Error(err.Error())
					}
				}
			}
			mux.Handle(proxy.Command{Name: name, Arity: -3, Handler: ph})
		}
		srv, err := proxy.NewServer(proxy.Config{Logger: discardLogger()}, mux)
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve(ln)
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		})
		mode := map[bool]string{false: "bare", true: "wrapped"}[wrapped]
		for _, bc := range []struct {
			name string
			args [][]byte
		}{{"due", benchDueArgs}, {"review", benchReviewArgs}} {
			for _, proto := range []string{"2", "3"} {
				b.Run(mode+"/"+bc.name+"/resp"+proto, func(b *testing.B) {
					benchRoundTrips(b, ln.Addr().String(), proto, bc.args)
				})
			}
		}
	}
}

const benchPipeline = 64

func benchRoundTrips(b *testing.B, addr, proto string, args [][]byte) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReaderSize(nc, 1<<20)
	hello := encode([][]byte{[]byte("HELLO"), []byte(proto)})
	one := encode(args)
	// The length of one reply: send the command alone after HELLO and read
	// until both replies are in.
	if _, err := nc.Write(append(hello, one...)); err != nil {
		b.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	first, _ := io.ReadAll(br)
	nc.SetReadDeadline(time.Time{})
	if _, err := nc.Write(hello); err != nil {
		b.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	helloReply, _ := io.ReadAll(br)
	nc.SetReadDeadline(time.Time{})
	size := len(first) - len(helloReply)
	if size <= 0 || first[len(helloReply)] == '-' {
		b.Fatalf("reply %q", first[len(helloReply):])
	}
	var batch []byte
	for range benchPipeline {
		batch = append(batch, one...)
	}
	buf := make([]byte, size*benchPipeline)
	b.ReportAllocs()
	b.ResetTimer()
	for range (b.N + benchPipeline - 1) / benchPipeline {
		if _, err := nc.Write(batch); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func encode(args [][]byte) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// noopTelemetry gives h the instruments Register makes when Options has no
// Meter or Tracer.
func (h *handlers) noopTelemetry() error {
	h.tracer = tracenoop.NewTracerProvider().Tracer("")
	meter := metricnoop.NewMeterProvider().Meter("")
	var err error
	if h.calls, err = meter.Int64Counter("srsproxy_commands"); err != nil {
		return err
	}
	h.latency, err = meter.Float64Histogram("srsproxy_command_duration_seconds")
	return err
}
