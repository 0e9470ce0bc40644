package scale

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on every Linux
// architecture Go supports).
const clockTick = 10 * time.Millisecond

// ProcSample is what /proc says about one process at one instant.
type ProcSample struct {
	// CPU is the user and system time used so far.
	CPU time.Duration
	// RSS is the resident set; PeakRSS its high-water mark (VmHWM), in bytes.
	RSS, PeakRSS int64
	// FDs counts open file descriptors.
	FDs int
}

// maxProcFile bounds what is read of one /proc file (stat and status are a few KB).
const maxProcFile = 1 << 16

func readProcFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxProcFile)
	n, err := f.Read(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if n == len(b) {
		return nil, fmt.Errorf("%s: longer than %d bytes", name, maxProcFile)
	}
	return b[:n], nil
}

// SampleProc reads pid's CPU time, memory and open files.
func SampleProc(pid int) (ProcSample, error) {
	var s ProcSample
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := readProcFile(filepath.Join(dir, "stat"))
	if err != nil {
		return s, fmt.Errorf("scale: %w", err)
	}
	if s.CPU, err = parseStatCPU(stat); err != nil {
		return s, fmt.Errorf("scale: process %d: %w", pid, err)
	}
	status, err := readProcFile(filepath.Join(dir, "status"))
	if err != nil {
		return s, fmt.Errorf("scale: %w", err)
	}
	if s.RSS, s.PeakRSS, err = parseStatusMemory(status); err != nil {
		return s, fmt.Errorf("scale: process %d: %w", pid, err)
	}
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return s, fmt.Errorf("scale: %w", err)
	}
	s.FDs = len(fds)
	return s, nil
}

// parseStatCPU returns utime + stime from the text of /proc/PID/stat. The command name (field
// 2) is in parentheses and may hold spaces and parentheses itself: fields are counted from
// the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	// After the name: state (field 3) ... utime is field 14, stime field 15.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("stat: bad time %q", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// parseStatusMemory returns VmRSS and VmHWM, in bytes, from the text of /proc/PID/status.
func parseStatusMemory(status []byte) (rss, hwm int64, err error) {
	var haveRSS, haveHWM bool
	for line := range strings.Lines(string(status)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("status: %s: %q", name, strings.TrimSpace(value))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, 0, fmt.Errorf("status: %s: %q", name, f[0])
		}
		if name == "VmRSS" {
			rss, haveRSS = kb<<10, true
		} else {
			hwm, haveHWM = kb<<10, true
		}
	}
	if !haveRSS || !haveHWM {
		return 0, 0, errors.New("status: no VmRSS or VmHWM")
	}
	return rss, hwm, nil
}

// FindProcess returns the pid of the one process whose command line holds arg as one of its
// arguments (a daemon's config file path is unique to it).
func FindProcess(arg string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("scale: %w", err)
	}
	found := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone, or not ours to read
		}
		for a := range bytes.SplitSeq(b, []byte{0}) {
			if string(a) == arg {
				if found != 0 {
					return 0, fmt.Errorf("scale: processes %d and %d both run with %s", found, pid, arg)
				}
				found = pid
			}
		}
	}
	if found == 0 {
		return 0, fmt.Errorf("scale: no process runs with %s", arg)
	}
	return found, nil
}
