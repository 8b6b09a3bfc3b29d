package dataplane

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// TestDpLeaseRenewerExtends: the pre-built renewal batch extends a running
// lease exactly as Lease.Renew does (ARP and NDP), and fails clearly
// before the lease tables exist.
func TestDpLeaseRenewerExtends(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name, vip := "arp", leaseVIP4
		if v6 {
			name, vip = "ndp", leaseVIP6
		}
		t.Run(name, func(t *testing.T) {
			topo := newLeaseTopo(t, v6)
			var p prober
			if v6 {
				p = newNDPProber(t, topo.peer)
			} else {
				p = newARPProber(t, topo.peer)
			}
			r := inNetNS(t, topo.lb, func() (*LeaseRenewer, error) { return NewLeaseRenewer([]netip.Addr{vip}, 400*time.Millisecond) })
			t.Cleanup(func() { r.Close() })
			if err := r.Renew(); err == nil {
				t.Fatal("Renew before the lease tables exist: no error")
			} else {
				t.Logf("before Install: %v", err)
			}
			l := newLease(t, topo.lb)
			if err := l.Install(topo.ctx, []netip.Addr{vip}); err != nil {
				t.Fatal(err)
			}
			if err := r.Renew(); err != nil {
				t.Fatalf("Renew: %v", err)
			}
			expectAnswer(t, p, vip, "renewed by the LeaseRenewer")
			if !leaseExtension(t, topo, l, p, vip, r.Renew) {
				t.Fatal("the LeaseRenewer's renewal did not extend the lease")
			}
			if err := r.Renew(); err != nil {
				t.Fatal(err)
			}
			expectAnswer(t, p, vip, "renewed again")
			if err := r.Drop(); err != nil {
				t.Fatal(err)
			}
			expectSilence(t, p, vip, "after the LeaseRenewer's Drop")
		})
	}
}

// BenchmarkLeaseRenewer is the cost of one renewal by the heartbeat
// helper (one nft batch commit, both families' work for one VIP).
func BenchmarkLeaseRenewer(b *testing.B) {
	ns, err := benchNetNS()
	if err != nil {
		b.Skip(err)
	}
	defer ns.Close()
	l, err := NewLease(WithNetNSFd(int(ns)))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	vip := netip.MustParseAddr("198.18.160.10")
	if err := l.Install(b.Context(), []netip.Addr{vip}); err != nil {
		b.Skip(err)
	}
	ch := make(chan *LeaseRenewer, 1)
	go func() {
		// A thread moved into ns for good (never unlocked).
		lockInNetNS(ns)
		r, err := NewLeaseRenewer([]netip.Addr{vip}, 40*time.Millisecond)
		if err != nil {
			ch <- nil
			return
		}
		ch <- r
	}()
	r := <-ch
	if r == nil {
		b.Skip("no renewer")
	}
	defer r.Close()
	b.ResetTimer()
	for b.Loop() {
		if err := r.Renew(); err != nil {
			b.Fatal(err)
		}
	}
}

// lockInNetNS moves the calling goroutine's thread into ns for good.
func lockInNetNS(ns netns.NsHandle) {
	runtime.LockOSThread()
	_ = netns.Set(ns)
}
