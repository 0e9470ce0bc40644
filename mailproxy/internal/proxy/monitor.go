package proxy

import (
	"context"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/agent"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/message"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

// monitor watches every engine's messages: it logs each outcome once, puts a bounce for a
// failed mail into the sender's own mailbox (the local INBOX with read_via_link, else through
// the mixnet to the provider's mailbox, like any mail), and forgets
// finished messages after the status retention.
func (p *Proxy) monitor(ctx context.Context) error {
	t := time.NewTicker(monitorInterval)
	defer t.Stop()
	for {
		for _, addr := range p.order {
			p.check(ctx, p.accounts[addr])
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *Proxy) check(ctx context.Context, a *account) {
	list, err := a.engine.List()
	if err != nil {
		p.log.Error("listing messages", "account", a.cfg.Address, "err", err)
		return
	}
	for _, st := range list {
		if !st.State.Finished() {
			continue
		}
		id := st.ID.String()
		if agent.Owns(st) {
			// A request of a program using the agent API: the program reads its outcome there
			// (a failed request is its answer, not a mail to bounce); forget it after the
			// retention like a mail's status.
			if p.cfg.StatusRetention > 0 && p.now().Sub(st.Updated) > p.cfg.StatusRetention {
				if err := a.engine.Forget(st.ID); err != nil {
					p.log.Error("forgetting an agent request", "id", id, "err", err)
				}
			}
			continue
		}
		rec, err := p.recs.get(a.cfg.Address, id)
		if err != nil {
			p.log.Error("reading a record", "id", id, "err", err)
			continue
		}
		if rec == nil {
			// Queued by the engine but the record was lost (crash in between): the bounce
			// can still name the recipient.
			rec = &record{Kind: kindMail, Account: a.cfg.Address, Recipient: st.Destination.Recipient + "@" + st.Destination.Domain, Accepted: st.Created}
		}
		if !rec.Reported {
			p.report(ctx, a, st, rec)
			if err := p.recs.put(id, rec); err != nil {
				p.log.Error("storing a record", "id", id, "err", err)
				continue
			}
		}
		if p.cfg.StatusRetention > 0 && p.now().Sub(st.Updated) > p.cfg.StatusRetention {
			if err := a.engine.Forget(st.ID); err != nil {
				p.log.Error("forgetting a message", "id", id, "err", err)
				continue
			}
			if err := p.recs.remove(a.cfg.Address, id); err != nil {
				p.log.Error("removing a record", "id", id, "err", err)
			}
		}
	}
}

// report logs a finished message's outcome and, for a failed mail, queues its bounce. It sets
// rec.Reported (the caller stores rec).
func (p *Proxy) report(ctx context.Context, a *account, st client.Status, rec *record) {
	id := st.ID.String()
	rec.Reported = true
	switch {
	case st.State != client.StateFailed:
		p.log.Info("delivered", "account", a.cfg.Address, "kind", rec.Kind, "to", rec.Recipient, "id", id,
			"fragments", st.Fragments, "transmissions", st.Transmissions, "after", st.Updated.Sub(st.Created).Round(time.Millisecond))
	case rec.Kind == kindBounce:
		p.log.Error("bounce undeliverable: a mail failed and its bounce could not reach your mailbox either",
			"account", a.cfg.Address, "bounce", id, "failed_mail", rec.Of, "reason", st.Reason)
	default:
		p.log.Warn("mail failed; bouncing it to the sender", "account", a.cfg.Address, "to", rec.Recipient, "id", id, "reason", st.Reason)
		dsn := message.DSN(message.Bounce{
			To: a.cfg.Address, ReportingDomain: a.cfg.Domain(), Arrival: rec.Accepted, Subject: rec.Subject, Headers: rec.Headers,
			Failure: message.Failure{Recipient: rec.Recipient, Status: message.StatusFor(st.Reason), Reason: st.Reason},
		}, p.now())
		if p.mail != nil {
			// The user reads the local mailbox: the bounce goes straight there, once per
			// failed mail (keyed by its id), without a trip through the mixnet.
			uid, _, err := p.mail.DeliverOnce(LocalUser(a.cfg), mailstore.Inbox, []byte("bounce:"+id), dsn)
			if err != nil {
				rec.Reported = false // try again at the next check
				p.log.Error("bounce not stored in the local INBOX; trying again", "account", a.cfg.Address, "failed_mail", id, "err", err)
				return
			}
			rec.BounceLocal = true
			p.log.Info("bounce stored in the local INBOX", "account", a.cfg.Address, "failed_mail", id, "uid", uid)
			return
		}
		sctx, cancel := context.WithTimeout(ctx, consensusTimeout)
		bid, err := a.engine.Send(sctx, client.Destination{Domain: a.cfg.Domain(), Recipient: a.cfg.User()}, dsn)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				rec.Reported = false // shutting down: try again at the next start
				return
			}
			rec.BounceError = err.Error()
			p.log.Error("bounce not queued: see 'mailproxy status'", "account", a.cfg.Address, "failed_mail", id, "err", err)
			return
		}
		rec.Bounce = bid.String()
		brec := &record{Kind: kindBounce, Account: a.cfg.Address, Recipient: a.cfg.Address, Subject: "Undelivered mail: " + strings.TrimSpace(rec.Subject),
			Accepted: p.now(), Of: id, Sent: sentClear}
		if err := p.recs.put(rec.Bounce, brec); err != nil {
			p.log.Error("record of a bounce not stored", "id", rec.Bounce, "err", err)
		}
	}
}
