package mariadb

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// drainLoad is a season of existing cards of cmd/srsbench's shape (players
// "student-%07d", UUID question ids, subject/topic/stage labels, seeded rows
// without their log) and the in-memory state of each, from which it makes
// the batches a drainer sends: in-order reviews of existing cards, each
// built on the card's current state, UUIDv7-like review ids.
type drainLoad struct {
	cards []srs.Card
	rnd   *rand.Rand
	now   int64
	n     int
}

var (
	benchSubjects = []string{"math", "physics", "chemistry", "biology", "history", "geography", "english", "french"}
	benchStages   = []string{"intro", "core", "practice", "exam"}
)

// benchUUID is a random (version 4) UUID, as srsbench's question ids; with
// ms > 0 it is a version 7 one of that time, as the engine's review ids.
func benchUUID(rnd *rand.Rand, ms int64) string {
	var b uuid.UUID
	binary.BigEndian.PutUint64(b[:8], rnd.Uint64())
	if ms > 0 {
		binary.BigEndian.PutUint64(b[:8], uint64(ms)<<16|rnd.Uint64()&0xffff)
		b[6] = b[6]&0x0f | 0x70
	}
	binary.BigEndian.PutUint64(b[8:], rnd.Uint64())
	if ms == 0 {
		b[6] = b[6]&0x0f | 0x40
	}
	b[8] = b[8]&0x3f | 0x80
	return b.String()
}

