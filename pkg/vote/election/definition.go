package election

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/trustee"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// Limits on a definition (docs/spec/vote.md §12.1). The definition is outside input for every
// verifier, so each size is bounded before anything is allocated for it.
const (
	// MaxDefinitionSize bounds the signed definition file: 2^20 voters at 67 bytes each in
	// JSON, plus room for the rest.
	MaxDefinitionSize = 80 << 20
	// MaxVoters bounds the voter list.
	MaxVoters = 1 << 20
	// MaxQuestions bounds the number of questions: the ballot box's limit (a cast must fit
	// in one packet).
	MaxQuestions = board.MaxQuestions
	// MaxChoicesPerQuestion bounds the choices of one question (far under ballot.MaxChoices,
	// which bounds the search that decodes a plaintext).
	MaxChoicesPerQuestion = 256
	// MaxTextLen bounds the title, a question's text and a choice's text, in bytes.
	MaxTextLen = 1024
	// MaxDomainLen bounds the provider domain.
	MaxDomainLen = 253
)

// DefinitionVersion is the only definition version this package reads.
const DefinitionVersion = 1

// definitionSigContext is prefixed to the canonical definition bytes before the official
// signs them, so that the signature cannot be taken for a signature of any other message of
// this protocol (each message kind has its own context string).
const definitionSigContext = "panoramix vote definition v1\x00"

// ErrInvalid is wrapped by every refusal of a record file (definition, key generation
// message, decryption share, tally) as malformed or wrongly signed.
var ErrInvalid = errors.New("election: invalid")

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// EncryptionKey is a trustee's X25519 public key, to which the other trustees encrypt its
// key shares with HPKE (§12.2). Text form: 64 lowercase hex characters.
type EncryptionKey [32]byte

// MarshalText implements encoding.TextMarshaler.
func (k EncryptionKey) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(k[:])), nil }

// UnmarshalText accepts exactly 64 lowercase hex characters naming a usable X25519 key.
func (k *EncryptionKey) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("%w: encryption key must be 64 hex characters, got %d", ErrInvalid, len(b))
	}
	var v EncryptionKey
	if _, err := hex.Decode(v[:], b); err != nil || hex.EncodeToString(v[:]) != string(b) {
		return fmt.Errorf("%w: encryption key is not lowercase hex", ErrInvalid)
	}
	if _, err := v.ecdh(); err != nil {
		return err
	}
	*k = v
	return nil
}

func (k EncryptionKey) ecdh() (*ecdh.PublicKey, error) {
	pk, err := ecdh.X25519().NewPublicKey(k[:])
	if err != nil {
		return nil, fmt.Errorf("%w: encryption key: %w", ErrInvalid, err)
	}
	return pk, nil
}

// Question is one question of the ballot; a voter picks exactly one choice.
type Question struct {
	Text    string   `json:"text"`
	Choices []string `json:"choices"`
}

// Trustee is one trustee of the election. Trustee i (1-based) is Definition.Trustees[i-1].
type Trustee struct {
	Name          string                 `json:"name"`
	SigningKey    keys.IdentityPublicKey `json:"signing_key"`
	EncryptionKey EncryptionKey          `json:"encryption_key"`
}

// Definition is what the election official signs (§12.1).
type Definition struct {
	Version   int                      `json:"version"`
	ID        string                   `json:"id"`
	Title     string                   `json:"title"`
	Questions []Question               `json:"questions"`
	Voters    []keys.IdentityPublicKey `json:"voters"`
	Trustees  []Trustee                `json:"trustees"`
	Threshold int                      `json:"threshold"`
	// Mixers are the indices (1-based) of the trustees that mix, in mixing order.
	Mixers   []int                  `json:"mixers"`
	Opens    time.Time              `json:"opens"`
	Closes   time.Time              `json:"closes"`
	Provider string                 `json:"provider"`
	BoxKey   keys.IdentityPublicKey `json:"box_key"`
}

