package writebehind

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FS is the file layer the queue uses: the operating system's (Config.FS nil)
// or a test's, such as NewStrictMemFS. Paths are slash-separated as the OS
// takes them; the queue only ever names files directly inside Config.Dir and
// the dead-letter file's directory.
type FS interface {
	// OpenFile opens a file with os.OpenFile's flags (O_RDONLY, O_WRONLY,
	// O_RDWR, O_CREATE, O_EXCL, O_TRUNC, O_APPEND).
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove deletes a file.
	Remove(name string) error
	// Rename replaces newname with oldname atomically.
	Rename(oldname, newname string) error
	// ReadDir lists the names of the regular files in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates dir and its parents.
	MkdirAll(dir string, perm os.FileMode) error
	// Stat describes a file.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory entries of dir durable (creates, removes
	// and renames done before the call).
	SyncDir(dir string) error
	// Lock takes an exclusive lock on the queue directory dir for this
	// process; Close releases it. It fails if another holder has it.
	Lock(dir string) (io.Closer, error)
}

// File is an open file of an FS.
type File interface {
	io.Reader
	io.Writer
	io.WriterAt
	io.Closer
	// Sync makes the file's data durable.
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Stat describes the file.
	Stat() (os.FileInfo, error)
	// Name is the path the file was opened with.
	Name() string
}

// OSFS is the operating system's file system; Config.FS defaults to it.
type OSFS struct{}

var _ FS = OSFS{}

// OpenFile is os.OpenFile.
func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a nil *os.File must not become a non-nil File
	}
	return f, nil
}

// Remove is os.Remove.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename is os.Rename.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll is os.MkdirAll.
func (OSFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// Stat is os.Stat.
func (OSFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

// ReadDir lists the regular files of dir, sorted by name.
func (OSFS) ReadDir(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		if de.Type().IsRegular() {
			names = append(names, de.Name())
		}
	}
	return names, nil
}

// SyncDir fsyncs the directory.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Lock takes an exclusive flock on dir/lock where the OS has flock (the
// kernel releases it when the process dies); elsewhere it only opens the file.
func (OSFS) Lock(dir string) (io.Closer, error) { return lockDir(dir) }

// readFile reads a whole file of fsys.
func readFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// writeFileDurable writes b to name through a temporary file, fsyncs it,
// renames it into place and fsyncs the directory.
func writeFileDurable(fsys FS, name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return errors.Join(err, fsys.Remove(tmp))
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return err
	}
	return fsys.SyncDir(filepath.Dir(name))
}
