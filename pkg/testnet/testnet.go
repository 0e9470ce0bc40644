// Package testnet runs a whole local PANORAMIX network from the real binaries: one directory
// authority, three layers of mixes and providers, all on loopback ports with configurations
// written into one working directory. The integration tests use it, and so does
// `mixctl testnet up` (and with it `make run`).
//
// It starts programs; it never imports them (pkg/ does not import daemons). What it writes are
// the programs' documented configuration files (configs/directory.toml, configs/mixd-*.toml).
package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/childproc"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// Programs are the binaries a network needs.
var Programs = []string{"directory", "mixd"}

// MailPrograms are the binaries a network with users needs (StartMailproxy).
var MailPrograms = []string{"directory", "mixd", "mailproxy"}

// Build compiles the programs of the module at repo into binDir with `go build`.
func Build(ctx context.Context, repo, binDir string, programs ...string) error {
	if len(programs) == 0 {
		programs = Programs
	}
	args := []string{"build", "-o", binDir + string(filepath.Separator)}
	// PANORAMIX_BUILD_TAGS builds test-only variants, such as the privacy measurement's
	// tracer (-tags privacytrace, internal/privacy/trace).
	if tags := os.Getenv("PANORAMIX_BUILD_TAGS"); tags != "" {
		args = append(args, "-tags", tags)
	}
	for _, p := range programs {
		args = append(args, "./"+p)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("testnet: go build: %w\n%s", err, out)
	}
	return nil
}

// RepoRoot finds the module root from the working directory (for tests and `make run`).
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testnet: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("testnet: not inside the panoramix module; run from the repository")
	}
	return filepath.Dir(mod), nil
}

// Options describe the network.
type Options struct {
	// Dir is the working directory for configs, keys, data and logs (created if needed).
	Dir string
	// BinDir holds the directory and mixd binaries.
	BinDir string
	// MixesPerLayer is the number of mixes in each of the three layers (default 1).
	MixesPerLayer int
	// Providers are the providers' mail domains (default alpha.localhost, beta.localhost).
	Providers []string
	// Parameters are the consensus parameters (default: pki.DefaultParameters with a 10 s epoch).
	Parameters *pki.Parameters
	// LogLevel for every program (default "info").
	LogLevel string
	// Vote enables the ballot box ([vote] enabled = true) on every provider; its box
	// directory is the provider's DataDir/vote.
	Vote bool
	// SurveyPostgres maps a provider's domain to the PostgreSQL connection string its survey
	// service stores into ([survey] database = "postgres"); the other providers keep the
	// embedded SQLite file.
	SurveyPostgres map[string]string
	// BasePort, when not 0, puts the network on consecutive loopback ports from BasePort (the
	// directory's listen and admin ports, then PortsPerNode per node): addresses a person
	// configures once. 0 takes free ports. A directory that holds a StateFile keeps its ports.
	BasePort int
	// ProviderConfig maps a provider's domain to TOML appended to its mixd configuration (for
	// example [[plugin]] sections).
	ProviderConfig map[string]string
	// Extra are nodes started besides the network's own, for tests of a hostile node the
	// directory approved; WaitConsensus does not wait for them, and Provider never returns one.
	Extra []ExtraNode
}

// ExtraNode is a node that runs as Role (a provider of Domain) while the directory approves it
// as ApprovedRole (a provider of ApprovedDomains): an approved node that lies about itself.
type ExtraNode struct {
	Name            string
	Role            string // "mix" or "provider"
	Domain          string // providers only
	ApprovedRole    string
	ApprovedDomains []string
	// IdentityBelow names a node of the network; the extra node's identity key is drawn until
	// it sorts below that node's, so that a client choosing among duplicates by identity order
	// would choose the extra node.
	IdentityBelow string
}

// Node is one started mixd.
type Node struct {
	Name     string
	Role     string // "mix" or "provider"
	Domain   string // providers only
	Identity keys.IdentityPublicKey
	Addr     string // link address
	Metrics  string // metrics address (host:port)
	Admin    string // admin API address, providers only
	// AdminToken is the admin API's token file (mixd writes it at start), providers only.
	AdminToken string
	IMAP       string // built-in IMAP server (STARTTLS), providers only
	// Autoconfig serves Thunderbird's autoconfiguration over HTTP, providers only.
	Autoconfig string
	// UserSMTP is the SMTP address of the mailproxy of the provider's first user, which the
	// provider's autoconfiguration names (StartMailproxy listens there when it is free).
	UserSMTP string
	// Cert and Key are the provider's IMAP certificate, issued by the network's CA.
	Cert, Key string
	Config    string
	DataDir   string
	// ApprovedRole and ApprovedDomains are what the directory approves the node as: its own
	// Role and Domain, except for an Options.Extra node.
	ApprovedRole    string
	ApprovedDomains []string
	// Extra marks a node of Options.Extra.
	Extra bool
	proc  *proc
}

