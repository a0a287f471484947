package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/internal/faults"
)

// testPKI writes a CA and a certificate for 127.0.0.1 signed by it; it
// returns the files and the CA pool.
func testPKI(t *testing.T) (caFile, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "srsproxy test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER), pool
}

// TestTLSAndACL: the sidecar serves RESP over TLS with its password read
// from a file, and reaches an upstream Redis over TLS as an ACL user (the
// default user disabled), so managed services can be used (issue 12).
func TestTLSAndACL(t *testing.T) {
	t.Parallel()
	caFile, certFile, keyFile, pool := testPKI(t)
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
