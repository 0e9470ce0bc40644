package main

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store"
)

const testSurveyJSON = `{"name": "commute", "title": "How do you get to work?",
 "opens": "2020-01-01T00:00:00Z", "closes": "2099-01-01T00:00:00Z", "budget": "1",
 "questions": [
  {"id": "mode", "text": "Usual mode", "type": "categorical", "options": ["car", "bike", "train"]},
  {"id": "km", "text": "Distance", "type": "real", "decimals": 1, "min": "0", "max": "100.5"}]}`

// The collector's and the aggregator's commands, without a mixnet: submissions are put in
// the database directly.
func TestSurveyCommands(t *testing.T) {
	dir := t.TempDir()
	key, def, signed, db := filepath.Join(dir, "c.key"), filepath.Join(dir, "s.json"), filepath.Join(dir, "s.bin"), filepath.Join(dir, "survey.db")
	code, out, errOut := mixctl("survey", "keygen", "--out", key)
	if code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	collector := strings.TrimSpace(out)
	if code, _, errOut := mixctl("survey", "keygen", "--out", key); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("keygen over a key: %d %s", code, errOut)
	}
	os.WriteFile(def, []byte(testSurveyJSON), 0o644)
	if code, _, errOut := mixctl("survey", "create", "--key", key, "--definition", def, "--out", signed); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	_, other, _ := mixctl("survey", "keygen", "--out", filepath.Join(dir, "o.key"))
	if code, _, errOut := mixctl("survey", "open", signed, "--collector", strings.TrimSpace(other), "--dsn", db); code != 1 || !strings.Contains(errOut, "not by the collector") {
		t.Errorf("open with the wrong collector: %d %s", code, errOut)
	}
	if code, _, errOut := mixctl("survey", "open", signed, "--collector", collector); code != 1 || !strings.Contains(errOut, "--dsn") {
		t.Errorf("open without --dsn: %d %s", code, errOut)
	}
	if code, out, errOut := mixctl("survey", "open", signed, "--collector", collector, "--dsn", db); code != 0 || !strings.Contains(out, "open") {
		t.Fatalf("open: %s", errOut)
	}
	// Submissions, as the service would store them.
	b, _ := os.ReadFile(signed)
	sv, err := survey.ParseSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.SQLite, db)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		sub := &survey.Submission{Survey: sv.ID(), ID: survey.SubmissionID{byte(i)}, Answers: []survey.Answer{{Type: survey.Categorical, Value: int64(i % 3)}, {Type: survey.Real, Value: int64(i * 10)}}}
		raw, _ := sub.Marshal()
		if _, err := st.Insert(context.Background(), store.Item{Survey: "commute", Submission: sub, Raw: raw, ReceivedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	code, out, errOut = mixctl("survey", "release", "commute", "--kind", "histogram", "--question", "mode", "--epsilon", "0.5", "--dsn", db)
	if code != 0 || !strings.Contains(out, "ε spent 0.5, remaining 0.5") || !strings.Contains(out, "bike") {
		t.Fatalf("release: %d %s %s", code, out, errOut)
	}
	code, out, errOut = mixctl("survey", "release", "commute", "--kind", "mean", "--question", "km", "--epsilon", "0.5", "--dsn", db)
	if code != 0 || !strings.Contains(out, "remaining 0\n") || !strings.Contains(out, "mean") {
		t.Fatalf("mean: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := mixctl("survey", "release", "commute", "--kind", "count", "--epsilon", "0.1", "--dsn", db); code != 1 || !strings.Contains(errOut, "budget exceeded") {
		t.Errorf("over budget: %d %s", code, errOut)
	}
	if code, _, errOut := mixctl("survey", "release", "commute", "--kind", "count", "--epsilon", "0.10", "--dsn", db); code != 1 || !strings.Contains(errOut, "--epsilon") {
		t.Errorf("bad epsilon: %d %s", code, errOut)
	}
	code, out, _ = mixctl("survey", "status", "commute", "--dsn", db)
	if code != 0 || !strings.Contains(out, "30 submissions") || !strings.Contains(out, "ε spent 1 of 1 (0 remaining)") || !strings.Contains(out, "release 2") {
		t.Errorf("status: %s", out)
	}
	csvFile := filepath.Join(dir, "rows.csv")
	if code, _, errOut := mixctl("survey", "export", "commute", "--out", csvFile, "--dsn", db); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	f, _ := os.Open(csvFile)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 31 || strings.Join(recs[0], ",") != "submission_id,received_at,mode,km" || recs[2][2] != "bike" || recs[2][3] != "1.0" {
		t.Fatalf("csv: %v %v", recs[:min(3, len(recs))], err)
	}
	svg := filepath.Join(dir, "chart.svg")
	if code, _, errOut := mixctl("survey", "chart", "commute", "--release", "1", "--out", svg, "--dsn", db); code != 0 {
		t.Fatalf("chart: %s", errOut)
	}
	sb, _ := os.ReadFile(svg)
	if !strings.HasPrefix(string(sb), "<svg") || strings.Count(string(sb), "<rect") != 4 || !strings.Contains(string(sb), ">train<") {
		t.Errorf("svg:\n%s", sb)
	}
	if code, _, errOut := mixctl("survey", "chart", "commute", "--release", "2", "--out", svg, "--dsn", db); code != 1 || !strings.Contains(errOut, "not a histogram") {
		t.Errorf("chart of a mean: %d %s", code, errOut)
	}
	if code, _, errOut := mixctl("survey", "close", "commute", "--dsn", db); code != 0 {
		t.Fatalf("close: %s", errOut)
	}
	if _, out, _ := mixctl("survey", "status", "--dsn", db); !strings.Contains(out, "commute (How do you get to work?): closed") {
		t.Errorf("status after close: %s", out)
	}
	if code, _, errOut := mixctl("survey", "submit", signed, "--collector", collector); code != 1 || !strings.Contains(errOut, "required") {
		t.Errorf("submit without flags: %d %s", code, errOut)
	}
}

// A refusal's reason comes from the network: it is printed only when it has no control
// characters (an escape sequence could rewrite the user's terminal).
func TestPrintableText(t *testing.T) {
	for s, want := range map[string]bool{
		"survey commute is closed": true,
		"survey é is closed":       true,
		"closed\x1b[2J":            false,
		"line\nbreak":              false,
		"\xff":                     false,
	} {
		if got := printableText([]byte(s)); got != want {
			t.Errorf("printableText(%q) = %v, want %v", s, got, want)
		}
	}
}
