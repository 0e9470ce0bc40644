package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
)

// adminAPI is a daemon's admin API as the user commands (a provider's) and the dir commands
// (an authority's) reach it: the loopback address and the token file the daemon wrote.
type adminAPI struct {
	daemon    string // "provider" or "directory", for messages
	addr      string // host:port (--admin)
	tokenFile string // --admin-token
}

// flags registers --admin and --admin-token on c (for its subcommands too) with the daemon's
// defaults.
func (a *adminAPI) flags(c *cobra.Command, addr, tokenFile string) {
	fs := c.PersistentFlags()
	fs.StringVar(&a.addr, "admin", addr, "the "+a.daemon+"'s admin API address (its admin_address, host:port)")
	fs.StringVar(&a.tokenFile, "admin-token", tokenFile, "the "+a.daemon+"'s admin token file (its admin_token_file, default data_dir/"+adminauth.DefaultFile+")")
}

// do sends one request with the token (and body as JSON when not nil) and returns the answer's
// body, or an error saying what to do when the status is not want.
func (a *adminAPI) do(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	token, err := adminauth.Load(a.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("%w: the %s writes its admin token at its first start (admin_token_file, default data_dir/%s); pass that file as --admin-token and run mixctl as a user who may read it", err, a.daemon, adminauth.DefaultFile)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := (&url.URL{Scheme: "http", Host: a.addr, Path: path}).String()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	adminauth.SetHeaders(req, token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is the %s running, and is --admin its admin_address?)", err, a.daemon)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == want {
		return b, nil
	}
	msg := strings.TrimSpace(string(b))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("%s answered %s: the token in %s is not this %s's: pass the admin_token_file of the %s at %s as --admin-token", a.daemon, resp.Status, a.tokenFile, a.daemon, a.daemon, a.addr)
	}
	return nil, fmt.Errorf("%s answered %s: %s", a.daemon, resp.Status, msg)
}
