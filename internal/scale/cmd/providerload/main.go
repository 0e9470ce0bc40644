// Command providerload measures one provider with many online users (issue 17): for each user
// count it starts a fresh pkg/testnet network with one provider and three mixes, runs that
// many client engines in this process at the consensus's lambdas (defaults: lambda_P 2,
// lambda_L 0.5, lambda_D 0.5 per second, a retrieve every 250 ms), and reports over the
// measurement window the provider's and mixes' CPU time and memory, the engines' CPU, and
// whether every engine's loops kept coming back in time.
//
//	go run ./internal/scale/cmd/providerload -users 100,300,1000
//
// It stops at the first count the machine no longer keeps up with (more than -maxlost of the
// loops lost), since larger counts only measure a saturated machine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/scale"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

func main() {
	users := flag.String("users", "100,300,1000", "comma-separated user counts, one run each")
	warmup := flag.Duration("warmup", 30*time.Second, "engines run this long before the window")
	measure := flag.Duration("measure", 60*time.Second, "length of the measurement window")
	clientDir := flag.String("clientdir", "/dev/shm", "where the engines' stores go (tmpfs)")
	epoch := flag.Duration("epoch", 60*time.Second, "consensus epoch length (the lambdas stay pki.DefaultParameters')")
	maxLost := flag.Float64("maxlost", 0.05, "stop after a count that lost more than this fraction of its loops")
	jsonOut := flag.String("json", "", "also write the results to this file as JSON")
	retrieve := flag.Duration("retrieve", 0, "the engines' retrieve interval (0: the client's default, 250 ms)")
	flag.Parse()
	if err := run(*users, *warmup, *measure, *clientDir, *epoch, *retrieve, *maxLost, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "providerload:", err)
		os.Exit(1)
	}
}

func run(users string, warmup, measure time.Duration, clientDir string, epoch, retrieve time.Duration, maxLost float64, jsonOut string) error {
	var counts []int
	for f := range strings.SplitSeq(users, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-users: %q is not a positive count", f)
		}
		counts = append(counts, n)
	}
	// Either signal stops the daemons and removes the stores before exiting.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	repo, err := testnet.RepoRoot()
	if err != nil {
		return err
	}
	bin, err := os.MkdirTemp("", "providerload-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	if err := testnet.Build(ctx, repo, bin, testnet.Programs...); err != nil {
		return err
	}
	p := pki.DefaultParameters()
	p.EpochLength = epoch
	host, _ := os.Hostname()
	fmt.Printf("providerload %s, %s, %d CPUs, GOMAXPROCS %d, epoch %v, retrieve interval %v (0: default), warmup %v, window %v\n",
		time.Now().UTC().Format(time.RFC3339), host, runtime.NumCPU(), runtime.GOMAXPROCS(0), epoch, retrieve, warmup, measure)
	var results []*scale.Result
	for _, n := range counts {
		dir, err := os.MkdirTemp("", fmt.Sprintf("providerload-%d-", n))
		if err != nil {
			return err
		}
		r, err := scale.Run(ctx, scale.Options{Users: n, Parameters: &p, RetrieveInterval: retrieve, Warmup: warmup, Measure: measure, Dir: dir, ClientDir: clientDir, BinDir: bin, Progress: os.Stderr})
		if err != nil {
			fmt.Fprintf(os.Stderr, "network kept in %s\n", dir)
			return fmt.Errorf("%d users: %w", n, err)
		}
		os.RemoveAll(dir)
		results = append(results, r)
		report(r)
		if lost := lostFraction(r); lost > maxLost {
			fmt.Printf("stopping: %.1f%% of the loops lost at %d users\n", 100*lost, n)
			break
		}
	}
	if jsonOut != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}

func lostFraction(r *scale.Result) float64 {
	if r.LoopsReturned+r.LoopsLost == 0 {
		return 1
	}
	return float64(r.LoopsLost) / float64(r.LoopsReturned+r.LoopsLost)
}

func report(r *scale.Result) {
	w := r.Window.Seconds()
	u := float64(r.Users)
	fmt.Printf("\n== %d users, window %.1f s, load %s\n", r.Users, w, r.Load)
	fmt.Printf("loops: %d sent, %d returned, %d lost (%.2f%% lost); engines with no loop back: %d; links down at the end: %d; links set up in the window: %d\n",
		r.Loops, r.LoopsReturned, r.LoopsLost, 100*lostFraction(r), r.Silent, r.Down, r.Links)
	fmt.Printf("engines: %.2f packets/s each (real %d, lambda_P drops %d, lambda_D %d, loops %d), %.2f retrieves/s each\n",
		float64(r.RealPackets+r.SendDrops+r.Drops+r.Loops)/w/u, r.RealPackets, r.SendDrops, r.Drops, r.Loops, float64(r.Retrieves)/w/u)
	fmt.Printf("engines' process: %.3f CPU-s/s, %.3f ms CPU/s per user, RSS %.0f MB (%.1f KB per user)\n",
		r.EnginesCPU.Seconds()/w, 1000*r.EnginesCPU.Seconds()/w/u, float64(r.EnginesRSS)/1e6, float64(r.EnginesRSS)/1e3/u)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tCPU-s/s\tms CPU/s per user\tpackets/s in\tµs CPU per packet\tRSS MB\tKB RSS per user\tpeak RSS MB\tFDs\t")
	for _, n := range r.Nodes {
		cpu := n.CPU.Seconds() / w
		per := 0.0
		if n.Packets > 0 {
			per = 1e6 * n.CPU.Seconds() / n.Packets
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t\n", n.Name, cpu, 1000*cpu/u, n.Packets/w, per,
			float64(n.RSS)/1e6, float64(n.RSS)/1e3/u, float64(n.PeakRSS)/1e6, n.FDs)
	}
	tw.Flush()
}
