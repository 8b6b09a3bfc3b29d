package config

import (
	"os"
	"path/filepath"
	"testing"
)

// testKeys are the checked-in gossip key files the tests load from disk.
var testKeys = []string{
	"testdata/config/gossip.key",
	"testdata/config/bad/not-base64.key",
	"testdata/config/bad/short.key",
}

// TestMain makes the checked-in test keys private (git keeps no 0600 mode,
// and Load refuses a key file others can read) before the tests load them.
func TestMain(m *testing.M) {
	for _, k := range testKeys {
		if err := os.Chmod(filepath.Join(repoRoot, k), 0o600); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
