package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// FuzzParse: Parse never panics, whatever the source, and keeps its
// contract: a config only without errors, every diagnostic with a subject,
// and the diagnostics printable. Seeded with the sample and every test file.
//
//	go test -fuzz=FuzzParse ./internal/config
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(repoRoot, "testdata/config/*/*.hcl"))
	seeds = append(seeds, filepath.Join(repoRoot, "config.hcl"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	key, err := os.ReadFile(filepath.Join(repoRoot, "testdata/config/gossip.key"))
	if err != nil {
		f.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(repoRoot, "testdata/config/ca.crt"))
	if err != nil {
		f.Fatal(err)
	}
	// No file system access: keys resolve to the test key, certificates to
	// the test CA, anything else does not exist.
	read := WithReadFile(func(p string) ([]byte, error) {
		switch {
		case strings.HasSuffix(p, ".key"):
			return key, nil
		case strings.HasSuffix(p, ".crt"):
			return ca, nil
		}
		return nil, errors.New("no such file")
	})
	f.Fuzz(func(t *testing.T, src []byte) {
		const name = "/fuzz/config.hcl"
		c, diags := Parse(src, name, read)
		if c == nil && !diags.HasErrors() {
			t.Fatal("no config and no error")
		}
		if c != nil && diags.HasErrors() {
			t.Fatal("config returned with errors")
		}
		for _, d := range diags {
			if d.Subject == nil {
				t.Fatalf("diagnostic without subject: %v", d)
			}
			if d.Severity == hcl.DiagError && d.Summary == "" {
				t.Fatalf("error without summary: %v", d)
			}
		}
		if err := WriteDiagnostics(io.Discard, diags, map[string][]byte{name: src}); err != nil {
			t.Fatal(err)
		}
		if c != nil {
			_ = c.Digest()
		}
	})
}
