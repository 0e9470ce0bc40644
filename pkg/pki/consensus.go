package pki

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// ErrParameterMismatch is returned by ComputeDocument when a vote's parameters differ from the
// authority's own: the epoch fails rather than publish parameters someone did not agree to.
var ErrParameterMismatch = errors.New("authorities disagree on parameters")

// ErrTooFewVotes is returned by ComputeDocument when fewer than threshold votes are available.
var ErrTooFewVotes = errors.New("too few votes")

// ComputeDocument applies the deterministic rules of docs/spec/pki.md section 7 to votes for
// epoch e. params are the calling authority's own parameters; authorities and threshold are the
// configured trust set (N = len(authorities)). Votes must be parsed (their signatures checked by
// ParseVote); votes for another epoch, from authorities not in the set, or repeated are refused.
func ComputeDocument(e Epoch, params Parameters, votes []*Vote, authorities []keys.IdentityPublicKey, threshold int) (*Document, error) {
	if err := CheckAuthorities(authorities, threshold); err != nil {
		return nil, err
	}
	if err := params.Validate(); err != nil {
		return nil, err
	}
	seen := make([]bool, len(authorities))
	for _, v := range votes {
		i := slices.IndexFunc(authorities, v.Authority.Equal)
		switch {
		case i < 0:
			return nil, fmt.Errorf("vote by %s, who is not a configured authority", v.Authority)
		case seen[i]:
			return nil, fmt.Errorf("two votes by %s", v.Authority)
		case v.Epoch != e:
			return nil, fmt.Errorf("vote by %s is for epoch %d, want %d", v.Authority, v.Epoch, e)
		case !v.Parameters.Equal(params):
			return nil, fmt.Errorf("%w: vote by %s has %+v, ours are %+v", ErrParameterMismatch, v.Authority, v.Parameters, params)
		}
		seen[i] = true
	}
	if len(votes) < threshold {
		return nil, fmt.Errorf("%w: %d votes for epoch %d, threshold %d", ErrTooFewVotes, len(votes), e, threshold)
	}

	// For each node: how many votes hold it, and how many hold each distinct descriptor.
	type candidate struct {
		d     *Descriptor
		enc   []byte
		hash  [32]byte
		count int
	}
	type nodeVotes struct {
		votes      int
		candidates []*candidate
	}
	byNode := make(map[keys.IdentityPublicKey]*nodeVotes)
	for _, v := range votes {
		for _, d := range v.Descriptors {
			enc, err := d.Marshal()
			if err != nil {
				return nil, fmt.Errorf("vote by %s: %w", v.Authority, err)
			}
			nv := byNode[d.Identity]
			if nv == nil {
				nv = &nodeVotes{}
				byNode[d.Identity] = nv
			}
			nv.votes++
			j := slices.IndexFunc(nv.candidates, func(c *candidate) bool { return bytes.Equal(c.enc, enc) })
			if j < 0 {
				nv.candidates = append(nv.candidates, &candidate{d: d, enc: enc, hash: sha256.Sum256(enc)})
				j = len(nv.candidates) - 1
			}
			nv.candidates[j].count++
		}
	}

	doc := &Document{Epoch: e, Parameters: params}
	var mixes []int
	for id, nv := range byNode {
		if nv.votes*2 <= len(authorities) {
			continue // rule 2: not a majority of all configured authorities
		}
		best := slices.MinFunc(nv.candidates, func(a, b *candidate) int {
			if a.count != b.count {
				return b.count - a.count // more votes first
			}
			return bytes.Compare(a.hash[:], b.hash[:])
		})
		d := best.d
		n := Node{
			Identity:  id,
			Link:      d.Link,
			Role:      d.Role,
			Addresses: slices.Clone(d.Addresses),
			Domains:   slices.Clone(d.Domains),
			Services:  slices.Clone(d.Services),
		}
		for _, k := range d.SphinxKeys {
			if k.Epoch == e || k.Epoch == e+1 {
				n.SphinxKeys = append(n.SphinxKeys, k)
			}
		}
		doc.Nodes = append(doc.Nodes, n)
	}
	if len(doc.Nodes) > MaxNodes {
		return nil, fmt.Errorf("%d nodes for epoch %d, limit %d", len(doc.Nodes), e, MaxNodes)
	}
	slices.SortFunc(doc.Nodes, func(a, b Node) int { return bytes.Compare(a.Identity[:], b.Identity[:]) })
	dropContestedDomains(doc.Nodes)
	for i := range doc.Nodes {
		if doc.Nodes[i].Role == RoleMix {
			mixes = append(mixes, i)
		}
	}
	assignLayers(e, doc.Nodes, mixes)
	return doc, nil
}

// assignLayers deals the mixes (indexes into nodes) round-robin into layers 1..Layers in the
// order of SHA-256(context || 0x00 || u64 e || identity) (docs/spec/pki.md section 7 rule 4), so
// layers are balanced, change every epoch, and no node chooses its own layer.
func assignLayers(e Epoch, nodes []Node, mixes []int) {
	type keyed struct {
		h [32]byte
		i int
	}
	order := make([]keyed, len(mixes))
	for j, i := range mixes {
		m := signedMessage(contextLayer, appendU64(nil, uint64(e)))
		m = append(m, nodes[i].Identity[:]...)
		order[j] = keyed{h: sha256.Sum256(m), i: i}
	}
	slices.SortFunc(order, func(a, b keyed) int {
		if c := bytes.Compare(a.h[:], b.h[:]); c != 0 {
			return c
		}
		return bytes.Compare(nodes[a.i].Identity[:], nodes[b.i].Identity[:])
	})
	for j, k := range order {
		nodes[k.i].Layer = uint8(1 + j%Layers)
	}
}

// dropContestedDomains removes every mail domain that more than one node lists from all of them
// (docs/spec/pki.md section 7 rule 5). No order decides which of two claimants serves a domain:
// an identity order would hand it to whoever draws the smaller key. The domain has no provider
// until the authorities' approvals leave one claimant.
func dropContestedDomains(nodes []Node) {
	count := make(map[string]int)
	for i := range nodes {
		for _, dom := range nodes[i].Domains {
			count[dom]++
		}
	}
	for i := range nodes {
		nodes[i].Domains = slices.DeleteFunc(nodes[i].Domains, func(dom string) bool { return count[dom] > 1 })
	}
}
