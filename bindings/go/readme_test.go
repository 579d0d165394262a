package graceserve

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeQuickStartIsTested keeps README.md's Go section honest: its quick-start code block must
// be exactly the body of the tested Example in example_test.go.
func TestReadmeQuickStartIsTested(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	b, e := strings.Index(s, "// quick start begin\n"), strings.Index(s, "// quick start end\n")
	if b < 0 || e < b {
		t.Fatal("quick start markers missing in example_test.go")
	}
	example := s[b+len("// quick start begin\n") : e]
	example = example[:strings.Index(example, "\t// Output:")] + "}\n"
	d := string(doc)
	const fence = "<!-- quick start: bindings/go/example_test.go Example -->\n```go\n"
	i := strings.Index(d, fence)
	if i < 0 {
		t.Fatal("README.md lacks the Go quick start block")
	}
	block := d[i+len(fence):]
	block = block[:strings.Index(block, "```")]
	if !strings.Contains(block, strings.Replace(example, "func Example() {", "func main() {", 1)) {
		t.Fatalf("README.md Go quick start differs from Example in example_test.go:\n--- doc\n%s\n--- example\n%s", block, example)
	}
}
