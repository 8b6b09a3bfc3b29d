package cluster

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/floodlimit"
)

// TestKeyMismatchFlood: junk from 3,000 spoofed sources to the gossip
// port (memberlist's decrypt failures, as it logs them) yields a handful
// of events and log lines and one summary a minute later; the limiter
// holds a bounded number of sources; a real event after the flood still
// gets through the daemon's event queue (256, as the daemon's), and a
// configured peer's key mismatch during the flood is still reported by
// name.
func TestKeyMismatchFlood(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	events := make(chan Event, 256)
	c := testCluster("lb1", events)
	logs := newLogRecorder()
	c.log = slog.New(logs)
	c.limiter = floodlimit.New(reportWindow, reportBurst, 1000, clock)
	c.logLimiter = floodlimit.New(reportWindow, logReportBurst, 1000, clock)

	for i := range 3000 {
		src := fmt.Sprintf("198.18.%d.%d:7946", 100+i/250, i%250)
		if i%1000 == 999 { // the configured lb2 with a wrong key, now and then
			src = testAddr(2).String()
		}
		c.handleMemberlistLog("[ERROR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=" + src + "\n")
		c.handleMemberlistLog("[WARN] memberlist: Got invalid checksum for UDP packet: from=" + src + "\n")
		now = now.Add(15 * time.Millisecond)
	}
	var got []Event
	drain := func() {
		for {
			select {
			case e := <-events:
				got = append(got, e)
			default:
				return
			}
		}
	}
	drain()
	if len(got) > 2*reportBurst {
		t.Errorf("%d events during the flood, want at most %d", len(got), 2*reportBurst)
	}
	peer := false
	for _, e := range got {
		peer = peer || e.Member == "lb2"
	}
	if !peer {
		t.Error("the configured peer's key mismatch was not reported during the flood")
	}
	if _, n := c.limiter.Size(); n > 1001 {
		t.Errorf("the limiter holds %d sources", n)
	}
	logs.mu.Lock()
	lines := len(*logs.lines)
	logs.mu.Unlock()
	if lines > 2*reportBurst+logReportBurst {
		t.Errorf("%d log lines during the flood", lines)
	}
	if c.Stats().KeyMismatches != 3000 {
		t.Errorf("counted %d key mismatches, want 3000", c.Stats().KeyMismatches)
	}

	// A minute on: one summary event and one summary log line.
	now = now.Add(reportWindow)
	c.flushReports()
	got = got[:0]
	drain()
	var sums []string
	for _, e := range got {
		if e.Type == EventKeyMismatch && e.Member == "" {
			sums = append(sums, e.Detail)
		}
	}
	if len(sums) != 1 || !strings.Contains(sums[0], "2,997 gossip packets and streams rejected for a key mismatch from at least 1,000 sources in the last minute") {
		t.Errorf("summary events %q", sums)
	}
	if l, ok := logs.find("memberlist warnings suppressed", "3,000 memberlist warnings"); !ok {
		t.Error("no summary of the memberlist warnings")
	} else {
		t.Logf("log: %s", l)
	}
	if k, n := c.limiter.Size(); k != 0 || n != 0 {
		t.Errorf("after the window the limiter holds %d kinds and %d sources", k, n)
	}

	// A real event after the flood gets through.
	c.report([]Event{{Type: EventJoin, Member: "lb3", Detail: "real"}})
	drain()
	if e := got[len(got)-1]; e.Type != EventJoin || e.Member != "lb3" {
		t.Errorf("last event %v, want lb3's join", e)
	}
	if s := c.Stats(); s.EventsDropped != 0 {
		t.Errorf("%d events dropped", s.EventsDropped)
	}
}

// TestSetPeersForgetsRemoved: a peer taken out of the configuration by a
// reload keeps no say: its metadata, backend views and drain set are
// forgotten, and a drain record naming it is no longer taken.
func TestSetPeersForgetsRemoved(t *testing.T) {
	c := testCluster("lb1", nil)
	c.members["lb3"] = &memberRec{name: "lb3", addr: testAddr(3), state: StateAlive, lastSeen: time.Now(),
		meta: Meta{Name: "lb3", Priority: 200, Eligible: true}}
	c.backends["lb3"] = map[string]*backendRec{"cp1": {w: wireBackend{Origin: "lb3", Seq: 1, Name: "cp1", State: "up"}}}
	if fresh, err := c.applyDrainLocked(wireDrain{Origin: "lb3", Gen: 9, Set: "cp1"}); !fresh || err != nil {
		t.Fatalf("lb3's drain record not taken while configured: %v %v", fresh, err)
	}
	if m, _ := c.View().Member("lb3"); m.Meta.DrainGen != 9 || len(m.Backends) != 1 {
		t.Fatalf("before: %+v", m)
	}
	if err := c.SetPeers([]Peer{{Name: "lb2", Addr: testAddr(2)}}); err != nil {
		t.Fatal(err)
	}
	m, _ := c.View().Member("lb3")
	if m.Configured || m.Meta.Priority != 0 || m.Meta.DrainGen != 0 || len(m.Backends) != 0 || m.MetaErr == "" {
		t.Errorf("after the reload lb3 is %+v", m)
	}
	if _, err := c.applyDrainLocked(wireDrain{Origin: "lb3", Gen: 10, Set: "cp2"}); err == nil {
		t.Error("a drain record of the removed peer is still taken")
	}
}
