package mariadb

import (
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/srsproxy/srsproxy/partitions"
)

// OpenReplica connects to a read-only replica of the store (a MariaDB
// replica of the primary that Open migrated). Unlike Open it creates no
// database and runs no DDL, so a read_only server and a SELECT-only user
// are fine; only the read methods (DueCards, CountDue, UserCards, Card,
// ArchiveInfo, ArchivedCard, Season, Seasons) may be used on it.
// It does not connect: a replica that is down must not stop a start (the
// caller may Ping it). It returns an error when the DSN is malformed or
// names a database outside partitions.ValidIdent.
func OpenReplica(dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mariadb replica: %w", err)
	}
	if !partitions.ValidIdent(cfg.DBName) {
		return nil, fmt.Errorf("mariadb replica: database name %q in the DSN: %w", cfg.DBName, partitions.ErrInvalidIdent)
	}
	cfg.ParseTime = true
	cfg.InterpolateParams = true
	cfg.Loc = time.UTC
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mariadb replica: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	return &Store{db: db, schema: cfg.DBName, log: logger, now: time.Now, routes: map[string]route{}}, nil
}
