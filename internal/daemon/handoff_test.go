package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
)

// TestHandoff: a graceful stop hands the VIP over make before break (the
// address stays until the successor's claim is seen), releases it anyway
// when no successor claims in time, removes the owner lease's ARP/NA gate
// (the VIP is off this host: another holder of the address must be
// answered for), and leaves the cluster last.
func TestHandoff(t *testing.T) {
	tests := []struct {
		name string
		hold bool
		// successor: lb2 claims after this many of lb1's ineligible
		// publications (0: never).
		successor   int
		lb2Eligible bool
		timeout     time.Duration
		wantCalls   []string
		wantNoneIn  bool // the "no successor in time" release
		minDuration time.Duration
	}{
		{name: "a successor claims: make before break", hold: true, successor: 3, lb2Eligible: true, timeout: 10 * time.Second,
			wantCalls: []string{"lb2 claims", "vip.Remove eth0 198.18.5.100", "lease.Drop", "sync.SetHolding false", "lease.Remove", "cluster.Leave"}},
		{name: "no successor in time: released anyway", hold: true, timeout: 60 * time.Millisecond,
			wantCalls:  []string{"vip.Remove eth0 198.18.5.100", "lease.Drop", "sync.SetHolding false", "lease.Remove", "cluster.Leave"},
			wantNoneIn: true, minDuration: 60 * time.Millisecond},
		{name: "holding nothing: leaves at once", lb2Eligible: true, timeout: 10 * time.Second,
			wantCalls: []string{"lease.Remove", "cluster.Leave"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{HandoffTimeout: tc.timeout})
			r.eligible()
			// lb2 is live (eligible or not), lb3 gone: lb1 keeps a majority
			// while it hands over.
			r.cl.peer("lb2", 50, true, tc.lb2Eligible, "", 0)
			r.cl.peer("lb3", 50, false, false, "", 0)
			if tc.hold {
				r.hold(5)
				r.cl.peer("lb2", 50, true, tc.lb2Eligible, "lb1", 5)
			}
			ineligible := 0
			r.cl.onSetLocal = func(l cluster.Local) {
				if l.Eligible {
					return
				}
				ineligible++
				if tc.successor > 0 && ineligible == tc.successor {
					r.log.add("lb2 claims")
					r.cl.peer("lb2", 50, true, true, "lb2", 6)
				}
			}
			t0 := time.Now()
			r.d.handoff(r.s)
			took := time.Since(t0)
			got := slices.DeleteFunc(r.log.get(), func(c string) bool {
				return strings.HasPrefix(c, "beat.") || c == "lease.Renew"
			})
			if !slices.Equal(got, tc.wantCalls) {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			if r.s.holding || !r.s.leaving {
				t.Errorf("after the handoff: holding %v leaving %v, want false, true", r.s.holding, r.s.leaving)
			}
			if pub := r.cl.last(); pub.Eligible || pub.Owner != "" {
				t.Errorf("last publication %+v: want ineligible, no owner", pub)
			}
			released := r.events(EventVIPReleased)
			none := len(released) == 1 && strings.HasSuffix(released[0], "graceful stop: no successor in time")
			if none != tc.wantNoneIn {
				t.Errorf("released %q: released for want of a successor %v, want %v", released, none, tc.wantNoneIn)
			}
			if took < tc.minDuration || took > tc.timeout+time.Second {
				t.Errorf("took %v, want between %v and the timeout %v", took, tc.minDuration, tc.timeout)
			}
			if len(r.events(EventHandoff)) != 1 {
				t.Errorf("handoff events %q, want one", r.events(EventHandoff))
			}
		})
	}
}

// TestHandoffDuringStartupWait: a stop during the startup wait lets the
// election decide about an address an earlier process left.
func TestHandoffDuringStartupWait(t *testing.T) {
	r := newRig(t, Options{HandoffTimeout: time.Second, StartupWait: time.Hour})
	r.eligible()
	r.hold(0)
	r.s.last = cluster.Decision{}
	r.s.waiting = true
	r.cl.peer("lb2", 50, true, true, "lb2", 7)
	r.cl.peer("lb3", 50, true, true, "lb2", 7)
	r.d.handoff(r.s)
	if r.s.waiting || r.s.holding {
		t.Errorf("waiting %v holding %v, want neither", r.s.waiting, r.s.holding)
	}
	if r.log.index("vip.Remove") < 0 || r.log.index("vip.Remove") > r.log.index("cluster.Leave") {
		t.Errorf("calls %q: want the address removed, then the cluster left", r.log.get())
	}
}
