// Package servicetest holds what the tests of the provider services (mixd's survey and vote)
// share about their delivery path: the seed files of their FuzzDeliver targets and the check of
// the one answer a delivered fragment may get (docs/spec/services.md section 2). Tests only.
package servicetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

// DeliverSeed is one delivered payload: the Recipient command's id, the fragment, and the answer
// expected (a StatusName, or "none" when the payload is too short to name a message).
type DeliverSeed struct {
	Name      string `json:"name"`
	Recipient string `json:"recipient"`
	Data      string `json:"data"` // hex
	Expect    string `json:"expect"`
}

// LoadSeeds reads a seed file written by WriteSeeds.
func LoadSeeds(tb testing.TB, path string) []DeliverSeed {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var seeds []DeliverSeed
	if err := json.Unmarshal(b, &seeds); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return seeds
}

// WriteSeeds writes seeds to path as indented JSON (only on purpose: -update-seeds).
func WriteSeeds(tb testing.TB, path string, seeds []DeliverSeed) {
	tb.Helper()
	b, err := json.MarshalIndent(seeds, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		tb.Fatal(err)
	}
}

var statusNames = map[client.AckStatus]string{
	client.AckStored: "stored", client.AckUnknownRecipient: "unknown_recipient", client.AckOverQuota: "over_quota",
	client.AckMalformed: "malformed", client.AckTooLarge: "too_large", client.AckRefused: "refused",
}

// StatusName is the seeds' name for an answer's status ("" for one they do not name).
func StatusName(s client.AckStatus) string { return statusNames[s] }

// CheckAnswer checks the answer a service gave to delivered data (nil when it gave none) and
// returns its status name, or "none". Whatever the bytes, a service answers at most once, and
// exactly for the message and fragment the bytes name; bytes too short to name one get no
// answer. The caller fails the test on more than one answer.
func CheckAnswer(tb testing.TB, data []byte, a *client.Ack) string {
	tb.Helper()
	id, index, named := client.FragmentIDs(data)
	switch {
	case a == nil && named:
		tb.Fatal("no answer to a fragment that names its message")
	case a == nil:
		return "none"
	case !named:
		tb.Fatalf("answer %v to bytes that name no message", a.Status)
	case a.ID != id || a.Index != index:
		tb.Fatalf("answer for message %s fragment %d, want %s fragment %d", a.ID, a.Index, id, index)
	}
	return StatusName(a.Status)
}
