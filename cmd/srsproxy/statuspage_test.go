package main

// The status page at / on the admin listener, loaded in headless Chromium
// (Debian chromium, installed by scripts/test-deps) against a sidecar under
// load: the numbers the page's JavaScript renders must be SRS.STATUS's.

import (
	"context"
	"fmt"
	"html"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/internal/faults"
)

// chromiumBin finds the Debian chromium binary.
func chromiumBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium not found: install the Debian package chromium (scripts/test-deps does, as root)")
	return ""
}

// browser renders pages with headless Chromium, letting the page's
// scripts run for a few seconds of virtual time (its polls included).
type browser struct {
	t       *testing.T
	bin     string
	profile string
}

func newBrowser(t *testing.T) *browser {
	return &browser{t: t, bin: chromiumBin(t), profile: t.TempDir()}
}

func (b *browser) args(url string, extra ...string) []string {
	return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + b.profile, "--virtual-time-budget=3000"}, append(extra, url)...)
}

// dom returns the page's DOM after its scripts ran.
func (b *browser) dom(url string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.bin, b.args(url, "--dump-dom")...).Output()
	if err != nil {
		b.t.Fatalf("chromium --dump-dom %s: %v", url, err)
	}
	return string(out)
}

// screenshot saves a PNG of the page.
func (b *browser) screenshot(url, file string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, b.args(url, "--hide-scrollbars", "--window-size=1280,1800", "--screenshot="+file)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
}

// byID returns the text of the element with id (its first text run).
func byID(dom, id string) (string, bool) {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(strings.TrimSpace(m[1])), true
}

// row returns the cells of the table row with id, by class.
func row(dom, id string) map[string]string {
	m := regexp.MustCompile(`<tr id="` + regexp.QuoteMeta(id) + `">(.*?)</tr>`).FindStringSubmatch(dom)
	if m == nil {
		return nil
	}
	cells := map[string]string{}
	for _, c := range regexp.MustCompile(`<td class="([^"]*)"[^>]*>([^<]*)<`).FindAllStringSubmatch(m[1], -1) {
		cells[strings.TrimPrefix(c[1], "n ")] = html.UnescapeString(c[2])
	}
	for _, c := range regexp.MustCompile(`<span class="progress">([^<]*)<`).FindAllStringSubmatch(m[1], -1) {
		cells["progress"] = strings.TrimSpace(html.UnescapeString(c[1]))
	}
	return cells
}

// statusText is how the page renders an SRS.STATUS value.
func statusText(v any) string {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x)
	case map[string]any:
		if len(x) == 0 {
			return "(none)"
		}
		var parts []string
		for k, val := range x {
			parts = append(parts, fmt.Sprintf("%s=%v", k, val))
		}
		slices.Sort(parts)
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v)
}

func srsStatus(t *testing.T, c *goredis.Client) map[string]any {
	t.Helper()
	st := asMap(t, mustDo(t, c, "SRS.STATUS"))
	for _, k := range []string{"cached_users_by_season", "errors"} {
		st[k] = asMap(t, st[k])
	}
	return st
}

func number(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("page shows %q where a number belongs", s)
	}
	return n
}

