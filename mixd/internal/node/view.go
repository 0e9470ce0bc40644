package node

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// view is the node's picture of the network: the documents of the previous, current and next
// epochs, indexed for the packet path. It is replaced, never changed, so readers need no lock.
type view struct {
	epoch pki.Epoch
	docs  map[pki.Epoch]*pki.Document
	links map[keys.LinkPublicKey]bool
	nodes map[keys.IdentityPublicKey]*pki.Node // newest document first wins
}

func (v *view) current() *pki.Document { return v.docs[v.epoch] }

func (v *view) node(id keys.IdentityPublicKey) (*pki.Node, bool) {
	n, ok := v.nodes[id]
	return n, ok
}

func buildView(e pki.Epoch, docs map[pki.Epoch]*pki.Document) *view {
	v := &view{epoch: e, docs: docs, links: map[keys.LinkPublicKey]bool{}, nodes: map[keys.IdentityPublicKey]*pki.Node{}}
	for _, de := range []pki.Epoch{e + 1, e, e - 1} {
		d := docs[de]
		if d == nil {
			continue
		}
		for i := range d.Nodes {
			nd := &d.Nodes[i]
			v.links[nd.Link] = true
			if _, ok := v.nodes[nd.Identity]; !ok || de == e {
				v.nodes[nd.Identity] = nd
			}
		}
	}
	return v
}

// follower keeps the view up to date from the pki client.
type follower struct {
	client *pki.Client
	// geometry is the hash of the node's own geometry: a document with another one is refused.
	geometry [32]byte
	log      *slog.Logger
	v        atomic.Pointer[view]
	// changed is signalled (non-blocking) when a new current document arrives.
	changed chan struct{}
}

func newFollower(c *pki.Client, geometry [32]byte, log *slog.Logger) *follower {
	f := &follower{client: c, geometry: geometry, log: log, changed: make(chan struct{}, 1)}
	f.v.Store(&view{docs: map[pki.Epoch]*pki.Document{}, links: map[keys.LinkPublicKey]bool{}, nodes: map[keys.IdentityPublicKey]*pki.Node{}})
	return f
}

func (f *follower) view() *view { return f.v.Load() }

// refresh fetches what is missing of the previous, current and next documents.
func (f *follower) refresh(ctx context.Context) {
	e, _, err := f.client.Clock().Now()
	if err != nil {
		return
	}
	old := f.v.Load()
	docs := map[pki.Epoch]*pki.Document{}
	changed := false
	for _, de := range []pki.Epoch{e - 1, e, e + 1} {
		if d := old.docs[de]; d != nil {
			docs[de] = d
			continue
		}
		if de == e-1 && e == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		d, err := f.client.Get(cctx, de)
		cancel()
		if err != nil {
			if de == e {
				f.log.Debug("no consensus document yet", "epoch", de, "err", err)
			}
			continue
		}
		if d.Parameters.Geometry.Hash() != f.geometry {
			f.log.Error("consensus document uses another Sphinx geometry than this node's [sphinx] configuration; ignoring it",
				"epoch", de, "document", d.Parameters.Geometry.String())
			continue
		}
		docs[de] = d
		changed = changed || de == e
	}
	if old.epoch != e || len(docs) != len(old.docs) {
		f.v.Store(buildView(e, docs))
	}
	if changed {
		select {
		case f.changed <- struct{}{}:
		default:
		}
	}
}

// Run refreshes every interval until ctx ends.
func (f *follower) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
