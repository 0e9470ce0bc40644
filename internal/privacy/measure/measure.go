// Package measure runs a local network with many users and records it from outside (issue 14):
// a pkg/testnet network, in-process pkg/client engines that each send one-fragment mails to
// random other users, and a capture of every link (internal/privacy/capture) while they run.
// The privacy measurement (internal/privacy/cmd/privacy) and the privacy guard test use it.
package measure

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/attack"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/capture"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// Options describe a measured run.
type Options struct {
	// Dir holds the network, the engines' stores, the capture and the traces.
	Dir string
	// BinDir holds the directory and mixd binaries (built with -tags privacytrace when the
	// run is traced).
	BinDir string
	// Params are the consensus parameters (nil: pkg/testnet's, the defaults with a 10 s epoch).
	Params *pki.Parameters
	// Users is the number of client engines, split between the two providers.
	Users int
	// RealGap is the mean of the exponential gap between a user's mails.
	RealGap time.Duration
	// Duration is how long users write mail; Drain how long the run goes on after, so that
	// the last mails arrive.
	Duration, Drain time.Duration
	// Contacts, when not 0, makes the first user (u001) write only to this many others (its
	// contacts, drawn at random), at gaps of mean TargetGap: the statistical disclosure
	// attack's target.
	Contacts  int
	TargetGap time.Duration
	// Split, when not 0, makes every client link leak: each write of the wire layer above
	// Split bytes leaves in two parts 5 ms apart, so an observer sees frames of two sizes.
	// Only for showing that the guard test can fail.
	Split int
	// Log receives progress lines (nil: none).
	Log func(format string, a ...any)
}

// Mail is one mail a user handed to its engine.
type Mail struct {
	From, To string
	Queued   time.Time
	ID       client.MessageID
	// Sent is when the engine marked the mail's only fragment sent (just before the packet's
	// send slot; zero if it was not), for labelling when the tracer is not built in.
	Sent time.Time
}

// Result is a finished run.
type Result struct {
	Params pki.Parameters
	// Users maps a user name to the loopback address its client's link comes from (the
	// observer tells users apart by address, as on a real network).
	Users map[string]netip.Addr
	// Nodes maps a node's identity (as the tracer writes it) to its name.
	Nodes map[string]string
	// Conns is the capture of every link (read back from PCAP, which holds the links to
	// Ports, when a Result is loaded from its JSON).
	Conns []capture.Conn `json:"-"`
	PCAP  string
	Ports []uint16
	// Dropped is the packets the kernel did not hand to the capture.
	Dropped int
	// Mails are the mails written, with their engine status at the end.
	Mails []Mail
	// Target and Contacts are the disclosure attack's target and its true contacts.
	Target   string
	Contacts []string
	// Start is when the engines started; MailStart and MailEnd bound the writing of mails.
	Start, MailStart, MailEnd time.Time
	// TraceFiles are the tracer's files (empty without the tag).
	TraceFiles []string
	// Elapsed is the run's wall-clock time.
	Elapsed time.Duration
}

// userAddr is user i's loopback address: 127.0.1.i+1 (Linux answers all of 127/8 on lo).
func userAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)})
}

