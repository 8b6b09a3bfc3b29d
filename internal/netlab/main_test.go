package netlab

import (
	"os"
	"testing"
)

// TestMain lets this test binary serve as the netlab child processes.
func TestMain(m *testing.M) {
	RunChild()
	os.Exit(m.Run())
}
