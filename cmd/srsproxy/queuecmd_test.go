package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/srsproxy/srsproxy/srs"
	"github.com/srsproxy/srsproxy/writebehind"
)

// `srsproxy queue check` reports a damaged entry and exits 1; `repair` cuts
// it, says one acknowledged entry is lost, and the queue opens again.
func TestQueueCheckRepair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, err := writebehind.Open(writebehind.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r := srs.Review{ID: fmt.Sprintf("r%d", i), Season: "S", Player: "p", QuestionID: fmt.Sprintf("q%d", i),
			Subject: "math", Grade: srs.Grade(3), ReviewedAt: 1_767_225_600_000 + int64(i), Sidecar: "node-1",
			After: srs.Schedule{State: srs.StateReview, Stability: 3.5, Difficulty: 5, Reps: 1}}
		if err := q.AppendDurable(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := runQueue(args, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := run("check", "--queue-dir", dir); code != 1 || !strings.Contains(out, segs[0]) ||
		!strings.Contains(out, "unreadable") || !strings.Contains(out, "does NOT open") {
		t.Fatalf("check = %d:\n%s", code, out)
	}
	code, out := run("repair", "--queue-dir", dir)
	if code != 0 || !strings.Contains(out, "1 acknowledged entries (after the drained checkpoint) could not be read") ||
		!strings.Contains(out, "the queue opens") {
		t.Fatalf("repair = %d:\n%s", code, out)
	}
	t.Logf("repair output:\n%s", out)
	if code, out := run("check", "--queue-dir", dir); code != 0 || !strings.Contains(out, "undrained entries: 9") {
		t.Fatalf("check after repair = %d:\n%s", code, out)
	}
	if code, _ := run("check"); code != 2 {
		t.Fatalf("check without --queue-dir = %d, want 2", code)
	}
	if code, _ := run("fix", "--queue-dir", dir); code != 2 {
		t.Fatalf("unknown subcommand = %d, want 2", code)
	}
	q, err = writebehind.Open(writebehind.Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open after repair: %v", err)
	}
	q.Close()
}
