package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeKeyConfig writes base and a valid gossip key of the given mode into
// a fresh directory and returns the config's path and the key's path.
func writeKeyConfig(t *testing.T, mode os.FileMode) (cfgPath, keyPath string) {
	t.Helper()
	dir := t.TempDir()
	keyPath = filepath.Join(dir, "k")
	if err := os.WriteFile(keyPath, []byte(mustRead(t, "testdata/config/gossip.key")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyPath, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(cfgPath, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, keyPath
}

// TestGossipKeyMode: a gossip key file that group or others may read or
// write is refused, as ssh refuses such a private key, and the error gives
// the exact chmod that fixes it. 0600 and 0400 are fine.
func TestGossipKeyMode(t *testing.T) {
	tests := []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o602, false},
		{0o660, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			cfgPath, keyPath := writeKeyConfig(t, tc.mode)
			c, diags := Load(cfgPath)
			if tc.ok {
				if len(diags) > 0 || c == nil {
					t.Fatalf("mode %04o refused:\n%s", tc.mode, strings.Join(lines(diags), "\n"))
				}
				return
			}
			if c != nil || len(diags) != 1 {
				t.Fatalf("mode %04o: config %v, diagnostics:\n%s\nwant exactly one error", tc.mode, c != nil, strings.Join(lines(diags), "\n"))
			}
			d := diags[0]
			if want := fmt.Sprintf("chmod 600 %s", keyPath); !strings.Contains(d.Detail, want) {
				t.Errorf("detail %q does not give the fix %q", d.Detail, want)
			}
			if want := fmt.Sprintf("%04o", tc.mode); !strings.Contains(d.Detail, want) {
				t.Errorf("detail %q does not name the mode %s", d.Detail, want)
			}
			if d.Subject.Start.Line != 13 { // key_file = "k"
				t.Errorf("error on line %d, want 13 (key_file)", d.Subject.Start.Line)
			}
		})
	}
}
