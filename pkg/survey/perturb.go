package survey

import (
	"fmt"

	"github.com/panoramix-mixnet/panoramix/pkg/dp"
)

// NewSubmission builds a submission of the true answers to sv, applying the local
// perturbation of every question that asks for it (docs/spec/survey.md section 6.1) with
// sampler s, and checks the result against the definition.
func NewSubmission(sv *Signed, id SubmissionID, answers []Answer, s *dp.Sampler) (*Submission, error) {
	d := sv.Definition
	if len(answers) != len(d.Questions) {
		return nil, fmt.Errorf("%w: %d answers to %d questions", ErrMalformed, len(answers), len(d.Questions))
	}
	out := &Submission{Survey: sv.ID(), ID: id, Answers: make([]Answer, len(answers))}
	for i, a := range answers {
		q := &d.Questions[i]
		if a.Type != q.Type {
			return nil, fmt.Errorf("%w: question %q: %s answer to a %s question", ErrMalformed, q.ID, a.Type, q.Type)
		}
		out.Answers[i] = a
		if q.LocalEpsilon == 0 {
			continue
		}
		var err error
		switch q.Type {
		case Boolean, Categorical:
			k := 2
			if q.Type == Categorical {
				k = len(q.Options)
			}
			if a.Value < 0 || a.Value >= int64(k) {
				return nil, fmt.Errorf("%w: question %q: answer %d out of range", ErrMalformed, q.ID, a.Value)
			}
			var v int
			v, err = s.RandomizedResponse(int(a.Value), k, q.LocalEpsilon)
			out.Answers[i].Value = int64(v)
		default:
			out.Answers[i].Value, err = s.BoundedLaplace(a.Value, q.Lo, q.Hi, q.LocalEpsilon)
		}
		if err != nil {
			return nil, fmt.Errorf("question %q: %w", q.ID, err)
		}
	}
	if err := out.Validate(sv); err != nil {
		return nil, err
	}
	return out, nil
}
