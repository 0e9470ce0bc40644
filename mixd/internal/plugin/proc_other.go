//go:build !linux

package plugin

import "syscall"

// sysProcAttr puts the plugin in a process group of its own, so that a kill reaches whatever it
// started.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
