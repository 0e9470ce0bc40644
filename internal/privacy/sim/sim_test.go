package sim

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/entropy"
)

// z is the two-sided bound, in standard deviations, of the statistical checks: a normal variate
// exceeds 5.5 in absolute value with probability 3.8e-8, so a test making five such checks fails
// by chance with probability below 2e-7 (below 1e-6). The seeds are fixed, so a run is
// deterministic anyway: a failure means the code changed, not bad luck.
const z = 5.5

func run(t *testing.T, p Params, seed uint64) Result {
	t.Helper()
	r, err := Run(p, seed)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The counted events of the measured window are counts of the configured rates (binomial
// shares of fixed slots for the clients, Poisson for mixes and messages; the Poisson bound
// is the wider).
func TestRates(t *testing.T) {
	p := DefaultParams()
	p.MixesPerLayer = 2
	r := run(t, p, 1)
	window := (p.Duration - p.Warmup).Seconds()
	users := float64(p.Users)
	for _, c := range []struct {
		name string
		got  int
		rate float64 // expected count per second over the whole network
	}{
		{"lambda_P slots", r.Counts.Slots, p.LambdaP * users},
		{"lambda_L loops", r.Counts.Loops, p.LambdaL * users},
		{"lambda_D drops", r.Counts.Drops, p.LambdaD * users},
		{"lambda_M mix loops", r.Counts.MixLoops, p.LambdaM * float64(3*p.MixesPerLayer)},
		{"real messages", r.Counts.Arrivals, p.RealRate * users},
	} {
		mean := c.rate * window
		if dev := (float64(c.got) - mean) / math.Sqrt(mean); math.Abs(dev) > z {
			t.Errorf("%s: %d in %.0f s, expected %.0f (%.1f standard deviations off)", c.name, c.got, window, mean, dev)
		}
	}
	// Bandwidth: what a client sends per second is lambda_P + lambda_L + lambda_D, in packets.
	want := p.LambdaP + p.LambdaL + p.LambdaD
	sd := math.Sqrt(want / (window * users))
	if math.Abs(r.PacketsPerUser-want) > z*sd {
		t.Errorf("packets per user per second %.4f, expected %.4f", r.PacketsPerUser, want)
	}
	// Every measured message was sent in a lambda_P slot and delivered.
	if r.Messages != r.Counts.Arrivals {
		t.Errorf("%d measured messages delivered of %d", r.Messages, r.Counts.Arrivals)
	}
}

// The mean latency is the analytic expectation: the wait for a lambda_P slot (ExpectedLatency)
// plus five hop delays.
func TestLatency(t *testing.T) {
	p := DefaultParams()
	p.RealRate = 0.2 // 6,000 messages in ten minutes
	r := run(t, p, 2)
	// The standard deviation of one latency: the sojourn is at most 1/(lambda_P - RealRate)
	// (exponential in the M/M/1 case, which waits longer than fixed slots), the five hops
	// independent, each of variance at most mean^2.
	soj := 1 / (p.LambdaP - p.RealRate)
	sd := math.Sqrt(soj*soj + 5*p.MeanDelay.Seconds()*p.MeanDelay.Seconds())
	// Successive sojourns in one queue are correlated; at load 0.1 the variance of their mean
	// grows by less than a fifth, which the factor 1.2 allows for.
	se := sd * math.Sqrt(1.2/float64(r.Messages))
	want := ExpectedLatency(p).Seconds()
	got := r.LatencyMean.Seconds()
	t.Logf("mean latency %.4f s over %d messages, expected %.4f s, standard error %.4f s", got, r.Messages, want, se)
	if math.Abs(got-want) > z*se {
		t.Fatalf("mean latency %.4f s over %d messages, expected %.4f s (standard error %.4f s)", got, r.Messages, want, se)
	}
	if r.LatencyP50 >= r.LatencyP99 || r.LatencyP99 > 20*time.Second {
		t.Fatalf("latency p50 %v, p99 %v", r.LatencyP50, r.LatencyP99)
	}
}

// apart fails unless b's mean entropy is above a's by more than z standard errors.
func apart(t *testing.T, what string, a, b Result) {
	t.Helper()
	se := math.Sqrt(a.Entropy.SD*a.Entropy.SD/float64(a.Messages) + b.Entropy.SD*b.Entropy.SD/float64(b.Messages))
	t.Logf("%s: mean entropy %.3f then %.3f bits, standard error of the difference %.4f", what, a.MeanEntropy, b.MeanEntropy, se)
	if b.MeanEntropy-a.MeanEntropy <= z*se {
		t.Errorf("%s: mean entropy %.3f then %.3f bits (standard error of the difference %.3f)", what, a.MeanEntropy, b.MeanEntropy, se)
	}
}

func TestEntropyGrows(t *testing.T) {
	p := DefaultParams()
	p.MixesPerLayer = 3
	p.Duration, p.Warmup = 4*time.Minute, 30*time.Second
	p.RealRate = 0.05
	short, long := p, p
	short.MeanDelay, long.MeanDelay = 20*time.Millisecond, 500*time.Millisecond
	apart(t, "mean delay 20 ms then 500 ms", run(t, short, 3), run(t, long, 3))

	few, many := p, p
	few.Users, many.Users = 10, 100
	apart(t, "10 users then 100", run(t, few, 4), run(t, many, 4))

	// And no message's entropy is above log2 of the number of users.
	r := run(t, p, 5)
	if r.Entropy.Max > math.Log2(float64(p.Users))+1e-9 || r.Entropy.Min <= 0 {
		t.Errorf("entropies in [%g, %g], want in (0, log2(%d)]", r.Entropy.Min, r.Entropy.Max, p.Users)
	}
}

func TestDeterministic(t *testing.T) {
	p := DefaultParams()
	p.Duration, p.Warmup = time.Minute, 10*time.Second
	a, b := run(t, p, 7), run(t, p, 7)
	a.Elapsed, b.Elapsed = 0, 0
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two runs with seed 7 differ:\n%+v\n%+v", a, b)
	}
	c := run(t, p, 8)
	c.Elapsed = 0
	if reflect.DeepEqual(a, c) {
		t.Fatal("seeds 7 and 8 gave the same run")
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Params)
		want string
	}{
		{"one user", func(p *Params) { p.Users = 1 }, "users"},
		{"too many users", func(p *Params) { p.Users = MaxUsers + 1 }, "users"},
		{"unknown method", func(p *Params) { p.Method = MethodBackward + 1 }, "method"},
		{"no provider", func(p *Params) { p.Providers = 0 }, "providers"},
		{"too many mixes", func(p *Params) { p.MixesPerLayer = MaxNodes + 1 }, "mixes"},
		{"delay above max", func(p *Params) { p.MeanDelay = 2 * p.MaxDelay }, "delay"},
		{"no window", func(p *Params) { p.Warmup = p.Duration }, "warmup"},
		{"too long", func(p *Params) { p.Duration = MaxDuration + time.Second }, "duration"},
		{"queue grows", func(p *Params) { p.RealRate = p.LambdaP }, "real rate"},
		{"negative rate", func(p *Params) { p.LambdaL = -1 }, "lambda_l"},
		{"NaN rate", func(p *Params) { p.LambdaM = math.NaN() }, "lambda_m"},
	} {
		p := DefaultParams()
		c.edit(&p)
		if _, err := Run(p, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", c.name, err, c.want)
		}
	}
}

