package board

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

// Labels of §11.4.
const (
	entryLabel     = "panoramix vote board entry v1"
	entrySigLabel  = "panoramix vote board entry signature v1"
	genesisLabel   = "panoramix vote board genesis v1"
	receiptLabel   = "panoramix vote receipt v1"
	closeLabel     = "panoramix vote close v1"
	closeMsgLabel  = "panoramix vote close message v1"
	closeSigLabel  = "panoramix vote close signature v1"
	maxIDTreeBytes = 5 + 16
)

// Kind is the kind of a board entry.
type Kind uint8

// Entry kinds (§11.4).
const (
	KindBallot Kind = 1 // the payload is a Cast
	KindClose  Kind = 2 // the payload is a Close
)

func (k Kind) String() string {
	switch k {
	case KindBallot:
		return "ballot"
	case KindClose:
		return "close"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Board limits (§11.4).
const (
	// MaxEntries bounds the entries of a board: every voter of MaxVoters may re-vote a few
	// times.
	MaxEntries = 4 * MaxVoters
	// MaxEntrySize bounds one encoded entry: the largest payload (a cast) and the header.
	MaxEntrySize = 5 + (5 + (5 + len(entryLabel)) + maxIDTreeBytes + (5 + 8) + (5 + HashSize) +
		(5 + 1) + (5 + 8) + (5 + MaxCastSize)) + (5 + SignatureSize)
	// FramePrefix is the size of the length prefix of an entry in a board file.
	FramePrefix = 4
)

// Entry is one entry of the bulletin board (§11.4).
type Entry struct {
	Seq       uint64         // 0 for the first entry
	Prev      [HashSize]byte // Genesis(p) for entry 0, else the previous entry's Hash
	Kind      Kind
	Time      time.Time // when the box appended it, millisecond precision
	Payload   []byte    // the encoded Cast or Close
	Signature [SignatureSize]byte

	ElectionID string
	Cast       *Cast  // the parsed payload when Kind is KindBallot
	Close      *Close // the parsed payload when Kind is KindClose
}

// Genesis returns the Prev of entry 0: SHA-256(node(leaf(label), leaf(election id),
// leaf(election hash), leaf(box key))). It ties the board to one election and one box.
func Genesis(p *Params) [HashSize]byte {
	return sha256.Sum256(bytetree.Node(
		bytetree.String(genesisLabel),
		bytetree.String(p.ElectionID),
		bytetree.Leaf(p.ElectionHash[:]),
		bytetree.Leaf(p.BoxKey[:]),
	).Encode())
}

func entryBody(id string, seq uint64, prev [HashSize]byte, kind Kind, t time.Time, payload []byte) *bytetree.Tree {
	return bytetree.Node(
		bytetree.String(entryLabel),
		bytetree.String(id),
		uint64Leaf(seq),
		bytetree.Leaf(prev[:]),
		bytetree.Leaf([]byte{byte(kind)}),
		timeLeafMillis(t),
		bytetree.Leaf(payload),
	)
}

// Hash returns the entry hash: SHA-256 of the encoding of the entry's body (everything but the
// box signature).
func (e *Entry) Hash() [HashSize]byte {
	return sha256.Sum256(entryBody(e.ElectionID, e.Seq, e.Prev, e.Kind, e.Time, e.Payload).Encode())
}

// signedMessage is what the box signs for an entry hash h.
func signedMessage(h [HashSize]byte) []byte {
	return bytetree.Node(bytetree.String(entrySigLabel), bytetree.Leaf(h[:])).Encode()
}

// Marshal returns node(body, leaf(signature)).
func (e *Entry) Marshal() []byte {
	return bytetree.Node(entryBody(e.ElectionID, e.Seq, e.Prev, e.Kind, e.Time, e.Payload), bytetree.Leaf(e.Signature[:])).Encode()
}

// AppendFrame appends uint32(len(entry)) | entry, the entry's form in a board file.
func (e *Entry) AppendFrame(dst []byte) []byte {
	m := e.Marshal()
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m)))
	return append(dst, m...)
}

// NewEntry builds and signs entry seq of p's board with the box's key. t is truncated to the
// millisecond. The payload must parse as its kind's format; the box checks its content before.
func NewEntry(p *Params, box *keys.IdentityPrivateKey, seq uint64, prev [HashSize]byte, kind Kind, t time.Time, payload []byte) (*Entry, error) {
	e := &Entry{Seq: seq, Prev: prev, Kind: kind, Time: time.UnixMilli(t.UnixMilli()).UTC(), Payload: bytes.Clone(payload), ElectionID: p.ElectionID}
	if err := e.parsePayload(); err != nil {
		return nil, err
	}
	if !box.Public().Equal(p.BoxKey) {
		return nil, errors.New("board: the signing key is not the election's box key")
	}
	h := e.Hash()
	copy(e.Signature[:], box.Sign(signedMessage(h)))
	return e, nil
}

