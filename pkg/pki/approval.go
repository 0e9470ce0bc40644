package pki

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Approval is what a directory operator approved a node as (docs/spec/pki.md section 9): its role
// and, for a provider, the mail domains it may serve. An authority keeps a node's descriptor out
// of its vote unless its approval permits it, so an approved node cannot make itself a provider,
// or the provider of someone else's domain.
type Approval struct {
	Role Role
	// Domains are sorted and unique: at least one for a provider, none for a mix.
	Domains []string
}

// NewApproval checks an approval and returns it with its domains sorted.
func NewApproval(role Role, domains []string) (Approval, error) {
	a := Approval{Role: role, Domains: slices.Clone(domains)}
	slices.Sort(a.Domains)
	return a, a.Validate()
}

// Validate checks the rules of docs/spec/pki.md section 9.
func (a Approval) Validate() error {
	switch a.Role {
	case RoleMix:
		if len(a.Domains) > 0 {
			return fmt.Errorf("approval: a mix serves no mail domain (got %s)", strings.Join(a.Domains, ", "))
		}
		return nil
	case RoleProvider:
		if len(a.Domains) == 0 {
			return errors.New("approval: a provider is approved for the mail domains it serves: name at least one")
		}
		if len(a.Domains) > MaxDomains {
			return fmt.Errorf("approval: %d domains, limit %d", len(a.Domains), MaxDomains)
		}
		if err := sortedUnique("domains", a.Domains, validDomain); err != nil {
			return fmt.Errorf("approval: %w", err)
		}
		return nil
	}
	return fmt.Errorf("approval: unknown role %d", uint8(a.Role))
}

// Permits returns why d may not go into a vote under this approval: its role differs, or it
// claims a mail domain the approval does not name. nil means it may.
func (a Approval) Permits(d *Descriptor) error {
	if d.Role != a.Role {
		return fmt.Errorf("the descriptor's role is %s, the node is approved as a %s", d.Role, a.Role)
	}
	var extra []string
	for _, dom := range d.Domains {
		if !slices.Contains(a.Domains, dom) {
			extra = append(extra, dom)
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("the descriptor claims mail domain %s, the node is approved for %s", strings.Join(extra, ", "), a.domainList())
	}
	return nil
}

// String says what the approval is, for people: "mix" or "provider of a.example, b.example".
func (a Approval) String() string {
	if a.Role == RoleProvider {
		return "provider of " + a.domainList()
	}
	return a.Role.String()
}

func (a Approval) domainList() string {
	if len(a.Domains) == 0 {
		return "no mail domain"
	}
	return strings.Join(a.Domains, ", ")
}

// approvalJSON is the JSON form: {"role": "provider", "domains": ["beta.example"]}.
type approvalJSON struct {
	Role    string   `json:"role"`
	Domains []string `json:"domains"`
}

// MarshalJSON encodes {"role": ..., "domains": [...]} (domains is [] for a mix).
func (a Approval) MarshalJSON() ([]byte, error) {
	d := a.Domains
	if d == nil {
		d = []string{}
	}
	return json.Marshal(approvalJSON{Role: a.Role.String(), Domains: d})
}

// UnmarshalJSON decodes and validates the JSON form strictly: unknown fields, trailing data and
// an approval that Validate refuses are errors.
func (a *Approval) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j approvalJSON
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("approval: %w", err)
	}
	if dec.More() {
		return errors.New("approval: data after the JSON object")
	}
	role, err := ParseRole(j.Role)
	if err != nil {
		return fmt.Errorf("approval: %w", err)
	}
	v, err := NewApproval(role, j.Domains)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
