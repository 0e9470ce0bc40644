package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/internal/freeport"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// The integration tests run the real programs: a testnet (directory and mixd, pkg/testnet), this
// filter's binary, and a throw-away Postfix instance (as in the project's verified recipe) whose
// ordinary next hop is an smtp-sink.

const postfixInstall = `apt-get update && echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && ` +
	`echo "postfix postfix/mailname string localhost.localdomain" | debconf-set-selections && ` +
	`DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix`

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func buildBinaries(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		repo, err := testnet.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, buildErr = os.MkdirTemp("", "pf-bin-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		buildErr = testnet.Build(ctx, repo, binDir, "directory", "mixd", "postfix-filter")
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binDir
}

func needPostfix(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts Postfix and the real binaries")
	}
	for _, p := range []string{"postfix", "smtp-sink", "smtp-source", "postqueue"} {
		if _, err := exec.LookPath(p); err != nil {
			tb.Skipf("%s missing: install Postfix with: %s", p, postfixInstall)
		}
	}
	if _, err := exec.LookPath("python3"); err != nil {
		tb.Skip("python3 missing: apt-get install -y python3")
	}
	if os.Geteuid() != 0 {
		tb.Skip("a throw-away Postfix instance must be started as root")
	}
}

func freeAddrs(tb testing.TB, n int) []string {
	out, err := freeport.Addrs(n)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// env is one whole set-up: mixnet, filter, Postfix, sink.
type env struct {
	tb      testing.TB
	net     *testnet.Net
	dir     string // Postfix instance, world-traversable for the postfix user
	smtpIn  string // Postfix's submission smtpd (contrib/postfix: the filter applies here only)
	mxIn    string // Postfix's MX smtpd, as on port 25: mail from the internet
	filter  string // the filter's listener
	reinj   string // Postfix's re-injection smtpd
	metrics string // the filter's /metrics
	sinkDir string
	fcfg    string // the filter's config file
	flog    string // the filter's log file
	fproc   *exec.Cmd
	fdone   chan error
	sinkCmd *exec.Cmd
}

// Ways of filtering, as in contrib/postfix: the master.cf snippet of the submission service.
const (
	filterAll    = "master.cf-filter-all"
	filterHeader = "master.cf-filter-header"
)

// startEnv starts a testnet whose clients send at lambdaP (fragments per second), the filter
// with log level logLevel, and Postfix filtering in mode.
func startEnv(tb testing.TB, logLevel, mode string, lambdaP float64) *env {
	tb.Helper()
	needPostfix(tb)
	bin := buildBinaries(tb)
	e := &env{tb: tb}

	p := pki.DefaultParameters()
	p.EpochLength = 5 * time.Second
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaP = lambdaP
	p.LambdaM = 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := testnet.Start(ctx, testnet.Options{Dir: tb.TempDir(), BinDir: bin, Parameters: &p, LogLevel: "info"})
	if err != nil {
		tb.Fatal(err)
	}
	e.net = n
	tb.Cleanup(func() {
		if err := n.Stop(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() {
			for _, nd := range n.Nodes {
				if b, err := os.ReadFile(nd.Log()); err == nil {
					tb.Logf("--- %s log (tail) ---\n%s", nd.Name, tail(b, 2000))
				}
			}
		}
	})
	if _, err := n.WaitConsensus(ctx); err != nil {
		tb.Fatal(err)
	}
	beta := n.Provider("beta.localhost")
	if _, err := n.AddUser(beta, "bob", 64<<20); err != nil {
		tb.Fatal(err)
	}
	if err := n.SetPassword(beta, "bob", "correct horse battery"); err != nil {
		tb.Fatal(err)
	}

	e.dir, err = os.MkdirTemp("", "pf-postfix-")
	if err != nil {
		tb.Fatal(err)
	}
	os.Chmod(e.dir, 0o755)
	tb.Cleanup(func() { os.RemoveAll(e.dir) })
	addrs := freeAddrs(tb, 6)
	e.smtpIn, e.filter, e.reinj, e.metrics, e.mxIn = addrs[0], addrs[1], addrs[2], addrs[4], addrs[5]
	sinkAddr := addrs[3]

	// The filter: its own account at alpha, keyed with --gen-key.
	fdir := filepath.Join(tb.TempDir(), "filter")
	os.MkdirAll(fdir, 0o700)
	e.fcfg = filepath.Join(fdir, "postfix-filter.toml")
	cfg := fmt.Sprintf(`version = 1
data_dir = "data"
listen_address = %q
reinject_address = %q
hostname = "filter.alpha.localhost"
log_level = %q
metrics_address = %q
max_message_size = 2097152
consensus_timeout = "2s"
timeout = "30s"

[account]
user = "postfix-filter"
domain = "alpha.localhost"
link_key_file = "link.key"

[directory]
urls = [%q]
authorities = [%q]
threshold = 1
epoch_length = %q

[engine]
ack_slack = "5s"
`, e.filter, e.reinj, logLevel, e.metrics, n.DirURL, n.Authority.String(), p.EpochLength.String())
	if err := os.WriteFile(e.fcfg, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bin, "postfix-filter"), "--config", e.fcfg, "--gen-key").CombinedOutput()
	if err != nil {
		tb.Fatalf("--gen-key: %v\n%s", err, out)
	}
	pub, err := keys.ParseLinkPublicKey(strings.TrimSpace(string(out)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.AddUserKey(n.Provider("alpha.localhost"), "postfix-filter", pub, 64<<20); err != nil {
		tb.Fatal(err)
	}
	e.flog = filepath.Join(fdir, "filter.log")
	e.startFilter()
	tb.Cleanup(e.stopFilter)

	// smtp-sink: the ordinary next hop. One file per message in sinkDir.
	e.sinkDir = filepath.Join(e.dir, "sink")
	os.MkdirAll(e.sinkDir, 0o755)
	exec.Command("chown", "postfix", e.sinkDir).Run()
	e.sinkCmd = exec.Command("smtp-sink", "-u", "postfix", "-d", e.sinkDir+"/%H%M%S.", sinkAddr, "256")
	e.sinkCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.sinkCmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.sinkCmd.Process.Kill(); e.sinkCmd.Wait() })

	e.startPostfix(sinkAddr, mode)
	e.waitLog("link to provider up", 1, 30*time.Second)
	return e
}

func (e *env) startFilter() {
	f, err := os.OpenFile(e.flog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.tb.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "postfix-filter"), "--config", e.fcfg)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.tb.Fatal(err)
	}
	e.fproc, e.fdone = cmd, make(chan error, 1)
	go func() { e.fdone <- cmd.Wait(); f.Close() }()
}

