package cli

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) {
	// The console tests run this binary as `epconsole` in tmux.
	consoleChild()
	// git keeps no 0600 mode, and a gossip key file others can read is
	// refused: make the checked-in test keys private first.
	for _, k := range []string{"gossip.key", "bad/not-base64.key", "bad/short.key"} {
		if err := os.Chmod(filepath.Join("../../testdata/config", k), 0o600); err != nil {
			panic(err)
		}
	}
	cliChild() // man_test.go: this binary as `epconsole` for the shells
	os.Exit(m.Run())
}
