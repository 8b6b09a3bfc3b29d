package drills

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/netlab"
)

// TestWrongGossipKey: an LB with another gossip key is rejected: the others
// report the key mismatch, and, alone against a majority it cannot hear,
// it never holds the VIP.
func TestWrongGossipKey(t *testing.T) {
	c, owner := newClusterWith(t, "clk", 60*time.Second, clusterOpts{ownKey: []string{"lb3"}})
	if owner == "lb3" {
		t.Fatalf("lb3, with a foreign gossip key, owns the VIP")
	}
	c.waitLog(c.daemons["lb1"], 10*time.Second, `"kind":"gossip-key-mismatch"`)
	c.waitLog(c.daemons["lb3"], 5*time.Second, `"msg":"decision"`, "no majority")
	for i := 0; i < 20; i++ {
		if o := c.owners(); !slices.Equal(o, []string{owner}) {
			t.Fatalf("owners %v, want only %s", o, owner)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if logHas(c.daemons["lb3"], `"kind":"vip-acquired"`) {
		t.Errorf("lb3 acquired the VIP at some point")
	}
}

// TestDigestMismatch: lb3 has the highest priority but a different
// cluster-wide config (another hash seed): it is reported and never
// elected while a matching peer is eligible. The control, the same cluster
// with lb3's config matching, elects lb3.
func TestDigestMismatch(t *testing.T) {
	prio := func(seed string) func(c *cluster, lb, hcl string) string {
		return func(_ *cluster, lb, hcl string) string {
			if lb != "lb3" {
				return hcl
			}
			hcl = strings.Replace(hcl, fmt.Sprintf("priority = %d", priorities["lb3"]), "priority = 250", 1)
			return hcl + seed
		}
	}
	t.Run("mismatch", func(t *testing.T) {
		c, owner := newClusterWith(t, "clm", 60*time.Second, clusterOpts{tweak: prio("balance {\n  seed = 4242\n}\n")})
		if owner == "lb3" {
			t.Fatalf("lb3, with a different config digest, owns the VIP")
		}
		c.waitLog(c.daemons["lb1"], 5*time.Second, `"kind":"config-mismatch"`, `"subject":"lb3"`)
		c.waitLog(c.daemons["lb3"], 5*time.Second, `"kind":"config-mismatch"`)
		for i := 0; i < 20; i++ {
			if o := c.owners(); !slices.Equal(o, []string{owner}) {
				t.Fatalf("owners %v, want only %s", o, owner)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if logHas(c.daemons["lb3"], `"kind":"vip-acquired"`) {
			t.Errorf("lb3 acquired the VIP at some point")
		}
	})
	t.Run("control-matching", func(t *testing.T) {
		_, owner := newClusterWith(t, "clmc", 60*time.Second, clusterOpts{tweak: prio("")})
		if owner != "lb3" {
			t.Errorf("owner %s, want lb3 (priority 250, matching config): the mismatch run proves nothing", owner)
		}
	})
}

// TestNoHealthyBackendNotEligible: lb3 has the highest priority but reaches
// no backend (blackhole routes in its namespace), so it is not eligible and
// never owns the VIP. The control is TestDigestMismatch/control-matching:
// the same priority with working probes is elected.
func TestNoHealthyBackendNotEligible(t *testing.T) {
	c, owner := newClusterWith(t, "cln", 60*time.Second, clusterOpts{
		tweak: func(_ *cluster, lb, hcl string) string {
			if lb != "lb3" {
				return hcl
			}
			return strings.Replace(hcl, fmt.Sprintf("priority = %d", priorities["lb3"]), "priority = 250", 1)
		},
		before: func(c *cluster) {
			nh, err := c.lab.Host("lb3").NetlinkHandle()
			if err != nil {
				c.t.Fatal(err)
			}
			defer nh.Close()
			for _, b := range c.lab.HostsByRole(netlab.RoleBackend) {
				r := &netlink.Route{Dst: &net.IPNet{IP: b.IPv4().AsSlice(), Mask: net.CIDRMask(32, 32)}, Type: unix.RTN_BLACKHOLE}
				if err := nh.RouteAdd(r); err != nil {
					c.t.Fatalf("blackhole route to %s in lb3: %v", b.IPv4(), err)
				}
			}
		},
	})
	if owner == "lb3" {
		t.Fatalf("lb3, with every backend down in its own view, owns the VIP")
	}
	c.waitLog(c.daemons["lb3"], 5*time.Second, `"kind":"backend-down"`)
	if logHas(c.daemons["lb3"], `"msg":"eligibility"`, `"eligible":true`) {
		t.Errorf("lb3 was eligible at some point without a healthy backend")
	}
	for i := 0; i < 20; i++ {
		if o := c.owners(); !slices.Equal(o, []string{owner}) {
			t.Fatalf("owners %v, want only %s", o, owner)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
