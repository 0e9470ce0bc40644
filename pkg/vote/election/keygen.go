package election

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/trustee"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// Key generation transport over files (§12.2). Round 1: each trustee publishes a signed
// dealing (its Feldman commitments and its shares, each encrypted with HPKE to the
// recipient's encryption key). Round 2: each trustee publishes the (possibly empty) list of
// dealers whose share for it failed to decrypt or to match the commitments. Round 3: each
// dealer that was complained about publishes the shares in question. The qualified set and
// the election key follow from the published messages alone.

// hpkeInfoContext starts the HPKE info string; the info also binds the election hash, the
// dealer and the recipient, so a ciphertext cannot be moved to another election or slot.
const hpkeInfoContext = "panoramix vote dkg share v1"

// shareCiphertextLen is the exact length of one encrypted share: the X25519 encapsulated key
// (32), the 32-byte scalar and the AES-256-GCM tag (16).
const shareCiphertextLen = 32 + 32 + 16

// Limits on key generation messages: a dealing of 64 trustees is about 11 KB.
const (
	MaxKeyGenMessage = 1 << 20
	MaxKeyShareFile  = 4 << 10
)

// Names of the files of the keygen directory of a record (§12.4).
func dealingName(i int) string    { return fmt.Sprintf("dealing-%02d.bt", i) }
func complaintsName(i int) string { return fmt.Sprintf("complaints-%02d.bt", i) }
func answerName(i int) string     { return fmt.Sprintf("answer-%02d.bt", i) }

func hpkeSuite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.AES256GCM() }

func hpkeInfo(hash [32]byte, dealer, recipient int) []byte {
	info := append([]byte(hpkeInfoContext), hash[:]...)
	info = binary.BigEndian.AppendUint32(info, uint32(dealer))
	return binary.BigEndian.AppendUint32(info, uint32(recipient))
}

func (d *Definition) params() trustee.Params {
	return trustee.Params{N: len(d.Trustees), T: d.Threshold}
}

// EncryptionPrivateKey is a trustee's X25519 key for receiving key shares.
type EncryptionPrivateKey struct{ k *ecdh.PrivateKey }

// encryptionKeyPEMType is the PEM block type of the key file.
const encryptionKeyPEMType = "PANORAMIX VOTE TRUSTEE ENCRYPTION PRIVATE KEY"

// GenerateEncryptionKey draws a new key from rand (crypto/rand in production).
func GenerateEncryptionKey(rand io.Reader) (*EncryptionPrivateKey, error) {
	var seed [32]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("election: generate encryption key: %w", err)
	}
	defer clear(seed[:])
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		return nil, fmt.Errorf("election: generate encryption key: %w", err)
	}
	return &EncryptionPrivateKey{k}, nil
}

// Public returns the public key.
func (k *EncryptionPrivateKey) Public() EncryptionKey {
	var p EncryptionKey
	copy(p[:], k.k.PublicKey().Bytes())
	return p
}

// Wipe drops the key (crypto/ecdh keeps its own copy, which the runtime frees).
func (k *EncryptionPrivateKey) Wipe() { k.k = nil }

// SaveEncryptionKey writes k to a new file of mode 0600; it refuses to replace a file.
func SaveEncryptionKey(path string, k *EncryptionPrivateKey) error {
	raw := k.k.Bytes()
	defer clear(raw)
	b := pem.EncodeToMemory(&pem.Block{Type: encryptionKeyPEMType, Bytes: raw})
	defer clear(b)
	return writeNew(path, b, 0o600)
}

// LoadEncryptionKey reads a key written by SaveEncryptionKey.
func LoadEncryptionKey(path string) (*EncryptionPrivateKey, error) {
	b, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	blk, rest := pem.Decode(b)
	if blk == nil || len(rest) != 0 || blk.Type != encryptionKeyPEMType || len(blk.Headers) != 0 || len(blk.Bytes) != 32 {
		return nil, fmt.Errorf("election: %s is not a trustee encryption key file", path)
	}
	defer clear(blk.Bytes)
	k, err := ecdh.X25519().NewPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("election: %s: %w", path, err)
	}
	return &EncryptionPrivateKey{k}, nil
}

