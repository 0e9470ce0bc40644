package testnet

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/attack"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/capture"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// BenchmarkReceiveObserver is issue 20's observer test, repeated on the receiving path through
// the link: can a wire observer tell when mail arrives for a user?
//
// One network at the default consensus parameters (10 s epochs), three users: alice at alpha
// sends 8 KB mails at exponential gaps to bob and to carol, both at beta. bob reads through his
// link (his mailproxy's local mailbox); carol reads at the provider over IMAP with IDLE, as
// Thunderbird does by default (the baseline: the leak the issue measured, so the detector is
// shown able to find a leak in the same run). Everything on beta's link and IMAP ports is
// captured from outside with tcpdump (internal/privacy/capture). The ground truth of an arrival
// is the moment beta's mailbox service logs the mail as delivered (into bob's mail queue, or
// carol's IMAP INBOX).
//
// The detector: each captured connection is cut into consecutive 5 s windows, a window is
// labelled "arrival" when a delivery for that user falls inside it, the windows are balanced
// (every arrival window and as many others, at random), and a logistic regression over features
// an observer computes from the capture alone (frames and gaps each way, sizes; attack.Windows
// and attack.Classify, shared with the privacy measurement of issue 14) is cross-validated; the
// same procedure on shuffled labels gives the chance band (placebo). Verdict: a leak when the
// accuracy is above the placebo band's top (its 97.5% quantile).
//
// Run: make bench PKG=./pkg/testnet BENCH=ReceiveObserver BENCHTIME=1x (about 15 minutes;
// PANORAMIX_OBSERVER_MAILS sets the mails per user, default 40). Needs tcpdump and root.
func BenchmarkReceiveObserver(b *testing.B) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		b.Skip(capture.ErrNoTcpdump)
	}
	perUser := 40
	if v, err := strconv.Atoi(os.Getenv("PANORAMIX_OBSERVER_MAILS")); err == nil && v > 0 {
		perUser = v
	}
	for i := 0; i < b.N; i++ {
		receiveObserver(b, perUser)
	}
}

