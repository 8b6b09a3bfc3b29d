package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestManPages: `epconsole man -o DIR` writes a page for every command
// (the hidden man itself aside), each naming all of its flags.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	code, out, errs := runCLI(t, "man", "-o", dir)
	if code != 0 || errs != "" || !strings.Contains(out, dir) {
		t.Fatalf("man -o: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	var walk func(c *cobra.Command)
	pages := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		pages++
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("no man page for %q: %v", c.CommandPath(), err)
			return
		}
		page := string(b)
		if !strings.HasPrefix(page, ".nh\n.TH \"EPCONSOLE\" \"1\"") || !strings.Contains(page, c.Short) {
			t.Errorf("%s: not a section 1 page with the command's summary:\n%s", name, page)
		}
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(page, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s does not document --%s", name, f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newCLI(&app{}))
	files, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if pages < 10 || len(files) != pages {
		t.Errorf("%d pages for %d commands: %v", len(files), pages, files)
	}
	if code, _, errs := runCLI(t, "man"); code != 2 || !strings.Contains(errs, "-o DIR") {
		t.Errorf("man without -o: exit %d, stderr %q", code, errs)
	}
	// Hidden: not in the root's help.
	if _, out, _ := runCLI(t, "-h"); strings.Contains(out, "\n  man ") {
		t.Errorf("the hidden man command is listed:\n%s", out)
	}
}

// TestCompletion: a script for each shell, naming the program and its
// commands; bash's parses (bash -n), and zsh's and fish's too when those
// shells are installed. Unknown shells are usage errors.
func TestCompletion(t *testing.T) {
	marks := map[string]string{
		"bash": "__start_epconsole",
		"zsh":  "#compdef epconsole",
		"fish": "complete -c epconsole",
	}
	for shell, mark := range marks {
		code, out, errs := runCLI(t, "completion", shell)
		if code != 0 || errs != "" || !strings.Contains(out, mark) || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d, stderr %q, want %q and __complete in:\n%.300s", shell, code, errs, mark, out)
			continue
		}
		bin, err := exec.LookPath(shell)
		if err != nil {
			if shell == "bash" {
				t.Fatalf("bash not found: %v", err)
			}
			t.Logf("%s not installed: its script is not parsed", shell)
			continue
		}
		p := filepath.Join(t.TempDir(), "epconsole."+shell)
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command(bin, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s -n rejects the %s completion: %v\n%s", shell, shell, err, msg)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		if code, out, errs := runCLI(t, args...); code != 2 || out != "" || !strings.Contains(errs, "bash, zsh or fish") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// cliChildEnv makes this test binary run `epconsole ARGS` (cliChild), so a
// shell can call it by the name epconsole.
const cliChildEnv = "EPCONSOLE_CLI_CHILD"

// cliChild runs epconsole with this process's arguments and exits, when
// cliChildEnv is set.
func cliChild() {
	if os.Getenv(cliChildEnv) == "" {
		return
	}
	os.Exit(Run(context.Background(), os.Args[1:], IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}

// TestFishCompletes: fish, with the script loaded and this test binary as
// epconsole on its PATH, completes commands, flags and backend names.
func TestFishCompletes(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("fish is not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "epconsole")); err != nil {
		t.Fatal(err)
	}
	_, script, _ := runCLI(t, "completion", "fish")
	p := filepath.Join(t.TempDir(), "epconsole.fish")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := checkHCL(t, t.TempDir(), "")
	for _, tc := range []struct{ line, want string }{
		{"epconsole st", "status\t"},
		{"epconsole drain --ti", "--timeout\t"},
		{"epconsole drain -c " + cfg + " c", "cp2"},
	} {
		cmd := exec.Command(fish, "--no-config", "-c", "source "+p+"; complete -C'"+tc.line+"'")
		cmd.Env = append(os.Environ(), cliChildEnv+"=1", "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("fish completes %q: %v, want %q in:\n%s", tc.line, err, tc.want, out)
		}
	}
}

// TestCompleteNames: the scripts' __complete request names the config's
// backends after drain and its peers after handoff.
func TestCompleteNames(t *testing.T) {
	cfg := checkHCL(t, t.TempDir(), "peer \"lb2\" {\n  address = \"198.18.3.32\"\n}\n")
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"drain", []string{"cp1", "cp2"}},
		{"undrain", []string{"cp1", "cp2"}},
		{"handoff", []string{"lb2"}},
	} {
		code, out, errs := runCLI(t, "__complete", tc.cmd, "-c", cfg, "")
		for _, w := range tc.want {
			if code != 0 || !strings.Contains(out, w+"\n") {
				t.Errorf("__complete %s: exit %d, stderr %q, want %q in:\n%s", tc.cmd, code, errs, w, out)
			}
		}
	}
}
