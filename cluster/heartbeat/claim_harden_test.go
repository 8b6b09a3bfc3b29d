package heartbeat

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
)

// TestHelperClaimPrivileges: with the claim on, the real helper keeps
// exactly CAP_NET_ADMIN and CAP_NET_RAW beside CAP_IPC_LOCK (effective and
// bounding set), with no_new_privs; without it, CAP_IPC_LOCK alone
// (TestHelperDropsPrivileges).
func TestHelperClaimPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the helper starts with capabilities only then)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := Start(ctx, Config{
		Self: "d", Cluster: "c", Bind: netip.MustParseAddrPort("127.0.5.96:17996"), Keys: [][]byte{testKey(1)},
		Peers:  []Peer{{Name: "e", Addr: netip.MustParseAddrPort("127.0.5.97:17996")}},
		Claim:  &ClaimConfig{VIPs: []ClaimVIP{{Interface: "lo", Addr: netip.MustParseAddr("198.18.160.250")}}},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	pid := b.HelperPID()
	nnp, eff, bnd := readCaps(fmt.Sprintf("/proc/%d/status", pid))
	t.Logf("helper %d with the claim: NoNewPrivs %v CapEff %#x CapBnd %#x; reported %+v", pid, nnp, eff, bnd, b.Hardening())
	want := keptCaps | claimCaps
	if !nnp || eff != want || bnd != want {
		t.Errorf("helper %d: NoNewPrivs %v, CapEff %#x, CapBnd %#x; want 1 and %#x (CAP_IPC_LOCK, CAP_NET_ADMIN, CAP_NET_RAW)", pid, nnp, eff, bnd, want)
	}
	if r := b.Hardening().Reason; r != "" {
		t.Errorf("the helper reports privileges it could not drop: %s", r)
	}
}
