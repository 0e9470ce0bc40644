package imapd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// imaptestDir is where imaptest is built: $PANORAMIX_IMAPTEST, else build.sh's default.
func imaptestDir() string {
	if d := os.Getenv("PANORAMIX_IMAPTEST"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "panoramix-tools", "imaptest")
}

// toolKit is the imaptest tool kit beside the repository (../shared/tools/imaptest).
func toolKit(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "..", "shared", "tools", "imaptest"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestImaptestCompliance runs Dovecot's imaptest compliance suite (compliance.sh: each test file
// alone) against this server over implicit TLS, and fails on any test that Dovecot 2.3.19
// passes and this server fails or errors on (issue 16). A test skipped because it needs an
// extension we do not offer is not a failure; the skipped ones are listed in doc.go.
func TestImaptestCompliance(t *testing.T) {
	if testing.Short() {
		t.Skip("imaptest compliance suite takes about a minute")
	}
	kit := toolKit(t)
	script := filepath.Join(kit, "compliance.sh")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("imaptest tool kit not found (%v): it is expected beside the repository in ../shared/tools/imaptest", err)
	}
	dest := imaptestDir()
	if _, err := os.Stat(filepath.Join(dest, "bin", "imaptest")); err != nil {
		t.Skipf("imaptest is not built; build it with: bash %s %s", filepath.Join(kit, "build.sh"), dest)
	}
	env := newEnv(t, func(c *Config) {
		// imaptest opens several connections at once per test and logs in as one user each time.
		c.LoginFailures = 1000
		c.LoginFailuresPerIP = 1000
	})
	env.addUser(t, "imaptest", "imaptest-password", 0)
	host, port, ok := strings.Cut(env.tls, ":")
	if !ok {
		t.Fatalf("bad listener address %q", env.tls)
	}
	logs := os.Getenv("IMAPTEST_LOGS") // set to keep the logs
	if logs == "" {
		logs = t.TempDir()
	}
	cmd := exec.Command("bash", script, dest, host, port, "imaptest", "imaptest-password", "ssl=any-cert")
	cmd.Env = append(os.Environ(), "IMAPTEST_LOGS="+logs)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("compliance.sh in %v:\n%s", time.Since(start).Round(time.Second), out.String())
	if err != nil {
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, "<- Dovecot passes") && !strings.Contains(line, " SKIP ") {
				name := strings.Fields(line)[0]
				if log, rerr := os.ReadFile(filepath.Join(logs, name+".log")); rerr == nil {
					t.Logf("%s log:\n%s", name, log)
				}
			}
		}
		t.Fatalf("imaptest: a test that Dovecot passes fails here: %v", err)
	}
}

// TestImaptestStress runs imaptest's stress mode (10 clients of one user for 60 s, with a
// checkpoint every 10 s that compares what the clients saw) against this server when
// PANORAMIX_IMAPTEST_STRESS is set, and fails on any error or checkpoint mismatch imaptest
// reports. It logs imaptest's counters and the server's heap before and after, for
// docs/BENCHMARKS.md.
func TestImaptestStress(t *testing.T) {
	if os.Getenv("PANORAMIX_IMAPTEST_STRESS") == "" {
		t.Skip("set PANORAMIX_IMAPTEST_STRESS=1 to run imaptest's 60 s stress mode")
	}
	dest := imaptestDir()
	if _, err := os.Stat(filepath.Join(dest, "bin", "imaptest")); err != nil {
		t.Skipf("imaptest is not built; build it with: bash %s %s", filepath.Join(toolKit(t), "build.sh"), dest)
	}
	env := newEnv(t, func(c *Config) {
		c.LoginFailures = 1000
		c.LoginFailuresPerIP = 1000
	})
	env.addUser(t, "stress", "stress-password", 0)
	// imaptest appends messages from an mbox and needs unique Message-IDs to tell them apart.
	var mbox bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&mbox, "From sender@example.org Sat Dec  5 12:00:00 2026\nMessage-ID: <stress-%d@example.org>\nFrom: Sender %d <sender%d@example.org>\nTo: stress@example.org\nSubject: stress message %d\nDate: Sat, 5 Dec 2026 12:00:00 +0000\n\n%s\n\n",
			i, i, i%7, i, strings.Repeat(fmt.Sprintf("line %d of message %d\n", i%13, i), 1+i%40))
	}
	mboxFile := filepath.Join(t.TempDir(), "stress.mbox")
	if err := os.WriteFile(mboxFile, mbox.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	host, port, _ := strings.Cut(env.tls, ":")
	cmd := exec.Command(filepath.Join(dest, "bin", "imaptest"), "host="+host, "port="+port, "user=stress",
		"pass=stress-password", "mbox="+mboxFile, "clients=10", "secs=60", "checkpoint=10", "ssl=any-cert")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH=/usr/lib/dovecot")
	out, err := cmd.CombinedOutput()
	peak := heap()
	time.Sleep(2 * time.Second) // the sessions' goroutines end after imaptest has gone
	after := heap()
	t.Logf("imaptest stress:\n%s", out)
	t.Logf("server heap in use: %d KiB before, %d KiB after the run, %d KiB two seconds later", before>>10, peak>>10, after>>10)
	if err != nil {
		t.Errorf("imaptest: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Error:") || strings.Contains(line, "checkpoint") && strings.Contains(line, "mismatch") {
			t.Errorf("imaptest reported: %s", line)
		}
	}
}
