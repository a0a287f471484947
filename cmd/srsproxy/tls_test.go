package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/internal/faults"
)

// testCA is a throwaway certificate authority: its PEM file, its pool, and
// certificates it signs for a test.
type testCA struct {
	t      *testing.T
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	serial int64
	File   string // the CA certificate, PEM
	Pool   *x509.CertPool
}

// newTestCA makes a CA (ECDSA P-256, as MariaDB's OpenSSL and Redis accept)
// valid for an hour.
func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca := &testCA{t: t, dir: t.TempDir(), serial: 1}
	ca.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ca.key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	ca.cert, _ = x509.ParseCertificate(der)
	ca.Pool = x509.NewCertPool()
	ca.Pool.AddCert(ca.cert)
	ca.File = ca.write("ca.pem", "CERTIFICATE", der)
	return ca
}

// issue writes a certificate for servers and clients named by names (IP
// addresses or DNS names; the first is also the common name) and its SEC1
// key; it returns the two files.
func (ca *testCA) issue(names ...string) (certFile, keyFile string) {
	ca.t.Helper()
	ca.serial++
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	base := "cert" + strconv.FormatInt(ca.serial, 10)
	return ca.write(base+".pem", "CERTIFICATE", der), ca.write(base+"-key.pem", "EC PRIVATE KEY", keyDER)
}

// keyPair loads the files issue wrote.
func (ca *testCA) keyPair(certFile, keyFile string) tls.Certificate {
	ca.t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		ca.t.Fatal(err)
	}
	return c
}

// write puts a PEM block in the CA's directory and returns its path.
func (ca *testCA) write(name, typ string, der []byte) string {
	ca.t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return p
}

