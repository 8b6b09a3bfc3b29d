package cluster

import "testing"

func handoff(to string) mod { return func(m *Member) { m.Meta.HandoffTo = to } }

// TestElectHandoff: an owner's HandoffTo elects the named peer while it is
// a live, eligible candidate; the owner holds until the claim is seen.
func TestElectHandoff(t *testing.T) {
	tests := []electCase{
		{
			desc: "the named lower-priority peer claims with a new epoch",
			view: view(node("lb1", 200, claims(4), handoff("lb3")), node("lb2", 150), node("lb3", 100)),
			self: "lb3", hold: true, owner: "lb3", epoch: 5, elected: "lb3",
		},
		{
			desc: "the owner holds until the named peer's claim is seen",
			view: view(node("lb1", 200, claims(4), handoff("lb3")), node("lb2", 150), node("lb3", 100)),
			self: "lb1", hold: true, owner: "lb1", epoch: 4, elected: "lb3",
		},
		{
			desc: "a third peer does not claim",
			view: view(node("lb1", 200, claims(4), handoff("lb3")), node("lb2", 150), node("lb3", 100)),
			self: "lb2", hold: false, owner: "lb1", epoch: 4, elected: "lb3",
		},
		{
			desc: "the owner releases once the named peer claims with a higher epoch",
			view: view(node("lb1", 200, claims(4), handoff("lb3")), node("lb2", 150), node("lb3", 100, claims(5))),
			self: "lb1", hold: false, owner: "lb3", epoch: 5, elected: "lb3",
		},
		{
			desc: "the new owner keeps the VIP after the handoff (non-preempt)",
			view: view(node("lb1", 200, believes("lb3", 5)), node("lb2", 150), node("lb3", 100, claims(5))),
			self: "lb3", hold: true, owner: "lb3", epoch: 5, elected: "lb3",
		},
		{
			desc: "a handoff to an ineligible peer changes nothing",
			view: view(node("lb1", 200, claims(4), handoff("lb3")), node("lb2", 150), node("lb3", 100, inelig)),
			self: "lb1", hold: true, owner: "lb1", epoch: 4, elected: "lb1",
		},
		{
			desc: "a handoff to a dead peer changes nothing",
			view: view(node("lb1", 200, claims(4), handoff("lb3")), node("lb2", 150), node("lb3", 100, dead)),
			self: "lb2", hold: false, owner: "lb1", epoch: 4, elected: "lb1",
		},
		{
			desc: "a HandoffTo published by a non-owner is ignored",
			view: view(node("lb1", 200, claims(4)), node("lb2", 150, handoff("lb3")), node("lb3", 100)),
			self: "lb3", hold: false, owner: "lb1", epoch: 4, elected: "lb1",
		},
	}
	runElect(t, tests)
}

func TestMetaHandoffDrainWire(t *testing.T) {
	// NamedMessages is this binary's: always set by the encoding.
	m := Meta{Name: "lb1", Priority: 100, HandoffTo: "lb2", Drained: "cp1,cp3", DrainGen: 7, NamedMessages: true, SyncStream: true}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Fatalf("decodeMeta(encodeMeta(%+v)) = %+v", m, got)
	}
}
