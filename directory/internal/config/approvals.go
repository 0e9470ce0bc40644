package config

import (
	"fmt"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// ApprovedProvider is one [[approved_providers]] table: a provider and the mail domains it may
// serve (docs/spec/pki.md section 9).
type ApprovedProvider struct {
	// Identity is the provider's identity public key in hex.
	Identity string `mapstructure:"identity"`
	// Domains are the mail domains it may list in its descriptor (at least one).
	Domains []string `mapstructure:"domains"`
}

// Approval is a node approved in the file.
type Approval struct {
	Identity keys.IdentityPublicKey
	pki.Approval
}

// Approvals parses approved (mixes) and approved_providers. An identity may appear once, a mail
// domain in one provider's list: two approved providers of one domain would leave it with none.
func (c *Config) Approvals() ([]Approval, error) {
	var out []Approval
	seen := make(map[keys.IdentityPublicKey]string)
	add := func(key, s string, a pki.Approval) error {
		k, err := keys.ParseIdentityPublicKey(s)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if o, dup := seen[k]; dup {
			return fmt.Errorf("%s: node %s is already approved in %s", key, k, o)
		}
		seen[k] = key
		out = append(out, Approval{Identity: k, Approval: a})
		return nil
	}
	for i, s := range c.Approved {
		if err := add(fmt.Sprintf("approved[%d]", i), s, pki.Approval{Role: pki.RoleMix}); err != nil {
			return nil, err
		}
	}
	owner := make(map[string]string)
	for i, p := range c.ApprovedProviders {
		key := fmt.Sprintf("approved_providers[%d]", i)
		a, err := pki.NewApproval(pki.RoleProvider, p.Domains)
		if err != nil {
			return nil, fmt.Errorf("%s.domains: %w", key, err)
		}
		for _, d := range a.Domains {
			if o, dup := owner[d]; dup {
				return nil, fmt.Errorf("%s.domains: %s is already approved for %s: a mail domain has one provider", key, d, o)
			}
			owner[d] = key
		}
		if err := add(key+".identity", p.Identity, a); err != nil {
			return nil, err
		}
	}
	return out, nil
}
