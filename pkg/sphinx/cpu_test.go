package sphinx

import (
	"syscall"
	"testing"
)

// cpuNanos is the CPU time (user and system) the test process has used. The benchmarks report
// it per operation as cpu-ns/op next to the wall time, because the project machine is shared
// and wall time per operation moves with everyone else's load while CPU time moves much less
// (docs/BENCHMARKS.md, pkg/sphinx).
func cpuNanos(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// reportCPU reports the CPU time since start per operation; call it after the b.Loop loop.
func reportCPU(b *testing.B, start int64) {
	b.ReportMetric(float64(cpuNanos(b)-start)/float64(b.N), "cpu-ns/op")
}
