package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
)

// peerSpec is another member of the fake cluster.
type peerSpec struct {
	name            string
	priority        int
	fresh, eligible bool
	owner           string
	epoch           uint64
}

// actions are the calls on the VIP, the lease and the connection sync:
// what moves the VIP.
func actionsOf(calls []string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, "vip.") || strings.HasPrefix(c, "lease.") || strings.HasPrefix(c, "sync.") {
			out = append(out, c)
		}
	}
	return out
}

var (
	acquireCalls = []string{"lease.Renew", "sync.SetHolding true", "vip.Add eth0 198.18.5.100"}
	releaseCalls = []string{"vip.Remove eth0 198.18.5.100", "lease.Drop", "sync.SetHolding false"}
)

// TestDecide: the election's decision carried out and published, the
// startup wait and the epoch rules included. The rig's node is lb1
// (priority 100) with peers lb2 and lb3.
func TestDecide(t *testing.T) {
	const noEpoch = ^uint64(0) // the published epoch is not checked
	tests := []struct {
		name  string
		peers []peerSpec
		// setup runs after the rig is made eligible, past its startup wait.
		setup       func(r *rig)
		wait        time.Duration
		wantHold    bool
		wantWaiting bool
		wantOwner   string
		wantEpoch   uint64
		wantElig    bool
		wantCalls   []string
	}{
		{
			name:  "startup wait, view incomplete: no claim, and no epoch of a claim not made",
			peers: []peerSpec{{"lb2", 50, true, true, "", 4}, {"lb3", 50, false, false, "", 0}},
			setup: func(r *rig) { r.s.waiting, r.s.started = true, time.Now() },
			wait:  time.Hour, wantWaiting: true, wantOwner: "", wantEpoch: 4, wantElig: true,
		},
		{
			name:  "startup wait over in time: claims with the highest epoch + 1",
			peers: []peerSpec{{"lb2", 50, true, true, "", 4}, {"lb3", 50, false, false, "", 0}},
			setup: func(r *rig) { r.s.waiting, r.s.started = true, time.Now().Add(-2*time.Second) },
			wait:  time.Second, wantHold: true, wantOwner: "lb1", wantEpoch: 5, wantElig: true, wantCalls: acquireCalls,
		},
		{
			name:  "startup wait ends early once every peer is heard",
			peers: []peerSpec{{"lb2", 50, true, true, "", 4}, {"lb3", 50, true, true, "", 2}},
			setup: func(r *rig) { r.s.waiting, r.s.started = true, time.Now() },
			wait:  time.Hour, wantHold: true, wantOwner: "lb1", wantEpoch: 5, wantElig: true, wantCalls: acquireCalls,
		},
		{
			name:  "startup wait: an owner heard is published as heard",
			peers: []peerSpec{{"lb2", 50, true, true, "lb2", 7}, {"lb3", 50, false, false, "", 0}},
			setup: func(r *rig) { r.s.waiting, r.s.started = true, time.Now() },
			wait:  time.Hour, wantWaiting: true, wantOwner: "lb2", wantEpoch: 7, wantElig: true,
		},
		{
			name:  "startup wait over: the owner keeps the VIP (no preemption)",
			peers: []peerSpec{{"lb2", 50, true, true, "lb2", 7}, {"lb3", 50, true, true, "lb2", 7}},
			setup: func(r *rig) { r.s.waiting, r.s.started = true, time.Now() },
			wait:  time.Hour, wantOwner: "lb2", wantEpoch: 7, wantElig: true,
		},
		{
			name:  "an address an earlier process left goes once the wait is over",
			peers: []peerSpec{{"lb2", 50, true, true, "lb2", 7}, {"lb3", 50, true, true, "lb2", 7}},
			setup: func(r *rig) { r.hold(0); r.s.last = cluster.Decision{}; r.s.waiting, r.s.started = true, time.Now() },
			wait:  time.Hour, wantOwner: "lb2", wantEpoch: 7, wantElig: true, wantCalls: releaseCalls,
		},
		{
			name:  "an address an earlier process left is announced once the election keeps it here",
			peers: []peerSpec{{"lb2", 50, true, true, "", 4}, {"lb3", 50, true, true, "", 2}},
			setup: func(r *rig) {
				r.hold(0)
				r.s.adopted = true
				r.s.last = cluster.Decision{}
				r.s.waiting, r.s.started = true, time.Now()
			},
			wait: time.Hour, wantHold: true, wantOwner: "lb1", wantEpoch: 5, wantElig: true, wantCalls: acquireCalls,
		},
		{
			name:     "an adopted address announced once, not on every decision",
			peers:    []peerSpec{{"lb2", 50, true, true, "lb1", 5}, {"lb3", 50, true, true, "lb1", 5}},
			setup:    func(r *rig) { r.hold(5) },
			wantHold: true, wantOwner: "lb1", wantEpoch: 5, wantElig: true,
		},
		{
			name:      "no healthy backend: not eligible, no claim",
			peers:     []peerSpec{{"lb2", 50, true, true, "", 4}, {"lb3", 50, true, true, "", 0}},
			setup:     func(r *rig) { r.s.programmed = map[string]bool{"cp1": false, "cp2": false} },
			wantOwner: "", wantEpoch: 4,
		},
		{
			name:      "VIP interface down: not eligible",
			peers:     []peerSpec{{"lb2", 50, true, true, "", 4}, {"lb3", 50, true, true, "", 0}},
			setup:     func(r *rig) { r.s.ifaceUp = false },
			wantOwner: "", wantEpoch: 4,
		},
		{
			name:      "datapath not yet programmed: not eligible",
			peers:     []peerSpec{{"lb2", 50, true, true, "", 4}, {"lb3", 50, true, true, "", 0}},
			setup:     func(r *rig) { r.s.reconciled = false },
			wantOwner: "", wantEpoch: 4,
		},
		{
			name:     "the owner keeps the VIP and its epoch",
			peers:    []peerSpec{{"lb2", 50, true, true, "lb1", 5}, {"lb3", 50, true, true, "lb1", 5}},
			setup:    func(r *rig) { r.hold(5) },
			wantHold: true, wantOwner: "lb1", wantEpoch: 5, wantElig: true,
		},
		{
			name:      "the holder yields to a stronger claim and publishes the new owner",
			peers:     []peerSpec{{"lb2", 50, true, true, "lb2", 9}, {"lb3", 50, true, true, "lb2", 9}},
			setup:     func(r *rig) { r.hold(5) },
			wantOwner: "lb2", wantEpoch: 9, wantElig: true, wantCalls: releaseCalls,
		},
		{
			name:      "no majority: the holder releases",
			peers:     []peerSpec{{"lb2", 50, false, true, "", 0}, {"lb3", 50, false, true, "", 0}},
			setup:     func(r *rig) { r.hold(5) },
			wantOwner: "", wantEpoch: noEpoch, wantElig: true, wantCalls: releaseCalls,
		},
		{
			name:      "no majority: no claim",
			peers:     []peerSpec{{"lb2", 50, false, true, "", 0}, {"lb3", 50, false, true, "", 0}},
			wantOwner: "", wantEpoch: noEpoch, wantElig: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{StartupWait: max(tc.wait, time.Millisecond)})
			r.eligible()
			for _, p := range tc.peers {
				r.cl.peer(p.name, p.priority, p.fresh, p.eligible, p.owner, p.epoch)
			}
			if tc.setup != nil {
				tc.setup(r)
			}
			r.d.decide(r.s)
			if r.s.holding != tc.wantHold || r.s.waiting != tc.wantWaiting || r.s.eligible != tc.wantElig {
				t.Errorf("holding %v waiting %v eligible %v, want %v %v %v (decision %+v)",
					r.s.holding, r.s.waiting, r.s.eligible, tc.wantHold, tc.wantWaiting, tc.wantElig, r.s.last)
			}
			pub := r.cl.last()
			if pub.Owner != tc.wantOwner || (tc.wantEpoch != noEpoch && pub.Epoch != tc.wantEpoch) || pub.Eligible != tc.wantElig {
				t.Errorf("published owner %q epoch %d eligible %v, want %q %d %v (decision %+v)",
					pub.Owner, pub.Epoch, pub.Eligible, tc.wantOwner, tc.wantEpoch, tc.wantElig, r.s.last)
			}
			if got := actionsOf(r.log.get()); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			// What the beats carry matches the metadata.
			beats := slices.DeleteFunc(r.log.get(), func(c string) bool { return !strings.HasPrefix(c, "beat.Refresh") })
			if len(beats) == 0 || !strings.HasPrefix(beats[len(beats)-1], "beat.Refresh owner="+tc.wantOwner+" ") {
				t.Errorf("beats %q, want the last with owner %q", beats, tc.wantOwner)
			}
			st := r.d.Status()
			if st.Holding != tc.wantHold || st.Waiting != tc.wantWaiting || st.Decision.Owner != r.s.last.Owner {
				t.Errorf("status holding %v waiting %v owner %q, want the loop's %v %v %q", st.Holding, st.Waiting, st.Decision.Owner, tc.wantHold, tc.wantWaiting, r.s.last.Owner)
			}
		})
	}
}

