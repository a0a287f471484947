package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	rcache "github.com/srsproxy/srsproxy/backend/redis"
)

// ensureLocalInfile makes sure the server accepts LOAD DATA LOCAL. It reports
// whether it had to switch the global setting on.
func ensureLocalInfile(ctx context.Context, db *sql.DB) (bool, error) {
	var name, value string
	if err := db.QueryRowContext(ctx, "SHOW VARIABLES LIKE 'local_infile'").Scan(&name, &value); err != nil {
		return false, fmt.Errorf("local_infile: %w", err)
	}
	if strings.EqualFold(value, "ON") || value == "1" {
		return false, nil
	}
	if _, err := db.ExecContext(ctx, "SET GLOBAL local_infile = 1"); err != nil {
		return false, fmt.Errorf("SET GLOBAL local_infile = 1: %w", err)
	}
	return true, nil
}

// seedChunkRows is the rows of one LOAD DATA statement (one transaction).
const seedChunkRows = 250_000

// seedMariaDB writes every card of ds into the cards table with LOAD DATA
// LOCAL INFILE fed by the driver's reader handler (no file, no row inserts),
// parallel statements over disjoint user ranges, each in primary-key order.
func seedMariaDB(ctx context.Context, db *sql.DB, ds *dataset, parallel int, progress func(done int64)) error {
	chunk := max(1, seedChunkRows/ds.CardsPerUser)
	type job struct{ lo, hi int }
	jobs := make(chan job)
	go func() {
		defer close(jobs)
		for lo := 0; lo < ds.Users; lo += chunk {
			select {
			case jobs <- job{lo, min(lo+chunk, ds.Users)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int64
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				err := loadUsers(ctx, db, ds, j.lo, j.hi)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				done += int64(j.hi-j.lo) * int64(ds.CardsPerUser)
				if progress != nil {
					progress(done)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func loadUsers(ctx context.Context, db *sql.DB, ds *dataset, lo, hi int) error {
	pr, pw := io.Pipe()
	name := fmt.Sprintf("srsbench-%s-%d", ds.Season, lo)
	mysql.RegisterReaderHandler(name, func() io.Reader { return pr })
	defer mysql.DeregisterReaderHandler(name)
	go func() {
		bw := bufio.NewWriterSize(pw, 1<<20)
		var line []byte
		for u := lo; u < hi; u++ {
			for _, c := range ds.userCards(u) {
				line = appendTSV(line[:0], c)
				if _, err := bw.Write(line); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
		}
		pw.CloseWithError(bw.Flush())
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		pr.CloseWithError(err)
		return err
	}
	defer conn.Close()
	// Bulk-load settings of this session only: the rows are generated
	// unique, so the secondary-index uniqueness checks can be deferred.
	if _, err := conn.ExecContext(ctx, "SET SESSION unique_checks = 0, foreign_key_checks = 0"); err != nil {
		pr.CloseWithError(err)
		return err
	}
	res, err := conn.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' INTO TABLE cards"+
		" CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '' LINES TERMINATED BY '\\n' "+loadColumns)
	pr.CloseWithError(io.ErrClosedPipe) // unblock the writer if the statement failed early
	if err != nil {
		return fmt.Errorf("LOAD DATA users %d..%d of %s: %w", lo, hi, ds.Season, err)
	}
	if n, _ := res.RowsAffected(); n != int64(hi-lo)*int64(ds.CardsPerUser) {
		return fmt.Errorf("LOAD DATA users %d..%d of %s: %d rows loaded, want %d", lo, hi, ds.Season, n, int64(hi-lo)*int64(ds.CardsPerUser))
	}
	return nil
}

// seedRedis loads users [lo, hi) into the cache through the sidecar's own
// loader (backend/redis Cache.Load, the call a cache miss makes).
func seedRedis(ctx context.Context, cache *rcache.Cache, ds *dataset, lo, hi, parallel int) error {
	next := make(chan int)
	go func() {
		defer close(next)
		for u := lo; u < hi; u++ {
			select {
			case next <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				if _, err := cache.Load(ctx, ds.Season, ds.player(u), ds.userCards(u)); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func newCache(addr, prefix string) (*rcache.Cache, error) {
	return rcache.New(rcache.Options{Addrs: []string{addr}, Prefix: prefix, TTL: 24 * time.Hour,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, PoolSize: 16})
}

// MemoryFigure is Redis memory per cached card, from MEMORY USAGE key
// SAMPLES 0 over users' card hash (state) and version and labels keys.
type MemoryFigure struct {
	Cards           int64   `json:"cards"`
	Settings        string  `json:"settings"`
	SampledUsers    int     `json:"sampled_users"`
	BytesPerCard    float64 `json:"bytes_per_card"`
	VersionBytes    float64 `json:"version_bytes_per_card"`
	StateBytes      float64 `json:"state_bytes_per_card"`
	VersionEncoding string  `json:"version_encoding"`
	StateEncoding   string  `json:"state_encoding"`
	SettingsDetail  string  `json:"settings_detail"`
}

// sampleUsers picks up to n of the cached users of ds, evenly spread.
func sampleUsers(ds *dataset, n int) []int {
	n = min(n, ds.Cached)
	users := make([]int, n)
	for i := range users {
		users[i] = i * ds.Cached / n
	}
	return users
}

// measureMemory sums MEMORY USAGE of the users' keys.
func measureMemory(addr, prefix string, ds *dataset, users []int) (MemoryFigure, error) {
	c, err := dialRESP(addr, 5*time.Second)
	if err != nil {
		return MemoryFigure{}, err
	}
	defer c.Close()
	n := len(users)
	if n == 0 {
		return MemoryFigure{}, fmt.Errorf("no cached users")
	}
	// The card hash is the state; the version and labels keys are the rest.
	var state, rest int64
	for _, u := range users {
		for _, k := range rcache.UserKeys(prefix, ds.Season, ds.player(u)) {
			c.send("MEMORY", "USAGE", k, "SAMPLES", "0")
		}
	}
	if err := c.flush(); err != nil {
		return MemoryFigure{}, err
	}
	perUser := len(rcache.UserKeys(prefix, ds.Season, ""))
	for range n {
		for i := range perUser {
			v, err := c.read()
			if err != nil {
				return MemoryFigure{}, fmt.Errorf("MEMORY USAGE: %w", err)
			}
			if v == nil {
				return MemoryFigure{}, fmt.Errorf("MEMORY USAGE: a sampled user's keys are missing")
			}
			if i == 0 {
				state += asInt(v)
			} else {
				rest += asInt(v)
			}
		}
	}
	cards := float64(n) * float64(ds.CardsPerUser)
	f := MemoryFigure{Cards: ds.Cards(), SampledUsers: n, StateBytes: round1(float64(state) / cards),
		VersionBytes: round1(float64(rest) / cards)}
	f.BytesPerCard = round1(f.StateBytes + f.VersionBytes)
	key := func(u int, which string) string {
		k := rcache.UserKeys(prefix, ds.Season, ds.player(u))
		if which == "l" {
			return k[2]
		}
		return k[0]
	}
	if v, err := c.do("OBJECT", "ENCODING", key(users[0], "l")); err == nil {
		f.VersionEncoding, _ = v.(string)
	}
	if v, err := c.do("OBJECT", "ENCODING", key(users[0], "c")); err == nil {
		f.StateEncoding, _ = v.(string)
	}
	if v, err := c.do("CONFIG", "GET", "*-max-listpack-*"); err == nil {
		m := flatMap(v)
		var parts []string
		for _, k := range sortedKeys(m) {
			if strings.HasPrefix(k, "zset") || strings.HasPrefix(k, "hash") {
				parts = append(parts, fmt.Sprintf("%s %v", k, m[k]))
			}
		}
		f.SettingsDetail = strings.Join(parts, ", ")
	}
	return f, nil
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
