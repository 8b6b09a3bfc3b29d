package heartbeat

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHelperDropsPrivileges starts the real helper as root and reads its
// /proc status: no_new_privs set and no effective capability left once it
// runs at real-time priority; the daemon's own thread keeps its
// capabilities.
func TestHelperDropsPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the helper starts with capabilities only then)")
	}
	_, selfEff, _ := readCaps("/proc/self/status")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := Start(ctx, Config{
		Self: "d", Cluster: "c", Bind: netip.MustParseAddrPort("127.0.5.98:17998"), Keys: [][]byte{testKey(1)},
		Peers: []Peer{{Name: "e", Addr: netip.MustParseAddrPort("127.0.5.99:17998")}}, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	pid := b.HelperPID()
	nnp, eff, bnd := readCaps(fmt.Sprintf("/proc/%d/status", pid))
	h := b.Hardening()
	t.Logf("helper %d: NoNewPrivs %v CapEff %#x CapBnd %#x; realtime %+v; reported %+v", pid, nnp, eff, bnd, b.Realtime(), h)
	if !nnp || eff != keptCaps {
		t.Errorf("helper %d: NoNewPrivs %v, CapEff %#x; want 1 and %#x (CAP_IPC_LOCK alone)", pid, nnp, eff, keptCaps)
	}
	if !b.Realtime().InEffect {
		t.Errorf("the helper did not reach real-time priority before dropping its capabilities: %+v", b.Realtime())
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, f := range tasks {
		tn, te, tb := readCaps(f)
		t.Logf("%s: NoNewPrivs %v CapEff %#x CapBnd %#x", f, tn, te, tb)
		if !tn || te&^(1<<unix.CAP_SYS_NICE|1<<unix.CAP_IPC_LOCK|1<<unix.CAP_SETPCAP) != 0 {
			t.Errorf("%s: NoNewPrivs %v CapEff %#x: beyond CAP_SYS_NICE, CAP_IPC_LOCK, CAP_SETPCAP", f, tn, te)
		}
	}
	if _, after, _ := readCaps("/proc/self/status"); after != selfEff {
		t.Errorf("the daemon's capabilities changed: %#x -> %#x", selfEff, after)
	}
}
