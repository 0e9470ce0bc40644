package survey

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// SubmissionIDSize is the size of a submission id.
const SubmissionIDSize = 16

// MaxSubmissionSize is the largest submission encoding (docs/spec/survey.md section 4).
const MaxSubmissionSize = 1 + 32 + SubmissionIDSize + 1 + MaxQuestions*9

// SubmissionID is the random id that makes a resent submission a duplicate.
type SubmissionID [SubmissionIDSize]byte

// String returns the id in lowercase hex.
func (id SubmissionID) String() string { return hex.EncodeToString(id[:]) }

// NewSubmissionID reads a random id from r (crypto/rand.Reader).
func NewSubmissionID(r io.Reader) (SubmissionID, error) {
	var id SubmissionID
	if _, err := io.ReadFull(r, id[:]); err != nil {
		return id, fmt.Errorf("survey: submission id: %w", err)
	}
	return id, nil
}

// Answer is one answer: Value is 0/1 for boolean, the option index for categorical, the
// integer, or the scaled real.
type Answer struct {
	Type  Type
	Value int64
}

// Submission is one participant's answers to a survey.
type Submission struct {
	Survey  ID
	ID      SubmissionID
	Answers []Answer
}

func hashRaw(raw []byte) ID { return sha256.Sum256(raw) }

// Marshal encodes s. It fails when s could not be parsed back (unknown type, boolean or
// categorical value out of a byte, no answers or too many).
func (s *Submission) Marshal() ([]byte, error) {
	if len(s.Answers) == 0 || len(s.Answers) > MaxQuestions {
		return nil, fmt.Errorf("%w: %d answers: want 1 to %d", ErrMalformed, len(s.Answers), MaxQuestions)
	}
	b := make([]byte, 0, MaxSubmissionSize)
	b = append(b, Version)
	b = append(b, s.Survey[:]...)
	b = append(b, s.ID[:]...)
	b = append(b, byte(len(s.Answers)))
	for i, a := range s.Answers {
		b = append(b, byte(a.Type))
		switch a.Type {
		case Boolean, Categorical:
			if a.Value < 0 || a.Value > 255 || (a.Type == Boolean && a.Value > 1) {
				return nil, fmt.Errorf("%w: answer %d: %s value %d", ErrMalformed, i, a.Type, a.Value)
			}
			b = append(b, byte(a.Value))
		case Integer, Real:
			b = binary.BigEndian.AppendUint64(b, uint64(a.Value))
		default:
			return nil, fmt.Errorf("%w: answer %d: unknown %s", ErrMalformed, i, a.Type)
		}
	}
	return b, nil
}

// ParseSubmission decodes a submission strictly (section 4): a successful parse re-encodes to
// the same bytes. It does not check the answers against a definition: see Validate.
func ParseSubmission(b []byte) (*Submission, error) {
	if len(b) > MaxSubmissionSize {
		return nil, fmt.Errorf("%w: submission of %d bytes over %d", ErrMalformed, len(b), MaxSubmissionSize)
	}
	r := &reader{b: b}
	if v := r.u8("version"); r.err == nil && v != Version {
		return nil, fmt.Errorf("%w: submission version %d", ErrMalformed, v)
	}
	s := &Submission{}
	copy(s.Survey[:], r.take(32, "survey id"))
	copy(s.ID[:], r.take(SubmissionIDSize, "submission id"))
	n := int(r.u8("answer count"))
	if r.err == nil && (n == 0 || n > MaxQuestions) {
		return nil, fmt.Errorf("%w: %d answers: want 1 to %d", ErrMalformed, n, MaxQuestions)
	}
	for i := range n {
		a := Answer{Type: Type(r.u8("answer type"))}
		switch a.Type {
		case Boolean, Categorical:
			a.Value = int64(r.u8("answer"))
			if a.Type == Boolean && a.Value > 1 {
				return nil, fmt.Errorf("%w: answer %d: boolean %d", ErrMalformed, i, a.Value)
			}
		case Integer, Real:
			a.Value = int64(r.u64("answer"))
		default:
			if r.err == nil {
				return nil, fmt.Errorf("%w: answer %d: unknown %s", ErrMalformed, i, a.Type)
			}
		}
		s.Answers = append(s.Answers, a)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last answer", ErrMalformed, len(r.b))
	}
	return s, nil
}

// Validate checks s against the signed survey (section 4.1).
func (s *Submission) Validate(sv *Signed) error {
	if s.Survey != sv.ID() {
		return fmt.Errorf("%w: submission for survey %s, not %s", ErrMalformed, s.Survey, sv.ID())
	}
	d := sv.Definition
	if len(s.Answers) != len(d.Questions) {
		return fmt.Errorf("%w: %d answers to %d questions", ErrMalformed, len(s.Answers), len(d.Questions))
	}
	for i, a := range s.Answers {
		q := &d.Questions[i]
		if a.Type != q.Type {
			return fmt.Errorf("%w: question %q: %s answer to a %s question", ErrMalformed, q.ID, a.Type, q.Type)
		}
		lo, hi, err := d.Bounds(i)
		if err != nil {
			return err
		}
		if a.Value < lo || a.Value > hi {
			return fmt.Errorf("%w: question %q: answer %d outside [%d, %d]", ErrMalformed, q.ID, a.Value, lo, hi)
		}
	}
	return nil
}

// ServiceName is the provider service that receives submissions (docs/spec/survey.md section 5).
const ServiceName = "survey"

// ClosedRefusal is the reason the survey service gives, in the answer of an AckRefused ACK,
// for a submission to survey name once it is closed (docs/spec/survey.md section 5).
func ClosedRefusal(name string) string { return fmt.Sprintf("survey %s is closed", name) }

// WindowRefusal is the reason given for a submission outside d's time window at now: before
// it opens, or from its closing time on (section 5).
func WindowRefusal(d *Definition, now time.Time) string {
	if s := now.Unix(); s < 0 || uint64(s) < d.Opens {
		return fmt.Sprintf("survey %s is not open yet (it opens at %s)", d.Name, time.Unix(int64(d.Opens), 0).UTC().Format(time.RFC3339))
	}
	return ClosedRefusal(d.Name)
}
