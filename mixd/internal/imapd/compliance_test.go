package imapd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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
