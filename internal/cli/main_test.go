package cli

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The console tests run this binary as `epconsole` in tmux.
	consoleChild()
	cliChild() // man_test.go: this binary as `epconsole` for the shells
	os.Exit(m.Run())
}
