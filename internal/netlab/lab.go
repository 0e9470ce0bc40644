package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/childproc"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// Programs are the binaries a lab runs (pkg/testnet.Build builds them into Options.BinDir).
var Programs = []string{"directory", "mixd", "mailproxy", "mixctl"}

// Subnet is the lab's network; each host has a fixed address in it.
const Subnet = "10.50.0.0/24"

// The ports are those of the examples in configs/, which docs/operators keeps: each host is a
// machine of its own, so every mix listens on 30001 as a real one would.
const (
	DirectoryPort = "7000"
	LinkPort      = "30001"
	AdminPort     = "30003" // providers' admin API, on the namespace's loopback only
	IMAPPort      = "143"
	SMTPPort      = "2525" // mailproxy, on the user's loopback only
)

// Host is one machine of the lab: a namespace with one address on the bridge.
type Host struct {
	Name string // "directory", "mix1", "provider-alpha", "alice", ...
	NS   string // its namespace
	Addr string // its address on the bridge (10.50.0.x)
	// Domain is a provider's mail domain.
	Domain string
	// Identity is a node's identity key (mixes and providers).
	Identity keys.IdentityPublicKey
	// Daemon is the program it runs.
	Daemon *Daemon
	ports  []string // public ports, each reached through a relay
}

// Hosts are the lab's machines and addresses, in start order.
var hosts = []struct{ name, addr, domain string }{
	{"directory", "10.50.0.2", ""},
	{"mix1", "10.50.0.11", ""},
	{"mix2", "10.50.0.12", ""},
	{"mix3", "10.50.0.13", ""},
	{"provider-alpha", "10.50.0.21", "alpha.example"},
	{"provider-beta", "10.50.0.22", "beta.example"},
	{"alice", "10.50.0.31", ""},
	{"bob", "10.50.0.32", ""},
}

// Users are the lab's mail users, each on the host of the same name.
var Users = []string{"alice@alpha.example", "bob@beta.example"}

// Options describe a lab.
type Options struct {
	// Repo is the repository whose configs/ hold the examples (default: testnet.RepoRoot).
	Repo string
	// Dir holds configs, keys, data and logs; BinDir the Programs.
	Dir, BinDir string
	// Parameters are the consensus parameters (default FastParameters).
	Parameters *pki.Parameters
	// MinDelay and MaxDelay bound each link's one-way delay, drawn uniformly once per pair of
	// hosts at start; Jitter is added to each chunk, plus or minus (0, 0, 0: no delay).
	MinDelay, MaxDelay, Jitter time.Duration
	// Loss is the probability that a packet entering a namespace from the bridge is dropped.
	Loss float64
	// AckSlack, RetryBudget and RetrieveInterval go to each mailproxy account (0: defaults).
	AckSlack         time.Duration
	RetryBudget      int
	RetrieveInterval time.Duration
	// LogLevel of every program (default "info").
	LogLevel string
	// Log receives progress lines for people (nil: discarded).
	Log io.Writer
}

// FastParameters are consensus parameters for tests: 5 s epochs, 20 ms mean delay per hop,
// lambda_P 10/s (as the mailproxy tests).
func FastParameters() pki.Parameters {
	p := pki.DefaultParameters()
	p.EpochLength = 5 * time.Second
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = 10, 2, 2, 2
	return p
}

// User is one mail user with a mailproxy on a host of its own.
type User struct {
	Address, Password string
	Host              *Host // where its mailproxy runs
	Provider          *Host
}

// Lab is a running namespace network.
type Lab struct {
	opts      Options
	params    pki.Parameters
	prefix    string
	bridgeNS  string
	Hosts     []*Host
	Users     []*User
	Authority keys.IdentityPublicKey
	CA        *testnet.CA

	links map[[2]string]Link // by linkKey

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // relays
	mu     sync.Mutex
	loss   float64
}

