package agent

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

// The API through the real binaries, with one agent serving two accounts: the services of the
// consensus; a payload sent by alice to bob's queue (no reply path) that bob receives at least
// once and acknowledges; idempotent resends; mail to bob's mailbox delivered, mail to nobody
// failed with the service's reason; forgetting a finished status.
func TestThroughRealNetwork(t *testing.T) {
	n, pc := realNet(t, "")
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	alice := startEngine(t, n, alpha, "alice", pc)
	bob := startEngine(t, n, beta, "bob", pc)
	s := startAgent(t, pc, Config{ReceivePollInterval: 50 * time.Millisecond, MaxReceivedBytes: 4000},
		Account{Address: "alice@alpha.localhost", Engine: alice}, Account{Address: "bob@beta.localhost", Engine: bob})

	r := s.call(t, "GET", "/agent/v1/services", nil)
	var svc servicesResponse
	r.decode(t, &svc)
	if r.code != 200 || !slices.Equal(svc.Accounts, []string{"alice@alpha.localhost", "bob@beta.localhost"}) || svc.FragmentCapacity <= 0 || svc.MaxPayload != DefaultMaxPayload {
		t.Fatalf("services: %d %s", r.code, r.body)
	}
	domains := map[string][]string{}
	for _, p := range svc.Providers {
		for _, d := range p.Domains {
			domains[d] = p.Services
		}
	}
	for _, d := range []string{"alpha.localhost", "beta.localhost"} {
		if !slices.Contains(domains[d], "queue") || !slices.Contains(domains[d], "mailbox") {
			t.Fatalf("services: %s offers %v", d, domains[d])
		}
	}

	// Two accounts: a request must name one.
	if r := s.call(t, "POST", "/agent/v1/send", sendBody("beta.localhost", "queue", "bob", []byte("x"))); r.code != 404 || !contains(r.body, "name one with account") {
		t.Fatalf("send without account: %d %s", r.code, r.body)
	}
	payload := randomBytes(3000)
	body := sendBody("beta.localhost", "queue", "bob", payload)
	body["account"], body["idempotency_key"] = "alice@alpha.localhost", "req-1"
	r = s.call(t, "POST", "/agent/v1/send", body)
	var sent sendResponse
	r.decode(t, &sent)
	if r.code != 201 || sent.Existed || sent.Status.Reply || sent.Status.Size != len(payload) || sent.Status.Service != "queue" {
		t.Fatalf("send to bob's queue: %d %s", r.code, r.body)
	}
	// The same key again: the same message, nothing new stored.
	r = s.call(t, "POST", "/agent/v1/send", body)
	var again sendResponse
	r.decode(t, &again)
	if r.code != 200 || !again.Existed || again.ID != sent.ID {
		t.Fatalf("resend with the key: %d %s", r.code, r.body)
	}

	// A second payload, so that bob's answers hit their size bound (MaxReceivedBytes below).
	second := randomBytes(3000)
	body2 := sendBody("beta.localhost", "queue", "bob", second)
	body2["account"] = "alice@alpha.localhost"
	r = s.call(t, "POST", "/agent/v1/send", body2)
	var sent2 sendResponse
	r.decode(t, &sent2)
	if r.code != 201 {
		t.Fatalf("second send: %d %s", r.code, r.body)
	}
	l, _ := alice.List()
	if len(l) != 2 {
		t.Fatalf("alice's engine holds %d messages after a resend and a second send, want 2", len(l))
	}
	for _, st := range l {
		if !Owns(st) {
			t.Fatalf("a message the agent queued (key %q) is not Owns", st.IdempotencyKey)
		}
	}

	// bob receives both (long-poll), one per answer under the size bound, each at least once:
	// it stays until acknowledged.
	want := map[string][]byte{sent.ID: payload, sent2.ID: second}
	var got receivedResponse
	deadline := time.Now().Add(90 * time.Second)
	for !(len(got.Messages) == 1 && got.More) {
		if time.Now().After(deadline) {
			t.Fatalf("bob did not receive both messages: %+v", got)
		}
		r = s.call(t, "GET", "/agent/v1/received?account=bob@beta.localhost&wait=10s", nil)
		if r.code != 200 {
			t.Fatalf("received: %d %s", r.code, r.body)
		}
		r.decode(t, &got)
		if len(got.Messages) == 1 && !got.More {
			time.Sleep(100 * time.Millisecond) // the other one is on its way
		}
	}
	for round := range 2 {
		m := got.Messages[0]
		if !bytes.Equal(m.Data, want[m.ID]) {
			t.Fatalf("bob received %s of %d bytes, not what alice sent", m.ID, len(m.Data))
		}
		delete(want, m.ID)
		r = s.call(t, "GET", "/agent/v1/received?account=bob@beta.localhost", nil)
		var still receivedResponse
		r.decode(t, &still)
		if len(still.Messages) != 1 || still.Messages[0].Seq != m.Seq || still.More != (round == 0) {
			t.Fatalf("unacknowledged message not given again: %s", r.body)
		}
		ack := fmt.Sprintf("/agent/v1/received/%d/ack?account=bob@beta.localhost", m.Seq)
		if r := s.call(t, "POST", ack, nil); r.code != 204 {
			t.Fatalf("ack: %d %s", r.code, r.body)
		}
		if r := s.call(t, "POST", ack, nil); r.code != 404 || r.errorCode() != codeNotFound {
			t.Fatalf("second ack: %d %s", r.code, r.body)
		}
		r = s.call(t, "GET", "/agent/v1/received?account=bob@beta.localhost", nil)
		got = receivedResponse{}
		r.decode(t, &got)
	}
	if len(got.Messages) != 0 || got.More || len(want) != 0 {
		t.Fatalf("after both acks: %+v, not received: %d", got, len(want))
	}
	if st := s.waitFinished(t, sent.ID, "alice@alpha.localhost", 30*time.Second); st.State != "sent" {
		t.Fatalf("alice's status of the queue message: %+v", st)
	}

	// Mail through the mailbox service: acknowledged when stored; a recipient the provider
	// does not know fails with its reason.
	mail := []byte("From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: agent\r\n\r\nthrough the agent API\r\n")
	body = sendBody("beta.localhost", "mailbox", "bob", mail)
	body["account"], body["reply"] = "alice@alpha.localhost", true
	r = s.call(t, "POST", "/agent/v1/send", body)
	r.decode(t, &sent)
	if r.code != 201 || !sent.Status.Reply {
		t.Fatalf("mail: %d %s", r.code, r.body)
	}
	body["recipient"] = "nobody"
	r = s.call(t, "POST", "/agent/v1/send", body)
	var nobody sendResponse
	r.decode(t, &nobody)
	if st := s.waitFinished(t, sent.ID, "alice@alpha.localhost", 90*time.Second); st.State != "delivered" || st.Acknowledged != 1 {
		t.Fatalf("mail to bob: %+v", st)
	}
	if st := s.waitFinished(t, nobody.ID, "alice@alpha.localhost", 90*time.Second); st.State != "failed" || st.Reason != "fragment 0: unknown recipient" {
		t.Fatalf("mail to nobody: %+v", st)
	}
	// Fire and forget: no reply path to an answering service; sent once, never acknowledged.
	body = sendBody("beta.localhost", "mailbox", "bob", mail)
	body["account"], body["reply"] = "alice@alpha.localhost", false
	r = s.call(t, "POST", "/agent/v1/send", body)
	var fire sendResponse
	r.decode(t, &fire)
	if r.code != 201 || fire.Status.Reply {
		t.Fatalf("send without a reply path: %d %s", r.code, r.body)
	}
	if st := s.waitFinished(t, fire.ID, "alice@alpha.localhost", 90*time.Second); st.State != "sent" || st.Transmissions != 1 || st.Reply {
		t.Fatalf("send without a reply path: %+v, want sent once without a reply path", st)
	}
	if r := s.call(t, "DELETE", "/agent/v1/status/"+sent.ID+"?account=alice@alpha.localhost", nil); r.code != 204 {
		t.Fatalf("forget: %d %s", r.code, r.body)
	}
	if r := s.call(t, "GET", "/agent/v1/status/"+sent.ID+"?account=alice@alpha.localhost", nil); r.code != 404 {
		t.Fatalf("status after forget: %d %s", r.code, r.body)
	}
}

