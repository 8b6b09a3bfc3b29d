package packaging

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// built are the packages scripts/package made for this test.
type built struct {
	deb, rpm string
	// completions: the binary has `epconsole completion` (packaged then).
	completions bool
}

// buildPackages runs scripts/package for the host's architecture into a
// temporary directory (the binary built by scripts/release).
func buildPackages(t *testing.T) built {
	t.Helper()
	dist := t.TempDir()
	cmd := exec.Command("scripts/package")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "ARCHES="+runtime.GOARCH, "DIST="+dist, "VERSION=v0.0.0-7-gpkgtest", "SOURCE_DATE_EPOCH=1767225600")
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package: %v\n%s", err, out)
	}
	t.Logf("scripts/package took %s:\n%s", time.Since(t0).Round(time.Millisecond), out)
	var b built
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("scripts/package made %v and %v, want one .deb and one .rpm", debs, rpms)
	}
	b.deb, b.rpm = debs[0], rpms[0]
	b.completions = strings.Contains(string(out), "shell completions from")
	return b
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPackages builds the .deb and .rpm once and checks their contents,
// metadata and maintainer scripts, and lintian's verdict.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the packages")
	}
	dpkgDeb := need(t, "dpkg-deb", "dpkg")
	b := buildPackages(t)

	t.Run("deb contents", func(t *testing.T) {
		list := run(t, dpkgDeb, "-c", b.deb)
		files := map[string]string{} // path -> mode and owner
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 {
				t.Fatalf("dpkg-deb -c line %q", line)
			}
			files[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
		}
		want := map[string]string{
			"/usr/bin/epconsole":                            "-rwxr-xr-x root/root",
			"/lib/systemd/system/epconsole.service":         "-rw-r--r-- root/root",
			"/usr/share/doc/epconsole/examples/config.hcl":  "-rw-r--r-- root/root",
			"/usr/share/doc/epconsole/copyright":            "-rw-r--r-- root/root",
			"/usr/share/doc/epconsole/THIRD_PARTY_LICENSES": "-rw-r--r-- root/root",
			"/usr/share/doc/epconsole/README.md":            "-rw-r--r-- root/root",
			"/usr/share/doc/epconsole/install.md":           "-rw-r--r-- root/root",
			"/usr/share/doc/epconsole/changelog.gz":         "-rw-r--r-- root/root",
		}
		for p, mode := range want {
			if got, ok := files[p]; !ok {
				t.Errorf("%s not in the .deb", p)
			} else if got != mode {
				t.Errorf("%s: %s, want %s", p, got, mode)
			}
		}
		for p := range files {
			if strings.HasPrefix(p, "/etc/") {
				t.Errorf("the .deb ships %s: an operator's /etc/epconsole must never be written by the package", p)
			}
		}
		comp := "/usr/share/bash-completion/completions/epconsole"
		if _, ok := files[comp]; ok != b.completions {
			t.Errorf("%s packaged: %v, but the binary has `epconsole completion`: %v", comp, ok, b.completions)
		}

		// The packaged unit is packaging/systemd/epconsole.service, and the
		// packaged binary says the version it was built as.
		root := t.TempDir()
		run(t, dpkgDeb, "-x", b.deb, root)
		unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/epconsole.service"))
		src, _ := os.ReadFile(unitPath)
		if !bytes.Equal(unit, src) {
			t.Error("the packaged unit differs from packaging/systemd/epconsole.service")
		}
		var v struct{ Version string }
		if err := json.Unmarshal([]byte(run(t, filepath.Join(root, "usr/bin/epconsole"), "version", "--json")), &v); err != nil || v.Version != "v0.0.0-7-gpkgtest" {
			t.Errorf("packaged epconsole version --json: %+v, %v; want v0.0.0-7-gpkgtest", v, err)
		}
		cfg, _ := os.ReadFile(filepath.Join(root, "usr/share/doc/epconsole/examples/config.hcl"))
		if want, _ := os.ReadFile("../config.hcl"); !bytes.Equal(cfg, want) {
			t.Error("examples/config.hcl differs from the sample config.hcl")
		}
	})

	t.Run("deb control", func(t *testing.T) {
		info := run(t, dpkgDeb, "-I", b.deb)
		for _, want := range []string{"Package: epconsole", "Version: 0.0.0+7.gpkgtest", "Architecture: " + runtime.GOARCH, "postinst", "prerm", "postrm"} {
			if !strings.Contains(info, want) {
				t.Errorf("dpkg-deb -I: no %q in\n%s", want, info)
			}
		}
		dir := t.TempDir()
		run(t, dpkgDeb, "-e", b.deb, dir)
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			got, err := os.ReadFile(filepath.Join(dir, s))
			if err != nil {
				t.Fatal(err)
			}
			if src, _ := os.ReadFile(filepath.Join("scripts", s)); !bytes.Equal(got, src) {
				t.Errorf("the .deb's %s differs from packaging/scripts/%s", s, s)
			}
		}
	})

	t.Run("lintian", func(t *testing.T) {
		lintian := need(t, "lintian", "lintian")
		out, _ := exec.Command(lintian, "--show-overrides", b.deb).CombinedOutput()
		t.Logf("lintian %s:\n%s", filepath.Base(b.deb), out)
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "E: ") {
				t.Errorf("lintian error: %s", line)
			}
		}
	})

	t.Run("rpm", func(t *testing.T) {
		rpm := need(t, "rpm", "rpm")
		list := strings.Fields(run(t, rpm, "-qpl", b.rpm))
		for _, want := range []string{"/usr/bin/epconsole", "/usr/lib/systemd/system/epconsole.service",
			"/usr/share/doc/epconsole/examples/config.hcl", "/usr/share/licenses/epconsole/LICENSE",
			"/usr/share/licenses/epconsole/THIRD_PARTY_LICENSES"} {
			if !slices.Contains(list, want) {
				t.Errorf("rpm -qpl: no %s in %v", want, list)
			}
		}
		for _, p := range list {
			if strings.HasPrefix(p, "/etc/") || p == "/lib" || strings.HasPrefix(p, "/lib/") || strings.HasPrefix(p, "/usr/share/lintian") {
				t.Errorf("the .rpm ships %s", p)
			}
		}
		info := run(t, rpm, "-qpi", b.rpm)
		for _, want := range []string{"Name        : epconsole", "License     : Apache-2.0"} {
			if !strings.Contains(info, want) {
				t.Errorf("rpm -qpi: no %q in\n%s", want, info)
			}
		}
		scripts := run(t, rpm, "-qp", "--scripts", b.rpm)
		for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "useradd --system", "uninstall --force"} {
			if !strings.Contains(scripts, want) {
				t.Errorf("rpm --scripts: no %q", want)
			}
		}
	})
}

// TestPackageVersion: the package version scripts/package derives from
// git describe starts with a digit and sorts after the tag it follows.
func TestPackageVersion(t *testing.T) {
	for _, c := range []struct{ git, want string }{
		{"v1.2.0", "1.2.0"},
		{"v1.2.0-3-gabc1234", "1.2.0+3.gabc1234"},
		{"v1.2.0-3-gabc1234-dirty", "1.2.0+3.gabc1234.dirty"},
		{"abc1234", "0.0.0+git.abc1234"},
		{"4fc6d49", "0.0.0+git.4fc6d49"}, // a commit that starts with a digit is no version
		{"4fc6d49-dirty", "0.0.0+git.4fc6d49.dirty"},
	} {
		cmd := exec.Command("scripts/package", "--print-version")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "VERSION="+c.git, "DIST="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("VERSION=%s scripts/package --print-version: %v", c.git, err)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("VERSION=%s: package version %q, want %q", c.git, got, c.want)
		}
	}
}
