package panoramix

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// module is this repository's module path; the import-rule tests match package paths against it.
const module = "github.com/panoramix-mixnet/panoramix"

// daemonDirs are the top-level directories of the programs (DESIGN.md section 10). Nothing under
// pkg/ may import a package in or below one of them.
var daemonDirs = []string{"mailproxy", "postfix-filter", "mixd", "directory", "mixctl"}

// sphinxForbidden are the standard packages pkg/sphinx must not link: it does no I/O and no
// logging (DESIGN.md section 10), so that packet processing stays a pure function of its inputs.
var sphinxForbidden = []string{"net", "log", "log/slog"}

// goCmd runs the go command in the repository root and returns its standard output. It fails the
// test when the command fails, showing what it printed on standard error.
func goCmd(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// listedPackage holds the fields of `go list -json` output these tests read.
type listedPackage struct {
	Dir          string
	ImportPath   string
	GoFiles      []string
	CgoFiles     []string
	Deps         []string
	TestImports  []string
	XTestImports []string
	DepOnly      bool
	Error        *struct{ Err string }
}

// goList runs `go list -e -json` with args and decodes the stream of packages it prints. A
// package that cannot be loaded fails the test: every check below needs the whole picture.
func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	out := goCmd(t, append([]string{"list", "-e", "-json"}, args...)...)
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		err := dec.Decode(&p)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list: package %s: %s", p.ImportPath, p.Error.Err)
			continue
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestGofmt fails when any Go source file outside testdata/ is not formatted as gofmt would
// format it. go/format applies the same rules as the gofmt command, without needing its binary.
func TestGofmt(t *testing.T) {
	var unformatted []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		formatted, err := format.Source(src)
		if err != nil {
			unformatted = append(unformatted, path+" (does not parse: "+err.Error()+")")
			return nil
		}
		if !bytes.Equal(src, formatted) {
			unformatted = append(unformatted, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(unformatted) > 0 {
		t.Errorf("files not gofmt-formatted (run gofmt -w on them):\n\t%s", strings.Join(unformatted, "\n\t"))
	}
}

// TestPackageDocs fails when a package has no package doc comment: at least one of its non-test
// files must have a comment directly above its package clause (STYLE.md rule 19).
func TestPackageDocs(t *testing.T) {
	pkgs := goList(t, "./...")
	if len(pkgs) == 0 {
		t.Fatal("go list ./... found no packages")
	}
	for _, p := range pkgs {
		files := append(append([]string(nil), p.GoFiles...), p.CgoFiles...)
		if len(files) == 0 {
			continue // only test files: nothing to document
		}
		documented := false
		for _, name := range files {
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Errorf("%s: %v", p.ImportPath, err)
				continue
			}
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				documented = true
				break
			}
		}
		if !documented {
			t.Errorf("package %s (%s) has no package doc comment; add one, in doc.go when it is long", p.ImportPath, p.Dir)
		}
	}
}

// isDaemonPackage reports whether importPath is in or below one of the daemon directories.
func isDaemonPackage(importPath string) bool {
	for _, d := range daemonDirs {
		root := module + "/" + d
		if importPath == root || strings.HasPrefix(importPath, root+"/") {
			return true
		}
	}
	return false
}

// TestPkgDoesNotImportDaemons fails when a package under pkg/ depends on a daemon's package,
// directly or through another package, or when its tests import one: dependencies point from the
// daemons to pkg/, never back (STYLE.md rule 2).
func TestPkgDoesNotImportDaemons(t *testing.T) {
	if _, err := os.Stat("pkg"); errors.Is(err, fs.ErrNotExist) {
		t.Skip("no pkg/ directory yet")
	}
	for _, p := range goList(t, "./pkg/...") {
		for _, set := range [][]string{p.Deps, p.TestImports, p.XTestImports} {
			for _, dep := range set {
				if isDaemonPackage(dep) {
					t.Errorf("%s depends on daemon package %s; move the shared code into pkg/", p.ImportPath, dep)
				}
			}
		}
	}
}

// TestSphinxLinksNoNetOrLog fails when pkg/sphinx, or anything it links, pulls in the network or
// logging packages.
func TestSphinxLinksNoNetOrLog(t *testing.T) {
	if _, err := os.Stat(filepath.Join("pkg", "sphinx")); errors.Is(err, fs.ErrNotExist) {
		t.Skip("pkg/sphinx does not exist yet")
	}
	pkgs := goList(t, "-deps", "./pkg/sphinx/...")
	roots := 0
	for _, p := range pkgs {
		if !p.DepOnly {
			roots++
		}
	}
	if roots == 0 {
		t.Skip("pkg/sphinx has no Go package yet")
	}
	for _, p := range pkgs {
		for _, bad := range sphinxForbidden {
			if p.ImportPath == bad {
				t.Errorf("pkg/sphinx links %q; run `go list -deps ./pkg/sphinx/...` and remove the import that pulls it in", bad)
			}
		}
	}
}

// TestGoModTidy fails when `go mod tidy` would change go.mod or go.sum.
func TestGoModTidy(t *testing.T) {
	cmd := exec.Command("go", "mod", "tidy", "-diff")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("go mod tidy -diff: %v; run `go mod tidy` and commit go.mod and go.sum:\n%s", err, out)
	}
}
