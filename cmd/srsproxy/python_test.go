package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Python client (clients/python) and memora's example endpoints
// (examples/memora), each tested with python3 -m unittest against this
// sidecar.
const (
	pythonClientDir = "../../clients/python"
	memoraExample   = "../../examples/memora"
)

// runUnittest runs python3 -m unittest with args in dir and fails unless
// every test ran and passed (want is the number of tests that must run).
func runUnittest(t *testing.T, dir string, env []string, want int, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append([]string{"-m", "unittest", "-v"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("python3 -m unittest %s:\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatalf("python3 -m unittest %s: %v", strings.Join(args, " "), err)
	}
	m := regexp.MustCompile(`Ran (\d+) tests?`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no test ran")
	}
	if n, _ := strconv.Atoi(m[1]); n != want {
		t.Fatalf("%d tests ran, want %d", n, want)
	}
	if strings.Contains(out.String(), "skipped") {
		t.Fatalf("tests were skipped")
	}
}

// TestPythonClient runs the client's tests over RESP2 and RESP3 (redis-py
// as Debian ships it), then memora's endpoints, then stops the sidecar's
// private Redis and checks that get_review_session says is_degraded.
func TestPythonClient(t *testing.T) {
	t.Parallel()
	needRedisPy(t)
	r := startRig(t, rigOpts{directRedis: true, flags: []string{
		"--safe-rpm", "60000", "--safe-user-interval", "1ns", "--breaker-open", "1m",
	}})
	env := []string{"SRSPROXY_ADDR=" + r.m.Addr(), "SRSPROXY_SEASON=" + safeSeason,
		"SRSPROXY_MEMORA_PLAYER=memora-shared", "PYTHONDONTWRITEBYTECODE=1"}
	clientDir, _ := filepath.Abs(pythonClientDir)
	runUnittest(t, filepath.Join(clientDir, "tests"), env, 19, "test_client")
	exampleTests, _ := filepath.Abs(filepath.Join(memoraExample, "tests"))
	runUnittest(t, exampleTests, env, 5, "test_endpoints.Endpoints")

	// The shared player's cards must be in MariaDB before Redis goes.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := r.store.DB().QueryRow("SELECT COUNT(*) FROM cards WHERE season = ? AND player = 'memora-shared'", safeSeason).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shared player's reviews were not drained: %d cards", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.redis.Kill()
	runUnittest(t, exampleTests, append(env, "SRSPROXY_DEGRADED=1"), 1, "test_endpoints.Degraded")
}
