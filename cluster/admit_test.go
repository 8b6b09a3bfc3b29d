package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"
)

// startOne starts one more Cluster (an intruder or an impostor: it holds
// the gossip key and runs epconsole, but the others' configuration does
// not name it, or names it at another address).
func startOne(t *testing.T, name string, idx int, local Local, peers ...Peer) *testNode {
	t.Helper()
	n := &testNode{name: name, idx: idx, events: make(chan Event, 1024), logs: newLogRecorder()}
	c, err := New(context.Background(), Config{
		Name: name, Bind: testAddr(idx), Keys: [][]byte{testKey}, Version: "test",
		Local: local, Peers: peers, Timers: testTimers(), Events: n.events, Logger: slog.New(n.logs),
	})
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	n.c = c
	t.Cleanup(func() { _ = c.Shutdown() })
	return n
}

// rejectedEvent waits for a member-rejected event naming who.
func rejectedEvent(t *testing.T, n *testNode, who string) Event {
	t.Helper()
	return waitEvent(t, n, 5*time.Second, "member-rejected event for "+who, func(e Event) bool {
		return e.Type.String() == "member-rejected" && e.Member == who
	})
}

// TestClusterIntruderRefused: a node with the gossip key but a name that
// is no configured peer tries to join a configured pair, publishing the
// highest drain generation there is, a backend view and a message. It
// never appears in their views, its drain generation has no effect, and
// its backend views and messages are ignored; the pair is unaffected.
func TestClusterIntruderRefused(t *testing.T) {
	names := map[int]string{40: "lb40", 41: "lb41"}
	nodes := startNodes(t, names, fullMesh(testKey, names, map[int]int{40: 100, 41: 90})...)
	got := make(chan string, 16)
	nodes[0].c.SetMessageHandler(func(from string, p []byte) { got <- from + ": " + string(p) })
	waitFor(t, 5*time.Second, "the pair sees each other", func() error { return sees(nodes[0], "lb41", 90) })

	in := startOne(t, "intruder", 42, Local{Priority: 255, Eligible: true, Digest: "d1",
		Drained: "cp1", DrainGen: math.MaxUint64}, Peer{Name: "lb40", Addr: testAddr(40)}, Peer{Name: "lb41", Addr: testAddr(41)})
	if err := in.c.SetBackends([]BackendView{{Name: "cp1", State: "down", Reason: "forged"}}); err != nil {
		t.Fatal(err)
	}
	e := rejectedEvent(t, nodes[0], "intruder")
	t.Logf("lb40: %v", e)
	if !strings.Contains(e.Detail, "not a configured peer") {
		t.Errorf("rejection detail: %q", e.Detail)
	}
	// Whatever the intruder learnt of the pair, its messages go nowhere.
	_ = in.c.SendTo("lb40", []byte("forged sync batch"))

	time.Sleep(1500 * time.Millisecond) // several gossip, probe and push/pull rounds
	for _, n := range nodes {
		v := n.c.View()
		if m, ok := v.Member("intruder"); ok {
			t.Errorf("%s lists the intruder: %s, meta %+v", n.name, m.State, m.Meta)
		}
		for _, m := range v.Members {
			if m.Meta.DrainGen != 0 || m.Meta.Drained != "" {
				t.Errorf("%s: member %s publishes drain set %q generation %d", n.name, m.Name, m.Meta.Drained, m.Meta.DrainGen)
			}
			for _, b := range m.Backends {
				if b.Reason == "forged" {
					t.Errorf("%s took the intruder's backend view as %s's", n.name, m.Name)
				}
			}
		}
		if d := Elect(v, n.name); d.Elected != "lb40" {
			t.Errorf("%s elects %q: %s", n.name, d.Elected, d.Reason)
		}
	}
	select {
	case m := <-got:
		t.Errorf("lb40's message handler got %q", m)
	default:
	}
	if err := sees(nodes[1], "lb40", 100); err != nil {
		t.Error(err)
	}
}

// TestClusterImpostorRefused: a node with the gossip key that calls
// itself lb44, a configured peer, but runs at another address than lb44's
// configured one, is refused: the configured lb44 stays unknown (nobody
// runs there) rather than shown alive at an address that is not its own.
func TestClusterImpostorRefused(t *testing.T) {
	lb43 := startNodes(t, map[int]string{43: "lb43", 44: "lb44"},
		nodeSpec{name: "lb43", idx: 43, prio: 100, key: testKey, peers: []int{44}})[0]
	imp := startOne(t, "lb44", 45, Local{Priority: 255, Eligible: true, Digest: "d1", DrainGen: 7, Drained: "cp1"},
		Peer{Name: "lb43", Addr: testAddr(43)})
	e := rejectedEvent(t, lb43, "lb44")
	t.Logf("lb43: %v", e)
	if !strings.Contains(e.Detail, testAddr(44).String()) {
		t.Errorf("rejection detail does not name the configured address: %q", e.Detail)
	}
	time.Sleep(1500 * time.Millisecond)
	m, _ := lb43.c.View().Member("lb44")
	if m.State != StateUnknown || m.Fresh || m.Meta.Name != "" || m.Meta.DrainGen != 0 {
		t.Errorf("lb43 sees lb44 %s at %v with meta %+v", m.State, m.Addr, m.Meta)
	}
	if d := Elect(lb43.c.View(), "lb43"); d.Quorum.Have != 1 {
		t.Errorf("lb43 counts the impostor: %+v", d)
	}
	_ = imp
}

