package cluster

import (
	"testing"
)

// panicking turns panic routing on in a test view.
func panicking(v View) View {
	v.PanicRouting = true
	return v
}

// TestElectPanic: with panic routing on and no eligible member, the live
// members that are not leaving stand in; every other rule stays.
func TestElectPanic(t *testing.T) {
	tests := []electCase{
		{
			desc: "nobody eligible, no owner: the highest (priority, name) claims",
			view: panicking(view(node("lb1", 200, inelig), node("lb2", 150, inelig), node("lb3", 120, inelig))),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 1, elected: "lb1", panic: true,
			reason: "panic routing",
		},
		{
			desc: "nobody eligible, no owner: the others agree and do not claim",
			view: panicking(view(node("lb1", 200, inelig), node("lb2", 150, inelig), node("lb3", 120, inelig))),
			self: "lb2",
			hold: false, owner: "", epoch: 0, elected: "lb1", panic: true,
		},
		{
			desc: "nobody eligible, panic routing off: nobody claims (the old rule)",
			view: view(node("lb1", 200, inelig), node("lb2", 150, inelig), node("lb3", 120, inelig)),
			self: "lb1",
			hold: false, elected: "",
			reason: "no member is eligible",
		},
		{
			desc: "ineligible owner, nobody eligible: the owner keeps the VIP and is elected",
			view: panicking(view(node("lb1", 100, claims(4), inelig), node("lb2", 150, inelig), node("lb3", 120, inelig))),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 4, elected: "lb1", panic: true,
			reason: "owner: keeps the VIP (lb1 holds the VIP with epoch 4; panic routing",
		},
		{
			desc: "ineligible owner, nobody eligible: a higher priority peer does not take over",
			view: panicking(view(node("lb1", 100, claims(4), inelig), node("lb2", 150, inelig), node("lb3", 120, inelig))),
			self: "lb2",
			hold: false, owner: "lb1", epoch: 4, elected: "lb1", panic: true,
		},
		{
			desc: "an eligible member is preferred over a panicking owner",
			view: panicking(view(node("lb1", 200, claims(4), inelig), node("lb2", 150, inelig), node("lb3", 120))),
			self: "lb3",
			hold: true, owner: "lb3", epoch: 5, elected: "lb3",
			reason: "owner lb1 is not eligible",
		},
		{
			desc: "an eligible member is preferred: the panicking owner holds until its claim is seen",
			view: panicking(view(node("lb1", 200, claims(4), inelig), node("lb2", 150, inelig), node("lb3", 120))),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 4, elected: "lb3",
			reason: "hands over to lb3",
		},
		{
			desc: "an eligible member with no owner: it claims, not the higher priority panicking one",
			view: panicking(view(node("lb1", 200, inelig), node("lb2", 150, inelig), node("lb3", 120))),
			self: "lb1",
			hold: false, elected: "lb3",
		},
		{
			desc: "majority rule unchanged: a panicking node alone does not claim",
			view: panicking(view(node("lb1", 200, inelig), node("lb2", 150, inelig, dead), node("lb3", 120, inelig, dead))),
			self: "lb1",
			hold: false, elected: "lb1", panic: true,
			reason: "no majority",
		},
		{
			desc: "majority rule unchanged: a panicking owner alone releases",
			view: panicking(view(node("lb1", 200, claims(3), inelig), node("lb2", 150, inelig, dead), node("lb3", 120, inelig, dead))),
			self: "lb1",
			hold: false, owner: "", epoch: 3, elected: "lb1", panic: true,
			reason: "no majority",
		},
		{
			desc: "a leaving member does not stand in",
			view: panicking(view(node("lb1", 200, leaving), node("lb2", 150, inelig), node("lb3", 120, inelig))),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 1, elected: "lb2", panic: true,
		},
		{
			desc: "a leaving owner in panic hands the VIP to the live member it names",
			view: panicking(view(node("lb1", 200, claims(4), leaving, handoff("lb2")), node("lb2", 150, inelig), node("lb3", 120, inelig))),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 5, elected: "lb2", panic: true,
			reason: "hands the VIP to lb2",
		},
		{
			desc: "the reference digest still wins in panic",
			view: panicking(view(node("lb1", 200, inelig, digest("d2")), node("lb2", 150, inelig), node("lb3", 120, inelig))),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 1, elected: "lb2", panic: true,
		},
	}
	runElect(t, tests)
}

// TestElectPanicAgree: in panic, nodes with the same view agree on the
// owner and exactly one holds.
func TestElectPanicAgree(t *testing.T) {
	for _, v := range []View{
		panicking(view(node("lb1", 100, inelig), node("lb2", 150, inelig), node("lb3", 120, inelig))),
		panicking(view(node("lb1", 100, inelig, claims(2)), node("lb2", 150, inelig), node("lb3", 120, inelig))),
	} {
		holders := 0
		elected := map[string]bool{}
		for _, self := range v.Peers {
			d := Elect(v, self)
			if d.Hold {
				holders++
			}
			elected[d.Elected] = true
		}
		if holders != 1 || len(elected) != 1 {
			t.Errorf("holders %d, elected %v: want exactly one holder and one elected", holders, elected)
		}
	}
}
