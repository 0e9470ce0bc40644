package sphinx

import (
	"bytes"
	"errors"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx/internal/vectors"
)

// Fuzz targets for every parser of outside bytes: packets (Unwrap), routing commands, SURBs and
// reply keys. Seeds come from testdata/vectors.json.

func seedVectors(f *testing.F, kinds ...string) []vectors.Vector {
	var out []vectors.Vector
	for _, v := range loadVectors(f) {
		for _, k := range kinds {
			if v.Kind == k {
				out = append(out, v)
			}
		}
	}
	return out
}

func TestFuzzSeedsNotEmpty(t *testing.T) {
	count := map[string]int{}
	for _, v := range loadVectors(t) {
		switch {
		case v.Kind == "commands":
			count["commands"]++
		case v.Kind == "surb":
			count["surb"]++
			count["reply"]++
		case len(v.Packet) > 0 && v.Geometry.Hops == fuzzGeometry.Hops && v.Geometry.PayloadSize == fuzzGeometry.PayloadSize:
			count["packet"]++
		}
	}
	for _, k := range []string{"commands", "surb", "reply", "packet"} {
		if count[k] == 0 {
			t.Errorf("no fuzz seeds of kind %s in testdata", k)
		}
	}
}

// fuzzGeometry is the geometry of most vectors (small, so fuzzing is fast).
var fuzzGeometry = Geometry{Hops: 5, PayloadSize: 512}

func FuzzParseCommands(f *testing.F) {
	for _, v := range seedVectors(f, "commands") {
		f.Add([]byte(v.Packet))
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		c, err := ParseCommands(block)
		if err != nil {
			if !errors.Is(err, ErrCommands) {
				t.Fatalf("error not ErrCommands: %v", err)
			}
			return
		}
		enc, err := EncodeCommands(c)
		if err != nil {
			t.Fatalf("parsed commands do not encode: %v", err)
		}
		if !bytes.Equal(enc, block[:c.EncodedLen()]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", enc, block[:c.EncodedLen()])
		}
	})
}

func FuzzUnwrap(f *testing.F) {
	s := mustNew(f, fuzzGeometry)
	var keyBytes []byte
	for _, v := range loadVectors(f) {
		if v.Geometry.Hops != fuzzGeometry.Hops || v.Geometry.PayloadSize != fuzzGeometry.PayloadSize {
			continue
		}
		if len(v.Packet) > 0 && v.Kind != "commands" {
			f.Add([]byte(v.Packet))
		}
		for _, h := range v.Hops {
			if len(h.NextPacket) > 0 {
				f.Add([]byte(h.NextPacket))
			}
		}
		if keyBytes == nil && len(v.Route) > 0 {
			keyBytes = v.Route[0].PrivateKey
		}
	}
	key := func(t *testing.T) []byte { return keyBytes }
	f.Fuzz(func(t *testing.T, pkt []byte) {
		k := vectorKey(t, key(t))
		in := bytes.Clone(pkt)
		u, err := s.Unwrap(k, in)
		if err != nil {
			if errors.Is(err, ErrHeaderMAC) || errors.Is(err, ErrLength) || errors.Is(err, ErrGroupElement) {
				if !bytes.Equal(in, pkt) {
					t.Fatal("a header error modified the packet")
				}
			}
			return
		}
		if u.NextHop != nil && len(u.Packet) != s.g.PacketSize() {
			t.Fatalf("next packet of %d bytes", len(u.Packet))
		}
		if u.NextHop == nil && u.Recipient == nil {
			t.Fatal("neither forward nor final")
		}
	})
}

func FuzzParseSURB(f *testing.F) {
	s := mustNew(f, fuzzGeometry)
	for _, v := range seedVectors(f, "surb") {
		f.Add([]byte(v.SURB))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := s.ParseSURB(b)
		// NewPacketFromSURB reads the SURB in place, without ParseSURB: both must accept the
		// same inputs and see the same fields.
		first, pkt, perr := s.NewPacketFromSURB(b, []byte("reply"))
		if (err == nil) != (perr == nil) {
			t.Fatalf("ParseSURB: %v, NewPacketFromSURB: %v", err, perr)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(x.Bytes(), b) {
			t.Fatal("re-encoding differs")
		}
		if len(pkt) != s.g.PacketSize() || first != x.FirstHop || !bytes.Equal(pkt[:s.g.HeaderSize()], x.Header) {
			t.Fatal("reply packet does not carry the SURB's first hop and header")
		}
	})
}

func FuzzReadReply(f *testing.F) {
	s := mustNew(f, fuzzGeometry)
	for _, v := range seedVectors(f, "surb", "reply") {
		payload := v.Payload
		if v.Kind == "surb" {
			payload = v.Hops[len(v.Hops)-1].Delivered
		}
		f.Add([]byte(v.ReplyKeys), []byte(payload))
	}
	f.Fuzz(func(t *testing.T, rk, payload []byte) {
		n, err := s.ParseReplyKeys(rk)
		if err == nil && (len(rk) != ReplyKeysSize(n) || rk[0] != replyKeysVersion || int(rk[1]) != n) {
			t.Fatal("accepted reply keys that do not match their hop count")
		}
		in := bytes.Clone(payload)
		if _, err := s.ReadReply(rk, in); err == nil && len(payload) != s.g.PayloadBlockSize() {
			t.Fatal("accepted a reply of the wrong size")
		}
		if !bytes.Equal(in, payload) {
			t.Fatal("ReadReply modified its input")
		}
	})
}
