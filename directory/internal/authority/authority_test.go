package authority_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/directory/internal/authority"
	"github.com/panoramix-mixnet/panoramix/directory/internal/httpapi"
	"github.com/panoramix-mixnet/panoramix/directory/internal/store"
	"github.com/panoramix-mixnet/panoramix/internal/syncbuf"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

const epochLength = 10 * time.Second

// fakeTime is a settable clock shared by the authorities of a test.
type fakeTime struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeTime) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }

// at sets the time to epoch e plus d.
func (f *fakeTime) at(e pki.Epoch, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = pki.Origin.Add(time.Duration(e)*epochLength + d)
}

func params() pki.Parameters {
	p := pki.DefaultParameters()
	p.EpochLength = epochLength
	return p
}

// node is a mix or provider with its keys.
type node struct {
	id   *keys.IdentityPrivateKey
	desc *pki.Descriptor
	raw  []byte
}

func newNode(t *testing.T, i int, role pki.Role, e pki.Epoch) node {
	t.Helper()
	id, _ := keys.GenerateIdentityKey(rand.Reader)
	link, _ := keys.GenerateLinkKey(rand.Reader)
	d := &pki.Descriptor{Epoch: e, Identity: id.Public(), Link: link.Public(), Role: role,
		Addresses: []string{fmt.Sprintf("127.0.0.1:%d", 20000+i)}}
	if role == pki.RoleProvider {
		d.Domains = []string{fmt.Sprintf("p%d.example", i)}
		d.Services = []string{"mailbox"}
	}
	for k := range 3 {
		sk, _ := keys.GenerateSphinxKey(rand.Reader)
		d.SphinxKeys = append(d.SphinxKeys, pki.EpochKey{Epoch: e + pki.Epoch(k), Key: sk.Public()})
	}
	if err := d.Sign(id); err != nil {
		t.Fatal(err)
	}
	raw, _ := d.Marshal()
	return node{id: id, desc: d, raw: raw}
}

// testAuth is one authority of a test network with its server.
type testAuth struct {
	a      *authority.Authority
	key    *keys.IdentityPrivateKey
	st     *store.Store
	dbPath string
	srv    *httptest.Server
	reg    *prometheus.Registry
	logs   *syncbuf.Buffer
}

type network struct {
	clock *fakeTime
	auths []*testAuth
}

// newNetwork starts n authorities with the given threshold; paramsFor gives each its parameters.
func newNetwork(t *testing.T, n, threshold int, paramsFor func(i int) pki.Parameters) *network {
	t.Helper()
	net := &network{clock: &fakeTime{}}
	var ks []*keys.IdentityPrivateKey
	for i := range n {
		k, _ := keys.GenerateIdentityKey(rand.Reader)
		ks = append(ks, k)
		srv := httptest.NewUnstartedServer(nil)
		t.Cleanup(srv.Close)
		net.auths = append(net.auths, &testAuth{key: k, srv: srv, dbPath: filepath.Join(t.TempDir(), fmt.Sprintf("a%d.db", i))})
	}
	for i, ta := range net.auths {
		var peers []authority.Peer
		for j, o := range net.auths {
			if j != i {
				peers = append(peers, authority.Peer{Identity: ks[j].Public(), URL: "http://" + o.srv.Listener.Addr().String()})
			}
		}
		ta.start(t, net.clock, peers, threshold, paramsFor(i))
		ta.srv.Start()
	}
	return net
}