func readSecret(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("election: %s: mode %v lets group or others read a secret (chmod 600)", path, st.Mode().Perm())
	}
	b, err := readLimited(path, MaxKeyShareFile)
	if err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	return b, nil
}

// DealingMessage is a parsed round-1 message.
type DealingMessage struct {
	Dealer      int
	Commitments []*group.Element
	Shares      [][]byte // Shares[j-1] is the HPKE ciphertext for trustee j
}

// Deal runs round 1 for trustee `dealer`: it draws the polynomial, encrypts each share to its
// recipient and returns the signed dealing, and the shares themselves (shares[j-1] for
// trustee j), which the dealer keeps secret (SaveDealerShares) to answer complaints in round
// 3. The polynomial is wiped before returning.
func Deal(rand io.Reader, sd *SignedDefinition, dealer int, signer *keys.IdentityPrivateKey) ([]byte, []*group.Scalar, error) {
	d := &sd.Definition
	if err := checkSigner(d, dealer, signer); err != nil {
		return nil, nil, err
	}
	dl, err := trustee.NewDealing(rand, d.params(), dealer)
	if err != nil {
		return nil, nil, fmt.Errorf("election: deal: %w", err)
	}
	defer dl.Wipe()
	kdf, aead := hpkeSuite()
	cts := make([]*bytetree.Tree, len(d.Trustees))
	shares := make([]*group.Scalar, len(d.Trustees))
	fail := func(err error) ([]byte, []*group.Scalar, error) {
		for _, s := range shares {
			if s != nil {
				s.Wipe()
			}
		}
		return nil, nil, err
	}
	for j := range d.Trustees {
		pub, err := d.Trustees[j].EncryptionKey.ecdh()
		if err != nil {
			return fail(err)
		}
		hpk, err := hpke.NewDHKEMPublicKey(pub)
		if err != nil {
			return fail(fmt.Errorf("election: trustee %d encryption key: %w", j+1, err))
		}
		shares[j] = dl.Share(j + 1)
		pt := shares[j].Bytes()
		ct, err := hpke.Seal(hpk, kdf, aead, hpkeInfo(sd.Hash(), dealer, j+1), pt)
		clear(pt)
		if err != nil {
			return fail(fmt.Errorf("election: encrypt share for trustee %d: %w", j+1, err))
		}
		cts[j] = bytetree.Leaf(ct)
	}
	payload := bytetree.Node(verificatum.ElementsTree(dl.Commitments), bytetree.Node(cts...))
	return sealMessage(kindDealing, sd.Hash(), dealer, payload, signer), shares, nil
}

func checkSigner(d *Definition, index int, signer *keys.IdentityPrivateKey) error {
	if index < 1 || index > len(d.Trustees) {
		return fmt.Errorf("election: trustee index %d is not in 1..%d", index, len(d.Trustees))
	}
	if !d.Trustees[index-1].SigningKey.Equal(signer.Public()) {
		return fmt.Errorf("election: the signing key is not trustee %d's key in the definition", index)
	}
	return nil
}

// ParseDealing parses and checks a dealing message: signature, shape, t commitments that are
// points, n ciphertexts of the exact length.
func ParseDealing(b []byte, sd *SignedDefinition) (*DealingMessage, error) {
	d := &sd.Definition
	idx, p, err := openMessage(b, MaxKeyGenMessage, kindDealing, sd.Hash(), d)
	if err != nil {
		return nil, err
	}
	if p.IsLeaf() || p.Len() != 2 {
		return nil, fmt.Errorf("%w: dealing of trustee %d: payload is not node(commitments, shares)", ErrInvalid, idx)
	}
	c := p.Children()
	if c[0].IsLeaf() || c[0].Len() != d.Threshold {
		return nil, fmt.Errorf("%w: dealing of trustee %d: want %d commitments", ErrInvalid, idx, d.Threshold)
	}
	comm, err := verificatum.ElementsFromTree(c[0])
	if err != nil {
		return nil, fmt.Errorf("%w: dealing of trustee %d: commitments: %w", ErrInvalid, idx, err)
	}
	if c[1].IsLeaf() || c[1].Len() != len(d.Trustees) {
		return nil, fmt.Errorf("%w: dealing of trustee %d: want %d encrypted shares", ErrInvalid, idx, len(d.Trustees))
	}
	m := &DealingMessage{Dealer: idx, Commitments: comm}
	for j, ct := range c[1].Children() {
		if !ct.IsLeaf() || ct.Len() != shareCiphertextLen {
			return nil, fmt.Errorf("%w: dealing of trustee %d: share for trustee %d is not %d bytes", ErrInvalid, idx, j+1, shareCiphertextLen)
		}
		m.Shares = append(m.Shares, ct.Data())
	}
	return m, nil
}

