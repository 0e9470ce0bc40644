//go:build unix

package keys

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO at the key path is refused before open, which would block until a
// writer appeared.
func TestLoadRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo.key")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := LoadIdentityKey(p)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrMalformedFile) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		// Not a timing assertion: a correct Load returns at once; this only
		// turns a hang into a failure.
		t.Fatal("LoadIdentityKey blocked on a FIFO")
	}
}