func (e *Entry) parsePayload() error {
	var err error
	switch e.Kind {
	case KindBallot:
		e.Cast, err = ParseCast(e.Payload)
	case KindClose:
		e.Close, err = ParseClose(e.Payload)
	default:
		err = malformed("entry kind %d", e.Kind)
	}
	return err
}

// ParseEntry decodes one entry (without its frame) strictly, including its payload.
func ParseEntry(b []byte) (*Entry, error) {
	t, err := parseTree(b, MaxEntrySize, 3, 2, "entry")
	if err != nil {
		return nil, err
	}
	body := t.Children()[0]
	if body.IsLeaf() || body.Len() != 7 {
		return nil, malformed("entry: want a body of 7 children")
	}
	c := body.Children()
	if err := checkLabel(c[0], entryLabel); err != nil {
		return nil, err
	}
	e := &Entry{}
	if !c[1].IsLeaf() || !ElectionIDPattern.Match(c[1].Data()) {
		return nil, malformed("entry: election id is not of the form %s", ElectionIDPattern)
	}
	e.ElectionID = string(c[1].Data())
	if e.Seq, err = leafUint64(c[2], "entry: seq"); err != nil {
		return nil, err
	}
	if e.Prev, err = leafHash(c[3], "entry: prev"); err != nil {
		return nil, err
	}
	k, err := fixedLeaf(c[4], 1, "entry: kind")
	if err != nil {
		return nil, err
	}
	e.Kind = Kind(k[0])
	if e.Time, err = leafMillis(c[5], "entry: time"); err != nil {
		return nil, err
	}
	if !c[6].IsLeaf() {
		return nil, malformed("entry: payload is not a leaf")
	}
	e.Payload = bytes.Clone(c[6].Data())
	if e.Signature, err = leafSignature(t.Children()[1], "entry: signature"); err != nil {
		return nil, err
	}
	if err := e.parsePayload(); err != nil {
		return nil, fmt.Errorf("entry %d: %w", e.Seq, err)
	}
	return e, nil
}

// ErrTornFrame is returned by ReadEntry when the input ends inside a frame: the tail of a board
// file whose last append did not complete.
var ErrTornFrame = errors.New("board: incomplete entry at the end of the board")

// ReadEntry reads one framed entry from r. It returns io.EOF at a clean end of input and an
// error wrapping ErrTornFrame when r ends inside a frame. The length prefix is checked against
// MaxEntrySize before anything is allocated.
func ReadEntry(r io.Reader) (*Entry, int, error) {
	var pre [FramePrefix]byte
	n, err := io.ReadFull(r, pre[:])
	if err == io.EOF {
		return nil, 0, io.EOF
	}
	if err == io.ErrUnexpectedEOF {
		return nil, n, fmt.Errorf("%w: %d bytes of a length prefix", ErrTornFrame, n)
	}
	if err != nil {
		return nil, n, err
	}
	size := binary.BigEndian.Uint32(pre[:])
	if int64(size) > int64(MaxEntrySize) {
		return nil, n, fmt.Errorf("%w: entry of %d bytes, at most %d", ErrTooLarge, size, MaxEntrySize)
	}
	buf := make([]byte, size)
	m, err := io.ReadFull(r, buf)
	n += m
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, n, fmt.Errorf("%w: %d of %d bytes", ErrTornFrame, m, size)
	}
	if err != nil {
		return nil, n, err
	}
	e, err := ParseEntry(buf)
	return e, n, err
}

// ParseBoard decodes a board file: framed entries (§11.4) up to the end, at most MaxEntries.
// It checks the format of every entry, not the rules of a board; use VerifyBoard.
func ParseBoard(b []byte) ([]*Entry, error) {
	r := bytes.NewReader(b)
	var es []*Entry
	for {
		e, _, err := ReadEntry(r)
		if err == io.EOF {
			return es, nil
		}
		if err != nil {
			return nil, fmt.Errorf("board entry %d: %w", len(es), err)
		}
		if len(es) == MaxEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrTooLarge, MaxEntries)
		}
		es = append(es, e)
	}
}

