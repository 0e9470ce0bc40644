package authority_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/directory/internal/authority"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// withDomains re-signs nd's descriptor as a provider of domains (a mix when none).
func withDomains(t *testing.T, nd node, domains ...string) node {
	t.Helper()
	d := *nd.desc
	d.Role, d.Domains, d.Services = pki.RoleMix, nil, nil
	if len(domains) > 0 {
		d.Role, d.Domains, d.Services = pki.RoleProvider, domains, []string{"mailbox"}
	}
	if err := d.Sign(nd.id); err != nil {
		t.Fatal(err)
	}
	raw, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return node{id: nd.id, desc: &d, raw: raw}
}

// belowOf draws mixes until one's identity sorts below other's: the node a client choosing the
// first provider of a domain in identity order would choose.
func belowOf(t *testing.T, other node, e pki.Epoch) node {
	t.Helper()
	for i := range 1000 {
		nd := newNode(t, 100+i, pki.RoleMix, e)
		if bytes.Compare(nd.desc.Identity[:], other.desc.Identity[:]) < 0 {
			return nd
		}
	}
	t.Fatal("no identity below the provider's in 1000 draws")
	return node{}
}

func provider(t *testing.T, domains ...string) pki.Approval {
	t.Helper()
	a, err := pki.NewApproval(pki.RoleProvider, domains)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var mix = pki.Approval{Role: pki.RoleMix}

// Issue 13, finding 1 at the authority: mallory, approved as a mix, uploads a descriptor as the
// provider of beta.example with an identity below the real provider's; a provider approved for
// beta.example claims gamma.example too. Both are refused (403, logged, counted, not stored),
// and the document gives beta.example to the real provider only.
func TestDescriptorBeyondApprovalRefused(t *testing.T) {
	n := newNetwork(t, 1, 1, same)
	n.clock.at(e0, 0)
	a := n.auths[0]
	ns := nodes(t, 3, 0, e0)
	beta := withDomains(t, newNode(t, 10, pki.RoleProvider, e0), "beta.example")
	publish(t, n, append(ns, beta), 0)

	mallory := belowOf(t, beta, e0)
	if err := a.a.Approve(mallory.desc.Identity, mix); err != nil {
		t.Fatal(err)
	}
	greedy := newNode(t, 11, pki.RoleProvider, e0)
	if err := a.a.Approve(greedy.desc.Identity, provider(t, "greedy.example")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		nd   node
		want string
	}{
		{"mix as provider", withDomains(t, mallory, "beta.example"), "approved as a mix"},
		{"provider of another's domain", withDomains(t, greedy, "beta.example", "greedy.example"), "claims mail domain beta.example"},
	} {
		code, msg := post(t, a, tc.nd.raw)
		if code != http.StatusForbidden || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q, want 403 saying %q", tc.name, code, msg, tc.want)
		}
		if ds, _ := a.st.Descriptors(tc.nd.desc.Identity); len(ds) != 0 {
			t.Errorf("%s: the refused descriptor was stored", tc.name)
		}
		if logs := a.logs.String(); !strings.Contains(logs, "descriptor refused") || !strings.Contains(logs, tc.nd.desc.Identity.String()) {
			t.Errorf("%s: no \"descriptor refused\" log line naming the node:\n%s", tc.name, logs)
		}
	}
	if got := counter(t, a.reg, "directory_descriptor_uploads_total", "403"); got != 2 {
		t.Errorf("403 uploads = %v, want 2", got)
	}
	// What the approvals permit is accepted.
	for _, nd := range []node{mallory, withDomains(t, greedy, "greedy.example")} {
		if code, msg := post(t, a, nd.raw); code != http.StatusOK {
			t.Fatalf("permitted descriptor: %d %s", code, msg)
		}
	}

	n.runEpoch(t, e0)
	_, b := get(t, fmt.Sprintf("%s/v1/consensus/%d", a.srv.URL, e0+1))
	sd, err := pki.Verify(b, e0+1, n.authorityKeys(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := sd.Document.Provider("beta.example"); !ok || !p.Identity.Equal(beta.desc.Identity) {
		t.Fatalf("Provider(beta.example) = %v, %v; want the approved provider", p, ok)
	}
	if m, ok := sd.Document.Node(mallory.desc.Identity); !ok || m.Role != pki.RoleMix {
		t.Errorf("mallory in the document: %+v, %v; want a mix", m, ok)
	}
}

// An approval narrowed after an upload: the stored descriptor claims a domain the node is no
// longer approved for, and the next vote leaves it out, saying why.
func TestVoteLeavesOutDescriptorBeyondNewApproval(t *testing.T) {
	n := newNetwork(t, 1, 1, same)
	n.clock.at(e0, 0)
	a := n.auths[0]
	p := withDomains(t, newNode(t, 10, pki.RoleProvider, e0), "beta.example", "gamma.example")
	publish(t, n, append(nodes(t, 3, 0, e0), p), 0)
	if err := a.a.Approve(p.desc.Identity, provider(t, "beta.example")); err != nil {
		t.Fatal(err)
	}
	n.runEpoch(t, e0)
	_, b := get(t, fmt.Sprintf("%s/v1/consensus/%d", a.srv.URL, e0+1))
	sd, err := pki.Verify(b, e0+1, n.authorityKeys(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, in := sd.Document.Node(p.desc.Identity); in {
		t.Error("the provider is in the document with a domain its approval no longer names")
	}
	if !strings.Contains(a.logs.String(), "descriptor left out of the vote") {
		t.Errorf("no log line says why:\n%s", a.logs.String())
	}
}

// Approve refuses a domain approved for another node, an invalid approval, and a node the
// configuration file approves; a removed node's domain can be approved again.
func TestApproveRefusals(t *testing.T) {
	n := newNetwork(t, 1, 1, same)
	a := n.auths[0].a
	beta, mallory := newNode(t, 1, pki.RoleProvider, e0), newNode(t, 2, pki.RoleMix, e0)
	if err := a.Approve(beta.desc.Identity, provider(t, "beta.example")); err != nil {
		t.Fatal(err)
	}
	var e *authority.Error
	for _, tc := range []struct {
		name string
		ap   pki.Approval
		want int
	}{
		{"taken domain", provider(t, "beta.example"), http.StatusConflict},
		{"provider without domain", pki.Approval{Role: pki.RoleProvider}, http.StatusBadRequest},
		{"mix with domain", pki.Approval{Role: pki.RoleMix, Domains: []string{"x.example"}}, http.StatusBadRequest},
		{"no role", pki.Approval{}, http.StatusBadRequest},
	} {
		err := a.Approve(mallory.desc.Identity, tc.ap)
		if !errors.As(err, &e) || e.Status != tc.want {
			t.Errorf("%s: %v, want status %d", tc.name, err, tc.want)
		}
	}
	if err := a.Remove(beta.desc.Identity); err != nil {
		t.Fatal(err)
	}
	if err := a.Approve(mallory.desc.Identity, provider(t, "beta.example")); err != nil {
		t.Errorf("the domain of a removed node: %v", err)
	}
}

// A store file from before approvals named a role: its approvals admit mixes and refuse a
// provider's descriptor with the command that fixes it; re-approved, the provider is accepted.
func TestLegacyApprovalAdmitsMixesOnly(t *testing.T) {
	n := newNetwork(t, 1, 1, same)
	n.clock.at(e0, 0)
	a := n.auths[0]
	m, p := newNode(t, 1, pki.RoleMix, e0), newNode(t, 2, pki.RoleProvider, e0)
	a.st.Close()
	db, err := bolt.Open(a.dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("approved"))
		if err := b.Put(m.desc.Identity[:], nil); err != nil {
			return err
		}
		return b.Put(p.desc.Identity[:], nil)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	a.start(t, n.clock, nil, 1, params())
	if !strings.Contains(a.logs.String(), "approved before approvals named a role") {
		t.Errorf("no start-up warning about legacy approvals:\n%s", a.logs.String())
	}
	if code, msg := post(t, a, m.raw); code != http.StatusOK {
		t.Errorf("legacy mix: %d %s", code, msg)
	}
	if code, msg := post(t, a, p.raw); code != http.StatusForbidden || !strings.Contains(msg, "--role provider --domain") {
		t.Errorf("legacy provider: %d %q, want 403 with the command that fixes it", code, msg)
	}
	if err := a.a.Approve(p.desc.Identity, approvalOf(t, p.desc)); err != nil {
		t.Fatal(err)
	}
	if code, msg := post(t, a, p.raw); code != http.StatusOK {
		t.Errorf("re-approved provider: %d %s", code, msg)
	}
}

// A refused node retries its upload every half second; each refusal is answered and counted,
// but the same refusal is logged once a minute, so an approved node cannot fill the
// authority's log.
func TestRepeatedRefusalLoggedOnceAMinute(t *testing.T) {
	n := newNetwork(t, 1, 1, same)
	n.clock.at(e0, 0)
	a := n.auths[0]
	beta := withDomains(t, newNode(t, 10, pki.RoleProvider, e0), "beta.example")
	publish(t, n, []node{beta}, 0)
	mallory := belowOf(t, beta, e0)
	if err := a.a.Approve(mallory.desc.Identity, mix); err != nil {
		t.Fatal(err)
	}
	bad := withDomains(t, mallory, "beta.example")
	refusals := func() int { return strings.Count(a.logs.String(), "descriptor refused") }
	for i := range 50 {
		if code, _ := post(t, a, bad.raw); code != http.StatusForbidden {
			t.Fatalf("upload %d: %d, want 403", i, code)
		}
	}
	if got := refusals(); got != 1 {
		t.Errorf("50 refused uploads in one instant logged %d times, want once", got)
	}
	if got := counter(t, a.reg, "directory_descriptor_uploads_total", "403"); got != 50 {
		t.Errorf("403 uploads = %v, want 50 (every refusal counted)", got)
	}
	n.clock.at(e0, time.Minute+time.Second)
	if code, _ := post(t, a, bad.raw); code != http.StatusForbidden {
		t.Fatalf("upload after a minute: %d, want 403", code)
	}
	if got := refusals(); got != 2 {
		t.Errorf("a refusal a minute later: logged %d times in all, want 2", got)
	}
}
