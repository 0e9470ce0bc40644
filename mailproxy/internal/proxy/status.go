package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// StatusPath is the status API's only resource on the Unix socket.
const StatusPath = "/v1/status"

// Report is the status API's answer (GET /v1/status), what `mailproxy status` prints.
type Report struct {
	// Epoch is the current epoch of the consensus clock; ConsensusError is set when no
	// document for it could be fetched.
	Epoch          uint64          `json:"epoch"`
	ConsensusError string          `json:"consensus_error,omitempty"`
	SMTP           string          `json:"smtp"`
	Accounts       []AccountReport `json:"accounts"`
}

// AccountReport is one account: its link and its messages.
type AccountReport struct {
	Address string     `json:"address"`
	Link    LinkReport `json:"link"`
	// Queued counts messages not finished yet (queued or sending).
	Queued   int             `json:"queued"`
	Messages []MessageReport `json:"messages"`
	// Mailbox is the account's local mailbox; nil when mail is read at the provider.
	Mailbox *MailboxReport `json:"mailbox,omitempty"`
}

// MailboxReport is an account's local mailbox and the mail on its way into it through the link.
type MailboxReport struct {
	// User is the local IMAP user name; IMAP the server's address.
	User string `json:"user"`
	IMAP string `json:"imap"`
	// Messages and Unseen count the local INBOX.
	Messages uint32 `json:"messages"`
	Unseen   uint32 `json:"unseen"`
	// Fetching is set while a mail's chunks arrive: ChunksHave of ChunksCount are stored.
	Fetching    bool   `json:"fetching"`
	ChunksHave  uint32 `json:"chunks_have,omitempty"`
	ChunksCount uint32 `json:"chunks_count,omitempty"`
	// Waiting counts complete mails not yet in the INBOX (the store refused them for now).
	Waiting int `json:"waiting"`
	// LastChunk is when the last chunk of mail arrived through the link (zero: none since the
	// start); Received and Bad count mails stored and chunks or mails dropped since the start.
	LastChunk time.Time `json:"last_chunk"`
	Chunks    uint64    `json:"chunks"`
	Received  uint64    `json:"received"`
	Bad       uint64    `json:"bad"`
}

// LinkReport is the link to the provider and the engine's traffic counters
// (client.LinkState, with the provider's identity as text: it is zero before the first link).
type LinkReport struct {
	Connected bool      `json:"connected"`
	Provider  string    `json:"provider,omitempty"`
	Addr      string    `json:"addr,omitempty"`
	Since     time.Time `json:"since"`
	Epoch     uint64    `json:"epoch"`
	LastError string    `json:"last_error,omitempty"`

	RealPackets, SendDrops, Drops, Loops       uint64
	LoopsReturned, LoopsLost                   uint64
	Acks, BadReplies, UnknownReplies, Messages uint64
	Retrieves, Links                           uint64
	// MailRetrieves counts the retrieves that asked the mail queue (reading through the link).
	MailRetrieves uint64
}

func linkReport(l client.LinkState) LinkReport {
	r := LinkReport{Connected: l.Connected, Addr: l.Addr, Since: l.Since, Epoch: uint64(l.Epoch), LastError: l.LastError,
		RealPackets: l.RealPackets, SendDrops: l.SendDrops, Drops: l.Drops, Loops: l.Loops,
		LoopsReturned: l.LoopsReturned, LoopsLost: l.LoopsLost, Acks: l.Acks, BadReplies: l.BadReplies,
		UnknownReplies: l.UnknownReplies, Messages: l.Messages, Retrieves: l.Retrieves, Links: l.Links,
		MailRetrieves: l.MailRetrieves}
	if l.Provider != (keys.IdentityPublicKey{}) {
		r.Provider = l.Provider.String()
	}
	return r
}

