package cluster

import (
	"fmt"
	"testing"
	"time"
)

// TestClusterChanges: a peer's new metadata and a new backend view each
// signal Changes on the other node, so its decision loop needs no tick to
// see them; nothing signals while nothing changes.
func TestClusterChanges(t *testing.T) {
	names := map[int]string{1: "lb1", 2: "lb2"}
	nodes := startNodes(t, names, fullMesh(testKey, names, map[int]int{1: 100, 2: 150})...)
	lb1, lb2 := nodes[0], nodes[1]
	waitFor(t, 5*time.Second, "lb1 sees lb2", func() error { return sees(lb1, "lb2", 150) })
	drain := func() {
		for {
			select {
			case <-lb1.c.Changes():
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	changed := func(what string) {
		t.Helper()
		select {
		case <-lb1.c.Changes():
		case <-time.After(5 * time.Second):
			t.Fatalf("no change signalled on lb1 after %s", what)
		}
	}
	drain()
	select {
	case <-lb1.c.Changes():
		t.Fatal("a change signalled while nothing changed")
	case <-time.After(500 * time.Millisecond):
	}

	if err := lb2.c.SetLocal(Local{Priority: 150, Eligible: true, Digest: "d1", Owner: "lb2", Epoch: 7}); err != nil {
		t.Fatal(err)
	}
	changed("lb2 published a claim")
	waitFor(t, 5*time.Second, "lb1 sees lb2's claim", func() error {
		if m, _ := lb1.c.View().Member("lb2"); m.Meta.Owner != "lb2" || m.Meta.Epoch != 7 {
			return fmt.Errorf("lb2's metadata on lb1: %+v", m.Meta)
		}
		return nil
	})

	drain()
	if err := lb2.c.SetBackends([]BackendView{{Name: "cp1", State: "down", Reason: "refused"}}); err != nil {
		t.Fatal(err)
	}
	changed("lb2 published a backend view")
}
