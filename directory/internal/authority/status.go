package authority

import (
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// EpochStatus is the state of one epoch's document at this authority.
type EpochStatus struct {
	Epoch pki.Epoch
	// Voted says whether this authority's vote for the epoch exists.
	Voted bool
	// PeerVotes counts peers' votes received.
	PeerVotes int
	// Signatures counts the signatures on this authority's document (0: none computed yet).
	Signatures int
	Published  bool
	// Failure says why the epoch has no document, if it failed.
	Failure string
}

// Status is what the status page shows.
type Status struct {
	Authority  keys.IdentityPublicKey
	Peers      []Peer
	Threshold  int
	Parameters pki.Parameters
	Epoch      pki.Epoch
	EpochStart time.Time
	EpochEnd   time.Time
	Approved   int
	// Epochs are the current and the next epoch.
	Epochs []EpochStatus
	// Document is the current epoch's published document, if any.
	Document *pki.Document
}

// Status reports the authority's state.
func (a *Authority) Status() (*Status, error) {
	e, _, err := a.epochNow()
	if err != nil {
		return nil, err
	}
	approved, err := a.Approved()
	if err != nil {
		return nil, err
	}
	s := &Status{
		Authority:  a.self,
		Peers:      a.peers,
		Threshold:  a.threshold,
		Parameters: a.params,
		Epoch:      e,
		EpochStart: a.clock.Start(e),
		EpochEnd:   a.clock.End(e),
		Approved:   len(approved),
	}
	for _, t := range []pki.Epoch{e, e + 1} {
		es := EpochStatus{Epoch: t}
		v, err := a.store.Vote(t)
		if err != nil {
			return nil, err
		}
		es.Voted = v != nil
		c, err := a.cachedDocument(t)
		if err != nil {
			return nil, err
		}
		if c != nil {
			es.Signatures = len(c.sd.Signatures)
			es.Published = es.Signatures >= a.threshold
			if t == e && es.Published {
				s.Document = c.sd.Document
			}
		}
		a.mu.Lock()
		es.PeerVotes = len(a.peerVotes[t])
		es.Failure = a.failures[t]
		a.mu.Unlock()
		s.Epochs = append(s.Epochs, es)
	}
	return s, nil
}
