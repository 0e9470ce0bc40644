package imapd

import (
	"bytes"
	"encoding/base64"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// fetchBatchBytes bounds the message bytes held in memory at once while answering FETCH; the
// store is read in batches of about this size, outside of any long-lived transaction.
const fetchBatchBytes = 8 << 20

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	defer s.guard("FETCH", &err)()
	targets := s.view.resolve(numSet)
	if len(targets) == 0 {
		return nil
	}
	needBody := options.Envelope || options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0

	// Reading a body section without PEEK sets \Seen (RFC 3501 section 6.4.5); the new flags
	// are then part of the response.
	seenSet := map[uint32]bool{}
	if !s.view.readOnly && setsSeen(options) {
		var unseen []uint32
		for _, t := range targets {
			if !mailstore.HasFlag(s.view.msgs[t.seq-1].flags, mailstore.FlagSeen) {
				unseen = append(unseen, t.uid)
			}
		}
		if len(unseen) > 0 {
			updated, err := s.srv.store.UpdateFlags(s.user, s.view.name, unseen, mailstore.FlagsAdd, []string{mailstore.FlagSeen})
			if err != nil {
				return s.storeErr(err)
			}
			for _, m := range updated {
				s.view.setFlags(m.UID, m.Flags)
				seenSet[m.UID] = true
			}
		}
	}

	seqOf := make(map[uint32]uint32, len(targets))
	for _, t := range targets {
		seqOf[t.uid] = t.seq
	}
	rest := uidsOf(targets)
	for len(rest) > 0 {
		msgs, err := s.srv.store.Read(s.user, s.view.name, rest, needBody, fetchBatchBytes)
		if err != nil {
			return s.storeErr(err)
		}
		if len(msgs) == 0 {
			break // the remaining messages were expunged meanwhile; they are reported later
		}
		last := msgs[len(msgs)-1].UID
		for len(rest) > 0 && rest[0] <= last {
			rest = rest[1:]
		}
		for i := range msgs {
			// A keyword set by another session since the last update is announced first.
			if (options.Flags || seenSet[msgs[i].UID]) && s.view.addKeywords(msgs[i].Flags) {
				if err := w.WriteMailboxFlags(s.view.mailboxFlags()); err != nil {
					return err
				}
			}
			if err := writeFetch(w, s.view, seqOf[msgs[i].UID], &msgs[i], options, seenSet[msgs[i].UID]); err != nil {
				return err
			}
			msgs[i].Body = nil
		}
	}
	return nil
}

// binaryPartAsBase64 returns a body part that holds NUL bytes (appended as binary, RFC 3516)
// base64-encoded: a BODY[] reply is a plain literal, which cannot carry NUL (RFC 3501 section
// 4.3), so the part is sent as Dovecot does, in an encoding the client can decode; BINARY[]
// returns its bytes.
func binaryPartAsBase64(msg []byte, sec *imap.FetchItemBodySection) []byte {
	whole := *sec
	whole.Partial = nil
	raw := imapserver.ExtractBodySection(bytes.NewReader(msg), &whole)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b bytes.Buffer
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	out := b.Bytes()
	if p := sec.Partial; p != nil {
		if p.Offset >= int64(len(out)) {
			return nil
		}
		out = out[p.Offset:]
		if p.Size >= 0 && p.Size < int64(len(out)) {
			out = out[:p.Size]
		}
	}
	return out
}

func setsSeen(options *imap.FetchOptions) bool {
	for _, sec := range options.BodySection {
		if !sec.Peek {
			return true
		}
	}
	for _, sec := range options.BinarySection {
		if !sec.Peek {
			return true
		}
	}
	return false
}

func writeFetch(w *imapserver.FetchWriter, v *view, seq uint32, m *mailstore.Message, options *imap.FetchOptions, flagsChanged bool) error {
	rw := w.CreateMessage(seq)
	if options.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if options.Flags || flagsChanged {
		rw.WriteFlags(v.flagsOf(m.UID, m.Flags))
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.Date)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.Envelope {
		rw.WriteEnvelope(envelope(m.Body))
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(m.Body)))
	}
	for _, sec := range options.BodySection {
		data := imapserver.ExtractBodySection(bytes.NewReader(m.Body), sec)
		if bytes.IndexByte(data, 0) >= 0 && len(sec.Part) > 0 && sec.Specifier == imap.PartSpecifierNone {
			data = binaryPartAsBase64(m.Body, sec)
		}
		wc := rw.WriteBodySection(sec, int64(len(data)))
		if _, err := wc.Write(data); err != nil {
			wc.Close()
			return err
		}
		if err := wc.Close(); err != nil {
			return err
		}
	}
	for _, sec := range options.BinarySection {
		data := imapserver.ExtractBinarySection(bytes.NewReader(m.Body), sec)
		wc := rw.WriteBinarySection(sec, int64(len(data)))
		if _, err := wc.Write(data); err != nil {
			wc.Close()
			return err
		}
		if err := wc.Close(); err != nil {
			return err
		}
	}
	for _, sec := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(sec, imapserver.ExtractBinarySectionSize(bytes.NewReader(m.Body), sec))
	}
	return rw.Close()
}
