package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on the units in
// deploy/ with ExecStart pointing at a built binary, and checks the
// hardening the README promises is in both.
func TestSystemdUnitsVerify(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian systemd); the units were not verified")
	}
	bin := sidecarBin(t)
	for _, unit := range []string{"../../deploy/srsproxy.service", "../../deploy/systemd/srsproxy@.service"} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, want := range []string{"StateDirectory=srsproxy", "NoNewPrivileges=yes", "ProtectSystem=strict", "LimitNOFILE=",
			"CapabilityBoundingSet=\n", "EnvironmentFile=-/etc/srsproxy/"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", unit, want)
			}
		}
		if !strings.Contains(text, "DynamicUser=yes") && !strings.Contains(text, "User=srsproxy") {
			t.Errorf("%s runs as root", unit)
		}
		name := filepath.Base(unit)
		if strings.HasSuffix(name, "@.service") {
			name = strings.Replace(name, "@.", "@6380.", 1)
		}
		path := filepath.Join(t.TempDir(), name)
		text = strings.ReplaceAll(text, "/usr/local/bin/srsproxy", bin)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
}