// start opens the store and makes the authority; the server's handler points at it.
func (ta *testAuth) start(t *testing.T, clock *fakeTime, peers []authority.Peer, threshold int, p pki.Parameters) {
	t.Helper()
	st, err := store.Open(ta.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	ta.st = st
	ta.reg = prometheus.NewRegistry()
	ta.logs = &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(ta.logs, nil))
	a, err := authority.New(authority.Config{Identity: ta.key, Peers: peers, Threshold: threshold, Parameters: p,
		Store: st, Logger: log, Registerer: ta.reg, Now: clock.now, HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ta.a = a
	ta.srv.Config.Handler = httpapi.Public(a, ta.reg, log)
	t.Cleanup(func() { st.Close() })
}

// stepAll runs one schedule step on the given authorities (all when none given) at epoch e + d.
func (n *network) stepAll(t *testing.T, e pki.Epoch, d time.Duration, which ...int) {
	t.Helper()
	n.clock.at(e, d)
	if len(which) == 0 {
		for i := range n.auths {
			which = append(which, i)
		}
	}
	for _, i := range which {
		if err := n.auths[i].a.Step(context.Background()); err != nil {
			t.Fatalf("authority %d step at epoch %d + %v: %v", i, e, d, err)
		}
	}
}

// runEpoch steps through epoch e so that the document for e+1 is made.
func (n *network) runEpoch(t *testing.T, e pki.Epoch, which ...int) {
	n.stepAll(t, e, epochLength/4, which...)
	n.stepAll(t, e, epochLength/2, which...)
	n.stepAll(t, e, 3*epochLength/4, which...)
}

func (n *network) authorityKeys() []keys.IdentityPublicKey {
	var out []keys.IdentityPublicKey
	for _, ta := range n.auths {
		out = append(out, ta.key.Public())
	}
	return out
}

func post(t *testing.T, ta *testAuth, b []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(ta.srv.URL+"/v1/descriptor", "application/octet-stream", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// publish approves and posts the nodes at the given authorities.
func publish(t *testing.T, n *network, nodes []node, which ...int) {
	t.Helper()
	for _, i := range which {
		for _, nd := range nodes {
			if err := n.auths[i].a.Approve(nd.desc.Identity, approvalOf(t, nd.desc)); err != nil {
				t.Fatal(err)
			}
			if code, msg := post(t, n.auths[i], nd.raw); code != http.StatusOK {
				t.Fatalf("post to authority %d: %d %s", i, code, msg)
			}
		}
	}
}

// approvalOf approves exactly what d claims.
func approvalOf(t *testing.T, d *pki.Descriptor) pki.Approval {
	t.Helper()
	a, err := pki.NewApproval(d.Role, d.Domains)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func nodes(t *testing.T, mixes, providers int, e pki.Epoch) []node {
	var out []node
	for i := range mixes {
		out = append(out, newNode(t, i, pki.RoleMix, e))
	}
	for i := range providers {
		out = append(out, newNode(t, mixes+i, pki.RoleProvider, e))
	}
	return out
}

const e0 = pki.Epoch(1000)

func same(i int) pki.Parameters { return params() }

func TestSingleAuthority(t *testing.T) {
	n := newNetwork(t, 1, 1, same)
	n.clock.at(e0, 0)
	ns := nodes(t, 6, 2, e0)
	publish(t, n, ns, 0)
	a := n.auths[0]
	n.stepAll(t, e0, 0)
	if _, ok, _ := a.a.Vote(e0 + 1); ok {
		t.Fatal("vote made before a quarter of the epoch")
	}
	n.runEpoch(t, e0)
	code, b := get(t, fmt.Sprintf("%s/v1/consensus/%d", a.srv.URL, e0+1))
	if code != http.StatusOK {
		t.Fatalf("GET consensus: %d %s", code, b)
	}
	sd, err := pki.Verify(b, e0+1, n.authorityKeys(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.Document.Nodes) != 8 || len(sd.Document.Layer(0)) != 2 {
		t.Errorf("%d nodes, %d providers", len(sd.Document.Nodes), len(sd.Document.Layer(0)))
	}
	// "current" is the document of the epoch the clock is in.
	n.clock.at(e0+1, time.Second)
	if code, cur := get(t, a.srv.URL+"/v1/consensus/current"); code != http.StatusOK || !bytes.Equal(cur, b) {
		t.Errorf("GET current: %d, same bytes %v", code, bytes.Equal(cur, b))
	}
	if code, _ := get(t, fmt.Sprintf("%s/v1/consensus/%d", a.srv.URL, e0+5)); code != http.StatusNotFound {
		t.Errorf("GET future epoch: %d, want 404", code)
	}
	if code, _ := get(t, a.srv.URL+"/v1/consensus/x1"); code != http.StatusBadRequest {
		t.Errorf("GET bad epoch: %d, want 400", code)
	}
	code, page := get(t, a.srv.URL+"/status")
	if code != http.StatusOK || !strings.Contains(string(page), "Mix layer 3") || !strings.Contains(string(page), "p6.example") {
		t.Errorf("status page: %d\n%s", code, page)
	}
	code, m := get(t, a.srv.URL+"/metrics")
	if code != http.StatusOK || !strings.Contains(string(m), "directory_documents_computed_total 1") {
		t.Errorf("metrics: %d\n%s", code, m)
	}
}

func TestDescriptorUploadRefusals(t *testing.T) {
	n := newNetwork(t, 1, 1, same)
	n.clock.at(e0, 0)
	a := n.auths[0]
	good := newNode(t, 1, pki.RoleMix, e0)
	if code, msg := post(t, a, good.raw); code != http.StatusForbidden || !strings.Contains(msg, "mixctl dir approve") {
		t.Errorf("not approved: %d %s", code, msg)
	}
	if err := a.a.Approve(good.desc.Identity, approvalOf(t, good.desc)); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good.raw)
	bad[len(bad)-1] ^= 1
	old := newNode(t, 2, pki.RoleMix, e0-1)
	far := newNode(t, 3, pki.RoleMix, e0+3)
	for _, nd := range []node{old, far} {
		a.a.Approve(nd.desc.Identity, approvalOf(t, nd.desc))
	}
	// Same node, different key for an epoch it already published.
	conflict := *good.desc
	conflict.SphinxKeys = append([]pki.EpochKey(nil), good.desc.SphinxKeys...)
	sk, _ := keys.GenerateSphinxKey(rand.Reader)
	conflict.SphinxKeys[2].Key = sk.Public()
	conflict.Sign(good.id)
	conflictRaw, _ := conflict.Marshal()
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"good", good.raw, http.StatusOK},
		{"again", good.raw, http.StatusOK},
		{"bad signature", bad, http.StatusBadRequest},
		{"trailing byte", append(bytes.Clone(good.raw), 0), http.StatusBadRequest},
		{"empty", nil, http.StatusBadRequest},
		{"oversize", make([]byte, pki.MaxDescriptorSize+1), http.StatusRequestEntityTooLarge},
		{"epoch passed", old.raw, http.StatusConflict},
		{"epoch too far", far.raw, http.StatusConflict},
		{"key conflict", conflictRaw, http.StatusConflict},
	} {
		if code, msg := post(t, a, tc.body); code != tc.want || (code != http.StatusOK && msg == "") {
			t.Errorf("%s: %d %q, want %d with a reason", tc.name, code, msg, tc.want)
		}
	}
	// Only the good descriptor is stored.
	all, _ := a.st.AllDescriptors()
	if len(all) != 1 || !all[0].Identity.Equal(good.desc.Identity) {
		t.Errorf("%d descriptors stored, want only the good one", len(all))
	}
	if got := counter(t, a.reg, "directory_descriptor_uploads_total", "409"); got != 3 {
		t.Errorf("409 uploads metric = %v, want 3", got)
	}
}

// counter returns the value of a labelled counter in reg.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

// TestThreeAuthorities: all up gives one identical document with three signatures.
func TestThreeAuthorities(t *testing.T) {
	n := newNetwork(t, 3, 2, same)
	n.clock.at(e0, 0)
	ns := nodes(t, 9, 3, e0)
	publish(t, n, ns, 0, 1, 2)
	n.runEpoch(t, e0)
	var first []byte
	for i, ta := range n.auths {
		code, b := get(t, fmt.Sprintf("%s/v1/consensus/%d", ta.srv.URL, e0+1))
		if code != http.StatusOK {
			t.Fatalf("authority %d: %d %s", i, code, b)
		}
		sd, err := pki.Verify(b, e0+1, n.authorityKeys(), 2)
		if err != nil {
			t.Fatalf("authority %d: %v", i, err)
		}
		if len(sd.Signatures) != 3 || len(sd.Document.Nodes) != 12 {
			t.Errorf("authority %d: %d signatures, %d nodes", i, len(sd.Signatures), len(sd.Document.Nodes))
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Errorf("authority %d serves different bytes", i)
		}
	}
}

// TestOneAuthorityDown: two of three still make a valid document.
func TestOneAuthorityDown(t *testing.T) {
	n := newNetwork(t, 3, 2, same)
	n.clock.at(e0, 0)
	publish(t, n, nodes(t, 6, 2, e0), 0, 1, 2)
	n.auths[2].srv.Close()
	n.runEpoch(t, e0, 0, 1)
	for i := range 2 {
		code, b := get(t, fmt.Sprintf("%s/v1/consensus/%d", n.auths[i].srv.URL, e0+1))
		if code != http.StatusOK {
			t.Fatalf("authority %d: %d %s", i, code, b)
		}
		sd, err := pki.Verify(b, e0+1, n.authorityKeys(), 2)
		if err != nil || len(sd.Signatures) != 2 || len(sd.Document.Nodes) != 8 {
			t.Fatalf("authority %d: %v", i, err)
		}
	}
}

// TestUnknownNodeStaysOut: a node only one authority approved and votes for is left out.
func TestUnknownNodeStaysOut(t *testing.T) {
	n := newNetwork(t, 3, 2, same)
	n.clock.at(e0, 0)
	ns := nodes(t, 6, 2, e0)
	publish(t, n, ns, 0, 1, 2)
	rogue := newNode(t, 99, pki.RoleMix, e0)
	publish(t, n, []node{rogue}, 0)
	for _, i := range []int{1, 2} {
		if code, _ := post(t, n.auths[i], rogue.raw); code != http.StatusForbidden {
			t.Fatalf("authority %d took the unapproved node: %d", i, code)
		}
	}
	n.runEpoch(t, e0)
	v, ok, _ := n.auths[0].a.Vote(e0 + 1)
	if pv, err := pki.ParseVote(v); !ok || err != nil || len(pv.Descriptors) != 9 {
		t.Fatalf("authority 0's vote should hold the rogue node too: %v %v", ok, err)
	}
	code, b := get(t, fmt.Sprintf("%s/v1/consensus/%d", n.auths[0].srv.URL, e0+1))
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, b)
	}
	sd, err := pki.Verify(b, e0+1, n.authorityKeys(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, in := sd.Document.Node(rogue.desc.Identity); in || len(sd.Document.Nodes) != 8 {
		t.Errorf("rogue node in the document (%d nodes)", len(sd.Document.Nodes))
	}
}

// TestParameterDisagreement: one authority configured differently makes the epoch fail loudly.
func TestParameterDisagreement(t *testing.T) {
	n := newNetwork(t, 3, 2, func(i int) pki.Parameters {
		p := params()
		if i == 2 {
			p.LambdaP = 4
		}
		return p
	})
	n.clock.at(e0, 0)
	publish(t, n, nodes(t, 3, 1, e0), 0, 1, 2)
	n.runEpoch(t, e0)
	for i, ta := range n.auths {
		if code, _ := get(t, fmt.Sprintf("%s/v1/consensus/%d", ta.srv.URL, e0+1)); code != http.StatusNotFound {
			t.Errorf("authority %d published a document: %d", i, code)
		}
		st, err := ta.a.Status()
		if err != nil {
			t.Fatal(err)
		}
		if f := st.Epochs[1].Failure; !strings.Contains(f, "disagree") {
			t.Errorf("authority %d status failure %q", i, f)
		}
		code, page := get(t, ta.srv.URL+"/status")
		if code != http.StatusOK || !strings.Contains(string(page), "disagree") {
			t.Errorf("authority %d: status page does not show the failure", i)
		}
		if _, m := get(t, ta.srv.URL+"/metrics"); !strings.Contains(string(m), "directory_epoch_failures_total 1") {
			t.Errorf("authority %d: failure metric not 1", i)
		}
	}
}

// TestRestartServesSameDocument: a restarted authority serves the bytes it served before.
func TestRestartServesSameDocument(t *testing.T) {
	n := newNetwork(t, 1, 1, same)
	n.clock.at(e0, 0)
	publish(t, n, nodes(t, 3, 1, e0), 0)
	n.runEpoch(t, e0)
	ta := n.auths[0]
	url := fmt.Sprintf("%s/v1/consensus/%d", ta.srv.URL, e0+1)
	_, before := get(t, url)
	ta.st.Close()
	ta.start(t, n.clock, nil, 1, params())
	n.stepAll(t, e0, 7*epochLength/8)
	n.stepAll(t, e0+1, epochLength/2)
	code, after := get(t, url)
	if code != http.StatusOK || !bytes.Equal(before, after) {
		t.Errorf("after restart: %d, same bytes %v", code, bytes.Equal(before, after))
	}
}

// TestLateAuthorityAdopts: an authority that was down while votes were made serves the
// document its peers agreed on.
func TestLateAuthorityAdopts(t *testing.T) {
	n := newNetwork(t, 3, 2, same)
	n.clock.at(e0, 0)
	publish(t, n, nodes(t, 3, 1, e0), 0, 1, 2)
	n.runEpoch(t, e0, 0, 1)
	_, want := get(t, fmt.Sprintf("%s/v1/consensus/%d", n.auths[0].srv.URL, e0+1))
	n.stepAll(t, e0+1, time.Second, 2)
	code, got := get(t, fmt.Sprintf("%s/v1/consensus/%d", n.auths[2].srv.URL, e0+1))
	if code != http.StatusOK || !bytes.Equal(got, want) {
		t.Errorf("late authority: %d, same bytes %v", code, bytes.Equal(got, want))
	}
}
