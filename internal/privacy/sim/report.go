package sim

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/entropy"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/plot"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// ReportOptions configure WriteReport.
type ReportOptions struct {
	// Dir receives the SVG files.
	Dir string
	// Links is prepended to the SVG file names in the markdown's image links ("" when the
	// markdown sits in Dir, "privacy/" when it sits in Dir's parent docs/).
	Links string
	// Quick runs short simulations (about a minute in all) with fewer points.
	Quick bool
	// Seed of every run (0: 1).
	Seed uint64
	// Workers run the points of a sweep in parallel (0: GOMAXPROCS).
	Workers int
	// Log, when not nil, gets a line per finished sweep.
	Log io.Writer
}

// Report runs the sweeps, writes their SVG charts into dir and returns the markdown section
// that shows them, with image links relative to dir's parent (docs/PRIVACY.md for dir
// docs/privacy).
func Report(dir string, quick bool) (string, error) {
	return WriteReport(ReportOptions{Dir: dir, Links: filepath.Base(dir) + "/", Quick: quick})
}

// reportPlan is the sweeps' shape: the full one, or the quick one.
type reportPlan struct {
	base, big     Params // 50 users on the testnet's shape; 500 users
	delays        []time.Duration
	rates         map[Rate][]float64
	users         []int
	usersMessages int
	usersWarmup   time.Duration
	// huge is a run past the forward tracker's reach, measured backward (entropy.Backward),
	// over hugeWindow after usersWarmup; 0: none.
	huge        int
	hugeWindow  time.Duration
	mixes       []int
	tradeDelays []time.Duration
	covers      []float64
	bigMixes    int
}

func plan(quick bool) reportPlan {
	base := DefaultParams()
	big := base
	big.Users, big.MixesPerLayer = 500, 3
	big.Warmup, big.Duration = 10*time.Second, 70*time.Second
	p := reportPlan{
		base:          base,
		big:           big,
		delays:        []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second},
		rates:         map[Rate][]float64{LambdaP: {0.5, 1, 2, 4, 8}, LambdaL: {0, 0.25, 0.5, 1, 2}, LambdaD: {0, 0.25, 0.5, 1, 2}, LambdaM: {0, 0.5, 2, 8}},
		users:         []int{10, 50, 200, 500, 2000, 5000, 10000},
		usersMessages: 300, usersWarmup: 10 * time.Second,
		huge: 100_000, hugeWindow: 300 * time.Millisecond, // about 300 messages
		mixes:       []int{1, 2, 3, 5, 10},
		tradeDelays: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second},
		covers:      []float64{0, 0.5, 1, 2},
		bigMixes:    3,
	}
	if quick {
		p.base.Warmup, p.base.Duration = 20*time.Second, 2*time.Minute
		p.big.Users, p.big.Duration = 200, 40*time.Second
		p.delays = []time.Duration{20 * time.Millisecond, 200 * time.Millisecond, time.Second}
		p.rates = map[Rate][]float64{LambdaP: {1, 2, 4}, LambdaL: {0, 0.5, 2}, LambdaD: {0, 0.5, 2}, LambdaM: {0, 0.5, 2}}
		p.users = []int{10, 50, 200}
		p.huge = 0
		p.mixes = []int{1, 3}
		p.tradeDelays = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, time.Second}
		p.covers = []float64{0, 1}
	}
	return p
}

// WriteReport runs the sweeps of the report and writes its charts.
func WriteReport(o ReportOptions) (string, error) { return writeReport(o, plan(o.Quick)) }

