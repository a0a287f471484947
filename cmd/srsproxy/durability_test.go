package main

// Durability tests of issue 3 (invariants 1–4 of DESIGN.md): group commit,
// kill -9 of the real binary, a MariaDB outage through a cuttable proxy, the
// loss of the upstream Redis, two sidecars on one card, the queue cap and a
// torn queue tail. Each test records every acknowledged review (a non-error
// reply) and ends with the audit: every acked review logged exactly once, and
// every card row equal to the replay of its log in reviewed_at order.
//
// Reviews whose reply was lost (a connection error: unknown outcome) are not
// in the acked list, but they may still have been applied, so the audit's
// card-replay check covers them too.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	rcache "github.com/srsproxy/srsproxy/backend/redis"
	"github.com/srsproxy/srsproxy/internal/faults"
	"github.com/srsproxy/srsproxy/srs"
	"github.com/srsproxy/srsproxy/writebehind"
)

// drainDeadline bounds every wait for a queue to drain.
const drainDeadline = 45 * time.Second

// --- the binary -------------------------------------------------------------

var sidecarBinary struct {
	sync.Mutex
	path  string
	users int
}

// sidecarBin returns $SRSPROXY_BIN, or builds the binary once for the tests
// that are running (it is removed when the last of them ends).
func sidecarBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SRSPROXY_BIN"); p != "" {
		return p
	}
	b := &sidecarBinary
	b.Lock()
	defer b.Unlock()
	if b.path == "" {
		dir, err := os.MkdirTemp("", "srsproxy-durability-")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "srsproxy")
		if out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("go build: %v\n%s", err, out)
		}
		b.path = path
	}
	b.users++
	path := b.path
	t.Cleanup(func() {
		b.Lock()
		defer b.Unlock()
		if b.users--; b.users == 0 {
			os.RemoveAll(filepath.Dir(b.path))
			b.path = ""
		}
	})
	return path
}

// sidecar is the binary running as a child process.
type sidecar struct {
	t        *testing.T
	bin      string
	args     []string // every flag but --listen
	QueueDir string
	Addr     string
	proc     *faults.Process
	logs     []string // log files of earlier runs
}

// startSidecar runs the binary on a free port against mysqlDSN, redis and
// prefix with the queue in queueDir, and waits until it serves.
func startSidecar(t *testing.T, mysqlDSN, redis, prefix, queueDir string, extra ...string) *sidecar {
	t.Helper()
	s := &sidecar{t: t, bin: sidecarBin(t), QueueDir: queueDir}
	s.args = append([]string{"--admin-listen", "off", "--mysql", mysqlDSN, "--redis", redis,
		"--redis-prefix", prefix, "--queue-dir", queueDir}, extra...)
	s.start()
	return s
}

// start (re)starts the process on a fresh port. A port taken between
// FreePort and the bind is retried with another one.
func (s *sidecar) start() {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(faults.FreePort(s.t))
		p := faults.StartProcess(s.t, s.bin, append([]string{"--listen", addr}, s.args...)...)
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, _ := os.ReadFile(p.Log.Name())
			switch log := string(b); {
			case strings.Contains(log, "srsproxy serving"):
				s.proc, s.Addr = p, addr
				return
			case strings.Contains(log, "address already in use") && attempt < 3:
				p.Kill()
			case strings.Contains(log, "start failed") || strings.Contains(log, "srsproxy:"):
				p.Kill()
				s.t.Fatalf("sidecar did not start:\n%s", log)
			case time.Now().After(deadline):
				p.Kill()
				s.t.Fatalf("sidecar not serving after 30s:\n%s", log)
			default:
				time.Sleep(20 * time.Millisecond)
				continue
			}
			break
		}
	}
}

// kill sends SIGKILL and reaps the process.
func (s *sidecar) kill() {
	s.proc.Kill()
	s.logs = append(s.logs, s.proc.Log.Name())
}

// restart starts the binary again on the same queue directory.
func (s *sidecar) restart() {
	s.t.Helper()
	s.start()
}

// log returns the current process's log.
func (s *sidecar) log() string {
	b, _ := os.ReadFile(s.proc.Log.Name())
	return string(b)
}

// The MySQL driver's global logger prints a line for every connection the cut
// proxy drops (thousands under load); the sidecar logs those errors itself.
// It is set at package init, before any test (or driver) goroutine runs.
var _ = mysql.SetLogger(log.New(io.Discard, "", 0))

// startQuietMain is startMain with the sidecar's log in a file of the test's
// temp dir instead of stderr; the file's path is returned.
func startQuietMain(t *testing.T, e testEnv, extra ...string) (*Main, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "sidecar-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m := &Main{Log: slog.New(slog.NewTextHandler(f, nil))}
	args := append([]string{
		"--listen", "127.0.0.1:0", "--admin-listen", "off", "--mysql", e.DSN,
		"--redis", e.Redis, "--redis-prefix", e.Prefix, "--queue-dir", t.TempDir(),
	}, extra...)
	if err := m.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, f.Name()
}

// logLines returns the lines of a log file that contain substr.
func logLines(path, substr string) []string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

// --- clients and the ledger of acknowledged reviews --------------------------

// loadClient is a client with one connection and no automatic retries, so
// that every error is seen and classified.
func loadClient(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr: addr, Protocol: 2, PoolSize: 1, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
	})
}

// ack is one acknowledged review and what its reply said.
type ack struct {
	Acked
	Reps, LastReview int64
	At               time.Time // when the reply arrived
}

// ledger records acknowledged reviews and classifies failures: a server
// error reply (the review was refused) by its prefix, a connection error as
// "unknown outcome".
type ledger struct {
	mu      sync.Mutex
	acks    []ack
	errs    map[string]int
	samples map[string]string
	errAt   []time.Time
}

func newLedger() *ledger { return &ledger{errs: map[string]int{}, samples: map[string]string{}} }

const unknownOutcome = "unknown-outcome"

// errClass is the RESP error prefix of a refusal, or unknownOutcome.
func errClass(err error) string {
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		prefix, _, _ := strings.Cut(err.Error(), " ")
		return prefix
	}
	return unknownOutcome
}

func (l *ledger) ack(a ack) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	l.mu.Unlock()
}

func (l *ledger) fail(err error) string {
	class := errClass(err)
	l.mu.Lock()
	l.errs[class]++
	if _, ok := l.samples[class]; !ok {
		l.samples[class] = err.Error()
	}
	l.errAt = append(l.errAt, time.Now())
	l.mu.Unlock()
	return class
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

func (l *ledger) snapshot() []ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acks)
}

func (l *ledger) acked() []Acked {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Acked, len(l.acks))
	for i, a := range l.acks {
		out[i] = a.Acked
	}
	return out
}

// acksBetween counts the acks that arrived in [from, to).
func (l *ledger) acksBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.acks {
		if !a.At.Before(from) && a.At.Before(to) {
			n++
		}
	}
	return n
}

func (l *ledger) errors(class string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs[class]
}

