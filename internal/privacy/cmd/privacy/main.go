// Command privacy measures the privacy of a local network as an outside observer and an
// adversary with the ground truth see it (issue 14), and writes docs/PRIVACY.md: `make privacy`.
//
// It builds mixd and directory with the tracer (-tags privacytrace), starts a pkg/testnet
// network at the default consensus parameters, runs -users pkg/client engines in this process
// (built with the tag too, by `go run -tags privacytrace`), each writing one-fragment mails to
// random other users at exponential gaps of mean -gap, captures every link with tcpdump, and
// runs the attacks of internal/privacy/attack on the capture and the trace.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/attack"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/capture"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/entropy"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/measure"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/sim"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/trace"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

func main() {
	users := flag.Int("users", 50, "client engines")
	duration := flag.Duration("duration", 12*time.Minute, "how long users write mail")
	warmup := flag.Duration("warmup", time.Minute, "deliveries before this much of the mail time are not measured")
	drain := flag.Duration("drain", 30*time.Second, "run on after the last mail")
	gap := flag.Duration("gap", 50*time.Second, "mean gap between a user's mails (exponential); 50 s gives about 700 measured deliveries in the 12 minutes")
	out := flag.String("out", "docs/PRIVACY.md", "the report to write (empty: print only)")
	figures := flag.String("figures", "docs/privacy", "directory of the simulator's figures")
	simQuick := flag.Bool("sim-quick", false, "the simulator's quick sweeps")
	keep := flag.String("keep", "", "keep the run's directory (network, capture, traces) here")
	corruptMix := flag.String("corrupt-mix", "mix1", "the node whose mapping the adversary gets in the corrupt-mix row")
	corruptProvider := flag.String("corrupt-provider", "provider-beta", "likewise for the corrupt-provider row")
	contacts := flag.Int("contacts", 3, "the disclosure attack's target (u001) writes to this many contacts")
	targetGap := flag.Duration("target-gap", 15*time.Second, "mean gap between the target's mails")
	reanalyze := flag.String("reanalyze", "", "analyze the run kept (-keep) in this directory again instead of running one")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, config{users: *users, duration: *duration, warmup: *warmup, drain: *drain, gap: *gap,
		out: *out, figures: *figures, simQuick: *simQuick, keep: *keep, corrupt: []string{*corruptMix, *corruptProvider}, contacts: *contacts, targetGap: *targetGap, reanalyze: *reanalyze}); err != nil {
		log.Fatal(err)
	}
}

type config struct {
	users                   int
	duration, warmup, drain time.Duration
	gap                     time.Duration
	out, figures, keep      string
	simQuick                bool
	corrupt                 []string
	contacts                int
	targetGap               time.Duration
	reanalyze               string
}

