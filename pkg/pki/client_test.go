package pki

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// docServer serves /v1/consensus/{epoch} from a map and counts requests.
type docServer struct {
	mu   sync.Mutex
	docs map[Epoch][]byte
	hits atomic.Int32
}

func (s *docServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	e, err := strconv.ParseUint(strings.TrimPrefix(r.URL.Path, "/v1/consensus/"), 10, 64)
	if err != nil {
		http.Error(w, "bad epoch", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	b, ok := s.docs[Epoch(e)]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "no document", http.StatusNotFound)
		return
	}
	w.Write(b)
}

func (s *docServer) set(e Epoch, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[e] = b
}

func newDocServer(t *testing.T) (*docServer, string) {
	s := &docServer{docs: make(map[Epoch][]byte)}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func TestClient(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	nodes := mixNet(t, 3, 1, 200)
	good := signedDoc(t, 201, auth, pub, nodes, 0, 2)
	srv, u := newDocServer(t)
	srv.set(201, good)
	srv.set(202, signedDoc(t, 202, auth, pub, mixNet(t, 3, 1, 202), 1)) // one signature
	srv.set(203, good)                                                  // wrong epoch
	tampered := bytes.Clone(good)
	tampered[len(tampered)/2] ^= 1
	srv.set(204, tampered)
	srv.set(205, append(bytes.Clone(good), make([]byte, MaxDocumentSize)...)) // oversize

	c, err := NewClient(ClientConfig{URLs: []string{u}, Authorities: pub, Threshold: 2, EpochLength: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := c.Get(ctx, 201)
	if err != nil || d.Epoch != 201 || len(d.Nodes) != 4 {
		t.Fatalf("Get(201) = %v, %v", d, err)
	}
	hits := srv.hits.Load()
	if _, err := c.Get(ctx, 201); err != nil || srv.hits.Load() != hits {
		t.Errorf("second Get(201): %v, %d requests (want cached)", err, srv.hits.Load()-hits)
	}
	for e, want := range map[Epoch]error{202: ErrTooFewSignatures, 203: ErrWrongEpoch, 204: nil, 205: ErrTooLarge, 206: ErrNoDocument} {
		_, err := c.Get(ctx, e)
		if err == nil || want != nil && !errors.Is(err, want) {
			t.Errorf("Get(%d): %v, want %v", e, err, want)
		}
	}
	// A client configured with another epoch length refuses the document.
	c2, _ := NewClient(ClientConfig{URLs: []string{u}, Authorities: pub, Threshold: 2, EpochLength: 4 * time.Second})
	if _, err := c2.Get(ctx, 201); err == nil || !strings.Contains(err.Error(), "epoch length") {
		t.Errorf("epoch length mismatch: %v", err)
	}
}

// TestClientFallback: the first authority fails, the second serves.
func TestClientFallback(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	bad, u1 := newDocServer(t)
	good, u2 := newDocServer(t)
	bad.set(300, signedDoc(t, 300, auth, pub, nil, 0))
	good.set(300, signedDoc(t, 300, auth, pub, nil, 0, 1))
	c, err := NewClient(ClientConfig{URLs: []string{u1, u2}, Authorities: pub, Threshold: 2, EpochLength: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), 300); err != nil {
		t.Fatal(err)
	}
	if bad.hits.Load() != 1 || good.hits.Load() != 1 {
		t.Errorf("hits %d, %d; want 1, 1", bad.hits.Load(), good.hits.Load())
	}
}

// TestClientRun: Run fetches the current epoch's document without being asked.
func TestClientRun(t *testing.T) {
	auth, pub := newAuthorities(t, 3)
	srv, u := newDocServer(t)
	c, err := NewClient(ClientConfig{URLs: []string{u}, Authorities: pub, Threshold: 2, EpochLength: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e, _, _ := c.Clock().Now()
	for _, x := range []Epoch{e, e + 1, e + 2} {
		srv.set(x, signedDoc(t, x, auth, pub, nil, 0, 1))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		_, ok := c.cache[e]
		c.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not fetch the current document")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewClientRefuses(t *testing.T) {
	_, pub := newAuthorities(t, 2)
	for name, cfg := range map[string]ClientConfig{
		"no urls":        {Authorities: pub, Threshold: 1, EpochLength: time.Minute},
		"bad url":        {URLs: []string{"ftp://x"}, Authorities: pub, Threshold: 1, EpochLength: time.Minute},
		"threshold 3":    {URLs: []string{"http://x"}, Authorities: pub, Threshold: 3, EpochLength: time.Minute},
		"no epoch":       {URLs: []string{"http://x"}, Authorities: pub, Threshold: 1},
		"no authorities": {URLs: []string{"http://x"}, Threshold: 1, EpochLength: time.Minute},
	} {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