// Net is a running network.
type Net struct {
	opts      Options
	Authority keys.IdentityPublicKey
	DirURL    string
	DirAdmin  string
	// DirAdminToken is the directory's admin token file (written at its start).
	DirAdminToken string
	DirConfig     string
	// CA is the network's certificate authority, kept in Dir/ca.
	CA     *CA
	Nodes  []*Node
	dir    *proc
	params pki.Parameters

	mu          sync.Mutex
	mailproxies []*Mailproxy // started by StartMailproxy; stopped first by Stop
}

// proc is one child process of the network with its log file. Its start and stop, not
// childproc.Proc's Start and Stop, are what this package calls: they add the package's prefix to
// the errors.
type proc struct {
	childproc.Proc // Name, Log, Running, Pid

	bin  string
	args []string
}

func newProc(name, bin, log string, args ...string) *proc {
	return &proc{Proc: childproc.Proc{Name: name, Log: log}, bin: bin, args: args}
}

func (p *proc) start() error {
	if err := p.Start(exec.Command(p.bin, p.args...)); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return nil
}

// stop sends sig and waits up to timeout; it reports an unclean exit as an error.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) error {
	if err := p.Stop(sig, timeout); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return nil
}

// Start writes the configurations, starts the directory and every node, and returns once all
// processes run (not yet once a consensus exists: see WaitConsensus).
func Start(ctx context.Context, opts Options) (*Net, error) {
	if opts.MixesPerLayer == 0 {
		opts.MixesPerLayer = 1
	}
	if len(opts.Providers) == 0 {
		opts.Providers = []string{"alpha.localhost", "beta.localhost"}
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	params := pki.DefaultParameters()
	params.EpochLength = 10 * time.Second
	if opts.Parameters != nil {
		params = *opts.Parameters
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	for _, p := range Programs {
		if _, err := os.Stat(filepath.Join(opts.BinDir, p)); err != nil {
			return nil, fmt.Errorf("testnet: binary %s missing in %s (build with testnet.Build): %w", p, opts.BinDir, err)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	n := &Net{opts: opts, params: params}

	dirData := filepath.Join(opts.Dir, "directory")
	if err := os.MkdirAll(dirData, 0o700); err != nil {
		return nil, err
	}
	// The authority key stays in the directory's data: a resumed network is the same network,
	// whose documents its mailproxies' configurations already trust.
	authFile := filepath.Join(dirData, "authority.key")
	authKey, err := keys.LoadIdentityKey(authFile)
	if errors.Is(err, fs.ErrNotExist) {
		if authKey, err = keys.GenerateIdentityKey(rand.Reader); err == nil {
			err = keys.SaveIdentityKey(authFile, authKey)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("testnet: authority key: %w", err)
	}
	n.Authority = authKey.Public()
	authKey.Wipe()

	regular := 3*opts.MixesPerLayer + len(opts.Providers)
	count := regular + len(opts.Extra)
	var belows []string
	for i := range count {
		nd := &Node{Role: "mix"}
		var below string
		switch {
		case i < 3*opts.MixesPerLayer:
			nd.Name = fmt.Sprintf("mix%d", i+1)
		case i < regular:
			nd.Role = "provider"
			nd.Domain = opts.Providers[i-3*opts.MixesPerLayer]
			nd.Name = "provider-" + strings.Split(nd.Domain, ".")[0]
		default:
			x := opts.Extra[i-regular]
			nd.Name, nd.Role, nd.Domain, nd.Extra, below = x.Name, x.Role, x.Domain, true, x.IdentityBelow
			nd.ApprovedRole, nd.ApprovedDomains = x.ApprovedRole, x.ApprovedDomains
		}
		n.Nodes = append(n.Nodes, nd)
		belows = append(belows, below)
	}
	st, err := loadState(opts.Dir)
	if err != nil {
		return nil, err
	}
	if st != nil && !st.sameLayout(n.Nodes) {
		return nil, fmt.Errorf("testnet: %s holds a network of other nodes (%s); start over in an empty directory", opts.Dir, StateFile)
	}
	if st == nil {
		if st, err = allocate(opts.BasePort, n.Nodes); err != nil {
			return nil, err
		}
	}
	n.DirURL, n.DirAdmin = "http://"+st.Directory, st.DirectoryAdmin
	n.DirAdminToken = filepath.Join(dirData, "admin.token") // the directory's default
	if n.CA, err = ensureCA(filepath.Join(opts.Dir, "ca")); err != nil {
		return nil, err
	}
	nodes := n.Nodes
	n.Nodes = nil
	for i, nd := range nodes {
		ns := st.Nodes[i]
		nd.Addr, nd.Metrics = ns.Addr, ns.Metrics
		if nd.Role == "provider" {
			nd.Admin, nd.IMAP, nd.Autoconfig, nd.UserSMTP = ns.Admin, ns.IMAP, ns.Autoconfig, ns.UserSMTP
			nd.AdminToken = filepath.Join(opts.Dir, nd.Name, "admin.token") // mixd's default
		}
		if !nd.Extra {
			nd.ApprovedRole = nd.Role
			if nd.Domain != "" {
				nd.ApprovedDomains = []string{nd.Domain}
			}
		}
		nd.DataDir = filepath.Join(opts.Dir, nd.Name)
		if _, err := os.Stat(filepath.Join(nd.DataDir, "identity.key")); belows[i] != "" && errors.Is(err, fs.ErrNotExist) {
			if err := identityBelow(nd.DataDir, n.Node(belows[i])); err != nil {
				return nil, fmt.Errorf("testnet: %s: %w", nd.Name, err)
			}
		}
		if nd.Role == "provider" {
			if err := os.MkdirAll(nd.DataDir, 0o700); err != nil {
				return nil, err
			}
			nd.Cert, nd.Key = filepath.Join(nd.DataDir, "imap.crt"), filepath.Join(nd.DataDir, "imap.key")
			if err := n.CA.issue(nd.Cert, nd.Key, providerNames(nd.Domain), []string{nd.IMAP}); err != nil {
				return nil, fmt.Errorf("testnet: %s certificate: %w", nd.Name, err)
			}
		}
		nd.Config = filepath.Join(opts.Dir, nd.Name+".toml")
		if err := os.WriteFile(nd.Config, []byte(n.mixdConfig(nd)), 0o644); err != nil {
			return nil, err
		}
		out, err := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "mixd"), "--config", nd.Config, "--print-identity").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("testnet: mixd --print-identity for %s: %w\n%s", nd.Name, err, out)
		}
		if nd.Identity, err = keys.ParseIdentityPublicKey(strings.TrimSpace(string(out))); err != nil {
			return nil, fmt.Errorf("testnet: identity of %s: %w", nd.Name, err)
		}
		n.Nodes = append(n.Nodes, nd)
	}
	if err := st.save(opts.Dir); err != nil {
		return nil, err
	}
	dirListen, dirAdmin := st.Directory, st.DirectoryAdmin

	n.DirConfig = filepath.Join(opts.Dir, "directory.toml")
	if err := os.WriteFile(n.DirConfig, []byte(n.directoryConfig(dirListen, dirAdmin)), 0o644); err != nil {
		return nil, err
	}
	n.dir = newProc("directory", filepath.Join(opts.BinDir, "directory"), filepath.Join(opts.Dir, "directory.log"), "--config", n.DirConfig)
	if err := n.dir.start(); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, n.DirURL+"/status", n.dir); err != nil {
		n.Stop()
		return nil, err
	}
	for _, nd := range n.Nodes {
		nd.proc = newProc(nd.Name, filepath.Join(opts.BinDir, "mixd"), filepath.Join(opts.Dir, nd.Name+".log"), "--config", nd.Config)
		if err := nd.proc.start(); err != nil {
			n.Stop()
			return nil, err
		}
	}
	return n, nil
}

// identityBelow writes an identity key into dataDir (where mixd looks for it) whose public key
// sorts below other's.
func identityBelow(dataDir string, other *Node) error {
	if other == nil {
		return errors.New("IdentityBelow names no node started before this one")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	// Each draw is below with probability (other's identity)/2^256: a thousand draws fail only
	// for an identity in the lowest part in a thousand.
	for range 1000 {
		k, err := keys.GenerateIdentityKey(rand.Reader)
		if err != nil {
			return err
		}
		pub := k.Public()
		if bytes.Compare(pub[:], other.Identity[:]) < 0 {
			err := keys.SaveIdentityKey(filepath.Join(dataDir, "identity.key"), k)
			k.Wipe()
			return err
		}
		k.Wipe()
	}
	return fmt.Errorf("no identity below %s's %s in 1000 draws", other.Name, other.Identity)
}

func (n *Net) mixdConfig(nd *Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\nrole = %q\ndata_dir = %q\nlisten_address = %q\nmetrics_address = %q\nlog_level = %q\nmax_packet_rate = 5000\n",
		nd.Role, nd.DataDir, nd.Addr, nd.Metrics, n.opts.LogLevel)
	if nd.Admin != "" {
		fmt.Fprintf(&b, "admin_address = %q\n", nd.Admin)
	}
	fmt.Fprintf(&b, "\n[sphinx]\nhops = %d\npayload_size = %d\n", n.params.Geometry.Hops, n.params.Geometry.PayloadSize)
	fmt.Fprintf(&b, "\n[directory]\nurls = [%q]\nauthorities = [%q]\nthreshold = 1\nepoch_length = %q\n", n.DirURL, n.Authority.String(), n.params.EpochLength.String())
	if nd.Role == "provider" {
		fmt.Fprintf(&b, "\n[provider]\ndomains = [%q]\n", nd.Domain)
		fmt.Fprintf(&b, "\n[mailbox]\nbackend = \"embedded\"\n\n[imap]\nlisten_address = %q\ncert_file = %q\nkey_file = %q\n", nd.IMAP, nd.Cert, nd.Key)
		// Thunderbird's autoconfiguration names this IMAP server and the mailproxy of the
		// provider's first user (docs: contrib/thunderbird/README.md).
		fmt.Fprintf(&b, "\n[autoconfig]\nlisten_address = %q\nsmtp_address = %q\n", nd.Autoconfig, nd.UserSMTP)
		if n.opts.Vote {
			b.WriteString("\n[vote]\nenabled = true\n")
		}
		if dsn, ok := n.opts.SurveyPostgres[nd.Domain]; ok {
			fmt.Fprintf(&b, "\n[survey]\ndatabase = \"postgres\"\ndsn = %q\n", dsn)
		}
		if extra, ok := n.opts.ProviderConfig[nd.Domain]; ok {
			b.WriteString("\n" + extra + "\n")
		}
	}
	return b.String()
}

func (n *Net) directoryConfig(listen, admin string) string {
	var b strings.Builder
	p := n.params
	fmt.Fprintf(&b, "version = 1\nidentity_key_file = %q\ndata_dir = %q\nlisten_address = %q\nadmin_address = %q\nthreshold = 1\nlog_level = %q\n",
		filepath.Join(n.opts.Dir, "directory", "authority.key"), filepath.Join(n.opts.Dir, "directory"), listen, admin, n.opts.LogLevel)
	// Each node is approved with its role and, for a provider, its domain (docs/spec/pki.md
	// section 9): mixes in approved, providers in [[approved_providers]].
	b.WriteString("approved = [")
	sep := ""
	for _, nd := range n.Nodes {
		if nd.ApprovedRole == "mix" {
			fmt.Fprintf(&b, "%s%q", sep, nd.Identity.String())
			sep = ", "
		}
	}
	b.WriteString("]\n")
	for _, nd := range n.Nodes {
		if nd.ApprovedRole == "provider" {
			fmt.Fprintf(&b, "\n[[approved_providers]]\nidentity = %q\ndomains = [", nd.Identity.String())
			for i, d := range nd.ApprovedDomains {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%q", d)
			}
			b.WriteString("]\n")
		}
	}
	b.WriteString("\n[parameters]\n")
	fmt.Fprintf(&b, "epoch_length = %q\nhops = %d\npayload_size = %d\nlambda_p = %v\nlambda_l = %v\nlambda_d = %v\nlambda_m = %v\nmean_delay = %q\nmax_delay = %q\n",
		p.EpochLength.String(), p.Geometry.Hops, p.Geometry.PayloadSize, p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM, p.MeanDelay.String(), p.MaxDelay.String())
	return b.String()
}

func waitHTTP(ctx context.Context, url string, p *proc) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if !p.Running() {
			return fmt.Errorf("testnet: %s exited at start; see %s", p.Name, p.Log)
		}
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("testnet: %s did not answer %s; see %s", p.Name, url, p.Log)
}