// TestTLSAndACL: the sidecar serves RESP over TLS with its password read
// from a file, and reaches an upstream Redis over TLS as an ACL user (the
// default user disabled), so managed services can be used (issue 12).
func TestTLSAndACL(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "srsproxy test CA")
	caFile, pool := ca.File, ca.Pool
	certFile, keyFile := ca.issue("127.0.0.1")
	tlsPort := faults.FreePort(t)
	faults.StartRedis(t, "--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
		"--user", "sidecar", "on", ">upstream-pw", "~*", "&*", "+@all", "--user", "default", "off")
	upstream := "127.0.0.1:" + strconv.Itoa(tlsPort)
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte("client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t)
	e.Redis = upstream
	m, _ := startQuietMain(t, e, "--redis-tls-ca", caFile, "--redis-username", "sidecar", "--redis-password", "upstream-pw",
		"--tls-cert", certFile, "--tls-key", keyFile, "--requirepass-file", passFile)

	c := goredis.NewClient(&goredis.Options{Addr: m.Addr(), Password: "client-secret",
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	defer c.Close()
	ctx := context.Background()
	for _, cmd := range [][]any{
		{"SRS.SEASON", "CREATE", "SEASON-2026", "START", "2026-01-01", "END", "2027-06-30"},
		{"SRS.SEASON", "ACTIVATE", "SEASON-2026"},
		{"SRS.REVIEW", "u", "SEASON-2026", "q1", 3},
		{"SRS.DUE", "u", "SEASON-2026", "AT", time.Now().Add(time.Hour).UnixMilli()},
	} {
		if err := c.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v over TLS: %v", cmd, err)
		}
	}
	// The card is in the upstream, reached as the ACL user over TLS.
	up := goredis.NewClient(&goredis.Options{Addr: upstream, Username: "sidecar", Password: "upstream-pw",
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	defer up.Close()
	if n, err := up.Exists(ctx, e.Prefix+":{SEASON-2026|u}:c3").Result(); err != nil || n != 1 {
		t.Fatalf("card record in the TLS upstream: %d %v", n, err)
	}
	// Plain TCP to the TLS listener gets nothing useful, and a wrong password is refused.
	plain := goredis.NewClient(&goredis.Options{Addr: m.Addr(), Password: "client-secret", DialTimeout: time.Second,
		ReadTimeout: time.Second, MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("a plain-TCP client talked to the TLS listener")
	}
	wrong := goredis.NewClient(&goredis.Options{Addr: m.Addr(), Password: "nope", MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil {
		t.Error("a wrong password was accepted")
	}
}

// SIGHUP reloads the users file of the running binary: the new password
// works at once, the old one no longer does.
func TestUsersReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("admin admin first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSidecar(t, e.DSN, e.Redis, e.Prefix, t.TempDir(), "--users", users)
	ctx := context.Background()
	auth := func(pass string) error {
		c := goredis.NewClient(&goredis.Options{Addr: s.Addr, Username: "admin", Password: pass, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	if err := auth("first"); err != nil {
		t.Fatalf("first password: %v", err)
	}
	if err := os.WriteFile(users, []byte("admin admin second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for auth("second") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the new password was not accepted 5 s after SIGHUP; log:\n%s", s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := auth("first"); err == nil {
		t.Error("the old password still works after the reload")
	}
}

// TestListenerClientCertificates: with --tls-ca the RESP listener requires a
// client certificate signed by that CA (mutual TLS): such a client is
// served; one with no certificate, or one from another CA, is refused.
func TestListenerClientCertificates(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "srsproxy clients CA")
	srvCert, srvKey := ca.issue("127.0.0.1")
	good := ca.keyPair(ca.issue("app"))
	other := newTestCA(t, "another CA")
	stranger := other.keyPair(other.issue("app"))
	e := newTestEnv(t)
	m, _ := startQuietMain(t, e, "--tls-cert", srvCert, "--tls-key", srvKey, "--tls-ca", ca.File)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		cert    tls.Certificate
		refusal string // "": served
	}{
		{"signed by --tls-ca", good, ""},
		{"no client certificate", tls.Certificate{}, "certificate required"},
		{"signed by another CA", stranger, "unknown certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The certificate is sent whatever CAs the server asks for (Go's
			// client would otherwise keep the stranger's to itself).
			send := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc.cert, nil }
			c := goredis.NewClient(&goredis.Options{Addr: m.Addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second,
				TLSConfig: &tls.Config{RootCAs: ca.Pool, GetClientCertificate: send, MinVersion: tls.VersionTLS12}})
			defer c.Close()
			err := c.Do(ctx, "SRS.SEASON", "CREATE", "SEASON-2026", "START", "2026-01-01", "END", "2027-06-30").Err()
			switch {
			case tc.refusal == "" && err != nil:
				t.Fatalf("a client with a certificate of --tls-ca: %v", err)
			case tc.refusal != "" && (err == nil || !strings.Contains(err.Error(), tc.refusal)):
				t.Fatalf("got %v, want the listener's refusal %q", err, tc.refusal)
			}
		})
	}
}

// TestRedisMutualTLS runs a private redis-server that requires client
// certificates (--tls-auth-clients yes) and whose certificate names only
// redis.test, reached at 127.0.0.1. With --redis-tls-cert/--redis-tls-key
// and --redis-tls-server-name the sidecar works end to end; without its
// certificate (Redis refuses it) or without the server name (its own
// verification fails) the sidecar still starts, says why in its log, reports
// Redis disconnected, serves from MariaDB (degraded), not from a cache, and
// its breaker opens into Safe Mode as for a Redis that is down.
func TestRedisMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "redis CA")
	srvCert, srvKey := ca.issue("redis.test") // no IP address in it
	cliCert, cliKey := ca.issue("sidecar")
	port := faults.FreePort(t)
	faults.StartRedis(t, "--tls-port", strconv.Itoa(port), "--tls-cert-file", srvCert, "--tls-key-file", srvKey,
		"--tls-ca-cert-file", ca.File, "--tls-auth-clients", "yes")
	upstream := "127.0.0.1:" + strconv.Itoa(port)
	ctx := context.Background()

	// run does a season's first review and due list through a sidecar
	// started with flags; it returns the due list and SRS.STATUS.
	run := func(t *testing.T, e testEnv, flags ...string) (due, status map[string]any, logFile string) {
		t.Helper()
		e.Redis = upstream
		m, logFile := startQuietMain(t, e, flags...)
		c := goredis.NewClient(&goredis.Options{Addr: m.Addr(), Protocol: 3})
		t.Cleanup(func() { c.Close() })
		mustDo(t, c, "SRS.SEASON", "CREATE", "SEASON-2026", "START", "2026-01-01", "END", "2027-06-30")
		mustDo(t, c, "SRS.SEASON", "ACTIVATE", "SEASON-2026")
		mustDo(t, c, "SRS.REVIEW", "u", "SEASON-2026", "q1", 3)
		due = asMap(t, mustDo(t, c, "SRS.DUE", "u", "SEASON-2026", "AT", time.Now().Add(time.Hour).UnixMilli()))
		return due, asMap(t, mustDo(t, c, "SRS.STATUS")), logFile
	}
	t.Run("client certificate and server name", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t)
		due, status, _ := run(t, e, "--redis-tls-ca", ca.File, "--redis-tls-cert", cliCert, "--redis-tls-key", cliKey,
			"--redis-tls-server-name", "redis.test")
		if due["degraded"] != false || due["total_due"] != int64(1) || status["redis_connected"] != true {
			t.Fatalf("due %v, status %v: want a cached due list of 1 and Redis connected", due, status)
		}
		up := goredis.NewClient(&goredis.Options{Addr: upstream, TLSConfig: &tls.Config{RootCAs: ca.Pool,
			ServerName: "redis.test", Certificates: []tls.Certificate{ca.keyPair(cliCert, cliKey)}, MinVersion: tls.VersionTLS12}})
		defer up.Close()
		if n, err := up.Exists(ctx, e.Prefix+":{SEASON-2026|u}:c3").Result(); err != nil || n != 1 {
			t.Fatalf("card record in the mutual-TLS upstream: %d %v", n, err)
		}
	})
	for _, tc := range []struct {
		name    string
		reasons []string // any of them: the log line says why
		flags   []string
	}{
		// In TLS 1.3 the server checks the client's certificate after the
		// client's handshake is done: the client reads its alert, or, when it
		// writes first, finds the connection reset.
		{"no client certificate", []string{"certificate required", "connection reset by peer"},
			[]string{"--redis-tls-ca", ca.File, "--redis-tls-server-name", "redis.test"}},
		{"no server name", []string{"doesn't contain any IP SANs"},
			[]string{"--redis-tls-ca", ca.File, "--redis-tls-cert", cliCert, "--redis-tls-key", cliKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			due, status, logFile := run(t, newTestEnv(t), append(tc.flags, "--breaker-failures", "1", "--breaker-open", "1m")...)
			if due["degraded"] != true || status["redis_connected"] != false || status["breaker_state"] != "open" {
				t.Errorf("due %v, status %v: want a degraded due list from MariaDB, Redis disconnected, the breaker open (Safe Mode)", due, status)
			}
			lines := logLines(logFile, "upstream redis not reachable at start")
			if len(lines) != 1 || !slices.ContainsFunc(tc.reasons, func(r string) bool { return strings.Contains(lines[0], r) }) {
				t.Errorf("start log %q, want one line saying one of %q", lines, tc.reasons)
			}
		})
	}
}

// startError starts an in-process sidecar that must not start, on a free
// port with its own queue, and returns Run's error.
func startError(t *testing.T, args ...string) error {
	t.Helper()
	m := &Main{Log: slog.New(slog.DiscardHandler)}
	if err := m.ParseFlags(append([]string{"--listen", "127.0.0.1:0", "--admin-listen", "off", "--queue-dir", t.TempDir()}, args...)); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	m.Close()
	return err
}

// TestMariaDBTLS runs a private mariadbd with TLS and
// require_secure_transport=ON (the machine's shared server has TLS disabled
// and is left as it is). With --mysql-tls-ca the sidecar connects over TLS,
// verifying the server's certificate, and a season, a review and a due list
// go through; the review reaches MariaDB's review_log. Without it the
// server refuses the plain connection and the sidecar does not start (a
// refusal is no outage to wait out), saying what to do.
func TestMariaDBTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "mariadb CA")
	cert, key := ca.issue("127.0.0.1")
	db := faults.StartMariaDB(t, "--ssl-ca="+ca.File, "--ssl-cert="+cert, "--ssl-key="+key, "--require-secure-transport=ON")
	e := newTestEnv(t)
	e.DSN = "root@tcp(" + db.Addr() + ")/srs_tls"

	t.Run("without --mysql-tls-ca", func(t *testing.T) {
		err := startError(t, "--mysql", e.DSN, "--redis", e.Redis, "--redis-prefix", e.Prefix)
		// MariaDB 10.11 says "Access denied" (1045) to a plain login under
		// require_secure_transport; the sidecar adds what to do.
		if err == nil || !strings.Contains(err.Error(), "Access denied") || !strings.Contains(err.Error(), "--mysql-tls-ca") {
			t.Fatalf("start against a TLS-only MariaDB without --mysql-tls-ca: %v, want its refusal and the hint", err)
		}
		t.Logf("start refused: %v", err)
	})

	// The replica (the same server here) is verified with the same CA.
	m, _ := startQuietMain(t, e, "--mysql-tls-ca", ca.File, "--mysql-replica", e.DSN)
	if err := m.replica.Ping(context.Background()); err != nil {
		t.Fatalf("the --mysql-replica connection under --mysql-tls-ca: %v", err)
	}
	c := client(t, m.Addr(), 3)
	mustDo(t, c, "SRS.SEASON", "CREATE", "SEASON-2026", "START", "2026-01-01", "END", "2027-06-30")
	mustDo(t, c, "SRS.SEASON", "ACTIVATE", "SEASON-2026")
	mustDo(t, c, "SRS.REVIEW", "u", "SEASON-2026", "q1", 3)
	due := asMap(t, mustDo(t, c, "SRS.DUE", "u", "SEASON-2026", "AT", time.Now().Add(time.Hour).UnixMilli()))
	if due["total_due"] != int64(1) {
		t.Fatalf("due list %v, want the one card", due)
	}
	// The test's own TLS session (through the same DSN code) sees the drained review.
	dsn, err := mysqlTLS(Config{MySQLTLSCA: ca.File}, "--mysql-replica", e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var name, cipher string
	if err := conn.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
		t.Fatalf("Ssl_cipher %q %v: the session is not TLS", cipher, err)
	}
	waitUntil(t, "the review in review_log, read over TLS", func() bool {
		var n int
		err := conn.QueryRow("SELECT COUNT(*) FROM review_log WHERE season = 'SEASON-2026' AND player = 'u'").Scan(&n)
		return err == nil && n == 1
	})
}

// TestTLSFlags: the TLS flags' pairings are checked when the flags are
// parsed, naming them; a CA file without a certificate stops the start
// before anything is opened; TLS to Redis is on when any --redis-tls* flag is
// set; and `srsproxy import` takes the same Redis TLS flags and variables.
func TestTLSFlags(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "flags CA")
	cert, key := ca.issue("127.0.0.1")
	noenv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-ca", ca.File}, "--tls-ca needs --tls-cert"},
		{[]string{"--redis-tls-cert", cert}, "--redis-tls-cert and --redis-tls-key go together"},
		{[]string{"--redis-tls-key", key}, "--redis-tls-cert and --redis-tls-key go together"},
	} {
		if _, err := ParseConfig(tc.args, noenv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}

	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--tls-cert", cert, "--tls-key", key, "--tls-ca", notPEM},
		{"--redis-tls-ca", notPEM},
	} {
		// An unreachable MariaDB: the start must fail on the file, not wait for it.
		err := startError(t, append([]string{"--mysql", "root@tcp(127.0.0.1:1)/srs"}, args...)...)
		if flag := args[len(args)-2]; err == nil || !strings.Contains(err.Error(), flag+" "+notPEM+": no PEM certificate") {
			t.Errorf("%v: start error %v, want one naming %s and the file", args, err, flag)
		}
	}

	for _, tc := range []struct {
		env        map[string]string
		tls        bool
		serverName string
	}{
		{nil, false, ""},
		{map[string]string{"SRSPROXY_REDIS_TLS": "true"}, true, ""},
		{map[string]string{"SRSPROXY_REDIS_TLS_CA": ca.File}, true, ""},
		{map[string]string{"SRSPROXY_REDIS_TLS_CERT": cert, "SRSPROXY_REDIS_TLS_KEY": key}, true, ""},
		{map[string]string{"SRSPROXY_REDIS_TLS_SERVER_NAME": "redis.test"}, true, "redis.test"},
	} {
		c, err := ParseConfig(nil, func(k string) string { return tc.env[k] })
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := redisTLS(c)
		if err != nil || (cfg != nil) != tc.tls || (cfg != nil && cfg.ServerName != tc.serverName) {
			t.Errorf("%v: TLS config %+v %v, want TLS %v, server name %q", tc.env, cfg, err, tc.tls, tc.serverName)
		}
	}

	imp, err := parseImport([]string{"--from", "root@tcp(127.0.0.1:3306)/memora", "--table", "tracker",
		"--redis-tls-cert", cert, "--redis-tls-key", key}, func(k string) string {
		return map[string]string{"SRSPROXY_REDIS_TLS_SERVER_NAME": "redis.test"}[k]
	}, io.Discard)
	if err != nil || imp.Conn.RedisTLSCert != cert || imp.Conn.RedisTLSKey != key || imp.Conn.RedisTLSServerName != "redis.test" {
		t.Errorf("import's Redis TLS flags: %+v %v", imp.Conn, err)
	}
	if _, err := parseImport([]string{"--from", "root@tcp(127.0.0.1:3306)/memora", "--table", "tracker",
		"--redis-tls-cert", cert}, noenv, io.Discard); err == nil || !strings.Contains(err.Error(), "--redis-tls-key") {
		t.Errorf("import with --redis-tls-cert alone: %v, want the pairing error", err)
	}
}
