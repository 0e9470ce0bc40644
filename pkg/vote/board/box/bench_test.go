package box

import (
	"crypto/rand"
	"flag"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/internal/usage"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

var recoverEntries = flag.Int("recover-entries", 10000, "board entries for BenchmarkRecover (10^6 for issue 15)")

// BenchmarkRecover times what the ballot box does at every restart (OpenBoard): read its
// board file and re-verify the hash chain and its own signature of every entry (the casts'
// voter signatures and proofs were checked when they were accepted, so not again). The board
// holds -recover-entries casts; building it is not timed. The casts are one real cast with
// its voter signature bytes varied, so that each is a distinct cast (the restart does not
// read the voter signature).
func BenchmarkRecover(b *testing.B) {
	n := *recoverEntries
	dir := b.TempDir()
	key, err := Key(dir)
	if err != nil {
		b.Fatal(err)
	}
	voter, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	x, err := group.RandomScalar(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	opens := time.Now().Add(-time.Hour).Truncate(time.Second)
	p := &board.Params{
		ElectionID: "bench", PublicKey: verificatum.PublicKey{Y: new(group.Element).BaseExp(x)},
		Voters: []keys.IdentityPublicKey{voter.Public()}, Trustees: []keys.IdentityPublicKey{voter.Public()},
		Questions: []int{4}, Threshold: 1, Opens: opens, Closes: opens.Add(48 * time.Hour), BoxKey: key.Public(),
	}
	if err := p.Validate(); err != nil {
		b.Fatal(err)
	}
	if err := Install(dir, p); err != nil {
		b.Fatal(err)
	}
	c, err := board.NewCast(rand.Reader, p, voter, []int{1})
	if err != nil {
		b.Fatal(err)
	}
	bd, err := OpenBoard(dir, p, key)
	if err != nil {
		b.Fatal(err)
	}
	at := opens.Add(time.Minute)
	for i := range n {
		c.Signature[0], c.Signature[1], c.Signature[2], c.Signature[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		if _, err := bd.Stage(board.KindBallot, at, c.Marshal()); err != nil {
			b.Fatal(err)
		}
		if i%10000 == 9999 || i == n-1 {
			if err := bd.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	bd.Close()
	b.ResetTimer()
	for b.Loop() {
		c0, _ := usage.CPU()
		bd, err := OpenBoard(dir, p, key)
		if err != nil {
			b.Fatal(err)
		}
		c1, _ := usage.CPU()
		if bd.Len() != uint64(n) {
			b.Fatalf("%d entries after the restart, want %d", bd.Len(), n)
		}
		bd.Close()
		b.ReportMetric((c1 - c0).Seconds(), "cpu-s/op")
	}
}
