package box

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKeyCreatedOnceWithOwnerOnlyMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vote")
	k1, err := Key(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Key(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Public().Equal(k2.Public()) {
		t.Fatal("a second Key call made another key")
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	if ids, err := Elections(dir); err != nil || len(ids) != 0 {
		t.Fatalf("elections of an empty box: %v, %v", ids, err)
	}
	if _, err := Params(dir, "../etc"); err == nil {
		t.Fatal("an election id with a path was accepted")
	}
}
