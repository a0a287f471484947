package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// seasonStore is a Store whose Season can answer, fail or hang. Only
// Season is implemented; the embedded nil Store panics on anything else.
type seasonStore struct {
	Store
	mu       sync.Mutex
	season   srs.Season
	err      error
	hang     bool
	calls    int
	inFlight atomic.Int32
	maxIn    atomic.Int32
	called   chan string // a name per call, if not nil (buffered by the test)
}

func (f *seasonStore) Season(ctx context.Context, name string) (srs.Season, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxIn.Load()
		if n <= m || f.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.calls++
	s, err, hang, called := f.season, f.err, f.hang, f.called
	f.mu.Unlock()
	if called != nil {
		called <- name
	}
	if hang {
		<-ctx.Done()
		return srs.Season{}, fmt.Errorf("season %s: %w", name, ctx.Err())
	}
	if err != nil {
		return srs.Season{}, err
	}
	if s.Name != name {
		return srs.Season{}, srs.ErrUnknownSeason
	}
	return s, nil
}

func (f *seasonStore) set(fn func(f *seasonStore)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

func (f *seasonStore) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func activeSeason(name string, retention float64) srs.Season {
	sc := srs.DefaultSchedulerConfig()
	sc.DesiredRetention = retention
	return srs.Season{Name: name, IsActive: true, PartitionCreated: true, EnableCache: true, Scheduler: sc}
}

// snapshotCache is the part of a cache the season paths use: the settings
// snapshots.
type snapshotCache struct {
	Cache
	mu    sync.Mutex
	snaps map[string]srs.Season
}

func (c *snapshotCache) PutSeasonSnapshot(_ context.Context, s srs.Season) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snaps[s.Name] = s
	return nil
}

func (c *snapshotCache) SeasonSnapshot(_ context.Context, name string) (srs.Season, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.snaps[name]
	return s, ok, nil
}

