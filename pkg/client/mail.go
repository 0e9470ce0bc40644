package client

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// Retries of a ReadMail that failed (the program's mailbox is full or its disk is): the mail
// stays in the engine's store and is offered again, doubling the wait up to the cap.
const (
	mailRetryMin = time.Second
	mailRetryMax = 5 * time.Minute
)

// handleMail stores one chunk that a retrieve-mail brought, with nextSeq, which lets the
// provider delete it (docs/spec/client.md section 7.1).
func (e *Engine) handleMail(sph *sphinx.Sphinx, f *wire.Frame, nextSeq uint32) error {
	return e.applyMail(sph, []*wire.Frame{f}, nextSeq)
}

// chunkOutcome is what storing one chunk did, reported once the transaction committed.
type chunkOutcome struct {
	seq     uint32
	c       *sealmail.Chunk
	bad     error // the chunk does not parse
	res     chunkResult
	dropped *partialMail
}

// applyMail stores the chunks of one retrieve-mail exchange, in order, and nextSeq (the last
// chunk's number plus one, which lets the provider delete them) in one transaction
// (docs/spec/client.md sections 6 and 7.1). A chunk that breaks the format or the order of its
// mail is dropped (and the sequence moves past it): the provider sends a mail's chunks in
// order, so only a broken provider sends such chunks, and asking again would only bring them
// back.
func (e *Engine) applyMail(sph *sphinx.Sphinx, items []*wire.Frame, nextSeq uint32) error {
	now := time.Now()
	outs := make([]chunkOutcome, len(items))
	for i, f := range items {
		outs[i].seq = f.Seq
		outs[i].c, outs[i].bad = sealmail.ParseChunk(f.Body, sph.Geometry().PacketSize(), e.cfg.MaxMailSize+sealmail.Overhead)
	}
	err := e.st.exchange(true, nextSeq, func(x *exchangeTx) error {
		for i := range outs {
			o := &outs[i]
			if o.bad != nil {
				continue
			}
			var err error
			if o.res, o.dropped, err = x.storeChunk(o.c, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	complete := false
	for _, o := range outs {
		if o.bad != nil {
			e.log.Warn("dropping a mail chunk the provider sent", "seq", o.seq, "err", o.bad)
			e.count(func(l *LinkState) { l.MailBad++ })
			continue
		}
		c := o.c
		if o.dropped != nil {
			e.log.Warn("dropping a partial mail: the provider sent a chunk that does not continue it",
				"mail", mailID(o.dropped.ID), "have", o.dropped.Next, "count", o.dropped.Count, "chunk_mail", mailID(c.ID), "chunk", c.Index)
		}
		e.count(func(l *LinkState) {
			if o.dropped != nil {
				l.MailBad++
			}
			switch o.res {
			case chunkStored, chunkComplete:
				l.MailChunks++
				l.LastMailChunk = time.Now()
			case chunkOrphan:
				l.MailBad++
			}
		})
		switch o.res {
		case chunkOrphan:
			e.log.Warn("dropping a mail chunk that continues no mail", "mail", mailID(c.ID), "chunk", c.Index, "count", c.Count)
		case chunkDuplicate:
			e.log.Debug("ignoring a chunk of a mail already complete", "mail", mailID(c.ID), "chunk", c.Index)
		case chunkStored:
			e.log.Debug("mail chunk stored", "mail", mailID(c.ID), "chunk", c.Index, "count", c.Count)
		case chunkComplete:
			e.log.Debug("mail complete", "mail", mailID(c.ID), "chunks", c.Count, "sealed_bytes", c.Total)
			complete = true
		}
	}
	if complete {
		select {
		case e.mailReady <- struct{}{}:
		default:
		}
	}
	return nil
}

// mailLoop opens each complete mail and hands it to ReadMail, until ctx ends. A mail is deleted
// from the store only once ReadMail took it, or when it can never open (docs/spec/client.md
// section 7.1).
func (e *Engine) mailLoop(ctx context.Context) {
	type retry struct {
		wait time.Duration
		at   time.Time
	}
	retries := map[sealmail.ID]*retry{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-e.mailReady:
		}
		ids, err := e.st.readyMails()
		if err != nil {
			e.log.Error("listing the mail to hand over", "err", err)
		}
		next := time.Minute // also picks up what a failed store listing missed
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			r := retries[id]
			if r != nil && time.Now().Before(r.at) {
				next = min(next, time.Until(r.at))
				continue
			}
			err := e.deliverMail(ctx, id)
			if err == nil {
				delete(retries, id)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if r == nil {
				r = &retry{wait: mailRetryMin / 2}
				retries[id] = r
			}
			r.wait = min(2*r.wait, mailRetryMax)
			r.at = time.Now().Add(r.wait)
			next = min(next, r.wait)
			e.log.Warn("mail not handed over; it stays in the engine's store and is tried again", "mail", mailID(id), "retry_in", r.wait, "err", err)
		}
		timer.Reset(next)
	}
}

// deliverMail opens one complete mail and hands it to ReadMail; on success, or if it does not
// open with the user's key, its chunks are deleted. It returns an error when the mail stays.
func (e *Engine) deliverMail(ctx context.Context, id sealmail.ID) error {
	sealed, err := e.st.sealedMail(id)
	if err != nil {
		return err
	}
	msg, err := sealmail.Open(e.cfg.LinkKey, id, sealed)
	if errors.Is(err, sealmail.ErrOpen) {
		e.log.Error("dropping a mail that does not open with the account's key (a broken or hostile provider)", "mail", mailID(id), "sealed_bytes", len(sealed), "err", err)
		e.count(func(l *LinkState) { l.MailBad++ })
		return e.st.deleteMail(id)
	}
	if err != nil {
		return err
	}
	if err := e.cfg.ReadMail(ctx, id, msg); err != nil {
		return err
	}
	if err := e.st.deleteMail(id); err != nil {
		// ReadMail has the mail; a repeat after a restart is stored once (same id).
		return err
	}
	e.count(func(l *LinkState) { l.MailReceived++ })
	e.log.Info("mail received through the link", "mail", mailID(id), "size", len(msg))
	return nil
}

// MailState returns what the engine holds of the mail it fetches through the link: the mail
// whose chunks are arriving and the complete mails not yet handed to ReadMail.
func (e *Engine) MailState() (MailState, error) { return e.st.mailState() }

// mailID formats a mail id for logs as the mailbox service does a message id.
func mailID(id sealmail.ID) string { return hex.EncodeToString(id[:]) }
