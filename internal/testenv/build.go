package testenv

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// The binaries kernel tests run, and the environment variables naming a
// prebuilt one (CI builds each once for every package).
const (
	// BinEnv names a prebuilt cmd/epconsole (the LB daemon).
	BinEnv = "EPCONSOLE_BIN"
	// LabBinEnv names a prebuilt cmd/epconsole-lab (the demo).
	LabBinEnv = "EPCONSOLE_LAB_BIN"

	epconsolePkg = "github.com/epconsole/epconsole/cmd/epconsole"
	labPkg       = "github.com/epconsole/epconsole/cmd/epconsole-lab"
)

// Binary returns the epconsole binary for t: $EPCONSOLE_BIN, or
// ./cmd/epconsole built into t's temporary directory.
func Binary(t testing.TB) string {
	t.Helper()
	return binaryFor(t, BinEnv, epconsolePkg, "epconsole")
}

// LabBinary returns the demo binary for t: $EPCONSOLE_LAB_BIN, or
// ./cmd/epconsole-lab built into t's temporary directory.
func LabBinary(t testing.TB) string {
	t.Helper()
	return binaryFor(t, LabBinEnv, labPkg, "epconsole-lab")
}

func binaryFor(t testing.TB, env, pkg, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	bin, err := build(pkg, filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// MainWithBinary is a TestMain body for packages whose kernel tests run
// the epconsole binary: it parses the test flags, sets *bin to
// $EPCONSOLE_BIN or to ./cmd/epconsole built once into a temporary
// directory (removed afterwards), runs the tests and returns their exit
// code. Without root, or under -short unless netns tests are required,
// every such test skips, so nothing is built.
func MainWithBinary(m *testing.M, bin *string) int {
	flag.Parse()
	if os.Geteuid() != 0 || testing.Short() && !NetnsRequired() {
		return m.Run()
	}
	if p := os.Getenv(BinEnv); p != "" {
		*bin = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "epconsole-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	p, err := build(epconsolePkg, filepath.Join(dir, "epconsole"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	*bin = p
	return m.Run()
}

// build runs `go build -o out pkg`, its output on stderr.
func build(pkg, out string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	start := time.Now()
	cmd := exec.Command(goTool, "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	fmt.Fprintf(os.Stderr, "testenv: built %s in %s\n", out, time.Since(start).Round(time.Millisecond))
	return out, nil
}
