package board

import (
	"testing"
)

// BenchmarkCastCheck is the box's work per cast of one question: eligibility, the voter's
// signature and the ballot proof.
func BenchmarkCastCheck(b *testing.B) {
	f := newFixture(b, 1, 1, 1, 4)
	c, err := ParseCast(f.cast(0, 1).Marshal())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := c.Check(f.p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBoardEntry is a verifier's work per ballot entry of one question: parsing,
// chain, box signature and Cast.Check (VerifyBoard, on all cores).
func BenchmarkVerifyBoardEntry(b *testing.B) {
	f := newFixture(b, 64, 1, 1, 4)
	bb := f.builder()
	for i := range 64 {
		bb.addCast(f.cast(i, i%4))
	}
	bb.addClose()
	file := MarshalBoard(bb.entries)
	for b.Loop() {
		es, err := ParseBoard(file)
		if err != nil {
			b.Fatal(err)
		}
		if err := VerifyBoard(f.p, es); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/entry")
}
