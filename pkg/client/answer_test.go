package client

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// An ack's answer (a vote receipt, a refusal's reason) reaches the message's Status, and a
// refusal's text is quoted in the reason.
func TestAckAnswerInStatus(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), nil)
	defer e.Close()
	reply := func(ack *Ack, seq uint32) {
		t.Helper()
		v := n.view(e)
		sf := n.sendOne(e, v, time.Now())
		ack.ID, ack.Index = sf.frag.ID, sf.frag.Index
		u, _ := n.ackThroughSURB(v.sph, sf.surb, ack.Marshal(), v.doc.Epoch)
		if err := e.handleItem(v.sph, &wire.Frame{Cmd: wire.CmdAck, Seq: seq, SURBID: *u.SURBID, Body: u.Payload}, seq+1); err != nil {
			t.Fatal(err)
		}
	}
	dst := Destination{Domain: "beta.example", Recipient: "bob"}
	id, err := e.Send(context.Background(), dst, []byte("a cast"))
	if err != nil {
		t.Fatal(err)
	}
	receipt := bytes.Repeat([]byte{0x01, 0xfe}, MaxAckAnswer/2)
	reply(&Ack{Status: AckStored, Answer: receipt}, 1)
	st, _ := e.Status(id)
	if st.State != StateDelivered || !bytes.Equal(st.Answer, receipt) {
		t.Fatalf("status %+v, want delivered with the answer", st)
	}

	id, err = e.Send(context.Background(), dst, []byte("a cast of a stranger"))
	if err != nil {
		t.Fatal(err)
	}
	reply(&Ack{Status: AckRefused, Answer: []byte("credential 0123 is not on the voter list")}, 2)
	st, _ = e.Status(id)
	if st.State != StateFailed || st.Reason != "fragment 0: refused by the service: credential 0123 is not on the voter list" {
		t.Fatalf("status %+v", st)
	}

	// A binary answer is kept but not quoted in the reason.
	id, err = e.Send(context.Background(), dst, []byte("another"))
	if err != nil {
		t.Fatal(err)
	}
	reply(&Ack{Status: AckRefused, Answer: []byte{0, 1, 2}}, 3)
	st, _ = e.Status(id)
	if st.State != StateFailed || st.Reason != "fragment 0: refused by the service" || !bytes.Equal(st.Answer, []byte{0, 1, 2}) {
		t.Fatalf("status %+v", st)
	}
}

// The largest ack fits the reply of the smallest geometry a service answering with it may use:
// the default one.
func TestAckWithAnswerFitsDefaultGeometry(t *testing.T) {
	g := sphinx.DefaultGeometry()
	if c := service.Capacity(g.PayloadSize, g.SURBSize(), false); c < AckSize+2+MaxAckAnswer {
		t.Fatalf("a SURB reply carries %d bytes, an ack with the largest answer %d", c, AckSize+2+MaxAckAnswer)
	}
}

func TestParseAckAnswerLimits(t *testing.T) {
	a := &Ack{ID: MessageID{1}, Status: AckStored, Answer: bytes.Repeat([]byte{7}, MaxAckAnswer)}
	b := a.Marshal()
	got, err := ParseAck(b)
	if err != nil || !bytes.Equal(got.Answer, a.Answer) || !bytes.Equal(got.Marshal(), b) {
		t.Fatalf("largest answer: %v", err)
	}
	if _, err := ParseAck(append(b, 0)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("an ack over the limit parsed: %v", err)
	}
}
