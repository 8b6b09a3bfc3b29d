package lab

import (
	"context"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestLabBiggest brings up the largest lab `epconsole-lab --peers 5
// --backends 7` builds: one owner among five peers, every peer fresh on
// the owner, all seven backends up in its view and answering requests
// through the VIP (IPv4 and IPv6), `check all` OK with three etcd members
// (the first three backends), and nothing left after Close.
func TestLabBiggest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	l := upTestLab(t, ctx, MaxPeers, MaxBackends)
	t.Cleanup(func() { _ = l.Close() })
	owner, err := l.Owner(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d peers, %d backends: up with owner %s after %s", MaxPeers, MaxBackends, owner, time.Since(start).Round(time.Millisecond))
	if got := len(l.Peers()); got != MaxPeers {
		t.Errorf("%d peers, want %d", got, MaxPeers)
	}
	if got := len(l.EtcdMembers()); got != MaxEtcdMembers {
		t.Errorf("%d etcd members, want %d", got, MaxEtcdMembers)
	}

	waitStatus(t, ctx, l, owner, 30*time.Second, "every peer fresh and every backend up on the owner", func(s status.Snapshot) bool {
		for _, p := range l.Peers() {
			if p != owner && !peerFresh(s, p) {
				return false
			}
		}
		for _, b := range l.Backends() {
			if view(s, b).State != "up" {
				return false
			}
		}
		return true
	})
	for _, v6 := range []bool{false, true} {
		res, err := l.Load(ctx, 140, v6, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("through the VIP (IPv6 %v): ok %d failed %d backends %v", v6, res.OK, res.Failed, res.Backends)
		if res.Failed != 0 {
			t.Errorf("IPv6 %v: %d of %d requests failed: %v", v6, res.Failed, res.Attempts, res.Errors)
		}
		for _, b := range l.Backends() {
			if res.Backends[b] == 0 {
				t.Errorf("IPv6 %v: backend %s answered none of %d requests", v6, b, res.OK)
			}
		}
	}
	waitCheck(t, ctx, l, owner, "all", 0, 30*time.Second, "check all on the biggest lab", func(d checkDoc) bool {
		v := d.etcdVerdict()
		return v.Healthy == MaxEtcdMembers && v.Leader != ""
	})
	owners := 0 // peers with the VIP on their interface
	for _, p := range l.Peers() {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := l.Status(qctx, p)
		qcancel()
		if err != nil {
			t.Errorf("status of %s: %v", p, err)
			continue
		}
		for _, v := range s.VIPs {
			if v.Owner != owner {
				t.Errorf("%s sees %s owned by %q, want %s", p, v.Address, v.Owner, owner)
			}
		}
		for _, v := range s.VIPs {
			if v.Here {
				owners++
				break
			}
		}
	}
	if owners != 1 {
		t.Errorf("%d peers hold the VIP, want 1", owners)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("lab close: %v", err)
	}
	testenv.NoNamespacesLeft(t, testPrefix)
}
