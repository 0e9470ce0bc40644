package pki

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

func TestDescriptorRoundTrip(t *testing.T) {
	for _, role := range []Role{RoleMix, RoleProvider} {
		n := newTestNode(t, 7, role, 100)
		b, err := n.desc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		d, err := ParseDescriptor(b)
		if err != nil {
			t.Fatalf("%v: %v", role, err)
		}
		b2, err := d.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%v: re-encoding differs (%v)", role, err)
		}
		if k, ok := d.SphinxKey(101); !ok || !k.Equal(n.desc.SphinxKeys[1].Key) {
			t.Errorf("SphinxKey(101) = %v, %v", k, ok)
		}
		if _, ok := d.SphinxKey(99); ok {
			t.Error("SphinxKey(99) found")
		}
		if id, ok := DescriptorIdentity(b); !ok || !id.Equal(n.desc.Identity) {
			t.Errorf("DescriptorIdentity = %s, %v", id, ok)
		}
		if _, ok := DescriptorIdentity(b[:40]); ok {
			t.Error("DescriptorIdentity of 40 bytes: ok")
		}
	}
}

// TestDescriptorRejects changes one field of a valid descriptor at a time; Sign (which
// validates) or ParseDescriptor must refuse each.
func TestDescriptorRejects(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name string
		edit func(d *Descriptor)
	}{
		{"no address", func(d *Descriptor) { d.Addresses = nil }},
		{"too many addresses", func(d *Descriptor) {
			d.Addresses = nil
			for i := range MaxAddresses + 1 {
				d.Addresses = append(d.Addresses, "10.0.0.1:"+string(rune('1'+i)))
			}
		}},
		{"duplicate address", func(d *Descriptor) { d.Addresses = []string{"10.0.0.1:1", "10.0.0.1:1"} }},
		{"no port", func(d *Descriptor) { d.Addresses = []string{"10.0.0.1"} }},
		{"port 0", func(d *Descriptor) { d.Addresses = []string{"10.0.0.1:0"} }},
		{"port leading zero", func(d *Descriptor) { d.Addresses = []string{"10.0.0.1:080"} }},
		{"port too big", func(d *Descriptor) { d.Addresses = []string{"10.0.0.1:65536"} }},
		{"uppercase host", func(d *Descriptor) { d.Addresses = []string{"Mix.example:1"} }},
		{"ipv6 not canonical", func(d *Descriptor) { d.Addresses = []string{"[0:0::1]:1"} }},
		{"ipv6 zone", func(d *Descriptor) { d.Addresses = []string{"[fe80::1%eth0]:1"} }},
		{"address too long", func(d *Descriptor) { d.Addresses = []string{strings.Repeat("a.", 127) + "a:1"} }},
		{"mix with domain", func(d *Descriptor) { d.Role = RoleMix; d.Services = nil }},
		{"mix with service", func(d *Descriptor) { d.Role = RoleMix; d.Domains = nil }},
		{"unknown role", func(d *Descriptor) { d.Role = 3 }},
		{"domain label too long", func(d *Descriptor) { d.Domains = []string{long + ".example"} }},
		{"domain empty label", func(d *Descriptor) { d.Domains = []string{"a..example"} }},
		{"domain hyphen", func(d *Descriptor) { d.Domains = []string{"-a.example"} }},
		{"domain uppercase", func(d *Descriptor) { d.Domains = []string{"A.example"} }},
		{"too many domains", func(d *Descriptor) {
			d.Domains = nil
			for i := range MaxDomains + 1 {
				d.Domains = append(d.Domains, "d"+strings.Repeat("x", i)+".example")
			}
		}},
		{"service bad", func(d *Descriptor) { d.Services = []string{"Mailbox"} }},
		{"service digit first", func(d *Descriptor) { d.Services = []string{"1x"} }},
		{"service too long", func(d *Descriptor) { d.Services = []string{"s" + strings.Repeat("x", maxServiceLen)} }},
		{"too many services", func(d *Descriptor) {
			d.Services = nil
			for i := range MaxServices + 1 {
				d.Services = append(d.Services, "s"+strings.Repeat("x", i))
			}
		}},
		{"no sphinx key", func(d *Descriptor) { d.SphinxKeys = nil }},
		{"too many sphinx keys", func(d *Descriptor) {
			for i := 3; i <= MaxSphinxKeys; i++ {
				d.SphinxKeys = append(d.SphinxKeys, EpochKey{Epoch: d.Epoch + Epoch(i), Key: newTestNode(t, 50+i, RoleMix, 0).desc.SphinxKeys[0].Key})
			}
		}},
		{"key gap", func(d *Descriptor) { d.SphinxKeys[1].Epoch++; d.SphinxKeys[2].Epoch++ }},
		{"key before epoch", func(d *Descriptor) { d.Epoch++ }},
		{"repeated key", func(d *Descriptor) { d.SphinxKeys[1].Key = d.SphinxKeys[0].Key }},
		{"zero key", func(d *Descriptor) { d.SphinxKeys[1].Key = keys.SphinxPublicKey{} }},
		{"zero link key", func(d *Descriptor) { d.Link = keys.LinkPublicKey{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNode(t, 1, RoleProvider, 10)
			tc.edit(n.desc)
			if err := n.desc.Sign(n.id); err == nil {
				t.Error("Sign accepted it")
			}
			// Encode without validation and check the parser refuses too.
			b := append(n.desc.body(), n.desc.Signature[:]...)
			if len(b) <= MaxDescriptorSize {
				if _, err := ParseDescriptor(b); err == nil {
					t.Error("ParseDescriptor accepted it")
				}
			}
		})
	}
}