// stopFilter stops the filter with SIGTERM and requires a clean exit.
func (e *env) stopFilter() {
	if e.fproc == nil {
		return
	}
	e.fproc.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-e.fdone:
		if err != nil {
			e.tb.Errorf("postfix-filter exited uncleanly: %v", err)
		}
	case <-time.After(40 * time.Second):
		e.fproc.Process.Kill()
		e.tb.Errorf("postfix-filter did not stop within 40 s of SIGTERM")
	}
	if e.tb.Failed() {
		b, _ := os.ReadFile(e.flog)
		e.tb.Logf("--- postfix-filter log (tail) ---\n%s", tail(b, 6000))
		m, _ := os.ReadFile(filepath.Join(e.dir, "maillog"))
		e.tb.Logf("--- Postfix maillog (tail) ---\n%s", tail(m, 4000))
	}
	e.fproc = nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// countLog counts lines of the filter's log that contain s.
func (e *env) countLog(s string) int {
	b, _ := os.ReadFile(e.flog)
	return bytes.Count(b, []byte(s))
}

func (e *env) waitLog(s string, n int, timeout time.Duration) {
	e.tb.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if e.countLog(s) >= n {
			return
		}
	}
	e.tb.Fatalf("the filter's log does not show %q %d times within %v", s, n, timeout)
}

// contrib reads a file of contrib/postfix, with the sample ports replaced by the test's.
func (e *env) contrib(name string) string {
	repo, err := testnet.RepoRoot()
	if err != nil {
		e.tb.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(repo, "contrib", "postfix", name))
	if err != nil {
		e.tb.Fatal(err)
	}
	return strings.NewReplacer("[127.0.0.1]:10025", "[127.0.0.1]:"+port(e.filter), "127.0.0.1:10026", e.reinj,
		"/etc/postfix/", e.dir+"/conf/", "\nsubmission inet", "\n"+e.smtpIn+" inet").Replace(string(b))
}

