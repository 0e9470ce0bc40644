package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

func init() { addCommand(newDirCmd) }

// Defaults match the directory's defaults (directory/internal/config.Default) and, for the
// token file, configs/directory.toml's data_dir.
const (
	defaultDirURL   = "http://127.0.0.1:7000"
	defaultDirAdmin = "127.0.0.1:7001"
	defaultDirToken = "/var/lib/panoramix/directory/admin.token"
)

func newDirCmd() *cobra.Command {
	dir := &cobra.Command{
		Use:   "dir",
		Short: "Directory authority: keys, node approval, consensus status",
		Long: `Commands for the directory authority (docs/spec/pki.md).

  mixctl dir keygen --out DIR     create an authority identity key
  mixctl dir approve NODE-ID --role mix
  mixctl dir approve NODE-ID --role provider --domain DOMAIN [--domain ...]
                                  let a node into this authority's votes as what it is
  mixctl dir approved             list the approvals
  mixctl dir remove NODE-ID       take it out again
  mixctl dir status [--json]      show the current consensus document`,
	}
	dir.AddCommand(newDirKeygenCmd(), newDirApproveCmd(true), newDirApproveCmd(false), newDirApprovedCmd(), newDirStatusCmd())
	return dir
}

func newDirKeygenCmd() *cobra.Command {
	var out string
	var force bool
	c := &cobra.Command{
		Use:   "keygen --out DIR",
		Short: "Create a directory authority identity key",
		Long: `Creates DIR/authority.key (the private key, mode 0600) and DIR/authority.pub (the
public key) and prints the public key. Name the private key in the directory's
configuration as identity_key_file; give the public key to the other authorities
(their [[peers]] identity) and to clients and nodes (their list of authority keys).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out DIR is required: the directory to write authority.key and authority.pub into")
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			priv, pub := filepath.Join(out, "authority.key"), filepath.Join(out, "authority.pub")
			if !force {
				for _, p := range []string{priv, pub} {
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("%s exists: keep it, or pass --force to replace it (the old key is then lost)", p)
					}
				}
			}
			k, err := keys.GenerateIdentityKey(nil)
			if err != nil {
				return err
			}
			defer k.Wipe()
			if err := keys.SaveIdentityKey(priv, k); err != nil {
				return err
			}
			if err := keys.SaveIdentityPublicKey(pub, k.Public()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", k.Public())
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (private, 0600) and %s\nin the directory config: identity_key_file = %q\n", priv, pub, priv)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory for authority.key and authority.pub")
	c.Flags().BoolVar(&force, "force", false, "replace existing key files")
	return c
}

// newDirApproveCmd builds "approve" (approve true) or "remove".
func newDirApproveCmd(approve bool) *cobra.Command {
	admin := &adminAPI{daemon: "directory"}
	var role string
	var domains []string
	use, short, method := "approve NODE-ID --role mix|provider [--domain DOMAIN ...]", "Approve a node at a directory authority as a mix, or as the provider of mail domains", http.MethodPut
	long := `Approves NODE-ID (the node's identity public key, 64 hex characters, as mixd prints it)
through the authority's admin API, as what it may be in the network: --role mix, or
--role provider with each mail domain it serves as --domain (repeat for several).
The authority refuses a descriptor that claims another role or another domain, and
a domain approved for another node (a domain has one provider). Approving a node
again replaces its approval. With several authorities, approve the node at each of
them: a node is in the consensus only when a majority of authorities vote for it.`
	if !approve {
		use, short, method = "remove NODE-ID", "Remove a node identity from a directory authority's allow-list", http.MethodDelete
		long = `Removes NODE-ID from the authority's allow-list through its admin API. The node is
left out of this authority's next vote; documents already published do not change.`
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Long: long + "\n\nThe admin API listens on loopback only: run this on the authority's machine, as a user\n" +
			"who may read the token file the directory wrote (admin_token_file, default data_dir/admin.token).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := keys.ParseIdentityPublicKey(args[0])
			if err != nil {
				return fmt.Errorf("NODE-ID: %w", err)
			}
			var body any
			if approve {
				ap, err := approvalFlags(role, domains)
				if err != nil {
					return err
				}
				body = ap
			}
			msg, err := admin.do(cmd.Context(), method, "/admin/v1/nodes/"+id.String(), body, http.StatusOK)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), string(msg))
			return nil
		},
	}
	admin.flags(c, defaultDirAdmin, defaultDirToken)
	if approve {
		c.Flags().StringVar(&role, "role", "", `"mix" or "provider" (required)`)
		c.Flags().StringArrayVar(&domains, "domain", nil, "a mail domain the provider serves (repeat for several; providers only)")
	}
	return c
}

