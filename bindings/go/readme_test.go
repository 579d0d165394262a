package graceserve

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExamplesAreTested keeps README.md's Go section honest: each of its marked code
// blocks must contain exactly the body of a tested Example in example_test.go (as func main).
func TestReadmeExamplesAreTested(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ marker, fn, fence string }{
		{"quick start", "Example", "<!-- quick start: bindings/go/example_test.go Example -->\n```go\n"},
		{"two servers", "Example_twoServers", "<!-- two servers: bindings/go/example_test.go Example_twoServers -->\n```go\n"},
	} {
		s := string(src)
		b, e := strings.Index(s, "// "+c.marker+" begin\n"), strings.Index(s, "// "+c.marker+" end\n")
		if b < 0 || e < b {
			t.Fatalf("%s markers missing in example_test.go", c.marker)
		}
		example := s[b+len("// "+c.marker+" begin\n") : e]
		example = example[:strings.Index(example, "\t// Output:")] + "}\n"
		d := string(doc)
		i := strings.Index(d, c.fence)
		if i < 0 {
			t.Fatalf("README.md lacks the Go %s block", c.marker)
		}
		block := d[i+len(c.fence):]
		block = block[:strings.Index(block, "```")]
		if !strings.Contains(block, strings.Replace(example, "func "+c.fn+"() {", "func main() {", 1)) {
			t.Fatalf("README.md Go %s differs from %s in example_test.go:\n--- doc\n%s\n--- example\n%s", c.marker, c.fn, block, example)
		}
	}
}
