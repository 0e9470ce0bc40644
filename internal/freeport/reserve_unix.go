//go:build unix

package freeport

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// reserveDir is shared by every process on the machine that uses this package. It is created
// world-writable with the sticky bit, like /tmp, so that processes of different users share it.
var reserveDir = filepath.Join(os.TempDir(), "panoramix-freeport")

// held keeps each reservation's file open: closing it would drop the lock. Guarded by mu.
var held = map[int]*os.File{}

// reserve takes port p for this process unless another process holds it. If the reservation
// directory cannot be used at all, it reserves nothing and says yes: the bind check still runs.
func reserve(p int) bool {
	if _, err := os.Stat(reserveDir); err != nil {
		if err := os.MkdirAll(reserveDir, 0o755); err != nil {
			return true
		}
		os.Chmod(reserveDir, 0o1777|os.ModeSticky) // past the umask
	}
	f, err := os.OpenFile(filepath.Join(reserveDir, strconv.Itoa(p)), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		// A file of another user that this one may not open: that user's process may hold it.
		// Any other failure (out of file descriptors, say) leaves the bind check alone.
		return !os.IsPermission(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	held[p] = f
	return true
}

// release gives back a reservation that was not handed out.
func release(p int) {
	if f := held[p]; f != nil {
		f.Close()
		delete(held, p)
	}
}
