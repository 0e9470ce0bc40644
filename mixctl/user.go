package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
)

func init() { addCommand(newUserCmd) }

// defaultProviderAdmin and defaultProviderToken match configs/mixd-provider.toml.
const (
	defaultProviderAdmin = "127.0.0.1:30003"
	defaultProviderToken = "/var/lib/panoramix/provider/admin.token"
)

// providerUser is what the provider's admin API returns for a user.
type providerUser struct {
	Name       string    `json:"name"`
	LinkKey    string    `json:"link_key"`
	QuotaBytes int64     `json:"quota_bytes"`
	Created    time.Time `json:"created"`
	// ReadsViaLink: the user's client reads mail through its link; the provider holds the
	// user's mail for it instead of delivering it to IMAP or LMTP.
	ReadsViaLink bool `json:"reads_via_link"`
}

func newUserCmd() *cobra.Command {
	admin := &adminAPI{daemon: "provider"}
	user := &cobra.Command{
		Use:   "user",
		Short: "Provider user accounts: add, remove, list",
		Long: `Commands for the users of a provider (mixd with role "provider"), through its admin
API on a loopback address (admin_address in the provider's configuration), with the
token the provider wrote to its admin_token_file (default data_dir/admin.token).

  mixctl user add NAME --link-key HEX [--quota BYTES]
  mixctl user passwd NAME [--password-file FILE]
  mixctl user remove NAME
  mixctl user list [--json]
  mixctl user set NAME --reads-via-link=false

NAME is the local part of the user's mail address (alice for alice@alpha.example).
The link key is what 'mailproxy init' prints for the user's account.`,
	}
	admin.flags(user, defaultProviderAdmin, defaultProviderToken)
	user.AddCommand(newUserAddCmd(admin), newUserPasswdCmd(admin), newUserRemoveCmd(admin), newUserListCmd(admin), newUserSetCmd(admin))
	return user
}

func newUserAddCmd(admin *adminAPI) *cobra.Command {
	var linkKey string
	var quota int64
	c := &cobra.Command{
		Use:   "add NAME --link-key HEX",
		Short: "Create a user on the provider",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if linkKey == "" {
				return errors.New("--link-key HEX is required: the user's link public key, as 'mailproxy init' prints it")
			}
			b, err := admin.do(cmd.Context(), http.MethodPost, "/admin/v1/users",
				map[string]any{"name": args[0], "link_key": linkKey, "quota_bytes": quota}, http.StatusCreated)
			if err != nil {
				return err
			}
			var u providerUser
			if err := json.Unmarshal(b, &u); err != nil {
				return fmt.Errorf("provider answer: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added user %s (quota %d bytes)\n", u.Name, u.QuotaBytes)
			return nil
		},
	}
	c.Flags().StringVar(&linkKey, "link-key", "", "the user's link public key (hex)")
	c.Flags().Int64Var(&quota, "quota", 1<<30, "mailbox quota in bytes")
	return c
}

func newUserPasswdCmd(admin *adminAPI) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "passwd NAME [--password-file FILE]",
		Short: "Set a user's IMAP password (built-in mailboxes)",
		Long: `Sets the password NAME logs in to the provider's built-in IMAP server with. The
password is read from --password-file, or else from the first line of standard
input (so it never appears in the process list or the shell history). The
provider stores only an argon2id hash.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if file != "" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			pw := strings.TrimRight(line, "\r\n")
			if len(pw) < adminauth.MinPasswordLength {
				return fmt.Errorf("the password must be at least %d characters (read from the first line of the input)", adminauth.MinPasswordLength)
			}
			if _, err := admin.do(cmd.Context(), http.MethodPut, "/admin/v1/users/"+args[0]+"/password",
				map[string]string{"password": pw}, http.StatusNoContent); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password set for %s\n", args[0])
			return nil
		},
	}
	c.Flags().StringVar(&file, "password-file", "", "read the password from the first line of FILE")
	return c
}

func newUserRemoveCmd(admin *adminAPI) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Delete a user and its queue from the provider",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := admin.do(cmd.Context(), http.MethodDelete, "/admin/v1/users/"+args[0], nil, http.StatusNoContent); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed user %s\n", args[0])
			return nil
		},
	}
}

func newUserListCmd(admin *adminAPI) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the provider's users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := admin.do(cmd.Context(), http.MethodGet, "/admin/v1/users", nil, http.StatusOK)
			if err != nil {
				return err
			}
			var users []providerUser
			if err := json.Unmarshal(b, &users); err != nil {
				return fmt.Errorf("provider answer: %w", err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(users)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tQUOTA\tCREATED\tREADS VIA LINK\tLINK KEY")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", u.Name, u.QuotaBytes, u.Created.Format(time.RFC3339), yesNo(u.ReadsViaLink), u.LinkKey)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newUserSetCmd(admin *adminAPI) *cobra.Command {
	var readsViaLink bool
	c := &cobra.Command{
		Use:   "set NAME --reads-via-link=false",
		Short: "Change a user: send its mail to IMAP again",
		Long: `Changes a user's settings on the provider.

--reads-via-link=false: the user's mail goes to the provider's mailbox backend
(the built-in IMAP store or LMTP) again instead of being held for the user's
mailproxy, which reads it through its link (docs/spec/services.md section 6).
Use it when the user stopped running mailproxy. Mail already held stays held
until a client fetches it. Only the user's mailproxy sets it, by reading its
mail through the link: a mailproxy that still runs sets it again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("reads-via-link") {
				return errors.New("nothing to change: give --reads-via-link=false")
			}
			if readsViaLink {
				return errors.New("--reads-via-link can only be set to false: the user's mailproxy sets it by reading mail through its link")
			}
			b, err := admin.do(cmd.Context(), http.MethodPatch, "/admin/v1/users/"+args[0],
				map[string]any{"reads_via_link": false}, http.StatusOK)
			if err != nil {
				return err
			}
			var u providerUser
			if err := json.Unmarshal(b, &u); err != nil {
				return fmt.Errorf("provider answer: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s: reads via link %s (mail goes to the mailbox backend)\n", u.Name, yesNo(u.ReadsViaLink))
			return nil
		},
	}
	c.Flags().BoolVar(&readsViaLink, "reads-via-link", false, "false: deliver the user's mail to IMAP or LMTP again")
	return c
}
