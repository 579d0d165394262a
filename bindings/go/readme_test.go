package graceserve

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goBlock is one ```go block of the documentation.
type goBlock struct {
	page string // path relative to the repository root
	line int
	code string
	// marker and fn are set for a block marked `<!-- MARKER: bindings/go/example_test.go FN -->`.
	marker, fn string
}

var (
	goFence    = regexp.MustCompile("(?m)^```go\n")
	exampleRef = regexp.MustCompile(`<!-- ([a-z ]+): bindings/go/example_test.go (\w+) -->\n$`)
)

// docGoBlocks returns every ```go block of README.md, docs/*.md and bindings/go/README.md.
func docGoBlocks(t *testing.T) []goBlock {
	t.Helper()
	if _, err := os.Stat("../../docs"); err != nil {
		t.Skip("not in a checkout of the repository (no ../../docs): nothing to check")
	}
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages := append([]string{"../../README.md"}, docs...)
	pages = append(pages, "README.md")
	var out []goBlock
	for _, p := range pages {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text := string(src)
		name := filepath.ToSlash(filepath.Join("bindings/go", p))
		for _, loc := range goFence.FindAllStringIndex(text, -1) {
			end := strings.Index(text[loc[1]:], "\n```")
			if end < 0 {
				t.Fatalf("%s: a ```go block is not closed", name)
			}
			b := goBlock{page: name, line: strings.Count(text[:loc[0]], "\n") + 1, code: text[loc[1] : loc[1]+end+1]}
			if m := exampleRef.FindStringSubmatch(text[:loc[0]]); m != nil {
				b.marker, b.fn = m[1], m[2]
			}
			out = append(out, b)
		}
	}
	return out
}

// TestReadmeExamplesAreTested keeps the Go code of the documentation honest. A block marked
// `<!-- MARKER: bindings/go/example_test.go FN -->` must contain exactly the body of the tested
// Example FN in example_test.go (the code between `// MARKER begin` and `// MARKER end`, as func
// main, without its Output comment). Every other block must be a complete program
// (`package main`): TestReadmeProgramsBuild builds it.
func TestReadmeExamplesAreTested(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	marked := 0
	for _, b := range docGoBlocks(t) {
		if b.marker == "" {
			if !strings.HasPrefix(b.code, "package main\n") {
				t.Errorf("%s:%d: a Go block that is neither a complete program (package main) nor marked "+
					"<!-- NAME: bindings/go/example_test.go ExampleFn --> after a tested Example", b.page, b.line)
			}
			continue
		}
		marked++
		begin, end := strings.Index(s, "// "+b.marker+" begin\n"), strings.Index(s, "// "+b.marker+" end\n")
		if begin < 0 || end < begin {
			t.Fatalf("%s:%d: markers // %s begin/end missing in example_test.go", b.page, b.line, b.marker)
		}
		example := s[begin+len("// "+b.marker+" begin\n") : end]
		out := strings.Index(example, "\t// Output:")
		if out < 0 {
			t.Fatalf("example_test.go: %s has no Output comment, so go test would not run it", b.fn)
		}
		example = example[:out] + "}\n"
		want := strings.Replace(example, "func "+b.fn+"() {", "func main() {", 1)
		if !strings.Contains(want, "func main() {") {
			t.Fatalf("example_test.go: the %s markers do not hold func %s", b.marker, b.fn)
		}
		if !strings.Contains(b.code, want) {
			t.Errorf("%s:%d: Go %s block differs from %s in example_test.go:\n--- doc\n%s\n--- example\n%s",
				b.page, b.line, b.marker, b.fn, b.code, want)
		}
	}
	if marked == 0 {
		t.Error("no Go block of the documentation quotes a tested Example")
	}
}

// TestReadmeProgramsBuild builds every unmarked Go block of the documentation as a program in
// a temporary module that requires this package (a replace to this directory, no network), the
// way a user's module does: go vet, then go build (which links the C library through cgo).
func TestReadmeProgramsBuild(t *testing.T) {
	var programs []goBlock
	for _, b := range docGoBlocks(t) {
		if b.marker == "" && strings.HasPrefix(b.code, "package main\n") {
			programs = append(programs, b)
		}
	}
	if len(programs) == 0 {
		t.Fatal("no complete Go program in the documentation")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on the PATH")
	}
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mod := "module example.com/docprograms\n\ngo 1.26\n\n" +
		"require github.com/graceserve/graceserve/bindings/go v0.0.0\n\n" +
		"replace github.com/graceserve/graceserve/bindings/go => " + here + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	where := map[string]string{}
	for i, b := range programs {
		pkg := fmt.Sprintf("p%d", i)
		where[pkg] = fmt.Sprintf("%s:%d", b.page, b.line)
		if err := os.Mkdir(filepath.Join(dir, pkg), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pkg, "main.go"), []byte(b.code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"vet", "./..."}, {"build", "./..."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOPROXY=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s of the documentation's Go programs failed (%v; pN is %v):\n%s",
				strings.Join(args, " "), err, where, out)
		}
	}
	t.Logf("built %d program(s): %v", len(programs), where)
}
