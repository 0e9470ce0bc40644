//go:build privacytrace

package main

// traced says the in-process clients record their packets (the ground truth).
func traced() bool { return true }
