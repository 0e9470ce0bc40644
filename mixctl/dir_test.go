package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/freeport"
	"github.com/panoramix-mixnet/panoramix/internal/syncbuf"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// mixctl runs one command line in-process.
func mixctl(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestDirHelp(t *testing.T) {
	code, out, _ := mixctl("dir", "--help")
	for _, want := range []string{"keygen", "approve", "remove", "status"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("dir --help: %d, missing %q:\n%s", code, want, out)
		}
	}
	if code, _, errOut := mixctl("dir", "approve", "nothex"); code != 1 || !strings.Contains(errOut, "NODE-ID") {
		t.Errorf("approve nothex: %d %q", code, errOut)
	}
	if code, _, errOut := mixctl("dir", "keygen"); code != 1 || !strings.Contains(errOut, "--out") {
		t.Errorf("keygen without --out: %d %q", code, errOut)
	}
}

func TestDirKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	code, out, errOut := mixctl("dir", "keygen", "--out", dir)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	k, err := keys.LoadIdentityKey(filepath.Join(dir, "authority.key"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != k.Public().String() {
		t.Errorf("printed %q, key is %s", out, k.Public())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "authority.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	if pub, err := keys.LoadIdentityPublicKey(filepath.Join(dir, "authority.pub")); err != nil || !pub.Equal(k.Public()) {
		t.Errorf("public key file: %v", err)
	}
	if code, _, errOut := mixctl("dir", "keygen", "--out", dir); code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("second keygen: %d %q, want a refusal mentioning --force", code, errOut)
	}
	if code, _, _ := mixctl("dir", "keygen", "--out", dir, "--force"); code != 0 {
		t.Error("keygen --force failed")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDirAgainstDirectory runs the real directory binary and drives it with mixctl: keygen,
// approve, a node's upload, status as text and JSON, remove.
func TestDirAgainstDirectory(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "directory")
	if out, err := exec.Command("go", "build", "-o", bin, "../directory").CombinedOutput(); err != nil {
		t.Fatalf("building directory: %v\n%s", err, out)
	}
	if code, _, errOut := mixctl("dir", "keygen", "--out", tmp); code != 0 {
		t.Fatal(errOut)
	}
	pubFile := filepath.Join(tmp, "authority.pub")
	token := filepath.Join(tmp, "data", "admin.token") // data_dir/admin.token, written at start
	listen, admin := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf("version = 1\nidentity_key_file = \"authority.key\"\ndata_dir = \"data\"\nlisten_address = %q\nadmin_address = %q\n[parameters]\nepoch_length = \"2s\"\n", listen, admin)
	cfgPath := filepath.Join(tmp, "directory.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &syncbuf.Buffer{}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("directory exit: %v\n%s", err, log.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("directory did not stop on SIGTERM")
		}
	}()
	url := "http://" + listen
	for i := 0; ; i++ {
		if resp, err := http.Get(url + "/status"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			t.Fatal("directory did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A node: approve it with mixctl, then upload its descriptor.
	clock, _ := pki.NewClock(2 * time.Second)
	e, _, _ := clock.Now()
	id, _ := keys.GenerateIdentityKey(rand.Reader)
	link, _ := keys.GenerateLinkKey(rand.Reader)
	d := &pki.Descriptor{Epoch: e, Identity: id.Public(), Link: link.Public(), Role: pki.RoleProvider,
		Addresses: []string{"127.0.0.1:4444"}, Domains: []string{"alpha.example"}, Services: []string{"mailbox"}}
	for k := range pki.MaxSphinxKeys {
		sk, _ := keys.GenerateSphinxKey(rand.Reader)
		d.SphinxKeys = append(d.SphinxKeys, pki.EpochKey{Epoch: e + pki.Epoch(k), Key: sk.Public()})
	}
	if err := d.Sign(id); err != nil {
		t.Fatal(err)
	}
	raw, _ := d.Marshal()
	approve := func(args ...string) (int, string, string) {
		return mixctl(append([]string{"dir", "approve", "--admin", admin, "--admin-token", token, id.Public().String()}, args...)...)
	}
	// An approval names the role, and a provider's mail domains (issue 13, finding 1).
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--role is required"},
		{[]string{"--role", "exit"}, "--role"},
		{[]string{"--role", "provider"}, "--domain DOMAIN"},
		{[]string{"--role", "mix", "--domain", "alpha.example"}, "a mix serves no mail domain"},
		{[]string{"--role", "provider", "--domain", "alpha_example"}, "--domain"},
	} {
		if code, _, errOut := approve(tc.args...); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("approve %v: %d %q, want an error saying %q", tc.args, code, errOut, tc.want)
		}
	}
	upload := func() int {
		resp, err := http.Post(url+"/v1/descriptor", "application/octet-stream", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code, out, errOut := approve("--role", "mix"); code != 0 || !strings.Contains(out, "as mix") {
		t.Fatalf("approve as a mix: %d %q %q", code, out, errOut)
	}
	if code := upload(); code != http.StatusForbidden {
		t.Fatalf("a provider's descriptor from a node approved as a mix: %d, want 403", code)
	}
	if code, out, errOut := approve("--role", "provider", "--domain", "Alpha.Example."); code != 0 || !strings.Contains(out, "approved "+id.Public().String()+" as provider of alpha.example") {
		t.Fatalf("approve as a provider: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := mixctl("dir", "approved", "--admin", admin, "--admin-token", token); code != 0 || !strings.Contains(out, id.Public().String()) || !strings.Contains(out, "provider") || !strings.Contains(out, "alpha.example") {
		t.Errorf("approved: %d %q %q", code, out, errOut)
	}
	if code := upload(); code != http.StatusOK {
		t.Fatalf("upload: %d", code)
	}

	// Wait until the current epoch has a document with the node (documents voted on before the
	// upload are empty), then show it.
	var v struct {
		Epoch      uint64 `json:"epoch"`
		Verified   bool   `json:"verified"`
		Signatures []struct {
			Valid *bool `json:"valid"`
		} `json:"signatures"`
		Nodes []struct {
			Identity string   `json:"identity"`
			Role     string   `json:"role"`
			Domains  []string `json:"domains"`
		} `json:"nodes"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errOut := mixctl("dir", "status", "--url", url, "--authority", pubFile, "--json")
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			if len(v.Nodes) > 0 {
				break
			}
		} else if !strings.Contains(errOut, "404") {
			t.Fatalf("status: %s", errOut)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no document with the node: %s\n%s", errOut, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !v.Verified || len(v.Signatures) != 1 || v.Signatures[0].Valid == nil || !*v.Signatures[0].Valid {
		t.Errorf("signatures not verified: %+v", v)
	}
	if len(v.Nodes) != 1 || v.Nodes[0].Identity != id.Public().String() || v.Nodes[0].Role != "provider" || v.Nodes[0].Domains[0] != "alpha.example" {
		t.Errorf("nodes: %+v", v.Nodes)
	}
	code, text, _ := mixctl("dir", "status", "--url", url, "--epoch", fmt.Sprint(v.Epoch))
	if code != 0 || !strings.Contains(text, "NOT VERIFIED") || !strings.Contains(text, "alpha.example") || !strings.Contains(text, "Mix layer 3 (0)") {
		t.Errorf("status text: %d\n%s", code, text)
	}
	// A wrong trusted key makes status refuse the document.
	other, _ := keys.GenerateIdentityKey(rand.Reader)
	if code, _, errOut := mixctl("dir", "status", "--url", url, "--authority", other.Public().String()); code != 1 || !strings.Contains(errOut, "does not verify") {
		t.Errorf("status with a wrong key: %d %q", code, errOut)
	}

	if code, _, errOut := mixctl("dir", "remove", "--admin", admin, "--admin-token", token, id.Public().String()); code != 0 {
		t.Errorf("remove: %s", errOut)
	}
	if code, _, errOut := mixctl("dir", "remove", "--admin", admin, "--admin-token", token, id.Public().String()); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("second remove: %d %q", code, errOut)
	}
}
