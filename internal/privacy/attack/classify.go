package attack

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/capture"
)

// UserLink is one user's link to its provider as captured, with the ground truth of when the
// user's client wrote a real packet on it (from the tracer), for labelling windows.
type UserLink struct {
	User   string
	Frames []capture.Frame // both directions, in time order
	Reals  []time.Time     // sorted
	// Start and End bound the windows cut from the link.
	Start, End time.Time
}

// Window is the features of one window of a client link, as the observer computes them from
// the capture alone, and its label from the ground truth.
type Window struct {
	User     string
	At       time.Time
	Features []float64
	Real     bool
}

// FeatureNames name Window.Features in order.
var FeatureNames = []string{"frames up", "frames down", "mean gap up (s)", "sd gap up (s)", "min gap up (s)", "max gap up (s)", "mean bytes up", "distinct sizes up"}

// Windows cuts each link into consecutive windows of length w and computes their features.
func Windows(links []UserLink, w time.Duration) []Window {
	var out []Window
	for _, l := range links {
		fi, ri := 0, 0
		for at := l.Start; !at.Add(w).After(l.End); at = at.Add(w) {
			end := at.Add(w)
			for fi < len(l.Frames) && l.Frames[fi].At.Before(at) {
				fi++
			}
			j := fi
			var up []capture.Frame
			down := 0
			for ; j < len(l.Frames) && l.Frames[j].At.Before(end); j++ {
				if l.Frames[j].FromClient {
					up = append(up, l.Frames[j])
				} else {
					down++
				}
			}
			for ri < len(l.Reals) && l.Reals[ri].Before(at) {
				ri++
			}
			real := ri < len(l.Reals) && l.Reals[ri].Before(end)
			out = append(out, Window{User: l.User, At: at, Real: real, Features: features(up, down, w)})
		}
	}
	return out
}

func features(up []capture.Frame, down int, w time.Duration) []float64 {
	var gaps []float64
	sizes := map[int]bool{}
	bytes := 0.0
	for i, f := range up {
		if i > 0 {
			gaps = append(gaps, f.At.Sub(up[i-1].At).Seconds())
		}
		sizes[f.Wire] = true
		bytes += float64(f.Wire)
	}
	mean, sd, lo, hi := w.Seconds(), 0.0, w.Seconds(), w.Seconds()
	if len(gaps) > 0 {
		mean, lo, hi = 0, math.Inf(1), 0
		for _, g := range gaps {
			mean += g
			lo, hi = math.Min(lo, g), math.Max(hi, g)
		}
		mean /= float64(len(gaps))
		for _, g := range gaps {
			sd += (g - mean) * (g - mean)
		}
		sd = math.Sqrt(sd / float64(len(gaps)))
	}
	if len(up) > 0 {
		bytes /= float64(len(up))
	}
	return []float64{float64(len(up)), float64(down), mean, sd, lo, hi, bytes, float64(len(sizes))}
}