// MarshalBoard returns the board file of entries.
func MarshalBoard(entries []*Entry) []byte {
	var b []byte
	for _, e := range entries {
		b = e.AppendFrame(b)
	}
	return b
}

// VerifySignature checks the box's signature over the entry hash.
func (e *Entry) VerifySignature(p *Params) bool {
	return p.BoxKey.Verify(signedMessage(e.Hash()), e.Signature[:])
}

// Receipt is the box's signed statement that a cast is entry Seq of the board (§11.5). With the
// voter's own cast it determines the entry completely.
type Receipt struct {
	ElectionID string
	Seq        uint64
	Prev       [HashSize]byte
	Time       time.Time
	EntryHash  [HashSize]byte
	Signature  [SignatureSize]byte // the entry's box signature
}

// MaxReceiptSize is the size of an encoded receipt (fixed but for the election id).
const MaxReceiptSize = 5 + (5 + len(receiptLabel)) + maxIDTreeBytes + (5 + 8) + (5 + HashSize) + (5 + 8) + (5 + HashSize) + (5 + SignatureSize)

// Receipt returns the receipt of e.
func (e *Entry) Receipt() *Receipt {
	return &Receipt{ElectionID: e.ElectionID, Seq: e.Seq, Prev: e.Prev, Time: e.Time, EntryHash: e.Hash(), Signature: e.Signature}
}

// Marshal returns node(label, id, seq, prev, time, entry hash, signature).
func (r *Receipt) Marshal() []byte {
	return bytetree.Node(
		bytetree.String(receiptLabel),
		bytetree.String(r.ElectionID),
		uint64Leaf(r.Seq),
		bytetree.Leaf(r.Prev[:]),
		timeLeafMillis(r.Time),
		bytetree.Leaf(r.EntryHash[:]),
		bytetree.Leaf(r.Signature[:]),
	).Encode()
}

// ParseReceipt decodes a receipt strictly.
func ParseReceipt(b []byte) (*Receipt, error) {
	t, err := parseTree(b, MaxReceiptSize, 2, 7, "receipt")
	if err != nil {
		return nil, err
	}
	c := t.Children()
	if err := checkLabel(c[0], receiptLabel); err != nil {
		return nil, err
	}
	r := &Receipt{}
	if !c[1].IsLeaf() || !ElectionIDPattern.Match(c[1].Data()) {
		return nil, malformed("receipt: election id is not of the form %s", ElectionIDPattern)
	}
	r.ElectionID = string(c[1].Data())
	if r.Seq, err = leafUint64(c[2], "receipt: seq"); err != nil {
		return nil, err
	}
	if r.Prev, err = leafHash(c[3], "receipt: prev"); err != nil {
		return nil, err
	}
	if r.Time, err = leafMillis(c[4], "receipt: time"); err != nil {
		return nil, err
	}
	if r.EntryHash, err = leafHash(c[5], "receipt: entry hash"); err != nil {
		return nil, err
	}
	if r.Signature, err = leafSignature(c[6], "receipt: signature"); err != nil {
		return nil, err
	}
	return r, nil
}

// Verify checks that r is for election p and carries the box's signature over its entry hash.
func (r *Receipt) Verify(p *Params) error {
	if r.ElectionID != p.ElectionID {
		return fail(ErrWrongElection, "receipt for election %q, not %q", r.ElectionID, p.ElectionID)
	}
	if !p.BoxKey.Verify(signedMessage(r.EntryHash), r.Signature[:]) {
		return fail(ErrBadSignature, "receipt for entry %d: box signature invalid", r.Seq)
	}
	return nil
}

// VerifyCast checks r (Verify) and that its entry hash is that of a ballot entry holding
// exactly the encoded cast: the box committed to this cast at position Seq.
func (r *Receipt) VerifyCast(p *Params, cast []byte) error {
	if err := r.Verify(p); err != nil {
		return err
	}
	h := sha256.Sum256(entryBody(r.ElectionID, r.Seq, r.Prev, KindBallot, r.Time, cast).Encode())
	if h != r.EntryHash {
		return fail(ErrInvalid, "receipt for entry %d does not commit to this cast", r.Seq)
	}
	return nil
}

