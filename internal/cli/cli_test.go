package cli

import (
	"encoding/json"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestMistypedCommand: a command that is not one exits 2, naming the
// closest commands when there are any.
func TestMistypedCommand(t *testing.T) {
	tests := []struct {
		arg     string
		suggest string // "" = no suggestion
	}{
		{"chek", "check"},
		{"valdate", "validate"},
		{"consol", "console"},
		{"deamon", "daemon"},
		{"versoin", "version"},
		{"frobnicate", ""},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, tc.arg, "-c", "x.hcl")
		if code != 2 || out != "" || !strings.Contains(errs, `unknown command "`+tc.arg+`"`) {
			t.Errorf("%s: exit %d (want 2)\nstdout %q\nstderr:\n%s", tc.arg, code, out, errs)
			continue
		}
		hint := "Did you mean this?\n\t" + tc.suggest + "\n"
		if got := strings.Contains(errs, "Did you mean this?"); got != (tc.suggest != "") || (got && !strings.Contains(errs, hint)) {
			t.Errorf("%s: want suggestion %q, stderr:\n%s", tc.arg, tc.suggest, errs)
		}
		if !strings.Contains(errs, "Run 'epconsole --help' for usage.") {
			t.Errorf("%s: no pointer to the help:\n%s", tc.arg, errs)
		}
	}
}

// TestUnknownFlag: an unknown flag is a usage error (2; check's is 3, the
// Nagios UNKNOWN) that names the flag, on stderr, with nothing on stdout.
func TestUnknownFlag(t *testing.T) {
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--nope"}, 2, "epconsole: flag provided but not defined: --nope\nRun 'epconsole --help' for usage.\n"},
		{[]string{"console", "--nope"}, 2, "epconsole console: flag provided but not defined: --nope\n"},
		{[]string{"validate", "--nope"}, 2, "epconsole validate: flag provided but not defined: --nope\nRun 'epconsole validate --help' for usage.\n"},
		{[]string{"daemon", "-x"}, 2, "epconsole daemon: flag provided but not defined: -x\n"},
		{[]string{"--daemon", "--json"}, 2, "epconsole daemon: flag provided but not defined: --json\n"},
		{[]string{"version", "--nope"}, 2, "epconsole version: flag provided but not defined: --nope\n"},
		{[]string{"check", "--nope"}, 3, "epconsole check: flag provided but not defined: --nope\nRun 'epconsole check --help' for usage.\n"},
		{[]string{"check", "--jsn"}, 3, "epconsole check: flag provided but not defined: --jsn (did you mean --json?)\nRun 'epconsole check --help' for usage.\n"},
		{[]string{"validate", "--ofline"}, 2, "epconsole validate: flag provided but not defined: --ofline (did you mean --offline?)\nRun 'epconsole validate --help' for usage.\n"},
		// Go's flag package took -json; pflag reads it as -j -s -o -n.
		{[]string{"check", "-json"}, 3, "flag provided but not defined: -j (in -json; did you mean --json?)\n"},
		{[]string{"console", "-socket", "s"}, 2, "(in -socket; did you mean --socket?)"},
		{[]string{"check", "--timeout"}, 3, "epconsole check: flag needs an argument: --timeout\n"},
		{[]string{"check", "--timeout", "soon"}, 3, `invalid argument "soon" for "--timeout" flag`},
		{[]string{"check", "--wait-for", "critical"}, 3, `invalid argument "critical" for "--wait-for" flag: want ok or warning`},
		{[]string{"daemon", "--log-level", "loud"}, 2, `invalid argument "loud" for "--log-level" flag: use debug, info, warn or error`},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: exit %d (want %d)\nstdout %q\nstderr %q\nwant in stderr %q", tc.args, code, tc.code, out, errs, tc.err)
		}
	}
}

// TestDaemonAlias: `epconsole --daemon` (how units, the lab and the drills
// start the agent) and `-daemon` are `epconsole daemon`.
func TestDaemonAlias(t *testing.T) {
	_, want, _ := runCLI(t, "daemon", "-h")
	for _, alias := range []string{"--daemon", "-daemon"} {
		code, out, errs := runCLI(t, alias, "-h")
		if code != 0 || out != want || errs != "" {
			t.Errorf("%s -h: exit %d, stderr %q, stdout:\n%s\nwant the daemon's help:\n%s", alias, code, errs, out, want)
		}
	}
	if code, _, errs := runCLI(t, "--daemon", "-c", "/nonexistent/epconsole/config.hcl", "--log-level", "debug", "--no-conn-sync"); code != 1 || !strings.Contains(errs, "Cannot read config file") {
		t.Errorf("--daemon with the drills' flags: exit %d (want 1, the config is missing), stderr:\n%s", code, errs)
	}
}

