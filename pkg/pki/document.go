package pki

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// Node is one node's entry in a consensus document (docs/spec/pki.md section 5).
type Node struct {
	Identity keys.IdentityPublicKey
	Link     keys.LinkPublicKey
	Role     Role
	// Layer is 0 for a provider, 1 to Layers for a mix.
	Layer     uint8
	Addresses []string
	Domains   []string
	Services  []string
	// SphinxKeys holds the key for the document's epoch and, when published, the next one.
	SphinxKeys []EpochKey
}

// SphinxKey returns the node's key for epoch e, if the document has one.
func (n *Node) SphinxKey(e Epoch) (keys.SphinxPublicKey, bool) {
	return sphinxKey(n.SphinxKeys, e)
}

// Document is the consensus for one epoch (docs/spec/pki.md section 5).
type Document struct {
	Epoch      Epoch
	Parameters Parameters
	// Nodes are sorted by identity.
	Nodes []Node
}

// Node returns the node with the given identity.
func (d *Document) Node(id keys.IdentityPublicKey) (*Node, bool) {
	i, ok := slices.BinarySearchFunc(d.Nodes, id, func(n Node, id keys.IdentityPublicKey) int {
		return bytes.Compare(n.Identity[:], id[:])
	})
	if !ok {
		return nil, false
	}
	return &d.Nodes[i], true
}

// Layer returns the mixes of layer l (1 to Layers), or the providers for l = 0, in identity order.
func (d *Document) Layer(l uint8) []Node {
	var out []Node
	for _, n := range d.Nodes {
		if n.Layer == l {
			out = append(out, n)
		}
	}
	return out
}

// Provider returns the provider that serves mail domain domain: the one node that lists it. A
// domain listed by no node has no provider, and so has one listed by several (which a parsed
// document never holds): a client never chooses among claimants, by identity order or any other
// (docs/spec/pki.md section 5).
func (d *Document) Provider(domain string) (*Node, bool) {
	var found *Node
	for i := range d.Nodes {
		n := &d.Nodes[i]
		if n.Role != RoleProvider || !slices.Contains(n.Domains, domain) {
			continue
		}
		if found != nil {
			return nil, false
		}
		found = n
	}
	return found, found != nil
}

// Marshal returns the canonical encoding of the document (unsigned).
func (d *Document) Marshal() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(d.Nodes)*256)
	b = append(b, Version)
	b = appendU64(b, uint64(d.Epoch))
	b = d.Parameters.appendTo(b)
	b = appendU32(b, uint32(len(d.Nodes)))
	for i := range d.Nodes {
		n := &d.Nodes[i]
		b = append(b, n.Identity[:]...)
		b = append(b, n.Link[:]...)
		b = append(b, uint8(n.Role), n.Layer)
		b = appendStrList(b, n.Addresses)
		b = appendStrList(b, n.Domains)
		b = appendStrList(b, n.Services)
		b = appendEpochKeys(b, n.SphinxKeys)
	}
	// Leave room for the envelope with every signature, so a signed document always fits.
	if limit := MaxDocumentSize - 4 - 1 - MaxSignatures*SignatureSize; len(b) > limit {
		return nil, fmt.Errorf("document: %d bytes, limit %d", len(b), limit)
	}
	return b, nil
}

// validate checks the document rules of docs/spec/pki.md section 5.
func (d *Document) validate() error {
	if err := d.Parameters.Validate(); err != nil {
		return fmt.Errorf("document: %w", err)
	}
	if len(d.Nodes) > MaxNodes {
		return fmt.Errorf("document: %d nodes, limit %d", len(d.Nodes), MaxNodes)
	}
	for i := range d.Nodes {
		n := &d.Nodes[i]
		if i > 0 && bytes.Compare(d.Nodes[i-1].Identity[:], n.Identity[:]) >= 0 {
			return fmt.Errorf("document: nodes not sorted and unique at %s", n.Identity)
		}
		if err := n.validate(d.Epoch); err != nil {
			return fmt.Errorf("document: node %s: %w", n.Identity, err)
		}
	}
	return uniqueDomains(d.Nodes)
}

// uniqueDomains refuses a mail domain listed by two nodes: the document would leave the choice
// of the provider to the client (docs/spec/pki.md section 5).
func uniqueDomains(nodes []Node) error {
	owner := make(map[string]*Node)
	for i := range nodes {
		n := &nodes[i]
		for _, dom := range n.Domains {
			if o, dup := owner[dom]; dup {
				return fmt.Errorf("document: domain %q is listed by both %s and %s: a domain has at most one provider", dom, o.Identity, n.Identity)
			}
			owner[dom] = n
		}
	}
	return nil
}

