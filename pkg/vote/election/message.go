package election

import (
	"fmt"
	"io"
	"os"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

// Every message a trustee publishes in the record (dealing, complaints, answer, decryption
// share) is a signed byte tree (§12.3):
//
//	file = node(body, leaf(signature))
//	body = node(leaf(kind), leaf(election hash), uint32(trustee index), payload)
//
// signed by the trustee's signing key over messageSigContext | encode(body). The kind and
// the election hash inside the body keep a message from being replayed as another kind or in
// another election.
const messageSigContext = "panoramix vote trustee message v1\x00"

// Message kinds.
const (
	kindDealing      = "dealing"
	kindComplaints   = "complaints"
	kindAnswer       = "answer"
	kindDecryption   = "decryption"
	kindKeyShare     = "key share"     // the trustee's private key share file (never published)
	kindDealerShares = "dealer shares" // the shares a dealer sent, kept to answer complaints
)

// maxTreeDepth bounds the nesting of every message: the deepest (a decryption share) has
// depth 6.
const maxTreeDepth = 8

func sealMessage(kind string, hash [32]byte, index int, payload *bytetree.Tree, key *keys.IdentityPrivateKey) []byte {
	body := bytetree.Node(bytetree.String(kind), bytetree.Leaf(hash[:]), bytetree.Uint32(uint32(index)), payload)
	enc := body.Encode()
	sig := key.Sign(append([]byte(messageSigContext), enc...))
	return bytetree.Node(body, bytetree.Leaf(sig)).Encode()
}

// openMessage parses a signed message of the given kind, checks that it names this election
// and a trustee 1..n, and checks that trustee's signature. It returns the index and payload.
func openMessage(b []byte, maxSize int, kind string, hash [32]byte, d *Definition) (int, *bytetree.Tree, error) {
	if len(b) > maxSize {
		return 0, nil, fmt.Errorf("%w: %s message of %d bytes exceeds the limit of %d", ErrInvalid, kind, len(b), maxSize)
	}
	t, err := bytetree.Parse(b, bytetree.Limits{MaxBytes: maxSize, MaxDepth: maxTreeDepth})
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s message: %w", ErrInvalid, kind, err)
	}
	if t.IsLeaf() || t.Len() != 2 || t.Children()[0].IsLeaf() || !t.Children()[1].IsLeaf() {
		return 0, nil, fmt.Errorf("%w: %s message is not node(body, signature)", ErrInvalid, kind)
	}
	body, sig := t.Children()[0], t.Children()[1].Data()
	c := body.Children()
	if len(c) != 4 || !c[0].IsLeaf() || !c[1].IsLeaf() || !c[2].IsLeaf() {
		return 0, nil, fmt.Errorf("%w: %s message body has the wrong shape", ErrInvalid, kind)
	}
	if string(c[0].Data()) != kind {
		return 0, nil, fmt.Errorf("%w: message of kind %q where %q was expected", ErrInvalid, c[0].Data(), kind)
	}
	if string(c[1].Data()) != string(hash[:]) {
		return 0, nil, fmt.Errorf("%w: %s message belongs to another election", ErrInvalid, kind)
	}
	idx, err := uint32Leaf(c[2])
	if err != nil || idx < 1 || idx > len(d.Trustees) {
		return 0, nil, fmt.Errorf("%w: %s message names no trustee 1..%d", ErrInvalid, kind, len(d.Trustees))
	}
	if len(sig) != 64 || !d.Trustees[idx-1].SigningKey.Verify(append([]byte(messageSigContext), body.Encode()...), sig) {
		return 0, nil, fmt.Errorf("%w: %s message of trustee %d: signature invalid", ErrInvalid, kind, idx)
	}
	return idx, c[3], nil
}

func uint32Leaf(t *bytetree.Tree) (int, error) {
	if !t.IsLeaf() || t.Len() != 4 {
		return 0, fmt.Errorf("%w: not a 4-byte integer", ErrInvalid)
	}
	b := t.Data()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if v > 1<<30 {
		return 0, fmt.Errorf("%w: integer %d out of range", ErrInvalid, v)
	}
	return int(v), nil
}

// readLimited reads a file of at most limit bytes, checking the size before reading.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes exceeds the limit of %d", path, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// writeNew writes a new file; it refuses to replace an existing one (nothing is overwritten
// silently).
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}