// Start builds the namespaces, bridge and relays, writes every configuration from configs/,
// starts the directory, mixes and providers, waits for a consensus that lists every node,
// then creates the users the operator's way (mailproxy init, mixctl user add) and starts their
// mailproxies. On error everything made so far is removed.
func Start(ctx context.Context, o Options) (l *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("netlab: network namespaces need root")
	}
	for _, p := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(p); err != nil {
			return nil, fmt.Errorf("netlab: %s missing (apt-get install -y iproute2 iptables): %w", p, err)
		}
	}
	if o.Repo == "" {
		if o.Repo, err = testnet.RepoRoot(); err != nil {
			return nil, err
		}
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.MaxDelay < o.MinDelay {
		return nil, fmt.Errorf("netlab: max delay %v below min delay %v", o.MaxDelay, o.MinDelay)
	}
	params := FastParameters()
	if o.Parameters != nil {
		params = *o.Parameters
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	for _, p := range Programs {
		if _, err := os.Stat(filepath.Join(o.BinDir, p)); err != nil {
			return nil, fmt.Errorf("netlab: binary %s missing in %s (build with testnet.Build): %w", p, o.BinDir, err)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if gone, err := Sweep(); err != nil {
		fmt.Fprintf(o.Log, "netlab: sweeping stale namespaces: %v\n", err)
	} else if len(gone) > 0 {
		fmt.Fprintf(o.Log, "netlab: removed %d stale namespaces of ended runs\n", len(gone))
	}
	l = &Lab{opts: o, params: params, prefix: runPrefix(), links: map[[2]string]Link{}, loss: o.Loss}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Stop())
			l = nil
		}
	}()
	if err := l.buildNetwork(); err != nil {
		return l, err
	}
	for i, a := range l.Hosts {
		for _, b := range l.Hosts[i+1:] {
			d := o.MinDelay
			if o.MaxDelay > o.MinDelay {
				d += time.Duration(mrand.Int64N(int64(o.MaxDelay-o.MinDelay) + 1))
			}
			l.links[linkKey(a, b)] = Link{Delay: d, Jitter: o.Jitter}
		}
	}
	if err := l.startNodes(ctx); err != nil {
		return l, err
	}
	if err := l.startUsers(ctx); err != nil {
		return l, err
	}
	return l, nil
}

// buildNetwork makes the bridge's namespace and each host's namespace, joined by veth pairs,
// with the iptables chains that loss and partitions fill.
func (l *Lab) buildNetwork() error {
	l.bridgeNS = l.prefix + "bridge"
	if err := ip("netns", "add", l.bridgeNS); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-n", l.bridgeNS, "link", "set", "lo", "up"},
		{"-n", l.bridgeNS, "link", "add", "br0", "type", "bridge"},
		{"-n", l.bridgeNS, "link", "set", "br0", "up"},
	} {
		if err := ip(args...); err != nil {
			return err
		}
	}
	for i, h := range hosts {
		host := &Host{Name: h.name, NS: l.prefix + h.name, Addr: h.addr, Domain: h.domain}
		if err := ip("netns", "add", host.NS); err != nil {
			return err
		}
		l.Hosts = append(l.Hosts, host)
		// Interface names are at most 15 bytes and live in the creating namespace first: a
		// random name there never meets another run's.
		var r [4]byte
		rand.Read(r[:])
		a, b := "pnx"+hex.EncodeToString(r[:])+"a", "pnx"+hex.EncodeToString(r[:])+"b"
		for _, args := range [][]string{
			{"link", "add", a, "type", "veth", "peer", "name", b},
			{"link", "set", a, "netns", host.NS},
			{"link", "set", b, "netns", l.bridgeNS},
			{"-n", l.bridgeNS, "link", "set", b, "name", fmt.Sprintf("h%d", i)},
			{"-n", l.bridgeNS, "link", "set", fmt.Sprintf("h%d", i), "master", "br0", "up"},
			{"-n", host.NS, "link", "set", a, "name", "eth0"},
			{"-n", host.NS, "addr", "add", host.Addr + "/24", "dev", "eth0"},
			{"-n", host.NS, "link", "set", "eth0", "up"},
			{"-n", host.NS, "link", "set", "lo", "up"},
		} {
			if err := ip(args...); err != nil {
				return err
			}
		}
		for _, args := range [][]string{
			{"iptables", "-N", "PNXLOSS"},
			{"iptables", "-N", "PNXCUT"},
			{"iptables", "-A", "INPUT", "-i", "eth0", "-j", "PNXCUT"},
			{"iptables", "-A", "OUTPUT", "-o", "eth0", "-j", "PNXCUT"},
			{"iptables", "-A", "INPUT", "-i", "eth0", "-j", "PNXLOSS"},
		} {
			if err := inNS(host.NS, args...); err != nil {
				return err
			}
		}
		if err := l.setLoss(host, l.loss); err != nil {
			return err
		}
	}
	return nil
}