// seasonEngine is an engine over a seasonStore with a fake clock and a log
// buffer; of the cache only the season snapshots are used, and the queue never.
func seasonEngine(t *testing.T, st *seasonStore) (*Engine, *fakeClock, *lockedBuffer) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	logs := &lockedBuffer{}
	cache := &snapshotCache{snaps: map[string]srs.Season{}}
	e, err := New(cache, st, nil, Config{Now: clock.Now, SeasonTTL: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e, clock, logs
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func retentionOf(t *testing.T, e *Engine, name string) float64 {
	t.Helper()
	s, sched, err := e.seasonFor(context.Background(), name)
	if err != nil {
		t.Fatalf("seasonFor %s: %v", name, err)
	}
	if sched == nil {
		t.Fatalf("seasonFor %s: no scheduler", name)
	}
	return s.Scheduler.DesiredRetention
}

// waitFor polls cond (the refresh runs on its own goroutine) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A season seen before is served at once while MariaDB hangs, however old
// its settings; one refresh at a time runs in the background; once MariaDB
// answers again the new settings are served.
func TestSeasonServedStaleWhileStoreHangs(t *testing.T) {
	t.Parallel()
	st := &seasonStore{season: activeSeason("S-1", 0.9)}
	e, clock, logs := seasonEngine(t, st)
	if r := retentionOf(t, e, "S-1"); r != 0.9 {
		t.Fatalf("first read: retention %v", r)
	}
	st.set(func(f *seasonStore) { f.hang = true })
	for i := range 200 {
		clock.Add(time.Second) // the settings age far past SeasonTTL
		start := time.Now()
		if r := retentionOf(t, e, "S-1"); r != 0.9 {
			t.Fatalf("request %d during the hang: retention %v, want the cached 0.9", i, r)
		}
		if took := time.Since(start); took > 100*time.Millisecond {
			t.Fatalf("request %d waited %s on the hung store", i, took)
		}
	}
	if n := st.maxIn.Load(); n != 1 {
		t.Errorf("%d concurrent reads of the season's settings, want one refresh at a time", n)
	}
	// The hung refresh ends at its deadline and says so, once.
	waitFor(t, "the refresh failure's log line", func() bool { return strings.Contains(logs.String(), "season settings refresh failed") })
	calls := st.callCount()
	if calls > 2 {
		t.Errorf("%d store reads for 200 requests over 200 s of fake time with refreshes hanging", calls)
	}

	st.set(func(f *seasonStore) { f.hang, f.season = false, activeSeason("S-1", 0.8) })
	waitFor(t, "the new settings", func() bool {
		clock.Add(time.Second)
		return retentionOf(t, e, "S-1") == 0.8
	})
	t.Logf("store reads: %d; log:\n%s", st.callCount(), logs.String())
}

// Refresh failures are logged rate-limited, not per request or per refresh.
func TestSeasonRefreshFailuresRateLimited(t *testing.T) {
	t.Parallel()
	st := &seasonStore{season: activeSeason("S-1", 0.9)}
	e, clock, logs := seasonEngine(t, st)
	retentionOf(t, e, "S-1")
	st.set(func(f *seasonStore) { f.err = errors.New("connection refused") })
	for range 50 {
		clock.Add(3 * time.Second) // > SeasonTTL: each request may start a refresh
		before := st.callCount()
		retentionOf(t, e, "S-1")
		waitFor(t, "a refresh", func() bool { return st.callCount() > before })
	}
	e.jobs.Wait()
	n := strings.Count(logs.String(), "season settings refresh failed")
	// 50 refreshes over 150 s of fake time, one line per LogEvery (10 s).
	if n < 1 || n > 16 {
		t.Errorf("%d log lines for 50 failed refreshes over 150 s, want about one per %s:\n%s", n, LogEvery, logs.String())
	}
	if !strings.Contains(logs.String(), "suppressed=") {
		t.Errorf("no suppressed count in the log:\n%s", logs.String())
	}
}

// The first sight of a season reads the store: concurrent callers share
// one read, bounded by SeasonReadTimeout, and fail with STOREDOWN's error
// when it hangs; a caller whose context ends first gets its context's error.
func TestSeasonFirstSightDeadline(t *testing.T) {
	t.Parallel()
	st := &seasonStore{season: activeSeason("S-1", 0.9), hang: true}
	e, _, _ := seasonEngine(t, st)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := e.seasonFor(ctx, "S-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a caller with a 50ms deadline waited %s", took)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = e.seasonFor(context.Background(), "S-1") })
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if !errors.Is(err, srs.ErrStoreUnavailable) {
			t.Errorf("caller %d: %v, want srs.ErrStoreUnavailable", i, err)
		}
	}
	if took < SeasonReadTimeout-100*time.Millisecond || took > SeasonReadTimeout+time.Second {
		t.Errorf("first sight with a hung store took %s, want about SeasonReadTimeout (%s)", took, SeasonReadTimeout)
	}
	if n := st.maxIn.Load(); n != 1 {
		t.Errorf("%d concurrent store reads, want 1 (shared)", n)
	}
	// Once it answers, the season is read and served.
	st.set(func(f *seasonStore) { f.hang = false })
	if r := retentionOf(t, e, "S-1"); r != 0.9 {
		t.Fatalf("after the hang: retention %v", r)
	}
	if _, _, err := e.seasonFor(context.Background(), "S-2"); !errors.Is(err, srs.ErrUnknownSeason) {
		t.Fatalf("unknown season: %v", err)
	}
}

// A local change forgets the settings; a refresh that was in flight,
// which read the old settings, does not put them back.
func TestForgetSeasonDuringRefresh(t *testing.T) {
	t.Parallel()
	st := &seasonStore{season: activeSeason("S-1", 0.9)}
	e, clock, _ := seasonEngine(t, st)
	retentionOf(t, e, "S-1")

	release := make(chan struct{})
	called := make(chan string, 1)
	slow := &slowSeason{seasonStore: st, release: release}
	e.store = slow
	st.set(func(f *seasonStore) { f.called = called })
	clock.Add(3 * time.Second)
	retentionOf(t, e, "S-1") // starts a refresh, which blocks in the store
	<-called
	st.set(func(f *seasonStore) { f.called = nil })

	e.forgetSeason("S-1") // SRS.SEASON SET on this sidecar…
	st.set(func(f *seasonStore) { f.season = activeSeason("S-1", 0.7) })
	slow.old = activeSeason("S-1", 0.9) // …while the refresh had read the old row
	close(release)
	e.jobs.Wait()
	if r := retentionOf(t, e, "S-1"); r != 0.7 {
		t.Fatalf("after the local change: retention %v, want 0.7 (the in-flight refresh must not cache what it read before)", r)
	}
}