// Run runs the network, the engines and the capture, and returns what was recorded.
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Users < 2 || o.Users > 250 {
		return nil, fmt.Errorf("measure: users %d not in [2, 250]", o.Users)
	}
	traceBase := filepath.Join(o.Dir, "trace")
	os.Setenv("PANORAMIX_PRIVACY_TRACE", traceBase)
	defer os.Unsetenv("PANORAMIX_PRIVACY_TRACE")
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	net, err := testnet.Start(sctx, testnet.Options{Dir: filepath.Join(o.Dir, "net"), BinDir: o.BinDir, Parameters: o.Params, LogLevel: "warn"})
	if err != nil {
		return nil, err
	}
	defer net.Stop()
	if _, err := net.WaitConsensus(sctx); err != nil {
		return nil, err
	}
	res := &Result{Params: net.Parameters(), Users: map[string]netip.Addr{}, Nodes: map[string]string{}}
	var ports []uint16
	var providers []*testnet.Node
	for _, nd := range net.Nodes {
		res.Nodes[nd.Identity.String()] = nd.Name
		ap, err := netip.ParseAddrPort(nd.Addr)
		if err != nil {
			return nil, fmt.Errorf("measure: node %s address %q: %w", nd.Name, nd.Addr, err)
		}
		ports = append(ports, ap.Port())
		if nd.Role == "provider" {
			providers = append(providers, nd)
		}
	}
	res.PCAP, res.Ports = filepath.Join(o.Dir, "links.pcap"), ports
	capt, err := capture.Start(ctx, capture.Options{Ports: ports, File: res.PCAP})
	if err != nil {
		return nil, err
	}
	stopCapture := func() error {
		if capt == nil {
			return nil
		}
		conns, dropped, err := capt.StopDropped()
		capt = nil
		res.Conns, res.Dropped = conns, dropped
		return err
	}
	defer stopCapture()

	pc, err := net.PKIClient()
	if err != nil {
		return nil, err
	}
	pctx, pcancel := context.WithCancel(ctx)
	pdone := make(chan struct{})
	go func() { defer close(pdone); pc.Run(pctx) }()
	defer func() { pcancel(); <-pdone }()

	type user struct {
		name   string
		domain string
		eng    *client.Engine
	}
	users := make([]*user, o.Users)
	ectx, ecancel := context.WithCancel(ctx)
	var ewg sync.WaitGroup
	defer func() {
		ecancel()
		ewg.Wait()
		for _, u := range users {
			if u != nil && u.eng != nil {
				u.eng.Close()
			}
		}
	}()
	for i := range users {
		prov := providers[i%len(providers)]
		name := fmt.Sprintf("u%03d", i+1)
		key, err := net.AddUser(prov, name, 1<<26)
		if err != nil {
			return nil, err
		}
		addr := userAddr(i)
		res.Users[name] = addr
		eng, err := client.New(client.Config{
			DataDir: filepath.Join(o.Dir, "users", name), User: name, Domain: prov.Domain, LinkKey: key, PKI: pc,
			Transport: sourceTransport{src: addr, split: o.Split}, Receive: true,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			return nil, err
		}
		users[i] = &user{name: name, domain: prov.Domain, eng: eng}
		ewg.Add(1)
		go func() {
			defer ewg.Done()
			if err := eng.Run(ectx); err != nil && ectx.Err() == nil {
				logf("engine %s stopped: %v", name, err)
			}
		}()
	}
	res.Start = time.Now()
	logf("%d engines started; mails for %v, mean gap %v per user", o.Users, o.Duration, o.RealGap)

	// Each user writes mails at exponential gaps to a user drawn uniformly among the others.
	res.MailStart = time.Now()
	end := res.MailStart.Add(o.Duration)
	var mu sync.Mutex
	var mwg sync.WaitGroup
	capacity := client.FragmentCapacity(res.Params.Geometry)
	var contacts []*user
	if o.Contacts > 0 {
		res.Target = users[0].name
		for _, j := range mrand.New(mrand.NewPCG(14, 14)).Perm(len(users) - 1)[:min(o.Contacts, len(users)-1)] {
			contacts = append(contacts, users[j+1])
			res.Contacts = append(res.Contacts, users[j+1].name)
		}
	}
	for i, u := range users {
		mwg.Add(1)
		go func() {
			defer mwg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(i)+1, 14))
			mean := o.RealGap
			if i == 0 && len(contacts) > 0 {
				mean = o.TargetGap
			}
			for {
				gap := time.Duration(rng.ExpFloat64() * float64(mean))
				if time.Now().Add(gap).After(end) {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(gap):
				}
				j := rng.IntN(len(users) - 1)
				if j >= i {
					j++
				}
				to := users[j]
				if i == 0 && len(contacts) > 0 {
					to = contacts[rng.IntN(len(contacts))]
				}
				body := make([]byte, min(1000, capacity))
				rand.Read(body)
				id, err := u.eng.Send(ctx, client.Destination{Domain: to.domain, Recipient: to.name, Service: "queue"}, body)
				if err != nil {
					logf("send %s -> %s: %v", u.name, to.name, err)
					continue
				}
				mu.Lock()
				res.Mails = append(res.Mails, Mail{From: u.name, To: to.name, Queued: time.Now(), ID: id})
				mu.Unlock()
			}
		}()
	}
	mwg.Wait()
	res.MailEnd = time.Now()
	logf("%d mails written; draining for %v", len(res.Mails), o.Drain)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(o.Drain):
	}
	byUser := map[string]*user{}
	for _, u := range users {
		byUser[u.name] = u
	}
	for i, m := range res.Mails {
		st, err := byUser[m.From].eng.Status(m.ID)
		if err == nil && st.Acknowledged > 0 {
			res.Mails[i].Sent = st.Updated
		}
	}
	if err := stopCapture(); err != nil {
		return nil, err
	}
	ecancel()
	ewg.Wait()
	res.TraceFiles, _ = filepath.Glob(traceBase + ".*")
	res.Elapsed = time.Since(start)
	return res, nil
}