// openShare decrypts and checks dealer's share for trustee j. An error means j complains.
func openShare(sd *SignedDefinition, m *DealingMessage, j int, key *EncryptionPrivateKey) (*group.Scalar, error) {
	hk, err := hpke.NewDHKEMPrivateKey(key.k)
	if err != nil {
		return nil, fmt.Errorf("election: encryption key: %w", err)
	}
	kdf, aead := hpkeSuite()
	pt, err := hpke.Open(hk, kdf, aead, hpkeInfo(sd.Hash(), m.Dealer, j), m.Shares[j-1])
	if err != nil {
		return nil, fmt.Errorf("share from trustee %d does not decrypt: %w", m.Dealer, err)
	}
	defer clear(pt)
	s, err := scalarFromBytes(pt)
	if err != nil {
		return nil, fmt.Errorf("share from trustee %d: %w", m.Dealer, err)
	}
	if err := trustee.VerifyShare(sd.Definition.params(), m.Commitments, j, s); err != nil {
		s.Wipe()
		return nil, fmt.Errorf("share from trustee %d: %w", m.Dealer, err)
	}
	return s, nil
}

// scalarFromBytes decodes a 32-byte big-endian scalar < q through the canonical byte tree form.
func scalarFromBytes(b []byte) (*group.Scalar, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("%w: scalar is not 32 bytes", ErrInvalid)
	}
	leaf := make([]byte, group.ScalarLen)
	copy(leaf[group.ScalarLen-32:], b)
	defer clear(leaf)
	s, err := group.ScalarFromTree(bytetree.Leaf(leaf))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return s, nil
}

// Complain runs round 2 for trustee j: it decrypts and checks its share in every dealing and
// returns the signed list of dealers whose share failed (possibly empty), with the reasons.
func Complain(sd *SignedDefinition, dealings []*DealingMessage, j int, key *EncryptionPrivateKey, signer *keys.IdentityPrivateKey) ([]byte, []error, error) {
	if err := checkSigner(&sd.Definition, j, signer); err != nil {
		return nil, nil, err
	}
	var against []*bytetree.Tree
	var reasons []error
	for _, m := range dealings {
		s, err := openShare(sd, m, j, key)
		if err != nil {
			against = append(against, bytetree.Uint32(uint32(m.Dealer)))
			reasons = append(reasons, err)
			continue
		}
		s.Wipe()
	}
	return sealMessage(kindComplaints, sd.Hash(), j, bytetree.Node(against...), signer), reasons, nil
}

// ParseComplaints returns the complaining trustee and the dealers it complains about
// (strictly increasing, each a trustee other than itself).
func ParseComplaints(b []byte, sd *SignedDefinition) (int, []int, error) {
	idx, p, err := openMessage(b, MaxKeyGenMessage, kindComplaints, sd.Hash(), &sd.Definition)
	if err != nil {
		return 0, nil, err
	}
	if p.IsLeaf() || p.Len() > len(sd.Definition.Trustees) {
		return 0, nil, fmt.Errorf("%w: complaints of trustee %d: not a list of at most %d dealers", ErrInvalid, idx, len(sd.Definition.Trustees))
	}
	var out []int
	for _, c := range p.Children() {
		v, err := uint32Leaf(c)
		if err != nil || v < 1 || v > len(sd.Definition.Trustees) || v == idx || (len(out) > 0 && v <= out[len(out)-1]) {
			return 0, nil, fmt.Errorf("%w: complaints of trustee %d: dealers must be other trustees in increasing order", ErrInvalid, idx)
		}
		out = append(out, v)
	}
	return idx, out, nil
}

