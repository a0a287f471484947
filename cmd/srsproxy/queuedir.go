package main

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// legacyQueueDir is release 2's default --queue-dir, relative to the
// working directory; a start with the default checks it is not left
// holding reviews.
const legacyQueueDir = "data/queue"

// defaultQueueDir is --queue-dir when it is not set: systemd's
// $STATE_DIRECTORY (StateDirectory=, its first entry) when set; else, for
// root, /var/lib/srsproxy/<port>; else $XDG_STATE_HOME/srsproxy/<port>
// (~/.local/state/srsproxy/<port>). The listen port in the path keeps two
// sidecars on one host apart, as the admin port does.
func defaultQueueDir(listen string, getenv func(string) string, uid int) string {
	if sd := getenv("STATE_DIRECTORY"); sd != "" {
		first, _, _ := strings.Cut(sd, ":")
		return first
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		port = "default"
	}
	if uid == 0 {
		return filepath.Join("/var/lib/srsproxy", port)
	}
	base := getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(base) { // the XDG spec: a relative value is ignored
		home := cmp.Or(getenv("HOME"), os.TempDir())
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "srsproxy", port)
}

// checkQueueDir creates dir if needed and proves it writable, with an error
// that says what to do. defaulted says --queue-dir was not given: then a
// queue left in the old relative default (./data/queue) stops the start
// rather than strand its undrained reviews.
func checkQueueDir(dir string, defaulted bool) error {
	if defaulted {
		if entries, err := os.ReadDir(legacyQueueDir); err == nil && len(entries) > 0 {
			abs, _ := filepath.Abs(legacyQueueDir)
			return fmt.Errorf("--queue-dir: a queue is in %s, the default of earlier releases, and may hold undrained reviews; "+
				"start with --queue-dir %s to drain it (or move it to %s, or remove it if it is a test's)", abs, abs, dir)
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("--queue-dir %s: cannot create it (%w); pass a writable --queue-dir or run under systemd with StateDirectory=", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".writable-*")
	if err != nil {
		return fmt.Errorf("--queue-dir %s is not writable by uid %d (%w); pass a writable --queue-dir or fix its owner", dir, os.Getuid(), errors.Unwrap(err))
	}
	name := probe.Name()
	return errors.Join(probe.Close(), os.Remove(name))
}