// Parameters are the network's consensus parameters.
func (n *Net) Parameters() pki.Parameters { return n.params }

// PKIClient returns a consensus client that trusts this network's authority.
func (n *Net) PKIClient() (*pki.Client, error) {
	return pki.NewClient(pki.ClientConfig{URLs: []string{n.DirURL}, Authorities: []keys.IdentityPublicKey{n.Authority}, Threshold: 1, EpochLength: n.params.EpochLength})
}

// WaitConsensus waits until the current epoch's document lists every node, and returns it.
func (n *Net) WaitConsensus(ctx context.Context) (*pki.Document, error) {
	c, err := n.PKIClient()
	if err != nil {
		return nil, err
	}
	for {
		for _, p := range n.procs() {
			if !p.Running() {
				return nil, fmt.Errorf("testnet: %s exited; see %s", p.Name, p.Log)
			}
		}
		d, err := c.Current(ctx)
		if err == nil && n.lists(d) && n.providersListen() {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("testnet: no consensus with all %d nodes: %w (last: %v)", n.regular(), ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// providersListen reports whether every provider's admin API accepts connections: a resumed
// network finds the directory's document listing every node at once, before the nodes are up.
func (n *Net) providersListen() bool {
	for _, nd := range n.Nodes {
		if nd.Admin == "" || nd.Extra {
			continue
		}
		c, err := net.DialTimeout("tcp", nd.Admin, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// lists reports whether d lists every node of the network but the extra ones.
func (n *Net) lists(d *pki.Document) bool {
	for _, nd := range n.Nodes {
		if _, ok := d.Node(nd.Identity); !ok && !nd.Extra {
			return false
		}
	}
	return true
}

// regular counts the nodes that are not extra.
func (n *Net) regular() int {
	k := 0
	for _, nd := range n.Nodes {
		if !nd.Extra {
			k++
		}
	}
	return k
}

func (n *Net) procs() []*proc {
	out := []*proc{n.dir}
	for _, nd := range n.Nodes {
		if nd.proc != nil {
			out = append(out, nd.proc)
		}
	}
	return out
}

// Node returns the node with the given name.
func (n *Net) Node(name string) *Node {
	for _, nd := range n.Nodes {
		if nd.Name == name {
			return nd
		}
	}
	return nil
}

// Kill stops a node with SIGKILL (no clean shutdown).
func (n *Net) Kill(nd *Node) error { return nd.proc.stop(syscall.SIGKILL, 10*time.Second) }

// Restart starts a stopped node again with the same configuration and data.
func (n *Net) Restart(nd *Node) error { return nd.proc.start() }

// AutoconfigURL is where the provider serves Thunderbird's autoconfiguration document.
func (nd *Node) AutoconfigURL() string {
	if nd.Autoconfig == "" {
		return ""
	}
	return "http://" + nd.Autoconfig + "/mail/config-v1.1.xml"
}

// Running reports whether the node's process is alive.
func (nd *Node) Running() bool { return nd.proc.Running() }

// Log is the path of the node's log file.
func (nd *Node) Log() string { return nd.proc.Log }

// Stop shuts every process down with SIGTERM and reports any that did not exit cleanly.
func (n *Net) Stop() error {
	var errs []error
	n.mu.Lock()
	mps := n.mailproxies
	n.mu.Unlock()
	for _, m := range mps {
		errs = append(errs, m.Stop())
	}
	for i := len(n.Nodes) - 1; i >= 0; i-- {
		if p := n.Nodes[i].proc; p != nil {
			errs = append(errs, p.stop(syscall.SIGTERM, 15*time.Second))
		}
	}
	if n.dir != nil {
		errs = append(errs, n.dir.stop(syscall.SIGTERM, 15*time.Second))
	}
	return errors.Join(errs...)
}

// Describe says what runs where, for people.
func (n *Net) Describe(w io.Writer) {
	fmt.Fprintf(w, "directory   %s   (status page %s/status; config %s)\n", n.DirURL, n.DirURL, n.DirConfig)
	fmt.Fprintf(w, "authority   %s\n", n.Authority)
	for _, nd := range n.Nodes {
		extra := ""
		if nd.Role == "provider" {
			extra = fmt.Sprintf(" domain %s, admin %s, IMAP (STARTTLS) %s, autoconfig %s,", nd.Domain, nd.Admin, nd.IMAP, nd.AutoconfigURL())
		}
		fmt.Fprintf(w, "%-11s %-8s link %s,%s metrics http://%s/metrics, log %s\n", nd.Name, nd.Role, nd.Addr, extra, nd.Metrics, nd.proc.Log)
	}
}