// MessageReport is one engine message with what the proxy knows about it.
type MessageReport struct {
	ID            string `json:"id"`
	Kind          string `json:"kind"` // mail or bounce
	To            string `json:"to"`
	Subject       string `json:"subject,omitempty"`
	State         string `json:"state"`
	Size          int    `json:"size"`
	Fragments     int    `json:"fragments"`
	Acknowledged  int    `json:"acknowledged"`
	Transmissions int    `json:"transmissions"`
	Reason        string `json:"reason,omitempty"`
	// Sent is how the mail left: "encrypted" (PGP/MIME by this mailproxy), "already
	// encrypted" (PGP/MIME, inline PGP or S/MIME from the mail program, sent as it was) or
	// "clear"; empty for a record from before this field.
	Sent    string    `json:"sent,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Bounce is the id of the bounce queued for a failed mail; BounceError says why none
	// could be queued; BounceLocal says the bounce went straight into the local INBOX.
	Bounce      string `json:"bounce,omitempty"`
	BounceError string `json:"bounce_error,omitempty"`
	BounceLocal bool   `json:"bounce_local,omitempty"`
}

// Report collects the current status.
func (p *Proxy) Report(ctx context.Context) (*Report, error) {
	r := &Report{SMTP: p.cfg.SMTP.ListenAddress}
	if e, _, err := p.pki.Clock().Now(); err == nil {
		r.Epoch = uint64(e)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if doc, err := p.pki.Current(cctx); err != nil {
		r.ConsensusError = err.Error()
	} else {
		r.Epoch = uint64(doc.Epoch)
	}
	cancel()
	for _, addr := range p.order {
		a := p.accounts[addr]
		ar := AccountReport{Address: addr, Link: linkReport(a.engine.LinkState()), Messages: []MessageReport{}}
		list, err := a.engine.List()
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", addr, err)
		}
		for _, st := range list {
			id := st.ID.String()
			mr := MessageReport{ID: id, Kind: kindMail, To: st.Destination.Recipient + "@" + st.Destination.Domain,
				State: string(st.State), Size: st.Size, Fragments: st.Fragments, Acknowledged: st.Acknowledged,
				Transmissions: st.Transmissions, Reason: st.Reason, Created: st.Created, Updated: st.Updated}
			if rec, err := p.recs.get(addr, id); err == nil && rec != nil {
				mr.Kind, mr.To, mr.Subject, mr.Bounce, mr.BounceError = rec.Kind, rec.Recipient, rec.Subject, rec.Bounce, rec.BounceError
				mr.BounceLocal = rec.BounceLocal
				mr.Sent = rec.Sent
			}
			if !st.State.Finished() {
				ar.Queued++
			}
			ar.Messages = append(ar.Messages, mr)
		}
		if p.mail != nil {
			mb, err := p.mailboxReport(a)
			if err != nil {
				return nil, fmt.Errorf("account %s: local mailbox: %w", addr, err)
			}
			ar.Mailbox = mb
		}
		r.Accounts = append(r.Accounts, ar)
	}
	return r, nil
}

type statusServer struct {
	p   *Proxy
	srv *http.Server
}

func newStatusServer(p *Proxy) *statusServer {
	s := &statusServer{p: p}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, s.status)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

func (s *statusServer) status(w http.ResponseWriter, r *http.Request) {
	rep, err := s.p.Report(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

func (s *statusServer) serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.srv.Shutdown(sctx)
	}()
	if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// FetchReport asks a running mailproxy for its status over the Unix socket at path.
func FetchReport(ctx context.Context, path string) (*Report, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://mailproxy"+StatusPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("status socket %s: %w (is mailproxy running with this config?)", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status: %s: %s", resp.Status, body)
	}
	var r Report
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return &r, nil
}

func (p *Proxy) mailboxReport(a *account) (*MailboxReport, error) {
	user := LocalUser(a.cfg)
	info, err := p.mail.Status(user, mailstore.Inbox)
	if err != nil {
		return nil, err
	}
	ms, err := a.engine.MailState()
	if err != nil {
		return nil, err
	}
	l := a.engine.LinkState()
	return &MailboxReport{User: user, IMAP: p.cfg.IMAP.ListenAddress, Messages: info.Messages, Unseen: info.Unseen,
		Fetching: ms.Partial, ChunksHave: ms.Have, ChunksCount: ms.Count, Waiting: ms.Waiting,
		LastChunk: l.LastMailChunk, Chunks: l.MailChunks, Received: l.MailReceived, Bad: l.MailBad}, nil
}
