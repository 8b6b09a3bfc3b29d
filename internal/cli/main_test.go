package cli

import (
	"os"
	"testing"

	"github.com/epconsole/epconsole/internal/netlab"
)

func TestMain(m *testing.M) {
	// `lab` starts stand-in apiservers and clients as this test binary
	// re-executed inside the lab's namespaces.
	netlab.RunChild()
	// The console tests run this binary as `epconsole` in tmux.
	consoleChild()
	os.Exit(m.Run())
}
