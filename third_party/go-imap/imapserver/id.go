package imapserver

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// handleID answers the ID command (RFC 2971) with the server's name and ignores the client's
// fields after checking their syntax (panoramix).
func (c *Conn) handleID(dec *imapwire.Decoder) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	n := 0
	var key, value string
	{
		err := dec.ExpectNList(func() error {
			// RFC 2971 section 3.3: at most 30 field-value pairs; field names at most 30 bytes
			// and values at most 1024 bytes (maxCommandSize bounds the command anyway).
			if n%2 == 0 {
				if !dec.ExpectString(&key) {
					return dec.Err()
				}
				if len(key) > 30 {
					return newClientBugError("ID field name longer than 30 bytes")
				}
			} else {
				if !dec.ExpectNString(&value) {
					return dec.Err()
				}
				if len(value) > 1024 {
					return newClientBugError("ID value longer than 1024 bytes")
				}
			}
			n++
			if n > 60 {
				return newClientBugError("More than 30 ID fields")
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n%2 != 0 {
			return newClientBugError("ID field without a value")
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ID").SP().Special('(').Quoted("name").SP().Quoted("panoramix").Special(')')
	return enc.CRLF()
}

var _ = imap.CapID