// TestDrainSetOutOfMetadata: seven drained backends with 59-character
// names do not fit in memberlist's 512-byte metadata; the drain set still
// reaches the peer (by broadcast and push/pull), and later owner, epoch
// and eligibility changes still go through.
func TestDrainSetOutOfMetadata(t *testing.T) {
	names := map[int]string{46: "lb46", 47: "lb47"}
	nodes := startNodes(t, names, fullMesh(testKey, names, map[int]int{46: 100, 47: 90})...)
	waitFor(t, 5*time.Second, "the pair sees each other", func() error { return sees(nodes[1], "lb46", 100) })
	var drained []string
	for i := range 7 {
		drained = append(drained, fmt.Sprintf("backend-%d-%s", i, strings.Repeat("x", 49)))
	}
	if len(drained[0]) != 59 {
		t.Fatalf("name of %d bytes", len(drained[0]))
	}
	set := strings.Join(drained, ",")
	l := Local{Priority: 100, Eligible: true, Digest: "d1", Drained: set, DrainGen: 3}
	if err := nodes[0].c.SetLocal(l); err != nil {
		t.Fatalf("SetLocal with seven long drained names: %v", err)
	}
	waitFor(t, 5*time.Second, "lb47 learns lb46's drain set", func() error {
		m, _ := nodes[1].c.View().Member("lb46")
		if m.Meta.Drained != set || m.Meta.DrainGen != 3 {
			return fmt.Errorf("lb47 sees lb46's drain set %q gen %d", m.Meta.Drained, m.Meta.DrainGen)
		}
		return nil
	})
	l.Owner, l.Epoch, l.Eligible = "lb46", 5, false
	if err := nodes[0].c.SetLocal(l); err != nil {
		t.Fatalf("SetLocal of owner, epoch and eligibility: %v", err)
	}
	waitFor(t, 5*time.Second, "lb47 sees lb46's claim and eligibility", func() error {
		m, _ := nodes[1].c.View().Member("lb46")
		if m.Meta.Owner != "lb46" || m.Meta.Epoch != 5 || m.Meta.Eligible {
			return fmt.Errorf("lb47 sees lb46's meta %+v (err %q)", m.Meta, m.MetaErr)
		}
		if m.Meta.Drained != set || m.Meta.DrainGen != 3 {
			return fmt.Errorf("drain set lost: %q gen %d", m.Meta.Drained, m.Meta.DrainGen)
		}
		return nil
	})
	if l, ok := nodes[0].logs.find("ERROR"); ok {
		t.Errorf("lb46 logged an error: %s", l)
	}
}

// TestClusterJunkFlood: 60-byte junk from 3,000 source addresses
// (127.0.6.0 up) to a node's gossip port, over real sockets: memberlist
// rejects every packet (a key mismatch), the node reports a handful of
// events and no more, and a real event afterwards (a peer joining) still
// reaches the event queue.
func TestClusterJunkFlood(t *testing.T) {
	names := map[int]string{48: "lb48", 49: "lb49"}
	specs := fullMesh(testKey, names, map[int]int{48: 100, 49: 90})
	n := startNodes(t, names, specs[0])[0]
	junk := make([]byte, 60)
	junk[0] = 1 // an encryption version memberlist knows: it tries every key
	for i := range junk[1:] {
		junk[i+1] = byte(i * 37)
	}
	sent := 0
	for i := range 3000 {
		src := net.IPv4(127, 0, byte(6+i/250), byte(1+i%250))
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: src}, net.UDPAddrFromAddrPort(testAddr(48)))
		if err != nil {
			t.Fatalf("source %v: %v", src, err)
		}
		if _, err := conn.Write(junk); err == nil {
			sent++
		}
		conn.Close()
	}
	waitFor(t, 5*time.Second, "the junk counted", func() error {
		if k := n.c.Stats().KeyMismatches; k < uint64(sent)*9/10 {
			return fmt.Errorf("%d key mismatches of %d packets", k, sent)
		}
		return nil
	})
	evs := len(n.events)
	t.Logf("%d junk packets from 3,000 sources: %d key mismatches counted, %d events", sent, n.c.Stats().KeyMismatches, evs)
	if evs > 2*reportBurst {
		t.Errorf("%d events for the flood, want at most %d", evs, 2*reportBurst)
	}
	// The real peer starts; its join is reported.
	startNodes(t, names, specs[1])
	waitEvent(t, n, 5*time.Second, "lb49 joins after the flood", func(e Event) bool {
		return e.Type == EventJoin && e.Member == "lb49"
	})
	if d := n.c.Stats().EventsDropped; d != 0 {
		t.Errorf("%d events dropped", d)
	}
}
