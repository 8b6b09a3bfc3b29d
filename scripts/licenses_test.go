package scripts

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestThirdPartyLicensesCurrent: every module linked into the epconsole
// binary (go list -deps ./cmd/epconsole, our own module left out) has a
// section in THIRD_PARTY_LICENSES at the version built in, no section
// names a module the binary no longer links, and every section holds
// licence text. Run scripts/third-party-licenses after a
// dependency change.
func TestThirdPartyLicensesCurrent(t *testing.T) {
	checkLicenses(t, filepath.Join("..", "THIRD_PARTY_LICENSES"))
}

// TestThirdPartyLicensesScript runs scripts/third-party-licenses into a
// temporary file (it fails on a module without a licence file) and checks
// what it wrote the same way.
func TestThirdPartyLicensesScript(t *testing.T) {
	out := filepath.Join(t.TempDir(), "THIRD_PARTY_LICENSES")
	cmd := exec.Command("./third-party-licenses")
	cmd.Env = append(os.Environ(), "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/third-party-licenses: %v\n%s", err, b)
	}
	checkLicenses(t, out)
}

// checkLicenses checks the licence file at path against go list -deps.
func checkLicenses(t *testing.T, path string) {
	t.Helper()
	list := exec.Command("go", "list", "-deps", "-f",
		`{{with .Module}}{{if .Replace}}{{.Path}} {{.Replace.Version}}{{else}}{{.Path}} {{.Version}}{{end}}{{end}}`, "./cmd/epconsole")
	list.Dir = ".."
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	self, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}

	sections := readSections(t, path)
	want := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.Fields(line)[0] == strings.TrimSpace(string(self)) {
			continue
		}
		want[line] = true
	}
	if len(want) < 10 {
		t.Fatalf("go list -deps named only %d modules: %q", len(want), out)
	}
	for m := range want {
		if _, ok := sections[m]; !ok {
			t.Errorf("%s has no section for %s: run scripts/third-party-licenses", path, m)
		}
	}
	for m, text := range sections {
		if !want[m] && !strings.HasPrefix(m, "Go standard library ") {
			t.Errorf("%s has a section for %s, which the binary does not link: run scripts/third-party-licenses", path, m)
		}
		if !strings.Contains(text, "--- ") || len(strings.TrimSpace(text)) < 100 {
			t.Errorf("the section for %s holds no licence text", m)
		}
	}
}

// readSections maps each "Module: PATH VERSION" header of the file to the
// text up to the next header.
func readSections(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sections := map[string]string{}
	var cur string
	var b strings.Builder
	flush := func() {
		if cur != "" {
			sections[cur] = b.String()
		}
		b.Reset()
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Module: "); ok {
			flush()
			cur = m
			continue
		}
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return sections
}
