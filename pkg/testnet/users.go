package testnet

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// adminCall sends one request to a provider's admin API with the token from tokenFile.
func adminCall(method, url, tokenFile string, body any, want int) error {
	token, err := adminauth.Load(tokenFile)
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	adminauth.SetHeaders(req, token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("testnet: %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("testnet: %s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// AddUser creates a user (and its built-in mailbox) on a provider through its admin API, with a
// new link key, which it returns: the key a client (mailproxy, postfix-filter) links with.
func (n *Net) AddUser(provider *Node, name string, quotaBytes int64) (*keys.LinkPrivateKey, error) {
	k, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := n.AddUserKey(provider, name, k.Public(), quotaBytes); err != nil {
		return nil, err
	}
	return k, nil
}

// AddUserKey creates a user whose link key already exists (for example made by mailproxy init).
func (n *Net) AddUserKey(provider *Node, name string, link keys.LinkPublicKey, quotaBytes int64) error {
	if provider.Admin == "" {
		return fmt.Errorf("testnet: %s is not a provider", provider.Name)
	}
	return adminCall(http.MethodPost, "http://"+provider.Admin+"/admin/v1/users", provider.AdminToken,
		map[string]any{"name": name, "link_key": link.String(), "quota_bytes": quotaBytes}, http.StatusCreated)
}

// EnsureUserKey is AddUserKey for a network that may be resumed: a user who exists already
// with the same link key is kept, mail and all; one with another link key is an error, since
// another client owns the name.
func (n *Net) EnsureUserKey(provider *Node, name string, link keys.LinkPublicKey, quotaBytes int64) error {
	if provider.Admin == "" {
		return fmt.Errorf("testnet: %s is not a provider", provider.Name)
	}
	var users []struct {
		Name    string `json:"name"`
		LinkKey string `json:"link_key"`
	}
	if err := adminGet("http://"+provider.Admin+"/admin/v1/users", provider.AdminToken, &users); err != nil {
		return err
	}
	for _, u := range users {
		if u.Name == name {
			if u.LinkKey != link.String() {
				return fmt.Errorf("testnet: user %s exists at %s with link key %s, not %s", name, provider.Name, u.LinkKey, link)
			}
			return nil
		}
	}
	return n.AddUserKey(provider, name, link, quotaBytes)
}

// adminGet reads one JSON answer of a provider's admin API into v.
func adminGet(url, tokenFile string, v any) error {
	token, err := adminauth.Load(tokenFile)
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	adminauth.SetHeaders(req, token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("testnet: GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("testnet: GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("testnet: GET %s: %w", url, err)
	}
	return nil
}

// SetPassword sets a user's IMAP password on a provider.
func (n *Net) SetPassword(provider *Node, name, password string) error {
	return adminCall(http.MethodPut, "http://"+provider.Admin+"/admin/v1/users/"+name+"/password", provider.AdminToken,
		map[string]string{"password": password}, http.StatusNoContent)
}

// Provider returns the provider node serving a mail domain (never an Options.Extra node).
func (n *Net) Provider(domain string) *Node {
	for _, nd := range n.Nodes {
		if nd.Role == "provider" && nd.Domain == domain && !nd.Extra {
			return nd
		}
	}
	return nil
}