// OnBoard checks that the board holds r's entry at position Seq, and reports the position of
// a later ballot of the same credential, if any, which replaces r's ballot (re-voting, §11.6);
// later is -1 when r's ballot is the one counted.
func (r *Receipt) OnBoard(entries []*Entry) (later int64, err error) {
	if r.Seq >= uint64(len(entries)) {
		return -1, fail(ErrInvalid, "receipt for entry %d, the board has %d entries", r.Seq, len(entries))
	}
	e := entries[r.Seq]
	if e.Hash() != r.EntryHash || e.Kind != KindBallot {
		return -1, fail(ErrInvalid, "board entry %d is not the entry of this receipt: the box dropped or replaced the ballot", r.Seq)
	}
	for i := len(entries) - 1; i > int(r.Seq); i-- {
		if c := entries[i].Cast; c != nil && c.Credential == e.Cast.Credential {
			return int64(i), nil
		}
	}
	return -1, nil
}

// CloseMessage is what each trustee signs to agree to close election p (§11.7):
// node(leaf(label), leaf(election id), leaf(election hash)).
func CloseMessage(p *Params) []byte {
	return bytetree.Node(bytetree.String(closeMsgLabel), bytetree.String(p.ElectionID), bytetree.Leaf(p.ElectionHash[:])).Encode()
}

// CloseSignature is one trustee's signature over CloseMessage, the file a trustee hands to the
// operator of the box.
type CloseSignature struct {
	ElectionID string
	Trustee    int // 1-based index in Params.Trustees
	Signature  [SignatureSize]byte
}

// MaxCloseSignatureSize bounds an encoded CloseSignature.
const MaxCloseSignatureSize = 5 + (5 + len(closeSigLabel)) + maxIDTreeBytes + (5 + 4) + (5 + SignatureSize)

// SignClose signs CloseMessage(p) as trustee index (1-based) with its signing key.
func SignClose(p *Params, index int, key *keys.IdentityPrivateKey) (*CloseSignature, error) {
	if index < 1 || index > len(p.Trustees) {
		return nil, fmt.Errorf("board: trustee %d outside 1..%d", index, len(p.Trustees))
	}
	if !key.Public().Equal(p.Trustees[index-1]) {
		return nil, fmt.Errorf("board: the key is not trustee %d's signing key", index)
	}
	s := &CloseSignature{ElectionID: p.ElectionID, Trustee: index}
	copy(s.Signature[:], key.Sign(CloseMessage(p)))
	return s, nil
}

// Marshal returns node(label, id, uint32(trustee), signature).
func (s *CloseSignature) Marshal() []byte {
	return bytetree.Node(bytetree.String(closeSigLabel), bytetree.String(s.ElectionID),
		bytetree.Uint32(uint32(s.Trustee)), bytetree.Leaf(s.Signature[:])).Encode()
}

// ParseCloseSignature decodes a CloseSignature strictly.
func ParseCloseSignature(b []byte) (*CloseSignature, error) {
	t, err := parseTree(b, MaxCloseSignatureSize, 2, 4, "close signature")
	if err != nil {
		return nil, err
	}
	c := t.Children()
	if err := checkLabel(c[0], closeSigLabel); err != nil {
		return nil, err
	}
	if !c[1].IsLeaf() || !ElectionIDPattern.Match(c[1].Data()) {
		return nil, malformed("close signature: election id is not of the form %s", ElectionIDPattern)
	}
	s := &CloseSignature{ElectionID: string(c[1].Data())}
	i, err := leafUint32(c[2], "close signature: trustee")
	if err != nil {
		return nil, err
	}
	if i < 1 || i > MaxTrustees {
		return nil, malformed("close signature: trustee %d outside 1..%d", i, MaxTrustees)
	}
	s.Trustee = int(i)
	if s.Signature, err = leafSignature(c[3], "close signature: signature"); err != nil {
		return nil, err
	}
	return s, nil
}

// Verify checks the signature against trustee s.Trustee's key in p.
func (s *CloseSignature) Verify(p *Params) error {
	if s.ElectionID != p.ElectionID {
		return fail(ErrWrongElection, "close signature for election %q, not %q", s.ElectionID, p.ElectionID)
	}
	if s.Trustee < 1 || s.Trustee > len(p.Trustees) {
		return fmt.Errorf("%w: trustee %d outside 1..%d", ErrMalformed, s.Trustee, len(p.Trustees))
	}
	if !p.Trustees[s.Trustee-1].Verify(CloseMessage(p), s.Signature[:]) {
		return fail(ErrBadSignature, "trustee %d's close signature is invalid", s.Trustee)
	}
	return nil
}

// TrusteeSignature is one signature of a Close.
type TrusteeSignature struct {
	Trustee   int // 1-based
	Signature [SignatureSize]byte
}

// Close is the payload of the last board entry: trustee signatures over CloseMessage, in
// increasing trustee order, at least Params.Threshold of them, all valid (§11.7).
type Close struct {
	ElectionID string
	Signatures []TrusteeSignature
}