// String summarises the ledger for the test log.
func (l *ledger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	classes := make([]string, 0, len(l.errs))
	for c := range l.errs {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var b strings.Builder
	fmt.Fprintf(&b, "%d acked", len(l.acks))
	for _, c := range classes {
		fmt.Fprintf(&b, ", %d %s (e.g. %q)", l.errs[c], c, l.samples[c])
	}
	return b.String()
}

// replyMap turns a RESP2 flat array or a RESP3 map into a map.
func replyMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			s, ok := k.(string)
			if !ok {
				return nil, false
			}
			out[s] = val
		}
		return out, true
	case []any:
		out := make(map[string]any, len(m)/2)
		for i := 0; i+1 < len(m); i += 2 {
			s, ok := m[i].(string)
			if !ok {
				return nil, false
			}
			out[s] = m[i+1]
		}
		return out, true
	}
	return nil, false
}

// reviewOpts are the options of one SRS.REVIEW.
type reviewOpts struct {
	ID    string // "" lets the sidecar generate one
	At    int64  // 0 means now
	Extra []any
}

// review sends one SRS.REVIEW and records the outcome in l. It returns the
// error class ("" for an ack).
func review(c *goredis.Client, l *ledger, season, player, question string, grade int, o reviewOpts) (string, error) {
	args := []any{"SRS.REVIEW", player, season, question, grade}
	if o.ID != "" {
		args = append(args, "ID", o.ID)
	}
	if o.At != 0 {
		args = append(args, "AT", o.At)
	}
	args = append(args, o.Extra...)
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil {
		return l.fail(err), err
	}
	m, ok := replyMap(v)
	id, _ := m["review_id"].(string)
	reps, _ := m["reps"].(int64)
	last, _ := m["last_review"].(int64)
	if !ok || id == "" || (o.ID != "" && id != o.ID) {
		err := fmt.Errorf("SRS.REVIEW %s %s: unexpected reply %v", player, question, v)
		return l.fail(err), err
	}
	l.ack(ack{Acked: Acked{Season: season, Player: player, Question: question, ReviewID: id},
		Reps: reps, LastReview: last, At: time.Now()})
	return "", nil
}

// loadSpec describes a review load: workers review random cards of
// players × questions until stopped.
type loadSpec struct {
	Addr      string
	Season    string
	Players   []string
	Questions []string
	Workers   int
	IDPrefix  string       // "" lets the sidecar generate the ids
	At        func() int64 // nil: no AT option (now)
	Extra     []any
	// OwnPlayer makes worker i review only player i mod len(Players).
	OwnPlayer bool
	// StopOn ends a worker at its first refusal of this class.
	StopOn string
}

// load is a running review load.
type load struct {
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	clients []*goredis.Client
}

