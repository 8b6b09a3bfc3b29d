package preflight

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/epconsole/epconsole/internal/testenv"
)

// TestGatherUnprivileged: in its own network namespace, Gather reads every
// fact (links, sysctls, nftables) without CAP_SYS_ADMIN, as the daemon
// runs under the systemd unit (a plain user with CAP_NET_ADMIN, CAP_NET_RAW
// and CAP_SYS_NICE): it never setns()s into the namespace it is in. The
// test binary runs itself again in a new namespace (unshare -n) as uid
// 65534 with CAP_NET_ADMIN only.
func TestGatherUnprivileged(t *testing.T) {
	if os.Getenv("PREFLIGHT_UNPRIVILEGED_CHILD") == "1" {
		if os.Getuid() == 0 {
			t.Fatal("the child runs as root")
		}
		f := Gather(context.Background(), Options{VIPs: []VIP{{Address: netip.MustParseAddr("198.18.233.100"), Interface: "lo", Port: 6443}}})
		if len(f.Errors) != 0 || !f.TablesRead {
			t.Fatalf("without CAP_SYS_ADMIN: errors %v, tables read %v", f.Errors, f.TablesRead)
		}
		if _, ok := f.Links["lo"]; !ok {
			t.Fatalf("link lo not read: %v", f.Links)
		}
		return
	}
	testenv.NeedNetns(t)
	unshare, err1 := exec.LookPath("unshare")
	setpriv, err2 := exec.LookPath("setpriv")
	if err1 != nil || err2 != nil {
		t.Skip("unshare and setpriv (util-linux) not installed")
	}
	dir, err := os.MkdirTemp("", "preflight-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "preflight.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unshare, "-n", setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs",
		"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin",
		bin, "-test.run=^TestGatherUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), "PREFLIGHT_UNPRIVILEGED_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged child: %v\n%s", err, out)
	}
}
