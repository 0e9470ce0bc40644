package election

import (
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/ballot"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/trustee"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

type fixture struct {
	sd       *SignedDefinition
	official *keys.IdentityPrivateKey
	trustees []*keys.IdentityPrivateKey
	enc      []*EncryptionPrivateKey
	voters   []*keys.IdentityPrivateKey
	box      *keys.IdentityPrivateKey
	dealer   [][]*group.Scalar // dealer shares, by dealer-1
	shares   []*group.Scalar   // key shares x_j, by j-1
	result   *KeyGenResult
}

func mustIdentity(t testing.TB) *keys.IdentityPrivateKey {
	t.Helper()
	k, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newFixture builds and signs a definition with two questions.
func newFixture(t testing.TB, voters, n, threshold int, mixers []int) *fixture {
	t.Helper()
	f := &fixture{official: mustIdentity(t), box: mustIdentity(t)}
	d := &Definition{
		Version: DefinitionVersion, ID: "test-election", Title: "Test election",
		Questions: []Question{
			{Text: "Colour?", Choices: []string{"red", "green", "blue"}},
			{Text: "Yes or no?", Choices: []string{"yes", "no"}},
		},
		Threshold: threshold, Mixers: mixers,
		Opens:    time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC),
		Closes:   time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC),
		Provider: "vote.example", BoxKey: f.box.Public(),
	}
	for range voters {
		k := mustIdentity(t)
		f.voters = append(f.voters, k)
		d.Voters = append(d.Voters, k.Public())
	}
	for i := range n {
		sk := mustIdentity(t)
		ek, err := GenerateEncryptionKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		f.trustees, f.enc = append(f.trustees, sk), append(f.enc, ek)
		d.Trustees = append(d.Trustees, Trustee{Name: "trustee " + string(rune('A'+i)), SigningKey: sk.Public(), EncryptionKey: ek.Public()})
	}
	sd, err := Sign(d, f.official)
	if err != nil {
		t.Fatal(err)
	}
	f.sd = sd
	return f
}

