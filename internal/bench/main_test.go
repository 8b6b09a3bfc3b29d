package bench

import (
	"flag"
	"os"
	"testing"

	"github.com/epconsole/epconsole/internal/netlab"
)

// TestMain lets this test binary serve as netlab's children (stand-ins and
// the client's connect loop). Nothing here runs in parallel: netlab's
// children must not overlap a lab being built (see internal/e2e). It also
// serves the suite's own client programs (probe_test.go).
func TestMain(m *testing.M) {
	runProbe()
	netlab.RunChild()
	flag.Parse()
	os.Exit(m.Run())
}
