package attack

import "github.com/panoramix-mixnet/panoramix/internal/privacy/capture"

// Uniformity counts the client-to-provider bursts whose TLS records were all read (handshakes
// left out) and, of those, the ones that are whole frames: a size that is a multiple of
// frameSize (wire.FrameSize of the consensus geometry, which the observer knows too). Two
// frames written back to back make one burst of twice the size, which is still whole; a frame
// cut into bursts of other sizes, or a frame of another size, is not.
func Uniformity(frames []capture.Frame, frameSize int) (whole, parsed int) {
	for _, f := range frames {
		if !f.FromClient || f.Handshake || !f.Parsed {
			continue
		}
		parsed++
		if f.Size > 0 && f.Size%frameSize == 0 {
			whole++
		}
	}
	return whole, parsed
}