// TestStatusPageInBrowser loads the page in Chromium while clients review
// and read due lists, then compares what it shows with SRS.STATUS, SRS.JOB
// and SRS.SEASON INFO: live, after the load, and while MariaDB is cut off
// and reviews wait in the queue.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	e := newTestEnv(t)
	dsn, db := proxiedDSN(t, e.DSN)
	e.DSN = dsn
	admin := "127.0.0.1:" + strconv.Itoa(faults.FreePort(t))
	m := startMain(t, e, "--admin-listen", admin)
	url := "http://" + admin + "/"
	c := client(t, m.Addr(), 3)
	const season = "SEASON-2026"
	createSeason(t, c, season)

	// Load: reviews and due reads from 4 clients over 40 students.
	load, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var loadErr error
	var errOnce sync.Once
	for w := range 4 {
		wg.Go(func() {
			lc := goredis.NewClient(&goredis.Options{Addr: m.Addr(), PoolSize: 1})
			defer lc.Close()
			for i := 0; load.Err() == nil; i++ {
				player := fmt.Sprintf("p%d", (w*10+i)%40)
				err := lc.Do(load, "SRS.REVIEW", player, season, fmt.Sprintf("q%d", i%25), 3).Err()
				if err == nil {
					err = lc.Do(load, "SRS.DUE", player, season).Err()
				}
				if err != nil && load.Err() == nil {
					errOnce.Do(func() { loadErr = err })
					return
				}
			}
		})
	}
	stopLoad := func() {
		stop()
		wg.Wait()
		if loadErr != nil {
			t.Fatalf("load: %v", loadErr)
		}
	}
	defer stopLoad()

	// Under load: the per-command table shows both commands with a rate and
	// quantiles, the charts have lines, and the monotone counters shown lie
	// between the SRS.STATUS before and after the page was rendered.
	deadline := time.Now().Add(60 * time.Second)
	for {
		before := srsStatus(t, c)
		dom := b.dom(url)
		after := srsStatus(t, c)
		rev, due := row(dom, "cmd-SRS.REVIEW"), row(dom, "cmd-SRS.DUE")
		ok := rev != nil && due != nil && rev["rate"] != "0.0" && due["rate"] != "0.0" && rev["p99"] != "–"
		if ok {
			drained := number(t, mustText(t, dom, "st-drained"))
			if lo, hi := before["drained"].(int64), after["drained"].(int64); drained < lo || drained > hi {
				t.Fatalf("page shows drained %d, SRS.STATUS said %d before and %d after", drained, lo, hi)
			}
			for _, k := range []string{"version", "sidecar", "breaker_state", "redis_connected"} {
				if got, want := mustText(t, dom, "st-"+k), statusText(after[k]); got != want {
					t.Errorf("under load, page %s = %q, SRS.STATUS %q", k, got, want)
				}
			}
			if !regexp.MustCompile(`<svg id="c-request_rate"[^>]*>.*?<polyline points="[-0-9.]+,[-0-9.]+ `).MatchString(dom) {
				t.Errorf("the request-rate chart has no line:\n%s", dom)
			}
			p50, p99 := mustFloat(t, rev["p50"]), mustFloat(t, rev["p99"])
			if p50 <= 0 || p99 < p50 {
				t.Errorf("SRS.REVIEW p50 %v p99 %v", p50, p99)
			}
			t.Logf("under load: SRS.REVIEW %s/s p50 %s ms p99 %s ms; SRS.DUE %s/s p50 %s ms p99 %s ms; drained %d (SRS.STATUS %d..%d); hit ratio %s",
				rev["rate"], rev["p50"], rev["p99"], due["rate"], due["p50"], due["p99"], drained, before["drained"], after["drained"], mustText(t, dom, "t-hit_ratio"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed SRS.REVIEW and SRS.DUE rates under load: %v %v", rev, due)
		}
	}
	if dir := os.Getenv("SRSPROXY_STATUS_SCREENSHOT"); dir != "" {
		b.screenshot(url, dir)
	}
	stopLoad()

	// A rebuild job: the page lists it with SRS.JOB's state and progress.
	final := rebuild(t, c, season)
	jobID := final["id"].(string)
	info := asMap(t, mustDo(t, c, "SRS.SEASON", "INFO", season))

	// After the load: every field equals SRS.STATUS once the sample (1 s) and
	// the seasons (10 s) are fresh.
	equalEventually(t, b, url, c, func(dom string, st map[string]any) []string {
		var diffs []string
		for _, k := range []string{"queue_depth", "queue_bytes", "drained", "dead_letters", "breaker_state", "safe_mode_since",
			"degraded_redis", "degraded_mariadb", "redis_connected", "drain_stalled", "cached_users_by_season", "version", "sidecar", "errors"} {
			if got, want := mustText(t, dom, "st-"+k), statusText(st[k]); got != want {
				diffs = append(diffs, fmt.Sprintf("%s: page %q, SRS.STATUS %q", k, got, want))
			}
		}
		if got, want := mustText(t, dom, "t-queue_depth"), statusText(st["queue_depth"]); got != want {
			diffs = append(diffs, fmt.Sprintf("queue depth tile %q, SRS.STATUS %q", got, want))
		}
		s := row(dom, "season-"+season)
		if want := fmt.Sprint(info["cards"]); s["cards"] != want {
			diffs = append(diffs, fmt.Sprintf("season cards: page %q, SRS.SEASON INFO %s", s["cards"], want))
		}
		if want := fmt.Sprint(asMap(t, st["cached_users_by_season"])[season]); s["cached"] != want {
			diffs = append(diffs, fmt.Sprintf("season cached users: page %q, SRS.STATUS %s", s["cached"], want))
		}
		j := row(dom, "job-"+jobID)
		if want := fmt.Sprintf("%v / %v", final["processed"], final["total"]); j["state"] != mariadb.JobDone || j["progress"] != want {
			diffs = append(diffs, fmt.Sprintf("job %s: page %v, SRS.JOB %v", jobID, j, final))
		}
		return diffs
	})

	// MariaDB cut off: reviews wait in the queue. The page shows the same
	// depth, bytes and drained count as SRS.STATUS, and a depth above zero.
	db.Cut()
	defer db.Restore()
	for i := range 30 {
		mustDo(t, c, "SRS.REVIEW", fmt.Sprintf("p%d", i%40), season, "cut-"+strconv.Itoa(i), 3)
	}
	equalEventually(t, b, url, c, func(dom string, st map[string]any) []string {
		var diffs []string
		if st["queue_depth"].(int64) < 30 {
			diffs = append(diffs, fmt.Sprintf("SRS.STATUS queue_depth %v with MariaDB cut, want at least 30", st["queue_depth"]))
		}
		for _, k := range []string{"queue_depth", "queue_bytes", "drained", "dead_letters", "breaker_state"} {
			if got, want := mustText(t, dom, "st-"+k), statusText(st[k]); got != want {
				diffs = append(diffs, fmt.Sprintf("%s: page %q, SRS.STATUS %q", k, got, want))
			}
		}
		if got := number(t, mustText(t, dom, "st-queue_oldest_age_ms")); got <= 0 || got > st["queue_oldest_age_ms"].(int64) {
			diffs = append(diffs, fmt.Sprintf("queue_oldest_age_ms: page %d, SRS.STATUS (later) %v", got, st["queue_oldest_age_ms"]))
		}
		return diffs
	})
}

func mustText(t *testing.T, dom, id string) string {
	t.Helper()
	s, ok := byID(dom, id)
	if !ok {
		t.Fatalf("no element #%s on the page:\n%s", id, dom)
	}
	return s
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("page shows %q where a number belongs", s)
	}
	return f
}

