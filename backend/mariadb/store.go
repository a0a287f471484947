// Package mariadb is the MariaDB store, the source of truth: seasons, cards
// (LIST partitioned by season), the append-only review log, the archive
// tables of archived seasons, background jobs and the named locks that make a
// job run once per cluster. It speaks plain MySQL protocol through
// github.com/go-sql-driver/mysql.
package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/srsproxy/srsproxy/partitions"
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
type Store struct {
	db     *sql.DB
	schema string
	log    *slog.Logger

	mu     sync.Mutex
	now    func() time.Time
	routes map[string]route // where reviews of archiving/archived seasons go; see ApplyReviews
}

// Open connects to the MariaDB server of dsn (go-sql-driver format, e.g.
// "root@tcp(127.0.0.1:3306)/srs"), creates the database if missing and
// migrates the schema idempotently. parseTime and interpolateParams are
// switched on, and DATE/DATETIME values are read and written in UTC whatever
// loc the DSN names.
// It returns an error when the DSN is malformed, names no database or a
// database name outside partitions.ValidIdent, or when the server refuses.
// A nil logger discards.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	schema := cfg.DBName
	if !partitions.ValidIdent(schema) {
		return nil, fmt.Errorf("mariadb: database name %q in the DSN: %w", schema, partitions.ErrInvalidIdent)
	}
	cfg.ParseTime = true
	cfg.InterpolateParams = true // one round trip per statement instead of prepare+execute+close
	cfg.Loc = time.UTC

	if err := createDatabase(ctx, *cfg); err != nil {
		return nil, fmt.Errorf("mariadb: create database %s: %w", schema, err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	if err := migrate(ctx, db, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("mariadb: migrate %s: %w", schema, err)
	}
	return &Store{db: db, schema: schema, log: logger, now: time.Now, routes: map[string]route{}}, nil
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
// GET_LOCK). The Store keeps ownership: do not close it.
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

// Close closes the connection pool. It returns the pool's close error.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the server answers; it returns the connection error.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// errNumber returns the MariaDB error number in err's chain, or 0.
func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
