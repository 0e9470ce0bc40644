package filter

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// Mixnet is what the filter needs from the mixnet: Engine implements it over pkg/client, tests
// over an in-memory double.
type Mixnet interface {
	// Serves reports whether a provider in the current consensus serves domain with the mailbox
	// service. An error means the consensus is not available now, or (ErrDomainAway) that the
	// domain's provider is out of the consensus for now but was in it recently: both temporary.
	Serves(ctx context.Context, domain string) (bool, error)
	// Ready returns nil when mail can be queued now, else why not (temporary).
	Ready() error
	// MaxMessageSize is the longest message the mixnet carries, 0 when unknown.
	MaxMessageSize(ctx context.Context) int
	// Send queues data for recipient@domain durably and returns the message's id.
	Send(ctx context.Context, domain, recipient string, data []byte) (string, error)
}

// Engine is the Mixnet of a running client engine.
type Engine struct {
	Engine *client.Engine
	PKI    *pki.Client
	// RequireLink makes Ready fail while the engine's link to its provider is down.
	RequireLink bool
}

// ErrDomainAway says that no provider in the current consensus serves a domain that one served
// within the engine's queue lifetime (client.Engine.DomainSeen): its provider is down or cut
// off for now. Mail marked mixable for it is deferred (Postfix retries), never re-injected on
// the ordinary path, where its metadata would leave in the clear.
var ErrDomainAway = errors.New("the domain's mixnet provider is temporarily out of the consensus")

// Serves implements Mixnet.
func (e *Engine) Serves(ctx context.Context, domain string) (bool, error) {
	doc, err := e.PKI.Current(ctx)
	if err != nil {
		return false, fmt.Errorf("consensus: %w", err)
	}
	if p, ok := doc.Provider(domain); ok && slices.Contains(p.Services, client.DefaultService) {
		return true, nil
	}
	if _, recent, err := e.Engine.DomainSeen(domain); err != nil {
		return false, fmt.Errorf("recently seen domains: %w", err)
	} else if recent {
		return false, fmt.Errorf("%w: %s", ErrDomainAway, domain)
	}
	return false, nil
}

// Ready implements Mixnet.
func (e *Engine) Ready() error {
	if !e.RequireLink {
		return nil
	}
	if ls := e.Engine.LinkState(); !ls.Connected {
		if ls.LastError != "" {
			return fmt.Errorf("link to the provider is down: %s", ls.LastError)
		}
		return errors.New("link to the provider is not up yet")
	}
	return nil
}

// MaxMessageSize implements Mixnet.
func (e *Engine) MaxMessageSize(ctx context.Context) int {
	doc, err := e.PKI.Current(ctx)
	if err != nil {
		return 0
	}
	return client.MaxMessageSize(client.FragmentCapacity(doc.Parameters.Geometry))
}

// Send implements Mixnet.
func (e *Engine) Send(ctx context.Context, domain, recipient string, data []byte) (string, error) {
	id, err := e.Engine.Send(ctx, client.Destination{Domain: domain, Recipient: recipient}, data)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", id[:]), nil
}
