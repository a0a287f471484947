package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultQueueDir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		listen string
		env    map[string]string
		uid    int
		want   string
	}{
		{"systemd StateDirectory", "127.0.0.1:6380", map[string]string{"STATE_DIRECTORY": "/var/lib/srsproxy/6380"}, 0, "/var/lib/srsproxy/6380"},
		{"systemd, several state directories", "127.0.0.1:6380", map[string]string{"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, 1000, "/var/lib/a"},
		{"root", "127.0.0.1:6380", map[string]string{"HOME": "/root"}, 0, "/var/lib/srsproxy/6380"},
		{"root, another port", "127.0.0.1:6381", nil, 0, "/var/lib/srsproxy/6381"},
		{"user with XDG_STATE_HOME", "127.0.0.1:6380", map[string]string{"XDG_STATE_HOME": "/home/u/st", "HOME": "/home/u"}, 1000, "/home/u/st/srsproxy/6380"},
		{"user without it", "127.0.0.1:6380", map[string]string{"HOME": "/home/u"}, 1000, "/home/u/.local/state/srsproxy/6380"},
		{"relative XDG_STATE_HOME is ignored", "127.0.0.1:6380", map[string]string{"XDG_STATE_HOME": "st", "HOME": "/home/u"}, 1000, "/home/u/.local/state/srsproxy/6380"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := defaultQueueDir(tc.listen, func(k string) string { return tc.env[k] }, tc.uid)
			if got != tc.want {
				t.Fatalf("defaultQueueDir = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestQueueDirNotWritable: the start fails at once, naming --queue-dir.
func TestQueueDirNotWritable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t)
	m := &Main{}
	if err := m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--admin-listen", "off", "--mysql", e.DSN,
		"--redis", e.Redis, "--redis-prefix", e.Prefix, "--queue-dir", filepath.Join(file, "queue")}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	m.Close()
	if err == nil || !strings.HasPrefix(err.Error(), "--queue-dir "+filepath.Join(file, "queue")+": cannot create it") {
		t.Fatalf("Run with a queue directory under a file: %v", err)
	}
}

// TestLegacyQueueDirStopsDefaultStart: a queue in ./data/queue (the old
// default) is not silently left behind by a start without --queue-dir.
func TestLegacyQueueDirStopsDefaultStart(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(legacyQueueDir, 0o750); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "new")
	if err := checkQueueDir(target, true); err != nil {
		t.Fatalf("empty old queue directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(legacyQueueDir, "00000001.log"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := checkQueueDir(target, true)
	if err == nil || !strings.Contains(err.Error(), "--queue-dir "+filepath.Join(dir, legacyQueueDir)) {
		t.Fatalf("old queue with files, default start: %v", err)
	}
	if err := checkQueueDir(target, false); err != nil {
		t.Fatalf("old queue with files, explicit --queue-dir: %v", err)
	}
}
