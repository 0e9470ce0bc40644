package pki

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// detRand returns a deterministic byte source, so seeds and vectors are reproducible.
func detRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	s[2], s[3] = byte(seed>>16), byte(seed>>24)
	return rand.NewChaCha8(s)
}

// testNode is a node's keys and a signed descriptor for it.
type testNode struct {
	id   *keys.IdentityPrivateKey
	desc *Descriptor
}

// newTestNode makes node number i (deterministic keys) with a descriptor for epochs e..e+2.
func newTestNode(tb testing.TB, i int, role Role, e Epoch) testNode {
	tb.Helper()
	r := detRand(uint64(i) + 1000)
	id, err := keys.GenerateIdentityKey(r)
	if err != nil {
		tb.Fatal(err)
	}
	link, err := keys.GenerateLinkKey(r)
	if err != nil {
		tb.Fatal(err)
	}
	d := &Descriptor{
		Epoch:     e,
		Identity:  id.Public(),
		Link:      link.Public(),
		Role:      role,
		Addresses: []string{fmt.Sprintf("10.0.%d.%d:%d", i/250, i%250+1, 4000+i%1000), fmt.Sprintf("node%d.mix.example:443", i)},
	}
	if role == RoleProvider {
		d.Domains = []string{fmt.Sprintf("p%d.example", i), fmt.Sprintf("mail.p%d.example", i)}
		d.Services = []string{"loop", "mailbox"}
	}
	for k := range 3 {
		sk, err := keys.GenerateSphinxKey(r)
		if err != nil {
			tb.Fatal(err)
		}
		d.SphinxKeys = append(d.SphinxKeys, EpochKey{Epoch: e + Epoch(k), Key: sk.Public()})
		sk.Wipe()
	}
	if err := d.Sign(id); err != nil {
		tb.Fatal(err)
	}
	return testNode{id: id, desc: d}
}

// newAuthorities returns n deterministic authority keys and their public keys.
func newAuthorities(tb testing.TB, n int) ([]*keys.IdentityPrivateKey, []keys.IdentityPublicKey) {
	tb.Helper()
	var priv []*keys.IdentityPrivateKey
	var pub []keys.IdentityPublicKey
	for i := range n {
		k, err := keys.GenerateIdentityKey(detRand(uint64(i) + 1))
		if err != nil {
			tb.Fatal(err)
		}
		priv = append(priv, k)
		pub = append(pub, k.Public())
	}
	return priv, pub
}

// testParams are the defaults with a short epoch, as tests use.
func testParams() Parameters {
	p := DefaultParameters()
	p.EpochLength = 3 * time.Second
	return p
}

// vote signs a vote by k over the given nodes' descriptors.
func vote(tb testing.TB, k *keys.IdentityPrivateKey, e Epoch, p Parameters, nodes []testNode) *Vote {
	tb.Helper()
	v := &Vote{Epoch: e, Parameters: p}
	for _, n := range nodes {
		v.Descriptors = append(v.Descriptors, n.desc)
	}
	b, err := v.Sign(k)
	if err != nil {
		tb.Fatal(err)
	}
	pv, err := ParseVote(b)
	if err != nil {
		tb.Fatal(err)
	}
	return pv
}

// mixNet makes nMix mixes and nProv providers.
func mixNet(tb testing.TB, nMix, nProv int, e Epoch) []testNode {
	var out []testNode
	for i := range nMix {
		out = append(out, newTestNode(tb, i, RoleMix, e))
	}
	for i := range nProv {
		out = append(out, newTestNode(tb, nMix+i, RoleProvider, e))
	}
	return out
}

// signedDoc computes the document from votes by all given authorities and signs it with signers.
func signedDoc(tb testing.TB, e Epoch, auth []*keys.IdentityPrivateKey, pub []keys.IdentityPublicKey, nodes []testNode, signers ...int) []byte {
	tb.Helper()
	p := testParams()
	var votes []*Vote
	for _, k := range auth {
		votes = append(votes, vote(tb, k, e, p, nodes))
	}
	doc, err := ComputeDocument(e, p, votes, pub, 2)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := doc.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	sd := &SignedDocument{Raw: raw, Document: doc}
	for _, i := range signers {
		if err := sd.AddSignature(SignDocument(raw, auth[i])); err != nil {
			tb.Fatal(err)
		}
	}
	return sd.Marshal()
}
