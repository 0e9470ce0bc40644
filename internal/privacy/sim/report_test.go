package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A report on a tiny plan writes every chart it links, well-formed, and a table per sweep.
func TestReport(t *testing.T) {
	pl := plan(true)
	pl.base.Users, pl.base.Warmup, pl.base.Duration, pl.base.RealRate = 6, 5*time.Second, 30*time.Second, 0.1
	pl.big = pl.base
	pl.big.Users = 12
	pl.delays = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}
	pl.rates = map[Rate][]float64{LambdaP: {1, 2}, LambdaL: {0.5, 1}, LambdaD: {0.5, 1}, LambdaM: {0, 0.5}}
	pl.users = []int{4, 8, 16}
	pl.usersMessages, pl.usersWarmup = 20, 5*time.Second
	pl.huge, pl.hugeWindow = 24, 10*time.Second
	pl.mixes = []int{1, 2}
	pl.tradeDelays = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond}
	pl.covers = []float64{0, 1}
	dir := t.TempDir()
	md, err := writeReport(ReportOptions{Dir: dir, Links: "privacy/"}, pl)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"entropy-delay", "attack-delay", "entropy-rates", "attack-rates", "entropy-users", "attack-users", "entropy-mixes", "tradeoff"} {
		if !strings.Contains(md, "(privacy/"+name+".svg)") {
			t.Errorf("markdown does not link %s.svg", name)
		}
		b, err := os.ReadFile(filepath.Join(dir, name+".svg"))
		if err != nil || !strings.HasPrefix(string(b), "<svg ") || !strings.HasSuffix(string(b), "</svg>\n") {
			t.Errorf("%s.svg: %v", name, err)
		}
	}
	for _, want := range []string{"### At the defaults", "| 200 |", "| mixes per layer |", "- **lambda_P 2**", "- **mean delay 200ms**: against 100ms it buys", "Run time of this report", "24 users (on the charts above too)", "| 24 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}