// Answer runs round 3 for dealer i: it reveals, for each trustee that complained about i,
// the share i sent it. shares are the dealer's own shares as returned by Deal (shares[j-1]
// for trustee j).
func Answer(sd *SignedDefinition, kg *KeyGen, dealer int, shares []*group.Scalar, signer *keys.IdentityPrivateKey) ([]byte, error) {
	if err := checkSigner(&sd.Definition, dealer, signer); err != nil {
		return nil, err
	}
	if len(shares) != len(sd.Definition.Trustees) {
		return nil, fmt.Errorf("election: answer: %d shares for %d trustees", len(shares), len(sd.Definition.Trustees))
	}
	var items []*bytetree.Tree
	for j := 1; j <= len(sd.Definition.Trustees); j++ {
		if j != dealer && slices.Contains(kg.Complaints[j], dealer) {
			items = append(items, bytetree.Node(bytetree.Uint32(uint32(j)), shares[j-1].Tree()))
		}
	}
	return sealMessage(kindAnswer, sd.Hash(), dealer, bytetree.Node(items...), signer), nil
}

// ParseAnswer returns the answering dealer and the shares it reveals, by recipient.
func ParseAnswer(b []byte, sd *SignedDefinition) (int, map[int]*group.Scalar, error) {
	idx, p, err := openMessage(b, MaxKeyGenMessage, kindAnswer, sd.Hash(), &sd.Definition)
	if err != nil {
		return 0, nil, err
	}
	if p.IsLeaf() || p.Len() > len(sd.Definition.Trustees) {
		return 0, nil, fmt.Errorf("%w: answer of trustee %d: not a list of at most %d shares", ErrInvalid, idx, len(sd.Definition.Trustees))
	}
	out := make(map[int]*group.Scalar)
	last := 0
	for _, c := range p.Children() {
		if c.IsLeaf() || c.Len() != 2 {
			return 0, nil, fmt.Errorf("%w: answer of trustee %d: item is not node(recipient, share)", ErrInvalid, idx)
		}
		j, err := uint32Leaf(c.Children()[0])
		if err != nil || j <= last || j > len(sd.Definition.Trustees) || j == idx {
			return 0, nil, fmt.Errorf("%w: answer of trustee %d: recipients must be other trustees in increasing order", ErrInvalid, idx)
		}
		s, err := group.ScalarFromTree(c.Children()[1])
		if err != nil {
			return 0, nil, fmt.Errorf("%w: answer of trustee %d: share for trustee %d: %w", ErrInvalid, idx, j, err)
		}
		out[j], last = s, j
	}
	return idx, out, nil
}

// KeyGen holds the published key generation messages of an election.
type KeyGen struct {
	Dealings   map[int]*DealingMessage
	Complaints map[int][]int
	Answers    map[int]map[int]*group.Scalar
}

// KeyGenResult is what follows from the published messages (§12.2).
type KeyGenResult struct {
	Qualified trustee.Qualified
	PublicKey verificatum.PublicKey
	// Disqualified explains, by dealer, why it is not in the qualified set.
	Disqualified map[int]string
}

// Result computes the qualified set and the election key: dealer i is qualified when its
// dealing is published and, for every complaint against it, its answer reveals a share that
// matches its commitments. At least Threshold dealers must qualify.
func (kg *KeyGen) Result(d *Definition) (*KeyGenResult, error) {
	p := d.params()
	r := &KeyGenResult{Qualified: trustee.Qualified{}, Disqualified: map[int]string{}}
	for i := 1; i <= p.N; i++ {
		m, ok := kg.Dealings[i]
		if !ok {
			r.Disqualified[i] = "no dealing published"
			continue
		}
		reason := ""
		for j := 1; j <= p.N && reason == ""; j++ {
			if !slices.Contains(kg.Complaints[j], i) {
				continue
			}
			s, ok := kg.Answers[i][j]
			if !ok {
				reason = fmt.Sprintf("did not answer the complaint of trustee %d", j)
			} else if err := trustee.VerifyShare(p, m.Commitments, j, s); err != nil {
				reason = fmt.Sprintf("revealed a wrong share for trustee %d", j)
			}
		}
		if reason != "" {
			r.Disqualified[i] = reason
			continue
		}
		r.Qualified[i] = m.Commitments
	}
	if len(r.Qualified) < p.T {
		return nil, fmt.Errorf("%w: key generation: only %d qualified dealers, threshold %d (%v)", ErrInvalid, len(r.Qualified), p.T, r.Disqualified)
	}
	r.PublicKey = r.Qualified.PublicKey()
	return r, nil
}

