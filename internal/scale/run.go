package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// Options describe one run.
type Options struct {
	// Users is the number of client engines, all users of the one provider.
	Users int
	// Parameters are the consensus parameters (pki.DefaultParameters with a 10 s epoch when
	// nil, as pkg/testnet starts networks).
	Parameters *pki.Parameters
	// RetrieveInterval is the engines' interval between retrieve exchanges (the client's
	// default when 0); varying it alone separates a provider's cost per retrieve.
	RetrieveInterval time.Duration
	// Warmup runs the engines before the measurement window, Measure is its length.
	Warmup, Measure time.Duration
	// Dir holds the network (configs, daemons' data, logs); ClientDir the engines' stores
	// (tmpfs, so that their fsyncs do not compete with the daemons' disk).
	Dir, ClientDir string
	// BinDir holds the directory and mixd binaries (testnet.Build).
	BinDir string
	// Progress, when not nil, gets a line per step.
	Progress io.Writer
}

// NodeCost is one mixd's cost over the window.
type NodeCost struct {
	Name, Role string
	// CPU is its CPU time over the window; Packets the packets it received over its links.
	CPU     time.Duration
	Packets float64
	// RSS at the end of the window and the process's peak; FDs open then.
	RSS, PeakRSS int64
	FDs          int
}

// Result is what one run measured over its window.
type Result struct {
	Users   int
	Window  time.Duration
	Startup time.Duration // from the first engine's start to the window's start
	Nodes   []NodeCost
	// Engines is the CPU time of this process (the engines and the sampling) over the window,
	// and its RSS at the end.
	EnginesCPU time.Duration
	EnginesRSS int64
	// Link counters summed over the engines, over the window.
	Loops, LoopsReturned, LoopsLost uint64
	RealPackets, SendDrops, Drops   uint64
	Retrieves, Links                uint64
	// Silent counts engines none of whose loops returned in the window; Down those whose link
	// was not up at its end.
	Silent, Down int
	// Load is the load averages (1, 5, 15 minutes) at the window's end: the machine is
	// shared, and what else ran shows there.
	Load string
}

// Provider returns the provider's cost.
func (r *Result) Provider() NodeCost {
	for _, n := range r.Nodes {
		if n.Role == "provider" {
			return n
		}
	}
	return NodeCost{}
}

type nodeProc struct {
	nd  *testnet.Node
	pid int
}

type sample struct {
	at      time.Time
	self    ProcSample
	nodes   []ProcSample
	packets []float64
	links   []client.LinkState
}

// Run starts a network with one provider, runs o.Users engines against it, measures o.Measure
// after o.Warmup, and stops everything.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Users < 1 {
		return nil, errors.New("scale: at least one user")
	}
	say := func(format string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "%s users=%d: %s\n", time.Now().UTC().Format("15:04:05"), o.Users, fmt.Sprintf(format, a...))
		}
	}
	const domain = "alpha.localhost"
	net, err := testnet.Start(ctx, testnet.Options{Dir: o.Dir, BinDir: o.BinDir, Providers: []string{domain}, Parameters: o.Parameters, LogLevel: "warn"})
	if err != nil {
		return nil, err
	}
	defer net.Stop()
	if _, err := net.WaitConsensus(ctx); err != nil {
		return nil, err
	}
	prov := net.Provider(domain)
	var procs []nodeProc
	for _, nd := range net.Nodes {
		pid, err := FindProcess(nd.Config)
		if err != nil {
			return nil, err
		}
		procs = append(procs, nodeProc{nd, pid})
	}
	say("network up; creating accounts")
	lks := make([]*keys.LinkPrivateKey, o.Users)
	for i := range lks {
		if lks[i], err = net.AddUser(prov, fmt.Sprintf("u%05d", i), 1<<20); err != nil {
			return nil, err
		}
	}
	pc, err := net.PKIClient()
	if err != nil {
		return nil, err
	}
	pctx, stopPKI := context.WithCancel(ctx)
	pdone := make(chan struct{})
	go func() { defer close(pdone); pc.Run(pctx) }()
	defer func() { stopPKI(); <-pdone }()

	dir, err := os.MkdirTemp(o.ClientDir, "scale-clients-")
	if err != nil {
		return nil, fmt.Errorf("scale: %w", err)
	}
	defer os.RemoveAll(dir)
	logFile, err := os.Create(filepath.Join(o.Dir, "engines.log"))
	if err != nil {
		return nil, fmt.Errorf("scale: %w", err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))
	engines := make([]*client.Engine, o.Users)
	for i := range engines {
		e, err := client.New(client.Config{DataDir: filepath.Join(dir, fmt.Sprintf("u%05d", i)), User: fmt.Sprintf("u%05d", i), Domain: domain, LinkKey: lks[i], PKI: pc, Logger: log, RetrieveInterval: o.RetrieveInterval})
		if err != nil {
			for _, e := range engines[:i] {
				e.Close()
			}
			return nil, err
		}
		engines[i] = e
	}
	say("%d engines created; starting them", o.Users)
	ectx, stopEngines := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, o.Users)
	started := time.Now()
	for _, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Run(ectx); err != nil {
				errs <- err
			}
		}()
	}
	defer func() {
		stopEngines()
		wg.Wait()
		for _, e := range engines {
			e.Close()
		}
	}()

	take := func() (*sample, error) {
		s := &sample{at: time.Now()}
		var err error
		if s.self, err = SampleProc(os.Getpid()); err != nil {
			return nil, err
		}
		for _, p := range procs {
			ps, err := SampleProc(p.pid)
			if err != nil {
				return nil, err
			}
			s.nodes = append(s.nodes, ps)
			v, err := fetchMetric(ctx, p.nd.Metrics, "mixd_packets_received_total")
			if err != nil {
				return nil, err
			}
			s.packets = append(s.packets, v)
		}
		for _, e := range engines {
			s.links = append(s.links, e.LinkState())
		}
		return s, nil
	}
	select {
	case <-time.After(o.Warmup):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	say("window of %v starts", o.Measure)
	a, err := take()
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(o.Measure):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b, err := take()
	if err != nil {
		return nil, err
	}
	select {
	case err := <-errs:
		return nil, fmt.Errorf("scale: an engine stopped: %w", err)
	default:
	}
	r := &Result{Users: o.Users, Window: b.at.Sub(a.at), Startup: a.at.Sub(started), EnginesCPU: b.self.CPU - a.self.CPU, EnginesRSS: b.self.RSS}
	for i, p := range procs {
		r.Nodes = append(r.Nodes, NodeCost{Name: p.nd.Name, Role: p.nd.Role, CPU: b.nodes[i].CPU - a.nodes[i].CPU, Packets: b.packets[i] - a.packets[i],
			RSS: b.nodes[i].RSS, PeakRSS: b.nodes[i].PeakRSS, FDs: b.nodes[i].FDs})
	}
	for i := range engines {
		x, y := a.links[i], b.links[i]
		r.Loops += y.Loops - x.Loops
		r.LoopsReturned += y.LoopsReturned - x.LoopsReturned
		r.LoopsLost += y.LoopsLost - x.LoopsLost
		r.RealPackets += y.RealPackets - x.RealPackets
		r.SendDrops += y.SendDrops - x.SendDrops
		r.Drops += y.Drops - x.Drops
		r.Retrieves += y.Retrieves - x.Retrieves
		r.Links += y.Links - x.Links
		if y.LoopsReturned == x.LoopsReturned {
			r.Silent++
		}
		if !y.Connected {
			r.Down++
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			r.Load = strings.Join(f[:3], " ")
		}
	}
	say("window done; stopping")
	return r, nil
}
