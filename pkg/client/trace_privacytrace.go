//go:build privacytrace

package client

import (
	"sync"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/trace"
)

// The privacy measurement's tracer (internal/privacy/trace), in builds with the tag
// privacytrace only: every packet a client wrote to its provider link, with its kind.

var clientTracer struct {
	once sync.Once
	w    *trace.Writer
}

// traceSend records a packet written to the link.
func traceSend(user string, pkt []byte, kind stream, real bool) {
	clientTracer.once.Do(func() {
		w, err := trace.Open()
		if err != nil {
			panic(err) // a measurement without its ground truth is worthless
		}
		clientTracer.w = w
	})
	if clientTracer.w == nil {
		return
	}
	k := trace.KindDrop
	switch {
	case kind == streamLoop:
		k = trace.KindLoop
	case kind == streamSend && real:
		k = trace.KindReal
	}
	clientTracer.w.Write(trace.Record{Ev: trace.EvSend, User: user, Kind: k, Out: trace.PacketID(pkt)})
}