// startPostfix writes and starts the instance from the snippets of contrib/postfix (mode is
// the master.cf snippet of its submission service): the submission smtpd hands mail to the
// filter, the re-injection smtpd takes it back, final delivery goes to the sink. The MX smtpd
// is Postfix's stock one, as an operator's master.cf has it for port 25.
func (e *env) startPostfix(sinkAddr, mode string) {
	T := e.dir
	for _, d := range []string{"conf", "queue", "data"} {
		os.MkdirAll(filepath.Join(T, d), 0o755)
	}
	exec.Command("chown", "postfix", filepath.Join(T, "data")).Run()
	mainCf := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = %[1]s
maillog_file = %[1]s/maillog
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.alpha.localhost
mydomain = alpha.localhost
myorigin = $mydomain
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = beta.localhost, legacy.test, alpha.localhost
relayhost = [127.0.0.1]:%[2]s
smtp_dns_support_level = disabled
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
message_size_limit = 4194304
# A deferred message is retried soon (tests flush the queue explicitly as well).
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
`, T, port(sinkAddr)) + e.contrib("main.cf")
	masterCf := fmt.Sprintf("%s inet n - n - - smtpd\n", e.mxIn) + e.contrib(mode) + e.contrib("master.cf") + postfixServices
	os.WriteFile(filepath.Join(T, "conf", "main.cf"), []byte(mainCf), 0o644)
	os.WriteFile(filepath.Join(T, "conf", "master.cf"), []byte(masterCf), 0o644)
	os.WriteFile(filepath.Join(T, "conf", "panoramix_header_checks"), []byte(e.contrib("panoramix_header_checks")), 0o644)
	for _, args := range [][]string{{"check"}, {"start"}} {
		if out, err := exec.Command("postfix", append([]string{"-c", filepath.Join(T, "conf")}, args...)...).CombinedOutput(); err != nil {
			m, _ := os.ReadFile(filepath.Join(T, "maillog"))
			e.tb.Fatalf("postfix %s: %v\n%s\n%s", args[0], err, out, m)
		}
	}
	e.tb.Cleanup(func() {
		exec.Command("postfix", "-c", filepath.Join(T, "conf"), "abort").Run()
		// abort signals the master; wait until it is gone.
		for range 50 {
			if exec.Command("postfix", "-c", filepath.Join(T, "conf"), "status").Run() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	for _, a := range []string{e.smtpIn, e.mxIn} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				e.tb.Fatalf("Postfix does not listen on %s: %v", a, err)
			}
		}
	}
}

const postfixServices = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// submit sends one message into Postfix's submission smtpd.
func (e *env) submit(from string, to []string, msg string) {
	e.tb.Helper()
	e.sendTo(e.smtpIn, from, to, msg)
}

// sendTo sends one message into the Postfix smtpd at addr.
func (e *env) sendTo(addr, from string, to []string, msg string) {
	e.tb.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		e.tb.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		e.tb.Fatalf("Postfix refused the message: %v", err)
	}
}

func (e *env) postqueue(arg string) string {
	out, _ := exec.Command("postqueue", "-c", filepath.Join(e.dir, "conf"), arg).CombinedOutput()
	return string(out)
}

// sinkMessages returns the messages the sink received (its dump files, LF line ends).
func (e *env) sinkMessages() []string {
	files, _ := filepath.Glob(filepath.Join(e.sinkDir, "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && len(b) > 0 {
			out = append(out, string(b))
		}
	}
	return out
}

// sinkWith waits until the sink holds a message containing s, and returns how many do.
func (e *env) sinkWith(s string, timeout time.Duration) int {
	e.tb.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		n := 0
		for _, m := range e.sinkMessages() {
			if strings.Contains(m, s) {
				n++
			}
		}
		if n > 0 || time.Now().After(deadline) {
			return n
		}
	}
}

const imapReadScript = `
import imaplib, ssl, sys, json
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4(host, port)
m.starttls(ssl_context=ctx)
m.login(user, pw)
m.select("INBOX", readonly=True)
typ, data = m.search(None, "ALL")
out = []
for num in data[0].split():
    typ, msg = m.fetch(num, "(BODY.PEEK[])")
    out.append(msg[0][1].decode("latin-1"))
m.logout()
print(json.dumps(out))
`

// inbox reads bob's INBOX at beta with Python's imaplib over STARTTLS.
func (e *env) inbox() []string {
	e.tb.Helper()
	return e.inboxOf("beta.localhost", "bob", "correct horse battery")
}

// inboxOf reads user's INBOX at the provider of domain.
func (e *env) inboxOf(domain, user, password string) []string {
	e.tb.Helper()
	script := filepath.Join(e.dir, "read.py")
	os.WriteFile(script, []byte(imapReadScript), 0o644)
	host, p, _ := net.SplitHostPort(e.net.Provider(domain).IMAP)
	out, err := exec.Command("python3", script, host, p, user, password).CombinedOutput()
	if err != nil {
		e.tb.Fatalf("imaplib: %v\n%s", err, out)
	}
	var msgs []string
	if err := json.Unmarshal(out, &msgs); err != nil {
		e.tb.Fatalf("imaplib output: %v\n%s", err, out)
	}
	return msgs
}

// inboxWith waits until bob's INBOX holds a message containing s and returns how many do.
func (e *env) inboxWith(s string, timeout time.Duration) int {
	e.tb.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(300 * time.Millisecond) {
		n := 0
		for _, m := range e.inbox() {
			if strings.Contains(m, s) {
				n++
			}
		}
		if n > 0 || time.Now().After(deadline) {
			return n
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// metricsText fetches the filter's /metrics.
func (e *env) metricsText() string {
	e.tb.Helper()
	resp, err := http.Get("http://" + e.metrics + "/metrics")
	if err != nil {
		e.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
