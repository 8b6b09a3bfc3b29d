package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/dataplane"
)

// claimBeat is a beat loop whose helper claims: it records the plans the
// daemon sends and hands over the claims a test puts in.
type claimBeat struct {
	*fakeBeat
	plans  []heartbeat.ClaimPlan
	acks   []uint64
	claims []heartbeat.HelperClaim
	lease  bool
}

func (c *claimBeat) SetPlan(p heartbeat.ClaimPlan, ack uint64) error {
	c.plans, c.acks = append(c.plans, p), append(c.acks, ack)
	c.log.add("beat.SetPlan successor=%v owner=%s epoch=%d ack=%d", p.Successor, p.Owner, p.Epoch, ack)
	return nil
}

func (c *claimBeat) Claims() []heartbeat.HelperClaim {
	out := c.claims
	c.claims = nil
	return out
}

func (c *claimBeat) HelperLease() bool { return c.lease }

// claimRig is a rig whose node lb1 (priority 100) is next after the owner
// lb2 (priority 200, epoch 4); lb3 (priority 50) follows it.
func claimRig(t *testing.T) (*rig, *claimBeat) {
	r := newRig(t, Options{})
	cb := &claimBeat{fakeBeat: r.beats[0]}
	r.s.beater = cb
	r.d.claimStarted(r.s, &heartbeat.ClaimConfig{LeaseTTL: 40 * time.Millisecond})
	r.eligible()
	r.s.cfg.Node.Priority = 100
	r.cl.local.Priority = 100
	r.cl.peer("lb2", 200, true, true, "lb2", 4)
	r.cl.peer("lb3", 50, true, true, "lb2", 4)
	return r, cb
}

// TestHelperClaimPlan: the daemon hands its helper the succession plan
// on a decision that changes it, and only then.
func TestHelperClaimPlan(t *testing.T) {
	r, cb := claimRig(t)
	r.d.decide(r.s)
	r.d.decide(r.s)
	if len(cb.plans) != 1 {
		t.Fatalf("plans sent: %+v; want exactly one (the second decision changed nothing)", cb.plans)
	}
	if p := cb.plans[0]; !p.Successor || p.Owner != "lb2" || p.Epoch != 5 || p.Need != 2 || !p.Required {
		t.Errorf("plan %+v; want lb1 successor of lb2 with epoch 5, majority 2 of 3", p)
	}
	// The owner's beats stop: the daemon hears it from the helper too
	// (the owner is no longer live here), and its election now names no
	// owner; the plan for exactly this stays for the helper to claim on.
	r.cl.peer("lb2", 200, false, true, "lb2", 4)
	r.d.decide(r.s)
	if p := cb.plans[len(cb.plans)-1]; !p.Successor || p.Owner != "lb2" || p.Epoch != 5 {
		t.Errorf("plan once the owner is gone: %+v; want the plan in force (lb1 succeeds lb2 with epoch 5)", p)
	}
	r.cl.peer("lb2", 200, true, true, "lb2", 4)
	// lb3 says it hears no majority: a partition forms; no claim alone.
	m := r.cl.others["lb3"]
	m.NoMajority = true
	r.cl.others["lb3"] = m
	r.d.decide(r.s)
	if p := cb.plans[len(cb.plans)-1]; p.Successor {
		t.Errorf("plan while a partition forms: %+v; want no successor", p)
	}
	// By default the daemon renews the lease; with the helper's lease on,
	// its own renewal stays off and it opens the helper's short lease.
	if r.d.helperRenews(r.s) || r.d.leaseTTL(r.s) != dataplane.DefaultLeaseTTL {
		t.Errorf("helperRenews %v, lease ttl %v; want the daemon's %v lease", r.d.helperRenews(r.s), r.d.leaseTTL(r.s), dataplane.DefaultLeaseTTL)
	}
	r.d.claimStarted(r.s, &heartbeat.ClaimConfig{LeaseTTL: 40 * time.Millisecond, RenewLease: true})
	if !r.d.helperRenews(r.s) || r.d.leaseTTL(r.s) != 40*time.Millisecond {
		t.Errorf("with the helper's lease: helperRenews %v, lease ttl %v; want the helper's 40ms lease", r.d.helperRenews(r.s), r.d.leaseTTL(r.s))
	}
}