func receiveObserver(b *testing.B, perUser int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	p := pki.DefaultParameters()
	p.EpochLength = 10 * time.Second
	n := launch(b, ctx, Options{Parameters: &p})
	beta := n.Provider("beta.localhost")
	alice, err := n.StartMailproxy(ctx, "alice@alpha.localhost", "alice password", MailproxyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	bob, err := n.StartMailproxy(ctx, "bob@beta.localhost", "bob password", MailproxyOptions{LocalMailbox: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := n.AddUser(beta, "carol", 0); err != nil {
		b.Fatal(err)
	}
	if err := n.SetPassword(beta, "carol", "carol password"); err != nil {
		b.Fatal(err)
	}

	linkPort, imapPort := port(b, beta.Addr), port(b, beta.IMAP)
	capt, err := capture.Start(ctx, capture.Options{Ports: []uint16{linkPort, imapPort}, File: filepath.Join(b.TempDir(), "beta.pcap")})
	if err != nil {
		b.Fatal(err)
	}
	idle := idleAt(b, beta.IMAP, "carol", "carol password")
	// Let the links settle into their schedule before the first mail.
	time.Sleep(20 * time.Second)
	start := time.Now()

	// The sends: per user perUser mails in random order, exponential gaps of mean 12 s.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 20))
	var to []string
	for range perUser {
		to = append(to, "bob@beta.localhost", "carol@beta.localhost")
	}
	rng.Shuffle(len(to), func(i, j int) { to[i], to[j] = to[j], to[i] })
	body := strings.Repeat("An 8 KB mail for the receiving observer, line of sixty-four bytes\r\n", 128)
	for i, rcpt := range to {
		time.Sleep(time.Duration(rng.ExpFloat64() * float64(12*time.Second)))
		msg := fmt.Sprintf("From: alice@alpha.localhost\r\nTo: %s\r\nSubject: observer %d\r\nMessage-ID: <observer-%d@alpha.localhost>\r\n\r\n%s", rcpt, i, i, body)
		if err := smtp.SendMail(alice.SMTP, nil, "alice@alpha.localhost", []string{rcpt}, []byte(msg)); err != nil {
			b.Fatalf("mail %d to %s: %v", i, rcpt, err)
		}
	}
	// Wait for the last deliveries, and as long again after them for the windows that follow.
	deadline := time.Now().Add(3 * time.Minute)
	var arrivals map[string][]time.Time
	for {
		arrivals = deliveries(b, beta.Log())
		if len(arrivals["bob"]) >= perUser && len(arrivals["carol"]) >= perUser || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	time.Sleep(20 * time.Second)
	end := time.Now()
	idle.Close()
	conns, err := capt.Stop()
	if err != nil {
		b.Fatal(err)
	}
	if len(arrivals["bob"]) < perUser || len(arrivals["carol"]) < perUser {
		b.Fatalf("delivered %d to bob and %d to carol of %d each within the wait", len(arrivals["bob"]), len(arrivals["carol"]), perUser)
	}

	// bob's link: the connection to beta's link port that bob's mailproxy dialled.
	bobPorts := localPorts(b, bob.proc.Pid())
	var links []attack.UserLink
	for _, c := range conns {
		switch {
		case c.Server.Port() == linkPort && bobPorts[c.Client.Port()]:
			links = append(links, attack.UserLink{User: "bob (link, local mailbox)", Frames: c.Frames, Reals: arrivals["bob"], Start: start, End: end})
		case c.Server.Port() == imapPort:
			links = append(links, attack.UserLink{User: "carol (provider IMAP, IDLE)", Frames: c.Frames, Reals: arrivals["carol"], Start: start, End: end})
		}
	}
	if len(links) != 2 {
		b.Fatalf("found %d of the two connections observed (bob's link from ports %v, carol's IMAP) among %d", len(links), bobPorts, len(conns))
	}
	crng := rand.New(rand.NewPCG(1, 2))
	for _, l := range links {
		ws := attack.Balance(attack.Windows([]attack.UserLink{l}, 5*time.Second), crng)
		res := attack.Classify(ws, 200, crng)
		verdict := "no leak found"
		if res.Accuracy.Value() > res.PlaceboHi {
			verdict = "LEAK"
		}
		b.Logf("%s: %d balanced 5 s windows, detector accuracy %.3f (95%% CI %.3f to %.3f); placebo mean %.3f, band %.3f to %.3f: %s",
			l.User, res.Windows, res.Accuracy.Value(), res.Accuracy.Lo, res.Accuracy.Hi, res.PlaceboMean, res.PlaceboLo, res.PlaceboHi, verdict)
		key := "bob"
		if strings.HasPrefix(l.User, "carol") {
			key = "carol"
		}
		b.ReportMetric(res.Accuracy.Value(), key+"-accuracy")
		b.ReportMetric(res.PlaceboHi, key+"-placebo-hi")
	}
	b.Logf("%d mails to each over %v; application-data frames on bob's link by plaintext size: %v", perUser, end.Sub(start).Round(time.Second), frameSizes(links[0].Frames))
}

// deliveries reads the times of the mailbox service's "mail delivered" lines per user from a
// mixd log (slog text format).
func deliveries(t testing.TB, log string) map[string][]time.Time {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := regexp.MustCompile(`^time=(\S+) .*msg="mail delivered" .*\buser=(\S+)`)
	out := map[string][]time.Time{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<16), 1<<20)
	for s.Scan() {
		m := line.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("%s: %v", log, err)
		}
		out[m[2]] = append(out[m[2]], at)
	}
	return out
}

// idleAt logs in to a provider's IMAP server over STARTTLS, selects INBOX and idles, as a mail
// program that waits for new mail does.
func idleAt(t testing.TB, addr, user, password string) *imapclient.Client {
	t.Helper()
	// The observer looks at the wire; who the server is does not matter to this client.
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Idle(); err != nil {
		t.Fatal(err)
	}
	return c
}

func port(t testing.TB, addr string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return ap.Port()
}

// localPorts returns the local TCP ports of the sockets process pid holds (ss from iproute2).
func localPorts(t testing.TB, pid int) map[uint16]bool {
	t.Helper()
	out, err := exec.Command("ss", "-tnpH").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	ports := map[uint16]bool{}
	tag := fmt.Sprintf("pid=%d,", pid)
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.Contains(l, tag) {
			continue
		}
		if ap, err := netip.ParseAddrPort(f[3]); err == nil {
			ports[ap.Port()] = true
		}
	}
	return ports
}

// frameSizes counts the parsed application-data frames by TLS plaintext size.
func frameSizes(fs []capture.Frame) map[int]int {
	out := map[int]int{}
	for _, f := range fs {
		if f.Parsed && !f.Handshake {
			out[f.Size]++
		}
	}
	return out
}
