package vote

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board/box"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

const killVoters = 64

func killVoterKey(i int) *keys.IdentityPrivateKey {
	seed := sha256.Sum256(fmt.Appendf(nil, "voter %d", i))
	k, err := keys.NewIdentityPrivateKey(seed[:])
	if err != nil {
		panic(err)
	}
	return k
}

// TestSIGKILLKeepsEveryReceipt floods a box in a child process, kills it with SIGKILL in the
// middle, and checks that every cast the child answered with a receipt is on the recovered
// board (an ACK is sent only after the fsync).
func TestSIGKILLKeepsEveryReceipt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	dir := t.TempDir()
	boxKey, err := box.Key(dir)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := group.RandomScalar(rand.Reader)
	now := time.Now().Truncate(time.Second)
	p := &board.Params{ElectionID: "mayor", PublicKey: verificatum.PublicKey{Y: new(group.Element).BaseExp(x)},
		Questions: []int{3}, Threshold: 1, Opens: now.Add(-time.Hour), Closes: now.Add(time.Hour), BoxKey: boxKey.Public()}
	for i := range killVoters {
		p.Voters = append(p.Voters, killVoterKey(i).Public())
	}
	tk, _ := keys.GenerateIdentityKey(nil)
	p.Trustees = []keys.IdentityPublicKey{tk.Public()}
	if err := box.Install(dir, p); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperFlood$")
	cmd.Env = append(os.Environ(), "VOTE_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var receipts []*board.Receipt
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		b, err := hex.DecodeString(sc.Text())
		if err != nil {
			continue // the test framework's own lines
		}
		r, err := board.ParseReceipt(b)
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
		if len(receipts) == 40 {
			cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	cmd.Wait()
	if len(receipts) < 40 {
		t.Fatalf("the child gave %d receipts before it ended", len(receipts))
	}
	// Recover as a restarted service does, and look for every receipt.
	key, err := box.Key(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := box.OpenBoard(dir, p, key)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	es, err := box.ReadBoard(dir, "mayor")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range receipts {
		if _, err := r.OnBoard(es); err != nil {
			t.Fatalf("receipt for entry %d: %v", r.Seq, err)
		}
	}
	t.Logf("%d receipts, all on the recovered board of %d entries", len(receipts), len(es))
}

// TestHelperFlood is the child of TestSIGKILLKeepsEveryReceipt: it runs the service on the box
// directory and casts from many goroutines, printing each receipt (hex) as it is answered,
// until it is killed.
func TestHelperFlood(t *testing.T) {
	dir := os.Getenv("VOTE_HELPER_DIR")
	if dir == "" {
		t.Skip("the child process of TestSIGKILLKeepsEveryReceipt")
	}
	svc, err := New(Config{Dir: dir, Geometry: sphinx.DefaultGeometry()})
	if err != nil {
		t.Fatal(err)
	}
	go svc.Run(context.Background())
	p, err := box.Params(dir, "mayor")
	if err != nil {
		t.Fatal(err)
	}
	capacity := client.FragmentCapacity(sphinx.DefaultGeometry())
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i += 8 {
				c, err := board.NewCast(rand.Reader, p, killVoterKey(i%killVoters), []int{i % 3})
				if err != nil {
					panic(err)
				}
				var mid client.MessageID
				rand.Read(mid[:])
				fs, _ := client.Split(mid, c.Marshal(), capacity)
				r := &replier{}
				if err := svc.Deliver(context.Background(), &service.Request{Recipient: "mayor", Data: fs[0].Marshal()}, r); err != nil {
					panic(err)
				}
				a, err := client.ParseAck(r.data)
				if err != nil || a.Status != client.AckStored {
					panic(fmt.Sprint(a, err))
				}
				mu.Lock()
				fmt.Fprintln(w, hex.EncodeToString(a.Answer))
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
