package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs epconsole with args and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// TestValidateBadFiles: for every file in testdata/config/bad, validate
// exits 1 and prints exactly the expected diagnostic lines, each followed by
// a source snippet, then a count.
func TestValidateBadFiles(t *testing.T) {
	t.Chdir("../..")
	files, _ := filepath.Glob("testdata/config/bad/*.hcl")
	if len(files) < 15 {
		t.Fatalf("only %d bad files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".hcl") + ".want")
			if err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "validate", "-c", f)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if errOut != "" {
				t.Errorf("stderr: %s", errOut)
			}
			outLines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			// Diagnostic lines start with the file name; snippet lines are
			// indented; the last line is the count.
			var diagLines []string
			for i, l := range outLines[:len(outLines)-1] {
				if strings.HasPrefix(l, f+":") {
					diagLines = append(diagLines, l)
					if i+1 >= len(outLines)-1 || !strings.HasPrefix(outLines[i+1], "  ") || !strings.Contains(outLines[i+1], " | ") {
						t.Errorf("diagnostic %q is not followed by a source snippet", l)
					}
				} else if !strings.HasPrefix(l, "  ") {
					t.Errorf("unexpected output line %q", l)
				}
			}
			if got := strings.Join(diagLines, "\n") + "\n"; got != string(want) {
				t.Errorf("validate -c %s printed:\n%s\nwant:\n%s", f, got, want)
			}
			if last, wantLast := outLines[len(outLines)-1], f+": "+plural(len(diagLines), "problem"); last != wantLast {
				t.Errorf("last line %q, want %q", last, wantLast)
			}
		})
	}
}

func TestValidateGoodFiles(t *testing.T) {
	t.Chdir("../..")
	tests := []struct{ file, want string }{
		{"testdata/config/good/minimal.hcl", "OK: testdata/config/good/minimal.hcl: cluster minimal, 1 VIP, 1 backend, 0 peers\n"},
		{"testdata/config/good/dualstack.hcl", "OK: testdata/config/good/dualstack.hcl: cluster dual, 2 VIPs, 3 backends, 2 peers\n"},
		{"testdata/config/good/ipv6.hcl", "OK: testdata/config/good/ipv6.hcl: cluster v6-cp, 1 VIP, 2 backends, 1 peer\n"},
		{"testdata/config/good/files.hcl", "OK: testdata/config/good/files.hcl: cluster files, 1 VIP, 1 backend, 0 peers\n"},
	}
	for _, tc := range tests {
		code, out, errOut := runCLI(t, "validate", "-c", tc.file)
		if code != 0 || out != tc.want || errOut != "" {
			t.Errorf("validate -c %s: exit %d\nstdout %q\nstderr %q\nwant exit 0, stdout %q", tc.file, code, out, errOut, tc.want)
		}
	}
}

func TestValidateDefaultPath(t *testing.T) {
	key, err := filepath.Abs("../../testdata/config/gossip.key")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../../testdata/config/good/minimal.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	// No ./config.hcl: the system path is checked.
	code, out, _ := runCLI(t, "validate")
	if !strings.Contains(out, systemConfig) {
		t.Errorf("without ./config.hcl: exit %d, output %q does not name %s", code, out, systemConfig)
	}
	// With ./config.hcl: that file.
	cfg := strings.Replace(string(src), `"../gossip.key"`, `"`+key+`"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "config.hcl"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "validate")
	if want := "OK: config.hcl: cluster minimal, 1 VIP, 1 backend, 0 peers\n"; code != 0 || out != want {
		t.Errorf("with ./config.hcl: exit %d stdout %q stderr %q, want 0 %q", code, out, errOut, want)
	}
}

func TestValidateUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		out, err string // substrings; "" = must be empty
	}{
		{[]string{"validate", "-h"}, 0, "usage: epconsole validate [-c config.hcl]", ""},
		{[]string{"validate", "--help"}, 0, "usage: epconsole validate", ""},
		{[]string{"validate", "-x"}, 2, "", "flag provided but not defined: -x"},
		{[]string{"validate", "extra.hcl"}, 2, "", `unexpected argument "extra.hcl"`},
		{[]string{"validate", "-c", "/nonexistent/epconsole.hcl"}, 1, "/nonexistent/epconsole.hcl:1:1: Cannot read config file; /nonexistent/epconsole.hcl: no such file or directory.", ""},
	}
	for _, tc := range tests {
		code, out, errOut := runCLI(t, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		for _, c := range []struct{ got, want, name string }{{out, tc.out, "stdout"}, {errOut, tc.err, "stderr"}} {
			if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
				t.Errorf("%v: %s %q, want it to contain %q", tc.args, c.name, c.got, c.want)
			}
		}
	}
}
