package scripts

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const cliPkg = "github.com/epconsole/epconsole/internal/cli"

// TestReleaseBinaryStatic builds epconsole the way scripts/release does
// (CGO_ENABLED=0, -trimpath, the version by -X) and checks that the binary
// has no ELF interpreter (it runs on any Linux without a libc) and that
// `epconsole version --json` prints the injected version, commit and date.
func TestReleaseBinaryStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "epconsole")
	const version, commit, date = "v0.0.0-releasetest", "0123456789abcdef", "2026-01-02T03:04:05Z"
	ldflags := "-s -w -X " + cliPkg + ".Version=" + version + " -X " + cliPkg + ".Commit=" + commit + " -X " + cliPkg + ".BuildDate=" + date
	build := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/epconsole")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a PT_INTERP program header: dynamically linked", bin)
		}
	}
	if f.Section(".dynamic") != nil {
		t.Errorf("%s has a .dynamic section: dynamically linked", bin)
	}

	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("epconsole version --json: %v", err)
	}
	var v struct {
		Version   string `json:"version"`
		Commit    string `json:"commit"`
		BuildDate string `json:"build_date"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("version --json printed %q: %v", out, err)
	}
	if v.Version != version || v.Commit != commit || v.BuildDate != date {
		t.Errorf("version --json = %+v, want version %s, commit %s, build date %s", v, version, commit, date)
	}
}

// TestReleaseScriptSyntax: scripts/release, scripts/third-party-licenses and scripts/package
// parse as bash and are executable.
func TestReleaseScriptSyntax(t *testing.T) {
	for _, s := range []string{"release", "third-party-licenses", "package"} {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable (mode %v)", s, fi.Mode())
		}
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
}

// TestReleaseScript runs scripts/release for linux/amd64 into a temporary
// directory: it names the binary by the version, checks it (static, says
// its version) and writes a SHA256SUMS line that matches it.
func TestReleaseScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dist := t.TempDir()
	const version = "v0.0.0-scripttest"
	cmd := exec.Command("./release")
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION="+version, "PLATFORMS=linux/amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/release: %v\n%s", err, out)
	}
	name := "epconsole-" + version + "-linux-amd64"
	bin, err := os.ReadFile(filepath.Join(dist, name))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x  %s\n", sha256.Sum256(bin), name)
	if string(sums) != want {
		t.Errorf("SHA256SUMS:\n%s\nwant:\n%s", sums, want)
	}
}
