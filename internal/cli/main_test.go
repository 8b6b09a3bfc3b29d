package cli

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The console tests run this binary as `epconsole` in tmux.
	consoleChild()
	os.Exit(m.Run())
}
