package config

import (
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

const (
	idA = "59ff4a672cf16317667933ea4323b2b2da3d3a38a4689204e118e313c6b8df07"
	idB = "efe7d1bfdf8c41c62688d126f35c492a5608b0f0bbde0e070babdddec1224e9f"
)

// approved = [...] approves mixes; [[approved_providers]] approves providers with their domains.
func TestApprovals(t *testing.T) {
	c, err := Load(writeConfig(t, "version = 1\napproved = [\""+idA+"\"]\n\n[[approved_providers]]\nidentity = \""+idB+"\"\ndomains = [\"mail.beta.example\", \"beta.example\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.Approvals()
	if err != nil || len(list) != 2 {
		t.Fatalf("Approvals = %+v, %v", list, err)
	}
	if list[0].Identity.String() != idA || list[0].Role != pki.RoleMix || len(list[0].Domains) != 0 {
		t.Errorf("approved[0] = %+v, want a mix", list[0])
	}
	if list[1].Identity.String() != idB || list[1].Role != pki.RoleProvider || strings.Join(list[1].Domains, " ") != "beta.example mail.beta.example" {
		t.Errorf("approved_providers[0] = %+v", list[1])
	}
}

func TestApprovalsRefuse(t *testing.T) {
	prov := func(id string, domains string) string {
		return "\n[[approved_providers]]\nidentity = \"" + id + "\"\ndomains = [" + domains + "]\n"
	}
	for _, tc := range []struct{ name, body, want string }{
		{"provider without domains", prov(idB, ""), "approved_providers[0].domains"},
		{"provider without domains key", "\n[[approved_providers]]\nidentity = \"" + idB + "\"\n", "at least one"},
		{"bad domain", prov(idB, `"Beta.Example"`), "approved_providers[0].domains"},
		{"domain twice", prov(idA, `"beta.example"`) + prov(idB, `"beta.example"`), "one provider"},
		{"node twice", "approved = [\"" + idB + "\"]\n" + prov(idB, `"beta.example"`), "already approved"},
		{"bad identity", prov("zz", `"beta.example"`), "approved_providers[0].identity"},
		{"unknown key", "\n[[approved_providers]]\nidentity = \"" + idB + "\"\ndomains = [\"b.example\"]\nrole = \"mix\"\n", "role"},
	} {
		_, err := Load(writeConfig(t, "version = 1\n"+tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want mention of %q", tc.name, err, tc.want)
		}
	}
}
