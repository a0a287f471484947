package faults

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// MariaDB is a private mariadbd process: its own data directory, a free
// loopback port, and root@127.0.0.1 without a password. Tests that need a
// server configured otherwise than the machine's shared one (TLS required,
// say) start one instead of reconfiguring that.
type MariaDB struct {
	Port   int
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process is reaped
}

// StartMariaDB initialises a data directory and starts mariadbd on a free
// port with extra server options (paths in them must be absolute: mariadbd
// runs in its data directory). It returns once the server sends its
// handshake; it is killed, and its directory removed, with the test.
func StartMariaDB(t testing.TB, extra ...string) *MariaDB {
	t.Helper()
	m := &MariaDB{Port: FreePort(t), dir: t.TempDir(), exited: make(chan struct{})}
	data := filepath.Join(m.dir, "data")
	// --user=root: the tests run as root, and mariadbd refuses root unless told.
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	logFile := filepath.Join(m.dir, "error.log")
	args := append([]string{"--no-defaults", "--datadir=" + data, "--user=root",
		"--port=" + strconv.Itoa(m.Port), "--bind-address=127.0.0.1", "--socket=" + filepath.Join(m.dir, "sock"),
		"--pid-file=" + filepath.Join(m.dir, "pid"), "--log-error=" + logFile, "--skip-name-resolve",
		"--innodb-buffer-pool-size=32M", "--skip-log-bin"}, extra...)
	m.cmd = exec.Command("mariadbd", args...)
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("mariadbd: %v", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(m.Kill)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("mariadbd exited at start:\n%s", log)
		default:
		}
		if greets(m.Addr()) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(logFile)
	t.Fatalf("mariadbd on %s did not answer in 20 s:\n%s", m.Addr(), log)
	return nil
}

// greets reports whether a server at addr sends the first byte of its
// handshake: MariaDB listens a moment before it serves.
func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	return err == nil
}

// Addr is the server's address.
func (m *MariaDB) Addr() string { return "127.0.0.1:" + strconv.Itoa(m.Port) }

// Kill stops the server with SIGKILL and waits for it.
func (m *MariaDB) Kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}
