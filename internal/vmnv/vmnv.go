// Package vmnv runs Verificatum's stand-alone verifier (vmnv, VMN 3.1.0) on a proof directory
// for the tests that check our records against it (docs/spec/vote.md §6.2, §12.5). Verificatum
// is AGPL and stays a separate program: it is built from ../shared/tools/verificatum (the
// project's tool kit, beside the repository) by `build.sh` and run through its `vmnv-check`
// wrapper, whose verdict is strict (vmnv itself exits 0 even when it rejects a proof).
package vmnv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// DestEnv names the directory Verificatum was built into; the default is build.sh's own.
const DestEnv = "PANORAMIX_VERIFICATUM"

// Tool holds the paths of the built verifier and of the strict wrapper.
type Tool struct {
	Dest  string // build.sh's DESTDIR: bin/vmnv and env.sh
	Check string // the vmnv-check script
}

// toolsDir finds ../shared/tools/verificatum next to the repository root (the directory with
// go.mod), walking up from the test's working directory.
func toolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "tools", "verificatum"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("vmnv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Find returns the built tool or skips the test with the command that builds it (.ci/run
// builds it, so CI never skips).
func Find(t testing.TB) *Tool {
	t.Helper()
	tools, err := toolsDir()
	if err != nil {
		t.Fatal(err)
	}
	dest := os.Getenv(DestEnv)
	if dest == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dest = filepath.Join(home, ".cache", "panoramix-tools", "verificatum")
	}
	check := filepath.Join(tools, "vmnv-check")
	if _, err := os.Stat(check); err != nil {
		t.Skipf("Verificatum's vmnv-check missing (%v): the tool kit ../shared/tools/verificatum is not beside the repository", err)
	}
	if _, err := os.Stat(filepath.Join(dest, "bin", "vmnv")); err != nil {
		t.Skipf("Verificatum's vmnv is not built in %s: run %s %s (about a minute; or set %s to another build)", dest, filepath.Join(tools, "build.sh"), dest, DestEnv)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("java missing: apt-get install -y --no-install-recommends openjdk-17-jdk-headless")
	}
	return &Tool{Dest: dest, Check: check}
}

// Verdict runs vmnv-check in mode "shuffle" or "mix" on dir with protInfo (a file path). It
// returns true when vmnv accepted, and the wrapper's output either way.
func (tl *Tool) Verdict(t testing.TB, mode, protInfo, dir string) (bool, string) {
	t.Helper()
	out, err := exec.Command("bash", tl.Check, tl.Dest, mode, protInfo, dir).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, string(out)
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false, string(out)
	default:
		t.Fatalf("vmnv-check %s %s: %v\n%s", mode, dir, err, out)
		return false, ""
	}
}

// Accept fails the test unless vmnv accepts dir.
func (tl *Tool) Accept(t testing.TB, mode, protInfo, dir string) {
	t.Helper()
	if ok, out := tl.Verdict(t, mode, protInfo, dir); !ok {
		t.Fatalf("vmnv refused %s:\n%s", dir, out)
	}
}

// Refuse fails the test unless vmnv refuses dir.
func (tl *Tool) Refuse(t testing.TB, mode, protInfo, dir string) {
	t.Helper()
	if ok, out := tl.Verdict(t, mode, protInfo, dir); ok {
		t.Fatalf("vmnv accepted %s, which must be refused:\n%s", dir, out)
	}
}

// String is for messages.
func (tl *Tool) String() string { return fmt.Sprintf("vmnv in %s", tl.Dest) }
