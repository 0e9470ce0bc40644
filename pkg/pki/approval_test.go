package pki

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestApproval(t *testing.T) {
	a, err := NewApproval(RoleProvider, []string{"mail.beta.example", "beta.example"})
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != "provider of beta.example, mail.beta.example" {
		t.Errorf("String = %q", a.String())
	}
	b, _ := json.Marshal(a)
	if string(b) != `{"role":"provider","domains":["beta.example","mail.beta.example"]}` {
		t.Errorf("JSON = %s", b)
	}
	var back Approval
	if err := json.Unmarshal(b, &back); err != nil || back.String() != a.String() {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
	if b, _ := json.Marshal(Approval{Role: RoleMix}); string(b) != `{"role":"mix","domains":[]}` {
		t.Errorf("mix JSON = %s", b)
	}
	many := make([]string, MaxDomains+1)
	for i := range many {
		many[i] = strings.Repeat("a", i+1) + ".example"
	}
	for _, tc := range []struct {
		name    string
		role    Role
		domains []string
		want    string
	}{
		{"provider without domain", RoleProvider, nil, "at least one"},
		{"mix with domain", RoleMix, []string{"x.example"}, "no mail domain"},
		{"unknown role", Role(3), nil, "unknown role"},
		{"bad domain", RoleProvider, []string{"Beta.example"}, "not allowed"},
		{"duplicate", RoleProvider, []string{"b.example", "b.example"}, "not sorted and unique"},
		{"over the limit", RoleProvider, many, "limit"},
	} {
		if _, err := NewApproval(tc.role, tc.domains); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, bad := range []string{`{"role":"provider"}`, `{"role":"mix","domains":["a.example"]}`, `{"role":"relay"}`, `{"role":"mix","x":1}`, `{"role":"mix"}{}`, `[]`} {
		var a Approval
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// Issue 13, finding 1: an approval permits the approved role and a subset of its domains only.
func TestApprovalPermits(t *testing.T) {
	e := Epoch(5)
	prov := newTestNode(t, 1, RoleProvider, e).desc // domains p1.example, mail.p1.example
	mix := newTestNode(t, 2, RoleMix, e).desc
	both, _ := NewApproval(RoleProvider, []string{"p1.example", "mail.p1.example"})
	one, _ := NewApproval(RoleProvider, []string{"p1.example"})
	asMix := Approval{Role: RoleMix}
	for _, tc := range []struct {
		name string
		a    Approval
		d    *Descriptor
		want string // "" permitted
	}{
		{"provider as approved", both, prov, ""},
		{"mix as approved", asMix, mix, ""},
		{"mix claiming to be a provider", asMix, prov, "approved as a mix"},
		{"provider claiming more domains", one, prov, "claims mail domain mail.p1.example"},
		{"provider running as a mix", both, mix, "approved as a provider"},
	} {
		err := tc.a.Permits(tc.d)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
