package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/internal/freeport"
	"github.com/panoramix-mixnet/panoramix/internal/syncbuf"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// binary is the directory program built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "directory-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "directory")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building directory: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "mixctl dir keygen") {
		t.Errorf("--help: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "directory ") {
		t.Errorf("--version: %d %q", code, out.String())
	}
	errOut.Reset()
	if code := run(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--config") {
		t.Errorf("no args: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"--config", filepath.Join(t.TempDir(), "none.toml")}, &out, &errOut); code != 1 || errOut.Len() == 0 {
		t.Errorf("missing config: %d %q", code, errOut.String())
	}
}

// Test epochs are short so a whole vote, compute, sign cycle takes seconds.
const testEpoch = 2 * time.Second

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// authority is one directory process under test.
type authority struct {
	name, dir, cfg, listen, admin string
	key                           *keys.IdentityPrivateKey
	cmd                           *exec.Cmd
	log                           *syncbuf.Buffer
	done                          chan error
}

func newAuthority(t *testing.T, name string) *authority {
	t.Helper()
	dir := t.TempDir()
	k, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.SaveIdentityKey(filepath.Join(dir, "authority.key"), k); err != nil {
		t.Fatal(err)
	}
	return &authority{name: name, dir: dir, cfg: filepath.Join(dir, "directory.toml"), listen: freePort(t), admin: freePort(t), key: k}
}

func (a *authority) url() string { return "http://" + a.listen }

// writeConfig writes the authority's configuration with the given peers and threshold.
func (a *authority) writeConfig(t *testing.T, threshold int, peers []*authority) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\nidentity_key_file = \"authority.key\"\ndata_dir = \"data\"\n")
	fmt.Fprintf(&b, "listen_address = %q\nadmin_address = %q\nthreshold = %d\nlog_level = \"debug\"\n", a.listen, a.admin, threshold)
	fmt.Fprintf(&b, "[parameters]\nepoch_length = %q\n", testEpoch.String())
	for _, p := range peers {
		fmt.Fprintf(&b, "[[peers]]\nidentity = %q\nurl = %q\n", p.key.Public().String(), p.url())
	}
	if err := os.WriteFile(a.cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs the binary and waits until its public API answers.
func (a *authority) start(t *testing.T) {
	t.Helper()
	a.log = &syncbuf.Buffer{}
	a.cmd = exec.Command(binary, "--config", a.cfg)
	a.cmd.Stdout = a.log
	a.cmd.Stderr = a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.done = make(chan error, 1)
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			a.cmd.Process.Kill()
			<-a.done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(a.url() + "/status"); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case err := <-a.done:
			t.Fatalf("%s exited at start: %v\n%s", a.name, err, a.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not start:\n%s", a.name, a.log)
}

// stop sends SIGTERM and requires a clean exit.
func (a *authority) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("%s exit: %v\n%s", a.name, err, a.log)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not stop after SIGTERM:\n%s", a.name, a.log)
	}
	if !strings.Contains(a.log.String(), "directory authority stopped") {
		t.Errorf("%s: no clean-shutdown line in the log:\n%s", a.name, a.log)
	}
}

// approve approves the node of d as what d says it is.
func (a *authority) approve(t *testing.T, d *pki.Descriptor) {
	t.Helper()
	token, err := adminauth.Load(filepath.Join(a.dir, "data", adminauth.DefaultFile)) // data_dir's token
	if err != nil {
		t.Fatal(err)
	}
	ap, err := pki.NewApproval(d.Role, d.Domains)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(ap)
	req, _ := http.NewRequest(http.MethodPut, "http://"+a.admin+"/admin/v1/nodes/"+d.Identity.String(), bytes.NewReader(body))
	adminauth.SetHeaders(req, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s approve: %s", a.name, resp.Status)
	}
}

