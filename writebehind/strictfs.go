package writebehind

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// ErrPowerOff is returned by every operation of a StrictMemFS after a crash
// armed with CrashAfter has happened, until Crash brings it back.
var ErrPowerOff = errors.New("strictfs: power is off")

// StrictMemFS is an in-memory FS for tests that keeps what a power loss would
// keep and nothing more (in the spirit of Pebble's vfs.NewStrictMem): Crash
// drops every byte of a file not covered by an fsync of that file, and every
// create, remove or rename in a directory not covered by a SyncDir of it.
// Directories themselves (MkdirAll) are durable at once. Lock is a no-op
// that only refuses a second holder.
//
// Faults: SetCapacity makes writes past a total size fail with ENOSPC (a
// partial write, as the kernel does), FailSyncs makes file fsyncs fail, and
// CrashAfter cuts the power in the middle of whatever the code under test is
// doing. It is safe for concurrent use.
type StrictMemFS struct {
	mu         sync.Mutex
	dirs       map[string]*memDir
	gen        int   // bumped by every crash; older handles are dead
	capacity   int64 // 0: unlimited
	syncErr    error
	countdown  int // mutating operations left before an armed crash; -1: none
	off        bool
	locks      map[string]bool
	mutations  int
	crashCount int
}

type memDir struct {
	names   map[string]*memNode // what a reader sees now
	durable map[string]*memNode // what a crash leaves
}

type memNode struct {
	data   []byte
	synced []byte
}

var _ FS = (*StrictMemFS)(nil)

// NewStrictMemFS returns an empty strict in-memory file system.
func NewStrictMemFS() *StrictMemFS {
	return &StrictMemFS{dirs: map[string]*memDir{}, countdown: -1, locks: map[string]bool{}}
}

// Crash simulates a power loss and the reboot after it: every file returns to
// its content at its last fsync (empty if never synced), every directory to
// its entries at its last SyncDir, and every open File fails from now on
// with os.ErrClosed. Locks are released. After an armed crash (CrashAfter)
// has fired, Crash only turns the power back on.
func (m *StrictMemFS) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.off {
		m.crashLocked()
	}
	m.off = false
	m.countdown = -1
}

func (m *StrictMemFS) crashLocked() {
	m.gen++
	m.crashCount++
	for _, d := range m.dirs {
		d.names = cloneNames(d.durable)
		for _, n := range d.names {
			n.data = slices.Clone(n.synced)
		}
	}
	m.locks = map[string]bool{}
}

// CrashAfter arms a power loss: the ops-th mutating operation from now on
// (write, truncate, fsync, create, remove, rename, directory sync; 0 = the
// next one) fails and crashes the file system as Crash does, and every
// operation after it fails with ErrPowerOff until Crash is called. ops < 0
// disarms it.
func (m *StrictMemFS) CrashAfter(ops int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.countdown = ops
}

// Crashed reports whether an armed crash has fired and the power is still off.
func (m *StrictMemFS) Crashed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.off
}

// Mutations returns the number of mutating operations so far (to size
// CrashAfter).
func (m *StrictMemFS) Mutations() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mutations
}

// SetCapacity limits the bytes all files may hold together; 0 removes the
// limit. A write past it writes what fits and fails with ENOSPC.
func (m *StrictMemFS) SetCapacity(bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.capacity = bytes
}

// Used returns the bytes all files hold now.
func (m *StrictMemFS) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.usedLocked()
}

// FailSyncs makes every file fsync fail with err (nil: succeed again).
func (m *StrictMemFS) FailSyncs(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncErr = err
}

// mutate counts a mutating operation and fires an armed crash. Called with
// m.mu held; a non-nil error means the operation must not happen.
func (m *StrictMemFS) mutate() error {
	if m.off {
		return ErrPowerOff
	}
	m.mutations++
	if m.countdown < 0 {
		return nil
	}
	if m.countdown == 0 {
		m.crashLocked()
		m.off = true
		m.countdown = -1
		return ErrPowerOff
	}
	m.countdown--
	return nil
}

func (m *StrictMemFS) usedLocked() int64 {
	var n int64
	for _, d := range m.dirs {
		for _, f := range d.names {
			n += int64(len(f.data))
		}
	}
	return n
}

