package keys

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"github.com/pelletier/go-toml/v2"
)

// parsers runs a check against the three public key parsers.
var parsers = map[string]func(string) (string, error){
	"identity": func(s string) (string, error) { k, err := ParseIdentityPublicKey(s); return k.String(), err },
	"link":     func(s string) (string, error) { k, err := ParseLinkPublicKey(s); return k.String(), err },
	"sphinx":   func(s string) (string, error) { k, err := ParseSphinxPublicKey(s); return k.String(), err },
}

func TestParseHexEdgeCases(t *testing.T) {
	valid := map[string]string{"identity": rfc8032Pub, "link": rfc8032Pub, "sphinx": rfc7748AlicePub}
	for name, parse := range parsers {
		v := valid[name]
		got, err := parse(v)
		if err != nil || got != v {
			t.Errorf("%s: Parse(%s) = %s, %v", name, v, got, err)
		}
		cases := []struct {
			in, want string // want: substring of the error
		}{
			{"", "got 0 characters"},
			{v[:63], "got 63 characters"},
			{v + "0", "got 65 characters"},
			{v[:62] + "\n", "got 63 characters"},
			{v + "\n", "got 65 characters"},
			{" " + v[1:], `invalid character ' ' at offset 0`},
			{"0x" + v[2:], `invalid character 'x' at offset 1`},
			{v[:10] + "g" + v[11:], `invalid character 'g' at offset 10`},
			{v[:63] + "\x00", `invalid character '\x00' at offset 63`},
			{strings.ToUpper(v), "uppercase"},
			{v[:20] + "A" + v[21:], "uppercase hex character 'A' at offset 20"},
			{strings.Repeat("é", 32), "invalid character"},
			{strings.Repeat("0", 64), ""},
		}
		for _, c := range cases {
			_, err := parse(c.in)
			if err == nil {
				t.Errorf("%s: Parse(%q) accepted", name, c.in)
				continue
			}
			if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), name+" public key") {
				t.Errorf("%s: Parse(%q) error %q, want ErrInvalidKey mentioning %q", name, c.in, err, c.want)
			}
		}
	}
}

// leHex encodes n as a 32-byte little-endian hex string.
func leHex(n *big.Int) string {
	b := n.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return hex.EncodeToString(b)
}

func TestSphinxPublicKeyRefusals(t *testing.T) {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	dec := func(s string) *big.Int { n, _ := new(big.Int).SetString(s, 10); return n }
	// The points of order dividing 8 on Curve25519 and its twist
	// (cr.yp.to/ecdh.html): 0, 1, p-1 and two points of order 8.
	lowOrder := []*big.Int{
		big.NewInt(0), big.NewInt(1), new(big.Int).Sub(p, big.NewInt(1)),
		dec("325606250916557431795983626356110631294008115727848805560023387167927233504"),
		dec("39382357235489614581723060781553021112529911719440698176882885853963445705823"),
	}
	scalar := make([]byte, 32)
	rand.Read(scalar)
	probe, _ := ecdh.X25519().NewPrivateKey(scalar)
	for _, u := range lowOrder {
		s := leHex(u)
		// Independent of the package: crypto/ecdh must find these low order.
		pub, _ := ecdh.X25519().NewPublicKey(mustHex(t, s))
		if _, err := probe.ECDH(pub); err == nil {
			t.Fatalf("test bug: %s is not a low-order point", s)
		}
		if _, err := ParseSphinxPublicKey(s); !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), "low-order") {
			t.Errorf("low-order point %s: err %v", s, err)
		}
	}
	// Non-canonical: p, p+1 (second names for 0 and 1), 2^255-1, and a valid
	// key with the top bit set, which X25519 would silently ignore.
	alicePlusTop := mustHex(t, rfc7748AlicePub)
	alicePlusTop[31] |= 0x80
	for _, s := range []string{
		leHex(p), leHex(new(big.Int).Add(p, big.NewInt(1))),
		strings.Repeat("ff", 31) + "7f",
		hex.EncodeToString(alicePlusTop),
	} {
		if _, err := ParseSphinxPublicKey(s); !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), "non-canonical") {
			t.Errorf("non-canonical %s: err %v", s, err)
		}
	}
	// p-2 is canonical and, not being low order, must be accepted if on the
	// curve or twist (X25519 accepts both).
	if _, err := ParseSphinxPublicKey(leHex(new(big.Int).Sub(p, big.NewInt(2)))); err != nil {
		t.Errorf("p-2 refused: %v", err)
	}
	if _, err := NewSphinxPublicKey(make([]byte, 31)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("31 bytes: %v", err)
	}
}

