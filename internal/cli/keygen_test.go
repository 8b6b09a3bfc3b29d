package cli

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/epconsole/epconsole/internal/config"
)

// loadKeys loads testdata/config/good/minimal.hcl with gossip.key_file
// set to keyFile, through internal/config (the daemon's reader), and
// returns the keyring.
func loadKeys(t *testing.T, keyFile string) config.Keyring {
	t.Helper()
	src, err := os.ReadFile("../../testdata/config/good/minimal.hcl")
	if err != nil {
		t.Fatal(err)
	}
	hcl := strings.Replace(string(src), `key_file = "../gossip.key"`, `key_file = "`+keyFile+`"`, 1)
	if hcl == string(src) {
		t.Fatal("minimal.hcl has no key_file line to replace")
	}
	path := filepath.Join(t.TempDir(), "config.hcl")
	if err := os.WriteFile(path, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		t.Fatalf("the config reader rejects the key file: %v", diags)
	}
	return cfg.Gossip.Keys
}

func decodeKey(t *testing.T, line string) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		t.Fatalf("%q is not base64: %v", line, err)
	}
	if len(k) != gossipKeyBytes {
		t.Fatalf("key of %d bytes, want %d", len(k), gossipKeyBytes)
	}
	return k
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestKeygenStdout: without a flag keygen prints one line, a base64
// 32-byte key, and two runs make different keys.
func TestKeygenStdout(t *testing.T) {
	code, out1, errs := runCLI(t, "keygen")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if strings.Count(out1, "\n") != 1 || !strings.HasSuffix(out1, "\n") {
		t.Fatalf("output %q is not one line", out1)
	}
	k1 := decodeKey(t, strings.TrimSpace(out1))
	_, out2, _ := runCLI(t, "keygen")
	if k2 := decodeKey(t, strings.TrimSpace(out2)); bytes.Equal(k1, k2) {
		t.Error("two keygen runs made the same key")
	}
}

// TestKeygenOutput: -o writes a new file of mode 0600 that the config
// reader accepts as a one-key keyring, prints no key, and refuses to
// overwrite an existing file, saying what to do, leaving it unchanged.
func TestKeygenOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip.key")
	code, out, errs := runCLI(t, "keygen", "-o", path)
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q (want none: the key goes to the file), stderr %q", code, out, errs)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("mode %v, want 0600", m)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key := decodeKey(t, strings.TrimSuffix(string(b), "\n"))
	keys := loadKeys(t, path)
	if len(keys) != 1 || !bytes.Equal(keys[0], key) {
		t.Errorf("config reader read %d keys, want the one written", len(keys))
	}

	code, _, errs = runCLI(t, "keygen", "--output", path)
	if code != 1 {
		t.Errorf("keygen -o over an existing file: exit %d, want 1", code)
	}
	for _, want := range []string{path + " exists", "refusing to overwrite", "keygen --add " + path, "remove or rename it first"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q does not say %q", errs, want)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Error("the existing key file changed")
	}
}

// TestKeygenAdd: --add appends a new key as the last line of a key file
// with a comment, a primary and no final newline; the primary stays first,
// the mode becomes 0600, and the config reader reads both keys in order.
// --add on a missing file fails and says how to make one; -o with --add is
// a usage error.
func TestKeygenAdd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gossip.key")
	primary := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	if err := os.WriteFile(path, []byte("# cluster key\n"+primary), 0o640); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "keygen", "--add", path)
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("mode %v, want 0600", m)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "# cluster key" || lines[1] != primary {
		t.Fatalf("key file after --add:\n%s", b)
	}
	added := decodeKey(t, lines[2])
	keys := loadKeys(t, path)
	if len(keys) != 2 || base64.StdEncoding.EncodeToString(keys[0]) != primary || !bytes.Equal(keys[1], added) {
		t.Errorf("config reader read %d keys, want the primary then the added one", len(keys))
	}

	// A second --add goes after the first.
	if code, _, errs := runCLI(t, "keygen", "--add", path); code != 0 {
		t.Fatalf("second --add: exit %d, %s", code, errs)
	}
	if keys := loadKeys(t, path); len(keys) != 3 || !bytes.Equal(keys[1], added) {
		t.Errorf("after a second --add: %d keys, the first added one not second", len(keys))
	}

	missing := filepath.Join(dir, "none.key")
	code, _, errs = runCLI(t, "keygen", "--add", missing)
	if code != 1 || !strings.Contains(errs, "does not exist") || !strings.Contains(errs, "keygen -o "+missing) {
		t.Errorf("--add on a missing file: exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("--add created the missing file")
	}

	code, _, errs = runCLI(t, "keygen", "-o", filepath.Join(dir, "x.key"), "--add", path)
	if code != exitUsage || !strings.Contains(errs, "exclude each other") {
		t.Errorf("-o with --add: exit %d, stderr %q", code, errs)
	}
	code, _, _ = runCLI(t, "keygen", "stray")
	if code != exitUsage {
		t.Errorf("keygen stray: exit %d, want %d", code, exitUsage)
	}
}
