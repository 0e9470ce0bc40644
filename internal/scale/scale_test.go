package scale

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses: fields count from the last ')'.
	stat := "4242 (mix d) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 1000000 500 18446744073709551615\n"
	cpu, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if cpu != 325*clockTick {
		t.Fatalf("cpu %v, want %v", cpu, 325*clockTick)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 3 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := "Name:\tmixd\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t9\n"
	rss, hwm, err := parseStatusMemory([]byte(status))
	if err != nil || rss != 1024<<10 || hwm != 2048<<10 {
		t.Fatalf("rss %d, hwm %d, %v", rss, hwm, err)
	}
	for _, bad := range []string{"", "VmRSS:\t1 kB\n", "VmRSS:\t1 MB\nVmHWM:\t1 kB\n", "VmRSS:\t-1 kB\nVmHWM:\t1 kB\n", "VmRSS:\tx kB\nVmHWM:\t1 kB\n"} {
		if _, _, err := parseStatusMemory([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// SampleProc and FindProcess on this test's own process: its CPU time grows with work done.
func TestSampleSelf(t *testing.T) {
	a, err := SampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.RSS <= 0 || a.PeakRSS < a.RSS || a.FDs < 3 {
		t.Fatalf("sample %+v", a)
	}
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
	}
	b, err := SampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if b.CPU <= a.CPU {
		t.Fatalf("CPU time %v then %v after 100 ms of work", a.CPU, b.CPU)
	}
	pid, err := FindProcess(os.Args[0])
	if err != nil || pid != os.Getpid() {
		t.Fatalf("FindProcess(%s) = %d, %v; want %d", os.Args[0], pid, err, os.Getpid())
	}
	if _, err := FindProcess("/no/such/config.toml"); err == nil {
		t.Fatal("found a process for a config nobody runs")
	}
}

func TestSumMetric(t *testing.T) {
	page, err := os.ReadFile("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		want  float64
		found bool
	}{
		{"mixd_packets_received_total", 1500, true},
		{"mixd_packets_forwarded_total", 1234, true},
		{"mixd_packets", 0, false}, // a prefix of other families is not one
		{"mixd_none_total", 0, false},
	} {
		got, found, err := SumMetric(page, c.name)
		if err != nil || got != c.want || found != c.found {
			t.Errorf("%s: %v %v %v, want %v %v", c.name, got, found, err, c.want, c.found)
		}
	}
	for _, bad := range []string{"m{a=\"1\" 3\n", "m NaN\n", "m 1 2 3\n", "m x\n", "m{a=\"b\"}\n", "m 1e308\nm 1e308\n", strings.Repeat("m", maxMetricLine+1) + " 1\n"} {
		if _, _, err := SumMetric([]byte(bad), "m"); err == nil {
			t.Errorf("%.40q parsed", bad)
		}
	}
	if _, _, err := SumMetric(make([]byte, maxMetrics+1), "m"); err == nil {
		t.Error("a page over the limit parsed")
	}
}

func FuzzSumMetric(f *testing.F) {
	page, err := os.ReadFile("testdata/metrics.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(page, "mixd_packets_received_total")
	f.Add([]byte("m{a=\"}\"} 1\n"), "m")
	f.Fuzz(func(t *testing.T, page []byte, name string) {
		sum, found, err := SumMetric(page, name)
		if err == nil && (math.IsNaN(sum) || math.IsInf(sum, 0) || (!found && sum != 0)) {
			t.Fatalf("sum %v, found %v, no error", sum, found)
		}
	})
}