// A hostile local client floods the agent (bad tokens, malformed and oversize bodies, long-polls
// beyond their bound, valid requests) while a mail submitted through the same engine, as
// mailproxy's SMTP side does, is delivered: the flood gets quick refusals, the mail its ACK.
func TestFloodWhileMailDelivered(t *testing.T) {
	n, pc := realNet(t, "")
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	alice := startEngine(t, n, alpha, "alice", pc)
	if _, err := n.AddUser(beta, "bob", 1<<24); err != nil {
		t.Fatal(err)
	}
	s := startAgent(t, pc, Config{MaxInFlight: 8, MaxWaiters: 4, MaxPayload: 4096, ReceivePollInterval: 50 * time.Millisecond},
		Account{Address: "alice@alpha.localhost", Engine: alice})

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	var transportErrors atomic.Int64
	oversize := fmt.Appendf(nil, `{"domain":"beta.localhost","service":"mailbox","recipient":"bob","data":"%s"}`, strings.Repeat("QUFB", 8<<10))
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				var r reply
				var err error
				switch (w + i) % 6 {
				case 0:
					r, err = s.do("GET", "/agent/v1/status", nil, "wrong-"+strings.Repeat("x", 40), nil)
				case 1:
					r, err = s.do("POST", "/agent/v1/send", []byte(`{"domain":"beta.localhost",`), s.token, nil)
				case 2:
					r, err = s.do("POST", "/agent/v1/send", oversize, s.token, nil)
				case 3:
					r, err = s.do("GET", "/agent/v1/received?wait=2s", nil, s.token, nil)
				case 4:
					r, err = s.do("GET", "/agent/v1/services", nil, s.token, nil)
				default:
					r, err = s.do("GET", "/agent/v1/status", nil, s.token, func(r *http.Request) { r.Host = "attacker.example" })
				}
				if err != nil {
					transportErrors.Add(1)
					continue
				}
				mu.Lock()
				counts[fmt.Sprintf("%d %s", r.code, r.errorCode())]++
				mu.Unlock()
			}
		})
	}

	mail := []byte("From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: under a flood\r\n\r\n" + strings.Repeat("line of mail\r\n", 2000))
	id, err := alice.Send(context.Background(), client.Destination{Domain: beta.Domain, Recipient: "bob"}, mail)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var st client.Status
	for {
		if st, err = alice.Status(id); err != nil {
			t.Fatal(err)
		}
		if st.State.Finished() || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	wg.Wait()
	t.Logf("flood answers (status code): %v; mail %s after %v, %d transmissions", counts, st.State, st.Updated.Sub(st.Created).Round(time.Millisecond), st.Transmissions)
	if st.State != client.StateDelivered || Owns(st) {
		t.Fatalf("mail under the flood (the agent's: %v): %+v", Owns(st), st)
	}
	if transportErrors.Load() != 0 {
		t.Fatalf("%d requests of the flood got no HTTP answer", transportErrors.Load())
	}
	for k := range counts {
		switch k {
		case "401 ", "403 ", "400 " + codeBadRequest, "413 " + codeTooLarge, "503 " + codeBusy, "200 ":
		default:
			t.Errorf("unexpected answer to the flood: %s (%d times)", k, counts[k])
		}
	}
	if counts["401 "] == 0 || counts["403 "] == 0 || counts["413 "+codeTooLarge] == 0 || counts["200 "] == 0 {
		t.Fatalf("the flood missed a kind of answer: %v", counts)
	}
	// The agent serves normally once the flood is over, and nothing of the flood was queued.
	if r := s.call(t, "GET", "/agent/v1/status", nil); r.code != 200 {
		t.Fatalf("after the flood: %d %s", r.code, r.body)
	}
	if l, _ := alice.List(); len(l) != 1 {
		t.Fatalf("alice's engine holds %d messages, want only the mail", len(l))
	}
	// The mail is mailproxy's: the agent shows its status but does not forget it.
	if r := s.call(t, "GET", "/agent/v1/status/"+id.String(), nil); r.code != 200 {
		t.Fatalf("status of the mail: %d %s", r.code, r.body)
	}
	if r := s.call(t, "DELETE", "/agent/v1/status/"+id.String(), nil); r.code != 403 || r.errorCode() != codeNotAgent {
		t.Fatalf("forget of the mail: %d %s", r.code, r.body)
	}
	if _, err := alice.Status(id); err != nil {
		t.Fatalf("the mail's status after the agent's refusal: %v", err)
	}
}