// keygen runs the three rounds into record/keygen. tamper, when set, may replace a dealing
// before it is published.
func (f *fixture) keygen(t testing.TB, record string, tamper func(i int, msg []byte) []byte) {
	t.Helper()
	dir := filepath.Join(record, "keygen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := len(f.trustees)
	f.dealer = make([][]*group.Scalar, n)
	for i := 1; i <= n; i++ {
		msg, shares, err := Deal(rand.Reader, f.sd, i, f.trustees[i-1])
		if err != nil {
			t.Fatal(err)
		}
		if tamper != nil {
			msg = tamper(i, msg)
		}
		f.dealer[i-1] = shares
		if err := writeNew(filepath.Join(dir, dealingName(i)), msg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kg, err := LoadKeyGen(dir, f.sd)
	if err != nil {
		t.Fatal(err)
	}
	var dealings []*DealingMessage
	for i := 1; i <= n; i++ {
		dealings = append(dealings, kg.Dealings[i])
	}
	for j := 1; j <= n; j++ {
		msg, _, err := Complain(f.sd, dealings, j, f.enc[j-1], f.trustees[j-1])
		if err != nil {
			t.Fatal(err)
		}
		if err := writeNew(filepath.Join(dir, complaintsName(j)), msg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if kg, err = LoadKeyGen(dir, f.sd); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		complained := false
		for j := 1; j <= n; j++ {
			for _, x := range kg.Complaints[j] {
				complained = complained || x == i
			}
		}
		if !complained {
			continue
		}
		msg, err := Answer(f.sd, kg, i, f.dealer[i-1], f.trustees[i-1])
		if err != nil {
			t.Fatal(err)
		}
		if err := writeNew(filepath.Join(dir, answerName(i)), msg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if kg, err = LoadKeyGen(dir, f.sd); err != nil {
		t.Fatal(err)
	}
	f.shares = make([]*group.Scalar, n)
	for j := 1; j <= n; j++ {
		xj, res, err := Finish(f.sd, kg, j, f.enc[j-1])
		if err != nil {
			t.Fatal(err)
		}
		f.shares[j-1], f.result = xj, res
	}
}

func TestDefinitionRoundTrip(t *testing.T) {
	f := newFixture(t, 3, 3, 2, []int{1, 2})
	sd, err := ParseDefinition(f.sd.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if sd.Hash() != f.sd.Hash() || string(sd.Bytes()) != string(f.sd.Bytes()) {
		t.Fatal("parse changed the definition")
	}
	// Any change to the signed file is refused: a flipped letter of the title breaks the
	// signature, extra white space the canonical form.
	b := []byte(strings.Replace(string(f.sd.Bytes()), "Test election", "Test elections", 1))
	if _, err := ParseDefinition(b); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("altered title: %v", err)
	}
	if _, err := ParseDefinition(append([]byte(" "), f.sd.Bytes()...)); err == nil {
		t.Fatal("non-canonical file accepted")
	}
	if _, err := ParseDefinition(make([]byte, MaxDefinitionSize+1)); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize definition: %v", err)
	}
}

func TestDefinitionValidate(t *testing.T) {
	f := newFixture(t, 2, 3, 2, []int{1, 2})
	cases := map[string]func(d *Definition){
		"id":        func(d *Definition) { d.ID = "Bad ID" },
		"threshold": func(d *Definition) { d.Threshold = 4 },
		"mixer":     func(d *Definition) { d.Mixers = []int{1, 1} },
		// Fewer mixers than the threshold: fewer than t trustees could undo the mixing, and
		// vmnv refuses such a proof directory ("Active threshold is smaller than threshold").
		"few mixers": func(d *Definition) { d.Mixers = []int{1} },
		"trustees above Verificatum's 25 parties": func(d *Definition) {
			for len(d.Trustees) <= 25 {
				d.Trustees = append(d.Trustees, d.Trustees[0])
			}
		},
		"voter":   func(d *Definition) { d.Voters = append(d.Voters, d.Voters[0]) },
		"choices": func(d *Definition) { d.Questions[0].Choices = []string{"only"} },
		"closes":  func(d *Definition) { d.Closes = d.Opens },
		"trustee": func(d *Definition) { d.Trustees[1].SigningKey = d.Trustees[0].SigningKey },
	}
	for name, mod := range cases {
		d := f.sd.Definition
		d.Voters = append([]keys.IdentityPublicKey(nil), d.Voters...)
		d.Trustees = append([]Trustee(nil), d.Trustees...)
		d.Questions = append([]Question(nil), d.Questions...)
		mod(&d)
		_, err := Sign(&d, f.official)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
		if name == "trustees above Verificatum's 25 parties" && !strings.Contains(fmt.Sprint(err), "26 trustees, at most 25") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestKeyGenHonest(t *testing.T) {
	f := newFixture(t, 1, 5, 3, []int{1, 2, 3})
	f.keygen(t, t.TempDir(), nil)
	if len(f.result.Qualified) != 5 {
		t.Fatalf("qualified %d of 5: %v", len(f.result.Qualified), f.result.Disqualified)
	}
	// Any t key shares reconstruct the secret key of the election key: check via the
	// decryption of one ciphertext.
	pk := f.result.PublicKey
	b, err := ballot.Encrypt(rand.Reader, []byte("x"), []byte("c"), pk, 7)
	if err != nil {
		t.Fatal(err)
	}
	list := []verificatum.Ciphertext{b.Ciphertext}
	var ds []*trustee.DecryptionShare
	for _, j := range []int{2, 4, 5} {
		s, err := trustee.Decrypt(rand.Reader, []byte("e"), j, f.shares[j-1], list)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, s)
	}
	ms, _, err := trustee.Combine(f.sd.Definition.params(), f.result.Qualified, []byte("e"), list, ds)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ballot.DecodeChoice(ms[0]); err != nil || c != 7 {
		t.Fatalf("decrypted %d, %v", c, err)
	}
}

// badShare replaces the share of `to` in a dealing by an encryption of a wrong value and
// re-signs it with the dealer's key: a cheating dealer.
func (f *fixture) badShare(t testing.TB, msg []byte, dealer, to int) []byte {
	t.Helper()
	idx, p, err := openMessage(msg, MaxKeyGenMessage, kindDealing, f.sd.Hash(), &f.sd.Definition)
	if err != nil || idx != dealer {
		t.Fatal(err)
	}
	shares := p.Children()[1].Children()
	pub, err := f.sd.Definition.Trustees[to-1].EncryptionKey.ecdh()
	if err != nil {
		t.Fatal(err)
	}
	hk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	kdf, aead := hpkeSuite()
	wrong := group.ScalarFromUint(12345).Bytes()
	ct, err := hpke.Seal(hk, kdf, aead, hpkeInfo(f.sd.Hash(), dealer, to), wrong)
	if err != nil {
		t.Fatal(err)
	}
	shares[to-1] = bytetree.Leaf(ct)
	return sealMessage(kindDealing, f.sd.Hash(), dealer, p, f.trustees[dealer-1])
}

func TestKeyGenComplaintAnswered(t *testing.T) {
	f := newFixture(t, 1, 4, 2, []int{1, 2})
	rec := t.TempDir()
	f.keygen(t, rec, func(i int, msg []byte) []byte {
		if i == 2 {
			return f.badShare(t, msg, 2, 4)
		}
		return msg
	})
	kg, err := LoadKeyGen(filepath.Join(rec, "keygen"), f.sd)
	if err != nil {
		t.Fatal(err)
	}
	if len(kg.Complaints[4]) != 1 || kg.Complaints[4][0] != 2 {
		t.Fatalf("complaints of trustee 4: %v", kg.Complaints[4])
	}
	// Dealer 2 answered with the right share, so it stays qualified and trustee 4 used it.
	if len(f.result.Qualified) != 4 {
		t.Fatalf("disqualified: %v", f.result.Disqualified)
	}
	// Without the answer, dealer 2 is disqualified.
	if err := os.Remove(filepath.Join(rec, "keygen", answerName(2))); err != nil {
		t.Fatal(err)
	}
	kg, err = LoadKeyGen(filepath.Join(rec, "keygen"), f.sd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := kg.Result(&f.sd.Definition)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Qualified[2]; ok || !strings.Contains(res.Disqualified[2], "did not answer the complaint of trustee 4") {
		t.Fatalf("dealer 2 without answer: %v", res.Disqualified)
	}
}

func TestKeyGenRefusesWrongSigner(t *testing.T) {
	f := newFixture(t, 1, 3, 2, []int{1, 2})
	msg, _, err := Deal(rand.Reader, f.sd, 1, f.trustees[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, dealingName(2)), msg, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyGen(dir, f.sd); err == nil || !strings.Contains(err.Error(), "signed by trustee 1") {
		t.Fatalf("dealing under another trustee's name: %v", err)
	}
	if _, _, err := Deal(rand.Reader, f.sd, 2, f.trustees[0]); err == nil {
		t.Fatal("dealt with the wrong key")
	}
	big := make([]byte, MaxKeyGenMessage+1)
	if _, err := ParseDealing(big, f.sd); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize dealing: %v", err)
	}
}

func TestKeyShareFile(t *testing.T) {
	f := newFixture(t, 1, 3, 2, []int{1, 2})
	p := filepath.Join(t.TempDir(), "share")
	x := group.ScalarFromUint(99)
	if err := SaveKeyShare(p, f.sd, 2, x); err != nil {
		t.Fatal(err)
	}
	if err := SaveKeyShare(p, f.sd, 2, x); err == nil {
		t.Fatal("key share file overwritten")
	}
	j, y, err := LoadKeyShare(p, f.sd)
	if err != nil || j != 2 || !y.Equal(x) {
		t.Fatalf("load: %d %v", j, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKeyShare(p, f.sd); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable share: %v", err)
	}
}

func TestKeyGenWrongAnswerDisqualifies(t *testing.T) {
	f := newFixture(t, 1, 4, 2, []int{1, 2})
	rec := t.TempDir()
	f.keygen(t, rec, func(i int, msg []byte) []byte {
		if i == 3 {
			return f.badShare(t, msg, 3, 1)
		}
		return msg
	})
	dir := filepath.Join(rec, "keygen")
	kg, err := LoadKeyGen(dir, f.sd)
	if err != nil {
		t.Fatal(err)
	}
	// Dealer 3 answers trustee 1's complaint with a share that does not match.
	wrong := make([]*group.Scalar, 4)
	for j := range wrong {
		wrong[j] = group.ScalarFromUint(uint(j + 7))
	}
	msg, err := Answer(f.sd, kg, 3, wrong, f.trustees[2])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, answerName(3)), msg, 0o644); err != nil {
		t.Fatal(err)
	}
	if kg, err = LoadKeyGen(dir, f.sd); err != nil {
		t.Fatal(err)
	}
	res, err := kg.Result(&f.sd.Definition)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Qualified[3]; ok || res.Disqualified[3] != "revealed a wrong share for trustee 1" || len(res.Qualified) != 3 {
		t.Fatalf("qualified %d, disqualified %v", len(res.Qualified), res.Disqualified)
	}
	// Trustee 1 finishes without dealer 3, and its key share matches the new key.
	if _, _, err := Finish(f.sd, kg, 1, f.enc[0]); err != nil {
		t.Fatal(err)
	}
	// A flipped bit in a published message is refused, naming the file.
	b, err := os.ReadFile(filepath.Join(dir, complaintsName(2)))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(filepath.Join(dir, complaintsName(2)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyGen(dir, f.sd); err == nil || !strings.Contains(err.Error(), "complaints-02.bt") || !strings.Contains(err.Error(), "signature invalid") {
		t.Fatalf("altered complaints: %v", err)
	}
}
