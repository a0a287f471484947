package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sidecarBin returns $SRSPROXY_BIN (make test sets it) or builds the sidecar.
func sidecarBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SRSPROXY_BIN"); p != "" {
		return p
	}
	path := filepath.Join(t.TempDir(), "srsproxy")
	if out, err := exec.Command("go", "build", "-o", path, "../srsproxy").CombinedOutput(); err != nil {
		t.Fatalf("go build ../srsproxy: %v\n%s", err, out)
	}
	return path
}

// TestQuickProfile runs the whole benchmark with --profile quick against the
// machine's MariaDB (its own database) and private redis-servers: seed, every
// scenario on every target, the system figures, the report files.
func TestQuickProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark")
	}
	bin := sidecarBin(t)
	out := t.TempDir()
	host := cmpOr(os.Getenv("MYSQL_HOST"), "127.0.0.1:3306")
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	args := []string{"--profile", "quick", "--bin", bin, "--out", out,
		"--mysql", "root@tcp(" + host + ")/srsbench_t" + suffix, "--prefix", "srsbench-t" + suffix}
	o, err := ParseOptions(args, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	o.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	if err := rep.write(out); err != nil {
		t.Fatal(err)
	}

	if len(rep.Seeds) != 2 || rep.Seeds[1].RowsPerSecond <= 0 {
		t.Errorf("seeds = %+v", rep.Seeds)
	}
	want := map[string]bool{}
	for _, target := range []string{targetSidecar, targetRedis, targetMariaDB} {
		want["due/closed/"+target] = true
	}
	for _, s := range []string{"review", "session", "mixed"} {
		want[s+"/closed/"+targetSidecar] = true
	}
	want["review/closed/"+targetRedisAOF] = true
	want["mixed/open/"+targetSidecar] = true
	want["due/open/"+targetSafeMode] = true
	for _, r := range rep.Runs {
		delete(want, r.Scenario+"/"+r.Mode+"/"+r.Target)
		if r.Latency.Count == 0 {
			t.Errorf("%s %s %s c=%d: no request completed", r.Scenario, r.Mode, r.Target, r.Conns)
		}
		// Errors are allowed under load, but not a run that is mostly errors.
		if r.Errors > r.Latency.Count/10+5 {
			t.Errorf("%s %s %s c=%d: %d errors for %d replies: %v", r.Scenario, r.Mode, r.Target, r.Conns, r.Errors, r.Latency.Count, r.ErrorKinds)
		}
	}
	if len(want) > 0 {
		t.Errorf("runs missing: %v", sortedKeys(want))
	}
	if len(rep.System.Memory) == 0 || rep.System.Memory[0].BytesPerCard <= 0 {
		t.Errorf("memory figures = %+v", rep.System.Memory)
	}
	if rep.System.DrainSamples == 0 {
		t.Error("no drain lag sample taken under the mixed load")
	}
	if d := rep.System.DrainBacklog; d.Rows == 0 || d.RowsPerSecond <= 0 {
		t.Errorf("no drain backlog measured: %+v", d)
	}
	if len(rep.Targets) != 8 {
		t.Errorf("%d targets evaluated, want 8", len(rep.Targets))
	}

	var back Report
	b, err := os.ReadFile(filepath.Join(out, "quick.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("quick.json: %v", err)
	}
	md, err := os.ReadFile(filepath.Join(out, "quick.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## Machine", "## Load", "## Targets (issue 11)", "| due | closed |"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("quick.md lacks %q", s)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"default", nil, true},
		{"quick", []string{"--profile", "quick"}, true},
		{"full", []string{"--profile", "full"}, true},
		{"unknown profile", []string{"--profile", "huge"}, false},
		{"cards override", []string{"--cards", "1000000,2000000"}, true},
		{"bad cards", []string{"--cards", "ten"}, false},
		{"scale below one user", []string{"--cards", "100"}, false},
		{"session needs 50 cards", []string{"--cards-per-user", "20"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseOptions(tc.args, os.Stderr)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseOptions(%v) = %v, want ok=%v", tc.args, err, tc.ok)
			}
			if err == nil {
				full := 0
				for _, s := range o.Scales {
					if s.Full {
						full++
					}
				}
				if full != 1 {
					t.Errorf("%d full scales, want 1", full)
				}
			}
		})
	}
}

func TestDatasetIsDeterministic(t *testing.T) {
	t.Parallel()
	a := newDataset("SEASON-2026-X", 10, 200, 5, 1_800_000_000_000)
	b := newDataset("SEASON-2026-X", 10, 200, 5, 1_800_000_000_000)
	overdue := 0
	for j := range 200 {
		ca, cb := a.card(3, j), b.card(3, j)
		if ca != cb || ca.QuestionID != a.question(3, j) {
			t.Fatalf("card 3/%d differs between two datasets", j)
		}
		if ca.LastReview >= a.Now || ca.LastReview > ca.Due {
			t.Fatalf("card 3/%d: last review %d, due %d, now %d", j, ca.LastReview, ca.Due, a.Now)
		}
		if ca.Due <= a.Now {
			overdue++
		}
	}
	if overdue < 10 || overdue > 50 {
		t.Errorf("%d of 200 cards overdue, want about %d", overdue, int(200*overdueShare))
	}
	cards := a.userCards(3)
	for i := 1; i < len(cards); i++ {
		if cards[i-1].QuestionID >= cards[i].QuestionID {
			t.Fatal("userCards not in question id order")
		}
	}
}
