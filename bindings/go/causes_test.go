package graceserve

import (
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// headerEnum returns the members of C enum name in include/graceserve.h: value and doc comment.
func headerEnum(t *testing.T, name string) map[string]struct {
	value int
	doc   string
} {
	t.Helper()
	src, err := os.ReadFile("../../include/graceserve.h")
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)enum ` + name + `\b[^{]*\{(.*?)\};`).FindSubmatch(src)
	if body == nil {
		t.Fatalf("enum %s not found in graceserve.h", name)
	}
	out := map[string]struct {
		value int
		doc   string
	}{}
	member := regexp.MustCompile(`(?s)/\*\*(.*?)\*/\s*(SERVER_[A-Z0-9_]+)\s*=\s*(\d+)`)
	for _, m := range member.FindAllSubmatch(body[1], -1) {
		v, _ := strconv.Atoi(string(m[3]))
		out[string(m[2])] = struct {
			value int
			doc   string
		}{v, string(m[1])}
	}
	if len(out) == 0 {
		t.Fatalf("enum %s has no members", name)
	}
	return out
}

// goConsts returns, for every constant of type typ declared in errors.go, the C name it is
// defined as (C.SERVER_...).
func goConsts(t *testing.T, typ string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typ {
				continue
			}
			for i, n := range vs.Names {
				sel, ok := vs.Values[i].(*ast.SelectorExpr)
				if !ok {
					t.Fatalf("%s is not defined as a C constant", n.Name)
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "C" {
					t.Fatalf("%s is not defined as a C constant", n.Name)
				}
				out[n.Name] = sel.Sel.Name
			}
		}
	}
	return out
}

// pairs checks that the Go constants of typ and the header enum name one another one to one.
func pairs(t *testing.T, typ string, goC map[string]string, hdr map[string]struct {
	value int
	doc   string
}) {
	t.Helper()
	seen := map[string]string{}
	for g, c := range goC {
		if _, ok := hdr[c]; !ok {
			t.Errorf("%s %s = C.%s: not in the header", typ, g, c)
		}
		if other, dup := seen[c]; dup {
			t.Errorf("C.%s is both %s and %s", c, other, g)
		}
		seen[c] = g
	}
	for c := range hdr {
		if _, ok := seen[c]; !ok {
			t.Errorf("the header's %s has no %s constant in errors.go", c, typ)
		}
	}
}

// camel turns GRACEFUL_SIGNAL into GracefulSignal.
func camel(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(s, "_") {
		b.WriteString(w[:1] + strings.ToLower(w[1:]))
	}
	return b.String()
}

// TestStopCausesMatchHeader: every server_stop_cause of the header has its StopCause constant,
// named after it, with the header's value; its exit status (as the library computes it) is the
// one the header documents; Forced is true exactly for the FORCED_ causes.
func TestStopCausesMatchHeader(t *testing.T) {
	hdr := headerEnum(t, "server_stop_cause")
	goC := goConsts(t, "StopCause")
	pairs(t, "StopCause", goC, hdr)
	// The values as compiled (each constant is its C enum value, via cgo).
	values := map[string]StopCause{
		"CauseNone": CauseNone, "CauseGracefulSignal": CauseGracefulSignal,
		"CauseGracefulCall": CauseGracefulCall, "CauseBindFailed": CauseBindFailed,
		"CauseRuntimeFailed": CauseRuntimeFailed, "CauseForcedDeadline": CauseForcedDeadline,
		"CauseForcedSecondSignal": CauseForcedSecondSignal, "CauseInvalidOptions": CauseInvalidOptions,
		"CauseUpgraded": CauseUpgraded,
	}
	if len(values) != len(goC) {
		t.Errorf("this test knows %d StopCause constants, errors.go declares %d: update the table", len(values), len(goC))
	}
	maxValue := 0
	exitStatus := regexp.MustCompile(`exit status (\d)`)
	for g, c := range goC {
		h := hdr[c]
		maxValue = max(maxValue, h.value)
		if want := "Cause" + camel(strings.TrimPrefix(c, "SERVER_CAUSE_")); g != want {
			t.Errorf("C.%s is named %s, want %s", c, g, want)
		}
		v, ok := values[g]
		if !ok {
			t.Errorf("%s missing from this test's table", g)
			continue
		}
		if int(v) != h.value {
			t.Errorf("%s = %d, the header says %d", g, v, h.value)
		}
		if v.Forced() != strings.HasPrefix(c, "SERVER_CAUSE_FORCED_") {
			t.Errorf("%s.Forced() = %v", g, v.Forced())
		}
		if v == CauseNone {
			if st := v.ExitStatus(); st != -1 {
				t.Errorf("CauseNone.ExitStatus() = %d, want -1 (nothing stopped)", st)
			}
			continue
		}
		m := exitStatus.FindStringSubmatch(h.doc)
		if m == nil {
			t.Errorf("the header does not document the exit status of %s", c)
			continue
		}
		if want, _ := strconv.Atoi(m[1]); v.ExitStatus() != want {
			t.Errorf("%s.ExitStatus() = %d, the header documents %d", g, v.ExitStatus(), want)
		}
	}
	for _, v := range []StopCause{StopCause(maxValue + 1), -1, StopCause(math.MaxUint32 + 1)} {
		if st := v.ExitStatus(); st != -1 {
			t.Errorf("StopCause(%d).ExitStatus() = %d, want -1 (not a cause)", int(v), st)
		}
	}
}

// TestCodesMatchHeader: every server_result of the header has exactly one Code constant.
func TestCodesMatchHeader(t *testing.T) {
	pairs(t, "Code", goConsts(t, "Code"), headerEnum(t, "server_result"))
}
