package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/srsproxy/srsproxy/partitions"
)

// preparedRows are the row counts of the multi-row statements ApplyReviews
// sends as server-side prepared statements, largest first: a chunk of rows
// goes as many statements of each size as fit, and what is left (fewer
// than the smallest) as one statement with its values interpolated.
//
// Measured on this 2-core machine (MariaDB 10.11, srsbench's rows, batches
// of 1000, each statement kind timed with the server's CPU per row, one
// kind after the other in the same transactions): the binary protocol
// sends the DOUBLEs and BIGINTs of a row as 8 bytes each instead of text
// the server parses, which took the log INSERT from 31–38 to 19–24 µs of
// server CPU per row and the cards upsert from 35–42 to 16–21; the lock
// read gains less (19–26 to 17–21). LOAD DATA LOCAL INFILE was no faster
// than the prepared INSERT (20 against 22 µs per row), so it is not used.
// Preparing costs a round trip the first time a connection runs a
// statement, so only these few sizes are prepared, for the live tables;
// archive tables (late entries) and the remainder of a chunk interpolate.
//
// 25 came with the shards of ApplyReviews: a shard's size is whatever
// hashing its users gives, so up to 99 of its rows (10% on average at 500
// a shard) went interpolated, at about twice the server's CPU per row;
// below 25 that is 2%, for at most three more statements of each kind.
var preparedRows = []int{500, 100, 25}

// splitRows splits n rows into the sizes of the statements that send them:
// prepared sizes (see preparedRows) first, then what is left in statements
// of at most most rows. prepared reports whether the i-th size is a
// prepared one.
func splitRows(n int, sizes []int, most int) (out []int, prepared []bool) {
	for _, size := range sizes {
		for ; n >= size && size <= most; n -= size {
			out, prepared = append(out, size), append(prepared, true)
		}
	}
	for n > 0 {
		k := min(n, most)
		out, prepared = append(out, k), append(prepared, false)
		n -= k
	}
	return out, prepared
}

// stmtCache holds the statements prepared once per store, keyed by query
// text; database/sql prepares each on a connection the first time it runs
// there.
type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// txStmt returns query prepared for tx, or nil when it could not be
// prepared (the server refuses, e.g. max_prepared_stmt_count): the caller
// then interpolates, and a connection failure shows in that statement.
func (s *Store) txStmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	c := &s.prepared
	c.mu.Lock()
	st := c.stmts[query]
	c.mu.Unlock()
	if st == nil {
		var err error
		if st, err = s.db.PrepareContext(ctx, query); err != nil {
			s.log.DebugContext(ctx, "prepare failed; interpolating", "err", err)
			return nil
		}
		c.mu.Lock()
		if old := c.stmts[query]; old != nil {
			st.Close()
			st = old
		} else {
			if c.stmts == nil {
				c.stmts = map[string]*sql.Stmt{}
			}
			c.stmts[query] = st
		}
		c.mu.Unlock()
	}
	return tx.StmtContext(ctx, st)
}

// chunksFor returns the prepared sizes for table: the live tables' only.
func (s *Store) chunksFor(table string) []int {
	if table == "cards" || table == "review_log" {
		return s.chunks
	}
	return nil
}

// execRows writes rows into table: args holds width values per row, query
// is a format taking the quoted table name and the VALUES list, with one
// group of placeholders per row. It sends them in statements of the sizes
// splitRows gives, prepared where it can, and returns the sum of their
// affected rows or the first error.
func (s *Store) execRows(ctx context.Context, tx *sql.Tx, query, table, group string, width int, args []any) (int64, error) {
	var affected int64
	sizes, prepared := splitRows(len(args)/width, s.chunksFor(table), chunkRows)
	for i, k := range sizes {
		q := fmt.Sprintf(query, partitions.QuoteIdent(table), placeholders(group, k))
		part := args[:k*width]
		args = args[k*width:]
		var (
			res sql.Result
			err error
		)
		if st := s.maybeStmt(ctx, tx, q, prepared[i]); st != nil {
			res, err = st.ExecContext(ctx, part...)
		} else {
			res, err = tx.ExecContext(ctx, q, part...)
		}
		if err != nil {
			return 0, err
		}
		if n, err := res.RowsAffected(); err == nil {
			affected += n
		}
	}
	return affected, nil
}

// maybeStmt is txStmt when prepare is set, else nil.
func (s *Store) maybeStmt(ctx context.Context, tx *sql.Tx, query string, prepare bool) *sql.Stmt {
	if !prepare {
		return nil
	}
	return s.txStmt(ctx, tx, query)
}

// closePrepared closes the cached statements.
func (s *Store) closePrepared() error {
	c := &s.prepared
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for q, st := range c.stmts {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.stmts, q)
	}
	return first
}