func TestDescriptorParseRejects(t *testing.T) {
	n := newTestNode(t, 2, RoleProvider, 10)
	good, _ := n.desc.Marshal()
	other := newTestNode(t, 3, RoleProvider, 10)
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"version 2", mutate(func(b []byte) []byte { b[0] = 2; return b })},
		{"tampered epoch", mutate(func(b []byte) []byte { b[8] ^= 1; return b })},
		{"tampered signature", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{"wrong signer", mutate(func(b []byte) []byte {
			copy(b[len(b)-64:], other.id.Sign(signedMessage(contextDescriptor, b[:len(b)-64])))
			return b
		})},
		{"oversize", make([]byte, MaxDescriptorSize+1)},
	} {
		if _, err := ParseDescriptor(tc.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tc.name, err)
		}
	}
}

// TestOverLimitCounts encodes counts one over each limit and checks the parsers refuse them
// before reading the entries.
func TestOverLimitCounts(t *testing.T) {
	head := func() []byte {
		b := []byte{Version}
		b = appendU64(b, 1)
		b = append(b, make([]byte, 64)...)
		return append(b, uint8(RoleMix))
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"addresses", append(head(), MaxAddresses+1)},
		{"domains", append(head(), 0, MaxDomains+1)},
		{"services", append(head(), 0, 0, MaxServices+1)},
		{"sphinx keys", append(head(), 0, 0, 0, MaxSphinxKeys+1)},
	} {
		_, err := ParseDescriptor(tc.b)
		if err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("%s: err = %v, want a limit error", tc.name, err)
		}
	}
	docHead := append([]byte{Version}, appendU64(nil, 1)...)
	docHead = testParams().appendTo(docHead)
	if _, err := ParseDocument(appendU32(bytes.Clone(docHead), MaxNodes+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("nodes: err = %v, want a limit error", err)
	}
	voteHead := append([]byte{Version}, appendU64(nil, 1)...)
	_, pub := newAuthorities(t, 1)
	voteHead = testParams().appendTo(append(voteHead, pub[0][:]...))
	if _, err := ParseVote(appendU32(voteHead, MaxNodes+1)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("vote descriptors: err = %v, want a limit error", err)
	}
	_, auth := newAuthorities(t, 1)
	sd := appendU32(nil, uint32(len(docHead)+4))
	sd = append(append(sd, docHead...), 0, 0, 0, 0, MaxSignatures+1)
	if _, err := ParseSignedDocument(sd); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("signatures: err = %v, want a limit error (authority %s)", err, auth[0])
	}
	if _, err := ParseSignedDocument(make([]byte, MaxDocumentSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize signed document: %v", err)
	}
	if _, err := ParseVote(make([]byte, MaxDocumentSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize vote: %v", err)
	}
}

func TestParameters(t *testing.T) {
	if err := DefaultParameters().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if mu := DefaultParameters().Mu(); mu != 5 {
		t.Errorf("Mu() = %v, want 5", mu)
	}
	for _, tc := range []struct {
		name string
		edit func(p *Parameters)
	}{
		{"hops 0", func(p *Parameters) { p.Geometry.Hops = 0 }},
		{"lambda_p 0", func(p *Parameters) { p.LambdaP = 0 }},
		{"lambda_l negative", func(p *Parameters) { p.LambdaL = -1 }},
		{"lambda_d NaN", func(p *Parameters) { p.LambdaD = math.NaN() }},
		{"lambda_m inf", func(p *Parameters) { p.LambdaM = math.Inf(1) }},
		{"lambda_p -0", func(p *Parameters) { p.LambdaP = math.Copysign(0, -1) }},
		{"mean delay sub-ms", func(p *Parameters) { p.MeanDelay = 1500 * time.Microsecond }},
		{"max below mean", func(p *Parameters) { p.MaxDelay = p.MeanDelay - time.Millisecond }},
		{"max too long", func(p *Parameters) { p.MaxDelay = time.Hour }},
		{"epoch short", func(p *Parameters) { p.EpochLength = 500 * time.Millisecond }},
	} {
		p := DefaultParameters()
		tc.edit(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", tc.name)
		}
	}
	// A geometry hash that does not match the geometry is refused.
	b := testParams().appendTo(nil)
	b[5] ^= 1
	if _, err := readParameters(&reader{b: b}); err == nil {
		t.Error("wrong geometry hash accepted")
	}
}

func TestDocumentRoundTrip(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	b := signedDoc(t, 55, auth, pub, mixNet(t, 9, 2, 54), 0, 1, 2)
	sd, err := ParseSignedDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sd.Marshal(), b) {
		t.Fatal("signed document re-encodes differently")
	}
	raw, err := sd.Document.Marshal()
	if err != nil || !bytes.Equal(raw, sd.Raw) {
		t.Fatalf("document re-encodes differently (%v)", err)
	}
	if len(sd.Document.Nodes) != 11 || len(sd.Document.Layer(0)) != 2 {
		t.Fatalf("%d nodes, %d providers", len(sd.Document.Nodes), len(sd.Document.Layer(0)))
	}
	p, ok := sd.Document.Provider("mail.p10.example")
	if !ok || p.Role != RoleProvider {
		t.Fatalf("Provider(mail.p10.example) = %v, %v", p, ok)
	}
	if n, ok := sd.Document.Node(p.Identity); !ok || n != p {
		t.Error("Node(provider id) did not find it")
	}
	if _, ok := sd.Document.Provider("nowhere.example"); ok {
		t.Error("Provider(nowhere.example) found one")
	}
	for _, n := range sd.Document.Nodes {
		if len(n.SphinxKeys) != 2 || n.SphinxKeys[0].Epoch != 55 {
			t.Errorf("node %s keys %v, want epochs 55 and 56", n.Identity, n.SphinxKeys)
		}
	}
}