func benchmark(b *testing.B, users int, duration, warmup time.Duration) {
	p := DefaultParams()
	p.Users, p.Duration, p.Warmup = users, duration, warmup
	var r Result
	for b.Loop() {
		var err error
		if r, err = Run(p, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.MeanEntropy, "bits")
	b.ReportMetric(float64(r.Messages), "messages")
}

// BenchmarkSim50Users: the defaults, 50 users, ten minutes measured after one of warm-up.
func BenchmarkSim50Users(b *testing.B) { benchmark(b, 50, 11*time.Minute, time.Minute) }

// BenchmarkSim500Users: one minute measured after 10 s.
func BenchmarkSim500Users(b *testing.B) { benchmark(b, 500, 70*time.Second, 10*time.Second) }

// BenchmarkSim10000Users: 5 s measured after 10 s of warm-up (backward, as MethodAuto runs it).
func BenchmarkSim10000Users(b *testing.B) { benchmark(b, 10000, 15*time.Second, 10*time.Second) }

// benchmarkUsers runs the report's "Users online" shape (3 mixes per layer, 10 s of warm-up)
// with users users measured over window, backward.
func benchmarkUsers(b *testing.B, users int, window time.Duration) {
	p := DefaultParams()
	p.Users, p.MixesPerLayer, p.Method = users, 3, MethodBackward
	p.Warmup = 10 * time.Second
	p.Duration = p.Warmup + window
	var r Result
	for b.Loop() {
		var err error
		if r, err = Run(p, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.MeanEntropy, "bits")
	b.ReportMetric(float64(r.Messages), "messages")
}

// BenchmarkSim10000UsersBackward: the report's 10,000-user point (5 s measured), measured
// backward: the same entropies as the forward tracker's.
func BenchmarkSim10000UsersBackward(b *testing.B) { benchmarkUsers(b, 10000, 5*time.Second) }

// BenchmarkSim100000Users: 100,000 users, 0.3 s measured (about 300 messages), backward.
func BenchmarkSim100000Users(b *testing.B) { benchmarkUsers(b, 100000, 300*time.Millisecond) }

// The backward measure (entropy.Backward) gives every measured message of a run the entropy the
// forward tracker gives it, to float32 rounding and pruning, with mix loops and several mixes
// per layer.
func TestBackwardMatchesForward(t *testing.T) {
	for _, c := range []struct {
		users, mixes int
		duration     time.Duration
	}{{50, 1, 3 * time.Minute}, {200, 3, 40 * time.Second}} {
		p := DefaultParams()
		p.Users, p.MixesPerLayer = c.users, c.mixes
		p.Warmup, p.Duration = 10*time.Second, c.duration
		var res [2][]entropy.Delivered
		for i, m := range []Method{MethodForward, MethodBackward} {
			p.Method = m
			s := newSim(p, 7)
			if err := s.run(); err != nil {
				t.Fatal(err)
			}
			if err := s.measure(); err != nil {
				t.Fatal(err)
			}
			res[i] = s.res
		}
		fw, bw := res[0], res[1]
		if len(fw) < 50 || len(bw) != len(fw) {
			t.Fatalf("%d users: %d messages backward, %d forward (want the same, at least 50)", c.users, len(bw), len(fw))
		}
		worst, mean := 0.0, 0.0
		for i := range fw {
			d := math.Abs(bw[i].Bits - fw[i].Bits)
			worst, mean = max(worst, d), mean+fw[i].Bits
			if d > 1e-4 || math.Abs(bw[i].SenderProb-fw[i].SenderProb) > 1e-5 || bw[i].Message != fw[i].Message {
				t.Fatalf("%d users, message %d: backward %+v, forward %+v", c.users, i, bw[i], fw[i])
			}
		}
		t.Logf("%d users, %d mixes/layer: %d messages, mean %.4f bits, largest difference %.2g bits", c.users, c.mixes, len(fw), mean/float64(len(fw)), worst)
	}
}
