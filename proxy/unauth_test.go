package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A connection that has not authenticated may send only small commands (at
// most 10 arguments of at most 16 KiB, Redis's limits), so clients that never
// log in cannot make the sidecar buffer MaxArgs × MaxBulk each (issue 12: 48
// such connections drove the process to an OOM kill). After AUTH the normal
// limits apply.
func TestUnauthenticatedLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{RequirePass: "secret"})
	big := strings.Repeat("x", unauthMaxBulk+1)

	c := s.dial(t)
	c.send("*2\r\n$4\r\nECHO\r\n$" + strconv.Itoa(len(big)) + "\r\n") // the header alone is refused
	if got := strings.TrimSpace(c.read()); got != "-ERR Protocol error: unauthenticated bulk length" {
		t.Fatalf("unauthenticated big bulk: %q", got)
	}
	c.readEOF()

	c = s.dial(t)
	c.send("*11\r\n")
	if got := strings.TrimSpace(c.read()); got != "-ERR Protocol error: unauthenticated multibulk length" {
		t.Fatalf("unauthenticated long multibulk: %q", got)
	}
	c.readEOF()

	c = s.dial(t)
	if got := c.do("AUTH", "secret"); got != "+OK\r\n" {
		t.Fatalf("AUTH: %q", got)
	}
	if got := c.do("ECHO", big); got != "$"+strconv.Itoa(len(big))+"\r\n"+big+"\r\n" {
		t.Fatalf("ECHO of %d bytes after AUTH: %.40q", len(big), got)
	}
}

// A failed AUTH is counted in INFO (acl_access_denied_auth, as Redis names
// it) and logged, rate-limited.
func TestFailedAuthCountedAndLogged(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{RequirePass: "secret"})
	c := s.dial(t)
	for range 3 {
		if got := c.do("AUTH", "wrong"); !strings.HasPrefix(got, "-WRONGPASS") {
			t.Fatalf("AUTH wrong: %q", got)
		}
	}
	c.do("AUTH", "secret")
	if info := c.do("INFO", "stats"); !strings.Contains(info, "acl_access_denied_auth:3") {
		t.Errorf("INFO stats after 3 failed AUTH: %q", info)
	}
	if n := strings.Count(s.logs.String(), "authentication failed"); n != 1 {
		t.Errorf("%d log lines for 3 failed AUTH within 10 s, want 1 (rate-limited)", n)
	}
}

// Failed AUTHs in a row are slowed on their connection, 1 ms doubling to
// 1 s each, so guessing is slow; a good password resets the count.
func TestFailedAuthSlowed(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{RequirePass: "secret"})
	c := s.dial(t)
	start := time.Now()
	var pipeline string
	for range 9 {
		pipeline += resp("AUTH", "wrong")
	}
	c.send(pipeline)
	for range 9 {
		if got := c.read(); !strings.HasPrefix(got, "-WRONGPASS") {
			t.Fatalf("AUTH wrong: %q", got)
		}
	}
	if took, least := time.Since(start), 511*time.Millisecond; took < least { // 1+2+…+256 ms
		t.Fatalf("9 failed AUTH took %v, want at least %v", took, least)
	}
	if c.authFailures(s) != 9 {
		t.Fatalf("failures counted: %d", c.authFailures(s))
	}
	c.do("AUTH", "secret")
	if c.authFailures(s) != 0 {
		t.Fatalf("failures after a good AUTH: %d", c.authFailures(s))
	}
	if got := authDelay(40); got != time.Second {
		t.Errorf("authDelay(40) = %v, want the 1 s cap", got)
	}
}

// authFailures is the server side's count of the connection's failed AUTHs.
func (c *rawConn) authFailures(s *testServer) int64 {
	for _, sc := range s.clients() {
		if sc.nc.RemoteAddr().String() == c.nc.LocalAddr().String() {
			return sc.authFailures.Load()
		}
	}
	return -1
}

// CLIENT SETNAME is bounded, and CLIENT LIST (every connection's address and
// name) is for admins only.
func TestClientNameBoundAndListAdminOnly(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{RequirePass: "secret", Users: map[string]User{
		"app": {Name: "app", Password: "app-pass", Role: RoleApp},
	}})
	c := s.dial(t)
	c.do("AUTH", "app", "app-pass")
	if got := c.do("CLIENT", "SETNAME", strings.Repeat("n", 1<<20)); !strings.HasPrefix(got, "-ERR Client names are at most 256 bytes") {
		t.Errorf("CLIENT SETNAME of 1 MiB: %.60q", got)
	}
	if got := c.do("CLIENT", "LIST"); !strings.HasPrefix(got, "-NOPERM") {
		t.Errorf("CLIENT LIST as app: %.60q", got)
	}
	a := s.dial(t)
	a.do("AUTH", "secret")
	if got := a.do("CLIENT", "LIST"); !strings.Contains(got, "id=") {
		t.Errorf("CLIENT LIST as admin: %.60q", got)
	}
}