// equalEventually renders the page until diff, given the DOM and the
// SRS.STATUS taken right after it, finds nothing (or fails after 45 s
// with the last differences).
func equalEventually(t *testing.T, b *browser, url string, c *goredis.Client, diff func(dom string, st map[string]any) []string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		dom := b.dom(url)
		d := diff(dom, srsStatus(t, c))
		if len(d) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page does not match:\n  %s", strings.Join(d, "\n  "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// historyItems returns the texts of the list items of the list with id.
func historyItems(dom, id string) []string {
	m := regexp.MustCompile(`<ol id="` + regexp.QuoteMeta(id) + `"[^>]*>(.*?)</ol>`).FindStringSubmatch(dom)
	if m == nil {
		return nil
	}
	var out []string
	for _, li := range regexp.MustCompile(`<li[^>]*>([^<]*)</li>`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, html.UnescapeString(li[1]))
	}
	return out
}

// pageStamp is how the page writes a unix-ms time.
func pageStamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// TestStatusPageSafeModeInBrowser: an upstream Redis outage, seen on the
// page as SRS.STATUS reports it: the breaker, Safe Mode since, its history
// (entered, then left) and the breaker's transitions.
func TestStatusPageSafeModeInBrowser(t *testing.T) {
	t.Parallel()
	b := newBrowser(t)
	r := startRig(t, rigOpts{adminHTTP: true, flags: []string{"--breaker-open", "200ms", "--safe-rpm", "60000", "--safe-user-interval", "1ns"}})
	url := r.admin + "/"
	r.review(r.c3, "stu", "q1", 1, time.Now().Add(-time.Hour).UnixMilli())
	if h := historyItems(b.dom(url), "safe-history"); len(h) != 1 || h[0] != "none since start" {
		t.Fatalf("Safe Mode history before any outage: %q", h)
	}

	r.gate.Cut()
	r.trip(r.c2, "stu")
	var since int64
	equalEventually(t, b, url, r.c3, func(dom string, st map[string]any) []string {
		var diffs []string
		since, _ = st["safe_mode_since"].(int64)
		if since == 0 || !isTrue(st["degraded_redis"]) {
			return []string{fmt.Sprintf("SRS.STATUS not in Safe Mode: %v", st)}
		}
		if got := mustText(t, dom, "st-safe_mode_since"); got != strconv.FormatInt(since, 10) {
			diffs = append(diffs, fmt.Sprintf("safe_mode_since: page %s, SRS.STATUS %d", got, since))
		}
		if got := mustText(t, dom, "st-degraded_redis"); got != "true" {
			diffs = append(diffs, "degraded_redis: page "+got)
		}
		if got := mustText(t, dom, "t-breaker"); got != "open" && got != "half-open" {
			diffs = append(diffs, "breaker tile: "+got)
		}
		if got := mustText(t, dom, "t-safe_mode"); got != "SAFE MODE since "+pageStamp(since) {
			diffs = append(diffs, "Safe Mode tile: "+got)
		}
		if h := historyItems(dom, "safe-history"); len(h) != 1 || h[0] != "entered "+pageStamp(since)+", still in Safe Mode" {
			diffs = append(diffs, fmt.Sprintf("Safe Mode history %q", h))
		}
		return diffs
	})
	if shot := os.Getenv("SRSPROXY_STATUS_SCREENSHOT_SAFE"); shot != "" {
		b.screenshot(url, shot)
	}

	r.gate.Restore()
	r.waitServedFromCache(r.c3, "stu")
	equalEventually(t, b, url, r.c3, func(dom string, st map[string]any) []string {
		var diffs []string
		if st["safe_mode_since"] != int64(0) || st["breaker_state"] != "closed" {
			return []string{fmt.Sprintf("SRS.STATUS still in Safe Mode: %v", st)}
		}
		for _, k := range []string{"safe_mode_since", "breaker_state", "degraded_redis", "redis_connected"} {
			if got, want := mustText(t, dom, "st-"+k), statusText(st[k]); got != want {
				diffs = append(diffs, fmt.Sprintf("%s: page %q, SRS.STATUS %q", k, got, want))
			}
		}
		h := historyItems(dom, "safe-history")
		if len(h) != 1 || !strings.HasPrefix(h[0], "entered "+pageStamp(since)+", left ") {
			diffs = append(diffs, fmt.Sprintf("Safe Mode history %q", h))
		}
		// The breaker is sampled once a second: with --breaker-open 200ms the
		// sample may see open or half-open, but it sees the outage.
		bh := historyItems(dom, "breaker-history") // newest first
		if len(bh) < 3 || !strings.HasSuffix(bh[0], "→ closed") || !slices.ContainsFunc(bh, func(s string) bool {
			return strings.HasSuffix(s, "→ open") || strings.HasSuffix(s, "→ half-open")
		}) {
			diffs = append(diffs, fmt.Sprintf("breaker history %q", bh))
		}
		return diffs
	})
}
