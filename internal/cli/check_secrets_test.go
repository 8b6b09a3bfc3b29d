package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/epconsole/epconsole/probes/probetest"
)

// TestCheckNeedsNoGossipKey: check never opens the gossip key (a monitoring
// user cannot read a key of mode 0600, and must not need to), so a config
// whose key file does not exist, or is open to others, still gets checked:
// no UNKNOWN "cannot use config".
func TestCheckNeedsNoGossipKey(t *testing.T) {
	f := probetest.NewFixture(t)
	cfgPath := checkHCL(t, f.Dir, fmt.Sprintf("tls {\n  ca_file = %q\n}\n", f.CAFile))
	src, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	kube := f.Kubeconfig(t, "../../testdata/kubeconfig/vip.yaml")
	lax := filepath.Join(f.Dir, "lax.key")
	if err := os.WriteFile(lax, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lax, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, keyFile string }{
		{"absent", filepath.Join(f.Dir, "no-such-dir", "gossip.key")},
		{"mode 0644", lax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(f.Dir, "nokey.hcl")
			s := strings.Replace(string(src), `key_file = "gossip.key"`, fmt.Sprintf("key_file = %q", tc.keyFile), 1)
			if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "check", "kubeconfig", "-c", p, "--kubeconfig", kube)
			if code != 0 || strings.Contains(out, "config-unreadable") || strings.Contains(out, "gossip key") {
				t.Errorf("check with key_file %s: exit %d, want 0 (OK)\n%s%s", tc.keyFile, code, out, errOut)
			}
		})
	}
}
