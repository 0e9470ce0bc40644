package pki

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// claiming returns a provider node of the test network re-signed to list domains.
func claiming(t *testing.T, i int, e Epoch, domains ...string) testNode {
	t.Helper()
	n := newTestNode(t, i, RoleProvider, e)
	n.desc.Domains = domains
	if err := n.desc.Sign(n.id); err != nil {
		t.Fatal(err)
	}
	return n
}

// Issue 13, finding 1: two providers in the consensus claim beta.example. The document leaves
// the domain to neither (the smaller identity used to win), keeps their other domains, and stays
// valid; no client can be sent to either for it.
func TestConsensusDropsContestedDomain(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	p := testParams()
	real := claiming(t, 20, 60, "beta.example", "mail.beta.example")
	rogue := claiming(t, 21, 60, "beta.example", "rogue.example")
	nodes := append(mixNet(t, 3, 0, 60), real, rogue)
	var votes []*Vote
	for _, k := range auth {
		votes = append(votes, vote(t, k, 60, p, nodes))
	}
	doc, err := ComputeDocument(60, p, votes, pub, 2)
	if err != nil {
		t.Fatal(err)
	}
	if pr, ok := doc.Provider("beta.example"); ok {
		t.Fatalf("Provider(beta.example) = %s: a contested domain was given to one claimant", pr.Identity)
	}
	for dom, want := range map[string]testNode{"mail.beta.example": real, "rogue.example": rogue} {
		if pr, ok := doc.Provider(dom); !ok || !pr.Identity.Equal(want.desc.Identity) {
			t.Errorf("Provider(%s): the uncontested domain lost its provider", dom)
		}
	}
	raw, err := doc.Marshal()
	if err != nil {
		t.Fatalf("the document with the contested domain dropped does not encode: %v", err)
	}
	back, err := ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := back.Provider("beta.example"); ok {
		t.Error("after a round trip, beta.example has a provider")
	}

	// Only one claimant in: it keeps the domain.
	doc, err = ComputeDocument(60, p, []*Vote{vote(t, auth[0], 60, p, nodes[:4]), vote(t, auth[1], 60, p, nodes[:4])}, pub, 2)
	if err != nil {
		t.Fatal(err)
	}
	if pr, ok := doc.Provider("beta.example"); !ok || !pr.Identity.Equal(real.desc.Identity) {
		t.Error("with one claimant, beta.example has no provider")
	}
}

// A document that lists one domain at two nodes is invalid: it neither encodes nor parses, and
// Provider on such a document (built in memory) finds no provider rather than choosing one.
func TestDocumentRefusesDuplicateDomain(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	p := testParams()
	a, b := claiming(t, 30, 70, "beta.example"), claiming(t, 31, 70, "zeta.example")
	var votes []*Vote
	for _, k := range auth {
		votes = append(votes, vote(t, k, 70, p, append(mixNet(t, 3, 0, 70), a, b)))
	}
	doc, err := ComputeDocument(70, p, votes, pub, 2)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite zeta.example into beta.example in the encoding: same length, so only the rule
	// refuses it.
	dup := bytes.Replace(raw, []byte("zeta.example"), []byte("beta.example"), 1)
	if bytes.Count(dup, []byte("beta.example")) != 2 {
		t.Fatal("the test did not duplicate the domain")
	}
	_, err = ParseDocument(dup)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `domain "beta.example" is listed by both`) {
		t.Fatalf("ParseDocument of a document with beta.example twice: %v", err)
	}

	for i := range doc.Nodes {
		if slices.Equal(doc.Nodes[i].Domains, []string{"zeta.example"}) {
			doc.Nodes[i].Domains = []string{"beta.example"}
		}
	}
	if _, err := doc.Marshal(); err == nil || !strings.Contains(err.Error(), "listed by both") {
		t.Fatalf("Marshal of a document with beta.example twice: %v", err)
	}
	if pr, ok := doc.Provider("beta.example"); ok {
		t.Fatalf("Provider(beta.example) chose %s among two claimants", pr.Identity)
	}
}
