package pki

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

func mustMarshal(t *testing.T, d *Document) []byte {
	t.Helper()
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConsensusSameBytes: three authorities with the same votes, in any order, compute the same
// document bytes.
func TestConsensusSameBytes(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	nodes := mixNet(t, 10, 3, 20)
	p := testParams()
	var votes []*Vote
	for _, k := range auth {
		votes = append(votes, vote(t, k, 21, p, nodes))
	}
	var first []byte
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
		var vs []*Vote
		for _, i := range order {
			vs = append(vs, votes[i])
		}
		doc, err := ComputeDocument(21, p, vs, pub, 2)
		if err != nil {
			t.Fatal(err)
		}
		b := mustMarshal(t, doc)
		if first == nil {
			first = b
		} else if !bytes.Equal(first, b) {
			t.Fatalf("order %v gives different bytes", order)
		}
	}
	doc, _ := ParseDocument(first)
	if len(doc.Nodes) != 13 {
		t.Fatalf("%d nodes, want 13", len(doc.Nodes))
	}
	// Balanced layers: 10 mixes into 3 layers is 4, 3, 3 in some order.
	var sizes []int
	for l := uint8(1); l <= Layers; l++ {
		sizes = append(sizes, len(doc.Layer(l)))
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{3, 3, 4}) {
		t.Errorf("layer sizes %v, want 3, 3, 4", sizes)
	}
	// Layers change between epochs (deterministic, but not fixed per node).
	var votes22 []*Vote
	for _, k := range auth {
		votes22 = append(votes22, vote(t, k, 22, p, nodes))
	}
	doc22, err := ComputeDocument(22, p, votes22, pub, 2)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for i := range doc.Nodes {
		if doc.Nodes[i].Layer != doc22.Nodes[i].Layer {
			moved++
		}
	}
	if moved == 0 {
		t.Error("no mix changed layer between epochs 21 and 22")
	}
}

// TestConsensusMajority: a node only one of three authorities votes for stays out; one held by
// two gets in, also when the third authority's vote is missing.
func TestConsensusMajority(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	nodes := mixNet(t, 6, 2, 30)
	rogue := newTestNode(t, 99, RoleMix, 30)
	pair := newTestNode(t, 98, RoleProvider, 30)
	p := testParams()
	votes := []*Vote{
		vote(t, auth[0], 30, p, append(slices.Clone(nodes), rogue, pair)),
		vote(t, auth[1], 30, p, append(slices.Clone(nodes), pair)),
		vote(t, auth[2], 30, p, nodes),
	}
	doc, err := ComputeDocument(30, p, votes, pub, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.Node(rogue.desc.Identity); ok {
		t.Error("node voted for by one authority of three is in the document")
	}
	if _, ok := doc.Node(pair.desc.Identity); !ok {
		t.Error("node voted for by two authorities of three is missing")
	}
	// One authority down: the two others suffice; a node needs both of them.
	doc2, err := ComputeDocument(30, p, votes[:2], pub, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc2.Nodes) != len(nodes)+1 {
		t.Errorf("with two votes: %d nodes, want %d", len(doc2.Nodes), len(nodes)+1)
	}
	if _, err := ComputeDocument(30, p, votes[:1], pub, 2); !errors.Is(err, ErrTooFewVotes) {
		t.Errorf("one vote, threshold 2: %v, want ErrTooFewVotes", err)
	}
}

// TestConsensusDescriptorChoice: when authorities hold different descriptors of a node, the one
// held by most wins.
func TestConsensusDescriptorChoice(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	n := newTestNode(t, 5, RoleMix, 40)
	alt := *n.desc
	alt.Addresses = []string{"192.0.2.1:9"}
	if err := alt.Sign(n.id); err != nil {
		t.Fatal(err)
	}
	altNode := testNode{id: n.id, desc: &alt}
	p := testParams()
	votes := []*Vote{
		vote(t, auth[0], 40, p, []testNode{altNode}),
		vote(t, auth[1], 40, p, []testNode{n}),
		vote(t, auth[2], 40, p, []testNode{n}),
	}
	doc, err := ComputeDocument(40, p, votes, pub, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Nodes[0].Addresses; !slices.Equal(got, n.desc.Addresses) {
		t.Errorf("addresses %v, want the majority's %v", got, n.desc.Addresses)
	}
}

func TestConsensusRefuses(t *testing.T) {
	auth, pub := newAuthorities(t, 4)
	nodes := mixNet(t, 3, 1, 50)
	p := testParams()
	other := p
	other.LambdaP = 3
	good := vote(t, auth[0], 50, p, nodes)
	for _, tc := range []struct {
		name  string
		votes []*Vote
		want  error
	}{
		{"parameter mismatch", []*Vote{good, vote(t, auth[1], 50, other, nodes)}, ErrParameterMismatch},
		{"epoch length mismatch", []*Vote{good, vote(t, auth[1], 50, func() Parameters { q := p; q.EpochLength = time.Minute; return q }(), nodes)}, ErrParameterMismatch},
		{"unknown authority", []*Vote{good, vote(t, auth[3], 50, p, nodes)}, nil},
		{"same authority twice", []*Vote{good, good}, nil},
		{"wrong epoch", []*Vote{good, vote(t, auth[1], 51, p, mixNet(t, 3, 1, 51))}, nil},
	} {
		_, err := ComputeDocument(50, p, tc.votes, pub[:3], 2)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := ComputeDocument(50, p, []*Vote{good}, pub[:3], 4); err == nil {
		t.Error("threshold above N accepted")
	}
	if _, err := ComputeDocument(50, p, []*Vote{good}, []keys.IdentityPublicKey{pub[0], pub[0]}, 1); err == nil {
		t.Error("duplicate authority accepted")
	}
}

func TestVoteRoundTripAndRejects(t *testing.T) {
	auth, _ := newAuthorities(t, 2)
	v := vote(t, auth[0], 60, testParams(), mixNet(t, 4, 2, 59))
	b, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	v2, err := ParseVote(b)
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := v2.Marshal(); !bytes.Equal(b, b2) {
		t.Fatal("vote re-encodes differently")
	}
	tampered := bytes.Clone(b)
	tampered[len(tampered)-100] ^= 1
	if _, err := ParseVote(tampered); err == nil {
		t.Error("tampered vote accepted")
	}
	forged := bytes.Clone(b)
	other := auth[1].Public()
	copy(forged[9:41], other[:])
	if _, err := ParseVote(forged); err == nil {
		t.Error("vote with another authority's key accepted")
	}
	if _, err := ParseVote(append(bytes.Clone(b), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	// A descriptor without a key for the vote's epoch cannot be in the vote.
	late := &Vote{Epoch: 70, Parameters: testParams(), Descriptors: []*Descriptor{newTestNode(t, 1, RoleMix, 59).desc}}
	if _, err := late.Sign(auth[0]); err == nil {
		t.Error("vote with a descriptor lacking the epoch's key signed")
	}
}
