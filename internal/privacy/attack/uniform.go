package attack

import (
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/capture"
)

// JoinWithin is the join of Uniformity that the measurement and the guard use: the two parts
// of a cut frame are usually milliseconds apart, though a loaded machine sometimes holds the
// sender for a hundred; separate frames of a client link are 140 ms apart on average, so
// joined bursts are short chains of frames.
const JoinWithin = 200 * time.Millisecond

// Uniformity counts the client-to-provider bursts whose TLS records were all read (handshakes
// left out) and, of those, the ones that are whole frames: a size that is a multiple of
// frameSize (wire.FrameSize of the consensus geometry, which the observer knows too). Two
// frames written back to back make one burst of twice the size, which is still whole.
//
// With join 0 it judges single bursts: a frame cut into two bursts (the sender descheduled
// between two records of one write for more than capture.BurstGap, or a link that leaks by
// writing in parts) counts as two bursts that are not whole. With join > 0 it first joins the
// bursts that follow each other within join, which puts such cut frames together again, so that
// only frames of another size remain not whole.
func Uniformity(frames []capture.Frame, frameSize int, join time.Duration) (whole, parsed int) {
	var cur *capture.Frame
	var last time.Time
	flush := func() {
		if cur == nil || !cur.Parsed {
			return
		}
		parsed++
		if cur.Size > 0 && cur.Size%frameSize == 0 {
			whole++
		}
	}
	for _, f := range frames {
		if !f.FromClient || f.Handshake {
			continue
		}
		if cur != nil && join > 0 && f.At.Sub(last) <= join {
			cur.Size += f.Size
			cur.Parsed = cur.Parsed && f.Parsed
			last = f.At
			continue
		}
		flush()
		g := f
		cur, last = &g, f.At
	}
	flush()
	return whole, parsed
}
