package plot

import (
	"bytes"
	"encoding/xml"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, c *Chart) {
	t.Helper()
	got, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	// Whatever the bytes, they must be well-formed XML.
	d := xml.NewDecoder(bytes.NewReader(got))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed: %v", err)
			}
			break
		}
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file (go test -run %s -update rewrites it after a wanted change)\ngot:\n%s", name, t.Name(), got)
	}
}

func TestLineChart(t *testing.T) {
	golden(t, "lines.svg", &Chart{
		Title: "Sender entropy & mean delay", XLabel: "mean delay (ms)", YLabel: "entropy (bits)",
		Series: []Series{
			{Name: "50 users", X: []float64{50, 100, 200, 500}, Y: []float64{4.1, 4.9, 5.4, 5.6}},
			{Name: "<500 users>", X: []float64{50, 100, 200, 500}, Y: []float64{7.2, 8.1, 8.6, 8.9}},
		},
	})
}

func TestLogPoints(t *testing.T) {
	golden(t, "points.svg", &Chart{
		Title: "Trade-off", XLabel: "users", YLabel: "bits", LogX: true, FitY: true, Width: 500, Height: 300,
		Series: []Series{{Name: "runs", X: []float64{50, 500, 10000}, Y: []float64{5.5, 8.8, 13.1}, Labels: []string{"3 pkt/s", "", "3 pkt/s"}, NoLine: true}},
	})
}

func TestTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{0, 5.6, "0 1 2 3 4 5 6"},
		{0, 0.3, "0 0.05 0.1 0.15 0.2 0.25 0.3"},
		{50, 1000, "0 200 400 600 800 1000"},
		{2, 2, "2 2.2 2.4 2.6 2.8 3"},
	} {
		ts, _, _ := ticks(c.lo, c.hi)
		var s []string
		for _, v := range ts {
			s = append(s, num(v))
		}
		if got := strings.Join(s, " "); got != c.want {
			t.Errorf("ticks(%g, %g) = %s, want %s", c.lo, c.hi, got, c.want)
		}
	}
}

func TestBadCharts(t *testing.T) {
	one := []Series{{Name: "a", X: []float64{1}, Y: []float64{1}}}
	many := make([]Series, MaxSeries+1)
	for i := range many {
		many[i] = one[0]
	}
	for _, c := range []struct {
		name  string
		chart Chart
	}{
		{"no series", Chart{}},
		{"too many series", Chart{Series: many}},
		{"lengths", Chart{Series: []Series{{X: []float64{1, 2}, Y: []float64{1}}}}},
		{"too many points", Chart{Series: []Series{{X: make([]float64, MaxPoints+1), Y: make([]float64, MaxPoints+1)}}}},
		{"labels", Chart{Series: []Series{{X: []float64{1}, Y: []float64{1}, Labels: []string{"a", "b"}}}}},
		{"NaN", Chart{Series: []Series{{X: []float64{1}, Y: []float64{math.NaN()}}}}},
		{"log of 0", Chart{LogX: true, Series: []Series{{X: []float64{0}, Y: []float64{1}}}}},
		{"size", Chart{Width: 100000, Series: one}},
	} {
		if _, err := c.chart.SVG(); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
