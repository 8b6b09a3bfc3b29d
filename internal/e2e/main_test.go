package e2e

import (
	"os"
	"testing"

	"github.com/epconsole/epconsole/internal/netlab"
)

// TestMain lets this test binary serve as netlab's child processes
// (stand-ins, clients, streams, connect loops).
//
// The tests do not call t.Parallel: netlab starts its children with
// Pdeathsig, which the kernel sends when the forking OS thread exits, and
// building a lab retires locked threads (namespace creation, sysctls). A
// lab built while another test's children run can so SIGKILL them (seen
// here: a client loop of one test killed while a parallel test built its
// lab). Serial tests build every lab before starting its children.
func TestMain(m *testing.M) {
	netlab.RunChild()
	os.Exit(m.Run())
}