func writeReport(o ReportOptions, pl reportPlan) (string, error) {
	start := time.Now()
	if o.Seed == 0 {
		o.Seed = 1
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return "", fmt.Errorf("sim: report: %w", err)
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	base3 := pl.base
	base3.MixesPerLayer = pl.bigMixes
	w := o.Workers
	var md strings.Builder
	var err, chartErr error
	chart := func(name string, c *plot.Chart) {
		if chartErr != nil {
			return
		}
		if chartErr = c.WriteFile(filepath.Join(o.Dir, name)); chartErr == nil {
			fmt.Fprintf(&md, "\n![%s](%s%s)\n", c.Title, o.Links, name)
		}
	}

	def := pki.DefaultParameters()
	fmt.Fprintf(&md, "## Simulation\n\n")
	fmt.Fprintf(&md, "Made by `sim.Report` (internal/privacy/sim, model in its package doc; entropy model in internal/privacy/entropy). ")
	fmt.Fprintf(&md, "Base: the defaults of `pki.DefaultParameters` (lambda_P %g, lambda_L %g, lambda_D %g, lambda_M %g per second, mean delay %v, max delay %v), ",
		def.LambdaP, def.LambdaL, def.LambdaD, def.LambdaM, def.MeanDelay, def.MaxDelay)
	fmt.Fprintf(&md, "%d users on %d providers and %d mix per layer (pkg/testnet's shape), one real mail per %g s per user, %v measured after %v of warm-up, seed %d. ",
		pl.base.Users, pl.base.Providers, pl.base.MixesPerLayer, 1/pl.base.RealRate, pl.base.Duration-pl.base.Warmup, pl.base.Warmup, o.Seed)
	fmt.Fprintf(&md, "Entropy is the adversary's uncertainty about a delivered real message's sender in bits (at most log2(users): %.2f bits for 50 users); ", math.Log2(50))
	fmt.Fprintf(&md, "attack success is how often the adversary's most likely sender is the true one (1/users by chance); latency runs from the message's enqueueing at the client to its delivery at the recipient's provider; bandwidth is the packets a client sends per second.\n")

	// At the defaults.
	at, e1 := Run(pl.base, o.Seed)
	at3, e2 := Run(base3, o.Seed)
	atBig, e3 := Run(pl.big, o.Seed)
	for _, e := range []error{e1, e2, e3} {
		if e != nil {
			return "", e
		}
	}
	fmt.Fprintf(&md, "\n### At the defaults\n\n")
	table(&md, "network", []string{
		fmt.Sprintf("%d users, %d mix/layer", pl.base.Users, pl.base.MixesPerLayer),
		fmt.Sprintf("%d users, %d mixes/layer", base3.Users, base3.MixesPerLayer),
		fmt.Sprintf("%d users, %d mixes/layer", pl.big.Users, pl.big.MixesPerLayer),
	}, []Result{at, at3, atBig})
	fmt.Fprintf(&md, "\nAnalytic mean latency at the defaults (M/M/1 wait for a lambda_P slot plus five hops): %v; simulated: %v.\n",
		ExpectedLatency(pl.base).Round(time.Millisecond), at.LatencyMean.Round(time.Millisecond))
	logf("defaults done (%v)", time.Since(start).Round(time.Second))

	// Mean delay.
	var d50, d3, dBig []Point
	if d50, err = SweepMeanDelay(pl.base, pl.delays, o.Seed, w); err != nil {
		return "", err
	}
	if d3, err = SweepMeanDelay(base3, pl.delays, o.Seed, w); err != nil {
		return "", err
	}
	if dBig, err = SweepMeanDelay(pl.big, pl.delays, o.Seed, w); err != nil {
		return "", err
	}
	delayNames := []string{fmt.Sprintf("%d users, %d mix/layer", pl.base.Users, pl.base.MixesPerLayer), fmt.Sprintf("%d users, %d mixes/layer", base3.Users, base3.MixesPerLayer), fmt.Sprintf("%d users, %d mixes/layer", pl.big.Users, pl.big.MixesPerLayer)}
	delaySets := [][]Point{d50, d3, dBig}
	fmt.Fprintf(&md, "\n### Mean delay per hop\n\nWhat it buys: every packet waits longer in each pool, so more packets mix with it. What it costs: five hops of it in every message's latency (and ten in an acknowledgement's round trip).\n")
	chart("entropy-delay.svg", &plot.Chart{Title: "Sender entropy against mean delay per hop", XLabel: "mean delay per hop (ms)", YLabel: "mean sender entropy (bits)", LogX: true, Series: series(delayNames, delaySets, entropyOf)})
	chart("attack-delay.svg", &plot.Chart{Title: "Best-guess attack success against mean delay per hop", XLabel: "mean delay per hop (ms)", YLabel: "attack success", LogX: true, Series: series(delayNames, delaySets, attackOf)})
	for i, pts := range delaySets {
		sweepTable(&md, delayNames[i], "mean delay (ms)", pts)
	}
	logf("mean delay done (%v)", time.Since(start).Round(time.Second))

	// Rates.
	var rateSets [][]Point
	var rateNames []string
	for _, r := range []Rate{LambdaP, LambdaL, LambdaD, LambdaM} {
		pts, e := SweepRate(base3, r, pl.rates[r], o.Seed, w)
		if e != nil {
			return "", e
		}
		rateSets, rateNames = append(rateSets, pts), append(rateNames, string(r))
	}
	fmt.Fprintf(&md, "\n### Rates lambda_P, lambda_L, lambda_D, lambda_M\n\nOne rate varied at a time, the others at their defaults, %d users, %d mixes per layer. ", base3.Users, base3.MixesPerLayer)
	fmt.Fprintf(&md, "What they buy: more packets in every pool at the same moment, so more to mix with (lambda_M adds packets that only mixes send). What they cost: bandwidth (each client packet crosses five links, a loop nine) and, for lambda_P, nothing in latency but the wait for a slot (about 1/lambda_P, less as the other rates add slots: see ExpectedLatency).\n")
	chart("entropy-rates.svg", &plot.Chart{Title: "Sender entropy against each rate", XLabel: "rate (per second)", YLabel: "mean sender entropy (bits)", FitY: true, Series: series(rateNames, rateSets, entropyOf)})
	chart("attack-rates.svg", &plot.Chart{Title: "Best-guess attack success against each rate", XLabel: "rate (per second)", YLabel: "attack success", Series: series(rateNames, rateSets, attackOf)})
	for i, pts := range rateSets {
		sweepTable(&md, rateNames[i]+" varied", rateNames[i], pts)
	}
	logf("rates done (%v)", time.Since(start).Round(time.Second))

	// Users.
	uPts, err := SweepUsers(base3, pl.users, pl.usersMessages, pl.usersWarmup, o.Seed, w)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&md, "\n### Users online\n\n%d mixes per layer. Each run measures a window of about %d real messages (from %v for %d users to %v for %d) after %v of warm-up. ",
		base3.MixesPerLayer, pl.usersMessages, UsersWindow(base3, pl.users[0], pl.usersMessages), pl.users[0], UsersWindow(base3, pl.users[len(pl.users)-1], pl.usersMessages), pl.users[len(pl.users)-1], pl.usersWarmup)
	fmt.Fprintf(&md, "Every user's cover traffic hides every other user: the entropy follows log2(users) from a little below.\n")
	ideal := make([]float64, len(uPts))
	for i, p := range uPts {
		ideal[i] = math.Log2(p.X)
	}
	// The huge run goes on the charts with the sweep's points, and in a table of its own.
	var huge []Point
	if pl.huge > 0 {
		p := base3
		p.Users, p.Method = pl.huge, MethodBackward
		p.Warmup, p.Duration = pl.usersWarmup, pl.usersWarmup+pl.hugeWindow
		r, err := Run(p, o.Seed)
		if err != nil {
			return "", err
		}
		huge = []Point{{X: float64(pl.huge), Result: r}}
		ideal = append(ideal, math.Log2(float64(pl.huge)))
	}
	chartPts := append(slices.Clone(uPts), huge...)
	us := series([]string{"simulated"}, [][]Point{chartPts}, entropyOf)
	us = append(us, plot.Series{Name: "log2(users), the most possible", X: xsOf(chartPts), Y: ideal})
	chart("entropy-users.svg", &plot.Chart{Title: "Sender entropy against users online", XLabel: "users online", YLabel: "mean sender entropy (bits)", LogX: true, Series: us})
	chart("attack-users.svg", &plot.Chart{Title: "Best-guess attack success against users online", XLabel: "users online", YLabel: "attack success", LogX: true, Series: series([]string{"simulated"}, [][]Point{chartPts}, attackOf)})
	sweepTable(&md, "users", "users", uPts)
	if len(huge) > 0 {
		r := huge[0].Result
		fmt.Fprintf(&md, "\n%d users (on the charts above too): %v measured after %v of warm-up, measured backward (entropy.Backward: each message's probability mass carried back through the recorded events, memory linear in the events; the same entropies as the forward tracker to 1e-8 bits on smaller runs). Log2(%d) = %.2f bits. Wall time of the run: %v.\n",
			pl.huge, pl.hugeWindow, pl.usersWarmup, pl.huge, math.Log2(float64(pl.huge)), r.Elapsed.Round(time.Second))
		sweepTable(&md, fmt.Sprintf("%d users", pl.huge), "users", huge)
	}
	logf("users done (%v)", time.Since(start).Round(time.Second))

	// Mixes per layer.
	m50, err := SweepMixes(pl.base, pl.mixes, o.Seed, w)
	if err != nil {
		return "", err
	}
	mBig, err := SweepMixes(pl.big, pl.mixes, o.Seed, w)
	if err != nil {
		return "", err
	}
	mixNames := []string{fmt.Sprintf("%d users", pl.base.Users), fmt.Sprintf("%d users", pl.big.Users)}
	spread := func(pts []Point) float64 {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range pts {
			lo, hi = math.Min(lo, p.Result.MeanEntropy), math.Max(hi, p.Result.MeanEntropy)
		}
		return hi - lo
	}
	fmt.Fprintf(&md, "\n### Mixes per layer\n\nWhat more mixes buy: capacity, and fewer users trusting any one mix. What they cost in anonymity: the same traffic split over more pools, fewer packets in each; here the mean entropy moves by at most %.3f bits (%d users) and %.3f bits (%d users) across the sweep, as the five pools of a route still spread each message over all users.\n",
		spread(m50), pl.base.Users, spread(mBig), pl.big.Users)
	chart("entropy-mixes.svg", &plot.Chart{Title: "Sender entropy against mixes per layer", XLabel: "mixes per layer", YLabel: "mean sender entropy (bits)", FitY: true, Series: series(mixNames, [][]Point{m50, mBig}, entropyOf)})
	sweepTable(&md, mixNames[0], "mixes per layer", m50)
	sweepTable(&md, mixNames[1], "mixes per layer", mBig)
	logf("mixes done (%v)", time.Since(start).Round(time.Second))

	// Trade-off.
	tr, err := TradeOff(base3, pl.tradeDelays, pl.covers, o.Seed, w)
	if err != nil {
		return "", err
	}
	var ts []plot.Series
	for i, pts := range tr {
		s := plot.Series{Name: fmt.Sprintf("cover x%g (%.2g packets/s per user)", pl.covers[i], pts[0].Result.PacketsPerUser)}
		for _, p := range pts {
			s.X = append(s.X, p.Result.LatencyP50.Seconds())
			s.Y = append(s.Y, p.Result.MeanEntropy)
			if i == len(tr)-1 {
				// One curve's points are labelled: the curves share their delays, and labels on
				// all of them would cover each other.
				s.Labels = append(s.Labels, fmt.Sprintf("%gms", p.X))
			}
		}
		ts = append(ts, s)
	}
	fmt.Fprintf(&md, "\n### Latency, anonymity, bandwidth\n\n%d users, %d mixes per layer. Each curve is one bandwidth (lambda_L and lambda_D scaled by the factor, lambda_P kept), each point a mean delay per hop (labelled on the top curve; the same delays on every curve, in the same order). Moving up a curve costs latency; moving to a higher curve costs bandwidth.\n", base3.Users, base3.MixesPerLayer)
	chart("tradeoff.svg", &plot.Chart{Title: "Latency, anonymity and bandwidth", XLabel: "latency p50 (s)", YLabel: "mean sender entropy (bits)", Series: ts})
	for i, pts := range tr {
		sweepTable(&md, ts[i].Name, "mean delay (ms)", pts)
	}
	if chartErr != nil {
		return "", chartErr
	}
	logf("trade-off done (%v)", time.Since(start).Round(time.Second))

	fmt.Fprintf(&md, "\n### Defaults: what each buys and costs\n\n")
	defaults(&md, at3, d3, rateSets, uPts)
	fmt.Fprintf(&md, "\n### Limits of these figures\n\n")
	fmt.Fprintf(&md, "- The entropy is that of the pool model (internal/privacy/entropy): a global passive adversary without corrupt nodes or clients, who uses the timing of every link but no route constraints beyond a provider's two kinds of input. Corrupt mixes, active attacks (dropping or delaying packets) and long-term intersection of a user's online times are not in these figures.\n")
	fmt.Fprintf(&md, "- Each real message is one fragment; a long mail's fragments leave one per lambda_P slot and an adversary could link them by their common destination over time.\n")
	if len(uPts) > 0 {
		last := uPts[len(uPts)-1].Result
		fmt.Fprintf(&md, "- Cost: measured forward (entropy.Tracker, runs of up to %d users), every packet's distribution spans up to all users, so a simulated second costs time and memory in proportion to the square of the users online. Measured backward (entropy.Backward, more users), the events are recorded and each batch of up to %d messages costs one pass over them: time and memory grow with the events, in proportion to the users. The %d-user run (%v simulated) took %v of wall time here.\n",
			BackwardUsers, entropy.MaxBatch, last.Params.Users, last.Params.Duration, last.Elapsed.Round(time.Second))
	}
	fmt.Fprintf(&md, "\nRun time of this report: %v on %d CPUs (GOMAXPROCS %d)%s.\n", time.Since(start).Round(time.Second), runtime.NumCPU(), runtime.GOMAXPROCS(0), map[bool]string{true: ", quick mode", false: ""}[o.Quick])
	return md.String(), nil
}