// One MULTI cannot hold more than MaxMultiBytes of queued arguments.
func TestMultiBytesBounded(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{MaxMultiBytes: 4096})
	c := s.dial(t)
	c.do("MULTI")
	if got := c.do("ECHO", strings.Repeat("a", 3000)); got != "+QUEUED\r\n" {
		t.Fatalf("first queued: %q", got)
	}
	if got := c.do("ECHO", strings.Repeat("b", 3000)); !strings.HasPrefix(got, "-ERR transaction holds more than MaxMultiBytes 4096") {
		t.Fatalf("over the bound: %q", got)
	}
	if got := c.do("EXEC"); !strings.HasPrefix(got, "-EXECABORT") {
		t.Fatalf("EXEC after a refused command: %q", got)
	}
}

// Past MaxClients a new connection is told so and closed, not accepted and
// left unserved.
func TestMaxClients(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{MaxClients: 2})
	a, b := s.dial(t), s.dial(t)
	a.do("PING")
	b.do("PING")
	c := s.dial(t)
	if got := strings.TrimSpace(c.readEOF()); got != "-ERR max number of clients reached" {
		t.Fatalf("third client: %q", got)
	}
	if got := a.do("INFO", "stats"); !strings.Contains(got, "rejected_connections:1") {
		t.Errorf("INFO stats: %q", got)
	}
}

// A users file may hold SHA-256 hashes instead of passwords.
func TestUsersFileHashedPassword(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("app-pass"))
	path := filepath.Join(t.TempDir(), "users")
	body := "admin admin plain-pass\napp app #" + hex.EncodeToString(sum[:]) + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if users["app"].Password != "" || users["app"].PasswordSHA256 == nil {
		t.Fatalf("hashed entry: %+v", users["app"])
	}
	s := startServer(t, Config{Users: users})
	c := s.dial(t)
	if got := c.do("AUTH", "app", "#"+hex.EncodeToString(sum[:])); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Errorf("AUTH with the hash itself: %q", got)
	}
	if got := c.do("AUTH", "app", "app-pass"); got != "+OK\r\n" {
		t.Errorf("AUTH with the password: %q", got)
	}
	os.WriteFile(path, []byte("app app #abc\n"), 0o600)
	if _, err := LoadUsers(path); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("a short hash: %v", err)
	}
}

// SetUsers (SIGHUP's users-file reload) applies to new logins at once.
func TestSetUsers(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{Users: map[string]User{"a": {Name: "a", Password: "old", Role: RoleApp}}})
	if err := s.SetUsers(map[string]User{"a": {Name: "a", Password: "new", Role: RoleApp}}); err != nil {
		t.Fatal(err)
	}
	c := s.dial(t)
	if got := c.do("AUTH", "a", "old"); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Errorf("old password after the reload: %q", got)
	}
	if got := c.do("AUTH", "a", "new"); got != "+OK\r\n" {
		t.Errorf("new password after the reload: %q", got)
	}
	if err := s.SetUsers(map[string]User{"": {}}); err == nil {
		t.Error("invalid users were accepted")
	}
	off := startServer(t, Config{})
	if err := off.SetUsers(map[string]User{"a": {Name: "a", Password: "x", Role: RoleApp}}); err == nil {
		t.Error("users loaded into a server started with auth off")
	}
}

// A half-sent command that makes no progress for PartialTimeout closes its
// connection with a protocol error; one that keeps arriving, however
// slowly, and an idle connection between commands are left alone.
func TestPartialCommandTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{PartialTimeout: 300 * time.Millisecond})
	idle := s.dial(t)
	slow := s.dial(t)
	stuck := s.dial(t)
	start := time.Now()
	stuck.send("*2\r\n$4\r\nECHO\r\n$10\r\nhal")
	slow.send("*2\r\n$4\r\nECHO\r\n$10\r\n")
	for _, b := range "0123456789" { // 10 × 100 ms: more than the timeout in all, never idle for it
		time.Sleep(100 * time.Millisecond)
		slow.send(string(b))
	}
	slow.send("\r\n")
	if got := slow.read(); got != "$10\r\n0123456789\r\n" {
		t.Fatalf("slow but steady command: %q", got)
	}
	if got := stuck.read(); got != "-ERR Protocol error: command incomplete for 300ms\r\n" {
		t.Fatalf("stuck command: %q", got)
	}
	stuck.readEOF()
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("closed after %v, before the timeout", waited)
	}
	if got := idle.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("an idle connection between commands after %v: %q", time.Since(start), got)
	}
}
