// Package mariadb is the MariaDB store, the source of truth: seasons, cards
// (LIST partitioned by season), the append-only review log, the archive
// tables of archived seasons, background jobs and the named locks that make a
// job run once per cluster. It speaks plain MySQL protocol through
// github.com/go-sql-driver/mysql.
package mariadb

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// MariaDB error numbers the store reacts to.
const (
	errDupEntry    = 1062 // ER_DUP_ENTRY
	errLockTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
	errDeadlock    = 1213 // ER_LOCK_DEADLOCK
	errNoPartition = 1526 // ER_NO_PARTITION_FOR_GIVEN_VALUE
	errNoSuchTable = 1146 // ER_NO_SUCH_TABLE
)

// Store is the MariaDB store. It is safe for concurrent use.
//
// Every method that runs SQL has a deadline: the caller's, or the store's
// per-call timeout of its kind (see Timeouts) when that is earlier or the
// caller set none. So a server that stalls makes calls fail within their
// timeout instead of hanging.
type Store struct {
	db     *sql.DB // the pool for ordinary statements, with the DSN's socket timeouts
	slow   *sql.DB // DDL, migrations, archive moves and counts: no socket read/write timeout unless the DSN sets one
	schema string
	log    *slog.Logger
	// foundRows is the DSN's clientFoundRows: affected rows then count rows
	// matched, not changed, and ApplyReviews cannot tell a logged review
	// from its log INSERT, so it reads the log first (see applyOnce).
	foundRows bool
	prepared  stmtCache // ApplyReviews' multi-row statements; see preparedRows
	chunks    []int     // the prepared sizes, preparedRows unless a test sets others

	mu          sync.Mutex
	now         func() time.Time
	timeouts    Timeouts
	onRecompute func(srs.Card)
	shards      int              // ApplyReviews' concurrent transactions; 0: DefaultDrainShards
	minShard    int              // the fewest reviews of a shard; 0: DefaultMinShard
	slowCfg     *mysql.Config    // set by OpenDeferred: Prepare still has to run
	routes      map[string]route // where reviews of archiving/archived seasons go; see ApplyReviews
}

// Timeouts are the per-call deadlines a Store gives its calls when the
// caller's context has none earlier. A zero field takes its default.
type Timeouts struct {
	// Read bounds one read (Card, UserCards, DueCards, CountDue, CardsPage, a
	// page of CardsWithReviews, LoggedReview, ReviewLog, ReviewIDs, Season,
	// Seasons, ArchivedCard, Job, Jobs, Lock.Held). Default 5s.
	Read time.Duration
	// Write bounds one write: a whole ApplyReviews call (retries included),
	// CreateSeason, UpdateSeason, CreateJob, UpdateJob, TryLock. Default 30s.
	Write time.Duration
	// Long bounds the statements whose cost grows with the data or that wait
	// for metadata locks: ArchiveSeason, ArchiveInfo, PurgeArchive, CountCards
	// and the migration Open runs. Default 10m.
	Long time.Duration
}

// Default per-call timeouts, and the socket timeouts Open puts in a DSN that
// sets none.
const (
	DefaultReadTimeout  = 5 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultLongTimeout  = 10 * time.Minute

	DefaultDialTimeout        = 2 * time.Second  // DSN timeout
	DefaultSocketReadTimeout  = 10 * time.Second // DSN readTimeout
	DefaultSocketWriteTimeout = 10 * time.Second // DSN writeTimeout
)

func (t Timeouts) withDefaults() Timeouts {
	return Timeouts{
		Read:  cmp.Or(t.Read, DefaultReadTimeout),
		Write: cmp.Or(t.Write, DefaultWriteTimeout),
		Long:  cmp.Or(t.Long, DefaultLongTimeout),
	}
}

// SetTimeouts replaces the per-call timeouts; zero fields take their
// defaults. It may be called at any time and applies to calls that start
// afterwards.
func (s *Store) SetTimeouts(t Timeouts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeouts = t.withDefaults()
}