// LoadKeyGen reads the keygen directory of a record: dealing-NN.bt, complaints-NN.bt and
// answer-NN.bt for trustees NN = 01..n, each optional. Any other file is refused, and so is a
// message whose signer is not the trustee its file name says.
func LoadKeyGen(dir string, sd *SignedDefinition) (*KeyGen, error) {
	kg := &KeyGen{Dealings: map[int]*DealingMessage{}, Complaints: map[int][]int{}, Answers: map[int]map[int]*group.Scalar{}}
	known := map[string]bool{}
	n := len(sd.Definition.Trustees)
	for i := 1; i <= n; i++ {
		known[dealingName(i)], known[complaintsName(i)], known[answerName(i)] = true, true, true
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("election: key generation: %w", err)
	}
	for _, e := range ents {
		if !known[e.Name()] {
			return nil, fmt.Errorf("%w: key generation: unexpected file %s", ErrInvalid, e.Name())
		}
	}
	read := func(name string) ([]byte, bool, error) {
		b, err := readLimited(filepath.Join(dir, name), MaxKeyGenMessage)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: key generation: %w", ErrInvalid, err)
		}
		return b, true, nil
	}
	for i := 1; i <= n; i++ {
		if b, ok, err := read(dealingName(i)); err != nil {
			return nil, err
		} else if ok {
			m, err := ParseDealing(b, sd)
			if err != nil {
				return nil, fmt.Errorf("key generation: %s: %w", dealingName(i), err)
			}
			if m.Dealer != i {
				return nil, fmt.Errorf("%w: key generation: %s is signed by trustee %d", ErrInvalid, dealingName(i), m.Dealer)
			}
			kg.Dealings[i] = m
		}
		if b, ok, err := read(complaintsName(i)); err != nil {
			return nil, err
		} else if ok {
			j, list, err := ParseComplaints(b, sd)
			if err != nil {
				return nil, fmt.Errorf("key generation: %s: %w", complaintsName(i), err)
			}
			if j != i {
				return nil, fmt.Errorf("%w: key generation: %s is signed by trustee %d", ErrInvalid, complaintsName(i), j)
			}
			kg.Complaints[i] = list
		}
		if b, ok, err := read(answerName(i)); err != nil {
			return nil, err
		} else if ok {
			j, shares, err := ParseAnswer(b, sd)
			if err != nil {
				return nil, fmt.Errorf("key generation: %s: %w", answerName(i), err)
			}
			if j != i {
				return nil, fmt.Errorf("%w: key generation: %s is signed by trustee %d", ErrInvalid, answerName(i), j)
			}
			kg.Answers[i] = shares
		}
	}
	return kg, nil
}

// Finish computes trustee j's key share from the published messages: the shares of the
// qualified dealers (decrypted, or as revealed in an answer to j's complaint), combined and
// checked against j's verification key. The caller stores it with SaveKeyShare and wipes it.
func Finish(sd *SignedDefinition, kg *KeyGen, j int, key *EncryptionPrivateKey) (*group.Scalar, *KeyGenResult, error) {
	d := &sd.Definition
	res, err := kg.Result(d)
	if err != nil {
		return nil, nil, err
	}
	received := make(map[int]*group.Scalar, len(res.Qualified))
	defer func() {
		for _, s := range received {
			s.Wipe()
		}
	}()
	for i := range res.Qualified {
		// A revealed share replaces the encrypted one only where j complained: a share a
		// dealer reveals unasked has no standing (and is checked like any other below).
		if s, ok := kg.Answers[i][j]; ok && slices.Contains(kg.Complaints[j], i) {
			received[i] = group.NewScalar().Set(s)
			continue
		}
		s, err := openShare(sd, kg.Dealings[i], j, key)
		if err != nil {
			return nil, nil, fmt.Errorf("election: trustee %d: %w (complain about trustee %d in round 2)", j, err, i)
		}
		received[i] = s
	}
	xj, err := trustee.CombineShares(d.params(), res.Qualified, j, received)
	if err != nil {
		return nil, nil, fmt.Errorf("election: trustee %d: %w", j, err)
	}
	if !new(group.Element).BaseExp(xj).Equal(res.Qualified.VerificationKey(j)) {
		xj.Wipe()
		return nil, nil, fmt.Errorf("election: trustee %d: key share does not match its verification key", j)
	}
	return xj, res, nil
}

