package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stubs puts recording stand-ins for the commands the maintainer scripts
// call first on PATH: each appends its name and arguments to the log.
// getent answers "missing" unless known is true.
func stubs(t *testing.T, known bool) (env []string, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "calls.log")
	getent := 2
	if known {
		getent = 0
	}
	for _, c := range []string{"getent", "groupadd", "useradd", "install", "systemctl", "epconsole"} {
		code := 0
		if c == "getent" {
			code = getent
		}
		body := "#!/bin/sh\necho \"" + c + " $*\" >> " + log + "\nexit " + string(rune('0'+code)) + "\n"
		if err := os.WriteFile(filepath.Join(dir, c), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return append(os.Environ(), "PATH="+dir+":/usr/sbin:/usr/bin:/sbin:/bin"), log
}

func runScript(t *testing.T, env []string, log, script string, args ...string) (calls []string, output string) {
	t.Helper()
	os.Remove(log)
	cmd := exec.Command("sh", append([]string{filepath.Join("scripts", script)}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh %s %v: %v\n%s", script, args, err, out)
	}
	b, _ := os.ReadFile(log)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	return calls, string(out)
}

func anyHas(calls []string, prefix string) bool {
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

// TestMaintainerScripts runs the scripts with recording stand-ins for
// getent, groupadd, useradd, install, systemctl and epconsole: postinst
// creates the system user and group only when missing, in both the .deb
// ("configure") and .rpm ("1") conventions; nothing runs on the calls that
// are not theirs (prerm on an upgrade).
func TestMaintainerScripts(t *testing.T) {
	env, log := stubs(t, false)
	for _, arg := range []string{"configure", "1"} {
		calls, _ := runScript(t, env, log, "postinst", arg)
		if !anyHas(calls, "groupadd --system epconsole") || !anyHas(calls, "useradd --system --gid epconsole") {
			t.Errorf("postinst %s with no epconsole user: calls %q, want groupadd and useradd --system", arg, calls)
		}
	}
	envKnown, logKnown := stubs(t, true)
	calls, _ := runScript(t, envKnown, logKnown, "postinst", "configure")
	if anyHas(calls, "groupadd") || anyHas(calls, "useradd") {
		t.Errorf("postinst with the user present: calls %q, want no groupadd/useradd", calls)
	}
	if calls, _ := runScript(t, env, log, "postinst", "abort-upgrade"); len(calls) != 0 {
		t.Errorf("postinst abort-upgrade: calls %q, want none", calls)
	}
	for _, arg := range []string{"upgrade", "1"} {
		if calls, _ := runScript(t, env, log, "prerm", arg); len(calls) != 0 {
			t.Errorf("prerm %s (an upgrade): calls %q, want none", arg, calls)
		}
	}
	calls, out := runScript(t, env, log, "prerm", "remove")
	if _, err := os.Stat("/etc/epconsole/config.hcl"); err == nil {
		if !anyHas(calls, "epconsole uninstall --force -c /etc/epconsole/config.hcl") {
			t.Errorf("prerm remove: calls %q, want epconsole uninstall --force", calls)
		}
	} else if !strings.Contains(out, "nothing the daemon could have put in the kernel") {
		t.Errorf("prerm remove without a config: output %q", out)
	}
}

// TestMaintainerScriptsText: the scripts never start or enable the
// service and never make a key; prerm stops and disables it and runs
// uninstall on removal; postrm removes the state directory on purge only.
func TestMaintainerScriptsText(t *testing.T) {
	// read is a script without its comment lines.
	read := func(s string) string {
		b, err := os.ReadFile(filepath.Join("scripts", s))
		if err != nil {
			t.Fatal(err)
		}
		var code []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "#") {
				code = append(code, l)
			}
		}
		return strings.Join(code, "\n")
	}
	all := read("postinst") + read("prerm") + read("postrm")
	for _, bad := range []string{"systemctl start", "systemctl enable", "systemctl restart", "keygen"} {
		if strings.Contains(all, bad) {
			t.Errorf("a maintainer script has %q", bad)
		}
	}
	if p := read("prerm"); !strings.Contains(p, "systemctl disable --now epconsole.service") || !strings.Contains(p, "epconsole uninstall --force") {
		t.Error("prerm does not stop the service and run epconsole uninstall --force")
	}
	post := read("postrm")
	i := strings.Index(post, "purge)")
	j := strings.Index(post, "rm -rf /var/lib/epconsole")
	if i < 0 || j < i || strings.Count(post, "rm -rf") != 1 {
		t.Error("postrm: rm -rf /var/lib/epconsole must run under purge) only")
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		fi, err := os.Stat(filepath.Join("scripts", s))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("scripts/%s is not executable", s)
		}
		if out, err := exec.Command("sh", "-n", filepath.Join("scripts", s)).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
	}
}