// MaxCloseSize bounds an encoded Close.
const MaxCloseSize = 5 + (5 + len(closeLabel)) + maxIDTreeBytes + 5 + MaxTrustees*(5+(5+4)+(5+SignatureSize))

// NewClose assembles a Close from trustees' signatures, checking each (Verify); duplicates of
// one trustee are refused. It needs at least p.Threshold of them.
func NewClose(p *Params, sigs []*CloseSignature) (*Close, error) {
	byIndex := map[int]*CloseSignature{}
	for _, s := range sigs {
		if err := s.Verify(p); err != nil {
			return nil, err
		}
		if _, dup := byIndex[s.Trustee]; dup {
			return nil, fmt.Errorf("%w: two signatures of trustee %d", ErrMalformed, s.Trustee)
		}
		byIndex[s.Trustee] = s
	}
	c := &Close{ElectionID: p.ElectionID}
	for i := 1; i <= len(p.Trustees); i++ {
		if s := byIndex[i]; s != nil {
			c.Signatures = append(c.Signatures, TrusteeSignature{Trustee: i, Signature: s.Signature})
		}
	}
	if len(c.Signatures) < p.Threshold {
		return nil, fail(ErrInvalid, "%d trustee signatures, the threshold is %d", len(c.Signatures), p.Threshold)
	}
	return c, nil
}

// Marshal returns node(label, id, node(node(uint32(trustee), leaf(signature))...)).
func (c *Close) Marshal() []byte {
	ss := make([]*bytetree.Tree, len(c.Signatures))
	for i, s := range c.Signatures {
		ss[i] = bytetree.Node(bytetree.Uint32(uint32(s.Trustee)), bytetree.Leaf(s.Signature[:]))
	}
	return bytetree.Node(bytetree.String(closeLabel), bytetree.String(c.ElectionID), bytetree.Node(ss...)).Encode()
}

// ParseClose decodes a Close strictly: trustee indices strictly increasing in 1..MaxTrustees.
func ParseClose(b []byte) (*Close, error) {
	t, err := parseTree(b, MaxCloseSize, 4, 3, "close")
	if err != nil {
		return nil, err
	}
	c := t.Children()
	if err := checkLabel(c[0], closeLabel); err != nil {
		return nil, err
	}
	if !c[1].IsLeaf() || !ElectionIDPattern.Match(c[1].Data()) {
		return nil, malformed("close: election id is not of the form %s", ElectionIDPattern)
	}
	cl := &Close{ElectionID: string(c[1].Data())}
	if c[2].IsLeaf() || c[2].Len() > MaxTrustees {
		return nil, malformed("close: want a node of at most %d signatures", MaxTrustees)
	}
	last := 0
	for i, st := range c[2].Children() {
		if st.IsLeaf() || st.Len() != 2 {
			return nil, malformed("close: signature %d: want node(trustee, signature)", i)
		}
		idx, err := leafUint32(st.Children()[0], "close: trustee")
		if err != nil {
			return nil, err
		}
		if int(idx) <= last || idx > MaxTrustees {
			return nil, malformed("close: signature %d: trustee %d out of order or outside 1..%d", i, idx, MaxTrustees)
		}
		last = int(idx)
		sig, err := leafSignature(st.Children()[1], "close: signature")
		if err != nil {
			return nil, err
		}
		cl.Signatures = append(cl.Signatures, TrusteeSignature{Trustee: int(idx), Signature: sig})
	}
	return cl, nil
}

// Verify checks that c closes election p: every signature valid for its trustee and at least
// p.Threshold of them.
func (c *Close) Verify(p *Params) error {
	if c.ElectionID != p.ElectionID {
		return fail(ErrWrongElection, "close for election %q, not %q", c.ElectionID, p.ElectionID)
	}
	msg := CloseMessage(p)
	last := 0
	for _, s := range c.Signatures {
		if s.Trustee <= last || s.Trustee > len(p.Trustees) {
			return fmt.Errorf("%w: close: trustee %d out of order or outside 1..%d", ErrMalformed, s.Trustee, len(p.Trustees))
		}
		last = s.Trustee
		if !p.Trustees[s.Trustee-1].Verify(msg, s.Signature[:]) {
			return fail(ErrBadSignature, "trustee %d's close signature is invalid", s.Trustee)
		}
	}
	if len(c.Signatures) < p.Threshold {
		return fail(ErrInvalid, "close has %d trustee signatures, the threshold is %d", len(c.Signatures), p.Threshold)
	}
	return nil
}
