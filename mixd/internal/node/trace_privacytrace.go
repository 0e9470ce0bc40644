//go:build privacytrace

package node

import (
	"sync"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/trace"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// The privacy measurement's tracer (internal/privacy/trace), in builds with the tag
// privacytrace only: what this node took in, what it sent out for it and what it delivered.

var nodeTracer = struct {
	once sync.Once
	w    *trace.Writer
	mu   sync.Mutex
	ids  map[*sphinx.Unwrapped]trace.ID // scheduled packets: their input id
}{ids: map[*sphinx.Unwrapped]trace.ID{}}

func traceWriter() *trace.Writer {
	nodeTracer.once.Do(func() {
		w, err := trace.Open()
		if err != nil {
			panic(err) // a measurement without its ground truth is worthless
		}
		nodeTracer.w = w
	})
	return nodeTracer.w
}

type traceID = trace.ID

// traceIn hashes a packet as it arrived, before Unwrap changes it in place.
func traceIn(pkt []byte) traceID {
	if traceWriter() == nil {
		return 0
	}
	return trace.PacketID(pkt)
}

// traceReceive records a packet scheduled for its delay and remembers its input id.
func (n *Node) traceReceive(at time.Time, id traceID, fromClient bool, u *sphinx.Unwrapped) {
	w := traceWriter()
	if w == nil {
		return
	}
	nodeTracer.mu.Lock()
	nodeTracer.ids[u] = id
	nodeTracer.mu.Unlock()
	w.Write(trace.Record{At: at.UnixNano(), Ev: trace.EvReceive, Node: n.identity.Public().String(), In: id, Client: fromClient})
}

func takeID(u *sphinx.Unwrapped) trace.ID {
	nodeTracer.mu.Lock()
	defer nodeTracer.mu.Unlock()
	id := nodeTracer.ids[u]
	delete(nodeTracer.ids, u)
	return id
}

// traceEmit records a forward hop leaving after its delay.
func (n *Node) traceEmit(u *sphinx.Unwrapped) {
	w := traceWriter()
	if w == nil {
		return
	}
	w.Write(trace.Record{Ev: trace.EvEmit, Node: n.identity.Public().String(), In: takeID(u), Out: trace.PacketID(u.Packet)})
}

// traceDeliver records a final hop.
func (n *Node) traceDeliver(u *sphinx.Unwrapped) {
	w := traceWriter()
	if w == nil {
		return
	}
	r := trace.Record{Ev: trace.EvDeliver, Node: n.identity.Public().String(), In: takeID(u), SURB: u.SURBID != nil}
	if u.Recipient != nil {
		r.Service, r.Recipient = u.Recipient.Service, u.Recipient.ID
	}
	w.Write(r)
}

// traceOut records a packet this node made: a mix's loop (trace.EvMade) or the answer to its
// last delivery through the delivered packet's SURB (trace.EvReply).
func (n *Node) traceOut(ev string, pkt []byte) {
	w := traceWriter()
	if w == nil {
		return
	}
	w.Write(trace.Record{Ev: ev, Node: n.identity.Public().String(), Out: trace.PacketID(pkt)})
}

const (
	traceMade  = trace.EvMade
	traceReply = trace.EvReply
)