func entropyOf(r Result) float64 { return r.MeanEntropy }
func attackOf(r Result) float64  { return r.Entropy.AttackSuccess }

func xsOf(pts []Point) []float64 {
	xs := make([]float64, len(pts))
	for i, p := range pts {
		xs[i] = p.X
	}
	return xs
}

func series(names []string, sets [][]Point, y func(Result) float64) []plot.Series {
	var out []plot.Series
	for i, pts := range sets {
		s := plot.Series{Name: names[i], X: xsOf(pts)}
		for _, p := range pts {
			s.Y = append(s.Y, y(p.Result))
		}
		out = append(out, s)
	}
	return out
}

const tableHead = "| mean entropy (bits) | median | p10 | attack success | latency mean | p50 | p99 | packets/s per user | messages |\n"

func row(r Result) string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	return fmt.Sprintf("| %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %.2f | %d |", r.MeanEntropy, r.MedianEntropy, r.P10Entropy, r.Entropy.AttackSuccess, ms(r.LatencyMean), ms(r.LatencyP50), ms(r.LatencyP99), r.PacketsPerUser, r.Messages)
}

func table(md *strings.Builder, first string, names []string, rs []Result) {
	fmt.Fprintf(md, "| %s "+tableHead, first)
	fmt.Fprintf(md, "|---%s|\n", strings.Repeat("|---", 9))
	for i, r := range rs {
		fmt.Fprintf(md, "| %s %s\n", names[i], row(r))
	}
}

