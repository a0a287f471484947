package mariadb

import (
	"fmt"
	"log/slog"
)

// OpenReplica connects to a read-only replica of the store (a MariaDB
// replica of the primary that Open migrated). Unlike Open it creates no
// database and runs no DDL, so a read_only server and a SELECT-only user
// are fine; only the read methods (DueCards, CountDue, UserCards, Card,
// ArchiveInfo, ArchivedCard, Season, Seasons) may be used on it.
// It does not connect: a replica that is down must not stop a start (the
// caller may Ping it). DSN defaults and per-call timeouts are Open's.
// It returns an error when the DSN is malformed or
// names a database outside partitions.ValidIdent.
func OpenReplica(dsn string, logger *slog.Logger) (*Store, error) {
	cfg, slowCfg, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mariadb replica: %w", err)
	}
	s, err := openPools(cfg, slowCfg, logger, 16)
	if err != nil {
		return nil, fmt.Errorf("mariadb replica: %w", err)
	}
	return s, nil
}
