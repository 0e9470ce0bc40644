package trace

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const self = "github.com/panoramix-mixnet/panoramix/internal/privacy/trace"

func deps(t *testing.T, tags string) []string {
	t.Helper()
	args := []string{"list", "-deps"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "github.com/panoramix-mixnet/panoramix/mixd", "github.com/panoramix-mixnet/panoramix/mailproxy")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.Fields(string(out))
}

// TestNotInReleaseBuilds: mixd and mailproxy built without the tag privacytrace do not link the
// tracer, and with the tag they do (so that this test can fail).
func TestNotInReleaseBuilds(t *testing.T) {
	if slices.Contains(deps(t, ""), self) {
		t.Fatalf("a default build of mixd or mailproxy links %s", self)
	}
	if !slices.Contains(deps(t, "privacytrace"), self) {
		t.Fatalf("a privacytrace build does not link %s: the hooks are not wired", self)
	}
}
