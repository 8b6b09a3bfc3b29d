package drills

import (
	"os"
	"testing"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestMain lets this test binary serve as netlab's children (stand-ins,
// clients, connect loops) and builds the epconsole binary the LB hosts run
// (or takes EPCONSOLE_BIN). The tests do not call t.Parallel (netlab's
// Pdeathsig hazard, see internal/e2e).
func TestMain(m *testing.M) {
	netlab.RunChild()
	runGetChild()  // status_test.go: an HTTP GET from inside a namespace
	runHeldChild() // syncscale_child_test.go: flows held through the VIP
	os.Exit(testenv.MainWithBinary(m, &epconsoleBin))
}

// epconsoleBin is the binary the LB hosts run, set once by TestMain.
var epconsoleBin string
