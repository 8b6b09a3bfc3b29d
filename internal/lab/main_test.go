package lab

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// binEnv names a prebuilt epconsole binary (CI builds it once).
const binEnv = "EPCONSOLE_BIN"

// epconsoleBin is the binary the lab's LBs run, set once by TestMain.
var epconsoleBin string

// TestMain lets this test binary serve as netlab's children (stand-ins,
// the client) and builds the epconsole binary the LBs run, as the drills do.
func TestMain(m *testing.M) {
	netlab.RunChild()
	flag.Parse()
	code := func() int {
		if os.Geteuid() != 0 || testing.Short() && !testenv.NetnsRequired() {
			return m.Run()
		}
		if p := os.Getenv(binEnv); p != "" {
			epconsoleBin = p
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "epconsole-lab-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		epconsoleBin = filepath.Join(dir, "epconsole")
		cmd := exec.Command(goTool, "build", "-o", epconsoleBin, "github.com/epconsole/epconsole/cmd/epconsole")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "lab: building epconsole:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}