// startLoad starts spec.Workers workers that record into l. Stop ends them.
func startLoad(t *testing.T, spec loadSpec, l *ledger) *load {
	t.Helper()
	ld := &load{stop: make(chan struct{})}
	for w := range spec.Workers {
		c := loadClient(spec.Addr)
		ld.clients = append(ld.clients, c)
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for n := 0; ; n++ {
				select {
				case <-ld.stop:
					return
				default:
				}
				player := spec.Players[rng.IntN(len(spec.Players))]
				if spec.OwnPlayer {
					player = spec.Players[w%len(spec.Players)]
				}
				o := reviewOpts{Extra: spec.Extra}
				if spec.IDPrefix != "" {
					o.ID = fmt.Sprintf("%s-%d-%d", spec.IDPrefix, w, n)
				}
				if spec.At != nil {
					o.At = spec.At()
				}
				class, _ := review(c, l, spec.Season, player, spec.Questions[rng.IntN(len(spec.Questions))], 1+rng.IntN(4), o)
				switch {
				case class == "":
				case spec.StopOn != "" && class == spec.StopOn:
					return
				case class == unknownOutcome:
					// The sidecar is gone or restarting: do not spin.
					select {
					case <-ld.stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	t.Cleanup(ld.Stop)
	return ld
}

// Stop ends the workers and waits for them.
func (ld *load) Stop() {
	ld.once.Do(func() {
		close(ld.stop)
		ld.wg.Wait()
		for _, c := range ld.clients {
			c.Close()
		}
	})
}

// waitAcks polls until l holds n acks; false on timeout.
func waitAcks(l *ledger, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for l.count() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// --- MariaDB, drain and audit --------------------------------------------------

func openStore(t *testing.T, dsn string) *mariadb.Store {
	t.Helper()
	st, err := mariadb.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// proxiedDSN puts a cuttable TCP proxy between the DSN's client and server.
func proxiedDSN(t *testing.T, dsn string) (string, *faults.Proxy) {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := faults.NewProxy(t, cfg.Addr)
	cfg.Addr = p.Addr()
	return cfg.FormatDSN(), p
}

func reviewLogCount(t *testing.T, st *mariadb.Store) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRow("SELECT COUNT(*) FROM review_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitDrained polls until every queue directory is empty and every acked
// review is in the review log, and returns how long that took.
func waitDrained(t *testing.T, st *mariadb.Store, acked []Acked, dirs ...string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(drainDeadline)
	bySeason := map[string][]mariadb.ReviewKey{}
	for _, a := range acked {
		bySeason[a.Season] = append(bySeason[a.Season], mariadb.ReviewKey{Player: a.Player, Question: a.Question, ID: a.ReviewID})
	}
	var why string
	for {
		why = ""
		for _, d := range dirs {
			pending, err := writebehind.ReadAll(d)
			switch {
			case err != nil:
				why = fmt.Sprintf("queue %s: %v", d, err) // a segment deleted while read: look again
			case len(pending) > 0:
				why = fmt.Sprintf("queue %s: %d reviews undrained", d, len(pending))
			}
			if why != "" {
				break
			}
		}
		for season, ids := range bySeason {
			if why != "" {
				break
			}
			counts, err := st.ReviewIDs(context.Background(), season, ids)
			if err != nil {
				t.Fatal(err)
			}
			missing := 0
			for _, id := range ids {
				if counts[id] == 0 {
					missing++
				}
			}
			if missing > 0 {
				why = fmt.Sprintf("%d acked reviews of %s not in the review log yet", missing, season)
			}
		}
		if why == "" {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after %s: %s", drainDeadline, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// auditClean runs the audit and fails the test unless it is clean. It
// returns the report.
func auditClean(t *testing.T, st *mariadb.Store, acked []Acked) AuditReport {
	t.Helper()
	rep, err := Audit(context.Background(), st, acked)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	t.Logf("audit: %s", rep)
	if !rep.Clean() {
		t.Errorf("audit not clean: %s\n%s", rep, strings.Join(rep.Problems, "\n"))
	}
	return rep
}

// reportForks logs, for each card of players × questions, the logged
// reviews that were not computed from the state the previous logged review
// left (a fork in the card's history: two reviews from one state, or one
// from a state no logged review produced). acks maps review ids to when
// their acknowledgement arrived. It returns the number of forks.
func reportForks(t *testing.T, st *mariadb.Store, season string, players, questions []string, acks []ack) int {
	t.Helper()
	ackAt := map[string]time.Time{}
	for _, a := range acks {
		ackAt[a.ReviewID] = a.At
	}
	n := 0
	for _, p := range players {
		for _, q := range questions {
			log, err := st.ReviewLog(context.Background(), season, p, q)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(log); i++ {
				prev, r := log[i-1], log[i]
				if r.Before.Reps == prev.After.Reps && r.Before.LastReview == prev.After.LastReview {
					continue
				}
				n++
				t.Logf("fork in %s/%s: review %s (sidecar %s, at %d, acked %s) starts from reps %d/last %d, "+
					"but the review before it, %s (at %d, acked %s), left reps %d/last %d",
					p, q, r.ID, r.Sidecar, r.ReviewedAt, ackAt[r.ID].Format("15:04:05.000"), r.Before.Reps, r.Before.LastReview,
					prev.ID, prev.ReviewedAt, ackAt[prev.ID].Format("15:04:05.000"), prev.After.Reps, prev.After.LastReview)
			}
		}
	}
	return n
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// --- the tests ------------------------------------------------------------------

// TestDurabilityGroupCommit: 200 concurrent reviews from 50 connections share
// fsyncs, and every one of them is in the review log after the drain.
func TestDurabilityGroupCommit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m, _ := startQuietMain(t, e)
	const season, conns, perConn = "SEASON-2026", 50, 4
	createSeason(t, client(t, m.Addr(), 2), season)
	st := openStore(t, e.DSN)

	l := newLedger()
	clients := make([]*goredis.Client, conns)
	for i := range clients {
		clients[i] = loadClient(m.Addr())
		defer clients[i].Close()
		if err := clients[i].Ping(context.Background()).Err(); err != nil { // connect before the start
			t.Fatal(err)
		}
	}
	before := m.queue.Stats().Fsyncs
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := range perConn {
				review(c, l, season, fmt.Sprintf("p%d", i), fmt.Sprintf("q%d", j), 1+(i+j)%4,
					reviewOpts{ID: fmt.Sprintf("gc-%d-%d", i, j)})
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	fsyncs := m.queue.Stats().Fsyncs - before
	t.Logf("%d reviews from %d connections in %s: %s; %d fsyncs (%.1f reviews per fsync)",
		conns*perConn, conns, elapsed.Round(time.Millisecond), l, fsyncs, float64(l.count())/float64(max(fsyncs, 1)))
	if l.count() != conns*perConn {
		t.Fatalf("every review should be acknowledged: %s", l)
	}
	if fsyncs >= uint64(l.count()) {
		t.Errorf("group commit: %d fsyncs for %d reviews, want fewer fsyncs than reviews", fsyncs, l.count())
	}
	drain := waitDrained(t, st, l.acked(), m.Config.QueueDir)
	t.Logf("drained in %s", drain.Round(time.Millisecond))
	auditClean(t, st, l.acked())
}

// TestDurabilityKill9: the binary under concurrent load on overlapping cards
// is killed with SIGKILL mid-load, restarted on the same queue directory and
// loaded again on the same cards, three times over; after the drain the audit
// (the binary's subcommand and the function) is clean: no acknowledged review
// missing or doubled, every card row equal to the replay of its log.
//
// Reviews in flight at the kill have an unknown outcome and are not in the
// acked list; the replay check still covers them. If it fails, the test looks
// for their traces: review ids the sidecar recorded in the upstream Redis
// (the recent-review hash of each user) that never reached the review log.
// Up to c7c8b35 engine.Review did the cache compare-and-set before the queue
// append, and most runs failed that way: a few reviews per kill were in Redis
// only, and the next reviews of their cards were computed from them.
func TestDurabilityKill9(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	const season, kills = "SEASON-2026", 3
	s := startSidecar(t, e.DSN, e.Redis, e.Prefix, t.TempDir())
	admin := loadClient(s.Addr)
	createSeason(t, admin, season)
	admin.Close()
	st := openStore(t, e.DSN)

	l := newLedger()
	queued := map[string]bool{} // review ids in the queue right after a kill
	spec := loadSpec{Season: season, Players: names("p", 5), Questions: names("q", 4), Workers: 20}
	for cycle := 1; cycle <= kills+1; cycle++ {
		spec.Addr, spec.IDPrefix = s.Addr, fmt.Sprintf("k%d", cycle)
		ld := startLoad(t, spec, l)
		if !waitAcks(l, l.count()+150, 30*time.Second) {
			t.Fatalf("load too slow: %s", l)
		}
		if cycle > kills {
			ld.Stop()
			break
		}
		s.kill()
		acks := l.count()
		ld.Stop()
		onDisk, err := writebehind.ReadAll(s.QueueDir)
		if err != nil {
			t.Fatalf("queue after kill -9: %v", err)
		}
		for _, r := range onDisk {
			queued[r.ID] = true
		}
		s.restart()
		cut := logLines(s.proc.Log.Name(), "cut it off")
		t.Logf("kill %d after %d acks; %d reviews undrained on disk; torn tail cut at restart: %d", cycle, acks, len(onDisk), len(cut))
	}
	t.Logf("load: %s", l)
	drain := waitDrained(t, st, l.acked(), s.QueueDir)
	t.Logf("drained in %s", drain.Round(time.Millisecond))

	// The binary's audit subcommand, as an operator would run it.
	var buf bytes.Buffer
	for _, a := range l.acked() {
		fmt.Fprintf(&buf, "%s %s %s %s\n", a.Season, a.Player, a.Question, a.ReviewID)
	}
	ackedFile := filepath.Join(t.TempDir(), "acked.txt")
	if err := os.WriteFile(ackedFile, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(s.bin, "audit", "--mysql", e.DSN, "--acked", ackedFile).CombinedOutput()
	t.Logf("srsproxy audit: exit %v, last line %q", err, lastLine(out))
	if err != nil {
		t.Errorf("srsproxy audit: %v\n%s", err, out)
	}
	rep := auditClean(t, st, l.acked())
	if rep.Cards != len(spec.Players)*len(spec.Questions) {
		t.Errorf("replayed %d cards, want %d", rep.Cards, len(spec.Players)*len(spec.Questions))
	}
	if rep.Mismatched > 0 {
		reportForks(t, st, season, spec.Players, spec.Questions, l.snapshot())
		for _, p := range phantomReviews(t, e, st, season, spec.Players) {
			t.Errorf("review %s of %s/%s (reps %d → %d) is in the upstream Redis (the card state and the recent-review hash) "+
				"but not in the review log (in the queue after the kill: %v): it was applied to the cache (engine.Review: "+
				"cache.Swap) and the sidecar was killed before its queue append (journal.Append) wrote it; the next reviews "+
				"of the card were computed from this state, so the card row no longer equals the replay of its log",
				p.ID, p.Player, p.QuestionID, p.Before.Reps, p.After.Reps, queued[p.ID])
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// phantomReviews returns the cached card states of these players whose last
// review (the record's last id) is not in the review log: a review the cache
// shows that no queue made durable.
func phantomReviews(t *testing.T, e testEnv, st *mariadb.Store, season string, players []string) []srs.Review {
	t.Helper()
	ctx := context.Background()
	cache, err := rcache.New(rcache.Options{Addrs: []string{e.Redis}, Prefix: e.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	var out []srs.Review
	for _, p := range players {
		cards, loaded, err := cache.UserCards(ctx, season, p)
		if err != nil {
			t.Fatal(err)
		}
		if !loaded {
			continue
		}
		for q, c := range cards {
			if c.Card.LastID == 0 {
				continue
			}
			log, err := st.ReviewLog(ctx, season, p, q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(log, func(r srs.Review) bool { return srs.ReviewHash(r.ID) == c.Card.LastID }) {
				out = append(out, srs.Review{ID: fmt.Sprintf("#%x", c.Card.LastID), Season: season, Player: p, QuestionID: q, After: c.Card.Schedule})
			}
		}
	}
	return out
}

// TestDurabilityMariaDBOutage: MariaDB is cut for 3 s under load. Reviews of
// users whose cache is warm keep being acknowledged into the local queue for
// the whole cut, and the queue grows; reviews of users never loaded are
// refused; after the restore the queue drains and the audit is clean.
func TestDurabilityMariaDBOutage(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dsn, proxy := proxiedDSN(t, e.DSN)
	pe := e
	pe.DSN = dsn
	m, logPath := startQuietMain(t, pe)
	const season = "SEASON-2026"
	admin := client(t, m.Addr(), 2)
	createSeason(t, admin, season)
	st := openStore(t, e.DSN)

	l := newLedger()
	warm := names("w", 8)
	c := loadClient(m.Addr())
	defer c.Close()
	for _, p := range warm {
		if _, err := review(c, l, season, p, "q0", 3, reviewOpts{ID: "warm-" + p}); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
	}
	ld := startLoad(t, loadSpec{Addr: m.Addr(), Season: season, Players: warm, Questions: names("q", 6),
		Workers: 8, IDPrefix: "o"}, l)
	if !waitAcks(l, 100, 30*time.Second) {
		t.Fatalf("load too slow: %s", l)
	}
	logBefore := reviewLogCount(t, st)

	proxy.Cut()
	cutAt := time.Now()
	depth0 := m.queue.Stats().Depth
	// A user never loaded needs MariaDB: refused, not acknowledged.
	time.Sleep(300 * time.Millisecond)
	cold := newLedger()
	for _, p := range names("cold", 3) {
		if _, err := review(c, cold, season, p, "q0", 3, reviewOpts{ID: "cold-" + p}); err == nil {
			t.Errorf("review of un-warmed user %s acknowledged during the outage", p)
		}
	}
	t.Logf("un-warmed users during the outage: %s; sidecar log: %q", cold, logLines(logPath, "cold0"))
	time.Sleep(3*time.Second - time.Since(cutAt))
	stats := m.queue.Stats()
	restoreAt := time.Now()
	inCut := l.acksBetween(cutAt, restoreAt)
	inLastSecond := l.acksBetween(restoreAt.Add(-time.Second), restoreAt)
	proxy.Restore()
	logDuring := reviewLogCount(t, st)

	t.Logf("during the 3s cut: %d acks (%d in its first second, %d in its last second); queue depth %d → %d (%d bytes, oldest %s), %d store retries; review_log rows %d → %d",
		inCut, l.acksBetween(cutAt, cutAt.Add(time.Second)), inLastSecond,
		depth0, stats.Depth, stats.Bytes, stats.OldestAge.Round(time.Millisecond), stats.Retries, logBefore, logDuring)
	if inCut == 0 || inLastSecond == 0 {
		t.Errorf("reviews must be acknowledged throughout the MariaDB outage: %d during the cut, %d in its last second; %s",
			inCut, inLastSecond, l)
	}
	if stats.Depth < inCut {
		t.Errorf("queue depth %d at the end of the cut, want at least the %d reviews acknowledged during it", stats.Depth, inCut)
	}
	if stats.Retries == 0 {
		t.Errorf("the drainer never retried during the cut")
	}

	time.Sleep(500 * time.Millisecond) // the load goes on after the restore
	ld.Stop()
	t.Logf("load: %s", l)
	drain := waitDrained(t, st, l.acked(), m.Config.QueueDir)
	t.Logf("drained %d reviews in %s after the load stopped", stats.Depth, drain.Round(time.Millisecond))
	auditClean(t, st, l.acked())
}

// outageSidecar is an in-process sidecar whose MariaDB connection goes
// through a cuttable proxy, with an active season and one warm user, w0.
func outageSidecar(t *testing.T) (m *Main, logPath string, proxy *faults.Proxy, st *mariadb.Store, c *goredis.Client, l *ledger) {
	t.Helper()
	e := newTestEnv(t)
	dsn, proxy := proxiedDSN(t, e.DSN)
	pe := e
	pe.DSN = dsn
	m, logPath = startQuietMain(t, pe)
	createSeason(t, client(t, m.Addr(), 2), "SEASON-2026")
	st = openStore(t, e.DSN)
	c = loadClient(m.Addr())
	t.Cleanup(func() { c.Close() })
	l = newLedger()
	if _, err := review(c, l, "SEASON-2026", "w0", "q0", 3, reviewOpts{ID: "warm-0"}); err != nil {
		t.Fatal(err)
	}
	return m, logPath, proxy, st, c, l
}

// TestOutageAcksReviewsWithID: during a MariaDB outage, a review of a warm
// user that carries an ID option (the idempotency key the README and the
// write-behind package tell clients to use and to reuse on retry) is
// acknowledged into the local queue like one without.
//
// Regression test: up to c7c8b35 engine.knownReview looked every new id up in
// MariaDB (store.LoggedReview) and refused the review when that failed
// ("ERR internal error", logged as "review id lookup: …"), so an app that
// always sends ids got no acknowledgement for the whole outage.
func TestOutageAcksReviewsWithID(t *testing.T) {
	t.Parallel()
	_, logPath, proxy, st, c, l := outageSidecar(t)
	proxy.Cut()
	// Without ID: acknowledged from the cache and the queue.
	if _, err := review(c, l, "SEASON-2026", "w0", "q1", 3, reviewOpts{}); err != nil {
		t.Errorf("review without ID during the outage: %v", err)
	}
	if _, err := review(c, l, "SEASON-2026", "w0", "q2", 3, reviewOpts{ID: "outage-with-id"}); err != nil {
		t.Errorf("review with ID during the outage refused: %v; sidecar log: %q", err, logLines(logPath, "review id lookup"))
	}
	proxy.Restore()
	waitDrained(t, st, l.acked())
	auditClean(t, st, l.acked())
}

// TestOutageAcksAfterSeasonTTL: a MariaDB outage longer than the 2 s the
// engine caches a season does not stop the acknowledgements of warm users
// (issue 3: "cut for several seconds under load: reviews keep being
// acknowledged").
//
// Regression test: up to c7c8b35 engine.seasonFor refetched the season after
// Config.SeasonTTL and refused the review when MariaDB did not answer ("ERR
// internal error", logged as "season SEASON-2026: invalid connection"), so
// acknowledgements stopped about 2 s into any outage.
func TestOutageAcksAfterSeasonTTL(t *testing.T) {
	t.Parallel()
	_, logPath, proxy, st, c, l := outageSidecar(t)
	proxy.Cut()
	time.Sleep(2500 * time.Millisecond)
	if _, err := review(c, l, "SEASON-2026", "w0", "q1", 3, reviewOpts{}); err != nil {
		t.Errorf("review of a warm user 2.5 s into the outage refused: %v; sidecar log: %q", err, logLines(logPath, "command failed"))
	}
	proxy.Restore()
	waitDrained(t, st, l.acked())
	auditClean(t, st, l.acked())
}

// TestOutageOfflineSyncAcked: during a MariaDB cut, reviews that carry an ID
// and an AT hours old (a mobile app syncing answers given offline) are
// acknowledged at once: an answer after its card's last review cannot have
// been applied, so the card record decides without MariaDB (issue 10: 8
// clients got 1–6 acknowledgements in 5 s at eeeb798, the rest UNCHECKABLE).
// A retry of one is a duplicate; an answer older than its card's last review
// is the one case that needs the log, refused with STOREDOWN while it is down.
func TestOutageOfflineSyncAcked(t *testing.T) {
	t.Parallel()
	m, _, proxy, st, c, l := outageSidecar(t)
	ctx := context.Background()
	proxy.Cut()
	base := time.Now().Add(-5 * time.Hour).UnixMilli()
	const clients, perClient = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients*perClient)
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := loadClient(m.Addr())
			defer cc.Close()
			for i := range perClient {
				q := fmt.Sprintf("off-%d-%d", w, i%5) // five cards per client, answered in AT order
				at := base + int64(i)*60_000
				if _, err := review(cc, l, "SEASON-2026", "w0", q, 3, reviewOpts{ID: fmt.Sprintf("off-%d-%d", w, i), At: at}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	took := time.Since(start)
	for err := range errs {
		t.Errorf("offline-sync review refused during the MariaDB cut: %v", err)
	}
	t.Logf("%d offline-sync reviews (AT 5 h old, with ID) acknowledged in %v during the MariaDB cut", clients*perClient, took)
	// A retry of one of them: a duplicate, answered from the record.
	v, err := c.Do(ctx, "SRS.REVIEW", "w0", "SEASON-2026", "off-0-4", 3, "ID", "off-0-24", "AT", base+24*60_000).Result()
	if rm, _ := replyMap(v); err != nil || rm["duplicate"] != int64(1) && rm["duplicate"] != true {
		t.Errorf("retry during the cut: %v %v, want a duplicate", v, err)
	}
	// Older than the card's last review, new id: only the log can tell.
	_, err = c.Do(ctx, "SRS.REVIEW", "w0", "SEASON-2026", "off-0-4", 3, "ID", "older", "AT", base).Result()
	if err == nil || !strings.HasPrefix(err.Error(), "STOREDOWN") {
		t.Errorf("an answer older than its card's last review during the cut: %v, want STOREDOWN", err)
	}
	proxy.Restore()
	waitDrained(t, st, l.acked(), m.Config.QueueDir)
	auditClean(t, st, l.acked())
}

// TestRetryAfterCacheLossIsDuplicate: review a card, let it drain, lose the
// student's Redis keys, retry the same ID and AT: a duplicate, and the card
// shows one review, not two (issue 10: at eeeb798 the retry answered
// duplicate 0 and the cached card showed reps 3 for two reviews). The
// record's last-review hash comes back from the card row.
func TestRetryAfterCacheLossIsDuplicate(t *testing.T) {
	t.Parallel()
	m, _, _, st, c, l := outageSidecar(t)
	ctx := context.Background()
	at := time.Now().Add(-3 * time.Hour).UnixMilli()
	for i, id := range []string{"first", "second"} {
		if _, err := review(c, l, "SEASON-2026", "w0", "q7", 3, reviewOpts{ID: id, At: at + int64(i)*60_000}); err != nil {
			t.Fatal(err)
		}
	}
	waitDrained(t, st, l.acked(), m.Config.QueueDir)
	lose := func() {
		cache, err := rcache.New(rcache.Options{Addrs: m.Config.Redis, Prefix: m.Config.RedisPrefix})
		if err != nil {
			t.Fatal(err)
		}
		defer cache.Close()
		if err := cache.Invalidate(ctx, "SEASON-2026", "w0"); err != nil {
			t.Fatal(err)
		}
	}
	for _, retry := range []struct {
		id string
		at int64
	}{{"second", at + 60_000}, {"first", at}} {
		lose()
		v, err := c.Do(ctx, "SRS.REVIEW", "w0", "SEASON-2026", "q7", 3, "ID", retry.id, "AT", retry.at).Result()
		rm, _ := replyMap(v)
		if err != nil || rm["duplicate"] != int64(1) && rm["duplicate"] != true || rm["reps"] != int64(2) && retry.id == "second" {
			t.Errorf("retry of %s after the cache lost the student: %v %v, want a duplicate", retry.id, v, err)
		}
	}
	card := asMap(t, mustDo(t, c, "SRS.CARD", "w0", "SEASON-2026", "q7"))
	if card["reps"] != int64(2) {
		t.Errorf("card after two reviews and two retries: %v, want reps 2", card)
	}
}

// TestReviewIDsAreScopedToTheCard: the same id on two students' cards is two
// reviews; the second never answers with the first one's card (issue 10:
// Bob got Alice's q-secret with duplicate 1, and his answer was dropped).
func TestReviewIDsAreScopedToTheCard(t *testing.T) {
	t.Parallel()
	m, _, _, st, c, l := outageSidecar(t)
	if _, err := review(c, l, "SEASON-2026", "alice", "q-secret", 4, reviewOpts{ID: "collide-7"}); err != nil {
		t.Fatal(err)
	}
	v, err := c.Do(context.Background(), "SRS.REVIEW", "bob", "SEASON-2026", "q-other", 1, "ID", "collide-7").Result()
	rm, _ := replyMap(v)
	if err != nil || rm["question_id"] != "q-other" || rm["duplicate"] != int64(0) && rm["duplicate"] != false {
		t.Fatalf("bob's review with alice's id: %v %v", v, err)
	}
	l.ack(ack{Acked: Acked{Season: "SEASON-2026", Player: "bob", Question: "q-other", ReviewID: "collide-7"}, At: time.Now()})
	waitDrained(t, st, l.acked(), m.Config.QueueDir)
	auditClean(t, st, l.acked())
}

// TestDurabilityRedisLoss: the sidecar's own redis-server is killed under load
// and started again empty, three times over. No acknowledged review is lost, the caches reload
// lazily from MariaDB plus the local queue (SRS.CARD and SRS.DUE show every
// review acknowledged before the restart: before the kill, and while Redis
// was down if the sidecar acknowledged any then), and the audit is clean.
//
// It fails at ec13e04 (nearly every run): reviews served between the Redis
// restart and the breaker closing fork their card's history (see the "fork in"
// lines). Most of those forks are the store-path race of
// TestDurabilityCacheOff; with it fixed (pending read before the store read in
// engine.storeCard, tried on a private copy) a few forks remain, acknowledged
// within ~20 ms after the breaker closes.
func TestDurabilityRedisLoss(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rs := faults.StartRedis(t)
	re := e
	re.Redis = rs.Addr()
	m, _ := startQuietMain(t, re)
	const season, losses = "SEASON-2026", 3
	createSeason(t, client(t, m.Addr(), 2), season)
	st := openStore(t, e.DSN)

	l := newLedger()
	players, questions := names("p", 5), names("q", 4)
	ld := startLoad(t, loadSpec{Addr: m.Addr(), Season: season, Players: players, Questions: questions,
		Workers: 10, IDPrefix: "rl"}, l)
	if !waitAcks(l, 200, 30*time.Second) {
		t.Fatalf("load too slow: %s", l)
	}
	c := loadClient(m.Addr())
	defer c.Close()
	ctx := context.Background()
	var outages []string
	for cycle := 1; cycle <= losses; cycle++ {
		rs.Kill()
		killedAt := time.Now()
		time.Sleep(time.Second)
		rs.Start()
		restartedAt := time.Now()
		beforeRestart := l.snapshot()
		t.Logf("redis loss %d: down for %s, %d acks before the kill, %d while down",
			cycle, restartedAt.Sub(killedAt).Round(time.Millisecond), l.acksBetween(time.Time{}, killedAt), l.acksBetween(killedAt, restartedAt))
		// In Safe Mode SRS.DUE is degraded and rate-limited per user: check
		// the reloaded caches once the sidecar serves from Redis again.
		outage := fmt.Sprintf("down %s–%s", killedAt.Format("15:04:05.000"), restartedAt.Format("15:04:05.000"))
		if d, state := waitBreakerClosed(t, c); state != "" {
			t.Logf("redis loss %d: breaker %s %s after the restart", cycle, state, d.Round(time.Millisecond))
			outage += ", breaker closed " + time.Now().Format("15:04:05.000")
		}
		outages = append(outages, outage)

		// Every card shows at least the state of its newest review acknowledged
		// before the restart (the load goes on, so later reviews may add to it).
		type key struct{ player, question string }
		want := map[key]ack{}
		for _, a := range beforeRestart {
			k := key{a.Player, a.Question}
			if w, ok := want[k]; !ok || a.Reps > w.Reps {
				want[k] = a
			}
		}
		var reloadErr error
		deadline := time.Now().Add(10 * time.Second)
		for k, w := range want {
			var card map[string]any
			for {
				v, err := c.Do(ctx, "SRS.CARD", k.player, season, k.question).Result()
				if err == nil {
					card, _ = replyMap(v)
					break
				}
				if time.Now().After(deadline) { // the sidecar's pool reconnects to the new server
					t.Fatalf("SRS.CARD %s %s after the redis restart: %v", k.player, k.question, err)
				}
				reloadErr = err
				time.Sleep(50 * time.Millisecond)
			}
			if reps, _ := card["reps"].(int64); reps < w.Reps {
				t.Errorf("SRS.CARD %s %s after the redis restart: reps %d, but review %s acknowledged before the restart left reps %d",
					k.player, k.question, reps, w.ReviewID, w.Reps)
			}
			if last, _ := card["last_review"].(int64); last < w.LastReview {
				t.Errorf("SRS.CARD %s %s after the redis restart: last_review %d before acknowledged %d", k.player, k.question, last, w.LastReview)
			}
		}
		if reloadErr != nil {
			t.Logf("first SRS.CARD errors after the restart (reconnecting): %v", reloadErr)
		}
		for _, p := range players {
			n := 0
			for k := range want {
				if k.player == p {
					n++
				}
			}
			v, err := c.Do(ctx, "SRS.DUE", p, season, "AT", time.Now().AddDate(200, 0, 0).UnixMilli(), "LIMIT", 50).Result()
			if err != nil {
				t.Fatalf("SRS.DUE %s: %v", p, err)
			}
			due, _ := replyMap(v)
			if total, _ := due["total_due"].(int64); total < int64(n) {
				t.Errorf("SRS.DUE %s after the redis restart: %d cards, want at least the %d reviewed before the restart", p, total, n)
			}
		}
		if cycle < losses && !waitAcks(l, l.count()+150, 30*time.Second) {
			t.Fatalf("load after the redis restart too slow: %s", l)
		}
	}

	afterRestart := l.count()
	if !waitAcks(l, afterRestart+100, 30*time.Second) {
		t.Fatalf("load after the redis restart too slow: %s", l)
	}
	ld.Stop()
	t.Logf("load: %s", l)
	drain := waitDrained(t, st, l.acked(), m.Config.QueueDir)
	t.Logf("drained in %s", drain.Round(time.Millisecond))
	if rep := auditClean(t, st, l.acked()); !rep.Clean() {
		t.Logf("redis %s", strings.Join(outages, "; "))
		reportForks(t, st, season, players, questions, l.snapshot())
	}

	// After the drain the cache and MariaDB agree on every card.
	for _, p := range players {
		for _, q := range questions {
			row, found, err := st.Card(ctx, season, p, q)
			if err != nil {
				t.Fatal(err)
			}
			v, err := c.Do(ctx, "SRS.CARD", p, season, q).Result()
			if !found {
				if err != goredis.Nil {
					t.Errorf("SRS.CARD %s %s: %v %v, but MariaDB has no row", p, q, v, err)
				}
				continue
			}
			card, _ := replyMap(v)
			if err != nil || card["reps"] != int64(row.Reps) || card["last_review"] != row.LastReview || card["due"] != row.Due {
				t.Errorf("SRS.CARD %s %s = %v (%v), MariaDB row %+v", p, q, card, err, row.Schedule)
			}
		}
	}
}

// waitBreakerClosed polls SRS.STATUS until the sidecar's circuit breaker
// around Redis is closed. It returns how long that took and the last state
// seen ("" when the sidecar has no SRS.STATUS).
func waitBreakerClosed(t *testing.T, c *goredis.Client) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	for {
		v, err := c.Do(context.Background(), "SRS.STATUS").Result()
		if err != nil && strings.Contains(err.Error(), "unknown command") {
			return 0, ""
		}
		st, _ := replyMap(v)
		state, _ := st["breaker_state"].(string)
		if err == nil && state == "closed" {
			return time.Since(start), state
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("breaker still %q 30s after the redis restart (%v)", state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDurabilityCacheOff: a season with CACHE OFF reviews straight from
// MariaDB plus the sidecar's undrained queue entries (the path Safe Mode
// uses too), here under concurrent reviews of a few cards while the drainer
// commits batches. After the drain the audit must be clean.
//
// It fails at ec13e04 (about 2 runs in 5): engine.storeCard reads the card from the
// store first and the queue's pending entries second; when the drainer
// commits the card's newest entries between the two reads they are in
// neither, so the review is computed from an older state (a fork in the
// card's log; see the "fork in" lines). engine.load reads them in the safe
// order (pending first). The same race makes TestDurabilityRedisLoss fail:
// its forks all fall between a Redis restart and the breaker closing, while
// Safe Mode serves reviews on this path.
func TestDurabilityCacheOff(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m, _ := startQuietMain(t, e)
	const season = "SEASON-2026"
	createSeason(t, client(t, m.Addr(), 2), season, "CACHE", "OFF")
	st := openStore(t, e.DSN)

	l := newLedger()
	players, questions := names("p", 5), names("q", 4)
	ld := startLoad(t, loadSpec{Addr: m.Addr(), Season: season, Players: players, Questions: questions,
		Workers: 10, IDPrefix: "co"}, l)
	if !waitAcks(l, 1000, 30*time.Second) {
		t.Fatalf("load too slow: %s", l)
	}
	ld.Stop()
	t.Logf("load: %s; queue: %+v", l, m.queue.Stats())
	drain := waitDrained(t, st, l.acked(), m.Config.QueueDir)
	t.Logf("drained in %s", drain.Round(time.Millisecond))
	if rep := auditClean(t, st, l.acked()); !rep.Clean() {
		reportForks(t, st, season, players, questions, l.snapshot())
	}
}

// TestDurabilityTwoSidecars: two sidecar processes with their own queues, one
// MariaDB database and one Redis prefix, review the same few cards at once.
// Review times come from one shared counter, so they are distinct. After both
// queues drain, every card row equals its log replayed in reviewed_at order
// (invariant 3).
func TestDurabilityTwoSidecars(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	const season = "SEASON-2026"
	a := startSidecar(t, e.DSN, e.Redis, e.Prefix, t.TempDir(), "--sidecar-id", "sidecar-a")
	b := startSidecar(t, e.DSN, e.Redis, e.Prefix, t.TempDir(), "--sidecar-id", "sidecar-b")
	admin := loadClient(a.Addr)
	createSeason(t, admin, season)
	admin.Close()
	st := openStore(t, e.DSN)

	var clock atomic.Int64
	clock.Store(time.Now().Add(-time.Hour).UnixMilli())
	at := func() int64 { return clock.Add(1) }
	players, questions := names("p", 2), names("q", 3)
	la, lb := newLedger(), newLedger()
	lda := startLoad(t, loadSpec{Addr: a.Addr, Season: season, Players: players, Questions: questions,
		Workers: 8, IDPrefix: "a", At: at}, la)
	ldb := startLoad(t, loadSpec{Addr: b.Addr, Season: season, Players: players, Questions: questions,
		Workers: 8, IDPrefix: "b", At: at}, lb)
	deadline := time.Now().Add(30 * time.Second)
	for la.count()+lb.count() < 400 || la.count() < 50 || lb.count() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("load too slow: a %s; b %s", la, lb)
		}
		time.Sleep(10 * time.Millisecond)
	}
	lda.Stop()
	ldb.Stop()
	t.Logf("sidecar a: %s", la)
	t.Logf("sidecar b: %s", lb)
	acked := append(la.acked(), lb.acked()...)
	drain := waitDrained(t, st, acked, a.QueueDir, b.QueueDir)
	t.Logf("both queues drained in %s", drain.Round(time.Millisecond))
	rep := auditClean(t, st, acked)
	if rep.Cards != len(players)*len(questions) {
		t.Errorf("replayed %d cards, want %d", rep.Cards, len(players)*len(questions))
	}
	if !rep.Clean() {
		reportForks(t, st, season, players, questions, append(la.snapshot(), lb.snapshot()...))
	}
}

// TestTwoSidecarsRedisLossWhileDrainBehind: sidecar A holds an
// acknowledged, undrained review (its MariaDB link is cut) when the shared
// Redis loses the user's keys; sidecar B then reviews the same card from a
// reload that cannot see A's queue, so the two histories fork. When A's
// review drains late, the store replays the card's log in reviewed_at order
// (docs/CORE.md §5) and A's drainer writes the replayed row into the cache:
// after both drain, the row equals the replay of its log (invariant 3,
// asserted — release 1 only logged this fork) and the cache shows it.
func TestTwoSidecarsRedisLossWhileDrainBehind(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rs := faults.StartRedis(t)
	e.Redis = rs.Addr()
	dsnA, proxyA := proxiedDSN(t, e.DSN)
	ea := e
	ea.DSN = dsnA
	a, _ := startQuietMain(t, ea, "--sidecar-id", "sidecar-a")
	b, _ := startQuietMain(t, e, "--sidecar-id", "sidecar-b")
	const season = "SEASON-2026"
	createSeason(t, client(t, b.Addr(), 2), season)
	st := openStore(t, e.DSN)
	ca, cb := loadClient(a.Addr()), loadClient(b.Addr())
	defer ca.Close()
	defer cb.Close()

	l := newLedger()
	at := time.Now().Add(-5 * time.Minute).UnixMilli() // within the review-id memory: checkable during the cut
	step := func(c *goredis.Client, id string) {
		t.Helper()
		at += 60_000
		if _, err := review(c, l, season, "u", "q0", 3, reviewOpts{ID: id, At: at}); err != nil {
			t.Fatalf("review %q at %d: %v", id, at, err)
		}
	}
	step(cb, "r1-b")
	step(ca, "r2-a") // A's season and the user are cached now
	waitDrained(t, st, l.acked(), a.Config.QueueDir, b.Config.QueueDir)
	proxyA.Cut()
	step(ca, "r3-a") // acknowledged; waits in A's queue
	rs.Kill()
	rs.Start()
	step(cb, "r4-b") // B reloads u from MariaDB
	card, err := cb.Do(context.Background(), "SRS.CARD", "u", season, "q0").Result()
	m, _ := replyMap(card)
	if err != nil {
		t.Fatalf("SRS.CARD through sidecar b: %v", err)
	}
	t.Logf("before A drains: SRS.CARD through sidecar b after 4 acknowledged reviews shows reps %v (a's undrained review is invisible to b)", m["reps"])
	proxyA.Restore()
	waitDrained(t, st, l.acked(), a.Config.QueueDir, b.Config.QueueDir)
	auditClean(t, st, l.acked())
	row, ok, err := st.Card(context.Background(), season, "u", "q0")
	if err != nil || !ok || row.Reps != 4 {
		t.Fatalf("card row after both drained: %+v %v %v, want the replay of 4 reviews", row, ok, err)
	}
	got := asMap(t, mustDo(t, client(t, b.Addr(), 2), "SRS.CARD", "u", season, "q0"))
	if got["reps"] != int64(row.Reps) || got["last_review"] != row.LastReview {
		t.Errorf("SRS.CARD through b after both drained: %v, want the replayed row (reps %d, last review %d)", got, row.Reps, row.LastReview)
	}
}

// TestDurabilityQueueCap: with --queue-max-bytes 1MiB and MariaDB cut, reviews
// are acknowledged until the queue holds 1 MiB, then refused with QUEUEFULL;
// after the restore the queue drains, reviews are accepted again, and every
// acknowledged one is in the review log.
func TestDurabilityQueueCap(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dsn, proxy := proxiedDSN(t, e.DSN)
	const season = "SEASON-2026"
	s := startSidecar(t, dsn, e.Redis, e.Prefix, t.TempDir(), "--queue-max-bytes", "1MiB")
	admin := loadClient(s.Addr)
	defer admin.Close()
	createSeason(t, admin, season)
	st := openStore(t, e.DSN)

	// Long ids and labels make each entry about 0.9 KB: 1 MiB is ~1200 reviews.
	long := func(p string) string { return p + strings.Repeat("x", 120-len(p)) }
	extra := []any{"SUBJECT", long("s"), "TOPIC", long("t"), "STAGE", long("st")}
	const workers = 32
	players := make([]string, workers)
	for i := range players {
		players[i] = long(fmt.Sprintf("player%d-", i))
	}
	questions := make([]string, 8)
	for i := range questions {
		questions[i] = long(fmt.Sprintf("question%d-", i))
	}
	l := newLedger()
	c := loadClient(s.Addr)
	defer c.Close()
	for _, p := range players { // warm every user's cache
		if _, err := review(c, l, season, p, questions[0], 3, reviewOpts{Extra: extra}); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
	}
	waitDrained(t, st, l.acked(), s.QueueDir)
	proxy.Cut()
	cutAt := time.Now()
	ackedBefore := l.count()
	ld := startLoad(t, loadSpec{Addr: s.Addr, Season: season, Players: players, Questions: questions,
		Workers: workers, OwnPlayer: true, IDPrefix: "cap-" + strings.Repeat("x", 100), Extra: extra, StopOn: "QUEUEFULL"}, l)
	deadline := time.Now().Add(10 * time.Second)
	for l.errors("QUEUEFULL") < workers/2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	ld.Stop()
	full := l.errors("QUEUEFULL")
	var onDisk int64
	segs, _ := filepath.Glob(filepath.Join(s.QueueDir, "*.wal"))
	for _, f := range segs {
		if fi, err := os.Stat(f); err == nil {
			onDisk += fi.Size()
		}
	}
	pending, err := writebehind.ReadAll(s.QueueDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MariaDB cut for %s: %d acks then %d QUEUEFULL; queue holds %d reviews in %d bytes of segments; %s",
		time.Since(cutAt).Round(time.Millisecond), l.count()-ackedBefore, full, len(pending), onDisk, l)
	if full == 0 {
		t.Fatalf("no QUEUEFULL refusal with MariaDB cut and a 1 MiB cap: %s", l)
	}
	if onDisk > 1<<20+64<<10 {
		t.Errorf("queue holds %d bytes, over the 1 MiB cap", onDisk)
	}
	if len(pending) < l.count()-ackedBefore {
		t.Errorf("%d reviews acknowledged during the cut but only %d on disk", l.count()-ackedBefore, len(pending))
	}

	proxy.Restore()
	drain := waitDrained(t, st, l.acked(), s.QueueDir)
	t.Logf("drained %d reviews in %s after the restore", len(pending), drain.Round(time.Millisecond))
	if _, err := review(c, l, season, players[1], questions[2], 4, reviewOpts{ID: "after-restore", Extra: extra}); err != nil {
		t.Errorf("review after the drain refused: %v", err)
	}
	waitDrained(t, st, l.acked(), s.QueueDir)
	auditClean(t, st, l.acked())
}

// TestDurabilityTornTail: a sidecar killed with acknowledged reviews still in
// its queue (MariaDB cut), whose last segment then gets a partial frame
// appended (a crash in the middle of writing an unacknowledged entry), starts
// cleanly, logs that it cut the tail, drains, and the audit is clean.
func TestDurabilityTornTail(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dsn, proxy := proxiedDSN(t, e.DSN)
	const season = "SEASON-2026"
	s := startSidecar(t, dsn, e.Redis, e.Prefix, t.TempDir())
	admin := loadClient(s.Addr)
	createSeason(t, admin, season)
	admin.Close()
	st := openStore(t, e.DSN)

	c := loadClient(s.Addr)
	l := newLedger()
	if _, err := review(c, l, season, "p0", "q0", 3, reviewOpts{}); err != nil { // loads the season and p0
		t.Fatal(err)
	}
	waitDrained(t, st, l.acked(), s.QueueDir)
	proxy.Cut()
	for i := range 20 {
		if _, err := review(c, l, season, "p0", fmt.Sprintf("q%d", i%5), 1+i%4, reviewOpts{}); err != nil {
			t.Fatalf("review %d with MariaDB cut: %v", i, err)
		}
	}
	c.Close()
	s.kill()
	proxy.Restore()

	segs, _ := filepath.Glob(filepath.Join(s.QueueDir, "*.wal"))
	if len(segs) == 0 {
		t.Fatal("no queue segment after the kill")
	}
	sort.Strings(segs)
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := writebehind.ReadAll(s.QueueDir)
	if err != nil {
		t.Fatal(err)
	}
	// A frame header announcing 400 bytes of payload (sequence number: the
	// next entry) followed by 37 of them: the write of that entry was cut.
	partial := binary.LittleEndian.AppendUint32(nil, 0xdeadbeef)
	partial = binary.LittleEndian.AppendUint32(partial, 400)
	partial = binary.LittleEndian.AppendUint64(partial, uint64(len(pending)+2))
	partial = append(partial, bytes.Repeat([]byte{0xa5}, 37)...)
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(partial); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Logf("killed with %d acked reviews undrained in %s (%d bytes); appended a %d-byte partial frame",
		len(pending), filepath.Base(last), fi.Size(), len(partial))

	s.restart()
	if log := s.log(); !strings.Contains(log, "cut it off") {
		t.Errorf("the restarted sidecar did not log the cut tail:\n%s", log)
	} else {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "cut it off") {
				t.Logf("sidecar: %s", line)
			}
		}
	}
	drain := waitDrained(t, st, l.acked(), s.QueueDir)
	t.Logf("drained in %s after the restart", drain.Round(time.Millisecond))
	auditClean(t, st, l.acked())
	c = loadClient(s.Addr)
	defer c.Close()
	if _, err := review(c, l, season, "p0", "q0", 3, reviewOpts{ID: "after-torn"}); err != nil {
		t.Fatalf("review after the restart: %v", err)
	}
	waitDrained(t, st, l.acked(), s.QueueDir)
	auditClean(t, st, l.acked())
}

// TestKill9Soak: kill -9 every few seconds under 16 connections of reviews
// with ids, for SRS_SOAK_SECONDS (default 10; the figure is a 60 s
// run: SRS_SOAK_SECONDS=60 SRS_SOAK_EVERY=5s). After the last restart and
// the drain, no acknowledged review is missing or logged twice and every
// card equals the replay of its log.
func TestKill9Soak(t *testing.T) {
	t.Parallel()
	total, every := 10*time.Second, 2500*time.Millisecond
	if v := os.Getenv("SRS_SOAK_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("SRS_SOAK_SECONDS=%q: %v", v, err)
		}
		total = time.Duration(n) * time.Second
	}
	if v := os.Getenv("SRS_SOAK_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SRS_SOAK_EVERY=%q: %v", v, err)
		}
		every = d
	}
	e := newTestEnv(t)
	const season = "SEASON-2026"
	s := startSidecar(t, e.DSN, e.Redis, e.Prefix, t.TempDir())
	admin := loadClient(s.Addr)
	createSeason(t, admin, season)
	admin.Close()
	st := openStore(t, e.DSN)
	l := newLedger()
	spec := loadSpec{Season: season, Players: names("p", 8), Questions: names("q", 6), Workers: 16}
	deadline := time.Now().Add(total)
	kills := 0
	for cycle := 1; ; cycle++ {
		spec.Addr, spec.IDPrefix = s.Addr, fmt.Sprintf("soak%d", cycle)
		ld := startLoad(t, spec, l)
		time.Sleep(min(every, time.Until(deadline)))
		if time.Now().After(deadline) {
			ld.Stop()
			break
		}
		s.kill()
		kills++
		ld.Stop()
		s.restart()
	}
	drain := waitDrained(t, st, l.acked(), s.QueueDir)
	rep := auditClean(t, st, l.acked())
	t.Logf("kill -9 soak: %v, %d kills, 16 connections: %s; %d acknowledged, %d missing, %d doubled; %d cards equal to the replay of their log, %d not; drained in %v",
		total, kills, l, rep.Acked, rep.Missing, rep.Doubled, rep.Cards-rep.Mismatched, rep.Mismatched, drain.Round(time.Millisecond))
}