// SetOnRecompute sets the function ApplyReviews calls, after its transaction
// committed, with every card it recomputed by replaying the card's review
// log (the drained reviews did not continue the card row; see ApplyReviews).
// Such a card may differ from what a cache holds, so the caller invalidates
// it there. fn runs on ApplyReviews' goroutine, once per card, and must not
// block for long; nil (the default) calls nothing.
func (s *Store) SetOnRecompute(fn func(srs.Card)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRecompute = fn
}

// callKind selects the per-call timeout of a method.
type callKind int

const (
	readCall callKind = iota
	writeCall
	longCall
)

// bound derives the context of one call: ctx with the store's timeout of
// kind, unless ctx already ends earlier. The caller must call cancel.
func (s *Store) bound(ctx context.Context, kind callKind) (context.Context, context.CancelFunc) {
	s.mu.Lock()
	t := s.timeouts
	s.mu.Unlock()
	t = t.withDefaults() // a zero Store (tests that never reach SQL)
	d := t.Read
	switch kind {
	case writeCall:
		d = t.Write
	case longCall:
		d = t.Long
	}
	return context.WithTimeout(ctx, d)
}

// Open connects to the MariaDB server of dsn (go-sql-driver format, e.g.
// "root@tcp(127.0.0.1:3306)/srs"), creates the database if missing and
// migrates the schema idempotently. parseTime and interpolateParams are
// switched on, and DATE/DATETIME values are read and written in UTC whatever
// loc the DSN names.
//
// Socket timeouts the DSN leaves unset get defaults, so that no call waits
// forever on a server that stalls: timeout=2s (dialing; the handshake is
// bounded by ctx), readTimeout=10s and writeTimeout=10s. The statements that may
// rightly run longer than that (DDL, the migration, archive moves and exact
// counts) go through a second small pool that keeps the DSN's own read and
// write timeouts (none when unset) and relies on its per-call deadline
// (Timeouts.Long). The migration runs under ctx and at most
// DefaultLongTimeout.
//
// It returns an error when the DSN is malformed, names no database or a
// database name outside partitions.ValidIdent, or when the server refuses.
// A nil logger discards.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	cfg, slowCfg, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	schema := cfg.DBName
	ctx, cancel := context.WithTimeout(ctx, DefaultLongTimeout)
	defer cancel()
	if err := createDatabase(ctx, *slowCfg); err != nil {
		return nil, fmt.Errorf("mariadb: create database %s: %w", schema, err)
	}
	s, err := openPools(cfg, slowCfg, logger, 32)
	if err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	if err := migrate(ctx, s.slow, schema); err != nil {
		s.Close()
		return nil, fmt.Errorf("mariadb: migrate %s: %w", schema, err)
	}
	return s, nil
}

// parseDSN parses dsn, checks its database name and returns the
// configuration of the main pool (with the default socket timeouts) and of
// the pool for long statements (with the DSN's own read and write timeouts).
func parseDSN(dsn string) (cfg, slow *mysql.Config, err error) {
	cfg, err = mysql.ParseDSN(dsn)
	if err != nil {
		return nil, nil, err
	}
	if !partitions.ValidIdent(cfg.DBName) {
		return nil, nil, fmt.Errorf("database name %q in the DSN: %w", cfg.DBName, partitions.ErrInvalidIdent)
	}
	cfg.ParseTime = true
	cfg.InterpolateParams = true // one round trip per statement instead of prepare+execute+close
	cfg.Loc = time.UTC
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultDialTimeout)
	slow = cfg.Clone()
	cfg.ReadTimeout = cmp.Or(cfg.ReadTimeout, DefaultSocketReadTimeout)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, DefaultSocketWriteTimeout)
	return cfg, slow, nil
}

