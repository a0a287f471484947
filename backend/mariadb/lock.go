package mariadb

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Lock is a MariaDB named lock (GET_LOCK) held on a dedicated connection:
// such a lock belongs to the session that took it, so the connection stays
// out of the pool until Release. The lock ends with its session, so if that
// connection dies (server restart, KILL, network cut, wait_timeout) another
// sidecar can take it; a job holding one checks Held as it goes.
// A Lock is safe for concurrent use.
type Lock struct {
	name    string        // the server-side name, schema-prefixed
	timeout time.Duration // of Held's query when its context has no earlier deadline

	mu     sync.Mutex
	conn   *sql.Conn // nil once released
	connID int64     // CONNECTION_ID() of conn, for tests and logs
}

// lockName is the server-side name of lock name in schema: the schema prefix
// keeps test databases (and clusters sharing a server) apart. Names beyond
// MySQL's 64-character limit are shortened with a hash.
func lockName(schema, name string) string {
	full := "srsproxy." + schema + "." + name
	if len(full) <= 64 {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return full[:64-17] + "." + hex.EncodeToString(sum[:8])
}

// TryLock takes the named lock, GET_LOCK(name, 0), on a new dedicated
// connection from the pool without waiting. ok is false, with no error, when
// another session holds it. The caller must Release a lock it got. Taking
// it runs under the write timeout; Held checks under the read timeout.
// It returns an error for an empty name, or the database error.
func (s *Store) TryLock(ctx context.Context, name string) (l *Lock, ok bool, err error) {
	if name == "" {
		return nil, false, errors.New("try lock: empty name")
	}
	full := lockName(s.schema, name)
	ctx, cancel := s.bound(ctx, writeCall)
	defer cancel()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("try lock %s: %w", name, err)
	}
	var (
		got sql.NullInt64
		id  int64
	)
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0), CONNECTION_ID()", full).Scan(&got, &id); err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("try lock %s: %w", name, err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, false, nil
	}
	s.mu.Lock()
	timeout := s.timeouts.withDefaults().Read
	s.mu.Unlock()
	return &Lock{name: full, timeout: timeout, conn: conn, connID: id}, true, nil
}

// Held reports whether the lock is still held by this Lock's session:
// IS_USED_LOCK(name) = CONNECTION_ID() on the lock's own connection. It is
// false after Release, when the connection died, or when the check fails.
func (l *Lock) Held(ctx context.Context) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(l.timeout, DefaultReadTimeout))
	defer cancel()
	var held sql.NullInt64
	err := l.conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l.name).Scan(&held)
	return err == nil && held.Valid && held.Int64 == 1
}

// Release releases the lock with RELEASE_LOCK and returns the connection to
// the pool; a connection on which that fails (it may still hold the lock) is
// closed instead, which ends the lock with the session. Release is
// idempotent and returns nothing: a lock that cannot be released cleanly is
// gone anyway once its connection is.
func (l *Lock) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", l.name); err != nil {
		discard(l.conn)
	} else {
		l.conn.Close()
	}
	l.conn = nil
}

// discard closes conn's underlying connection instead of returning it to the
// pool.
func discard(conn *sql.Conn) {
	conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
