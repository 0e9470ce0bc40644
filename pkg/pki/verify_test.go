package pki

import (
	"bytes"
	"errors"
	"testing"
)

// TestVerify is the client's acceptance rule with three authorities and threshold two.
func TestVerify(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	nodes := mixNet(t, 3, 1, 80)
	all := signedDoc(t, 80, auth, pub, nodes, 0, 1, 2)
	two := signedDoc(t, 80, auth, pub, nodes, 0, 2)
	one := signedDoc(t, 80, auth, pub, nodes, 1)
	for name, b := range map[string][]byte{"three signatures": all, "two signatures": two} {
		sd, err := Verify(b, 80, pub, 2)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if len(sd.Document.Nodes) != 4 {
			t.Errorf("%s: %d nodes", name, len(sd.Document.Nodes))
		}
	}
	if _, err := Verify(one, 80, pub, 2); !errors.Is(err, ErrTooFewSignatures) {
		t.Errorf("one signature: %v, want ErrTooFewSignatures", err)
	}
	if _, err := Verify(all, 81, pub, 2); !errors.Is(err, ErrWrongEpoch) {
		t.Errorf("wrong epoch: %v, want ErrWrongEpoch", err)
	}
	if _, err := Verify(append(bytes.Clone(all), make([]byte, MaxDocumentSize)...), 80, pub, 2); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v, want ErrTooLarge", err)
	}
	// Signatures by keys that are not configured authorities do not count.
	strangers, _ := newAuthorities(t, 5)
	sd, _ := ParseSignedDocument(one)
	for _, k := range strangers[3:] {
		if err := sd.AddSignature(SignDocument(sd.Raw, k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Verify(sd.Marshal(), 80, pub, 2); !errors.Is(err, ErrTooFewSignatures) {
		t.Errorf("one authority and two strangers: %v, want ErrTooFewSignatures", err)
	}
	// Flip every byte of the two-signature document in turn: each change must be refused.
	for i := range two {
		b := bytes.Clone(two)
		b[i] ^= 0x40
		if _, err := Verify(b, 80, pub, 2); err == nil {
			t.Fatalf("byte %d of %d tampered: accepted", i, len(b))
		}
	}
	if _, err := Verify(all, 80, pub, 0); err == nil {
		t.Error("threshold 0 accepted")
	}
}
