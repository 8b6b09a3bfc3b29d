package drills

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGracefulStopRemovesGate: a daemon stopped with SIGTERM removes the
// owner lease's ARP gate (`table netdev epconsole-lease4`, or `table arp
// epconsole` with --no-beat-lease), since the VIP leaves the
// host with it; a daemon killed with SIGKILL leaves it (the control: a
// crash must leave the gate, so the crashed host stays silent for the VIP).
func TestGracefulStopRemovesGate(t *testing.T) {
	c, owner := newCluster(t, "clw", 60*time.Second)
	var killed string
	for _, h := range c.lbs {
		if h.Name() != owner {
			killed = h.Name()
			break
		}
	}
	c.signal(killed, syscall.SIGKILL)
	_ = c.waitExit(c.daemons[killed], 10*time.Second) // killed: an error by design
	for _, h := range c.lbs {
		if h.Name() != killed {
			c.signal(h.Name(), syscall.SIGTERM)
		}
	}
	for _, h := range c.lbs {
		if h.Name() == killed {
			continue
		}
		if err := c.waitExit(c.daemons[h.Name()], 15*time.Second); err != nil {
			c.dumpLog(c.daemons[h.Name()])
			t.Fatalf("daemon %s after SIGTERM: %v, want a clean exit", h.Name(), err)
		}
	}
	for _, h := range c.lbs {
		out, err := h.Command(c.ctx, "nft", "list", "tables").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list tables on %s: %v: %s", h.Name(), err, out)
		}
		gate := strings.Contains(string(out), "table netdev epconsole-lease4") || strings.Contains(string(out), "table arp epconsole")
		t.Logf("%s (%s): arp gate present %v", h.Name(), map[bool]string{true: "SIGKILL", false: "SIGTERM"}[h.Name() == killed], gate)
		switch {
		case h.Name() == killed && !gate:
			t.Errorf("control: %s was killed with SIGKILL and has no arp gate table; the drill cannot tell a crash from a stop:\n%s", h.Name(), out)
		case h.Name() != killed && gate:
			t.Errorf("%s stopped with SIGTERM and left the arp gate table: a VIP put on the host by anything else cannot be resolved:\n%s", h.Name(), out)
		}
	}
}
