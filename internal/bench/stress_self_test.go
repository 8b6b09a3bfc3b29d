package bench

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/internal/netlab"
)

// TestStressHelpers checks the soak's tools in a small lab of its own
// ("bnxz"; root and network namespaces needed): the loss rules go in and
// come out of an LB's namespace, the VIP watch sees the VIP added and
// removed, and the busy loops end when stopped.
func TestStressHelpers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables)")
	}
	lab := netlab.New(t, netlab.Spec{Prefix: "bnxz", IPv4: net4, IPv6: net6, Hosts: []netlab.HostSpec{
		{Name: "lb1", Role: netlab.RoleLB}, {Name: "lb2", Role: netlab.RoleLB},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := &stack{ctx: ctx, lab: lab, lbs: lab.HostsByRole(netlab.RoleLB), vip: lab.VIP4()}
	lb2 := lab.Host("lb2")

	if err := setLoss(lb2, soakLossOneIn); err != nil {
		t.Fatal(err)
	}
	out, err := lb2.Command(ctx, "nft", "list", "table", "inet", lossTable).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "numgen random mod 100") || !strings.Contains(string(out), "drop") {
		t.Errorf("loss table in lb2: %v\n%s", err, out)
	}
	if err := setLoss(lb2, 0); err != nil {
		t.Fatal(err)
	}
	if out, err := lb2.Command(ctx, "nft", "list", "table", "inet", lossTable).CombinedOutput(); err == nil {
		t.Errorf("loss table still there after removal:\n%s", out)
	}
	if err := setLoss(lb2, 0); err != nil {
		t.Errorf("removing no loss: %v", err)
	}

	w, err := s.watchVIP()
	if err != nil {
		t.Fatal(err)
	}
	nh, err := lb2.NetlinkHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	link, err := nh.LinkByName(netlab.HostLink)
	if err != nil {
		t.Fatal(err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: s.vip.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := nh.AddrAdd(link, addr); err != nil {
		t.Fatal(err)
	}
	if err := nh.AddrDel(link, addr); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	ev := w.stop()
	if m, a, r := countMoves(firstOwner, ev); m != 1 || a != 1 || r != 1 {
		t.Errorf("VIP watch: %+v = %d moves, %d adds, %d removes; want 1, 1, 1", ev, m, a, r)
	}

	stop, err := busyLoops(ctx, 1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the busy loop did not end when stopped")
	}
}