// approvalFlags turns --role and --domain into an approval, with errors that say which flag.
func approvalFlags(role string, domains []string) (pki.Approval, error) {
	if role == "" {
		return pki.Approval{}, errors.New("--role is required: --role mix, or --role provider --domain DOMAIN; an approval says what the node may publish")
	}
	r, err := pki.ParseRole(role)
	if err != nil {
		return pki.Approval{}, fmt.Errorf("--role: %w", err)
	}
	if r == pki.RoleProvider && len(domains) == 0 {
		return pki.Approval{}, errors.New("--role provider needs --domain DOMAIN for each mail domain the provider serves (repeat the flag)")
	}
	if r == pki.RoleMix && len(domains) > 0 {
		return pki.Approval{}, fmt.Errorf("--domain %s: a mix serves no mail domain; approve a provider with --role provider", strings.Join(domains, ", "))
	}
	for i, d := range domains {
		domains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	ap, err := pki.NewApproval(r, domains)
	if err != nil {
		return pki.Approval{}, fmt.Errorf("--domain: %w", err)
	}
	return ap, nil
}

func newDirApprovedCmd() *cobra.Command {
	admin := &adminAPI{daemon: "directory"}
	var jsonOutput bool
	c := &cobra.Command{
		Use:   "approved",
		Short: "List the nodes a directory authority approves, with their roles and mail domains",
		Long: `Lists the approvals of the authority's configuration file and of mixctl dir approve:
each node's identity, role and, for a provider, its mail domains. An approval stored
before approvals named a role is marked legacy: it admits the node as a mix only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := admin.do(cmd.Context(), http.MethodGet, "/admin/v1/nodes", nil, http.StatusOK)
			if err != nil {
				return err
			}
			if jsonOutput {
				_, err := cmd.OutOrStdout().Write(b)
				return err
			}
			var list []struct {
				Identity string   `json:"identity"`
				Role     string   `json:"role"`
				Domains  []string `json:"domains"`
				Legacy   bool     `json:"legacy"`
			}
			if err := json.Unmarshal(b, &list); err != nil {
				return fmt.Errorf("the directory's answer: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			for _, a := range list {
				what := a.Role
				if a.Legacy {
					what += " (legacy: approve again with --role)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Identity, what, strings.Join(a.Domains, " "))
			}
			return tw.Flush()
		},
	}
	admin.flags(c, defaultDirAdmin, defaultDirToken)
	c.Flags().BoolVar(&jsonOutput, "json", false, "print the admin API's JSON")
	return c
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func newDirStatusCmd() *cobra.Command {
	var (
		url        string
		epoch      string
		authKeys   []string
		threshold  int
		jsonOutput bool
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a consensus document in readable form or as JSON",
		Long: `Fetches the consensus document for the current (or --epoch) epoch from a directory
authority and prints its parameters, signatures and nodes by role and layer.

Pass the authority keys you trust with --authority (hex or a .pub file, repeat
for several) and --threshold to verify the signatures as clients do; without
--authority the document is shown but its signatures are not checked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var trusted []keys.IdentityPublicKey
			for _, a := range authKeys {
				k, err := keys.ParseIdentityPublicKey(a)
				if err != nil {
					if k, err = keys.LoadIdentityPublicKey(a); err != nil {
						return fmt.Errorf("--authority %q: neither a hex key nor a readable public key file: %w", a, err)
					}
				}
				trusted = append(trusted, k)
			}
			if threshold == 0 {
				threshold = len(trusted)/2 + 1
			}
			b, e, err := fetchDocument(cmd, strings.TrimRight(url, "/"), epoch)
			if err != nil {
				return err
			}
			var sd *pki.SignedDocument
			verified := len(trusted) > 0
			if verified {
				if sd, err = pki.Verify(b, e, trusted, threshold); err != nil {
					return fmt.Errorf("the document for epoch %d does not verify: %w", e, err)
				}
			} else if sd, err = pki.ParseSignedDocument(b); err != nil {
				return fmt.Errorf("the document for epoch %d: %w", e, err)
			}
			v := newStatusView(sd, trusted, threshold, verified)
			if jsonOutput {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			v.print(cmd.OutOrStdout())
			return nil
		},
	}
	c.Flags().StringVar(&url, "url", defaultDirURL, "the authority's public URL")
	c.Flags().StringVar(&epoch, "epoch", "current", "epoch number, or \"current\"")
	c.Flags().StringArrayVar(&authKeys, "authority", nil, "trusted authority key (hex or .pub file); repeat for several")
	c.Flags().IntVar(&threshold, "threshold", 0, "signatures required (default: a majority of --authority keys)")
	c.Flags().BoolVar(&jsonOutput, "json", false, "print JSON instead of text")
	return c
}

// fetchDocument gets the signed document and the epoch it was asked for.
func fetchDocument(cmd *cobra.Command, base, epoch string) ([]byte, pki.Epoch, error) {
	if epoch != "current" {
		if _, err := strconv.ParseUint(epoch, 10, 64); err != nil {
			return nil, 0, fmt.Errorf("--epoch %q: want a number or \"current\"", epoch)
		}
	}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, base+"/v1/consensus/"+epoch, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%w (is the directory running at --url?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		hint := ""
		if resp.StatusCode == http.StatusNotFound {
			hint = " (an authority publishes its first document for the epoch after it starts, once approved nodes have posted descriptors; see its /status page)"
		}
		return nil, 0, fmt.Errorf("directory answered %s: %s%s", resp.Status, strings.TrimSpace(string(msg)), hint)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, pki.MaxDocumentSize+1))
	if err != nil {
		return nil, 0, err
	}
	e, err := strconv.ParseUint(resp.Header.Get("X-Panoramix-Epoch"), 10, 64)
	if err != nil {
		return nil, 0, errors.New("the answer has no valid X-Panoramix-Epoch header: is --url a PANORAMIX directory?")
	}
	return b, pki.Epoch(e), nil
}

