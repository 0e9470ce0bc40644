package trace

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteRead(t *testing.T) {
	base := filepath.Join(t.TempDir(), "trace")
	t.Setenv(EnvFile, base)
	w, err := Open()
	if err != nil || w == nil {
		t.Fatalf("open: %v %v", w, err)
	}
	pkt := []byte("a packet on one hop")
	want := []Record{
		{Ev: EvSend, User: "alice", Kind: KindReal, Out: PacketID(pkt)},
		{Ev: EvReceive, Node: "p1", In: PacketID(pkt), Client: true},
	}
	for _, r := range want {
		w.Write(r)
	}
	files, _ := filepath.Glob(base + ".*")
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []Record
	if err := Read(bytes.NewReader(b), func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Out != got[1].In || got[0].User != "alice" || !got[1].Client || got[0].At == 0 {
		t.Fatalf("read back %+v", got)
	}
}

func TestOffWithoutEnv(t *testing.T) {
	t.Setenv(EnvFile, "")
	w, err := Open()
	if w != nil || err != nil {
		t.Fatalf("got %v %v", w, err)
	}
	w.Write(Record{Ev: EvSend}) // a nil Writer does nothing
}

func TestBadLines(t *testing.T) {
	for _, in := range []string{
		`{"ev":"send"}`,                 // no time
		`{"t":5}`,                       // no event
		`{"t":5,"ev":"recv","in":"12"}`, // short id
		`{"t":5,"ev":"recv","in":"zz00000000000000"}`,
		strings.Repeat("x", MaxLine+1), // over the line limit
	} {
		if err := Read(strings.NewReader(in), func(Record) error { return nil }); err == nil {
			t.Errorf("%.40q: accepted", in)
		}
	}
}

func FuzzRead(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "seed.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	if len(b) == 0 {
		f.Fatal("empty seed file")
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = Read(bytes.NewReader(in), func(r Record) error {
			if r.Ev == "" || r.At <= 0 {
				t.Fatalf("incomplete record accepted: %+v", r)
			}
			return nil
		})
	})
}
