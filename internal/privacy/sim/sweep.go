package sim

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Point is one run of a sweep: the swept value X and what the run measured.
type Point struct {
	X      float64
	Result Result
}

// Sweep runs base with set(&p, x) for each x, on workers goroutines (0: GOMAXPROCS), every run
// with the same seed (common random numbers: the curves' differences are less noisy than
// independent runs would make them). The points come back in the order of xs.
func Sweep(base Params, xs []float64, set func(*Params, float64), seed uint64, workers int) ([]Point, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	pts := make([]Point, len(xs))
	errs := make([]error, len(xs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(xs)) {
		wg.Go(func() {
			for i := range next {
				p := base
				set(&p, xs[i])
				r, err := Run(p, seed)
				pts[i], errs[i] = Point{X: xs[i], Result: r}, err
			}
		})
	}
	for i := range xs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("sim: sweep point %g: %w", xs[i], err)
		}
	}
	return pts, nil
}

// SweepMeanDelay sweeps the mean per-hop delay (the maximum stays that of base, or is raised
// to the mean when below it).
func SweepMeanDelay(base Params, delays []time.Duration, seed uint64, workers int) ([]Point, error) {
	xs := make([]float64, len(delays))
	for i, d := range delays {
		xs[i] = float64(d) / float64(time.Millisecond)
	}
	return Sweep(base, xs, func(p *Params, ms float64) {
		p.MeanDelay = time.Duration(ms * float64(time.Millisecond))
		p.MaxDelay = max(p.MaxDelay, p.MeanDelay)
	}, seed, workers)
}

// Rate names a lambda of Params.
type Rate string

// The four rates.
const (
	LambdaP Rate = "lambda_P"
	LambdaL Rate = "lambda_L"
	LambdaD Rate = "lambda_D"
	LambdaM Rate = "lambda_M"
)

// SweepRate sweeps one of the lambdas, the others as in base.
func SweepRate(base Params, r Rate, values []float64, seed uint64, workers int) ([]Point, error) {
	var set func(*Params, float64)
	switch r {
	case LambdaP:
		set = func(p *Params, v float64) { p.LambdaP = v }
	case LambdaL:
		set = func(p *Params, v float64) { p.LambdaL = v }
	case LambdaD:
		set = func(p *Params, v float64) { p.LambdaD = v }
	case LambdaM:
		set = func(p *Params, v float64) { p.LambdaM = v }
	default:
		return nil, fmt.Errorf("sim: unknown rate %q", r)
	}
	return Sweep(base, values, set, seed, workers)
}

// SweepUsers sweeps the number of users online. Each run measures a window long enough for
// about messages real messages (messages / (RealRate * users) seconds, at least 5 s and at most
// base's window) after warmup: the cost of a simulated second grows with the users (with their
// square when measured forward), so large networks get short windows.
func SweepUsers(base Params, users []int, messages int, warmup time.Duration, seed uint64, workers int) ([]Point, error) {
	xs := make([]float64, len(users))
	for i, u := range users {
		xs[i] = float64(u)
	}
	return Sweep(base, xs, func(p *Params, u float64) {
		p.Users = int(u)
		p.Warmup, p.Duration = warmup, warmup+UsersWindow(base, p.Users, messages)
	}, seed, workers)
}

// UsersWindow is the measured window SweepUsers gives users.
func UsersWindow(base Params, users, messages int) time.Duration {
	w := base.Duration - base.Warmup
	if base.RealRate > 0 {
		w = min(w, time.Duration(float64(messages)/(base.RealRate*float64(users))*float64(time.Second)))
	}
	return max(w, 5*time.Second).Round(time.Second)
}

// SweepMixes sweeps the number of mixes per layer.
func SweepMixes(base Params, mixes []int, seed uint64, workers int) ([]Point, error) {
	xs := make([]float64, len(mixes))
	for i, m := range mixes {
		xs[i] = float64(m)
	}
	return Sweep(base, xs, func(p *Params, m float64) { p.MixesPerLayer = int(m) }, seed, workers)
}

// TradeOff sweeps the mean delay for each cover level: the cover rates lambda_L and lambda_D of
// base scaled by cover (lambda_P stays: it carries the real messages). Each curve is entropy
// against latency, each point's bandwidth its packets per user per second.
func TradeOff(base Params, delays []time.Duration, covers []float64, seed uint64, workers int) ([][]Point, error) {
	out := make([][]Point, len(covers))
	for i, c := range covers {
		p := base
		p.LambdaL, p.LambdaD = base.LambdaL*c, base.LambdaD*c
		pts, err := SweepMeanDelay(p, delays, seed, workers)
		if err != nil {
			return nil, err
		}
		out[i] = pts
	}
	return out, nil
}
