package sphinx

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx/internal/vectors"
)

// expectErrors maps the spec's error names (§11) to this package's errors.
var expectErrors = map[string]error{
	"length":        ErrLength,
	"group element": ErrGroupElement,
	"header MAC":    ErrHeaderMAC,
	"commands":      ErrCommands,
	"payload tag":   ErrPayloadTag,
	"route":         ErrRoute,
}

func loadVectors(t testing.TB) []vectors.Vector {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vectors.Vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func vectorSphinx(t *testing.T, g vectors.Geometry) *Sphinx {
	t.Helper()
	geo := Geometry{Hops: g.Hops, PayloadSize: g.PayloadSize}
	h := geo.Hash()
	if !bytes.Equal(h[:], g.Hash) {
		t.Fatalf("geometry hash %x, vector says %x", h, g.Hash)
	}
	return mustNew(t, geo)
}

func vectorKey(t *testing.T, b []byte) *keys.SphinxPrivateKey {
	t.Helper()
	k, err := keys.NewSphinxPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func vectorRoute(t *testing.T, v vectors.Vector) ([]Hop, []*keys.SphinxPrivateKey) {
	var route []Hop
	var ks []*keys.SphinxPrivateKey
	for _, h := range v.Route {
		k := vectorKey(t, h.PrivateKey)
		pub := k.Public()
		if !bytes.Equal(pub[:], h.PublicKey) {
			t.Fatalf("public key of %x does not match the vector", h.PrivateKey)
		}
		route = append(route, Hop{ID: NodeID(h.ID), PublicKey: pub, DelayMS: h.DelayMS})
		ks = append(ks, k)
	}
	return route, ks
}

// checkHops unwraps pkt hop by hop and compares with the vector's expectations.
func checkHops(t *testing.T, s *Sphinx, ks []*keys.SphinxPrivateKey, pkt []byte, want []vectors.HopResult) {
	t.Helper()
	pkt = bytes.Clone(pkt)
	for i, w := range want {
		u, err := s.Unwrap(ks[i], pkt)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if !bytes.Equal(u.ReplayTag[:], w.ReplayTag) || u.DelayMS != w.DelayMS {
			t.Fatalf("hop %d: replay tag or delay differ", i)
		}
		if w.NextHop != nil {
			if u.NextHop == nil || !bytes.Equal(u.NextHop[:], w.NextHop) || !bytes.Equal(u.Packet, w.NextPacket) {
				t.Fatalf("hop %d: next hop or next packet differ", i)
			}
			pkt = u.Packet
			continue
		}
		if u.NextHop != nil || !bytes.Equal(u.Payload, w.Delivered) {
			t.Fatalf("hop %d: delivered payload differs", i)
		}
		if (u.SURBID == nil) != (w.SURBID == nil) || (u.SURBID != nil && !bytes.Equal(u.SURBID[:], w.SURBID)) {
			t.Fatalf("hop %d: SURB id differs", i)
		}
	}
}

func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	kinds := map[string]int{}
	for _, v := range vs {
		kinds[v.Kind+"/"+v.Expect]++
		t.Run(v.Name, func(t *testing.T) {
			var s *Sphinx
			if v.Kind != "commands" { // routing commands do not depend on the geometry
				s = vectorSphinx(t, v.Geometry)
			}
			switch v.Kind {
			case "packet":
				route, ks := vectorRoute(t, v)
				rng := bytes.NewReader(append(bytes.Clone(v.Ephemeral), v.Padding...))
				pkt, err := s.NewPacket(rng, route, Recipient{Service: v.Recipient.Service, ID: v.Recipient.ID}, v.Payload)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(pkt, v.Packet) {
					t.Fatal("packet differs from the vector")
				}
				if rng.Len() != 0 {
					t.Fatalf("%d random bytes not consumed", rng.Len())
				}
				checkHops(t, s, ks, pkt, v.Hops)
			case "surb":
				route, ks := vectorRoute(t, v)
				rng := bytes.NewReader(append(append(bytes.Clone(v.Ephemeral), v.Padding...), v.Seed...))
				surb, rk, err := s.NewSURB(rng, route, Recipient{Service: v.Recipient.Service, ID: v.Recipient.ID}, [SURBIDSize]byte(v.SURBID))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(surb, v.SURB) || !bytes.Equal(rk, v.ReplyKeys) || rng.Len() != 0 {
					t.Fatal("SURB or reply keys differ from the vector")
				}
				first, pkt, err := s.NewPacketFromSURB(surb, v.Payload)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(first[:], v.Route[0].ID) || !bytes.Equal(pkt, v.Packet) {
					t.Fatal("reply packet differs from the vector")
				}
				checkHops(t, s, ks, pkt, v.Hops)
				reply, err := s.ReadReply(rk, v.Hops[len(v.Hops)-1].Delivered)
				if err != nil || !bytes.Equal(reply, v.Reply) {
					t.Fatalf("reply differs: %v", err)
				}
			case "unwrap":
				if v.UnwrapGeometry != nil {
					s = vectorSphinx(t, *v.UnwrapGeometry)
				}
				_, err := s.Unwrap(vectorKey(t, v.PrivateKey), bytes.Clone(v.Packet))
				if !errors.Is(err, expectErrors[v.Expect]) || err == nil {
					t.Fatalf("unwrap: got %v, want %q", err, v.Expect)
				}
			case "reply":
				_, err := s.ReadReply(v.ReplyKeys, v.Payload)
				if !errors.Is(err, expectErrors[v.Expect]) || err == nil {
					t.Fatalf("read reply: got %v, want %q", err, v.Expect)
				}
			case "commands":
				c, err := ParseCommands(v.Packet)
				if v.Expect == "ok" {
					if err != nil {
						t.Fatal(err)
					}
					enc, err := EncodeCommands(c)
					if err != nil || !bytes.Equal(enc, v.Packet[:c.EncodedLen()]) {
						t.Fatalf("re-encoding differs: %v", err)
					}
				} else if !errors.Is(err, expectErrors[v.Expect]) || err == nil {
					t.Fatalf("parse commands: got %v, want %q", err, v.Expect)
				}
			default:
				t.Fatalf("unknown kind %q", v.Kind)
			}
		})
	}
	// The set must keep covering what the spec promises.
	if kinds["packet/ok"] < 5 || kinds["surb/ok"] < 5 || kinds["unwrap/header MAC"] < 4 ||
		kinds["unwrap/length"] < 1 || kinds["unwrap/payload tag"] < 1 || kinds["reply/payload tag"] < 1 ||
		kinds["commands/ok"] < 4 || kinds["commands/commands"] < 14 ||
		kinds["reply/length"] < 5 || kinds["reply/route"] < 4 {
		t.Fatalf("vector set lost coverage: %v", kinds)
	}
}

// The vectors of the §5 decoding rules and the §10.3 precedence decisions fail for the reason
// their names give, not for another rule they also break: each breaks one rule only, so a decoder
// that drops the rule accepts the vector and fails the test suite.
func TestRuleVectorsFailForTheirRule(t *testing.T) {
	why := map[string]string{
		"commands-surb-reply-with-next-hop":      "SURB reply without recipient",
		"commands-equal-rank":                    "repeated or out of order",
		"commands-recipient-bytes-after-padding": "bytes after field padding",
		"commands-empty-service":                 "service name length 0",
		"commands-empty-recipient":               "recipient length 0",
		"fail-reply-keys-short":                  "reply keys of 1 bytes",
		"fail-reply-keys-version":                "reply keys version 0x2",
		"fail-reply-keys-hops":                   "reply keys for 6 hops",
		"fail-reply-keys-zero-hops":              "reply keys for 0 hops",
		"fail-reply-keys-length":                 "want 514 for 3 hops",
		"fail-reply-keys-version-before-hops":    "reply keys version 0x2",
		"fail-reply-keys-hops-before-length":     "reply keys for 6 hops",
		"fail-reply-keys-before-payload":         "reply keys for 0 hops",
		"fail-reply-payload-length":              "reply payload of",
	}
	seen := 0
	for _, v := range loadVectors(t) {
		want, ok := why[v.Name]
		if !ok {
			continue
		}
		seen++
		var err error
		switch v.Kind {
		case "commands":
			_, err = ParseCommands(v.Packet)
		case "reply":
			_, err = vectorSphinx(t, v.Geometry).ReadReply(v.ReplyKeys, v.Payload)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error saying %q", v.Name, err, want)
		}
	}
	if seen != len(why) {
		t.Fatalf("%d of the %d rule vectors are in testdata", seen, len(why))
	}
}

// NextHop and Recipient in one block (§5) cannot be written in version 1: the two commands
// take 65 + 81 bytes of a 104-byte block, so the second one's body always runs past the end and
// no vector can break that rule alone. This test fails if the sizes ever change, to say that such
// a vector must then be added.
func TestNextHopAndRecipientCannotShareABlock(t *testing.T) {
	if nextHopSize+recipientSize <= PerHopSize {
		t.Fatalf("NextHop (%d) and Recipient (%d) now fit in %d bytes: add a vector for the rule", nextHopSize, recipientSize, PerHopSize)
	}
	id := NodeID{1}
	if _, err := EncodeCommands(&Commands{NextHop: &id, Recipient: &Recipient{Service: "mailbox", ID: "bob"}}); !errors.Is(err, ErrCommands) {
		t.Fatalf("encoding both: %v", err)
	}
}