func (a *authority) post(t *testing.T, b []byte) int {
	t.Helper()
	resp, err := http.Post(a.url()+"/v1/descriptor", "application/octet-stream", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// document polls the authority until it serves a document for epoch e.
func (a *authority) document(t *testing.T, e pki.Epoch, within time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("%s/v1/consensus/%d", a.url(), e))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: no document for epoch %d within %v:\n%s", a.name, e, within, a.log)
	return nil
}

// testNode returns a signed descriptor for epochs e..e+3.
func testNode(t *testing.T, i int, role pki.Role, e pki.Epoch) (*pki.Descriptor, []byte) {
	t.Helper()
	return newNodeKeys(i, role).descriptor(t, e)
}

// nodeKeys is a test node's keys; its Sphinx key for an epoch is made once, so descriptors of one
// node for successive epochs never publish two keys for the same epoch (which authorities refuse).
type nodeKeys struct {
	i      int
	role   pki.Role
	id     *keys.IdentityPrivateKey
	link   keys.LinkPublicKey
	sphinx map[pki.Epoch]pki.EpochKey
}

func newNodeKeys(i int, role pki.Role) *nodeKeys {
	id, _ := keys.GenerateIdentityKey(rand.Reader)
	link, _ := keys.GenerateLinkKey(rand.Reader)
	return &nodeKeys{i: i, role: role, id: id, link: link.Public(), sphinx: make(map[pki.Epoch]pki.EpochKey)}
}

// descriptor returns the node's signed descriptor for epochs e..e+3.
func (n *nodeKeys) descriptor(t *testing.T, e pki.Epoch) (*pki.Descriptor, []byte) {
	t.Helper()
	d := &pki.Descriptor{Epoch: e, Identity: n.id.Public(), Link: n.link, Role: n.role,
		Addresses: []string{fmt.Sprintf("127.0.0.1:%d", 30000+n.i)}}
	if n.role == pki.RoleProvider {
		d.Domains = []string{fmt.Sprintf("p%d.example", n.i)}
		d.Services = []string{"mailbox"}
	}
	for k := range pki.MaxSphinxKeys {
		ek := e + pki.Epoch(k)
		if _, ok := n.sphinx[ek]; !ok {
			sk, _ := keys.GenerateSphinxKey(rand.Reader)
			n.sphinx[ek] = pki.EpochKey{Epoch: ek, Key: sk.Public()}
		}
		d.SphinxKeys = append(d.SphinxKeys, n.sphinx[ek])
	}
	if err := d.Sign(n.id); err != nil {
		t.Fatal(err)
	}
	b, _ := d.Marshal()
	return d, b
}

// nextVoted returns the first epoch whose document is voted on after now: votes for e+1 are made
// at a quarter of epoch e (docs/spec/pki.md section 8).
func nextVoted(c pki.Clock) pki.Epoch {
	now, since, _ := c.Now()
	if since >= c.Length()/4-c.Length()/20 { // a poll interval of margin
		return now + 2
	}
	return now + 1
}

func clock(t *testing.T) pki.Clock {
	c, err := pki.NewClock(testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRestartMidEpoch: the real binary, restarted inside an epoch, serves the same document.
func TestRestartMidEpoch(t *testing.T) {
	a := newAuthority(t, "solo")
	a.writeConfig(t, 1, nil)
	a.start(t)
	e, _, _ := clock(t).Now()
	for i := range 4 {
		role := pki.RoleMix
		if i == 3 {
			role = pki.RoleProvider
		}
		d, b := testNode(t, i, role, e)
		a.approve(t, d)
		if code := a.post(t, b); code != http.StatusOK {
			t.Fatalf("post: %d", code)
		}
	}
	target := nextVoted(clock(t))
	before := a.document(t, target, 5*testEpoch)
	sd, err := pki.Verify(before, target, []keys.IdentityPublicKey{a.key.Public()}, 1)
	if err != nil || len(sd.Document.Nodes) != 4 {
		t.Fatalf("document: %v, %d nodes", err, len(sd.Document.Nodes))
	}
	a.stop(t)
	a.start(t)
	after := a.document(t, target, time.Second)
	if !bytes.Equal(before, after) {
		t.Error("the restarted authority serves different bytes")
	}
	a.stop(t)
}

// TestThreeAuthorities runs three real authorities with threshold two: all up they publish one
// identical document with three signatures, leaving out a node only one of them approved; with
// one stopped the other two still publish a valid document.
func TestThreeAuthorities(t *testing.T) {
	auths := []*authority{newAuthority(t, "a"), newAuthority(t, "b"), newAuthority(t, "c")}
	var pub []keys.IdentityPublicKey
	for i, a := range auths {
		var peers []*authority
		for j, o := range auths {
			if j != i {
				peers = append(peers, o)
			}
		}
		a.writeConfig(t, 2, peers)
		pub = append(pub, a.key.Public())
	}
	for _, a := range auths {
		a.start(t)
	}
	c := clock(t)
	// Approve all six first, then post their descriptors for the epoch of the moment: on a loaded
	// machine the approvals can outlast a 2 s epoch, and an authority refuses (409) a descriptor
	// for an epoch already past. If the epoch turns during the posts, they are made again for the
	// new one (the same keys: a node never publishes two keys for one epoch).
	var nodes []*nodeKeys
	for i := range 6 {
		role := pki.RoleMix
		if i >= 4 {
			role = pki.RoleProvider
		}
		n := newNodeKeys(i, role)
		d, _ := n.descriptor(t, 0)
		for _, a := range auths {
			a.approve(t, d)
		}
		nodes = append(nodes, n)
	}
	for attempt := 1; ; attempt++ {
		e, _, _ := c.Now()
		late := false
		for _, n := range nodes {
			_, b := n.descriptor(t, e)
			for _, a := range auths {
				code := a.post(t, b)
				if code == http.StatusConflict && attempt < 5 {
					if now, _, _ := c.Now(); now != e {
						late = true
						break
					}
				}
				if code != http.StatusOK {
					t.Fatalf("post to %s: %d", a.name, code)
				}
			}
			if late {
				break
			}
		}
		if !late {
			break
		}
	}
	// The epoch now, not at the start: on a loaded machine the posts above can outlast an epoch.
	eNow, _, _ := c.Now()
	rogue, rb := testNode(t, 99, pki.RoleMix, eNow)
	auths[0].approve(t, rogue)
	if code := auths[0].post(t, rb); code != http.StatusOK {
		t.Fatalf("post rogue: %d", code)
	}
	if code := auths[1].post(t, rb); code != http.StatusForbidden {
		t.Fatalf("unapproved node posted to b: %d, want 403", code)
	}

	target := nextVoted(c)
	var first []byte
	for _, a := range auths {
		// Wait for all three signatures, which arrive shortly after the document.
		deadline := time.Now().Add(3 * testEpoch)
		var b []byte
		for {
			b = a.document(t, target, 5*testEpoch)
			if sd, err := pki.Verify(b, target, pub, 2); err == nil && len(sd.Signatures) == 3 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		sd, err := pki.Verify(b, target, pub, 2)
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		if len(sd.Signatures) != 3 || len(sd.Document.Nodes) != 6 {
			t.Errorf("%s: %d signatures, %d nodes; want 3 and 6", a.name, len(sd.Signatures), len(sd.Document.Nodes))
		}
		if _, in := sd.Document.Node(rogue.Identity); in {
			t.Errorf("%s: the node only one authority approved is in the document", a.name)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Errorf("%s serves different bytes from %s", a.name, auths[0].name)
		}
	}

	// Stop c; a and b publish the next epochs with two signatures.
	auths[2].stop(t)
	// The first document whose votes are made after c stopped.
	target = nextVoted(c)
	for _, a := range auths[:2] {
		b := a.document(t, target, 5*testEpoch)
		sd, err := pki.Verify(b, target, pub, 2)
		if err != nil {
			t.Fatalf("%s without c: %v", a.name, err)
		}
		if len(sd.Document.Nodes) != 6 {
			t.Errorf("%s without c: %d nodes", a.name, len(sd.Document.Nodes))
		}
		if !errors.Is(func() error { _, err := pki.Verify(b, target, pub[2:], 1); return err }(), pki.ErrTooFewSignatures) {
			t.Errorf("%s without c: document carries c's signature", a.name)
		}
	}
	for _, a := range auths[:2] {
		a.stop(t)
	}
}

// TestAdminTokenFile: the directory writes its admin token 0600 at first start and refuses to
// start when the file is readable by group or others (the token is the admin API's secret).
func TestAdminTokenFile(t *testing.T) {
	a := newAuthority(t, "a")
	a.writeConfig(t, 1, nil)
	a.start(t)
	token := filepath.Join(a.dir, "data", adminauth.DefaultFile)
	if fi, err := os.Stat(token); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file after the first start: %v %v, want mode 0600", err, fi)
	}
	a.stop(t)
	os.Chmod(token, 0o644)
	out, err := exec.Command(binary, "--config", a.cfg).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "chmod 600 "+token) {
		t.Errorf("start with a world-readable token file: %v\n%s", err, out)
	}
}
