package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
)

// The connection options: TLS and secret files (managed Redis and MariaDB
// services want TLS and ACL users, and a password on the command line is
// visible in ps) and the client limit.

// serverTLS is the RESP listener's TLS configuration, nil for plain TCP:
// --tls-cert/--tls-key, and with --tls-ca a client certificate signed by that
// CA is required of every client (mutual TLS).
func serverTLS(c Config) (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.TLSCA != "" {
		if cfg.ClientCAs, _, err = caPool("--tls-ca", c.TLSCA); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// caPool reads a PEM file of CA certificates; it also returns a digest of
// the file (a name for the pool where a registry wants one). Its errors name
// flag.
func caPool(flag, path string) (pool *x509.CertPool, digest string, err error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", flag, err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", fmt.Errorf("%s %s: no PEM certificate in it", flag, path)
	}
	sum := sha256.Sum256(pem)
	return pool, hex.EncodeToString(sum[:8]), nil
}

// redisTLS is the upstream's TLS configuration, nil for plain TCP. TLS is on
// when any of --redis-tls, --redis-tls-ca, --redis-tls-cert or
// --redis-tls-server-name is set. The cache's pool and the watcher share it.
func redisTLS(c Config) (*tls.Config, error) {
	if !c.RedisTLS && c.RedisTLSCA == "" && c.RedisTLSCert == "" && c.RedisTLSServerName == "" {
		return nil, nil
	}
	// An empty ServerName is filled in per connection with the address's host.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.RedisTLSServerName}
	if c.RedisTLSCA != "" {
		pool, _, err := caPool("--redis-tls-ca", c.RedisTLSCA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.RedisTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.RedisTLSCert, c.RedisTLSKey)
		if err != nil {
			return nil, fmt.Errorf("--redis-tls-cert/--redis-tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// mysqlDSN is --mysql with the --mysql-tls-ca configuration (mysqlTLS).
func mysqlDSN(c Config) (string, error) { return mysqlTLS(c, "--mysql", c.MySQL) }

// mysqlTLS registers the --mysql-tls-ca configuration with the driver and
// names it in dsn (unless dsn chose its own tls= already); flag names dsn
// in errors. The registered name is the CA file's digest: the driver's
// registry is global, so sidecars of one process with different CAs must
// not share a name. The primary and the replica are verified alike.
func mysqlTLS(c Config, flag, dsn string) (string, error) {
	if c.MySQLTLSCA == "" || dsn == "" {
		return dsn, nil
	}
	pool, digest, err := caPool("--mysql-tls-ca", c.MySQLTLSCA)
	if err != nil {
		return "", err
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	if cfg.TLSConfig != "" {
		return dsn, nil
	}
	name := "srsproxy-" + digest
	if err := mysql.RegisterTLSConfig(name, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}); err != nil {
		return "", fmt.Errorf("--mysql-tls-ca: %w", err)
	}
	cfg.TLSConfig = name
	return cfg.FormatDSN(), nil
}

// plainRefusalHint explains an access denial of a plain (non-TLS)
// connection: MariaDB refuses one under require_secure_transport with the
// same error 1045 as a wrong password. "" for any other error.
func plainRefusalHint(dsn string, err error) string {
	var me *mysql.MySQLError
	cfg, perr := mysql.ParseDSN(dsn)
	if !errors.As(err, &me) || me.Number != 1045 || perr != nil || (cfg.TLSConfig != "" && cfg.TLSConfig != "false") {
		return ""
	}
	return " (this was plain TCP, which a server with require_secure_transport refuses with this same error: connect over TLS with --mysql-tls-ca)"
}

// requirePass is --requirepass, or the first line of --requirepass-file.
func requirePass(c Config) (string, error) {
	if c.RequirePassFile == "" {
		return c.RequirePass, nil
	}
	b, err := os.ReadFile(c.RequirePassFile)
	if err != nil {
		return "", fmt.Errorf("--requirepass-file: %w", err)
	}
	pass, _, _ := strings.Cut(string(b), "\n")
	pass = strings.TrimRight(pass, "\r")
	if pass == "" {
		return "", fmt.Errorf("--requirepass-file %s: the first line is empty", c.RequirePassFile)
	}
	return pass, nil
}

// maxClients is --maxclients (default 10000), lowered so that the clients,
// the upstream pools and the queue's files fit the process's file-descriptor
// limit: past it, accepted clients would never be served.
func maxClients(c Config, log func(msg string, args ...any)) int {
	want := c.MaxClients
	if want == 0 {
		want = 10000
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return want
	}
	reserve := 2*c.RedisPoolSize + 64 + 32 // upstream pools, MariaDB pools, queue, listeners
	if fit := int(lim.Cur) - reserve; fit < want {
		fit = max(fit, 16)
		log("maxclients lowered to fit the file-descriptor limit (raise it with ulimit -n / LimitNOFILE)",
			"maxclients", fit, "wanted", want, "nofile", lim.Cur)
		return fit
	}
	return want
}

// maxMemoryClients is --maxmemory-clients, by default a quarter of the
// process's memory limit (at least 64 MiB): the clients' buffered commands
// cannot then take the memory the queue, the caches and the runtime need.
func maxMemoryClients(c Config) int64 {
	if c.MaxMemoryClients > 0 {
		return c.MaxMemoryClients
	}
	return max(memoryLimit()/4, 64<<20)
}

// memoryLimit is the lowest of the cgroup's memory.max (systemd's
// MemoryMax=, a container's limit), GOMEMLIMIT and the machine's RAM; 4 GiB
// when none can be read.
func memoryLimit() int64 {
	limit := int64(math.MaxInt64)
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			limit = min(limit, n)
		}
	}
	if gl := debug.SetMemoryLimit(-1); gl > 0 {
		limit = min(limit, gl)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					limit = min(limit, kb<<10)
				}
			}
		}
	}
	if limit == math.MaxInt64 {
		return 4 << 30
	}
	return limit
}
