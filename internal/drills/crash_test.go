package drills

import (
	"net"
	"net/netip"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/internal/netlab"
)

// arpProbe asks, from the client's namespace, who answers ARP for an
// address. Its socket is opened on a thread moved into that namespace and
// never unlocked (the thread dies with its goroutine); the socket stays
// there.
type arpProbe struct {
	c    *arp.Client
	self netip.Addr
}

func newARPProbe(t *testing.T, h *netlab.Host) *arpProbe {
	t.Helper()
	c := inHost(t, h, "ARP socket", func() (*arp.Client, error) {
		ifi, err := net.InterfaceByName(netlab.HostLink)
		if err != nil {
			return nil, err
		}
		return arp.Dial(ifi)
	})
	t.Cleanup(func() { c.Close() })
	return &arpProbe{c: c, self: h.IPv4()}
}

// answer sends one ARP request for target and returns the hardware
// addresses that answered within wait, sorted.
func (p *arpProbe) answer(target netip.Addr, wait time.Duration) ([]string, error) {
	if err := p.c.Request(target); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	var macs []string
	for {
		_ = p.c.SetReadDeadline(deadline)
		pkt, _, err := p.c.Read()
		if err != nil {
			break // deadline
		}
		if pkt.Operation != arp.OperationReply || pkt.SenderIP != target || pkt.TargetIP != p.self {
			continue
		}
		if m := pkt.SenderHardwareAddr.String(); !slices.Contains(macs, m) {
			macs = append(macs, m)
		}
	}
	sort.Strings(macs)
	return macs, nil
}

// macOf returns the hardware address of a host's eth0.
func macOf(t *testing.T, h *netlab.Host) string {
	t.Helper()
	nh, l := hostLink(t, h)
	defer nh.Close()
	return l.Attrs().HardwareAddr.String()
}

// hostLink opens a netlink handle in h's namespace and finds its eth0;
// the caller closes the handle.
func hostLink(t *testing.T, h *netlab.Host) (*netlink.Handle, netlink.Link) {
	t.Helper()
	nh, err := h.NetlinkHandle()
	if err != nil {
		t.Fatal(err)
	}
	l, err := nh.LinkByName(netlab.HostLink)
	if err != nil {
		nh.Close()
		t.Fatal(err)
	}
	return nh, l
}

// TestOwnerCrash: kill -9 of the owner daemon. Its VIP address stays in
// the kernel (the control: a crash really leaves it), but its owner lease
// runs out, so the host stops answering ARP for the VIP; a peer takes over,
// and two hosts never answer ARP for the VIP at once for longer than about
// the lease. The restarted daemon learns the owner from gossip, does not
// reclaim, and removes its stale address.
func TestOwnerCrash(t *testing.T) {
	c, owner := newCluster(t, "cle", 60*time.Second)
	probe := newARPProbe(t, c.client)
	macs := map[string]string{}
	for _, h := range c.lbs {
		macs[macOf(t, h)] = h.Name()
	}
	names := func(ms []string) []string {
		var out []string
		for _, m := range ms {
			out = append(out, macs[m])
		}
		return out
	}
	got, err := probe.answer(c.vip, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(got), []string{owner}) {
		t.Fatalf("before the crash, ARP for the VIP answered by %v, want only %s", names(got), owner)
	}

	loop, err := c.client.StartTCPConnect(c.ctx, netlab.TCPConnectOpts{
		Target: netipPort(c), Every: 5 * time.Millisecond, Timeout: 20 * time.Millisecond, Duration: 4 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	c.signal(owner, syscall.SIGKILL)
	// ARP answers, every ~60 ms for 2 s: when did the dead host go quiet,
	// and for how long did two hosts answer at once?
	var quiet, doubleSince time.Time
	var longestDouble time.Duration
	for time.Since(killed) < 2*time.Second {
		got, err := probe.answer(c.vip, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		ns := names(got)
		if len(ns) > 1 {
			if doubleSince.IsZero() {
				doubleSince = time.Now()
			}
			longestDouble = max(longestDouble, time.Since(doubleSince))
		} else {
			doubleSince = time.Time{}
		}
		if slices.Contains(ns, owner) {
			quiet = time.Time{}
		} else if quiet.IsZero() {
			quiet = time.Now()
		}
	}
	newOwner := c.waitOneOwnerAmong(5*time.Second, owner)
	res, err := loop.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 of %s: new owner %s; client dark time %s (%d of %d connects failed); %s quiet on ARP %s after the kill; two hosts answered ARP at once for at most %s",
		owner, newOwner, res.LongestGap.Round(time.Millisecond), res.Failures, res.Attempts, owner,
		durationSince(quiet, killed), longestDouble.Round(time.Millisecond))
	if quiet.IsZero() {
		t.Errorf("the crashed owner %s still answered ARP for the VIP 2 s after the kill", owner)
	}
	if longestDouble > 500*time.Millisecond {
		t.Errorf("two hosts answered ARP for the VIP at once for %s, want about the lease (one detection time, or 150 ms with --no-beat-lease)", longestDouble)
	}
	if res.LongestGap >= time.Second || res.LastSuccess <= res.LastFailure {
		t.Errorf("client dark time %s (last success %s, last failure %s), want < 1 s and recovered", res.LongestGap, res.LastSuccess, res.LastFailure)
	}
	// The control: the crash left the address on the dead daemon's host;
	// only the lease silenced it.
	if has, err := c.checks[owner].Has(c.ctx, netlab.HostLink, c.vip); err != nil || !has {
		t.Errorf("after kill -9 the VIP address is gone from %s (has %v, %v): the crash case was not exercised", owner, has, err)
	}

	// Restart: it must not reclaim, and must remove the stale address.
	restarted := time.Now()
	c.start(c.lab.Host(owner))
	deadline := time.Now().Add(8 * time.Second)
	for {
		has, err := c.checks[owner].Has(c.ctx, netlab.HostLink, c.vip)
		if err != nil {
			t.Fatal(err)
		}
		if !has {
			t.Logf("restarted %s removed its stale VIP address %s after the start", owner, time.Since(restarted).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			c.dumpLog(c.daemons[owner])
			t.Fatalf("restarted %s kept its stale VIP address for 8 s", owner)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < 25; i++ {
		if o := c.owners(); !slices.Equal(o, []string{newOwner}) {
			t.Fatalf("owners %v after the restart of %s, want only %s (no reclaim)", o, owner, newOwner)
		}
		time.Sleep(40 * time.Millisecond)
	}
	got, err = probe.answer(c.vip, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(got), []string{newOwner}) {
		t.Errorf("after the restart, ARP for the VIP answered by %v, want only %s", names(got), newOwner)
	}
}

func durationSince(t, since time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(since).Round(time.Millisecond).String()
}
