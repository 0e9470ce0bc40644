//go:build !unix

package freeport

// Without flock the reservation is this process's own map only.
func reserve(int) bool { return true }
func release(int)      {}