func run(ctx context.Context, c config) error {
	started := time.Now()
	var res *measure.Result
	var err error
	if c.reanalyze != "" {
		r, err := measure.Load(filepath.Join(c.reanalyze, "result.json"))
		if err != nil {
			return err
		}
		res = r
	} else {
		dir := c.keep
		if dir == "" {
			d, err := os.MkdirTemp("", "panoramix-privacy-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(d) // after the analysis, which reads the traces
			dir = d
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if res, err = measureRun(ctx, c, dir); err != nil {
			return err
		}
	}
	analysisStart := time.Now()
	a, err := analyze(res, c)
	if err != nil {
		return err
	}
	a.started = started
	if c.reanalyze != "" {
		a.started = res.Start
	}
	log.Printf("simulating the same parameters")
	sp := sim.FromPKI(res.Params, c.users, 2, 1)
	sp.RealRate = 1 / c.gap.Seconds()
	a.sim, err = sim.Run(sp, 1)
	if err != nil {
		return err
	}
	section := ""
	if c.out != "" {
		log.Printf("simulator sweeps and figures into %s", c.figures)
		links, err := filepath.Rel(filepath.Dir(c.out), c.figures)
		if err != nil {
			return err
		}
		section, err = sim.WriteReport(sim.ReportOptions{Dir: c.figures, Links: filepath.ToSlash(links) + "/", Quick: c.simQuick, Log: os.Stderr})
		if err != nil {
			return err
		}
	}
	a.elapsed = time.Since(analysisStart) // the network run's time is res.Elapsed
	doc := a.markdown(c, section)
	if c.out == "" {
		fmt.Print(doc)
		return nil
	}
	return os.WriteFile(c.out, []byte(doc), 0o644)
}

// measureRun runs the network and saves the run's Result beside its capture and traces.
func measureRun(ctx context.Context, c config, dir string) (*measure.Result, error) {
	if err := checkTraced(); err != nil {
		return nil, err
	}
	repo, err := testnet.RepoRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "bin")
	os.Setenv("PANORAMIX_BUILD_TAGS", "privacytrace")
	log.Printf("building directory and mixd with -tags privacytrace")
	if err := testnet.Build(ctx, repo, bin); err != nil {
		return nil, err
	}
	res, err := measure.Run(ctx, measure.Options{Dir: dir, BinDir: bin, Users: c.users, RealGap: c.gap,
		Duration: c.duration, Drain: c.drain, Contacts: c.contacts, TargetGap: c.targetGap, Log: log.Printf})
	if err != nil {
		return nil, err
	}
	log.Printf("run done in %v: %d connections captured, %d packets dropped by the kernel, %d trace files",
		res.Elapsed.Round(time.Second), len(res.Conns), res.Dropped, len(res.TraceFiles))
	if err := res.Save(filepath.Join(dir, "result.json")); err != nil {
		return nil, err
	}
	return res, nil
}

// checkTraced refuses to run without the tracer: without it there is no ground truth.
func checkTraced() error {
	dir, err := os.MkdirTemp("", "panoramix-privacy-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Setenv(trace.EnvFile, filepath.Join(dir, "t"))
	defer os.Unsetenv(trace.EnvFile)
	if !traced() {
		return fmt.Errorf("privacy: built without the tracer; run it as `go run -tags privacytrace ./internal/privacy/cmd/privacy` (make privacy)")
	}
	return nil
}

type analysis struct {
	res             *measure.Result
	honest          attack.EntropyResult
	corrupt         []attack.EntropyResult
	timing          attack.TimingResult
	timingPackets   attack.TimingResult
	classify        attack.ClassifyResult
	sda             attack.DisclosureResult
	sdaPosterior    []attack.DisclosureResult // without sending times: GPA, then each corrupt node
	targetMessages  int                       // the target's measured messages
	sim             sim.Result
	frameSizes      map[int]int
	unparsed        int
	reals, messages int
	records         int
	whole, parsed   int
	wholeJoined     int
	parsedJoined    int
	started         time.Time
	elapsed         time.Duration
}

func analyze(res *measure.Result, c config) (*analysis, error) {
	a := &analysis{res: res, frameSizes: map[int]int{}}
	var tr attack.Trace
	for _, f := range res.TraceFiles {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		err = tr.ReadTrace(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	t0 := res.Start.Add(-time.Minute) // before any record of interest
	from := res.MailStart.Add(c.warmup).Sub(t0)
	made := map[string]float64{}
	w := res.Params.LambdaM * res.Params.MeanDelay.Seconds()
	for id, name := range res.Nodes {
		if strings.HasPrefix(name, "mix") {
			made[id] = w
		}
	}
	ids := map[string]string{}
	for id, name := range res.Nodes {
		ids[name] = id
	}
	var users []string
	for u := range res.Users {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, corrupt := range append([]string{""}, c.corrupt...) {
		evs, err := tr.Events(t0, ids[corrupt])
		if err != nil {
			return nil, err
		}
		er := attack.Entropy(evs, entropy.Config{Made: made, Watch: res.Target}, from)
		er.Corrupt = corrupt
		if corrupt == "" {
			for _, d := range er.Delivered {
				if d.Sender == res.Target {
					a.targetMessages++
				}
			}
		}
		if res.Target != "" {
			who := "the global passive observer"
			if corrupt != "" {
				who += " with " + corrupt + "'s mapping"
			}
			a.sdaPosterior = append(a.sdaPosterior, attack.PosteriorDisclosure(res.Target, res.Contacts, users, attack.Posteriors(er.Delivered), who))
		}
		if corrupt == "" {
			a.honest = er
			// The timing attack is scored on the same deliveries.
			var ds []attack.Delivery
			for _, d := range er.Delivered {
				ds = append(ds, attack.Delivery{At: t0.Add(d.At), Sender: d.Sender})
			}
			m := attack.DelayModel{Hops: 5, Mean: res.Params.MeanDelay}
			a.timing = attack.TimingCorrelation(res.UpFrames(0), ds, m)
			a.timingPackets = attack.TimingCorrelation(res.UpFrames(answerWindow), ds, m)
		} else {
			a.corrupt = append(a.corrupt, er)
		}
		log.Printf("entropy (corrupt %q): %d messages, mean %.2f bits, %d events skipped %v", corrupt, er.Messages, er.Summary.Mean, er.Skipped, er.Errors)
	}
	reals := map[string][]time.Time{}
	for _, r := range tr.Records {
		if r.Ev == trace.EvSend && r.Kind == trace.KindReal {
			reals[r.User] = append(reals[r.User], time.Unix(0, r.At))
			a.reals++
		}
		if attack.IsReal(r) {
			a.messages++
		}
	}
	a.records = len(tr.Records)
	if res.Target != "" {
		var ds []attack.Delivered
		for _, r := range tr.Records {
			if attack.IsReal(r) {
				ds = append(ds, attack.Delivered{At: time.Unix(0, r.At), To: r.Recipient})
			}
		}
		a.sda = attack.Disclosure(res.Target, res.Contacts, users, reals[res.Target], ds, 5*time.Second, res.MailStart, res.MailEnd)
	}
	links := res.UserLinks(reals, res.MailStart, res.MailEnd)
	for _, l := range links {
		w, p := attack.Uniformity(l.Frames, wire.FrameSize(res.Params.Geometry), 0)
		a.whole += w
		a.parsed += p
		w, p = attack.Uniformity(l.Frames, wire.FrameSize(res.Params.Geometry), attack.JoinWithin)
		a.wholeJoined += w
		a.parsedJoined += p
		for _, f := range l.Frames {
			if !f.FromClient || f.Handshake {
				continue
			}
			if f.Parsed {
				a.frameSizes[f.Size]++
			} else {
				a.unparsed++
			}
		}
	}
	rng := rand.New(rand.NewPCG(14, 1))
	ws := attack.Balance(attack.Windows(links, 5*time.Second), rng)
	a.classify = attack.Classify(ws, 20, rng)
	return a, nil
}

func (a *analysis) markdown(c config, simSection string) string {
	var b strings.Builder
	p := a.res.Params
	f := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	f("# Privacy measured (issue 14)\n\n")
	f("Generated by `make privacy` (`go run -tags privacytrace ./internal/privacy/cmd/privacy -sim-quick`), network run of %s; do not edit by hand.", a.res.Start.UTC().Format("2006-01-02 15:04 MST"))
	if c.reanalyze != "" {
		f(" The analysis was made again from that run's kept capture and traces (`-keep DIR`, then `-reanalyze DIR`) on %s, after fixes to the analysis.", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	}
	f("\n\n")
	f("## The run\n\n")
	f("| | |\n|---|---|\n")
	f("| machine | %s/%s, %d CPUs (shared with other work), %s |\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	f("| run time | %v: the network run %v (build, start, %d users' engines, mail, drain), then analysis and the simulator's sweeps %v |\n", (a.res.Elapsed + a.elapsed).Round(time.Minute), a.res.Elapsed.Round(time.Second), len(a.res.Users), a.elapsed.Round(time.Second))
	f("| network | pkg/testnet: 1 directory, 3 layers of 1 mix, 2 providers (alpha, beta) |\n")
	f("| parameters | pki.DefaultParameters: lambda_P %g, lambda_L %g, lambda_D %g, lambda_M %g /s, mean delay %v, max delay %v, %s; epoch shortened to %v (pkg/testnet's, so the network starts in seconds) |\n",
		p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM, p.MeanDelay, p.MaxDelay, p.Geometry, p.EpochLength)
	f("| users | %d pkg/client engines in one process, default settings (retrieve every 250 ms), each from its own loopback address 127.0.1.x |\n", len(a.res.Users))
	f("| mail | one fragment (1000 bytes) to the queue service of a user drawn uniformly among the others, at exponential gaps of mean %v per user (a person writes less often: compressed so that %v give enough messages), for %v, then %v to drain |\n", c.gap, c.duration, c.duration, c.drain)
	f("| measured | deliveries from %v after the first mail on (warm-up) |\n", c.warmup)
	f("| capture | tcpdump on lo (internal/privacy/capture), %d connections, %d packets dropped by the kernel |\n", len(a.res.Conns), a.res.Dropped)
	f("| ground truth | tracer (-tags privacytrace): %d real packets written by clients, %d real deliveries |\n\n", a.reals, a.messages)

	f("## How the links are recorded\n\n")
	f("tcpdump on the loopback interface writes every TCP segment to or from a node's listening port (headers and the first bytes of the payload; pure ACKs filtered in the kernel), and internal/privacy/capture's own pcap reader and TCP follower turn it into connections (which end dialled) and, per direction, bursts of TLS records with their times and sizes, from the cleartext TLS record headers. That is what a global passive observer with a tap on every wire gets: nothing from inside the programs is used, and no key. The adversary tells users apart by their address, as on a real network (each engine dials from its own 127.0.1.x). Loopback differs from a WAN: its MTU is 65536, so a 16 KiB TLS record is one segment where a 1500-byte MTU would show a dozen (the burst's bytes and time are the same), and there is no propagation delay, jitter or loss, which if anything helps timing attacks. Times are the kernel's capture timestamps, in microseconds.\n\n")
	f("## Attacks on the capture\n\n")
	f("Rates with their Wilson 95%% intervals.\n\n")
	f("| attack | trials | success | chance | success / chance | acceptance |\n|---|---|---|---|---|---|\n")
	t := a.timing
	f("| (a) timing correlation: the true sender ranked first among %d users | %d | %.3f [%.3f, %.3f] | %.3f | %.2f (mean rank %.1f ± %.1f, chance %.1f) | at most 1.5x chance: %s |\n",
		t.Users, t.First.Trials, t.First.Value(), t.First.Lo, t.First.Hi, t.Chance, t.Ratio, t.MeanRank, t.MeanRankSE, float64(t.Users+1)/2, verdict(t.Ratio <= 1.5))
	t = a.timingPackets
	f("| (a') the same on the frames the provider did not answer within %v (so without most retrieve requests) | %d | %.3f [%.3f, %.3f] | %.3f | %.2f (mean rank %.1f ± %.1f) | %s |\n",
		answerWindow, t.First.Trials, t.First.Value(), t.First.Lo, t.First.Hi, t.Chance, t.Ratio, t.MeanRank, t.MeanRankSE, verdict(t.Ratio <= 1.5))
	cl := a.classify
	f("| (b) cover classifier: 5 s client-link windows with and without a real send (balanced, %d-fold cross-validated logistic regression on %s) | %d | %.3f [%.3f, %.3f] | 0.5 (placebo labels, %d runs: mean %.3f, 95%% band [%.3f, %.3f]) | %.2f | at most 0.55: %s |\n",
		attack.Folds, strings.Join(attack.FeatureNames, ", "), cl.Windows, cl.Accuracy.Value(), cl.Accuracy.Lo, cl.Accuracy.Hi, cl.PlaceboRuns, cl.PlaceboMean, cl.PlaceboLo, cl.PlaceboHi, cl.Accuracy.Value()/0.5, verdict(cl.Accuracy.Value() <= 0.55))
	s := a.sda
	if s.Target != "" {
		f("| (d) statistical disclosure on %s (%d contacts) over %d rounds of %v: its contacts are the top %d of the recipients' ranking | %d contacts | %.3f [%.3f, %.3f] | %.3f (a random set of %d) | %.2f | reported |\n",
			s.Target, s.Contacts, s.Rounds, s.Round, s.Contacts, s.Found.Trials, s.Found.Value(), s.Found.Lo, s.Found.Hi, s.Chance, s.Contacts, s.Found.Value()/max(s.Chance, 1e-9))
	}
	f("\n")
	f("Attack (a): for each real delivery (its time as the recipient's provider or a corrupt recipient learns it), every user is scored by the sum, over the frames its client sent in the %v before, of the Erlang(5, mean delay) density at their distance (five hops each hold a packet an exponential time): the likelihood that one of them was the message. Ties count 1/k.\n\n", attack.DelayModel{Hops: 5, Mean: p.MeanDelay}.Window())
	f("Attack (b): features from the capture only (frames in each direction, gaps between the client's frames, their sizes); labels from the tracer's record of the client's real packets. The placebo runs shuffle the labels and give the accuracy of a classifier that can learn nothing.\n\n")
	f("Attack (d): %s\n\n", s.Method)
	if s := a.sdaPosterior; len(s) > 0 {
		f("Attack (e), the long-term disclosure attack without sending times: the adversary does not know when %s sends (attack (b) says it cannot tell), and credits each delivered real message's recipient with the probability that %s sent it, from the pool model of the entropy table below (internal/privacy/entropy: everything on the wires, plus a corrupt node's mapping where one is given). A recipient's score is its credit beyond its share of all messages; the top %d are the guess (attack.PosteriorDisclosure). Like (d), it is given each message's recipient (the recipients' providers know it).\n\n", s[0].Target, s[0].Target, s[0].Contacts)
		f("| (e) adversary | messages | contacts found | chance | found / chance |\n|---|---|---|---|---|\n")
		for i, r := range s {
			name := "global passive observer"
			if i > 0 && i-1 < len(a.corrupt) {
				name = "and corrupt " + a.corrupt[i-1].Corrupt
			}
			f("| %s | %d | %d of %d (%.3f [%.3f, %.3f]) | %.3f | %.2f |\n", name, r.Rounds, int(r.Found.Successes), r.Contacts, r.Found.Value(), r.Found.Lo, r.Found.Hi, r.Chance, r.Found.Value()/max(r.Chance, 1e-9))
		}
		f("\n")
	}

	f("## Frames on client links\n\n")
	f("Sizes of the client-to-provider frames (bytes the wire layer wrote, from the TLS record headers, and for the records whose header lies past the capture's snap length inferred from the next record's header: internal/privacy/capture, Frame.Parsed), handshakes left out; %d bursts were not fully parsed (crypto/tls's small first records, several to a segment, and each connection's last frame, which no later record follows).\n\n", a.unparsed)
	f("Of the %d fully parsed bursts, %d (%.2f%%) are whole frames (a multiple of the frame size %d: two frames written back to back make one burst)", a.parsed, a.whole, 100*float64(a.whole)/float64(max(a.parsed, 1)), wire.FrameSize(p.Geometry))
	if a.whole < a.parsed {
		f("; the others are frames cut in two bursts more than %v apart", capture.BurstGap)
	}
	f(". Joining the bursts that follow each other within %v, %d of %d (%.2f%%) are whole frames. pkg/wire hands each frame's two TLS records to the kernel in one write, so a frame is not cut between its records.\n\n",
		attack.JoinWithin, a.wholeJoined, a.parsedJoined, 100*float64(a.wholeJoined)/float64(max(a.parsedJoined, 1)))
	f("| size | frames |\n|---|---|\n")
	var sizes []int
	for sz := range a.frameSizes {
		sizes = append(sizes, sz)
	}
	sort.Ints(sizes)
	for _, sz := range sizes {
		f("| %d | %d |\n", sz, a.frameSizes[sz])
	}
	f("\n## Sender entropy (Loopix), from the tracer\n\n")
	f("The adversary of internal/privacy/entropy: a global passive observer with the pool model, plus the mapping of inputs to outputs of the corrupt node given. Maximum log2(%d) = %.2f bits.\n\n", len(a.res.Users), math.Log2(float64(len(a.res.Users))))
	f("| adversary | messages | mean bits | median | 10th percentile | min | best guess right | skipped events |\n|---|---|---|---|---|---|---|---|\n")
	for _, e := range append([]attack.EntropyResult{a.honest}, a.corrupt...) {
		name := "global passive observer"
		if e.Corrupt != "" {
			name = "and corrupt " + e.Corrupt
		}
		sm := e.Summary
		f("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.3f [%.3f, %.3f] (chance %.3f) | %d |\n", name, e.Messages, sm.Mean, sm.Median, sm.P10, sm.Min, e.Guess.Value(), e.Guess.Lo, e.Guess.Hi, 1/float64(len(a.res.Users)), e.Skipped)
	}
	sr := a.sim
	f("| simulator's prediction (sim.Run, same parameters, %d users, real rate 1/%v, seed 1) | %d | %.2f | %.2f | %.2f | | %.3f | |\n\n", sr.Params.Users, c.gap, sr.Messages, sr.MeanEntropy, sr.MedianEntropy, sr.P10Entropy, sr.Entropy.AttackSuccess)
	f("Skipped events are records the tracker could not place (for example a packet whose earlier record the tracer did not write); they are few against the %d records of the run.\n\n", a.records)
	f("## What this says\n\n")
	t = a.timing
	z := (float64(t.Users+1)/2 - t.MeanRank) / max(t.MeanRankSE, 1e-9)
	f("- Timing correlation (a) ranks the true sender first in %.1f%% of %d deliveries against %.1f%% by chance (%.2fx; 95%% interval %.2fx to %.2fx). Its mean rank, %.1f ± %.1f against %.1f, is %.1f standard errors from chance%s. The client sends one packet per slot of a fixed period, 1/%g s, from a random phase (docs/spec/client.md section 3): a real packet takes a slot that would have carried cover, and every link has a frame at every phase of its period, so a frame at the delivery's lag says nothing about who sent it; the lag through five hops of %v, modulo the period, is uniform to within %.1g. Until 2026-12 the client sent on Poisson events (Loopix): the sender's link then always had a frame at the lag and the other links only by chance, and the same attack on the same network (run of 2026-12-05 20:16 UTC, 398 deliveries) ranked the true sender first at 1.63x chance, mean rank 22.0 ± 0.7 against 25.5 (5.3 standard errors).\n",
		100*t.First.Value(), t.First.Trials, 100*t.Chance, t.Ratio, t.First.Lo/t.Chance, t.First.Hi/t.Chance, t.MeanRank, t.MeanRankSE, float64(t.Users+1)/2, z, rankSignal(z), p.LambdaP+p.LambdaL+p.LambdaD, p.MeanDelay,
		math.Pow(1+math.Pow(2*math.Pi*p.MeanDelay.Seconds()*(p.LambdaP+p.LambdaL+p.LambdaD), 2), -2.5))
	f("- The cover classifier (b) cannot tell windows with a real send from windows without: %.1f%%, inside the placebo band.\n", 100*a.classify.Accuracy.Value())
	f("- The measured mean sender entropy, %.2f bits of at most %.2f, matches the simulator's prediction for the same parameters (%.2f bits), so the simulator's sweeps below can be trusted where the testnet cannot go.\n",
		a.honest.Summary.Mean, math.Log2(float64(len(a.res.Users))), a.sim.MeanEntropy)
	if len(a.corrupt) == 2 {
		f("- One corrupt mix (%s, one of the three layers' single mixes) changes the entropy little (%.2f bits): the other two layers and both providers still mix. One corrupt provider (%s) lowers it to %.2f bits.\n",
			a.corrupt[0].Corrupt, a.corrupt[0].Summary.Mean, a.corrupt[1].Corrupt, a.corrupt[1].Summary.Mean)
	}
	if a.sda.Target != "" {
		f("- Once the moments a user sends are known, the statistical disclosure attack (d) finds its contacts after a few dozen messages (%d of %d): mixing hides who receives among the few messages of a round, and cover traffic is what hides when a user sends.\n", int(a.sda.Found.Successes), a.sda.Contacts)
	}
	if s := a.sdaPosterior; len(s) > 0 {
		var parts []string
		for i, r := range s {
			name := "the global passive observer"
			if i > 0 && i-1 < len(a.corrupt) {
				name = "with " + a.corrupt[i-1].Corrupt + " corrupt"
			}
			parts = append(parts, fmt.Sprintf("%s %d of %d", name, int(r.Found.Successes), r.Contacts))
		}
		f("- Without the sending times, the disclosure attack (e) over %d messages, %d of them %s's, found: %s (chance %.2f contacts). Its power grows with the messages watched: each of the target's messages gives its recipient only the target's excess probability in the pool model, which the entropy table puts near 1/%d.\n",
			s[0].Rounds, a.targetMessages, s[0].Target, strings.Join(parts, "; "), s[0].Chance*float64(s[0].Contacts), len(a.res.Users))
	}
	f("\n")
	f("## The regression guard in CI\n\n")
	f(guardDoc+"\n\n", 100*float64(a.whole)/float64(max(a.parsed, 1)), 100*float64(a.wholeJoined)/float64(max(a.parsedJoined, 1)))
	if simSection != "" {
		f("%s\n", simSection)
	} else {
		f("The simulator's sweeps were not run (no -out).\n")
	}
	return b.String()
}

// answerWindow is how soon after a client frame a provider frame must follow for attack (a')
// to take the client frame for a retrieve request: the provider answers a retrieve at once.
const answerWindow = 50 * time.Millisecond

// rankSignal words a z score of the mean rank.
func rankSignal(z float64) string {
	switch {
	case z >= 3:
		return ": a small real signal"
	case z <= -3:
		return " (worse than chance: the score misleads)"
	}
	return ": no signal"
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