// TestApply: the VIP address and the lease follow the decision, the lease
// first on a claim (the announcements need it), the address first on a
// release.
func TestApply(t *testing.T) {
	moved := func(r *rig) {
		r.hold(3)
		r.s.held = []dataplane.ServiceVIP{{Interface: "eth1", Addr: r.s.held[0].Addr, Port: r.s.held[0].Port}} // before a reload moved it
	}
	tests := []struct {
		name         string
		hold         bool
		setup        func(r *rig)
		addErr       bool
		wantHolding  bool
		wantCalls    []string
		wantAcquired int
		wantReleased int
	}{
		{name: "claim", hold: true, wantHolding: true, wantCalls: acquireCalls, wantAcquired: 1},
		{name: "keep", hold: true, setup: func(r *rig) { r.hold(3) }, wantHolding: true},
		{name: "keep, the VIP moved to another interface", hold: true, setup: moved, wantHolding: true,
			wantCalls:    append([]string{"vip.Remove eth1 198.18.5.100", "lease.Drop", "sync.SetHolding false"}, acquireCalls...),
			wantAcquired: 1, wantReleased: 1},
		{name: "release", setup: func(r *rig) { r.hold(3) }, wantCalls: releaseCalls, wantReleased: 1},
		{name: "nothing held, nothing to do"},
		{name: "claim, the address cannot be added", hold: true, addErr: true, wantHolding: true, wantCalls: acquireCalls},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{})
			if tc.setup != nil {
				tc.setup(r)
			}
			if tc.addErr {
				r.vip.addErr = errFake
			}
			r.d.apply(r.s, cluster.Decision{Hold: tc.hold, Reason: "test reason"})
			if r.s.holding != tc.wantHolding {
				t.Errorf("holding %v, want %v", r.s.holding, tc.wantHolding)
			}
			if got := actionsOf(r.log.get()); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			acq, rel := r.events(EventVIPAcquired), r.events(EventVIPReleased)
			if len(acq) != tc.wantAcquired || len(rel) != tc.wantReleased {
				t.Errorf("events acquired %q released %q, want %d and %d", acq, rel, tc.wantAcquired, tc.wantReleased)
			}
			for _, e := range append(acq, rel...) {
				if !strings.HasSuffix(e, ": test reason") && !strings.HasSuffix(e, ": VIP configuration changed") {
					t.Errorf("event %q does not give the reason", e)
				}
			}
			if tc.wantHolding && !tc.addErr && !slices.Equal(r.s.held, vipPlaces(r.s.cfg)) {
				t.Errorf("held %v, want the configured places", r.s.held)
			}
			if !tc.wantHolding && len(r.s.held) != 0 {
				t.Errorf("released, still held %v", r.s.held)
			}
		})
	}
}

// TestRenewLease: the lease is renewed only while holding, and not
// during the startup wait (an address an earlier process left is held
// but not answered for until the election says so).
func TestRenewLease(t *testing.T) {
	r := newRig(t, Options{})
	r.s.waiting = false
	r.d.renewLease(r.s)
	if got := r.log.get(); len(got) != 0 {
		t.Errorf("not holding: %q, want no call", got)
	}
	r.hold(1)
	r.s.waiting = true
	r.d.renewLease(r.s)
	if got := r.log.get(); len(got) != 0 {
		t.Errorf("holding in the startup wait: %q, want no call", got)
	}
	r.s.waiting = false
	r.d.renewLease(r.s)
	if got := r.log.get(); !slices.Equal(got, []string{"lease.Renew"}) {
		t.Errorf("holding: %q, want one renewal", got)
	}
}