// statusView is the JSON form of a document; print renders it as text.
type statusView struct {
	Epoch      pki.Epoch  `json:"epoch"`
	Start      time.Time  `json:"start"`
	End        time.Time  `json:"end"`
	Verified   bool       `json:"verified"`
	Threshold  int        `json:"threshold,omitempty"`
	Signatures []sigView  `json:"signatures"`
	Parameters paramsView `json:"parameters"`
	Nodes      []nodeView `json:"nodes"`
	doc        *pki.Document
}

type sigView struct {
	Authority keys.IdentityPublicKey `json:"authority"`
	// Valid is whether the signature verifies and is by a trusted key; null when unchecked.
	Valid *bool `json:"valid"`
}

type paramsView struct {
	Hops          int     `json:"hops"`
	PayloadSize   int     `json:"payload_size"`
	PacketSize    int     `json:"packet_size"`
	GeometryHash  string  `json:"geometry_hash"`
	LambdaP       float64 `json:"lambda_p"`
	LambdaL       float64 `json:"lambda_l"`
	LambdaD       float64 `json:"lambda_d"`
	LambdaM       float64 `json:"lambda_m"`
	MeanDelayMs   int64   `json:"mean_delay_ms"`
	MaxDelayMs    int64   `json:"max_delay_ms"`
	EpochLengthMs int64   `json:"epoch_length_ms"`
}

type keyView struct {
	Epoch pki.Epoch            `json:"epoch"`
	Key   keys.SphinxPublicKey `json:"key"`
}

type nodeView struct {
	Identity   keys.IdentityPublicKey `json:"identity"`
	Link       keys.LinkPublicKey     `json:"link_key"`
	Role       string                 `json:"role"`
	Layer      uint8                  `json:"layer"`
	Addresses  []string               `json:"addresses"`
	Domains    []string               `json:"domains,omitempty"`
	Services   []string               `json:"services,omitempty"`
	SphinxKeys []keyView              `json:"sphinx_keys"`
}