// newDrainLoad seeds users × perUser cards into season's partition of cards
// with multi-row INSERTs (as srsbench's seeder, no review log).
func newDrainLoad(tb testing.TB, s *Store, season string, users, perUser int) *drainLoad {
	tb.Helper()
	d := &drainLoad{rnd: rand.New(rand.NewPCG(1, 2)), now: 1_780_000_000_000}
	for u := range users {
		for range perUser {
			c := srs.Card{Season: season, Player: fmt.Sprintf("student-%07d", u), QuestionID: benchUUID(d.rnd, 0),
				Subject: benchSubjects[d.rnd.IntN(len(benchSubjects))],
				Topic:   "topic-" + strconv.Itoa(1+d.rnd.IntN(24)),
				Stage:   benchStages[d.rnd.IntN(len(benchStages))]}
			c.State, c.Stability, c.Difficulty = srs.StateReview, 0.5+120*d.rnd.Float64(), 1+9*d.rnd.Float64()
			c.Reps, c.Lapses = 2+d.rnd.IntN(30), d.rnd.IntN(4)
			c.LastReview = d.now - int64(d.rnd.IntN(30*86_400_000))
			c.Due = c.LastReview + int64(c.Stability*86_400_000)
			d.cards = append(d.cards, c)
		}
	}
	slices.SortFunc(d.cards, func(a, b srs.Card) int {
		return compareCardKeys(cardKey{a.Season, a.Player, a.QuestionID}, cardKey{b.Season, b.Player, b.QuestionID})
	})
	ctx := context.Background()
	for chunk := range slices.Chunk(d.cards, chunkRows) {
		args := make([]any, 0, len(chunk)*cardWidth)
		for _, c := range chunk {
			args = appendCard(args, c)
		}
		query := fmt.Sprintf(insertCard, partitions.QuoteIdent("cards"), placeholders(cardPlaceholders, len(chunk)))
		if _, err := s.db.ExecContext(ctx, query, args...); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}

// review makes the next review of card i, built on its current state, and
// moves the card on.
func (d *drainLoad) review(i int) srs.Review {
	c := &d.cards[i]
	d.n++
	d.now += 7
	grade := srs.Grade(2 + d.rnd.IntN(3))
	r := srs.Review{
		ID: benchUUID(d.rnd, d.now), Season: c.Season, Player: c.Player, QuestionID: c.QuestionID,
		Subject: c.Subject, Topic: c.Topic, Stage: c.Stage, Grade: grade,
		ReviewedAt: d.now, DurationMS: int64(2000 + d.rnd.IntN(8000)), ElapsedDays: int((d.now - c.LastReview) / 86_400_000),
		Sidecar: "sidecar-a", Before: c.Schedule,
	}
	a := c.Schedule
	a.Stability = a.Stability*1.7 + 0.1
	a.Difficulty = min(10, a.Difficulty+0.1)
	a.LastReview, a.Due = d.now, d.now+int64(a.Stability*86_400_000)
	a.Reps++
	a.LastID, a.Recall = srs.ReviewHash(r.ID), 0.9*d.rnd.Float64()
	r.After = a
	c.Schedule = a
	return r
}

// batch makes size reviews of random cards; perCard (≥ 1) reviews of each
// card picked, in order.
func (d *drainLoad) batch(size, perCard int) []srs.Review {
	out := make([]srs.Review, 0, size)
	for len(out) < size {
		i := d.rnd.IntN(len(d.cards))
		for range min(perCard, size-len(out)) {
			out = append(out, d.review(i))
		}
	}
	// A drainer's batch is in queue order, not card order.
	d.rnd.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// BenchmarkDrainSustained measures what the write-behind drainer gets out of
// ApplyReviews, one batch after another on one goroutine as the drainer
// calls it, with srsbench's row shape: rows/s over the time spent in
// ApplyReviews, and the p50/p99 of a batch. Sub-benchmarks share one store,
// so the log grows as they run. Run it for long enough to be sustained:
//
//	go test ./backend/mariadb/ -run '^$' -bench DrainSustained -benchtime 20s
func BenchmarkDrainSustained(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	newSeason(b, s, season)
	d := newDrainLoad(b, s, season, 1000, 200)
	for _, c := range []struct{ size, perCard int }{
		{100, 1}, {500, 1}, {1000, 1}, {2000, 1}, {4000, 1}, {1000, 2},
	} {
		b.Run(fmt.Sprintf("batch=%d/perCard=%d", c.size, c.perCard), func(b *testing.B) {
			cpu0 := serverCPU()
			var (
				rows  int
				spent time.Duration
				lat   []time.Duration
			)
			for b.Loop() {
				b.StopTimer()
				batch := d.batch(c.size, c.perCard)
				b.StartTimer()
				start := time.Now()
				rejected, err := s.ApplyReviews(ctx, batch)
				if err != nil || rejected != nil {
					b.Fatal(rejected, err)
				}
				el := time.Since(start)
				spent += el
				lat = append(lat, el)
				rows += len(batch)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(rows)/spent.Seconds(), "rows/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			if cpu0 >= 0 {
				b.ReportMetric(float64(serverCPU()-cpu0)/float64(rows), "db-cpu-µs/row")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// serverCPU returns the CPU time (user and system) the local mariadbd
// process has used, in µs, or -1 when there is none to read (another host,
// no /proc): the server's cost per row, apart from waiting.
func serverCPU() int64 {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "mariadbd" {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			return -1
		}
		// Fields after the ")" that ends comm: utime is the 12th, stime the 13th.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 13 {
			return -1
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return (ut + st) * 1_000_000 / 100 // USER_HZ
	}
	return -1
}

// BenchmarkDrainBatchSizes compares batch sizes at the same log size and
// machine load: each round applies one batch of every size in turn, so
// growth of the log and other load on the machine hit every size alike.
// It reports rows/s per size (the time in ApplyReviews only), the figure
// writebehind's BatchSize default is chosen by.
func BenchmarkDrainBatchSizes(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	newSeason(b, s, season)
	d := newDrainLoad(b, s, season, 1000, 200)
	sizes := []int{100, 250, 500, 1000, 2000, 4000}
	spent := make([]time.Duration, len(sizes))
	rows := make([]int, len(sizes))
	for b.Loop() {
		for i, size := range sizes {
			b.StopTimer()
			batch := d.batch(size, 1)
			b.StartTimer()
			start := time.Now()
			if rejected, err := s.ApplyReviews(ctx, batch); err != nil || rejected != nil {
				b.Fatal(rejected, err)
			}
			spent[i] += time.Since(start)
			rows[i] += size
		}
	}
	for i, size := range sizes {
		b.ReportMetric(float64(rows[i])/spent[i].Seconds(), fmt.Sprintf("rows/s@%d", size))
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDrainShards compares the number of concurrent transactions
// ApplyReviews splits a batch into (SetDrainShards), at the same log size
// and machine load: each round applies one batch of each setting in turn.
// It reports rows/s per setting (the time in ApplyReviews only), the figure
// DefaultDrainShards is chosen by, and the server's CPU per row.
//
//	go test ./backend/mariadb/ -run '^$' -bench DrainShards -benchtime 40x
func BenchmarkDrainShards(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	newSeason(b, s, season)
	d := newDrainLoad(b, s, season, 1000, 200)
	size := 2000
	if v, err := strconv.Atoi(os.Getenv("SRS_DRAIN_BATCH")); err == nil && v > 0 {
		size = v
	}
	settings := []int{1, 2, 3, 4}
	spent := make([]time.Duration, len(settings))
	cpu := make([]int64, len(settings))
	rows := make([]int, len(settings))
	for b.Loop() {
		for i, n := range settings {
			b.StopTimer()
			batch := d.batch(size, 1)
			s.SetDrainShards(n, 100)
			b.StartTimer()
			cpu0 := serverCPU()
			start := time.Now()
			if rejected, err := s.ApplyReviews(ctx, batch); err != nil || rejected != nil {
				b.Fatal(rejected, err)
			}
			spent[i] += time.Since(start)
			cpu[i] += serverCPU() - cpu0
			rows[i] += size
		}
	}
	for i, n := range settings {
		b.ReportMetric(float64(rows[i])/spent[i].Seconds(), fmt.Sprintf("rows/s@%dshards", n))
		b.ReportMetric(float64(cpu[i])/float64(rows[i]), fmt.Sprintf("db-cpu-µs/row@%dshards", n))
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDrainUnderReads drains batches of 2000 in one transaction or in
// the default shards, alone or while readers run what Safe Mode and cache
// loads send MariaDB (UserCards, DueCards of random users of the same
// season) as fast as they can: rows/s of the drain, the p99 of a read and
// the reads/s they got.
//
//	go test ./backend/mariadb/ -run '^$' -bench DrainUnderReads -benchtime 20s
func BenchmarkDrainUnderReads(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	newSeason(b, s, season)
	const users = 1000
	d := newDrainLoad(b, s, season, users, 200)
	for _, c := range []struct{ readers, shards int }{{0, 1}, {0, DefaultDrainShards}, {4, 1}, {4, DefaultDrainShards}} {
		readers := c.readers
		b.Run(fmt.Sprintf("readers=%d/shards=%d", readers, c.shards), func(b *testing.B) {
			s.SetDrainShards(c.shards, 0)
			stop := make(chan struct{})
			lats := make([][]time.Duration, readers)
			var wg sync.WaitGroup
			for g := range readers {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(g), 7))
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						player := fmt.Sprintf("student-%07d", rnd.IntN(users))
						start := time.Now()
						var err error
						if n%2 == 0 {
							_, err = s.UserCards(ctx, season, player)
						} else {
							_, err = s.DueCards(ctx, season, player, "", d.now, 20)
						}
						if err != nil {
							b.Error(err)
							return
						}
						lats[g] = append(lats[g], time.Since(start))
					}
				})
			}
			var (
				rows  int
				spent time.Duration
			)
			t0 := time.Now()
			for b.Loop() {
				b.StopTimer()
				batch := d.batch(2000, 1)
				b.StartTimer()
				start := time.Now()
				if rejected, err := s.ApplyReviews(ctx, batch); err != nil || rejected != nil {
					b.Fatal(rejected, err)
				}
				spent += time.Since(start)
				rows += len(batch)
			}
			elapsed := time.Since(t0)
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(rows)/spent.Seconds(), "rows/s")
			if all := slices.Concat(lats...); len(all) > 0 {
				slices.Sort(all)
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "read-p99-ms")
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "reads/s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}
