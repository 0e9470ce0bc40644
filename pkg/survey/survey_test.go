package survey

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/ seed files")

// testKey is a fixed collector key, so that the seed files are reproducible.
func testKey(t testing.TB) *keys.IdentityPrivateKey {
	k, err := keys.NewIdentityPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testDefinition(t testing.TB) *Definition {
	return &Definition{
		Name: "commute", Title: "How do you get to work?", Collector: testKey(t).Public(),
		Opens: 1_700_000_000, Closes: 1_900_000_000, Budget: 2 * dp.EpsilonUnit,
		Questions: []Question{
			{ID: "mode", Text: "Usual mode", Type: Categorical, Options: []string{"car", "bike", "train"}, LocalEpsilon: 2 * dp.EpsilonUnit},
			{ID: "minutes", Text: "Minutes door to door", Type: Integer, Lo: 0, Hi: 180},
			{ID: "km", Text: "Distance", Type: Real, Decimals: 1, Lo: 0, Hi: 1005},
			{ID: "remote", Text: "Work from home sometimes", Type: Boolean},
			{ID: "age", Text: "Age", Type: Integer, Lo: 18, Hi: 99, LocalEpsilon: dp.EpsilonUnit},
		},
	}
}

func testSigned(t testing.TB) *Signed {
	k := testKey(t)
	defer k.Wipe()
	s, err := Sign(testDefinition(t), k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testSubmission(t testing.TB, sv *Signed) *Submission {
	return &Submission{Survey: sv.ID(), ID: SubmissionID{1, 2, 3}, Answers: []Answer{
		{Categorical, 1}, {Integer, 25}, {Real, 125}, {Boolean, 1}, {Integer, -40},
	}}
}

// seeds builds the seed files: name -> bytes, per directory.
func seeds(t testing.TB) map[string]map[string][]byte {
	sv := testSigned(t)
	def := sv.Raw
	mod := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	minimal := &Definition{Name: "m", Title: "t", Collector: testKey(t).Public(), Opens: 0, Closes: 1, Budget: 1,
		Questions: []Question{{ID: "q", Text: "?", Type: Boolean}}}
	minRaw, err := minimal.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sub, err := testSubmission(t, sv).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	one, _ := (&Submission{Survey: sv.ID(), Answers: []Answer{{Integer, -1}}}).Marshal()
	// Offset of question 0's type byte in the test definition: used to corrupt it.
	qoff := 1 + 1 + len("commute") + 2 + len("How do you get to work?") + 32 + 8 + 8 + 8 + 1
	typeOff := qoff + 1 + len("mode") + 2 + len("Usual mode")
	return map[string]map[string][]byte{
		"definition": {
			"ok-full.bin":           def,
			"ok-minimal.bin":        minRaw,
			"bad-version.bin":       mod(def, func(b []byte) []byte { b[0] = 2; return b }),
			"bad-truncated.bin":     def[:len(def)-1],
			"bad-trailing.bin":      append(bytes.Clone(def), 0),
			"bad-type.bin":          mod(def, func(b []byte) []byte { b[typeOff] = 9; return b }),
			"bad-budget-zero.bin":   mod(minRaw, func(b []byte) []byte { copy(b[1+2+2+1+32+16:], make([]byte, 8)); return b }),
			"bad-closes-before.bin": mod(minRaw, func(b []byte) []byte { binary.BigEndian.PutUint64(b[1+2+2+1+32:], 5); return b }),
			"bad-empty.bin":         {},
		},
		"signed": {
			"ok-signed.bin":         sv.Marshal(),
			"bad-signature.bin":     mod(sv.Marshal(), func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
			"bad-definition.bin":    mod(sv.Marshal(), func(b []byte) []byte { b[3] ^= 1; return b }),
			"bad-short.bin":         make([]byte, 63),
			"bad-unsigned-only.bin": def,
		},
		"submission": {
			"ok-full.bin":          sub,
			"ok-one.bin":           one,
			"bad-version.bin":      mod(sub, func(b []byte) []byte { b[0] = 0; return b }),
			"bad-zero-answers.bin": mod(one[:50], func(b []byte) []byte { b[49] = 0; return b }),
			"bad-truncated.bin":    sub[:len(sub)-1],
			"bad-trailing.bin":     append(bytes.Clone(sub), 0),
			"bad-boolean.bin":      mod(sub, func(b []byte) []byte { b[len(b)-10] = 2; return b }),
			"bad-type.bin":         mod(sub, func(b []byte) []byte { b[50] = 7; return b }),
			"bad-oversize.bin":     make([]byte, MaxSubmissionSize+1),
		},
	}
}

func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite testdata/")
	}
	for dir, files := range seeds(t) {
		os.RemoveAll(filepath.Join("testdata", dir))
		if err := os.MkdirAll(filepath.Join("testdata", dir), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join("testdata", dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func readSeeds(t testing.TB, dir string) map[string][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// The seed files are what the generator makes (they are regenerated only on purpose), and each
// ok- file parses and re-encodes identically while each bad- file is refused.
func TestSeeds(t *testing.T) {
	want := seeds(t)
	parse := map[string]func([]byte) ([]byte, error){
		"definition": func(b []byte) ([]byte, error) {
			d, err := ParseDefinition(b)
			if err != nil {
				return nil, err
			}
			return d.Marshal()
		},
		"signed": func(b []byte) ([]byte, error) {
			s, err := ParseSigned(b)
			if err != nil {
				return nil, err
			}
			return s.Marshal(), nil
		},
		"submission": func(b []byte) ([]byte, error) {
			s, err := ParseSubmission(b)
			if err != nil {
				return nil, err
			}
			return s.Marshal()
		},
	}
	for dir, files := range want {
		got := readSeeds(t, dir)
		if len(got) == 0 {
			t.Fatalf("no seeds in testdata/%s", dir)
		}
		for name, b := range files {
			if !bytes.Equal(got[name], b) {
				t.Errorf("testdata/%s/%s differs from the generator (go test ./pkg/survey -run TestWriteSeeds -update-seeds)", dir, name)
			}
		}
		for name, b := range got {
			re, err := parse[dir](b)
			switch {
			case strings.HasPrefix(name, "ok-"):
				if err != nil {
					t.Errorf("%s/%s: %v", dir, name, err)
				} else if !bytes.Equal(re, b) {
					t.Errorf("%s/%s: re-encodes differently", dir, name)
				}
			case !errors.Is(err, ErrMalformed):
				t.Errorf("%s/%s: not refused as malformed: %v", dir, name, err)
			}
		}
	}
}

func fuzzSeeds(f *testing.F, dir string) {
	s := readSeeds(f, dir)
	if len(s) == 0 {
		f.Fatalf("no seeds in testdata/%s", dir)
	}
	for _, b := range s {
		f.Add(b)
	}
}

func FuzzParseDefinition(f *testing.F) {
	fuzzSeeds(f, "definition")
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDefinition(b)
		if err != nil {
			return
		}
		re, err := d.Marshal()
		if err != nil || !bytes.Equal(re, b) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func FuzzParseSigned(f *testing.F) {
	fuzzSeeds(f, "signed")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSigned(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("re-encode differs")
		}
	})
}

func FuzzParseSubmission(f *testing.F) {
	fuzzSeeds(f, "submission")
	sv := testSigned(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSubmission(b)
		if err != nil {
			return
		}
		re, err := s.Marshal()
		if err != nil || !bytes.Equal(re, b) {
			t.Fatalf("re-encode: %v", err)
		}
		_ = s.Validate(sv) // must not panic
	})
}

func TestSignVerify(t *testing.T) {
	sv := testSigned(t)
	got, err := ParseSigned(sv.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != sv.ID() || got.Definition.Name != "commute" {
		t.Error("round trip")
	}
	other, _ := keys.GenerateIdentityKey(rand.Reader)
	defer other.Wipe()
	if _, err := Sign(testDefinition(t), other); err == nil {
		t.Error("signed with a key that is not the collector's")
	}
	// A signature made without the context string does not verify.
	k := testKey(t)
	forged := append(bytes.Clone(sv.Raw), k.Sign(sv.Raw)...)
	if _, err := ParseSigned(forged); !errors.Is(err, ErrMalformed) {
		t.Errorf("signature without context: %v", err)
	}
}

func TestDefinitionRefusals(t *testing.T) {
	for name, f := range map[string]func(d *Definition){
		"name":            func(d *Definition) { d.Name = "Bad Name" },
		"title empty":     func(d *Definition) { d.Title = "" },
		"title long":      func(d *Definition) { d.Title = strings.Repeat("x", MaxTitleSize+1) },
		"title utf8":      func(d *Definition) { d.Title = "\xff" },
		"no collector":    func(d *Definition) { d.Collector = keys.IdentityPublicKey{} },
		"window":          func(d *Definition) { d.Closes = d.Opens },
		"budget":          func(d *Definition) { d.Budget = dp.MaxEpsilon + 1 },
		"no questions":    func(d *Definition) { d.Questions = nil },
		"many questions":  func(d *Definition) { d.Questions = make([]Question, MaxQuestions+1) },
		"dup id":          func(d *Definition) { d.Questions[1].ID = "mode" },
		"one option":      func(d *Definition) { d.Questions[0].Options = []string{"x"} },
		"dup option":      func(d *Definition) { d.Questions[0].Options = []string{"x", "x"} },
		"many options":    func(d *Definition) { d.Questions[0].Options = make([]string, MaxOptions+1) },
		"bounds":          func(d *Definition) { d.Questions[1].Lo = 200 },
		"huge bound":      func(d *Definition) { d.Questions[1].Hi = MaxAbsValue + 1 },
		"decimals":        func(d *Definition) { d.Questions[2].Decimals = MaxDecimals + 1 },
		"decimals on int": func(d *Definition) { d.Questions[1].Decimals = 1 },
		"options on bool": func(d *Definition) { d.Questions[3].Options = []string{"a", "b"} },
		"bounds on bool":  func(d *Definition) { d.Questions[3].Hi = 1 },
		"unknown type":    func(d *Definition) { d.Questions[3].Type = 9 },
		"local eps":       func(d *Definition) { d.Questions[3].LocalEpsilon = dp.MaxEpsilon + 1 },
		"local overflow": func(d *Definition) {
			d.Questions[1].Lo, d.Questions[1].Hi, d.Questions[1].LocalEpsilon = -MaxAbsValue, MaxAbsValue, 1
		},
		"text over limit":  func(d *Definition) { d.Questions[0].Text = strings.Repeat("y", MaxTextSize+1) },
		"option too long":  func(d *Definition) { d.Questions[0].Options[0] = strings.Repeat("z", MaxOptionSize+1) },
		"question id long": func(d *Definition) { d.Questions[0].ID = strings.Repeat("a", MaxNameSize+1) },
	} {
		d := testDefinition(t)
		f(d)
		if _, err := d.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDefinitionSizeLimit(t *testing.T) {
	big := make([]byte, MaxDefinitionSize+1)
	big[0] = Version
	if _, err := ParseDefinition(big); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "over") {
		t.Errorf("oversize: %v", err)
	}
	// The largest valid definition is over the limit: the limit is what refuses it.
	d := testDefinition(t)
	d.Questions = nil
	for i := range MaxQuestions {
		q := Question{ID: "q" + strings.Repeat("x", 20) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Text: strings.Repeat("t", MaxTextSize), Type: Categorical}
		for k := range MaxOptions {
			q.Options = append(q.Options, strings.Repeat("o", MaxOptionSize-2)+string(rune('a'+k%26))+string(rune('a'+k/26)))
		}
		d.Questions = append(d.Questions, q)
	}
	if _, err := d.Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("definition over the size limit: %v", err)
	}
}

func TestSubmissionValidate(t *testing.T) {
	sv := testSigned(t)
	good := testSubmission(t, sv)
	if err := good.Validate(sv); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(s *Submission){
		"survey": func(s *Submission) { s.Survey[0] ^= 1 },
		"count":  func(s *Submission) { s.Answers = s.Answers[:4] },
		"type":   func(s *Submission) { s.Answers[1].Type = Real },
		"option": func(s *Submission) { s.Answers[0].Value = 3 },
		"below":  func(s *Submission) { s.Answers[1].Value = -1 },
		"above":  func(s *Submission) { s.Answers[2].Value = 1006 },
		"local range above": func(s *Submission) {
			lo, hi, _ := dp.LocalRange(18, 99, dp.EpsilonUnit)
			s.Answers[4].Value = hi + 1
			_ = lo
		},
	} {
		s := testSubmission(t, sv)
		f(s)
		if err := s.Validate(sv); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A locally perturbed number may lie outside [lo, hi] but within the local range.
	s := testSubmission(t, sv)
	lo, _, _ := dp.LocalRange(18, 99, dp.EpsilonUnit)
	s.Answers[4].Value = lo
	if err := s.Validate(sv); err != nil {
		t.Errorf("local range: %v", err)
	}
}

func TestSubmissionMarshalRefusals(t *testing.T) {
	for name, s := range map[string]*Submission{
		"none":     {},
		"boolean":  {Answers: []Answer{{Boolean, 2}}},
		"category": {Answers: []Answer{{Categorical, 256}}},
		"type":     {Answers: []Answer{{5, 0}}},
		"many":     {Answers: make([]Answer, MaxQuestions+1)},
	} {
		if _, err := s.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The largest submission is exactly MaxSubmissionSize.
	s := &Submission{Answers: make([]Answer, MaxQuestions)}
	for i := range s.Answers {
		s.Answers[i] = Answer{Integer, int64(i)}
	}
	b, err := s.Marshal()
	if err != nil || len(b) != MaxSubmissionSize {
		t.Errorf("largest: %d bytes, %v", len(b), err)
	}
}

func TestNewSubmission(t *testing.T) {
	sv := testSigned(t)
	s := dp.NewSampler(nil)
	truth := []Answer{{Categorical, 2}, {Integer, 30}, {Real, 55}, {Boolean, 0}, {Integer, 40}}
	for range 200 {
		sub, err := NewSubmission(sv, SubmissionID{9}, truth, s)
		if err != nil {
			t.Fatal(err)
		}
		// Unperturbed questions carry the true answer.
		for _, i := range []int{1, 2, 3} {
			if sub.Answers[i] != truth[i] {
				t.Fatalf("question %d changed: %v", i, sub.Answers[i])
			}
		}
	}
	bad := []Answer{{Categorical, 2}, {Integer, 300}, {Real, 55}, {Boolean, 0}, {Integer, 40}}
	if _, err := NewSubmission(sv, SubmissionID{}, bad, s); !errors.Is(err, ErrMalformed) {
		t.Errorf("out of bounds: %v", err)
	}
	if _, err := NewSubmission(sv, SubmissionID{}, truth[:2], s); !errors.Is(err, ErrMalformed) {
		t.Errorf("too few: %v", err)
	}
}

func TestJSON(t *testing.T) {
	k := testKey(t)
	doc := `{"name": "commute", "title": "How?", "opens": "2026-11-21T00:00:00Z", "closes": "2026-12-21T00:00:00Z", "budget": "2",
 "questions": [
  {"id": "mode", "text": "Usual mode", "type": "categorical", "options": ["car", "bike", "train"], "local_epsilon": "2"},
  {"id": "minutes", "text": "Minutes", "type": "integer", "min": "0", "max": "180"},
  {"id": "km", "text": "Distance", "type": "real", "decimals": 1, "min": "0", "max": "100.5"},
  {"id": "remote", "text": "Remote", "type": "boolean"}]}`
	d, err := ParseDefinitionJSON([]byte(doc), k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if d.Questions[2].Hi != 1005 || d.Budget != 2*dp.EpsilonUnit || d.Closes-d.Opens != 30*86400 {
		t.Errorf("parsed %+v", d)
	}
	if _, err := ParseDefinitionJSON([]byte(strings.Replace(doc, `"title"`, `"tilte"`, 1)), k.Public()); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown field: %v", err)
	}
	a, err := ParseAnswersJSON(d, []byte(`{"mode": "bike", "minutes": 25, "km": "12.5", "remote": true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Answer{{Categorical, 1}, {Integer, 25}, {Real, 125}, {Boolean, 1}}
	for i := range want {
		if a[i] != want[i] {
			t.Errorf("answer %d: %v", i, a[i])
		}
	}
	for _, bad := range []string{
		`{"mode": "bus", "minutes": 25, "km": "12.5", "remote": true}`,
		`{"mode": "bike", "minutes": 181, "km": "12.5", "remote": true}`,
		`{"mode": "bike", "minutes": 25, "km": "12.55", "remote": true}`,
		`{"mode": "bike", "minutes": 25, "remote": true}`,
		`{"mode": "bike", "minutes": 25, "km": "1", "remote": true, "x": 1}`,
		`{"mode": "bike", "minutes": 25, "km": "1", "remote": "yes"}`,
	} {
		if _, err := ParseAnswersJSON(d, []byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestFixed(t *testing.T) {
	for _, tc := range []struct {
		s   string
		dec uint8
		v   int64
	}{{"12.5", 1, 125}, {"-0.05", 2, -5}, {"7", 3, 7000}, {"0", 0, 0}} {
		v, err := ParseFixed(tc.s, tc.dec)
		if err != nil || v != tc.v {
			t.Errorf("%s: %d %v", tc.s, v, err)
		}
	}
	for _, tc := range []struct {
		v   int64
		dec uint8
		s   string
	}{{125, 1, "12.5"}, {-5, 2, "-0.05"}, {7000, 3, "7.000"}, {3, 0, "3"}} {
		if s := FormatFixed(tc.v, tc.dec); s != tc.s {
			t.Errorf("%d: %s", tc.v, s)
		}
	}
	for _, s := range []string{"", "1.", ".5", "1e3", "--1", "1.234", "10000000000000000"} {
		if _, err := ParseFixed(s, 2); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestOpen(t *testing.T) {
	d := testDefinition(t)
	if !d.Open(time.Unix(1_800_000_000, 0)) || d.Open(time.Unix(1_900_000_000, 0)) || d.Open(time.Unix(1_600_000_000, 0)) {
		t.Error("window")
	}
}
