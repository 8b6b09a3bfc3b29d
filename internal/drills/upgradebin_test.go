package drills

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The binaries of the rolling-upgrade drill (upgrade_test.go): the release
// the cluster runs before the upgrade, built from an older commit of this
// repository, and the binary under test (epconsoleBin).

const (
	// upgradeDrillEnv runs the full drill (it builds the old binary when
	// upgradeBinEnv is not given: about a minute on a cold build cache).
	upgradeDrillEnv = "EPCONSOLE_DRILL_UPGRADE"
	// upgradeBinEnv names a prebuilt old binary; with it the drill runs
	// without upgradeDrillEnv (its short version), as CI does.
	upgradeBinEnv = "EPCONSOLE_UPGRADE_BIN"
	// upgradeFromEnv overrides the commit the old binary is built from.
	upgradeFromEnv = "EPCONSOLE_UPGRADE_FROM"
	// defaultUpgradeFrom is the last release-like point the drill upgrades
	// from unless told otherwise.
	defaultUpgradeFrom = "051e18e"
)

// oldBinary returns the binary the cluster runs before the upgrade and the
// name it is known by in the figures (the commit, or the file given). It
// skips the test (a plain skip, not a network-namespace one: the drill is
// opt-in) when neither upgradeBinEnv nor upgradeDrillEnv is set.
func oldBinary(t *testing.T) (bin, from string) {
	t.Helper()
	if p := os.Getenv(upgradeBinEnv); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			t.Fatalf("%s=%s: not an executable file (%v); build one with `go build -o FILE ./cmd/epconsole` at an older commit", upgradeBinEnv, p, err)
		}
		return abs, abs
	}
	if os.Getenv(upgradeDrillEnv) != "1" {
		t.Skipf("the rolling-upgrade drill is opt-in: set %s=1 (builds the old binary from %s, or %s=REV) or %s=FILE (a prebuilt old epconsole)",
			upgradeDrillEnv, defaultUpgradeFrom, upgradeFromEnv, upgradeBinEnv)
	}
	rev := os.Getenv(upgradeFromEnv)
	if rev == "" {
		rev = defaultUpgradeFrom
	}
	bin, err := buildAtCommit(t, rev)
	if err != nil {
		t.Fatalf("building the old epconsole at %s: %v", rev, err)
	}
	return bin, rev
}

// buildAtCommit builds ./cmd/epconsole as it was at rev, in a detached git
// worktree of this repository, and caches the binary under the user cache
// directory keyed by the full commit, so a second run takes no build.
func buildAtCommit(t *testing.T, rev string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	sha, err := git("rev-parse", "--verify", rev+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("%s is not a commit of this repository (%w); set %s to a commit or tag, or %s to a prebuilt binary", rev, err, upgradeFromEnv, upgradeBinEnv)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "epconsole-upgrade-drill", sha, "epconsole")
	if _, err := os.Stat(bin); err == nil {
		t.Logf("old binary: %s (cached, built at %s)", bin, sha)
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(t.TempDir(), "src")
	if _, err := git("worktree", "add", "--detach", src, sha); err != nil {
		return "", err
	}
	defer func() {
		if _, err := git("worktree", "remove", "--force", src); err != nil {
			t.Logf("removing the build worktree: %v", err)
		}
	}()
	start := time.Now()
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, "./cmd/epconsole")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/epconsole at %s: %w: %s", sha, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	t.Logf("old binary: %s (built at %s in %s)", bin, sha, time.Since(start).Round(time.Second))
	return bin, nil
}

// checkConfigAccepted runs `bin validate -c cfg`: both binaries must
// accept the config the drill gives them, or the drill says which refused
// and why (a field the old release does not know, say).
func checkConfigAccepted(t *testing.T, bin, cfg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "validate", "-c", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("%s validate -c %s: %v\n%s\nthe config the drill writes must suit both releases", bin, cfg, err, out)
	}
}

// copyBinary replaces dst with src the way a package upgrade does: a new
// file renamed over the old one (a running process keeps its old inode).
func copyBinary(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