// Validate checks every rule of §12.1 that does not need the signature.
func (d *Definition) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: definition: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if d.Version != DefinitionVersion {
		return bad("version %d, want %d", d.Version, DefinitionVersion)
	}
	if !idPattern.MatchString(d.ID) {
		return bad("id %q does not match [a-z][a-z0-9-]{0,15}", d.ID)
	}
	if err := checkText("title", d.Title); err != nil {
		return bad("%v", err)
	}
	if len(d.Questions) == 0 || len(d.Questions) > MaxQuestions {
		return bad("%d questions, want 1 to %d", len(d.Questions), MaxQuestions)
	}
	for i, q := range d.Questions {
		if err := checkText(fmt.Sprintf("question %d text", i), q.Text); err != nil {
			return bad("%v", err)
		}
		if len(q.Choices) < 2 || len(q.Choices) > MaxChoicesPerQuestion {
			return bad("question %d has %d choices, want 2 to %d", i, len(q.Choices), MaxChoicesPerQuestion)
		}
		for c, s := range q.Choices {
			if err := checkText(fmt.Sprintf("question %d choice %d", i, c), s); err != nil {
				return bad("%v", err)
			}
		}
	}
	if len(d.Voters) == 0 || len(d.Voters) > MaxVoters {
		return bad("%d voters, want 1 to %d", len(d.Voters), MaxVoters)
	}
	seen := make(map[keys.IdentityPublicKey]int, len(d.Voters))
	for i, v := range d.Voters {
		if v.IsZero() {
			return bad("voter %d has no key", i)
		}
		if j, ok := seen[v]; ok {
			return bad("voter %d repeats voter %d (%s)", i, j, v)
		}
		seen[v] = i
	}
	n := len(d.Trustees)
	if err := (trustee.Params{N: n, T: d.Threshold}).Validate(); err != nil {
		return bad("%d trustees, threshold %d: %v", n, d.Threshold, err)
	}
	// Verificatum's protocol has at most 25 parties; ours are the trustees (§12.5).
	if n > verificatum.MaxMixers {
		return bad("%d trustees, at most %d (Verificatum's limit on parties)", n, verificatum.MaxMixers)
	}
	sk := make(map[keys.IdentityPublicKey]int, n)
	for i, t := range d.Trustees {
		if err := checkText(fmt.Sprintf("trustee %d name", i+1), t.Name); err != nil {
			return bad("%v", err)
		}
		if t.SigningKey.IsZero() {
			return bad("trustee %d has no signing key", i+1)
		}
		if j, ok := sk[t.SigningKey]; ok {
			return bad("trustee %d has the signing key of trustee %d", i+1, j)
		}
		sk[t.SigningKey] = i + 1
		if _, err := t.EncryptionKey.ecdh(); err != nil {
			return bad("trustee %d: %v", i+1, err)
		}
	}
	// With fewer than t mixers, fewer than t trustees (the mixers together) could undo the
	// mixing, and vmnv refuses a proof directory with fewer shuffles than the threshold.
	if len(d.Mixers) < d.Threshold || len(d.Mixers) > n {
		return bad("%d mixers, want threshold (%d) to trustees (%d)", len(d.Mixers), d.Threshold, n)
	}
	mixing := make(map[int]bool, len(d.Mixers))
	for _, m := range d.Mixers {
		if m < 1 || m > n {
			return bad("mixer %d is not a trustee index 1..%d", m, n)
		}
		if mixing[m] {
			return bad("trustee %d mixes twice", m)
		}
		mixing[m] = true
	}
	if d.Opens.Unix() < 0 || !d.Closes.After(d.Opens) || d.Closes.Year() > 9999 {
		return bad("closes (%s) must be after opens (%s)", d.Closes, d.Opens)
	}
	if d.Provider == "" || len(d.Provider) > MaxDomainLen {
		return bad("provider domain must be 1 to %d bytes", MaxDomainLen)
	}
	if d.BoxKey.IsZero() {
		return bad("no ballot box key")
	}
	return nil
}