func cloneNames(src map[string]*memNode) map[string]*memNode {
	dst := make(map[string]*memNode, len(src))
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

func (m *StrictMemFS) dir(name string) (*memDir, string, error) {
	d, ok := m.dirs[filepath.Clean(filepath.Dir(name))]
	if !ok {
		return nil, "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return d, filepath.Base(name), nil
}

// MkdirAll creates dir and its parents, durable at once.
func (m *StrictMemFS) MkdirAll(dir string, _ os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.off {
		return ErrPowerOff
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, ok := m.dirs[d]; !ok {
			m.dirs[d] = &memDir{names: map[string]*memNode{}, durable: map[string]*memNode{}}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// OpenFile opens or creates a file.
func (m *StrictMemFS) OpenFile(name string, flag int, _ os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.off {
		return nil, ErrPowerOff
	}
	d, base, err := m.dir(name)
	if err != nil {
		return nil, err
	}
	n, ok := d.names[base]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		if err := m.mutate(); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		n = &memNode{}
		d.names[base] = n
	case flag&os.O_TRUNC != 0:
		if err := m.mutate(); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		n.data = nil
	}
	return &memFile{fs: m, node: n, name: name, gen: m.gen, flag: flag}, nil
}

// Remove deletes a file.
func (m *StrictMemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dir(name)
	if err != nil {
		return err
	}
	if _, ok := d.names[base]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if err := m.mutate(); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	delete(d.names, base)
	return nil
}

// Rename moves a file, replacing newname.
func (m *StrictMemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, ob, err := m.dir(oldname)
	if err != nil {
		return err
	}
	nd, nb, err := m.dir(newname)
	if err != nil {
		return err
	}
	n, ok := od.names[ob]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if err := m.mutate(); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	delete(od.names, ob)
	nd.names[nb] = n
	return nil
}

// ReadDir lists the files of dir, sorted.
func (m *StrictMemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.off {
		return nil, ErrPowerOff
	}
	d, ok := m.dirs[filepath.Clean(dir)]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	names := make([]string, 0, len(d.names))
	for n := range d.names {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// Stat describes a file or directory.
func (m *StrictMemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.off {
		return nil, ErrPowerOff
	}
	if _, ok := m.dirs[filepath.Clean(name)]; ok {
		return memInfo{name: filepath.Base(name), dir: true}, nil
	}
	d, base, err := m.dir(name)
	if err != nil {
		return nil, err
	}
	n, ok := d.names[base]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return memInfo{name: base, size: int64(len(n.data))}, nil
}

// SyncDir makes the entries of dir durable.
func (m *StrictMemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.dirs[filepath.Clean(dir)]
	if !ok {
		return &fs.PathError{Op: "sync", Path: dir, Err: fs.ErrNotExist}
	}
	if err := m.mutate(); err != nil {
		return &fs.PathError{Op: "sync", Path: dir, Err: err}
	}
	d.durable = cloneNames(d.names)
	return nil
}

// Lock refuses a second holder of dir until the first closes it or a crash.
func (m *StrictMemFS) Lock(dir string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.off {
		return nil, ErrPowerOff
	}
	dir = filepath.Clean(dir)
	if m.locks[dir] {
		return nil, errors.New("writebehind: queue directory " + dir + " is in use by another process")
	}
	m.locks[dir] = true
	return &memLock{fs: m, dir: dir, gen: m.gen}, nil
}

type memLock struct {
	fs   *StrictMemFS
	dir  string
	gen  int
	once sync.Once
}

func (l *memLock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		defer l.fs.mu.Unlock()
		if l.gen == l.fs.gen {
			delete(l.fs.locks, l.dir)
		}
	})
	return nil
}

// memFile is an open file; it dies with the generation it was opened in.
type memFile struct {
	fs     *StrictMemFS
	node   *memNode
	name   string
	gen    int
	flag   int
	off    int64
	closed bool
}

func (f *memFile) check(op string, mutating bool) error {
	switch {
	case f.fs.off:
		return &fs.PathError{Op: op, Path: f.name, Err: ErrPowerOff}
	case f.closed || f.gen != f.fs.gen:
		return &fs.PathError{Op: op, Path: f.name, Err: os.ErrClosed}
	case mutating && f.flag&(os.O_WRONLY|os.O_RDWR) == 0:
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	case mutating:
		if err := f.fs.mutate(); err != nil {
			return &fs.PathError{Op: op, Path: f.name, Err: err}
		}
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.off >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.node.data[f.off:])
	f.off += int64(n)
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	off := f.off
	if f.flag&os.O_APPEND != 0 {
		off = int64(len(f.node.data))
	}
	n, err := f.writeAt(p, off, "write")
	f.off = off + int64(n)
	return n, err
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.writeAt(p, off, "writeat")
}

// writeAt writes what the capacity allows. Called with fs.mu held.
func (f *memFile) writeAt(p []byte, off int64, op string) (int, error) {
	if err := f.check(op, true); err != nil {
		return 0, err
	}
	want := p
	var err error
	if c := f.fs.capacity; c > 0 {
		grow := max(0, off+int64(len(p))-int64(len(f.node.data)))
		if room := c - f.fs.usedLocked(); grow > room {
			keep := max(0, int64(len(p))-(grow-max(room, 0)))
			want = p[:keep]
			err = &fs.PathError{Op: op, Path: f.name, Err: syscall.ENOSPC}
		}
	}
	if end := off + int64(len(want)); end > int64(len(f.node.data)) {
		f.node.data = append(f.node.data, make([]byte, end-int64(len(f.node.data)))...)
	}
	copy(f.node.data[off:], want)
	return len(want), err
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync", false); err != nil {
		return err
	}
	if err := f.fs.mutate(); err != nil {
		return &fs.PathError{Op: "sync", Path: f.name, Err: err}
	}
	if f.fs.syncErr != nil {
		return &fs.PathError{Op: "sync", Path: f.name, Err: f.fs.syncErr}
	}
	f.node.synced = slices.Clone(f.node.data)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < int64(len(f.node.data)) {
		f.node.data = slices.Clip(f.node.data[:size])
	} else {
		f.node.data = append(f.node.data, make([]byte, size-int64(len(f.node.data)))...)
	}
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return nil, err
	}
	return memInfo{name: filepath.Base(f.name), size: int64(len(f.node.data))}, nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	f.closed = true
	return nil
}

func (f *memFile) Name() string { return f.name }

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() os.FileMode {
	if i.dir {
		return os.ModeDir | 0o750
	}
	return 0o600
}
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