func sweepTable(md *strings.Builder, title, x string, pts []Point) {
	fmt.Fprintf(md, "\n%s:\n\n", title)
	names := make([]string, len(pts))
	rs := make([]Result, len(pts))
	for i, p := range pts {
		names[i], rs[i] = fmt.Sprintf("%g", p.X), p.Result
	}
	table(md, x, names, rs)
}

// at returns the point of pts at x, or false.
func at(pts []Point, x float64) (Result, bool) {
	for _, p := range pts {
		if p.X == x {
			return p.Result, true
		}
	}
	return Result{}, false
}

// defaults writes what each default buys and costs, with the figures of the sweeps.
func defaults(md *strings.Builder, here Result, delays []Point, rates [][]Point, users []Point) {
	def := pki.DefaultParameters()
	ms := float64(def.MeanDelay) / float64(time.Millisecond)
	fmt.Fprintf(md, "Figures for %d users and %d mixes per layer, from the tables above; at the defaults: %.2f bits, attack success %.3f, latency p50 %.2f s, %.2f packets/s per user.\n\n",
		here.Params.Users, here.Params.MixesPerLayer, here.MeanEntropy, here.Entropy.AttackSuccess, here.LatencyP50.Seconds(), here.PacketsPerUser)
	if lo, ok := at(delays, ms/2); ok {
		fmt.Fprintf(md, "- **mean delay %v**: against %v it buys %+.2f bits for %+.2f s of latency p50.", def.MeanDelay, def.MeanDelay/2, here.MeanEntropy-lo.MeanEntropy, (here.LatencyP50 - lo.LatencyP50).Seconds())
	} else {
		fmt.Fprintf(md, "- **mean delay %v**:", def.MeanDelay)
	}
	if hi, ok := at(delays, ms*5/2); ok {
		fmt.Fprintf(md, " Raising it to %v would buy %+.2f bits more for %+.2f s more.", def.MeanDelay*5/2, hi.MeanEntropy-here.MeanEntropy, (hi.LatencyP50 - here.LatencyP50).Seconds())
	}
	fmt.Fprintf(md, " Mail tolerates seconds, so the delay is kept where the entropy curve flattens rather than at its start.\n")
	names := []string{"lambda_P", "lambda_L", "lambda_D", "lambda_M"}
	vals := []float64{def.LambdaP, def.LambdaL, def.LambdaD, def.LambdaM}
	why := []string{
		"sets the sending capacity (real mail above lambda_P queues) and, with the other rates, the wait for a slot (1/3 s on average at the defaults); every empty send slot is a drop",
		"loops also let a client detect a network that drops its packets (an active attack); they cost nine link crossings each",
		"plain cover, five link crossings each",
		"mixes' own cover: hides a mix's traffic level when its clients are few, costs the mixes' bandwidth only",
	}
	for i, pts := range rates {
		var lo, hi Result
		var okLo, okHi bool
		for _, p := range pts {
			if p.X < vals[i] {
				lo, okLo = p.Result, true
			}
			if p.X > vals[i] && !okHi {
				hi, okHi = p.Result, true
			}
		}
		fmt.Fprintf(md, "- **%s %g**: %s.", names[i], vals[i], why[i])
		if okLo {
			fmt.Fprintf(md, " Against %s %g it buys %+.2f bits for %+.2f packets/s per user.", names[i], lo.Params.rate(names[i]), here.MeanEntropy-lo.MeanEntropy, here.PacketsPerUser-lo.PacketsPerUser)
		}
		if okHi {
			fmt.Fprintf(md, " Going to %g would buy %+.2f bits for %+.2f packets/s per user.", hi.Params.rate(names[i]), hi.MeanEntropy-here.MeanEntropy, hi.PacketsPerUser-here.PacketsPerUser)
		}
		fmt.Fprintln(md)
	}
	if len(users) > 0 {
		last := users[len(users)-1]
		fmt.Fprintf(md, "- **users**: no parameter, but the largest lever: %g users give %.2f bits (log2 = %.2f).\n", last.X, last.Result.MeanEntropy, math.Log2(last.X))
	}
}

// rate returns a lambda of p by its name.
func (p Params) rate(name string) float64 {
	switch name {
	case "lambda_P":
		return p.LambdaP
	case "lambda_L":
		return p.LambdaL
	case "lambda_D":
		return p.LambdaD
	}
	return p.LambdaM
}