// Host returns the host of the given name, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Link is the delay between two hosts.
func (l *Lab) Link(a, b *Host) Link { return l.links[linkKey(a, b)] }

// linkKey names the link between a and b, whichever way round.
func linkKey(a, b *Host) [2]string {
	if b.Addr < a.Addr {
		a, b = b, a
	}
	return [2]string{a.Addr, b.Addr}
}

// linkFrom is the delay of the link between host h and the peer at addr.
func (l *Lab) linkFrom(h *Host, addr net.Addr) Link {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return Link{}
	}
	for _, p := range l.Hosts {
		if p.Addr == ta.IP.String() {
			return l.Link(h, p)
		}
	}
	return Link{}
}

// relayPorts starts a relay on h's bridge address for each port, to the same port on h's
// loopback, where the daemon listens.
func (l *Lab) relayPorts(h *Host, ports ...string) error {
	for _, port := range ports {
		ln, err := listenNS(h.NS, net.JoinHostPort(h.Addr, port))
		if err != nil {
			return err
		}
		target := net.JoinHostPort("127.0.0.1", port)
		r := newRelay(ln, func(ctx context.Context) (net.Conn, error) { return dialNS(ctx, h.NS, target) },
			func(a net.Addr) Link { return l.linkFrom(h, a) })
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r.Run(l.ctx)
		}()
		h.ports = append(h.ports, port)
	}
	return nil
}

// SetLoss makes every namespace drop each packet from the bridge with probability p.
func (l *Lab) SetLoss(p float64) error {
	l.mu.Lock()
	l.loss = p
	l.mu.Unlock()
	var errs []error
	for _, h := range l.Hosts {
		errs = append(errs, l.setLoss(h, p))
	}
	return errors.Join(errs...)
}

func (l *Lab) setLoss(h *Host, p float64) error {
	if err := inNS(h.NS, "iptables", "-F", "PNXLOSS"); err != nil {
		return err
	}
	if p <= 0 {
		return nil
	}
	return inNS(h.NS, "iptables", "-A", "PNXLOSS", "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%.4f", p), "-j", "DROP")
}

// Partition cuts host h off the bridge (on) or joins it again (off): every packet it sends or
// receives there is dropped meanwhile.
func (l *Lab) Partition(h *Host, on bool) error {
	if err := inNS(h.NS, "iptables", "-F", "PNXCUT"); err != nil {
		return err
	}
	if on {
		return inNS(h.NS, "iptables", "-A", "PNXCUT", "-j", "DROP")
	}
	return nil
}

// Kill stops h's daemon with SIGKILL: no clean shutdown, as a crash or a power cut.
func (l *Lab) Kill(h *Host) error { return h.Daemon.stop(syscall.SIGKILL, 10*time.Second) }

// Restart starts h's daemon again from the same configuration and data.
func (l *Lab) Restart(h *Host) error { return h.Daemon.start() }

// Stop stops every daemon (users first, the directory last) with SIGTERM, ends the relays and
// deletes every namespace. It reports daemons that did not exit cleanly.
func (l *Lab) Stop() error {
	var errs []error
	for i := len(l.Hosts) - 1; i >= 0; i-- {
		if d := l.Hosts[i].Daemon; d != nil {
			errs = append(errs, d.stop(syscall.SIGTERM, 15*time.Second))
		}
	}
	l.cancel()
	l.wg.Wait()
	for _, h := range l.Hosts {
		errs = append(errs, deleteNS(h.NS))
	}
	if l.bridgeNS != "" {
		errs = append(errs, deleteNS(l.bridgeNS))
	}
	return errors.Join(errs...)
}

// dirURL is the directory's public API, as every other host reaches it.
func (l *Lab) dirURL() string {
	return "http://" + net.JoinHostPort(l.Host("directory").Addr, DirectoryPort)
}

