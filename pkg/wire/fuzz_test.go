package wire

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Seeds for FuzzDecodeFrame live in testdata/frames/, frames of testGeometry. A file named
// ok-* must decode and re-encode to the same bytes; bad-* must be refused. Regenerate (only
// on purpose) with go test ./pkg/wire -run TestWriteSeeds -update-seeds.
var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed files in testdata/frames/")

const seedDir = "testdata/frames"

func readSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(seedDir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// seedFrames builds the seed set: every valid frame of validFrames, and a set of refused ones.
func seedFrames(t testing.TB) map[string][]byte {
	g := testGeometry
	out := make(map[string][]byte)
	for name, f := range validFrames(g) {
		b, err := EncodeFrame(g, f)
		if err != nil {
			t.Fatal(err)
		}
		out["ok-"+name+".bin"] = b
	}
	noop := out["ok-no-op.bin"]
	msg := out["ok-message.bin"]
	edit := func(src []byte, e func([]byte)) []byte {
		b := bytes.Clone(src)
		e(b)
		return b
	}
	out["bad-short.bin"] = noop[:len(noop)-1]
	out["bad-long.bin"] = append(bytes.Clone(noop), 0)
	out["bad-zero.bin"] = make([]byte, len(noop))
	out["bad-command.bin"] = edit(noop, func(b []byte) { b[0] = 10 })
	out["bad-reserved.bin"] = edit(noop, func(b []byte) { b[2] = 1 })
	out["bad-body-length.bin"] = edit(msg, func(b []byte) { b[offBodyLen] = 1 })
	out["bad-padding.bin"] = edit(msg, func(b []byte) { b[len(b)-1] = 1 })
	out["bad-noop-body.bin"] = edit(msg, func(b []byte) { b[0] = byte(CmdNoOp); b[offSeq+3] = 0; b[offQueueHint+3] = 0 })
	out["bad-packet-short.bin"] = edit(msg, func(b []byte) { b[0] = byte(CmdSendPacket); b[offSeq+3] = 0; b[offQueueHint+3] = 0 })
	// A retrieve's count (the hint field) must be 1 to MaxRetrieveBatch: msg's hint is 3.
	out["bad-retrieve-count-0.bin"] = edit(msg, func(b []byte) { b[0] = byte(CmdRetrieve); clear(b[offQueueHint:]) })
	out["bad-retrieve-count-17.bin"] = edit(msg, func(b []byte) {
		b[0] = byte(CmdRetrieve)
		b[offQueueHint+3] = MaxRetrieveBatch + 1
		clear(b[offBodyLen:])
	})
	out["bad-retrieve-mail-count-0.bin"] = edit(msg, func(b []byte) { b[0] = byte(CmdRetrieveMail); clear(b[offQueueHint:]) })
	return out
}

// TestWriteSeeds rewrites testdata/frames when run with -update-seeds; otherwise it checks
// that the committed files are exactly what the current code would write.
func TestWriteSeeds(t *testing.T) {
	want := seedFrames(t)
	if *updateSeeds {
		if err := os.MkdirAll(seedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(seedDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	have := readSeeds(t)
	for name, b := range want {
		if !bytes.Equal(have[name], b) {
			t.Errorf("%s/%s missing or stale; regenerate with -update-seeds", seedDir, name)
		}
	}
}

func TestFuzzSeedsNotEmpty(t *testing.T) {
	var ok, bad int
	for name := range readSeeds(t) {
		switch {
		case strings.HasPrefix(name, "ok-"):
			ok++
		case strings.HasPrefix(name, "bad-"):
			bad++
		default:
			t.Errorf("seed %s is neither ok-* nor bad-*", name)
		}
	}
	if ok == 0 || bad == 0 {
		t.Fatalf("%s holds %d ok and %d bad seeds; both must be non-zero", seedDir, ok, bad)
	}
}

func TestSeeds(t *testing.T) {
	for name, b := range readSeeds(t) {
		f, err := DecodeFrame(testGeometry, b)
		if strings.HasPrefix(name, "bad-") {
			if err == nil {
				t.Errorf("%s: decoded %+v, want an error", name, f)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		again, err := EncodeFrame(testGeometry, f)
		if err != nil || !bytes.Equal(again, b) {
			t.Errorf("%s: re-encoding differs (err %v)", name, err)
		}
	}
}

// FuzzDecodeFrame decodes the input as it is, and also cut or zero-extended to the frame
// size, so that mutations of a frame's content reach the field checks. A frame that decodes
// must re-encode to the identical bytes. The decoder without a copy (ReadFrameInto's) must
// accept and refuse exactly the same inputs and give the same frame.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range readSeeds(f) {
		f.Add(b)
	}
	size := FrameSize(testGeometry)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) != size {
			if _, err := DecodeFrame(testGeometry, in); err == nil {
				t.Fatalf("decoded a %d-byte input", len(in))
			}
		}
		fit := make([]byte, size)
		copy(fit, in)
		fr, err := DecodeFrame(testGeometry, fit)
		alias, aliasErr := decodeAlias(testGeometry, fit)
		if (err == nil) != (aliasErr == nil) {
			t.Fatalf("DecodeFrame: %v, decodeAlias: %v", err, aliasErr)
		}
		if err != nil {
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("error does not wrap ErrFrame: %v", err)
			}
			return
		}
		if alias.Cmd != fr.Cmd || alias.Seq != fr.Seq || alias.QueueHint != fr.QueueHint || alias.SURBID != fr.SURBID || !bytes.Equal(alias.Body, fr.Body) {
			t.Fatalf("decodeAlias gives %+v, DecodeFrame %+v", alias, fr)
		}
		out, err := EncodeFrame(testGeometry, fr)
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
		if !bytes.Equal(out, fit) {
			t.Fatalf("re-encoding differs:\n%x\n%x", out, fit)
		}
	})
}
