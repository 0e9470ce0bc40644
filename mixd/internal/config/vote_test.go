package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestVoteSection(t *testing.T) {
	c, err := load(t, provider)
	if err != nil {
		t.Fatal(err)
	}
	if c.Vote.Enabled || c.VoteDir() != filepath.Join(c.DataDir, "vote") {
		t.Fatalf("vote defaults: %+v %s", c.Vote, c.VoteDir())
	}
	c, err = load(t, provider+"[vote]\nenabled = true\ndir = \"box\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Vote.Enabled || !filepath.IsAbs(c.VoteDir()) || filepath.Base(c.VoteDir()) != "box" {
		t.Fatalf("vote section: %+v %s", c.Vote, c.VoteDir())
	}
	if _, err := load(t, provider+"[vote]\nbogus = 1\n"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key: %v", err)
	}
	mix := strings.Replace(strings.Replace(provider, `role = "provider"`, `role = "mix"`, 1), "[provider]\ndomains = [\"a.example\"]\n", "", 1)
	if _, err := load(t, mix+"[vote]\nenabled = true\n"); err == nil || !strings.Contains(err.Error(), "[vote] enabled") {
		t.Fatalf("vote on a mix: %v", err)
	}
}
