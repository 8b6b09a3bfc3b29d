package labcli

import (
	"os"
	"testing"

	"github.com/epconsole/epconsole/internal/netlab"
)

// TestMain lets this test binary serve as netlab's children: TestLabDemo
// runs the lab in this process, and its stand-in apiservers and client are
// this binary re-executed inside the lab's namespaces.
func TestMain(m *testing.M) {
	netlab.RunChild()
	os.Exit(m.Run())
}
