// Package plot writes small SVG line charts (axes, ticks, labels, a legend, several series) for
// the privacy report (internal/privacy/sim). It is ours rather than a plotting module's because
// the charts are few and simple, and a chart's bytes depend only on its data, so that a golden
// file can pin them.
package plot

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"strconv"
)

// Series is one line of a chart.
type Series struct {
	Name string
	X, Y []float64
	// Labels, when set, has one text per point, written beside it.
	Labels []string
	// NoLine draws the points only.
	NoLine bool
}

// Chart is a line chart.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	// LogX puts the x axis on a logarithmic scale (all x must be positive).
	LogX bool
	// FitY spans the y axis over the data only; by default it starts at 0 (or below), so that
	// small differences do not look large.
	FitY bool
	// Width and Height in pixels; 0 means 640 by 400.
	Width, Height int
}

// Limits of a chart, so that a bad sweep cannot write a huge file.
const (
	MaxSeries = 16
	MaxPoints = 10000 // per series
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// Margins in pixels: left for the y ticks and label, bottom for the x ticks and label, right
// for the legend's room.
const (
	marginLeft   = 70
	marginRight  = 20
	marginTop    = 40
	marginBottom = 55
)

// SVG renders the chart.
func (c *Chart) SVG() ([]byte, error) {
	w, h := c.Width, c.Height
	if w == 0 {
		w = 640
	}
	if h == 0 {
		h = 400
	}
	if w < 200 || h < 150 || w > 4000 || h > 4000 {
		return nil, fmt.Errorf("plot: size %dx%d not within 200x150 to 4000x4000", w, h)
	}
	if len(c.Series) == 0 || len(c.Series) > MaxSeries {
		return nil, fmt.Errorf("plot: %d series, want 1 to %d", len(c.Series), MaxSeries)
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		if len(s.X) != len(s.Y) || len(s.X) == 0 || len(s.X) > MaxPoints {
			return nil, fmt.Errorf("plot: series %q has %d x and %d y, want as many, 1 to %d", s.Name, len(s.X), len(s.Y), MaxPoints)
		}
		if s.Labels != nil && len(s.Labels) != len(s.X) {
			return nil, fmt.Errorf("plot: series %q has %d labels for %d points", s.Name, len(s.Labels), len(s.X))
		}
		for i := range s.X {
			x, y := s.X[i], s.Y[i]
			if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
				return nil, fmt.Errorf("plot: series %q point %d is not finite", s.Name, i)
			}
			if c.LogX {
				if x <= 0 {
					return nil, fmt.Errorf("plot: series %q point %d: x %g on a log axis", s.Name, i, x)
				}
				x = math.Log10(x)
			}
			xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	var xt []float64
	if c.LogX {
		xmin, xmax = math.Floor(xmin), math.Ceil(xmax)
		if xmax == xmin {
			xmax++
		}
		for e := xmin; e <= xmax; e++ {
			xt = append(xt, e)
		}
	} else {
		xt, xmin, xmax = ticks(xmin, xmax)
	}
	if !c.FitY {
		ymin = math.Min(ymin, 0)
	}
	yt, ymin, ymax := ticks(ymin, ymax)

	pw, ph := float64(w-marginLeft-marginRight), float64(h-marginTop-marginBottom)
	px := func(x float64) float64 { return marginLeft + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return marginTop + ph - (y-ymin)/(ymax-ymin)*ph }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	text(&b, float64(w)/2, 22, "middle", "font-size=\"15\"", c.Title)
	// Grid and ticks.
	for _, t := range xt {
		x := px(t)
		fmt.Fprintf(&b, `<line x1="%s" y1="%d" x2="%s" y2="%s" stroke="#e0e0e0"/>`+"\n", f(x), marginTop, f(x), f(marginTop+ph))
		label := num(t)
		if c.LogX {
			label = num(math.Pow(10, t))
		}
		text(&b, x, marginTop+ph+16, "middle", "", label)
	}
	for _, t := range yt {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%s" y2="%s" stroke="#e0e0e0"/>`+"\n", marginLeft, f(y), f(marginLeft+pw), f(y))
		text(&b, marginLeft-6, y+4, "end", "", num(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%s" height="%s" fill="none" stroke="black"/>`+"\n", marginLeft, marginTop, f(pw), f(ph))
	text(&b, marginLeft+pw/2, float64(h)-12, "middle", "", c.XLabel)
	fmt.Fprintf(&b, `<text x="16" y="%s" text-anchor="middle" transform="rotate(-90 16 %s)">%s</text>`+"\n", f(marginTop+ph/2), f(marginTop+ph/2), esc(c.YLabel))
	// The legend is as wide as its longest name, at about 7 pixels a character.
	longest := 0
	for _, s := range c.Series {
		longest = max(longest, len([]rune(s.Name)))
	}
	legend := float64(40 + 7*longest)
	// Series.
	for i, s := range c.Series {
		col := palette[i%len(palette)]
		var pts bytes.Buffer
		for j := range s.X {
			x := s.X[j]
			if c.LogX {
				x = math.Log10(x)
			}
			if j > 0 {
				pts.WriteByte(' ')
			}
			fmt.Fprintf(&pts, "%s,%s", f(px(x)), f(py(s.Y[j])))
		}
		if !s.NoLine && len(s.X) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", pts.String(), col)
		}
		for j := range s.X {
			x := s.X[j]
			if c.LogX {
				x = math.Log10(x)
			}
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", f(px(x)), f(py(s.Y[j])), col)
			if s.Labels != nil && s.Labels[j] != "" {
				text(&b, px(x)+5, py(s.Y[j])-5, "start", `font-size="10"`, s.Labels[j])
			}
		}
		// Legend, bottom right inside the plot: entropy curves start high above the y axis's 0.
		ly := marginTop + ph - 10 - float64(16*(len(c.Series)-1-i))
		lx := marginLeft + pw - legend
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"/>`+"\n", f(lx), f(ly-4), f(lx+20), f(ly-4), col)
		text(&b, lx+26, ly, "start", "", s.Name)
	}
	b.WriteString("</svg>\n")
	return b.Bytes(), nil
}

// WriteFile renders the chart into path.
func (c *Chart) WriteFile(path string) error {
	svg, err := c.SVG()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, svg, 0o644); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// ticks returns round tick values (1, 2 or 5 times a power of ten apart, five to ten of them)
// covering [lo, hi], and the axis range they span.
func ticks(lo, hi float64) ([]float64, float64, float64) {
	if hi == lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 6
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := p
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	start, end := math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	var ts []float64
	for i := 0; ; i++ {
		t := start + float64(i)*step
		if t > end+step/2 {
			break
		}
		// Round away the float residue (0.30000000000000004) so labels and bytes are stable.
		ts = append(ts, math.Round(t/step)*step)
	}
	return ts, start, end
}

// f formats a coordinate with one decimal.
func f(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// num formats a tick value without trailing zeros.
func num(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func text(b *bytes.Buffer, x, y float64, anchor, attrs, s string) {
	if attrs != "" {
		attrs = " " + attrs
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="%s"%s>%s</text>`+"\n", f(x), f(y), anchor, attrs, esc(s))
}

func esc(s string) string {
	var b bytes.Buffer
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return "" // EscapeText fails only when its writer does; a bytes.Buffer does not
	}
	return b.String()
}
