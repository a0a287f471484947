//go:build !unix

package writebehind

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// lockDir opens the lock file; without flock nothing stops a second process.
func lockDir(dir string) (io.Closer, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writebehind: %w", err)
	}
	return f, nil
}
