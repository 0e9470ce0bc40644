package pki

import (
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// benchNodes is the network size the issue asks figures for.
const benchNodes = 1000

// benchNet returns three authorities and their votes (encoded too) over 1,000 nodes: 900
// mixes and 100 providers.
func benchNet(b *testing.B) ([]*Vote, [][]byte, []*keys.IdentityPrivateKey, []keys.IdentityPublicKey) {
	b.Helper()
	auth, pub := newAuthorities(b, 3)
	nodes := mixNet(b, benchNodes*9/10, benchNodes/10, 700)
	var votes []*Vote
	var raws [][]byte
	for _, k := range auth {
		v := vote(b, k, 701, testParams(), nodes)
		raw, err := v.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		votes = append(votes, v)
		raws = append(raws, raw)
	}
	return votes, raws, auth, pub
}

// BenchmarkConsensus1000 is one authority's work at L/2: compute the document for 1,000 nodes
// from three votes, encode it and sign it.
func BenchmarkConsensus1000(b *testing.B) {
	votes, _, auth, pub := benchNet(b)
	p := testParams()
	for b.Loop() {
		doc, err := ComputeDocument(701, p, votes, pub, 2)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := doc.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		SignDocument(raw, auth[0])
	}
}

// BenchmarkParseVote1000 is checking one peer's vote for 1,000 nodes: parse it and verify its
// signature and the 1,000 descriptor signatures inside.
func BenchmarkParseVote1000(b *testing.B) {
	_, raws, _, _ := benchNet(b)
	b.SetBytes(int64(len(raws[0])))
	for b.Loop() {
		if _, err := ParseVote(raws[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify1000 is a client accepting the document for 1,000 nodes: parse it and verify
// the three authority signatures against a threshold of two.
func BenchmarkVerify1000(b *testing.B) {
	votes, _, auth, pub := benchNet(b)
	doc, err := ComputeDocument(701, testParams(), votes, pub, 2)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := doc.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	sd := &SignedDocument{Raw: raw, Document: doc}
	for _, k := range auth {
		if err := sd.AddSignature(SignDocument(raw, k)); err != nil {
			b.Fatal(err)
		}
	}
	signed := sd.Marshal()
	b.SetBytes(int64(len(signed)))
	for b.Loop() {
		if _, err := Verify(signed, 701, pub, 2); err != nil {
			b.Fatal(err)
		}
	}
}
