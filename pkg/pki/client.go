package pki

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// ClientConfig is what a Client trusts and where it looks.
type ClientConfig struct {
	// URLs are authority base URLs ("http://host:port"), tried in order.
	URLs []string
	// Authorities are the authority identity keys; Threshold of them must sign a document.
	Authorities []keys.IdentityPublicKey
	Threshold   int
	// EpochLength must equal the network's; a document that says otherwise is refused.
	EpochLength time.Duration
	// HTTPClient is used for requests; nil means one with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives prefetch failures; nil discards them.
	Logger *slog.Logger
}

// Client fetches consensus documents, verifies them (docs/spec/pki.md section 5) and caches
// them. It is safe for concurrent use.
type Client struct {
	cfg   ClientConfig
	clock Clock
	http  *http.Client
	log   *slog.Logger

	mu    sync.Mutex
	cache map[Epoch]*SignedDocument
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("pki client: no authority URLs configured")
	}
	for _, u := range cfg.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("pki client: authority URL %q: want http://host:port or https://host:port", u)
		}
	}
	if err := CheckAuthorities(cfg.Authorities, cfg.Threshold); err != nil {
		return nil, fmt.Errorf("pki client: %w", err)
	}
	clock, err := NewClock(cfg.EpochLength)
	if err != nil {
		return nil, fmt.Errorf("pki client: %w", err)
	}
	c := &Client{cfg: cfg, clock: clock, http: cfg.HTTPClient, log: cfg.Logger, cache: make(map[Epoch]*SignedDocument)}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Clock returns the client's epoch clock.
func (c *Client) Clock() Clock { return c.clock }

// Current returns the document for the current epoch.
func (c *Client) Current(ctx context.Context) (*Document, error) {
	e, _, err := c.clock.Now()
	if err != nil {
		return nil, err
	}
	return c.Get(ctx, e)
}

// Get returns the verified document for epoch e, from the cache or from the first authority URL
// that serves an acceptable one. The error says why each URL failed; it wraps ErrNoDocument when
// every authority answered that it has none (yet).
func (c *Client) Get(ctx context.Context, e Epoch) (*Document, error) {
	sd, err := c.GetSigned(ctx, e)
	if err != nil {
		return nil, err
	}
	return sd.Document, nil
}

// GetSigned is Get returning the signed document, for programs that pass it on.
func (c *Client) GetSigned(ctx context.Context, e Epoch) (*SignedDocument, error) {
	c.mu.Lock()
	sd := c.cache[e]
	c.mu.Unlock()
	if sd != nil {
		return sd, nil
	}
	var errs []error
	allMissing := true
	for _, base := range c.cfg.URLs {
		sd, err := c.fetch(ctx, base, e)
		if err == nil {
			c.mu.Lock()
			c.cache[e] = sd
			c.mu.Unlock()
			return sd, nil
		}
		if !errors.Is(err, ErrNoDocument) {
			allMissing = false
		}
		errs = append(errs, fmt.Errorf("%s: %w", base, err))
		if ctx.Err() != nil {
			break
		}
	}
	err := errors.Join(errs...)
	if allMissing {
		return nil, fmt.Errorf("epoch %d: %w: %w", e, ErrNoDocument, err)
	}
	return nil, fmt.Errorf("epoch %d: no acceptable document: %w", e, err)
}

func (c *Client) fetch(ctx context.Context, base string, e Epoch) (*SignedDocument, error) {
	u := strings.TrimRight(base, "/") + "/v1/consensus/" + strconv.FormatUint(uint64(e), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrNoDocument
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading document: %w", err)
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrTooLarge, MaxDocumentSize)
	}
	sd, err := Verify(b, e, c.cfg.Authorities, c.cfg.Threshold)
	if err != nil {
		return nil, err
	}
	if got := sd.Document.Parameters.EpochLength; got != c.clock.Length() {
		return nil, fmt.Errorf("document epoch length %v, configured %v", got, c.clock.Length())
	}
	return sd, nil
}

// Run keeps the documents for the current and the next epoch in the cache until ctx ends, so
// they are there before they are needed, and drops documents older than the previous epoch.
// The next epoch's document is looked for from the middle of the current epoch on, when
// authorities publish it (docs/spec/pki.md section 8).
func (c *Client) Run(ctx context.Context) error {
	tick := min(max(c.clock.Length()/20, 100*time.Millisecond), 30*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		c.prefetch(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *Client) prefetch(ctx context.Context) {
	e, since, err := c.clock.Now()
	if err != nil {
		c.log.Error("pki: no current epoch", "err", err)
		return
	}
	want := []Epoch{e}
	if since >= c.clock.Length()/2 {
		want = append(want, e+1)
	}
	for _, w := range want {
		if _, err := c.GetSigned(ctx, w); err != nil && ctx.Err() == nil {
			c.log.Debug("pki: prefetch failed", "epoch", w, "err", err)
		}
	}
	c.mu.Lock()
	for k := range c.cache {
		if k+1 < e {
			delete(c.cache, k)
		}
	}
	c.mu.Unlock()
}
