package attack

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/entropy"
	"github.com/panoramix-mixnet/panoramix/internal/privacy/trace"
)

// Trace is the tracer's records of a run, from every process.
type Trace struct {
	Records []trace.Record
}

// ReadTrace appends the records of one trace file. Records of one process are in the order it
// wrote them, which matters for a reply following its delivery.
func (t *Trace) ReadTrace(r io.Reader) error {
	start := len(t.Records)
	err := trace.Read(r, func(rec trace.Record) error {
		t.Records = append(t.Records, rec)
		return nil
	})
	if err != nil {
		return err
	}
	// A reply answers a delivery of the same node before it in the file: the oldest one not
	// yet answered that a service answers (not a drop, not the queue, not a SURB's reply).
	// Services may answer concurrently, so two deliveries can come before their two replies;
	// which of them a reply is paired with does not change the entropy (a reply carries the
	// node's pool, whichever packet it answers), only that each reply is placed once.
	pending := map[string][]int{}
	for i := start; i < len(t.Records); i++ {
		r := t.Records[i]
		switch r.Ev {
		case trace.EvDeliver:
			if !r.SURB && r.Service != "drop" && r.Service != "queue" {
				pending[r.Node] = append(pending[r.Node], i)
			}
		case trace.EvReply:
			if q := pending[r.Node]; len(q) > 0 {
				t.Records[i].In = t.Records[q[0]].In // marks the delivery it answers
				pending[r.Node] = q[1:]
			}
		}
	}
	return nil
}

// IsReal says whether a delivery record is a real message to a user: the queue service (where
// the measurement's mail goes) or the mailbox service, not through a SURB.
func IsReal(r trace.Record) bool {
	return r.Ev == trace.EvDeliver && !r.SURB && (r.Service == "queue" || r.Service == "mailbox")
}

// Events turns the records into entropy events in time order, relative to t0. The node whose
// name is corrupt (none when "") gives its mapping to the adversary: its inputs pass through it
// as if it were a wire, so an output carries its own input's distribution, and what it makes
// itself is known to be its own. Send times are moved just before the first hop's receipt
// when the client's record, written after the write returned, came later.
func (t *Trace) Events(t0 time.Time, corrupt string) ([]entropy.Event, error) {
	recs := t.Records
	recvAt := map[trace.ID]int64{}
	for _, r := range recs {
		if r.Ev == trace.EvReceive {
			if _, ok := recvAt[r.In]; !ok {
				recvAt[r.In] = r.At
			}
		}
	}
	// Replies keyed by the delivered packet they answer.
	replies := map[trace.ID]trace.ID{}
	for _, r := range recs {
		if r.Ev == trace.EvReply && r.In != 0 {
			replies[r.In] = r.Out
		}
	}
	// At the corrupt node, an output is its input renamed.
	rename := map[trace.ID]trace.ID{}
	root := func(id trace.ID) trace.ID {
		for {
			r, ok := rename[id]
			if !ok {
				return id
			}
			id = r
		}
	}
	if corrupt != "" {
		for _, r := range recs {
			if r.Node == corrupt && r.Ev == trace.EvEmit {
				rename[r.Out] = r.In
			}
		}
	}
	type ev struct {
		at  int64
		seq int
		e   entropy.Event
	}
	var evs []ev
	add := func(at int64, e entropy.Event) { evs = append(evs, ev{at: at, seq: len(evs), e: e}) }
	rel := func(at int64) time.Duration { return time.Duration(at - t0.UnixNano()) }
	for _, r := range recs {
		switch r.Ev {
		case trace.EvSend:
			at := r.At
			if ra, ok := recvAt[r.Out]; ok && ra < at {
				at = ra - 1
			}
			k := entropy.Drop
			switch r.Kind {
			case trace.KindReal:
				k = entropy.Real
			case trace.KindLoop:
				k = entropy.Loop
			}
			add(at, entropy.Send{At: rel(at), Packet: entropy.PacketID(r.Out), Sender: r.User, Kind: k})
		case trace.EvReceive:
			if r.Node == corrupt {
				continue
			}
			add(r.At, entropy.Receive{At: rel(r.At), Node: r.Node, Packet: entropy.PacketID(root(r.In)), FromClient: r.Client})
		case trace.EvEmit:
			if r.Node == corrupt {
				continue
			}
			add(r.At, entropy.Emit{At: rel(r.At), Node: r.Node, In: entropy.PacketID(root(r.In)), Out: entropy.PacketID(r.Out)})
		case trace.EvMade:
			add(r.At, entropy.Emit{At: rel(r.At), Node: r.Node, Out: entropy.PacketID(r.Out), Made: true})
		case trace.EvDeliver:
			id := root(r.In)
			if r.Node == corrupt {
				// Nothing else is ever inside the corrupt node's pool: receiving the packet
				// just before its delivery gives the delivery the packet's own distribution.
				add(r.At, entropy.Receive{At: rel(r.At), Node: r.Node, Packet: entropy.PacketID(id)})
			}
			add(r.At, entropy.Deliver{At: rel(r.At), Node: r.Node, Packet: entropy.PacketID(id), Real: IsReal(r),
				Message: fmt.Sprintf("%s/%016x", r.Recipient, uint64(r.In)), Reply: entropy.PacketID(replies[r.In])})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].seq < evs[j].seq
	})
	out := make([]entropy.Event, len(evs))
	for i, e := range evs {
		out[i] = e.e
	}
	return out, nil
}

// EntropyResult is the sender entropy of the real messages delivered after a start time.
type EntropyResult struct {
	Corrupt  string
	Messages int
	Summary  entropy.Summary
	// Skipped counts events the tracker refused (a packet whose earlier events the trace lacks,
	// such as one in flight when tracing began); Errors holds the first few.
	Skipped int
	Errors  []string
	// GuessRate is the best-guess attack's success: the adversary's most likely sender is the
	// true one; chance 1/users.
	Guess Rate
	// Delivered are the measured messages, with the tracker's figures.
	Delivered []entropy.Delivered
}

// Entropy applies the events to a tracker and summarizes the real messages delivered at or
// after from (relative to t0, as in Events).
func Entropy(evs []entropy.Event, cfg entropy.Config, from time.Duration) EntropyResult {
	tr := entropy.New(cfg)
	var res EntropyResult
	for _, e := range evs {
		if err := tr.Apply(e); err != nil {
			res.Skipped++
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, err.Error())
			}
		}
	}
	var ds []entropy.Delivered
	guess := 0.0
	for _, d := range tr.Results() {
		if d.At >= from {
			ds = append(ds, d)
			if d.Guess == d.Sender {
				guess++
			}
		}
	}
	res.Messages, res.Delivered = len(ds), ds
	res.Summary = entropy.Summarize(ds)
	res.Guess = wilson(guess, len(ds))
	return res
}
