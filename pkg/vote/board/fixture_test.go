package board

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// fixture is a small election with all its private keys, deterministic from a seed.
type fixture struct {
	p        *Params
	x        *group.Scalar // the election secret key (decryption in tests)
	voters   []*keys.IdentityPrivateKey
	trustees []*keys.IdentityPrivateKey
	box      *keys.IdentityPrivateKey
	rng      *rand.ChaCha8
	t        testing.TB
}

var (
	testOpens  = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	testCloses = time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
)

func newFixture(t testing.TB, nVoters, nTrustees, threshold int, questions ...int) *fixture {
	t.Helper()
	var seed [32]byte
	copy(seed[:], "panoramix board test fixture")
	f := &fixture{rng: rand.NewChaCha8(seed), t: t}
	key := func() *keys.IdentityPrivateKey {
		k, err := keys.GenerateIdentityKey(f.rng)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	x, err := group.RandomScalar(f.rng)
	if err != nil {
		t.Fatal(err)
	}
	f.x = x
	f.box = key()
	p := &Params{
		ElectionID: "council-2026",
		PublicKey:  verificatum.PublicKey{Y: new(group.Element).BaseExp(x)},
		Questions:  questions,
		Threshold:  threshold,
		Opens:      testOpens,
		Closes:     testCloses,
		BoxKey:     f.box.Public(),
	}
	copy(p.ElectionHash[:], "election definition hash 0123456")
	for range nVoters {
		k := key()
		f.voters = append(f.voters, k)
		p.Voters = append(p.Voters, k.Public())
	}
	for range nTrustees {
		k := key()
		f.trustees = append(f.trustees, k)
		p.Trustees = append(p.Trustees, k.Public())
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	f.p = p
	return f
}

func (f *fixture) cast(voter int, choices ...int) *Cast {
	f.t.Helper()
	c, err := NewCast(f.rng, f.p, f.voters[voter], choices)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// board builds a signed board: one entry per payload, a minute apart from Opens, closed by
// trustees 1..threshold at Closes when closeIt.
type boardBuilder struct {
	f       *fixture
	entries []*Entry
}

func (f *fixture) builder() *boardBuilder { return &boardBuilder{f: f} }

func (b *boardBuilder) add(kind Kind, t time.Time, payload []byte) *Entry {
	b.f.t.Helper()
	prev := Genesis(b.f.p)
	if n := len(b.entries); n > 0 {
		prev = b.entries[n-1].Hash()
	}
	e, err := NewEntry(b.f.p, b.f.box, uint64(len(b.entries)), prev, kind, t, payload)
	if err != nil {
		b.f.t.Fatal(err)
	}
	b.entries = append(b.entries, e)
	return e
}

func (b *boardBuilder) addCast(c *Cast) *Entry {
	return b.add(KindBallot, testOpens.Add(time.Duration(len(b.entries)+1)*time.Minute), c.Marshal())
}

func (f *fixture) close(signers ...int) *Close {
	f.t.Helper()
	var sigs []*CloseSignature
	for _, i := range signers {
		s, err := SignClose(f.p, i, f.trustees[i-1])
		if err != nil {
			f.t.Fatal(err)
		}
		sigs = append(sigs, s)
	}
	c, err := NewClose(f.p, sigs)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (b *boardBuilder) addClose() *Entry {
	return b.add(KindClose, testCloses, b.f.close(closeSigners(b.f.p)...).Marshal())
}

func closeSigners(p *Params) []int {
	s := make([]int, p.Threshold)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

// resign recomputes the box signature of e (after a test changed it) and, when chain, the
// Prev links of the entries after it.
func (b *boardBuilder) resign(from int) {
	for i := from; i < len(b.entries); i++ {
		e := b.entries[i]
		if i > from {
			if i == 0 {
				e.Prev = Genesis(b.f.p)
			} else {
				e.Prev = b.entries[i-1].Hash()
			}
		}
		h := e.Hash()
		copy(e.Signature[:], b.f.box.Sign(signedMessage(h)))
	}
}

// decrypt returns the choice in a ciphertext (test only; the election decrypts by threshold).
func (f *fixture) decrypt(ct verificatum.Ciphertext) int {
	f.t.Helper()
	m := new(group.Element).Exp(ct.U, f.x)
	m.Inv(m)
	m.Mul(m, ct.V)
	c, err := decodeChoice(m)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}
