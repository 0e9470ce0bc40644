package election

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestProtInfoFollowsVerificatumSchema checks ProtInfo against the rules vmnv applies when it
// reads protInfo.xml (Verificatum validates the file against an XML schema built from its field
// definitions, docs/spec/vote.md §6.1): the root elements once each in schema order, then one
// party per mixer with name, srtbyrole, descr, pkey, http, hint in that order, each value
// matching its pattern, no whitespace around numbers, and nopart equal to the party count.
//
// The same checks pass on the protInfo.xml files Verificatum itself made (testdata of
// pkg/vote/verificatum), which keeps the rules here honest.
func TestProtInfoFollowsVerificatumSchema(t *testing.T) {
	f := newFixture(t, 1, 5, 3, []int{2, 4, 5}) // id "test-election": the '-' is not allowed in <name>
	checkVerificatumSchema(t, ProtInfo(f.sd), len(f.sd.Definition.Trustees))
	for _, d := range []string{"mix-p256-3party-n100", "shuffle-p256-n100"} {
		t.Run(d, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "verificatum", "testdata", d, "protInfo.xml"))
			if err != nil {
				t.Fatal(err)
			}
			checkVerificatumSchema(t, b, -1)
		})
	}
}

// checkVerificatumSchema applies the schema rules to protInfo; wantParties < 0 skips the
// party count.
func checkVerificatumSchema(t *testing.T, protInfo []byte, wantParties int) {
	t.Helper()
	type elem struct {
		name, value string
		children    []*elem
	}
	dec := xml.NewDecoder(strings.NewReader(string(protInfo)))
	var stack []*elem
	var root *elem
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			e := &elem{name: tk.Name.Local}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, e)
			} else {
				root = e
			}
			stack = append(stack, e)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].value += string(tk)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.ProcInst, xml.Directive:
			t.Fatalf("vmnv refuses processing instructions and directives: %v", tk)
		}
	}
	if root == nil || root.name != "protocol" {
		t.Fatal("no <protocol> root")
	}
	// Patterns of Verificatum's field types (RootInfo, ProtocolGen, XSTypes).
	var (
		version  = regexp.MustCompile(`^[0-9]{0,3}\.[0-9]{0,3}\.[0-9]{0,3}$`)
		sid      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]+$`) // and at most 1024 characters
		name     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_ ]{1,255}$`)
		descr    = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9:;?!.()\[\] ]*)?$`) // and at most 4001
		role     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9]{1,63}$`)
		anything = regexp.MustCompile(`^.*$`)
		url      = regexp.MustCompile(`^http://([a-z0-9.-]+|[0-9]{1,3}(\.[0-9]{1,3}){3}):[0-9]{1,5}$`)
		hint     = regexp.MustCompile(`^([a-z0-9.-]+|[0-9]{1,3}(\.[0-9]{1,3}){3}):[0-9]{1,5}$`)
		corr     = regexp.MustCompile(`^(interactive|noninteractive)$`)
	)
	type rule struct {
		tag    string
		re     *regexp.Regexp
		lo, hi int // integer fields: lo <= v < hi; hi 0 means no upper bound
		isInt  bool
	}
	rootRules := []rule{
		{tag: "version", re: version}, {tag: "sid", re: sid}, {tag: "name", re: name}, {tag: "descr", re: descr},
		{tag: "nopart", isInt: true, lo: 1, hi: 25}, {tag: "statdist", isInt: true, lo: 0, hi: 256},
		{tag: "bullboard", re: anything}, {tag: "thres", isInt: true, lo: 1, hi: 25}, {tag: "pgroup", re: anything},
		{tag: "keywidth", isInt: true, lo: 1}, {tag: "vbitlen", isInt: true, lo: 1, hi: 2048},
		{tag: "vbitlenro", isInt: true, lo: 1, hi: 2048}, {tag: "ebitlen", isInt: true, lo: 1, hi: 2048},
		{tag: "ebitlenro", isInt: true, lo: 1, hi: 2048}, {tag: "prg", re: anything}, {tag: "rohash", re: anything},
		{tag: "corr", re: corr}, {tag: "width", isInt: true, lo: 1}, {tag: "maxciph", isInt: true, lo: 0},
	}
	partyRules := []rule{
		{tag: "name", re: name}, {tag: "srtbyrole", re: role}, {tag: "descr", re: descr},
		{tag: "pkey", re: anything}, {tag: "http", re: url}, {tag: "hint", re: hint},
	}
	check := func(where string, got []*elem, rules []rule) {
		if len(got) < len(rules) {
			t.Fatalf("%s: %d elements, want %d", where, len(got), len(rules))
		}
		for i, r := range rules {
			e := got[i]
			if e.name != r.tag {
				t.Fatalf("%s: element %d is <%s>, want <%s> (the schema is a sequence)", where, i, e.name, r.tag)
			}
			if r.isInt {
				v, err := strconv.Atoi(e.value) // no surrounding whitespace either
				if err != nil || v < r.lo || (r.hi > 0 && v >= r.hi) {
					t.Errorf("%s: <%s>%q</%s> is not an integer in [%d, %d)", where, r.tag, e.value, r.tag, r.lo, r.hi)
				}
				continue
			}
			if max := map[string]int{"sid": 1024, "descr": 4001}[r.tag]; max > 0 && len(e.value) > max {
				t.Errorf("%s: <%s> longer than %d characters", where, r.tag, max)
			}
			if !r.re.MatchString(e.value) {
				t.Errorf("%s: <%s>%q</%s> does not match %s", where, r.tag, e.value, r.tag, r.re)
			}
			if strings.HasPrefix(r.tag, "http") || r.tag == "hint" {
				port, _ := strconv.Atoi(e.value[strings.LastIndexByte(e.value, ':')+1:])
				if port < 1 || port > 65535 {
					t.Errorf("%s: <%s> port %d", where, r.tag, port)
				}
			}
		}
	}
	// Root children: the root fields once each, then only parties.
	var rootFields, parties []*elem
	for _, c := range root.children {
		if c.name == "party" {
			parties = append(parties, c)
		} else {
			if len(parties) > 0 {
				t.Fatalf("<%s> after a <party>", c.name)
			}
			rootFields = append(rootFields, c)
		}
	}
	if len(rootFields) != len(rootRules) {
		t.Fatalf("%d root fields, want %d", len(rootFields), len(rootRules))
	}
	check("protocol", rootFields, rootRules)
	if nop, _ := strconv.Atoi(rootFields[4].value); nop != len(parties) || (wantParties >= 0 && nop != wantParties) {
		t.Errorf("nopart %d, %d parties, want %d", nop, len(parties), wantParties)
	}
	if rootFields[6].value != "com.verificatum.protocol.com.BullBoardBasicHTTPW" {
		t.Errorf("bullboard %q: the party fields checked here are that board's", rootFields[6].value)
	}
	for i, p := range parties {
		if len(p.children) != len(partyRules) {
			t.Fatalf("party %d: %d fields, want %d", i+1, len(p.children), len(partyRules))
		}
		check("party "+strconv.Itoa(i+1), p.children, partyRules)
	}
}
