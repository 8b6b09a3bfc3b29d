package chaos

import (
	"os"
	"testing"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// epconsoleBin is the binary the lab's LBs run, set once by TestMain.
var epconsoleBin string

// TestMain lets this test binary serve as netlab's children (stand-ins,
// streams) and builds the epconsole binary the LBs run (or takes
// EPCONSOLE_BIN).
func TestMain(m *testing.M) {
	netlab.RunChild()
	os.Exit(testenv.MainWithBinary(m, &epconsoleBin))
}
