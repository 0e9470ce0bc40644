// Package storetest starts a throw-away PostgreSQL server for tests of the survey store and of
// the survey service (STYLE.md rule 17): initdb and pg_ctl in a temporary directory, a Unix
// socket only, stopped when the test ends.
package storetest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// InstallHint is what a skipped test tells the user to run.
const InstallHint = "apt-get install -y postgresql (PostgreSQL 15 from Debian)"

// pgBin finds a PostgreSQL server program: on PATH, else in Debian's versioned directory.
func pgBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
		return m[len(m)-1], nil
	}
	return "", fmt.Errorf("%s not found", name)
}

// StartPostgres starts a PostgreSQL server for the test and returns a pgx connection string
// for its "postgres" database. It skips the test when PostgreSQL is not installed. PostgreSQL
// refuses to run as root: as root, the server runs as the "postgres" system user.
func StartPostgres(t testing.TB) string {
	t.Helper()
	initdb, err := pgBin("initdb")
	if err != nil {
		t.Skipf("PostgreSQL is not installed (%v): %s", err, InstallHint)
	}
	pgctl, err := pgBin("pg_ctl")
	if err != nil {
		t.Skipf("PostgreSQL is not installed (%v): %s", err, InstallHint)
	}
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var prefix []string // runs a command as the server's user
	dbUser := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user to run the server as: %s", InstallHint)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		prefix = []string{"runuser", "-u", "postgres", "--"}
		dbUser = "postgres"
	} else if u, err := user.Current(); err == nil {
		dbUser = u.Username
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		all := append(append([]string(nil), prefix...), args...)
		out, err := exec.Command(all[0], all[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	run(initdb, "-D", data, "-U", dbUser, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	// fsync stays on (the default): the storage benchmarks measure durable commits.
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories=%s -c max_connections=50", dir)
	run(pgctl, "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "60", "start")
	t.Cleanup(func() {
		all := append(append([]string(nil), prefix...), pgctl, "-D", data, "-m", "fast", "-w", "stop")
		if out, err := exec.Command(all[0], all[1:]...).CombinedOutput(); err != nil {
			t.Errorf("pg_ctl stop: %v\n%s", err, out)
		}
	})
	return fmt.Sprintf("host=%s port=5432 user=%s dbname=postgres sslmode=disable", dir, dbUser)
}
