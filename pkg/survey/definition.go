package survey

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// Version is the only definition and submission version.
const Version = 1

// Limits of docs/spec/survey.md section 2.
const (
	MaxNameSize       = 32
	MaxTitleSize      = 256
	MaxQuestions      = 64
	MaxTextSize       = 1024
	MaxOptions        = 64
	MaxOptionSize     = 128
	MaxDecimals       = 9
	MaxAbsValue       = 1_000_000_000_000_000 // 10^15
	MaxDefinitionSize = 65536
)

// NamePattern is what survey names and question ids look like.
var NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ErrMalformed is wrapped by every parsing and validation error.
var ErrMalformed = errors.New("survey: malformed")

// Type is a question's type.
type Type uint8

// Question types.
const (
	Boolean     Type = 1
	Categorical Type = 2
	Integer     Type = 3
	Real        Type = 4
)

func (t Type) String() string {
	switch t {
	case Boolean:
		return "boolean"
	case Categorical:
		return "categorical"
	case Integer:
		return "integer"
	case Real:
		return "real"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// ParseType parses the String form.
func ParseType(s string) (Type, error) {
	for _, t := range []Type{Boolean, Categorical, Integer, Real} {
		if t.String() == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: question type %q: want boolean, categorical, integer or real", ErrMalformed, s)
}

// Question is one question of a survey.
type Question struct {
	ID   string
	Text string
	Type Type
	// LocalEpsilon, when not zero, is the ε of the client's local perturbation.
	LocalEpsilon dp.Epsilon
	// Options of a categorical question.
	Options []string
	// Decimals of a real question: an answer v stands for v / 10^Decimals.
	Decimals uint8
	// Lo and Hi bound integer and real answers (reals scaled by 10^Decimals).
	Lo, Hi int64
}

// Definition is a survey definition (docs/spec/survey.md section 2).
type Definition struct {
	Name      string
	Title     string
	Collector keys.IdentityPublicKey
	// Opens and Closes are Unix seconds; submissions are accepted in [Opens, Closes).
	Opens, Closes uint64
	Budget        dp.Epsilon
	Questions     []Question
}

// ID is a survey id: the SHA-256 of a definition's encoding (section 2.2).
type ID [32]byte

// String returns the id in lowercase hex.
func (id ID) String() string { return fmt.Sprintf("%x", id[:]) }

// ID returns the survey id. It fails when d is not valid.
func (d *Definition) ID() (ID, error) {
	b, err := d.Marshal()
	if err != nil {
		return ID{}, err
	}
	return sha256.Sum256(b), nil
}

// Open reports whether submissions are accepted at t by the definition's time window.
func (d *Definition) Open(t time.Time) bool {
	s := t.Unix()
	return s >= 0 && uint64(s) >= d.Opens && uint64(s) < d.Closes
}

// Bounds returns the range an answer to question i may take in a submission (section 4.1):
// for numbers [Lo, Hi], or the local range when the question is perturbed locally; for
// boolean and categorical questions [0, options - 1].
func (d *Definition) Bounds(i int) (lo, hi int64, err error) {
	q := &d.Questions[i]
	switch q.Type {
	case Boolean:
		return 0, 1, nil
	case Categorical:
		return 0, int64(len(q.Options)) - 1, nil
	}
	if q.LocalEpsilon == 0 {
		return q.Lo, q.Hi, nil
	}
	return dp.LocalRange(q.Lo, q.Hi, q.LocalEpsilon)
}

// Validate checks the rules of section 2.1.
func (d *Definition) Validate() error {
	if !NamePattern.MatchString(d.Name) {
		return fmt.Errorf("%w: survey name %q: want lowercase letters, digits and '-', at most %d", ErrMalformed, d.Name, MaxNameSize)
	}
	if err := checkText("title", d.Title, MaxTitleSize); err != nil {
		return err
	}
	if d.Collector.IsZero() {
		return fmt.Errorf("%w: no collector key", ErrMalformed)
	}
	if d.Opens >= d.Closes || d.Closes > 1<<62 {
		return fmt.Errorf("%w: opens %d is not before closes %d", ErrMalformed, d.Opens, d.Closes)
	}
	if d.Budget == 0 || d.Budget > dp.MaxEpsilon {
		return fmt.Errorf("%w: budget %s: want more than 0 and at most %s", ErrMalformed, d.Budget, dp.MaxEpsilon)
	}
	if len(d.Questions) == 0 || len(d.Questions) > MaxQuestions {
		return fmt.Errorf("%w: %d questions: want 1 to %d", ErrMalformed, len(d.Questions), MaxQuestions)
	}
	ids := map[string]bool{}
	for i := range d.Questions {
		q := &d.Questions[i]
		if !NamePattern.MatchString(q.ID) {
			return fmt.Errorf("%w: question %d: id %q: want lowercase letters, digits and '-'", ErrMalformed, i, q.ID)
		}
		if ids[q.ID] {
			return fmt.Errorf("%w: question id %q repeated", ErrMalformed, q.ID)
		}
		ids[q.ID] = true
		if err := q.validate(); err != nil {
			return fmt.Errorf("question %q: %w", q.ID, err)
		}
	}
	return nil
}

func (q *Question) validate() error {
	if err := checkText("text", q.Text, MaxTextSize); err != nil {
		return err
	}
	if q.LocalEpsilon > dp.MaxEpsilon {
		return fmt.Errorf("%w: local epsilon %s over %s", ErrMalformed, q.LocalEpsilon, dp.MaxEpsilon)
	}
	if q.Type != Categorical && q.Options != nil {
		return fmt.Errorf("%w: options on a %s question", ErrMalformed, q.Type)
	}
	if q.Type != Real && q.Decimals != 0 {
		return fmt.Errorf("%w: decimals on a %s question", ErrMalformed, q.Type)
	}
	if (q.Type == Boolean || q.Type == Categorical) && (q.Lo != 0 || q.Hi != 0) {
		return fmt.Errorf("%w: bounds on a %s question", ErrMalformed, q.Type)
	}
	switch q.Type {
	case Boolean:
	case Categorical:
		if len(q.Options) < 2 || len(q.Options) > MaxOptions {
			return fmt.Errorf("%w: %d options: want 2 to %d", ErrMalformed, len(q.Options), MaxOptions)
		}
		seen := map[string]bool{}
		for _, o := range q.Options {
			if err := checkText("option", o, MaxOptionSize); err != nil {
				return err
			}
			if seen[o] {
				return fmt.Errorf("%w: option %q repeated", ErrMalformed, o)
			}
			seen[o] = true
		}
	case Integer, Real:
		if q.Decimals > MaxDecimals {
			return fmt.Errorf("%w: %d decimals: at most %d", ErrMalformed, q.Decimals, MaxDecimals)
		}
		if q.Lo > q.Hi || q.Lo < -MaxAbsValue || q.Hi > MaxAbsValue {
			return fmt.Errorf("%w: bounds [%d, %d]: want lo <= hi within ±10^15", ErrMalformed, q.Lo, q.Hi)
		}
		if q.LocalEpsilon != 0 {
			if _, _, err := dp.LocalRange(q.Lo, q.Hi, q.LocalEpsilon); err != nil {
				return fmt.Errorf("%w: %w", ErrMalformed, err)
			}
		}
	default:
		return fmt.Errorf("%w: unknown %s", ErrMalformed, q.Type)
	}
	return nil
}

func checkText(what, s string, limit int) error {
	if len(s) == 0 || len(s) > limit || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s of %d bytes: want 1 to %d bytes of UTF-8", ErrMalformed, what, len(s), limit)
	}
	return nil
}

// Marshal returns the canonical encoding of d. It fails when d is not valid.
func (d *Definition) Marshal() ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	b := []byte{Version}
	b = appendStr8(b, d.Name)
	b = appendStr16(b, d.Title)
	b = append(b, d.Collector[:]...)
	b = binary.BigEndian.AppendUint64(b, d.Opens)
	b = binary.BigEndian.AppendUint64(b, d.Closes)
	b = binary.BigEndian.AppendUint64(b, uint64(d.Budget))
	b = append(b, byte(len(d.Questions)))
	for i := range d.Questions {
		q := &d.Questions[i]
		b = appendStr8(b, q.ID)
		b = appendStr16(b, q.Text)
		b = append(b, byte(q.Type))
		b = binary.BigEndian.AppendUint64(b, uint64(q.LocalEpsilon))
		switch q.Type {
		case Categorical:
			b = append(b, byte(len(q.Options)))
			for _, o := range q.Options {
				b = appendStr8(b, o)
			}
		case Real:
			b = append(b, q.Decimals)
			fallthrough
		case Integer:
			b = binary.BigEndian.AppendUint64(b, uint64(q.Lo))
			b = binary.BigEndian.AppendUint64(b, uint64(q.Hi))
		}
	}
	if len(b) > MaxDefinitionSize {
		return nil, fmt.Errorf("%w: definition of %d bytes over %d", ErrMalformed, len(b), MaxDefinitionSize)
	}
	return b, nil
}

func appendStr8(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }
func appendStr16(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// reader reads a bounded byte string; its first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = fmt.Errorf("%w: truncated at %s", ErrMalformed, what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) uint8 {
	if v := r.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if v := r.take(2, what); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if v := r.take(8, what); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) str8(what string) string  { return string(r.take(int(r.u8(what)), what)) }
func (r *reader) str16(what string) string { return string(r.take(int(r.u16(what)), what)) }

// ParseDefinition decodes and validates a definition's canonical encoding strictly.
func ParseDefinition(b []byte) (*Definition, error) {
	if len(b) > MaxDefinitionSize {
		return nil, fmt.Errorf("%w: definition of %d bytes over %d", ErrMalformed, len(b), MaxDefinitionSize)
	}
	r := &reader{b: b}
	if v := r.u8("version"); r.err == nil && v != Version {
		return nil, fmt.Errorf("%w: definition version %d", ErrMalformed, v)
	}
	d := &Definition{Name: r.str8("name"), Title: r.str16("title")}
	copy(d.Collector[:], r.take(32, "collector"))
	d.Opens, d.Closes = r.u64("opens"), r.u64("closes")
	d.Budget = dp.Epsilon(r.u64("budget"))
	n := int(r.u8("question count"))
	if n > MaxQuestions {
		return nil, fmt.Errorf("%w: %d questions over %d", ErrMalformed, n, MaxQuestions)
	}
	for range n {
		q := Question{ID: r.str8("question id"), Text: r.str16("question text"), Type: Type(r.u8("type"))}
		q.LocalEpsilon = dp.Epsilon(r.u64("local epsilon"))
		switch q.Type {
		case Categorical:
			k := int(r.u8("option count"))
			if k > MaxOptions {
				return nil, fmt.Errorf("%w: %d options over %d", ErrMalformed, k, MaxOptions)
			}
			q.Options = make([]string, 0, k)
			for range k {
				q.Options = append(q.Options, r.str8("option"))
			}
		case Real:
			q.Decimals = r.u8("decimals")
			fallthrough
		case Integer:
			q.Lo, q.Hi = int64(r.u64("lo")), int64(r.u64("hi"))
		case Boolean:
		default:
			if r.err == nil {
				return nil, fmt.Errorf("%w: question %q: unknown %s", ErrMalformed, q.ID, q.Type)
			}
		}
		d.Questions = append(d.Questions, q)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last question", ErrMalformed, len(r.b))
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}