// HTTPClient is a client whose connections start in h's namespace.
func (l *Lab) HTTPClient(h *Host) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dialNS(ctx, h.NS, addr) },
	}}
}

// Dial opens a TCP connection from h's namespace.
func (l *Lab) Dial(ctx context.Context, h *Host, addr string) (net.Conn, error) {
	return dialNS(ctx, h.NS, addr)
}

// PKIClient is a consensus client on host h.
func (l *Lab) PKIClient(h *Host) (*pki.Client, error) {
	return pki.NewClient(pki.ClientConfig{URLs: []string{l.dirURL()}, Authorities: []keys.IdentityPublicKey{l.Authority},
		Threshold: 1, EpochLength: l.params.EpochLength, HTTPClient: l.HTTPClient(h)})
}

// Nodes are the hosts that run mixd.
func (l *Lab) Nodes() []*Host {
	var out []*Host
	for _, h := range l.Hosts {
		if strings.HasPrefix(h.Name, "mix") || strings.HasPrefix(h.Name, "provider-") {
			out = append(out, h)
		}
	}
	return out
}

// Parameters are the lab's consensus parameters.
func (l *Lab) Parameters() pki.Parameters { return l.params }

// daemon sets up h's daemon record with its files in the lab's directory.
func (l *Lab) daemon(h *Host, bin string, args ...string) *Daemon {
	d := &Daemon{Name: h.Name, Host: h, Config: filepath.Join(l.opts.Dir, h.Name+".toml"),
		DataDir: filepath.Join(l.opts.Dir, h.Name), Log: filepath.Join(l.opts.Dir, h.Name+".log"),
		bin: filepath.Join(l.opts.BinDir, bin)}
	d.args = append(args, "--config", d.Config)
	d.proc = childproc.Proc{Name: d.Name, Log: d.Log, Spawn: onSpawnThread}
	h.Daemon = d
	return d
}

// startNodes writes the directory's and the nodes' configurations, starts them with their
// relays, and waits for a consensus that lists every node.
func (l *Lab) startNodes(ctx context.Context) error {
	o, p := l.opts, l.params
	var err error
	if l.CA, err = testnet.EnsureCA(filepath.Join(o.Dir, "ca")); err != nil {
		return err
	}
	dirHost := l.Host("directory")
	dd := l.daemon(dirHost, "directory")
	if err := os.MkdirAll(dd.DataDir, 0o700); err != nil {
		return err
	}
	// The authority key, as `mixctl dir keygen --out DATA_DIR` makes it (docs/operators/directory.md).
	authKey, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		return err
	}
	err = keys.SaveIdentityKey(filepath.Join(dd.DataDir, "authority.key"), authKey)
	l.Authority = authKey.Public()
	authKey.Wipe()
	if err != nil {
		return err
	}
	for _, h := range l.Nodes() {
		d := l.daemon(h, "mixd")
		role := "mix"
		if h.Domain != "" {
			role = "provider"
		}
		if err := os.MkdirAll(d.DataDir, 0o700); err != nil {
			return err
		}
		example, cert, key := "mixd-mix.toml", "", ""
		if role == "provider" {
			example = "mixd-provider.toml"
			cert, key = filepath.Join(d.DataDir, "imap.crt"), filepath.Join(d.DataDir, "imap.key")
			if err := l.CA.Issue(cert, key, []string{"imap." + h.Domain, h.Domain}, []string{net.JoinHostPort(h.Addr, IMAPPort)}); err != nil {
				return err
			}
		}
		set := mixdSettings(d.DataDir, h.Addr, h.Domain, l.dirURL(), l.Authority.String(), cert, key, p, o.LogLevel)
		if err := writeConfig(o.Repo, example, d.Config, set, ""); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, d.bin, "--config", d.Config, "--print-identity").CombinedOutput()
		if err != nil {
			return fmt.Errorf("netlab: mixd --print-identity for %s: %w\n%s", h.Name, err, out)
		}
		if h.Identity, err = keys.ParseIdentityPublicKey(strings.TrimSpace(string(out))); err != nil {
			return fmt.Errorf("netlab: identity of %s: %w", h.Name, err)
		}
	}
	var mixes []string
	var providers strings.Builder
	for _, h := range l.Nodes() {
		if h.Domain == "" {
			mixes = append(mixes, h.Identity.String())
		} else {
			fmt.Fprintf(&providers, "[[approved_providers]]\nidentity = %q\ndomains = %s\n\n", h.Identity.String(), qs(h.Domain))
		}
	}
	// [[approved_providers]] blocks go after the top-level keys, which TOML requires before
	// the first table: the example's [parameters] follows, so they are inserted before it.
	set := directorySettings(dd.DataDir, mixes, p, o.LogLevel)
	if err := writeConfig(o.Repo, "directory.toml", dd.Config, set, ""); err != nil {
		return err
	}
	if err := insertBefore(dd.Config, "[parameters]", providers.String()); err != nil {
		return err
	}
	if err := dd.start(); err != nil {
		return err
	}
	if err := l.relayPorts(dirHost, DirectoryPort); err != nil {
		return err
	}
	for _, h := range l.Nodes() {
		if err := h.Daemon.start(); err != nil {
			return err
		}
		ports := []string{LinkPort}
		if h.Domain != "" {
			ports = append(ports, IMAPPort)
		}
		if err := l.relayPorts(h, ports...); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Log, "netlab: directory, 3 mixes and 2 providers started in namespaces %s*; waiting for a consensus\n", l.prefix)
	wctx, cancel := context.WithTimeout(ctx, 3*p.EpochLength+60*time.Second)
	defer cancel()
	_, err = l.WaitConsensus(wctx, l.Host("alice"))
	return err
}

