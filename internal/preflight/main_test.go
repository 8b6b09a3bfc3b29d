package preflight

import (
	"os"
	"testing"

	"github.com/epconsole/epconsole/internal/netlab"
)

// TestMain lets this test binary serve as netlab's child processes.
func TestMain(m *testing.M) {
	netlab.RunChild()
	os.Exit(m.Run())
}