func checkText(what, s string) error {
	if s == "" || len(s) > MaxTextLen || !utf8.ValidString(s) {
		return fmt.Errorf("%s must be 1 to %d bytes of UTF-8", what, MaxTextLen)
	}
	return nil
}

// SignedDefinition is the definition file: the definition, the official's key and the
// official's signature over the canonical definition bytes.
type SignedDefinition struct {
	Definition Definition             `json:"definition"`
	Official   keys.IdentityPublicKey `json:"official"`
	Signature  string                 `json:"signature"` // hex, 128 characters
	raw        []byte
	hash       [32]byte
}

// Hash is the ElectionHash: SHA-256 of the signed definition file's bytes.
func (s *SignedDefinition) Hash() [32]byte { return s.hash }

// Bytes returns the signed definition file.
func (s *SignedDefinition) Bytes() []byte { return s.raw }

func canonicalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func definitionMessage(d *Definition) ([]byte, error) {
	body, err := canonicalJSON(d)
	if err != nil {
		return nil, fmt.Errorf("election: encode definition: %w", err)
	}
	return append([]byte(definitionSigContext), body...), nil
}

// normalise puts the times in UTC at second precision, so that the canonical form is unique.
func (d *Definition) normalise() {
	d.Opens = d.Opens.UTC().Truncate(time.Second)
	d.Closes = d.Closes.UTC().Truncate(time.Second)
}

// Sign validates d and returns the signed definition file signed by official.
func Sign(d *Definition, official *keys.IdentityPrivateKey) (*SignedDefinition, error) {
	dd := *d
	dd.normalise()
	if err := dd.Validate(); err != nil {
		return nil, err
	}
	msg, err := definitionMessage(&dd)
	if err != nil {
		return nil, err
	}
	s := &SignedDefinition{Definition: dd, Official: official.Public(), Signature: hex.EncodeToString(official.Sign(msg))}
	raw, err := canonicalJSON(s)
	if err != nil {
		return nil, fmt.Errorf("election: encode signed definition: %w", err)
	}
	s.raw, s.hash = raw, sha256.Sum256(raw)
	return s, nil
}

// ParseDefinition parses a signed definition file strictly: at most MaxDefinitionSize bytes,
// no unknown fields, the canonical encoding (re-encoding gives the same bytes), a valid
// definition and a valid signature by the official key it names. The caller decides whether
// that official is the expected one (compare Official with the key it trusts).
func ParseDefinition(b []byte) (*SignedDefinition, error) {
	if len(b) > MaxDefinitionSize {
		return nil, fmt.Errorf("%w: definition file of %d bytes exceeds %d", ErrInvalid, len(b), MaxDefinitionSize)
	}
	var s SignedDefinition
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: definition file: %w", ErrInvalid, err)
	}
	again, err := canonicalJSON(&s)
	if err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: definition file is not in canonical form", ErrInvalid)
	}
	if err := s.Definition.Validate(); err != nil {
		return nil, err
	}
	sig, err := hex.DecodeString(s.Signature)
	if err != nil || len(sig) != 64 {
		return nil, fmt.Errorf("%w: definition signature is not 64 bytes of hex", ErrInvalid)
	}
	msg, err := definitionMessage(&s.Definition)
	if err != nil {
		return nil, err
	}
	if !s.Official.Verify(msg, sig) {
		return nil, fmt.Errorf("%w: definition signature by official %s is invalid", ErrInvalid, s.Official)
	}
	s.raw = bytes.Clone(b)
	s.hash = sha256.Sum256(b)
	return &s, nil
}

// TrusteeIndex returns the 1-based index of the trustee with signing key k, or 0.
func (d *Definition) TrusteeIndex(k keys.IdentityPublicKey) int {
	for i, t := range d.Trustees {
		if t.SigningKey.Equal(k) {
			return i + 1
		}
	}
	return 0
}
