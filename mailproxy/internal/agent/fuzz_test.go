package agent

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sendSeeds are the send bodies of testdata/send: ok-* decode, bad-* are refused.
func sendSeeds(tb testing.TB) map[string][]byte {
	files, err := filepath.Glob("testdata/send/*.json")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestSendSeeds(t *testing.T) {
	seeds := sendSeeds(t)
	if len(seeds) == 0 {
		t.Fatal("no seed files in testdata/send")
	}
	for name, b := range seeds {
		_, err := decodeSend(b, DefaultMaxPayload)
		if ok := strings.HasPrefix(name, "ok-"); ok != (err == nil) {
			t.Errorf("%s: decodeSend error %v", name, err)
		}
	}
}

// FuzzDecodeSend: decodeSend never panics, and what it accepts re-encodes to a body it decodes
// to the same request (JSON has many spellings of one object, so the bytes differ).
func FuzzDecodeSend(f *testing.F) {
	for _, b := range sendSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeSend(body, 1<<12)
		if err != nil {
			return
		}
		if len(req.Data) > 1<<12 || req.Domain == "" || req.Service == "" || req.Recipient == "" {
			t.Fatalf("accepted %+v", req)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := decodeSend(again, 1<<12)
		if err != nil {
			t.Fatalf("re-encoded %s refused: %v", again, err)
		}
		if !reflect.DeepEqual(normalize(req), normalize(req2)) {
			t.Fatalf("%+v re-decoded as %+v", req, req2)
		}
	})
}

// normalize makes an empty data field and a missing one compare equal (base64 of nothing is
// "", which decodes to an empty, non-nil slice).
func normalize(r *sendRequest) sendRequest {
	c := *r
	if len(c.Data) == 0 {
		c.Data = nil
	}
	return c
}

// FuzzQuery: the path and query decoders (seq, wait, after) never panic, keep to their
// bounds, and what they accept prints back to the same text.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"0", "7", "18446744073709551615", "01", "-1", "wait=30s", "wait=1h", "after=2026-12-05T20:00:00.123456789Z", "wait=5s&after=2026-12-05T20:00:00Z", "wait=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseSeq(s); err == nil && strconv.FormatUint(n, 10) != s {
			t.Fatalf("seq %q parsed as %d", s, n)
		}
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		p, err := parseWait(q, time.Minute)
		if err != nil {
			return
		}
		if p.wait < 0 || p.wait > time.Minute {
			t.Fatalf("wait %v accepted", p.wait)
		}
		if p.has {
			back, err := time.Parse(time.RFC3339Nano, p.after.Format(time.RFC3339Nano))
			if err != nil || !back.Equal(p.after) {
				t.Fatalf("after %v does not print back (%v)", p.after, err)
			}
		}
	})
}

// The JSON error body is one object with error and code, whatever the message holds.
func TestErrorBody(t *testing.T) {
	rec := httptest.NewRecorder()
	writeError(rec, 400, codeBadRequest, "quote \" and newline \n")
	var e errorJSON
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Code != codeBadRequest || e.Error != "quote \" and newline \n" || rec.Code != 400 {
		t.Fatalf("%d %q: %v", rec.Code, rec.Body.Bytes(), err)
	}
}