// SaveKeyShare writes trustee j's key share to a new file of mode 0600 (refusing to replace
// one): node(leaf("key share"), leaf(election hash), uint32(j), scalar).
func SaveKeyShare(path string, sd *SignedDefinition, j int, xj *group.Scalar) error {
	h := sd.Hash()
	b := bytetree.Node(bytetree.String(kindKeyShare), bytetree.Leaf(h[:]), bytetree.Uint32(uint32(j)), xj.Tree()).Encode()
	defer clear(b)
	return writeNew(path, b, 0o600)
}

// LoadKeyShare reads a key share file for this election and returns the trustee index and
// the share; the caller wipes it after use.
func LoadKeyShare(path string, sd *SignedDefinition) (int, *group.Scalar, error) {
	b, err := readSecret(path)
	if err != nil {
		return 0, nil, err
	}
	defer clear(b)
	t, err := bytetree.Parse(b, bytetree.Limits{MaxBytes: MaxKeyShareFile, MaxDepth: 2})
	if err != nil || t.IsLeaf() || t.Len() != 4 {
		return 0, nil, fmt.Errorf("election: %s is not a key share file", path)
	}
	c := t.Children()
	h := sd.Hash()
	if !c[0].IsLeaf() || string(c[0].Data()) != kindKeyShare || !c[1].IsLeaf() || !bytes.Equal(c[1].Data(), h[:]) {
		return 0, nil, fmt.Errorf("election: %s is not a key share of this election", path)
	}
	j, err := uint32Leaf(c[2])
	if err != nil || j < 1 || j > len(sd.Definition.Trustees) {
		return 0, nil, fmt.Errorf("election: %s: bad trustee index", path)
	}
	s, err := group.ScalarFromTree(c[3])
	if err != nil {
		return 0, nil, fmt.Errorf("election: %s: %w", path, err)
	}
	return j, s, nil
}

// SaveDealerShares writes the shares a dealer sent (from Deal) to a new file of mode 0600:
// node(leaf("dealer shares"), leaf(election hash), uint32(dealer), node(shares)).
func SaveDealerShares(path string, sd *SignedDefinition, dealer int, shares []*group.Scalar) error {
	h := sd.Hash()
	items := make([]*bytetree.Tree, len(shares))
	for i, s := range shares {
		items[i] = s.Tree()
	}
	b := bytetree.Node(bytetree.String(kindDealerShares), bytetree.Leaf(h[:]), bytetree.Uint32(uint32(dealer)), bytetree.Node(items...)).Encode()
	defer clear(b)
	return writeNew(path, b, 0o600)
}

// LoadDealerShares reads a file written by SaveDealerShares; the caller wipes the shares.
func LoadDealerShares(path string, sd *SignedDefinition) (int, []*group.Scalar, error) {
	b, err := readSecret(path)
	if err != nil {
		return 0, nil, err
	}
	defer clear(b)
	t, err := bytetree.Parse(b, bytetree.Limits{MaxBytes: MaxKeyShareFile, MaxDepth: 3})
	if err != nil || t.IsLeaf() || t.Len() != 4 {
		return 0, nil, fmt.Errorf("election: %s is not a dealer shares file", path)
	}
	c := t.Children()
	h := sd.Hash()
	if !c[0].IsLeaf() || string(c[0].Data()) != kindDealerShares || !c[1].IsLeaf() || !bytes.Equal(c[1].Data(), h[:]) {
		return 0, nil, fmt.Errorf("election: %s is not a dealer shares file of this election", path)
	}
	i, err := uint32Leaf(c[2])
	if err != nil || i < 1 || i > len(sd.Definition.Trustees) || c[3].IsLeaf() || c[3].Len() != len(sd.Definition.Trustees) {
		return 0, nil, fmt.Errorf("election: %s: bad dealer index or share count", path)
	}
	out := make([]*group.Scalar, 0, c[3].Len())
	for _, st := range c[3].Children() {
		s, err := group.ScalarFromTree(st)
		if err != nil {
			return 0, nil, fmt.Errorf("election: %s: %w", path, err)
		}
		out = append(out, s)
	}
	return i, out, nil
}
