package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestClusterGossip: three nodes form a cluster; each sees the others'
// metadata and backend views; changes propagate; Elect over the three real
// views agrees on exactly one owner, before and after it claims.
func TestClusterGossip(t *testing.T) {
	names := map[int]string{1: "lb1", 2: "lb2", 3: "lb3"}
	prios := map[int]int{1: 100, 2: 150, 3: 120}
	start := time.Now()
	nodes := startNodes(t, names, fullMesh(testKey, names, prios)...)
	since := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, n := range nodes {
		err := n.c.SetBackends([]BackendView{
			{Name: "cp1", State: "up", Latency: 2 * time.Millisecond, Since: since},
			{Name: "cp2", State: "down", Reason: "readyz: [-]etcd failed", Since: since},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "every node sees every other's metadata and backend views", func() error {
		for _, n := range nodes {
			for i, name := range names {
				if name == n.name {
					continue
				}
				if err := sees(n, name, prios[i], "cp1=up", "cp2=down"); err != nil {
					return err
				}
			}
		}
		return nil
	})
	t.Logf("cluster formed and converged in %v", time.Since(start).Round(time.Millisecond))
	lb1, lb2, lb3 := nodes[0], nodes[1], nodes[2]
	m, _ := lb1.c.View().Member("lb3")
	if b := m.Backends[1]; b.Reason != "readyz: [-]etcd failed" || !b.Since.Equal(since) {
		t.Errorf("lb1's copy of lb3's cp2 = %+v", b)
	}
	if m.RTT <= 0 && m.LastSeen.IsZero() {
		t.Errorf("lb1 has neither RTT nor last contact for lb3: %+v", m)
	}

	// A backend view change propagates (broadcast) and is reported.
	start = time.Now()
	if err := lb3.c.SetBackends([]BackendView{
		{Name: "cp1", State: "up", Since: since},
		{Name: "cp2", State: "up", Reason: "readyz ok", Since: since.Add(time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, lb1, 3*time.Second, "backend event for lb3/cp2", func(e Event) bool {
		return e.Type == EventBackend && e.Member == "lb3" && e.Backend.Name == "cp2"
	})
	if e.Backend.State != "up" || !strings.Contains(e.Detail, "was down") {
		t.Errorf("backend event %v", e)
	}
	waitFor(t, 3*time.Second, "the others see lb3's cp2 up", func() error {
		for _, n := range []*testNode{lb1, lb2} {
			if err := sees(n, "lb3", 120, "cp1=up", "cp2=up"); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("backend change seen everywhere in %v", time.Since(start).Round(time.Millisecond))

	// A withdrawn backend disappears from the others' views.
	if err := lb3.c.SetBackends([]BackendView{{Name: "cp1", State: "up"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "lb3's cp2 withdrawn", func() error {
		for _, n := range []*testNode{lb1, lb2} {
			if err := sees(n, "lb3", 120, "cp1=up"); err != nil {
				return err
			}
		}
		return nil
	})

	// Elect over each node's own real view: exactly one holds.
	decide := func() map[string]Decision {
		ds := map[string]Decision{}
		for _, n := range nodes {
			ds[n.name] = Elect(n.c.View(), n.name)
		}
		return ds
	}
	ds := decide()
	if hs := holders(ds); !slices.Equal(hs, []string{"lb2"}) {
		t.Fatalf("holders %v, want [lb2]: %+v", hs, ds)
	}
	for name, d := range ds {
		if d.Elected != "lb2" || !d.Quorum.OK() || d.Quorum.Have != 3 {
			t.Errorf("%s: %+v", name, d)
		}
	}
	// Everyone publishes its decision; the claim (a metadata change)
	// propagates, and the next round still has exactly one holder.
	for _, n := range nodes {
		d := ds[n.name]
		l := Local{Priority: prios[n.idx], Eligible: true, Digest: "d1", Owner: d.Owner, Epoch: d.Epoch}
		if err := n.c.SetLocal(l); err != nil {
			t.Fatal(err)
		}
	}
	e = waitEvent(t, lb1, 3*time.Second, "metadata update from lb2", func(e Event) bool {
		return e.Type == EventUpdate && e.Member == "lb2" && e.Meta.Owner == "lb2"
	})
	if e.Meta.Epoch != 1 || !strings.Contains(e.Detail, "owner →lb2") {
		t.Errorf("update event %v", e)
	}
	waitFor(t, 3*time.Second, "every node sees lb2's claim", func() error {
		for _, n := range nodes {
			m, _ := n.c.View().Member("lb2")
			if !m.Meta.Claims() || m.Meta.Epoch != 1 {
				return fmt.Errorf("%s sees lb2 meta %+v", n.name, m.Meta)
			}
		}
		return nil
	})
	ds = decide()
	if hs := holders(ds); !slices.Equal(hs, []string{"lb2"}) {
		t.Fatalf("after the claim: holders %v, want [lb2]: %+v", hs, ds)
	}
	for name, d := range ds {
		if d.Owner != "lb2" || d.Epoch != 1 {
			t.Errorf("%s: owner %q epoch %d, want lb2 1", name, d.Owner, d.Epoch)
		}
	}
	if s := lb1.c.Stats(); s.DecodeErrors != 0 || s.KeyMismatches != 0 || s.EventsDropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestClusterWrongKey: a configured peer whose key file holds another key
// is rejected: it never joins, the others never see it alive (nor its
// metadata), and both sides report why, in an event and a log line.
func TestClusterWrongKey(t *testing.T) {
	names := map[int]string{4: "lb4", 5: "lb5", 6: "lb6", 7: "lb7"}
	specs := fullMesh(testKey, names, map[int]int{4: 100, 5: 100, 6: 100, 7: 255})
	specs[3].key = otherKey // lb7 has the wrong key
	nodes := startNodes(t, names, specs...)
	lb4, lb7 := nodes[0], nodes[3]

	e := waitEvent(t, lb4, 5*time.Second, "key mismatch with lb7", func(e Event) bool {
		return e.Type == EventKeyMismatch && e.Member == "lb7"
	})
	if e.Addr != testAddr(7) || !strings.Contains(e.Detail, "keyring") {
		t.Errorf("lb4's key mismatch event: %v", e)
	}
	e = waitEvent(t, lb7, 5*time.Second, "key mismatch joining the others", func(e Event) bool {
		return e.Type == EventKeyMismatch && e.Member != ""
	})
	if !slices.Contains([]string{"lb4", "lb5", "lb6"}, e.Member) {
		t.Errorf("lb7's key mismatch event: %v", e)
	}
	if l, ok := lb4.logs.find("WARN", "key-mismatch", "lb7", "127.0.5.7"); !ok {
		t.Errorf("lb4 logged no key mismatch warning naming lb7")
	} else {
		t.Logf("lb4 logged: %s", l)
	}
	if lb4.c.Stats().KeyMismatches == 0 {
		t.Error("lb4 counted no key mismatch")
	}

	// The good nodes form their cluster; lb7 stays unknown to them and
	// sees nobody, also after several rejoin attempts.
	waitFor(t, 5*time.Second, "the good nodes see each other", func() error {
		for _, n := range nodes[:3] {
			for _, other := range []string{"lb4", "lb5", "lb6"} {
				if other == n.name {
					continue
				}
				if err := sees(n, other, 100); err != nil {
					return err
				}
			}
		}
		return nil
	})
	time.Sleep(time.Second)
	var hs []string
	for _, n := range nodes[:3] {
		v := n.c.View()
		if m, _ := v.Member("lb7"); m.State != StateUnknown || m.Fresh || m.Meta.Name != "" {
			t.Errorf("%s sees lb7 %s with meta %+v", n.name, m.State, m.Meta)
		}
		if d := Elect(v, n.name); d.Hold {
			hs = append(hs, n.name)
		}
	}
	if !slices.Equal(hs, []string{"lb6"}) {
		t.Errorf("holders among the good nodes %v, want [lb6] (3 of 4 is a majority)", hs)
	}
	for _, m := range lb7.c.View().Members {
		if m.Name != "lb7" && m.State != StateUnknown {
			t.Errorf("lb7 sees %s %s", m.Name, m.State)
		}
	}
	if d := Elect(lb7.c.View(), "lb7"); d.Hold || !strings.Contains(d.Reason, "hears 1 of 4") {
		t.Errorf("lb7 alone: %+v", d)
	}
}

// TestClusterShutdownAndLeave: a node that shuts down is seen dead, one
// that leaves is seen left; the survivors elect a successor with a higher
// epoch; a restarted node rejoins under a new boot ID.
func TestClusterShutdownAndLeave(t *testing.T) {
	names := map[int]string{8: "lb8", 9: "lb9", 10: "lb10", 11: "lb11"}
	prios := map[int]int{8: 200, 9: 150, 10: 120, 11: 100}
	specs := fullMesh(testKey, names, prios)
	nodes := startNodes(t, names, specs...)
	for _, n := range nodes {
		views := []BackendView{{Name: "cp1", State: "up"}}
		if n.name == "lb8" {
			views = append(views, BackendView{Name: "cp9", State: "up"}) // gone after its restart
		}
		if err := n.c.SetBackends(views); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "four nodes see each other", func() error {
		for _, n := range nodes {
			for i, name := range names {
				if name == n.name {
					continue
				}
				want := []string{"cp1=up"}
				if name == "lb8" {
					want = append(want, "cp9=up")
				}
				if err := sees(n, name, prios[i], want...); err != nil {
					return err
				}
			}
		}
		return nil
	})
	// lb8 is elected and claims.
	publish := func(n *testNode, d Decision) {
		t.Helper()
		if err := n.c.SetLocal(Local{Priority: prios[n.idx], Eligible: true, Digest: "d1", Owner: d.Owner, Epoch: d.Epoch}); err != nil {
			t.Fatal(err)
		}
	}
	d := Elect(nodes[0].c.View(), "lb8")
	if !d.Hold || d.Epoch != 1 {
		t.Fatalf("lb8: %+v", d)
	}
	publish(nodes[0], d)
	waitFor(t, 3*time.Second, "everyone sees lb8's claim", func() error {
		for _, n := range nodes[1:] {
			if m, _ := n.c.View().Member("lb8"); !m.Meta.Claims() {
				return fmt.Errorf("%s: %+v", n.name, m.Meta)
			}
		}
		return nil
	})

	// The owner dies without leaving.
	start := time.Now()
	if err := nodes[0].c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].c.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := nodes[0].c.SetLocal(Local{Priority: 1}); !errors.Is(err, ErrShutdown) {
		t.Errorf("SetLocal after Shutdown: %v", err)
	}
	if err := nodes[0].c.Leave(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown: %v", err)
	}
	waitEvent(t, nodes[1], 5*time.Second, "lb8 failed", func(e Event) bool { return e.Type == EventFailed && e.Member == "lb8" })
	waitFor(t, 5*time.Second, "the survivors see lb8 dead", func() error {
		for _, n := range nodes[1:] {
			if m, _ := n.c.View().Member("lb8"); m.State != StateDead || m.Fresh {
				return fmt.Errorf("%s sees lb8 %s", n.name, m.State)
			}
		}
		return nil
	})
	t.Logf("dead owner noticed by gossip in %v (the heartbeat, not gossip, will move the VIP)", time.Since(start).Round(time.Millisecond))
	var hs []string
	for _, n := range nodes[1:] {
		d := Elect(n.c.View(), n.name)
		if d.Elected != "lb9" {
			t.Errorf("%s elects %q: %s", n.name, d.Elected, d.Reason)
		}
		if d.Hold {
			hs = append(hs, n.name)
			if d.Epoch != 2 {
				t.Errorf("%s claims with epoch %d, want 2", n.name, d.Epoch)
			}
		}
		publish(n, d)
	}
	if !slices.Equal(hs, []string{"lb9"}) {
		t.Errorf("holders after the owner died: %v, want [lb9]", hs)
	}

	// lb11 leaves gracefully.
	time.Sleep(300 * time.Millisecond) // DEBUG
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := nodes[3].c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := nodes[3].c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, nodes[1], 3*time.Second, "lb11 left", func(e Event) bool { return e.Type == EventLeave && e.Member == "lb11" })
	if m, _ := nodes[2].c.View().Member("lb11"); m.State != StateLeft {
		waitFor(t, 3*time.Second, "lb10 sees lb11 left", func() error {
			if m, _ := nodes[2].c.View().Member("lb11"); m.State != StateLeft {
				return fmt.Errorf("lb10 sees lb11 %s", m.State)
			}
			return nil
		})
	}

	// lb8 restarts (no preempt): it rejoins under a new boot ID, learns
	// lb9's claim from gossip and does not reclaim. Its new backend views
	// replace the old ones everywhere (cp9 is withdrawn although the new
	// process never had it), and it learns lb9's views, long since
	// broadcast, by push/pull.
	oldBoot := nodes[0].c.LocalMeta().BootID
	restarted := startNodes(t, names, specs[0])[0]
	if err := restarted.c.SetBackends([]BackendView{{Name: "cp1", State: "down"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the restarted lb8's backend views", func() error {
		if err := sees(nodes[1], "lb8", 200, "cp1=down"); err != nil {
			return err
		}
		return sees(restarted, "lb9", 150, "cp1=up")
	})
	waitFor(t, 5*time.Second, "lb8 back in lb9's view and lb9's claim in lb8's", func() error {
		m, _ := nodes[1].c.View().Member("lb8")
		if m.State != StateAlive || m.Meta.BootID == oldBoot || m.Meta.Claims() {
			return fmt.Errorf("lb9 sees lb8 %s meta %+v", m.State, m.Meta)
		}
		if m, _ := restarted.c.View().Member("lb9"); !m.Meta.Claims() || m.Meta.Epoch != 2 {
			return fmt.Errorf("restarted lb8 sees lb9 %s meta %+v", m.State, m.Meta)
		}
		return nil
	})
	if d := Elect(restarted.c.View(), "lb8"); d.Hold || d.Owner != "lb9" || d.Epoch != 2 {
		t.Errorf("restarted lb8: %+v", d)
	}
}

// TestClusterForeignNode: a plain memberlist node with the right key, no
// epconsole metadata and a name that is no configured peer is refused as
// a member; a garbage message from it is dropped and counted.
func TestClusterForeignNode(t *testing.T) {
	names := map[int]string{15: "lb15"}
	n := startNodes(t, names, nodeSpec{name: "lb15", idx: 15, prio: 100, key: testKey})[0]

	kr, err := memberlist.NewKeyring(nil, testKey)
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "foreign", testAddr(16).Addr().String(), int(testAddr(16).Port())
	mc.AdvertiseAddr, mc.AdvertisePort = mc.BindAddr, mc.BindPort
	mc.Keyring, mc.LogOutput = kr, io.Discard
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{testAddr(15).String()}); err != nil {
		t.Fatalf("foreign join: %v", err)
	}
	e := waitEvent(t, n, 3*time.Second, "the foreign node refused", func(e Event) bool {
		return e.Type == EventMemberRejected && e.Member == "foreign"
	})
	t.Logf("event: %v", e)
	if err := ml.SendReliable(ml.LocalNode(), nil); err != nil {
		t.Logf("(self send: %v)", err)
	}
	for _, payload := range [][]byte{[]byte("\x01{not json"), []byte("\x03\x04lb15hello")} {
		if err := ml.SendToAddress(memberlist.Address{Addr: testAddr(15).String(), Name: "lb15"}, payload); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 3*time.Second, "the garbage message counted", func() error {
		if s := n.c.Stats(); s.DecodeErrors < 1 || s.MembersRejected < 1 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	v := n.c.View()
	if m, ok := v.Member("foreign"); ok {
		t.Errorf("foreign member listed: %+v", m)
	}
	if d := Elect(v, "lb15"); !d.Hold || d.Elected != "lb15" {
		t.Errorf("lb15 with a foreign node about: %+v", d)
	}
}

// TestClusterReconfigure: a peer added by SetPeers is joined; the gossip
// key is rotated with SetKeys in the usual three steps without losing
// contact; a node left on the old key alone is rejected.
func TestClusterReconfigure(t *testing.T) {
	names := map[int]string{17: "lb17", 18: "lb18"}
	nodes := startNodes(t, names,
		nodeSpec{name: "lb17", idx: 17, prio: 100, key: testKey},
		nodeSpec{name: "lb18", idx: 18, prio: 100, key: testKey, peers: []int{17}})
	a, b := nodes[0], nodes[1]
	time.Sleep(200 * time.Millisecond)
	if _, ok := a.c.View().Member("lb18"); ok {
		t.Fatal("lb17 admits lb18 before it is configured")
	}
	if err := a.c.SetPeers([]Peer{{Name: "lb18", Addr: testAddr(18)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "lb17 joins the new peer", func() error { return sees(b, "lb17", 100) })
	if v := a.c.View(); !slices.Equal(v.Peers, []string{"lb17", "lb18"}) {
		t.Errorf("peers %v", v.Peers)
	}

	prio := 100
	propagates := func(step string) {
		t.Helper()
		prio++
		if err := a.c.SetLocal(Local{Priority: prio, Eligible: true, Digest: "d1"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 3*time.Second, step+": lb17's update reaches lb18", func() error { return sees(b, "lb17", prio) })
	}
	for _, step := range []struct {
		desc string
		keys [][]byte
	}{
		{"install the new key", [][]byte{testKey, otherKey}},
		{"make it primary", [][]byte{otherKey, testKey}},
		{"remove the old key", [][]byte{otherKey}},
	} {
		for _, n := range nodes {
			if err := n.c.SetKeys(step.keys); err != nil {
				t.Fatalf("%s: %s: %v", step.desc, n.name, err)
			}
		}
		propagates(step.desc)
	}
	if s := b.c.Stats(); s.KeyMismatches != 0 {
		t.Errorf("key mismatches during the rotation: %+v", s)
	}
	if err := a.c.SetKeys(nil); err == nil {
		t.Error("SetKeys(nil) accepted")
	}

	// lb18 goes back to the old key alone: lb17 rejects it.
	if err := b.c.SetKeys([][]byte{testKey}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, 5*time.Second, "key mismatch after a one-sided key change", func(e Event) bool {
		return e.Type == EventKeyMismatch
	})
}