// openPools builds a Store on the two pools; it does not connect.
func openPools(cfg, slowCfg *mysql.Config, logger *slog.Logger, maxConns int) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	slowConn, err := mysql.NewConnector(slowCfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	slow := sql.OpenDB(slowConn)
	slow.SetMaxOpenConns(4)
	slow.SetMaxIdleConns(1)
	slow.SetConnMaxIdleTime(time.Minute)
	slow.SetConnMaxLifetime(time.Hour)
	return &Store{
		db: db, slow: slow, schema: cfg.DBName, log: logger, foundRows: cfg.ClientFoundRows, chunks: preparedRows, now: time.Now,
		timeouts: Timeouts{}.withDefaults(), routes: map[string]route{},
	}, nil
}

// createDatabase runs CREATE DATABASE IF NOT EXISTS on a connection that
// selects no database (the one in the DSN may not exist yet).
func createDatabase(ctx context.Context, cfg mysql.Config) error {
	name := cfg.DBName
	cfg.DBName = ""
	conn, err := mysql.NewConnector(&cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+partitions.QuoteIdent(name)+
		" CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin")
	return err
}

// DB returns the connection pool, for jobs that run their own SQL (archive,
// GET_LOCK). Its connections have the socket timeouts of Open (readTimeout
// 10s unless the DSN sets it), so a statement that may run longer belongs in
// a Store method. The Store keeps ownership: do not close it.
func (s *Store) DB() *sql.DB { return s.db }

// Schema returns the database name the store works in.
func (s *Store) Schema() string { return s.schema }

// SetClock replaces the clock that stamps jobs (Job.Started, Job.Updated,
// Job.Finished defaults); the default is time.Now. Tests of stale jobs set it.
func (s *Store) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// clock returns the current time, in UTC and to the millisecond that
// DATETIME(3) stores.
func (s *Store) clock() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now().UTC().Truncate(time.Millisecond)
}

// Close closes the connection pools. It returns the first close error.
func (s *Store) Close() error {
	return errors.Join(s.closePrepared(), s.db.Close(), s.slow.Close())
}

// Ping checks that the server answers within the read timeout; it returns
// the connection error.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	return s.db.PingContext(ctx)
}

// errNumber returns the MariaDB error number in err's chain, or 0.
func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// PrepareConnectTimeout bounds the first round trip of Prepare.
const PrepareConnectTimeout = 5 * time.Second

// OpenDeferred builds a Store on dsn without touching the server: for a
// sidecar that starts while MariaDB is unreachable (it serves cached
// students and queues reviews meanwhile). Calls fail until the server
// answers; Prepare creates the database and migrates the schema once it
// does. It returns an error only for a malformed DSN.
func OpenDeferred(dsn string, logger *slog.Logger) (*Store, error) {
	cfg, slowCfg, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	s, err := openPools(cfg, slowCfg, logger, 32)
	if err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	s.slowCfg = slowCfg
	return s, nil
}

// Prepare creates the database if missing and migrates the schema, as Open
// does, for a Store made by OpenDeferred. It returns the server's error.
func (s *Store) Prepare(ctx context.Context) error {
	if s.slowCfg == nil {
		return nil // opened by Open: prepared already
	}
	// Reaching the server is bounded by PrepareConnectTimeout (a stalled
	// server must not hold a start); the migration may take longer.
	cctx, ccancel := context.WithTimeout(ctx, PrepareConnectTimeout)
	err := createDatabase(cctx, *s.slowCfg)
	ccancel()
	if err != nil {
		return fmt.Errorf("mariadb: create database %s: %w", s.schema, err)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultLongTimeout)
	defer cancel()
	if err := migrate(ctx, s.slow, s.schema); err != nil {
		return fmt.Errorf("mariadb: migrate %s: %w", s.schema, err)
	}
	return nil
}

// IsUnreachable reports whether err from Open says the server could not be
// reached or did not answer (a sidecar may then start with OpenDeferred),
// as opposed to a refusal such as bad credentials or a malformed DSN.
func IsUnreachable(err error) bool {
	var netErr net.Error
	var myErr *mysql.MySQLError
	switch {
	case err == nil, errors.As(err, &myErr):
		return false
	case errors.As(err, &netErr), errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, io.EOF):
		return true
	}
	return false
}