// TestVersion: --version, -v and `version` print the version, commit,
// build date and Go version; `version --json` the same as an object.
func TestVersion(t *testing.T) {
	want := readVersion()
	var text string
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "epconsole "+want.Version+"\n") {
			t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", args, code, errs, out)
		}
		for _, field := range []string{"commit ", "build date ", "go          " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
			if !strings.Contains(out, field) {
				t.Errorf("%q: no %q in:\n%s", args, field, out)
			}
		}
		if text == "" {
			text = out
		} else if out != text {
			t.Errorf("%q printed\n%s\nnot the same as\n%s", args, out, text)
		}
	}

	code, out, errs := runCLI(t, "version", "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); code != 0 || errs != "" || err != nil {
		t.Fatalf("version --json: exit %d, stderr %q, %v, stdout:\n%s", code, errs, err, out)
	}
	for _, k := range []string{"version", "commit", "modified", "build_date", "go_version", "platform"} {
		if _, ok := got[k]; !ok {
			t.Errorf("version --json has no %q: %s", k, out)
		}
	}
	if got["version"] != want.Version || got["go_version"] != runtime.Version() || got["platform"] != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version --json: %s", out)
	}
	if code, _, errs := runCLI(t, "version", "extra"); code != 2 || !strings.Contains(errs, `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d, stderr %q", code, errs)
	}
}

// TestResolveVersion: the -X values win; what they leave empty comes from
// the build's record.
func TestResolveVersion(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/epconsole/epconsole", Version: "v0.5.1-0.20261204150000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-12-04T15:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	devel := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/epconsole/epconsole", Version: "(devel)"}}
	tests := []struct {
		name string
		set  versionInfo
		bi   *debug.BuildInfo
		want versionInfo
	}{
		{"no record", versionInfo{}, nil, versionInfo{Version: "dev", GoVersion: runtime.Version()}},
		{"devel build", versionInfo{}, devel, versionInfo{Version: "dev", GoVersion: "go1.99.1"}},
		{"from vcs", versionInfo{}, vcs, versionInfo{Version: "v0.5.1-0.20261204150000-0123456789ab+dirty", Commit: "0123456789abcdef", Modified: true, BuildDate: "2026-12-04T15:00:00Z", GoVersion: "go1.99.1"}},
		{"-X wins", versionInfo{Version: "v1.0.0", Commit: "fedcba", BuildDate: "2026-12-05T00:00:00Z"}, vcs,
			versionInfo{Version: "v1.0.0", Commit: "fedcba", BuildDate: "2026-12-05T00:00:00Z", GoVersion: "go1.99.1"}},
		{"-X version only", versionInfo{Version: "v1.0.0"}, vcs, versionInfo{Version: "v1.0.0", Commit: "0123456789abcdef", Modified: true, BuildDate: "2026-12-04T15:00:00Z", GoVersion: "go1.99.1"}},
	}
	for _, tc := range tests {
		tc.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
		if got := resolveVersion(tc.set, tc.bi); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestMovedLab: `epconsole lab ...` says where the demo went, whatever
// followed it, and exits 2.
func TestMovedLab(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lab"}, "\n  go run ./cmd/epconsole-lab\n"},
		{[]string{"lab", "down"}, "\n  go run ./cmd/epconsole-lab down\n"},
		{[]string{"lab", "--peers", "5", "-h"}, "\n  go run ./cmd/epconsole-lab --peers 5 -h\n"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q, want in stderr %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// TestHelp: every command's -h prints its usage to stdout, exit 0, and
// the usage lines name every flag the command declares; the root's help
// lists every command.
func TestHelp(t *testing.T) {
	a := &app{}
	root := newCLI(a)
	cmds := append([]*cobra.Command{root}, root.Commands()...)
	for _, c := range cmds {
		if c.DisableFlagParsing {
			continue // lab: only the pointer to its binary
		}
		args := []string{c.Name(), "-h"}
		if c == root {
			args = []string{"-h"}
		}
		code, out, errs := runCLI(t, args...)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: ") {
			t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", args, code, errs, out)
			continue
		}
		synopsis := out[:strings.Index(out, "\n\n")]
		i := strings.Index(out, "\nflags:\n")
		if i < 0 {
			t.Errorf("%q: no flags:\n%s", args, out)
			continue
		}
		flags := out[i:]
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			spelling := "--" + f.Name
			if f.Shorthand != "" {
				spelling += "|-" + f.Shorthand
			}
			if !regexp.MustCompile(`[\[ ](` + spelling + `)\b`).MatchString(synopsis) {
				t.Errorf("%q: the usage lines do not name --%s:\n%s", args, f.Name, synopsis)
			}
			if !strings.Contains(flags, "--"+f.Name+" ") {
				t.Errorf("%q: --%s is not in the flags:\n%s", args, f.Name, flags)
			}
		})
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		_, out, _ := runCLI(t, args...)
		for _, c := range root.Commands() {
			if c.IsAvailableCommand() && !regexp.MustCompile(`(?m)^  `+c.Name()+` +`+regexp.QuoteMeta(c.Short)+`$`).MatchString(out) {
				t.Errorf("%q does not list %s:\n%s", args, c.Name(), out)
			}
		}
	}
}
