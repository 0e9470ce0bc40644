package survey

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// The human forms of docs/spec/survey.md section 2.4, read by mixctl.

// MaxJSONSize bounds the JSON documents read here.
const MaxJSONSize = 1 << 20

type jsonDefinition struct {
	Name      string         `json:"name"`
	Title     string         `json:"title"`
	Opens     time.Time      `json:"opens"`
	Closes    time.Time      `json:"closes"`
	Budget    dp.Epsilon     `json:"budget"`
	Questions []jsonQuestion `json:"questions"`
}

type jsonQuestion struct {
	ID           string      `json:"id"`
	Text         string      `json:"text"`
	Type         string      `json:"type"`
	LocalEpsilon *dp.Epsilon `json:"local_epsilon,omitempty"`
	Options      []string    `json:"options,omitempty"`
	Decimals     uint8       `json:"decimals,omitempty"`
	Min          string      `json:"min,omitempty"`
	Max          string      `json:"max,omitempty"`
}

func decodeStrict(b []byte, v any) error {
	if len(b) > MaxJSONSize {
		return fmt.Errorf("%w: JSON of %d bytes over %d", ErrMalformed, len(b), MaxJSONSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON document", ErrMalformed)
	}
	return nil
}

// ParseDefinitionJSON reads the human form of a definition for collector.
func ParseDefinitionJSON(b []byte, collector keys.IdentityPublicKey) (*Definition, error) {
	var j jsonDefinition
	if err := decodeStrict(b, &j); err != nil {
		return nil, err
	}
	if j.Opens.Unix() < 0 || j.Closes.Unix() < 0 {
		return nil, fmt.Errorf("%w: opens and closes must be after 1970", ErrMalformed)
	}
	d := &Definition{Name: j.Name, Title: j.Title, Collector: collector, Opens: uint64(j.Opens.Unix()), Closes: uint64(j.Closes.Unix()), Budget: j.Budget}
	for _, jq := range j.Questions {
		t, err := ParseType(jq.Type)
		if err != nil {
			return nil, fmt.Errorf("question %q: %w", jq.ID, err)
		}
		q := Question{ID: jq.ID, Text: jq.Text, Type: t, Options: jq.Options, Decimals: jq.Decimals}
		if jq.LocalEpsilon != nil {
			q.LocalEpsilon = *jq.LocalEpsilon
		}
		if t == Integer || t == Real {
			if q.Lo, err = ParseFixed(jq.Min, q.Decimals); err != nil {
				return nil, fmt.Errorf("question %q: min: %w", jq.ID, err)
			}
			if q.Hi, err = ParseFixed(jq.Max, q.Decimals); err != nil {
				return nil, fmt.Errorf("question %q: max: %w", jq.ID, err)
			}
		} else if jq.Min != "" || jq.Max != "" {
			return nil, fmt.Errorf("%w: question %q: min/max on a %s question", ErrMalformed, jq.ID, t)
		}
		d.Questions = append(d.Questions, q)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// ParseFixed parses a decimal such as "-12.5" with at most decimals decimals into the integer
// value * 10^decimals, within ±MaxAbsValue.
func ParseFixed(s string, decimals uint8) (int64, error) {
	if len(s) == 0 || len(s) > 40 {
		return 0, fmt.Errorf("%w: number %q", ErrMalformed, s)
	}
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if whole == "" || len(frac) > int(decimals) || strings.Contains(s, ".") && frac == "" {
		return 0, fmt.Errorf("%w: number %q: want digits with at most %d decimals", ErrMalformed, s, decimals)
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: number %q: want digits with at most %d decimals", ErrMalformed, s, decimals)
		}
	}
	v, ok := new(big.Int).SetString(whole+frac+strings.Repeat("0", int(decimals)-len(frac)), 10)
	if !ok {
		return 0, fmt.Errorf("%w: number %q", ErrMalformed, s)
	}
	if neg {
		v.Neg(v)
	}
	if v.CmpAbs(big.NewInt(MaxAbsValue)) > 0 {
		return 0, fmt.Errorf("%w: number %q beyond ±10^15 units", ErrMalformed, s)
	}
	return v.Int64(), nil
}

// FormatFixed is the inverse of ParseFixed (without trailing zeros trimmed: exactly decimals
// decimals).
func FormatFixed(v int64, decimals uint8) string {
	if decimals == 0 {
		return fmt.Sprint(v)
	}
	s := new(big.Int).Abs(big.NewInt(v)).String()
	if len(s) <= int(decimals) {
		s = strings.Repeat("0", int(decimals)-len(s)+1) + s
	}
	out := s[:len(s)-int(decimals)] + "." + s[len(s)-int(decimals):]
	if v < 0 {
		out = "-" + out
	}
	return out
}

// ParseAnswersJSON reads a participant's answers as a JSON object keyed by question id: true or
// false for boolean, the option text for categorical, a decimal string or JSON integer for
// numbers. Every question must be answered.
func ParseAnswersJSON(d *Definition, b []byte) ([]Answer, error) {
	var m map[string]json.RawMessage
	if err := decodeStrict(b, &m); err != nil {
		return nil, err
	}
	out := make([]Answer, len(d.Questions))
	for i := range d.Questions {
		q := &d.Questions[i]
		raw, ok := m[q.ID]
		if !ok {
			return nil, fmt.Errorf("%w: no answer to question %q", ErrMalformed, q.ID)
		}
		delete(m, q.ID)
		out[i].Type = q.Type
		switch q.Type {
		case Boolean:
			var v bool
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("%w: question %q: want true or false", ErrMalformed, q.ID)
			}
			if v {
				out[i].Value = 1
			}
		case Categorical:
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("%w: question %q: want one of %q", ErrMalformed, q.ID, q.Options)
			}
			idx := -1
			for k, o := range q.Options {
				if o == v {
					idx = k
				}
			}
			if idx < 0 {
				return nil, fmt.Errorf("%w: question %q: %q is not one of %q", ErrMalformed, q.ID, v, q.Options)
			}
			out[i].Value = int64(idx)
		default:
			s := strings.Trim(string(raw), `"`)
			v, err := ParseFixed(s, q.Decimals)
			if err != nil {
				return nil, fmt.Errorf("question %q: %w", q.ID, err)
			}
			if v < q.Lo || v > q.Hi {
				return nil, fmt.Errorf("%w: question %q: %s outside [%s, %s]", ErrMalformed, q.ID, s, FormatFixed(q.Lo, q.Decimals), FormatFixed(q.Hi, q.Decimals))
			}
			out[i].Value = v
		}
	}
	for k := range m {
		return nil, fmt.Errorf("%w: answer to unknown question %q", ErrMalformed, k)
	}
	return out, nil
}
