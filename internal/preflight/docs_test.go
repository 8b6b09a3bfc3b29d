package preflight

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDocsListEveryCode keeps docs/preflight.md complete: every Code*
// constant of judge.go appears there as `code`.
func TestDocsListEveryCode(t *testing.T) {
	doc, err := os.ReadFile("../../docs/preflight.md")
	if err != nil {
		t.Fatal(err)
	}
	file, err := parser.ParseFile(token.NewFileSet(), "judge.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					continue
				}
				code, _ := strconv.Unquote(lit.Value)
				n++
				if !strings.Contains(string(doc), "`"+code+"`") {
					t.Errorf("docs/preflight.md does not list %s (`%s`)", name.Name, code)
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d codes in judge.go", n)
	}
}