func (n *Node) validate(e Epoch) error {
	switch {
	case n.Role == RoleProvider && n.Layer != 0:
		return fmt.Errorf("provider in layer %d", n.Layer)
	case n.Role == RoleMix && (n.Layer < 1 || n.Layer > Layers):
		return fmt.Errorf("mix in layer %d, want 1 to %d", n.Layer, Layers)
	case n.Role != RoleMix && n.Role != RoleProvider:
		return fmt.Errorf("unknown role %d", uint8(n.Role))
	}
	if n.Identity.IsZero() || n.Link.IsZero() {
		return errors.New("missing identity or link key")
	}
	if err := validateNodeFields(n.Role, n.Addresses, n.Domains, n.Services); err != nil {
		return err
	}
	if len(n.SphinxKeys) < 1 || len(n.SphinxKeys) > 2 {
		return fmt.Errorf("%d sphinx keys, want 1 or 2", len(n.SphinxKeys))
	}
	for i, k := range n.SphinxKeys {
		if k.Epoch != e+Epoch(i) || k.Epoch < e {
			return fmt.Errorf("sphinx key %d is for epoch %d, want %d", i, k.Epoch, e+Epoch(i))
		}
		if k.Key == (keys.SphinxPublicKey{}) {
			return fmt.Errorf("sphinx key for epoch %d is missing", k.Epoch)
		}
	}
	if len(n.SphinxKeys) == 2 && n.SphinxKeys[0].Key.Equal(n.SphinxKeys[1].Key) {
		return errors.New("the same sphinx key for two epochs")
	}
	return nil
}

// ParseDocument decodes an unsigned document strictly, validating every key.
func ParseDocument(b []byte) (*Document, error) { return parseDocument(b, true) }

// parseDocument decodes a document. checkKeys=false skips the per-key curve checks (about
// 0.1 ms per node); Verify uses that only after threshold authority signatures on these very
// bytes verified, because authorities validated every key when its descriptor arrived
// (docs/spec/pki.md section 5). Every other rule is checked either way.
func parseDocument(b []byte, checkKeys bool) (*Document, error) {
	if len(b) > MaxDocumentSize {
		return nil, malformed("document of %d bytes, limit %d", len(b), MaxDocumentSize)
	}
	r := &reader{b: b}
	d := &Document{}
	if v := r.u8("version"); r.err == nil && v != Version {
		return nil, fmt.Errorf("document: %w", malformed("unknown version %d", v))
	}
	d.Epoch = Epoch(r.u64("epoch"))
	if r.err != nil {
		return nil, fmt.Errorf("document: %w", r.err)
	}
	var err error
	if d.Parameters, err = readParameters(r); err != nil {
		return nil, fmt.Errorf("document: %w", err)
	}
	count := r.u32("node count")
	if r.err == nil && count > MaxNodes {
		return nil, fmt.Errorf("document: %w", malformed("%d nodes, limit %d", count, MaxNodes))
	}
	d.Nodes = make([]Node, count)
	for i := range d.Nodes {
		n := &d.Nodes[i]
		id := r.array32("identity")
		link := r.array32("link key")
		n.Role = Role(r.u8("role"))
		n.Layer = r.u8("layer")
		n.Addresses = r.strList("addresses", MaxAddresses)
		n.Domains = r.strList("domains", MaxDomains)
		n.Services = r.strList("services", MaxServices)
		n.SphinxKeys = readEpochKeys(r, 2, checkKeys)
		if r.err != nil {
			return nil, fmt.Errorf("document: node %d: %w", i, r.err)
		}
		if !checkKeys {
			n.Identity, n.Link = keys.IdentityPublicKey(id), keys.LinkPublicKey(link)
			continue
		}
		if n.Identity, err = keys.NewIdentityPublicKey(id[:]); err != nil {
			return nil, fmt.Errorf("document: node %d: %w: identity: %w", i, ErrMalformed, err)
		}
		if n.Link, err = keys.NewLinkPublicKey(link[:]); err != nil {
			return nil, fmt.Errorf("document: node %d: %w: link key: %w", i, ErrMalformed, err)
		}
	}
	if err := r.end("document"); err != nil {
		return nil, fmt.Errorf("document: %w", err)
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return d, nil
}
