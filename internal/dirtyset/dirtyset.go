// Package dirtyset keeps, durably, the user-seasons a sidecar wrote without
// the cache (Safe Mode, a compare-and-set the cache never confirmed). Their
// cache entries may be stale and must be invalidated before any sidecar
// serves them again; the marks must survive a crash, or a restarted sidecar
// would forget entries it left stale (found by the engine's simulation).
//
// The file is an append-only log in the queue directory:
//
//	srsproxy-dirty 1            header: format version
//	+<season>\t<player>         marked
//	-<season>\t<player>         invalidated
//
// Every change is fsynced before it returns. Open compacts the log. Season
// and player never contain tabs or newlines (the command layer refuses
// control characters).
package dirtyset

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

const header = "srsproxy-dirty 1"

// FileName is the log's name inside the directory.
const FileName = "dirty"

// Set is the durable set. Its methods are safe for concurrent use.
type Set struct {
	mu    sync.Mutex
	path  string
	f     *os.File
	users map[[2]string]bool
}

// Open reads (and compacts) the set in dir, creating it if missing. A torn
// last line (a crash mid-write) is ignored; any other damage is an error
// naming the file and line.
func Open(dir string) (*Set, error) {
	path := filepath.Join(dir, FileName)
	s := &Set{path: path, users: map[[2]string]bool{}}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dirtyset: %w", err)
	}
	if len(data) > 0 {
		if err := s.parse(data); err != nil {
			return nil, err
		}
	}
	if err := s.compact(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Set) parse(data []byte) error {
	lines := bytes.Split(data, []byte("\n"))
	// The last element follows the final newline: empty, or a torn line (a
	// crash mid-write) whose change was never acknowledged; ignored.
	lines = lines[:len(lines)-1]
	if len(lines) == 0 {
		return nil // only a torn header
	}
	if string(lines[0]) != header {
		return fmt.Errorf("dirtyset: %s: unknown format %q", s.path, lines[0])
	}
	for i, l := range lines[1:] {
		season, player, ok := strings.Cut(string(l[min(1, len(l)):]), "\t")
		if len(l) < 2 || (l[0] != '+' && l[0] != '-') || !ok {
			return fmt.Errorf("dirtyset: %s line %d: damaged entry %q", s.path, i+2, l)
		}
		if l[0] == '+' {
			s.users[[2]string{season, player}] = true
		} else {
			delete(s.users, [2]string{season, player})
		}
	}
	return nil
}

// compact rewrites the log with the current marks only (write, fsync,
// rename, fsync the directory) and opens it for appending.
func (s *Set) compact() error {
	var b bytes.Buffer
	b.WriteString(header + "\n")
	for _, u := range s.Marked() {
		fmt.Fprintf(&b, "+%s\t%s\n", u[0], u[1])
	}
	tmp := s.path + ".tmp"
	if err := writeSynced(tmp, b.Bytes()); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("dirtyset: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("dirtyset: %w", err)
	}
	s.f = f
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("dirtyset: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// Mark records a user-season durably; a user already marked costs nothing.
func (s *Set) Mark(season, player string) error {
	return s.change('+', season, player)
}

// Clean forgets a user-season whose cache entry was invalidated.
func (s *Set) Clean(season, player string) error {
	return s.change('-', season, player)
}

func (s *Set) change(op byte, season, player string) error {
	k := [2]string{season, player}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[k] == (op == '+') {
		return nil
	}
	w := bufio.NewWriter(s.f)
	fmt.Fprintf(w, "%c%s\t%s\n", op, season, player)
	if err := w.Flush(); err != nil {
		return fmt.Errorf("dirtyset: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("dirtyset: fsync: %w", err)
	}
	if op == '+' {
		s.users[k] = true
	} else {
		delete(s.users, k)
	}
	return nil
}

// Marked lists the marked user-seasons, sorted.
func (s *Set) Marked() [][2]string {
	out := make([][2]string, 0, len(s.users))
	for u := range s.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	return out
}

// Close closes the file.
func (s *Set) Close() error { return s.f.Close() }
