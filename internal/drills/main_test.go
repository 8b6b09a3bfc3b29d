package drills

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// binEnv names a prebuilt epconsole binary to use instead of building one
// (CI builds it once for every phase).
const binEnv = "EPCONSOLE_BIN"

// TestMain lets this test binary serve as netlab's children (stand-ins,
// clients, connect loops) and builds the epconsole binary the LB hosts run.
// The tests do not call t.Parallel (netlab's Pdeathsig hazard, see
// internal/e2e).
func TestMain(m *testing.M) {
	netlab.RunChild()
	runGetChild() // status_test.go: an HTTP GET from inside a namespace
	flag.Parse()
	code := func() int {
		if os.Geteuid() != 0 || testing.Short() && !testenv.NetnsRequired() {
			return m.Run() // every test skips before it needs the binary
		}
		if p := os.Getenv(binEnv); p != "" {
			epconsoleBin = p
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "epconsole-drills-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "drills:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin, err := build(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "drills: building epconsole:", err)
			return 1
		}
		epconsoleBin = bin
		return m.Run()
	}()
	os.Exit(code)
}

// epconsoleBin is the binary the LB hosts run, set once by TestMain.
var epconsoleBin string

func build(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "epconsole")
	start := time.Now()
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/epconsole/epconsole/cmd/epconsole")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "drills: built %s in %s\n", bin, time.Since(start).Round(time.Millisecond))
	return bin, nil
}