func newStatusView(sd *pki.SignedDocument, trusted []keys.IdentityPublicKey, threshold int, verified bool) *statusView {
	d := sd.Document
	p := d.Parameters
	clock, _ := pki.NewClock(p.EpochLength) // the parser checked the length
	h := p.Geometry.Hash()
	v := &statusView{
		Epoch: d.Epoch, Start: clock.Start(d.Epoch).UTC(), End: clock.End(d.Epoch).UTC(), Verified: verified, doc: d,
		Parameters: paramsView{
			Hops: p.Geometry.Hops, PayloadSize: p.Geometry.PayloadSize, PacketSize: p.Geometry.PacketSize(),
			GeometryHash: fmt.Sprintf("%x", h[:]),
			LambdaP:      p.LambdaP, LambdaL: p.LambdaL, LambdaD: p.LambdaD, LambdaM: p.LambdaM,
			MeanDelayMs: p.MeanDelay.Milliseconds(), MaxDelayMs: p.MaxDelay.Milliseconds(), EpochLengthMs: p.EpochLength.Milliseconds(),
		},
		Signatures: []sigView{},
		Nodes:      []nodeView{},
	}
	if verified {
		v.Threshold = threshold
	}
	for _, s := range sd.Signatures {
		sv := sigView{Authority: s.Authority}
		if verified {
			ok := s.Verify(sd.Raw) && containsKey(trusted, s.Authority)
			sv.Valid = &ok
		}
		v.Signatures = append(v.Signatures, sv)
	}
	for _, n := range d.Nodes {
		nv := nodeView{Identity: n.Identity, Link: n.Link, Role: n.Role.String(), Layer: n.Layer,
			Addresses: n.Addresses, Domains: n.Domains, Services: n.Services}
		for _, k := range n.SphinxKeys {
			nv.SphinxKeys = append(nv.SphinxKeys, keyView{Epoch: k.Epoch, Key: k.Key})
		}
		v.Nodes = append(v.Nodes, nv)
	}
	return v
}

func containsKey(list []keys.IdentityPublicKey, k keys.IdentityPublicKey) bool {
	for _, x := range list {
		if x.Equal(k) {
			return true
		}
	}
	return false
}

func (v *statusView) print(w io.Writer) {
	p := v.Parameters
	fmt.Fprintf(w, "Consensus for epoch %d: %s to %s UTC\n", v.Epoch, v.Start.Format("2006-01-02 15:04:05"), v.End.Format("15:04:05"))
	if v.Verified {
		good := 0
		for _, s := range v.Signatures {
			if *s.Valid {
				good++
			}
		}
		fmt.Fprintf(w, "Signatures: %d, %d valid from trusted authorities (threshold %d): VERIFIED\n", len(v.Signatures), good, v.Threshold)
	} else {
		fmt.Fprintf(w, "Signatures: %d, NOT VERIFIED (pass --authority KEY to check them)\n", len(v.Signatures))
	}
	fmt.Fprintf(w, "Parameters: %d hops, %d-byte payload (%d-byte packets); lambda_P %g/s, lambda_L %g/s, lambda_D %g/s, lambda_M %g/s; mean delay %d ms, max %d ms; epoch %s\n",
		p.Hops, p.PayloadSize, p.PacketSize, p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM, p.MeanDelayMs, p.MaxDelayMs, time.Duration(p.EpochLengthMs)*time.Millisecond)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	providers := v.doc.Layer(0)
	fmt.Fprintf(tw, "\nProviders (%d):\n", len(providers))
	for _, n := range providers {
		fmt.Fprintf(tw, "  %s\t%s\tdomains: %s\tservices: %s\n", n.Identity, strings.Join(n.Addresses, " "), strings.Join(n.Domains, " "), strings.Join(n.Services, " "))
	}
	for l := uint8(1); l <= pki.Layers; l++ {
		mixes := v.doc.Layer(l)
		fmt.Fprintf(tw, "\nMix layer %d (%d):\n", l, len(mixes))
		for _, n := range mixes {
			fmt.Fprintf(tw, "  %s\t%s\n", n.Identity, strings.Join(n.Addresses, " "))
		}
	}
	tw.Flush()
}
