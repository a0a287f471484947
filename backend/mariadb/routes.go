package mariadb

import (
	"context"
	"fmt"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// route is where ApplyReviews writes one season's reviews: the table that
// takes its review-log rows and the one that takes its cards. Each is the live
// partitioned table while the season's partition is there, the season's
// archive table once the partition has been converted (late entries of an
// archived season), or "" when neither exists and the reviews are rejected.
type route struct {
	state      srs.ArchiveState // the season's archive_state when resolved
	log, cards string           // validated table names; "" means nowhere
}

// archiving reports whether reviews of a season in state may go to its
// archive tables.
func archiving(state srs.ArchiveState) bool {
	return state == srs.ArchiveInProgress || state == srs.ArchiveDone
}

// live is the route of a season whose partitions are assumed present: the
// fast path, checked by the INSERT itself (error 1526 if wrong).
func live(state srs.ArchiveState) route {
	return route{state: state, log: "review_log", cards: "cards"}
}

// batchRoutes returns the route of every season of the batch entries not
// skipped; a season without a seasons row is absent from the map.
//
// The fast path (full false) costs one query per batch, the seasons lookup
// that has always been there: live seasons take the live tables unchecked,
// and archiving or archived seasons take a route cached in the store, or one
// resolved from information_schema (one query per table kind, for all of
// them) and then cached. full resolves every season of the batch from
// information_schema and refreshes the cache; ApplyReviews uses it after a
// partition or an archive table vanished under a batch (error 1526 or 1146).
func (s *Store) batchRoutes(ctx context.Context, batch []srs.Review, skip []bool, full bool) (map[string]route, error) {
	names := seasonsOf(batch, skip)
	routes := make(map[string]route, len(names))
	if len(names) == 0 {
		return routes, nil
	}
	rows, err := s.db.QueryContext(ctx, "SELECT name, archive_state FROM seasons WHERE name IN ("+
		placeholders("?", len(names))+")", anys(names)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	states := map[string]srs.ArchiveState{}
	for rows.Next() {
		var (
			name  string
			state srs.ArchiveState
		)
		if err := rows.Scan(&name, &state); err != nil {
			return nil, err
		}
		states[name] = state
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	var resolve []string
	s.mu.Lock()
	for name, state := range states {
		cached, ok := s.routes[name]
		switch {
		case full:
			resolve = append(resolve, name)
		case !archiving(state):
			routes[name] = live(state)
		case ok && cached.state == state:
			routes[name] = cached
		default:
			resolve = append(resolve, name)
		}
	}
	s.mu.Unlock()
	if len(resolve) == 0 {
		return routes, nil
	}

	resolved, err := s.resolveRoutes(ctx, resolve, states)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range resolved {
		routes[name] = r
		if archiving(r.state) {
			s.routes[name] = r
		} else {
			delete(s.routes, name)
		}
	}
	return routes, nil
}

// resolveRoutes looks up, for each season, which of its partitions are still
// in the live tables and which archive tables exist: two information_schema
// queries whatever the number of seasons.
func (s *Store) resolveRoutes(ctx context.Context, seasons []string, states map[string]srs.ArchiveState) (map[string]route, error) {
	parts := make([]string, 0, len(seasons))
	var archives []string
	for _, name := range seasons {
		p, err := partitions.Name(name)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
		for _, table := range partitionedTables {
			a, err := partitions.ArchiveTable(table, name)
			if err != nil {
				return nil, err
			}
			archives = append(archives, a)
		}
	}
	have := map[string]bool{} // "table/partition" and archive table names present
	rows, err := s.db.QueryContext(ctx, `SELECT TABLE_NAME, PARTITION_NAME FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('cards', 'review_log') AND PARTITION_NAME IN (`+
		placeholders("?", len(parts))+")", append([]any{s.schema}, anys(parts)...)...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var table, part string
		if err := rows.Scan(&table, &part); err != nil {
			rows.Close()
			return nil, err
		}
		have[table+"/"+part] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.db.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (`+placeholders("?", len(archives))+")",
		append([]any{s.schema}, anys(archives)...)...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return nil, err
		}
		have[table] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	out := make(map[string]route, len(seasons))
	for i, name := range seasons {
		state := states[name]
		where := func(table string) string {
			if have[table+"/"+parts[i]] {
				return table
			}
			if a, _ := partitions.ArchiveTable(table, name); archiving(state) && have[a] {
				return a
			}
			return ""
		}
		out[name] = route{state: state, log: where("review_log"), cards: where("cards")}
	}
	return out, nil
}

// forgetRoute drops the cached route of a season whose tables this store
// just changed.
func (s *Store) forgetRoute(season string) {
	s.mu.Lock()
	delete(s.routes, season)
	s.mu.Unlock()
}

// anys converts strings to query arguments.
func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, v := range ss {
		out[i] = v
	}
	return out
}

// unrouted is the rejection reason of a season with nowhere to write.
func unrouted(season string) error {
	return fmt.Errorf("season %s has no partition and no archive table", season)
}