// Balance returns all windows with a real send and as many without, drawn at random.
func Balance(ws []Window, rng *rand.Rand) []Window {
	var pos, neg []Window
	for _, w := range ws {
		if w.Real {
			pos = append(pos, w)
		} else {
			neg = append(neg, w)
		}
	}
	n := min(len(pos), len(neg))
	rng.Shuffle(len(pos), func(i, j int) { pos[i], pos[j] = pos[j], pos[i] })
	rng.Shuffle(len(neg), func(i, j int) { neg[i], neg[j] = neg[j], neg[i] })
	out := append(append([]Window{}, pos[:n]...), neg[:n]...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// ClassifyResult is the cover classifier's outcome on balanced windows.
type ClassifyResult struct {
	Windows int
	// Accuracy of the cross-validated logistic regression (chance 0.5).
	Accuracy Rate
	// Placebo is the accuracy of the same procedure on shuffled labels, over PlaceboRuns:
	// mean, and the 2.5% and 97.5% quantiles (the chance band).
	PlaceboMean, PlaceboLo, PlaceboHi float64
	PlaceboRuns                       int
}

// Folds is the number of cross-validation folds.
const Folds = 10

// Classify runs a logistic regression with Folds-fold cross-validation on balanced windows and
// the same on placebo (shuffled) labels placebo times.
func Classify(ws []Window, placebo int, rng *rand.Rand) ClassifyResult {
	res := ClassifyResult{Windows: len(ws), PlaceboRuns: placebo}
	if len(ws) < 2*Folds {
		return res
	}
	labels := make([]bool, len(ws))
	for i, w := range ws {
		labels[i] = w.Real
	}
	res.Accuracy = wilson(float64(crossValidate(ws, labels)), len(ws))
	var accs []float64
	for r := 0; r < placebo; r++ {
		l := append([]bool{}, labels...)
		rng.Shuffle(len(l), func(i, j int) { l[i], l[j] = l[j], l[i] })
		accs = append(accs, float64(crossValidate(ws, l))/float64(len(ws)))
	}
	if len(accs) > 0 {
		sort.Float64s(accs)
		for _, a := range accs {
			res.PlaceboMean += a
		}
		res.PlaceboMean /= float64(len(accs))
		res.PlaceboLo = accs[int(0.025*float64(len(accs)-1)+0.5)]
		res.PlaceboHi = accs[int(0.975*float64(len(accs)-1)+0.5)]
	}
	return res
}

// crossValidate returns the number of windows classified right when each fold is predicted by
// a model trained on the others.
func crossValidate(ws []Window, labels []bool) int {
	right := 0
	for f := 0; f < Folds; f++ {
		var train []int
		for i := range ws {
			if i%Folds != f {
				train = append(train, i)
			}
		}
		m := fitLogistic(ws, labels, train)
		for i := f; i < len(ws); i += Folds {
			if m.predict(ws[i].Features) == labels[i] {
				right++
			}
		}
	}
	return right
}

type logistic struct {
	mean, scale, w []float64
	b              float64
}

// fitLogistic fits an L2-regularized logistic regression on standardized features by gradient
// descent (a few features, a few thousand windows: plenty fast).
func fitLogistic(ws []Window, labels []bool, idx []int) logistic {
	d := len(ws[0].Features)
	m := logistic{mean: make([]float64, d), scale: make([]float64, d), w: make([]float64, d)}
	for _, i := range idx {
		for j, x := range ws[i].Features {
			m.mean[j] += x
		}
	}
	for j := range m.mean {
		m.mean[j] /= float64(len(idx))
	}
	for _, i := range idx {
		for j, x := range ws[i].Features {
			m.scale[j] += (x - m.mean[j]) * (x - m.mean[j])
		}
	}
	for j := range m.scale {
		m.scale[j] = math.Sqrt(m.scale[j] / float64(len(idx)))
		if m.scale[j] == 0 {
			m.scale[j] = 1
		}
	}
	const (
		steps  = 300
		lr     = 0.5
		lambda = 0.01
	)
	x := make([]float64, d)
	grad := make([]float64, d)
	for s := 0; s < steps; s++ {
		for j := range grad {
			grad[j] = lambda * m.w[j]
		}
		gb := 0.0
		for _, i := range idx {
			m.standardize(ws[i].Features, x)
			p := m.prob(x)
			y := 0.0
			if labels[i] {
				y = 1
			}
			for j := range x {
				grad[j] += (p - y) * x[j] / float64(len(idx))
			}
			gb += (p - y) / float64(len(idx))
		}
		for j := range m.w {
			m.w[j] -= lr * grad[j]
		}
		m.b -= lr * gb
	}
	return m
}

func (m *logistic) standardize(f, x []float64) {
	for j, v := range f {
		x[j] = (v - m.mean[j]) / m.scale[j]
	}
}

func (m *logistic) prob(x []float64) float64 {
	z := m.b
	for j, v := range x {
		z += m.w[j] * v
	}
	return 1 / (1 + math.Exp(-z))
}

func (m *logistic) predict(f []float64) bool {
	x := make([]float64, len(f))
	m.standardize(f, x)
	return m.prob(x) > 0.5
}
