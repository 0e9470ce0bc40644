package pki

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// Role is what a node does in the network.
type Role uint8

// Roles (docs/spec/pki.md section 4).
const (
	RoleMix      Role = 1
	RoleProvider Role = 2
)

// String returns "mix" or "provider".
func (r Role) String() string {
	switch r {
	case RoleMix:
		return "mix"
	case RoleProvider:
		return "provider"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole parses "mix" or "provider".
func ParseRole(s string) (Role, error) {
	switch s {
	case "mix":
		return RoleMix, nil
	case "provider":
		return RoleProvider, nil
	}
	return 0, fmt.Errorf("role %q: want \"mix\" or \"provider\"", s)
}

// EpochKey is a node's Sphinx public key for one epoch.
type EpochKey struct {
	Epoch Epoch
	Key   keys.SphinxPublicKey
}

// Descriptor is what a node publishes about itself, signed by its identity key
// (docs/spec/pki.md section 4).
type Descriptor struct {
	// Epoch is the first epoch the descriptor is for; SphinxKeys start there.
	Epoch     Epoch
	Identity  keys.IdentityPublicKey
	Link      keys.LinkPublicKey
	Role      Role
	Addresses []string
	// Domains and Services are for providers only.
	Domains  []string
	Services []string
	// SphinxKeys are for consecutive epochs starting at Epoch.
	SphinxKeys []EpochKey
	// Signature is set by Sign and checked by ParseDescriptor.
	Signature [64]byte
}

// SphinxKey returns the node's key for epoch e, if the descriptor has one.
func (d *Descriptor) SphinxKey(e Epoch) (keys.SphinxPublicKey, bool) {
	return sphinxKey(d.SphinxKeys, e)
}

func sphinxKey(list []EpochKey, e Epoch) (keys.SphinxPublicKey, bool) {
	for _, k := range list {
		if k.Epoch == e {
			return k.Key, true
		}
	}
	return keys.SphinxPublicKey{}, false
}

// Sign sorts the descriptor's lists, checks it, and signs it with the node's identity key, which
// must match Identity.
func (d *Descriptor) Sign(k *keys.IdentityPrivateKey) error {
	if !k.Public().Equal(d.Identity) {
		return errors.New("descriptor: signing key is not the descriptor's identity key")
	}
	slices.Sort(d.Addresses)
	slices.Sort(d.Domains)
	slices.Sort(d.Services)
	slices.SortFunc(d.SphinxKeys, func(a, b EpochKey) int { return cmp.Compare(a.Epoch, b.Epoch) })
	if err := d.validate(); err != nil {
		return err
	}
	copy(d.Signature[:], k.Sign(signedMessage(contextDescriptor, d.body())))
	return nil
}

// Marshal returns the canonical encoding of a signed descriptor.
func (d *Descriptor) Marshal() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	return append(d.body(), d.Signature[:]...), nil
}

// body encodes everything but the signature. d must be valid.
func (d *Descriptor) body() []byte {
	b := make([]byte, 0, 512)
	b = append(b, Version)
	b = appendU64(b, uint64(d.Epoch))
	b = append(b, d.Identity[:]...)
	b = append(b, d.Link[:]...)
	b = append(b, uint8(d.Role))
	b = appendStrList(b, d.Addresses)
	b = appendStrList(b, d.Domains)
	b = appendStrList(b, d.Services)
	return appendEpochKeys(b, d.SphinxKeys)
}

func appendEpochKeys(b []byte, list []EpochKey) []byte {
	b = append(b, uint8(len(list)))
	for _, k := range list {
		b = appendU64(b, uint64(k.Epoch))
		b = append(b, k.Key[:]...)
	}
	return b
}

// DescriptorIdentity returns the identity field of an encoded descriptor without parsing or
// verifying anything else, so a server can look the node up before spending a signature check.
// ok is false when b is too short or not version 1.
func DescriptorIdentity(b []byte) (id keys.IdentityPublicKey, ok bool) {
	const off = 1 + 8 // version, epoch
	if len(b) < off+len(id) || b[0] != Version {
		return id, false
	}
	copy(id[:], b[off:])
	return id, true
}

// ParseDescriptor decodes a descriptor strictly and verifies its signature.
func ParseDescriptor(b []byte) (*Descriptor, error) {
	if len(b) > MaxDescriptorSize {
		return nil, malformed("descriptor of %d bytes, limit %d", len(b), MaxDescriptorSize)
	}
	r := &reader{b: b}
	d, err := readDescriptorBody(r)
	if err != nil {
		return nil, fmt.Errorf("descriptor: %w", err)
	}
	body := b[:len(b)-len(r.b)]
	copy(d.Signature[:], r.take(64, "signature"))
	if err := r.end("descriptor"); err != nil {
		return nil, fmt.Errorf("descriptor: %w", err)
	}
	if !d.Identity.Verify(signedMessage(contextDescriptor, body), d.Signature[:]) {
		return nil, fmt.Errorf("descriptor: %w: bad signature by %s", ErrMalformed, d.Identity)
	}
	return d, nil
}

func readDescriptorBody(r *reader) (*Descriptor, error) {
	d := &Descriptor{}
	if v := r.u8("version"); r.err == nil && v != Version {
		return nil, malformed("unknown version %d", v)
	}
	d.Epoch = Epoch(r.u64("epoch"))
	id := r.array32("identity")
	link := r.array32("link key")
	d.Role = Role(r.u8("role"))
	d.Addresses = r.strList("addresses", MaxAddresses)
	d.Domains = r.strList("domains", MaxDomains)
	d.Services = r.strList("services", MaxServices)
	d.SphinxKeys = readEpochKeys(r, MaxSphinxKeys, true)
	if r.err != nil {
		return nil, r.err
	}
	var err error
	if d.Identity, err = keys.NewIdentityPublicKey(id[:]); err != nil {
		return nil, fmt.Errorf("%w: identity: %w", ErrMalformed, err)
	}
	if d.Link, err = keys.NewLinkPublicKey(link[:]); err != nil {
		return nil, fmt.Errorf("%w: link key: %w", ErrMalformed, err)
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return d, nil
}

// readEpochKeys reads u8 n || n * (u64 epoch || key). With checkKeys each key is validated as
// an X25519 public key (a scalar multiplication each); without, it is taken as it is.
func readEpochKeys(r *reader, max int, checkKeys bool) []EpochKey {
	n := int(r.u8("sphinx key count"))
	if r.err != nil {
		return nil
	}
	if n > max {
		r.err = malformed("%d sphinx keys, limit %d", n, max)
		return nil
	}
	out := make([]EpochKey, n)
	for i := range out {
		out[i].Epoch = Epoch(r.u64("key epoch"))
		k := r.array32("sphinx key")
		if r.err != nil {
			return nil
		}
		if !checkKeys {
			out[i].Key = keys.SphinxPublicKey(k)
			continue
		}
		var err error
		if out[i].Key, err = keys.NewSphinxPublicKey(k[:]); err != nil {
			r.err = fmt.Errorf("%w: sphinx key for epoch %d: %w", ErrMalformed, out[i].Epoch, err)
			return nil
		}
	}
	return out
}

// validate checks every rule of docs/spec/pki.md section 4 except the signature.
func (d *Descriptor) validate() error {
	if d.Role != RoleMix && d.Role != RoleProvider {
		return fmt.Errorf("descriptor: unknown role %d", uint8(d.Role))
	}
	if d.Identity.IsZero() || d.Link.IsZero() {
		return errors.New("descriptor: missing identity or link key")
	}
	if err := validateNodeFields(d.Role, d.Addresses, d.Domains, d.Services); err != nil {
		return fmt.Errorf("descriptor: %w", err)
	}
	n := len(d.SphinxKeys)
	if n < 1 || n > MaxSphinxKeys {
		return fmt.Errorf("descriptor: %d sphinx keys, want 1 to %d", n, MaxSphinxKeys)
	}
	for i, k := range d.SphinxKeys {
		if k.Epoch != d.Epoch+Epoch(i) || k.Epoch < d.Epoch {
			return fmt.Errorf("descriptor: sphinx key %d is for epoch %d, want %d (consecutive from the descriptor epoch)", i, k.Epoch, d.Epoch+Epoch(i))
		}
		if k.Key == (keys.SphinxPublicKey{}) {
			return fmt.Errorf("descriptor: sphinx key for epoch %d is missing", k.Epoch)
		}
		for _, o := range d.SphinxKeys[:i] {
			if o.Key.Equal(k.Key) {
				return fmt.Errorf("descriptor: sphinx key for epoch %d repeats an earlier key", k.Epoch)
			}
		}
	}
	return nil
}

// validateNodeFields checks role-dependent lists shared by descriptors and document nodes.
func validateNodeFields(role Role, addrs, domains, services []string) error {
	if len(addrs) < 1 || len(addrs) > MaxAddresses {
		return fmt.Errorf("%d addresses, want 1 to %d", len(addrs), MaxAddresses)
	}
	if err := sortedUnique("addresses", addrs, validAddress); err != nil {
		return err
	}
	if role == RoleMix && (len(domains) > 0 || len(services) > 0) {
		return errors.New("a mix has no domains or services")
	}
	if len(domains) > MaxDomains {
		return fmt.Errorf("%d domains, limit %d", len(domains), MaxDomains)
	}
	if err := sortedUnique("domains", domains, validDomain); err != nil {
		return err
	}
	if len(services) > MaxServices {
		return fmt.Errorf("%d services, limit %d", len(services), MaxServices)
	}
	return sortedUnique("services", services, validService)
}

func sortedUnique(what string, list []string, valid func(string) error) error {
	for i, s := range list {
		if err := valid(s); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if i > 0 && list[i-1] >= s {
			return fmt.Errorf("%s: %q and %q are not sorted and unique", what, list[i-1], s)
		}
	}
	return nil
}

// validAddress accepts host:port exactly as net.JoinHostPort writes it.
func validAddress(a string) error {
	if len(a) > 255 {
		return fmt.Errorf("address of %d bytes, limit 255", len(a))
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("address %q: %w", a, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || strconv.FormatUint(p, 10) != port {
		return fmt.Errorf("address %q: port must be 1 to 65535 in decimal", a)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" || ip.String() != host {
			return fmt.Errorf("address %q: IP not in canonical form (want %s, no zone)", a, ip.WithZone(""))
		}
	} else if err := validDomain(host); err != nil {
		return fmt.Errorf("address %q: host: %w", a, err)
	}
	if net.JoinHostPort(host, port) != a {
		return fmt.Errorf("address %q: not in canonical host:port form", a)
	}
	return nil
}

// validDomain accepts lowercase DNS names (docs/spec/pki.md section 4).
func validDomain(s string) error {
	if len(s) == 0 || len(s) > maxDomainLen {
		return fmt.Errorf("domain %q: length must be 1 to %d", s, maxDomainLen)
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain %q: byte %q not allowed (lowercase letters, digits, '-', '.')", s, c)
			}
			continue
		}
		label := s[start:i]
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("domain %q: labels must be 1 to 63 bytes", s)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain %q: a label may not start or end with '-'", s)
		}
		start = i + 1
	}
	return nil
}

// validService accepts [a-z][a-z0-9-]* up to 32 bytes.
func validService(s string) error {
	if len(s) == 0 || len(s) > maxServiceLen {
		return fmt.Errorf("service %q: length must be 1 to %d", s, maxServiceLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '-') {
			continue
		}
		return fmt.Errorf("service %q: must match [a-z][a-z0-9-]*", s)
	}
	return nil
}