// slowSeason answers the first blocked call with old once release closes.
type slowSeason struct {
	*seasonStore
	release chan struct{}
	old     srs.Season
	once    atomic.Bool
}

func (s *slowSeason) Season(ctx context.Context, name string) (srs.Season, error) {
	if s.once.CompareAndSwap(false, true) {
		s.seasonStore.mu.Lock()
		called := s.seasonStore.called
		s.seasonStore.mu.Unlock()
		if called != nil {
			called <- name
		}
		<-s.release
		return s.old, nil
	}
	return s.seasonStore.Season(ctx, name)
}

// A refresh that finds the season gone forgets it.
func TestSeasonRefreshUnknownForgets(t *testing.T) {
	t.Parallel()
	st := &seasonStore{season: activeSeason("S-1", 0.9)}
	e, clock, _ := seasonEngine(t, st)
	retentionOf(t, e, "S-1")
	st.set(func(f *seasonStore) { f.season = srs.Season{} })
	clock.Add(3 * time.Second)
	retentionOf(t, e, "S-1") // still served: the refresh runs behind
	e.jobs.Wait()
	if _, _, err := e.seasonFor(context.Background(), "S-1"); !errors.Is(err, srs.ErrUnknownSeason) {
		t.Fatalf("after the refresh found it gone: %v", err)
	}
}

// servingSeason keeps its checks on the cached settings.
func TestServingSeasonFromCache(t *testing.T) {
	t.Parallel()
	s := activeSeason("S-1", 0.9)
	s.IsActive = false
	st := &seasonStore{season: s}
	e, _, _ := seasonEngine(t, st)
	for range 3 {
		if _, _, err := e.servingSeason(context.Background(), "S-1"); !errors.Is(err, srs.ErrSeasonInactive) {
			t.Fatalf("inactive season: %v", err)
		}
	}
	if n := st.callCount(); n != 1 {
		t.Errorf("%d store reads, want 1", n)
	}
}

// A sidecar that meets a season for the first time while MariaDB is down
// serves it from the snapshot another sidecar (here: an earlier engine)
// left in the cache.
func TestSeasonFromSnapshotWhileStoreDown(t *testing.T) {
	t.Parallel()
	st := &seasonStore{season: activeSeason("S-1", 0.85)}
	first, _, _ := seasonEngine(t, st)
	if _, _, err := first.seasonFor(context.Background(), "S-1"); err != nil {
		t.Fatal(err)
	}
	second, _, _ := seasonEngine(t, st)
	second.cache = first.cache // the shared Redis
	st.set(func(f *seasonStore) { f.err = errors.New("connection refused") })
	s, sched, err := second.seasonFor(context.Background(), "S-1")
	if err != nil || sched == nil || s.Scheduler.DesiredRetention != 0.85 {
		t.Fatalf("season met while the store is down: %+v %v", s, err)
	}
	if _, _, err := second.seasonFor(context.Background(), "S-2"); !errors.Is(err, srs.ErrStoreUnavailable) {
		t.Fatalf("a season with no snapshot while the store is down: %v, want srs.ErrStoreUnavailable", err)
	}
}

// SRS.RECONCILE of a season that does not exist is an error, not an empty OK.
func TestReconcileUnknownSeason(t *testing.T) {
	t.Parallel()
	e, _, _ := seasonEngine(t, &seasonStore{season: activeSeason("S-1", 0.9)})
	if _, err := e.Reconcile(context.Background(), "S-NONE", 10); !errors.Is(err, srs.ErrUnknownSeason) {
		t.Fatalf("reconcile of an unknown season: %v, want srs.ErrUnknownSeason", err)
	}
}