func TestEd25519PublicKeyRefusals(t *testing.T) {
	// Small order: identity (y=1), (0,-1) (y=p-1), and y=0 (order 4): the
	// all-zero key.
	for _, s := range []string{
		"01" + strings.Repeat("00", 31),
		"ec" + strings.Repeat("ff", 30) + "7f",
		strings.Repeat("00", 32),
	} {
		for _, name := range []string{"identity", "link"} {
			if _, err := parsers[name](s); !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), "small order") {
				t.Errorf("%s: small-order %s: err %v", name, s, err)
			}
		}
	}
	// Find a y < 19 that decodes to a point of large order; y+p is then a
	// non-canonical name for it that crypto/ed25519 would accept.
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	var nonCanonical, notOnCurve string
	for y := int64(2); y < 19; y++ {
		enc := mustHex(t, leHex(big.NewInt(y)))
		pt, err := new(edwards25519.Point).SetBytes(enc)
		if err != nil {
			if notOnCurve == "" {
				notOnCurve = hex.EncodeToString(enc)
			}
			continue
		}
		if nonCanonical == "" && new(edwards25519.Point).MultByCofactor(pt).Equal(edwards25519.NewIdentityPoint()) == 0 {
			nonCanonical = leHex(new(big.Int).Add(p, big.NewInt(y)))
		}
	}
	if nonCanonical == "" || notOnCurve == "" {
		t.Fatal("test bug: no example points found")
	}
	for _, name := range []string{"identity", "link"} {
		if _, err := parsers[name](nonCanonical); !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), "non-canonical") {
			t.Errorf("%s: non-canonical %s: err %v", name, nonCanonical, err)
		}
		if _, err := parsers[name](notOnCurve); !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), "not a point") {
			t.Errorf("%s: off-curve %s: err %v", name, notOnCurve, err)
		}
	}
}

type keyConfig struct {
	Identity IdentityPublicKey `json:"identity" toml:"identity"`
	Link     LinkPublicKey     `json:"link" toml:"link"`
	Sphinx   SphinxPublicKey   `json:"sphinx" toml:"sphinx"`
}

func testConfig(t *testing.T) keyConfig {
	id, _ := GenerateIdentityKey(nil)
	ln, _ := GenerateLinkKey(nil)
	sx, _ := GenerateSphinxKey(nil)
	return keyConfig{id.Public(), ln.Public(), sx.Public()}
}

func TestJSON(t *testing.T) {
	c := testConfig(t)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"identity":"` + c.Identity.String() + `","link":"` + c.Link.String() + `","sphinx":"` + c.Sphinx.String() + `"}`
	if string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	var d keyConfig
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d != c {
		t.Errorf("JSON round trip: %+v, want %+v", d, c)
	}
	bad := strings.Replace(string(b), c.Sphinx.String(), strings.ToUpper(c.Sphinx.String()), 1)
	if err := json.Unmarshal([]byte(bad), &d); err == nil || !strings.Contains(err.Error(), "uppercase") {
		t.Errorf("uppercase key in JSON: %v", err)
	}
	// A failed UnmarshalText leaves the key unchanged.
	k := c.Identity
	if err := k.UnmarshalText([]byte("zz")); err == nil || k != c.Identity {
		t.Errorf("failed UnmarshalText: err %v, key changed: %v", err, k != c.Identity)
	}
}

func TestTOML(t *testing.T) {
	c := testConfig(t)
	b, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "identity = '"+c.Identity.String()+"'") && !strings.Contains(string(b), `identity = "`+c.Identity.String()+`"`) {
		t.Errorf("TOML output lacks the hex key:\n%s", b)
	}
	var d keyConfig
	if err := toml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d != c {
		t.Errorf("TOML round trip: %+v, want %+v", d, c)
	}
	if err := toml.Unmarshal([]byte(`link = "`+c.Link.String()[:60]+`"`), &d); err == nil || !strings.Contains(err.Error(), "got 60 characters") {
		t.Errorf("short key in TOML: %v", err)
	}
}