// sourceTransport dials from a fixed loopback address, so that each user's link has its own
// address as on a real network; split > 0 makes the link leak (Options.Split).
type sourceTransport struct {
	src   netip.Addr
	split int
}

func (t sourceTransport) Listen(addr string) (net.Listener, error) {
	return nil, errors.New("measure: clients do not listen")
}

func (t sourceTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: t.src.AsSlice()}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil || t.split == 0 {
		return c, err
	}
	return &splitConn{Conn: c, split: t.split}, nil
}

var _ wire.Transport = sourceTransport{}

// splitConn writes what is longer than split in two parts with a pause between (a leak).
type splitConn struct {
	net.Conn
	split int
}

func (c *splitConn) Write(b []byte) (int, error) {
	if len(b) <= c.split {
		return c.Conn.Write(b)
	}
	n, err := c.Conn.Write(b[:c.split])
	if err != nil {
		return n, err
	}
	time.Sleep(5 * time.Millisecond)
	m, err := c.Conn.Write(b[c.split:])
	return n + m, err
}

// UserLinks returns, per user, the frames of its links to its provider (both directions, in
// time order), with the user's real sends given by reals, for windows within [from, to).
func (r *Result) UserLinks(reals map[string][]time.Time, from, to time.Time) []attack.UserLink {
	byAddr := map[netip.Addr]string{}
	for u, a := range r.Users {
		byAddr[a] = u
	}
	frames := map[string][]capture.Frame{}
	for _, c := range r.Conns {
		if u, ok := byAddr[c.Client.Addr()]; ok {
			frames[u] = append(frames[u], c.Frames...)
		}
	}
	var out []attack.UserLink
	for u := range r.Users {
		fs := frames[u]
		sort.SliceStable(fs, func(i, j int) bool { return fs[i].At.Before(fs[j].At) })
		rs := append([]time.Time{}, reals[u]...)
		sort.Slice(rs, func(i, j int) bool { return rs[i].Before(rs[j]) })
		out = append(out, attack.UserLink{User: u, Frames: fs, Reals: rs, Start: from, End: to})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// UpFrames returns, per user, the times of the frames its client sent (handshakes left out).
// With answered > 0 it leaves out the frames the provider answered within that time: the
// retrieve requests, which the provider answers at once while a packet gets no answer, so an
// observer can tell most of them from packets and drop them from its count.
func (r *Result) UpFrames(answered time.Duration) map[string][]time.Time {
	byAddr := map[netip.Addr]string{}
	for u, a := range r.Users {
		byAddr[a] = u
	}
	out := map[string][]time.Time{}
	for u := range r.Users {
		out[u] = nil
	}
	for _, c := range r.Conns {
		u, ok := byAddr[c.Client.Addr()]
		if !ok {
			continue
		}
		for i, f := range c.Frames {
			if !f.FromClient || f.Handshake {
				continue
			}
			if answered > 0 && i+1 < len(c.Frames) && !c.Frames[i+1].FromClient && c.Frames[i+1].At.Sub(f.At) <= answered {
				continue
			}
			out[u] = append(out[u], f.At)
		}
	}
	for u := range out {
		ts := out[u]
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return out
}

// Load reads a Result saved as JSON (by the privacy command, beside its capture and traces)
// and its capture file.
func Load(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("measure: %s: %w", path, err)
	}
	f, err := os.Open(r.PCAP)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r.Conns, err = capture.Analyze(bufio.NewReaderSize(f, 1<<20), r.Ports)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Save writes r as JSON (without Conns, which Load reads back from the capture file).
func (r *Result) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
