package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The survey database holds every submission; other local users must not read it (issue 13,
// finding 8). With the usual umask 022 SQLite would create the file and its WAL and shared
// memory files 0644.
func TestSQLiteFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "survey.db")
	s, err := Open(context.Background(), SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A write, so that the WAL holds something while the store is open.
	sv, _ := signedSurvey(t, "commute")
	if err := s.OpenSurvey(context.Background(), sv); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(p), perm)
		}
	}
}
