package packaging

import (
	"os"
	"os/exec"
	"sync"
	"testing"
)

// aptMu serialises apt-get (one dpkg lock).
var aptMu sync.Mutex

// need returns the path of cmd: skips the test when it is missing, or,
// under EPCONSOLE_REQUIRE_NETNS=1 (CI), installs Debian's pkg first.
func need(t *testing.T, cmd, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(cmd); err == nil {
		return p
	}
	if os.Getenv("EPCONSOLE_REQUIRE_NETNS") != "1" {
		t.Skipf("%s not installed (Debian package %s); CI installs it", cmd, pkg)
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	if p, err := exec.LookPath(cmd); err == nil {
		return p
	}
	install := exec.Command("apt-get", "install", "-y", "--no-install-recommends", pkg)
	install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := install.CombinedOutput(); err != nil {
		update := exec.Command("apt-get", "update")
		if uout, uerr := update.CombinedOutput(); uerr != nil {
			t.Fatalf("apt-get update: %v\n%s", uerr, uout)
		}
		install = exec.Command("apt-get", "install", "-y", "--no-install-recommends", pkg)
		install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out2, err := install.CombinedOutput(); err != nil {
			t.Fatalf("apt-get install %s: %v\n%s\n%s", pkg, err, out, out2)
		}
	}
	p, err := exec.LookPath(cmd)
	if err != nil {
		t.Fatalf("%s still missing after installing %s", cmd, pkg)
	}
	return p
}