// TestHelperClaimAdoptOrUndo: a claim the daemon's view agrees with is
// adopted (the daemon holds the VIP with the claim's epoch, no second
// claim); one it disagrees with is undone in the same decision: the
// helper hears first, then the address goes and the lease is dropped.
func TestHelperClaimAdoptOrUndo(t *testing.T) {
	cases := []struct {
		name  string
		setup func(r *rig)
		epoch uint64
		adopt bool
		why   string
	}{
		{"owner gone here too: adopted", func(r *rig) { r.cl.peer("lb2", 200, false, true, "lb2", 4) }, 5, true, ""},
		{"owner still live in the daemon's view", func(r *rig) {}, 5, false, "live in the daemon's view"},
		{"third peer gone too: no majority", func(r *rig) {
			r.cl.peer("lb2", 200, false, true, "lb2", 4)
			r.cl.peer("lb3", 50, false, true, "lb2", 4)
		}, 5, false, "no majority"},
		{"a higher epoch published meanwhile", func(r *rig) {
			r.cl.peer("lb2", 200, false, true, "lb2", 4)
			r.cl.peer("lb3", 50, true, true, "", 7)
		}, 5, false, "epoch 8"},
		{"this node became ineligible", func(r *rig) {
			r.cl.peer("lb2", 200, false, true, "lb2", 4)
			r.s.programmed = map[string]bool{"cp1": false, "cp2": false}
		}, 5, false, "lb3"},
		{"leaving", func(r *rig) {
			r.cl.peer("lb2", 200, false, true, "lb2", 4)
			r.s.leaving = true
		}, 5, false, "leaving"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, cb := claimRig(t)
			r.d.decide(r.s) // the plan
			c.setup(r)
			r.log.reset()
			r.vip.on["eth0 198.18.5.100"] = true // the helper put the address on
			cb.claims = []heartbeat.HelperClaim{{Owner: "lb2", Epoch: c.epoch, LastBeat: 1, Verdict: 2, Lease: 3, Address: 4, Announced: 5}}
			r.d.decide(r.s)
			calls := r.log.get()
			// The daemon's own election may claim right after an undo (with
			// its own epoch): that is no adoption.
			if adopted := r.s.holding && r.s.last.Epoch == c.epoch; adopted != c.adopt {
				t.Fatalf("adopted %v (holding %v, epoch %d); want %v; calls %v", adopted, r.s.holding, r.s.last.Epoch, c.adopt, calls)
			}
			if got := cb.acks[len(cb.acks)-1]; got != c.epoch {
				t.Errorf("last acknowledgement %d; want %d", got, c.epoch)
			}
			undone := r.events(EventHelperClaimUndone)
			if c.adopt {
				if r.s.last.Epoch != c.epoch || r.cl.last().Owner != "lb1" || r.cl.last().Epoch != c.epoch {
					t.Errorf("adopted with decision epoch %d, published %+v; want lb1 with epoch %d", r.s.last.Epoch, r.cl.last(), c.epoch)
				}
				if len(undone) != 0 || slices.ContainsFunc(calls, func(s string) bool { return strings.HasPrefix(s, "vip.Remove") || s == "lease.Drop" }) {
					t.Errorf("an adopted claim was undone: %v %v", undone, calls)
				}
				if got := r.events(EventVIPAcquired); len(got) != 1 || !strings.Contains(got[0], "heartbeat helper") {
					t.Errorf("vip-acquired events %v; want one naming the heartbeat helper", got)
				}
				return
			}
			if len(undone) != 1 || !strings.Contains(undone[0], c.why) {
				t.Errorf("undone events %v; want one saying %q", undone, c.why)
			}
			ack := slices.IndexFunc(calls, func(s string) bool { return strings.HasPrefix(s, "beat.SetPlan") && strings.HasSuffix(s, "ack=5") })
			rm, drop := r.log.index("vip.Remove"), r.log.index("lease.Drop")
			if ack < 0 || rm < 0 || drop < 0 || ack > rm || ack > drop {
				t.Errorf("calls %v; want the helper acknowledged, then the address removed and the lease dropped", calls)
			}
			if r.vip.on["eth0 198.18.5.100"] && !r.s.holding {
				t.Error("the VIP is still on after the undo")
			}
		})
	}
}