// insertBefore puts text before the line of file that equals line.
func insertBefore(file, line, text string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	i := slices.Index(lines, line)
	if i < 0 {
		return fmt.Errorf("netlab: %s has no line %q", file, line)
	}
	out := strings.Join(lines[:i], "\n") + "\n" + text + strings.Join(lines[i:], "\n")
	return os.WriteFile(file, []byte(out), 0o644)
}

// WaitConsensus waits until the current document, fetched from host from, lists every node,
// and every daemon runs.
func (l *Lab) WaitConsensus(ctx context.Context, from *Host) (*pki.Document, error) {
	c, err := l.PKIClient(from)
	if err != nil {
		return nil, err
	}
	for {
		for _, h := range l.Hosts {
			if h.Daemon != nil && !h.Daemon.Running() {
				return nil, fmt.Errorf("netlab: %s exited; see %s", h.Name, h.Daemon.Log)
			}
		}
		d, err := c.Current(ctx)
		if err == nil && l.listsAll(d) {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("netlab: no consensus listing every node: %w (last: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (l *Lab) listsAll(d *pki.Document) bool {
	for _, h := range l.Nodes() {
		if _, ok := d.Node(h.Identity); !ok {
			return false
		}
	}
	return true
}

var linkKeyLine = regexp.MustCompile(`mixctl user add (\S+) --link-key ([0-9a-f]{64})`)

// startUsers creates each user the way docs/operators says: the user runs `mailproxy init`,
// which prints the `mixctl user add` line the provider's operator runs on the provider's machine
// (the admin API is on its loopback), with `mixctl user passwd` for the IMAP password.
func (l *Lab) startUsers(ctx context.Context) error {
	o := l.opts
	for _, addr := range Users {
		name, domain, _ := strings.Cut(addr, "@")
		h := l.Host(name)
		var prov *Host
		for _, n := range l.Nodes() {
			if n.Domain == domain {
				prov = n
			}
		}
		var r [8]byte
		rand.Read(r[:])
		u := &User{Address: addr, Password: hex.EncodeToString(r[:]), Host: h, Provider: prov}
		d := l.daemon(h, "mailproxy", "run")
		if err := os.MkdirAll(d.DataDir, 0o700); err != nil {
			return err
		}
		set := mailproxySettings(d.DataDir, addr, l.dirURL(), l.Authority.String(), l.params, o)
		if err := writeConfig(o.Repo, "mailproxy.toml", d.Config, set, ""); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, d.bin, "init", "--config", d.Config).CombinedOutput()
		if err != nil {
			return fmt.Errorf("netlab: mailproxy init for %s: %w\n%s", addr, err, out)
		}
		m := linkKeyLine.FindStringSubmatch(string(out))
		if m == nil || m[1] != name {
			return fmt.Errorf("netlab: mailproxy init printed no registration line for %s:\n%s", name, out)
		}
		mixctl := filepath.Join(o.BinDir, "mixctl")
		admin := []string{"--admin", net.JoinHostPort("127.0.0.1", AdminPort), "--admin-token", filepath.Join(prov.Daemon.DataDir, "admin.token")}
		if err := inNS(prov.NS, append([]string{mixctl, "user", "add", name, "--link-key", m[2]}, admin...)...); err != nil {
			return err
		}
		pwFile := filepath.Join(d.DataDir, "imap.password")
		if err := os.WriteFile(pwFile, []byte(u.Password+"\n"), 0o600); err != nil {
			return err
		}
		if err := inNS(prov.NS, append([]string{mixctl, "user", "passwd", name, "--password-file", pwFile}, admin...)...); err != nil {
			return err
		}
		if err := d.start(); err != nil {
			return err
		}
		if err := l.waitSMTP(ctx, u); err != nil {
			return err
		}
		l.Users = append(l.Users, u)
	}
	fmt.Fprintf(o.Log, "netlab: users %s up\n", strings.Join(Users, ", "))
	return nil
}

// waitSMTP waits until u's mailproxy accepts connections.
func (l *Lab) waitSMTP(ctx context.Context, u *User) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !u.Host.Daemon.Running() {
			return fmt.Errorf("netlab: mailproxy of %s exited at start; see %s", u.Address, u.Host.Daemon.Log)
		}
		if c, err := dialNS(ctx, u.Host.NS, net.JoinHostPort("127.0.0.1", SMTPPort)); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("netlab: mailproxy of %s did not open its SMTP port; see %s", u.Address, u.Host.Daemon.Log)
}

// User returns the user of the given address, or nil.
func (l *Lab) User(addr string) *User {
	for _, u := range l.Users {
		if u.Address == addr {
			return u
		}
	}
	return nil
}

// Describe says what runs where, for people.
func (l *Lab) Describe(w io.Writer) {
	fmt.Fprintf(w, "namespaces %s* on a bridge in %s, subnet %s; authority %s\n", l.prefix, l.bridgeNS, Subnet, l.Authority)
	for _, h := range l.Hosts {
		extra := ""
		if h.Domain != "" {
			extra = " domain " + h.Domain + ", IMAP (STARTTLS) " + net.JoinHostPort(h.Addr, IMAPPort) + ","
		}
		fmt.Fprintf(w, "%-15s %-11s ns %s,%s public ports %v, config %s, log %s\n", h.Name, h.Addr, h.NS, extra, h.ports, h.Daemon.Config, h.Daemon.Log)
	}
	fmt.Fprintf(w, "one-way link delays (plus or minus %v jitter):", l.opts.Jitter)
	for i, a := range l.Hosts {
		for _, b := range l.Hosts[i+1:] {
			if d := l.Link(a, b).Delay; d > 0 {
				fmt.Fprintf(w, " %s-%s %v;", a.Name, b.Name, d.Round(time.Millisecond))
			}
		}
	}
	l.mu.Lock()
	fmt.Fprintf(w, "\nloss per packet entering a namespace: %.2f%%\n", 100*l.loss)
	l.mu.Unlock()
}

// mixdSettings are what an operator changes in configs/mixd-mix.toml (domain "") or
// configs/mixd-provider.toml for the machine at addr (docs/operators/mix.md and the provider
// pages), and what the lab changes besides: the daemon listens on its machine's loopback and the
// relay owns the public address (listen_address), and the consensus parameters are the lab's.
func mixdSettings(dataDir, addr, domain, dirURL, authority, cert, key string, p pki.Parameters, logLevel string) []setting {
	set := []setting{
		{Key: "data_dir", Value: q(dataDir)},
		{Key: "listen_address", Value: q(net.JoinHostPort("127.0.0.1", LinkPort))},
		{Key: "addresses", Value: qs(net.JoinHostPort(addr, LinkPort))},
		{Key: "log_level", Value: q(logLevel)},
		{Key: "sphinx.hops", Value: fmt.Sprint(p.Geometry.Hops)},
		{Key: "sphinx.payload_size", Value: fmt.Sprint(p.Geometry.PayloadSize)},
		{Key: "directory.urls", Value: qs(dirURL)},
		{Key: "directory.authorities", Value: qs(authority)},
		{Key: "directory.epoch_length", Value: q(p.EpochLength.String())},
	}
	if domain == "" {
		return set
	}
	return append(set,
		setting{Key: "admin_token_file", Value: q(filepath.Join(dataDir, "admin.token"))},
		setting{Key: "provider.domains", Value: qs(domain)},
		setting{Key: "imap.listen_address", Value: q(net.JoinHostPort("127.0.0.1", IMAPPort))},
		// STARTTLS on 143 only: one relay per port, and the tests read mail there.
		setting{Key: "imap.tls_listen_address", Value: q("")},
		setting{Key: "imap.cert_file", Value: q(cert)},
		setting{Key: "imap.key_file", Value: q(key)},
		setting{Key: "autoconfig.imap_host", Value: q(addr)},
		// The example's plugin is not installed here: docs/operators says to delete the section.
		setting{Key: "plugin", Drop: true},
	)
}

// directorySettings are what docs/operators/directory.md changes in configs/directory.toml,
// with the mixes approved in the file (providers go in [[approved_providers]] blocks) and the
// lab's consensus parameters.
func directorySettings(dataDir string, mixes []string, p pki.Parameters, logLevel string) []setting {
	return []setting{
		{Key: "identity_key_file", Value: q(filepath.Join(dataDir, "authority.key"))},
		{Key: "data_dir", Value: q(dataDir)},
		{Key: "listen_address", Value: q(net.JoinHostPort("127.0.0.1", DirectoryPort))},
		{Key: "admin_token_file", Value: q(filepath.Join(dataDir, "admin.token"))},
		{Key: "log_level", Value: q(logLevel)},
		{Key: "approved", Value: qs(mixes...)},
		{Key: "parameters.epoch_length", Value: q(p.EpochLength.String())},
		{Key: "parameters.hops", Value: fmt.Sprint(p.Geometry.Hops)},
		{Key: "parameters.payload_size", Value: fmt.Sprint(p.Geometry.PayloadSize)},
		{Key: "parameters.lambda_p", Value: fmt.Sprint(p.LambdaP)},
		{Key: "parameters.lambda_l", Value: fmt.Sprint(p.LambdaL)},
		{Key: "parameters.lambda_d", Value: fmt.Sprint(p.LambdaD)},
		{Key: "parameters.lambda_m", Value: fmt.Sprint(p.LambdaM)},
		{Key: "parameters.mean_delay", Value: q(p.MeanDelay.String())},
		{Key: "parameters.max_delay", Value: q(p.MaxDelay.String())},
	}
}

// mailproxySettings are what a user changes in configs/mailproxy.toml: the account, the
// network's directory, and (here) the engine's timing.
func mailproxySettings(dataDir, addr, dirURL, authority string, p pki.Parameters, o Options) []setting {
	name, _, _ := strings.Cut(addr, "@")
	return []setting{
		{Key: "data_dir", Value: q(dataDir)},
		{Key: "log_level", Value: q(o.LogLevel)},
		{Key: "smtp.listen_address", Value: q(net.JoinHostPort("127.0.0.1", SMTPPort))},
		{Key: "directory.urls", Value: qs(dirURL)},
		{Key: "directory.authorities", Value: qs(authority)},
		{Key: "directory.epoch_length", Value: q(p.EpochLength.String())},
		{Key: "accounts.address", Value: q(addr)},
		{Key: "accounts.link_key_file", Value: q(filepath.Join(dataDir, name+".link.key"))},
		{Key: "accounts.retry_budget", Value: fmt.Sprint(o.RetryBudget)},
		{Key: "accounts.ack_slack", Value: q(o.AckSlack.String())},
		{Key: "accounts.retrieve_interval", Value: q(o.RetrieveInterval.String())},
		// The mail stays at the provider, whose IMAP server the tests read (issue 20's reading
		// through the link is tested by mailproxy's own tests).
		{Key: "mailbox.read_via_link", Value: "false", Add: true},
	}
}
