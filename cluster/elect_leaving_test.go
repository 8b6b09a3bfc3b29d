package cluster

import "testing"

func leaving(m *Member) { m.Meta.Leaving, m.Meta.Eligible = true, false }

// TestElectLeaving: a departing member (Meta.Leaving, from its metadata or
// its beats) counts for nothing but its own handoff: not toward anyone's
// majority except its handoff target's (and its own, while it holds), and
// no peer other than its target is elected because of it.
func TestElectLeaving(t *testing.T) {
	tests := []struct {
		desc    string
		view    View
		self    string
		hold    bool
		elected string
		have    int
	}{
		{
			desc: "a third peer that does not hear the target makes no claim on the departing node's beats",
			view: view(node("lb1", 200, claims(4), leaving, handoff("lb2")), node("lb2", 150, dead), node("lb3", 100)),
			self: "lb3", hold: false, elected: "", have: 1,
		},
		{
			desc: "a third peer that does not hear the departing owner's target does not count the departing node",
			view: view(node("lb1", 200, leaving), node("lb2", 150, dead), node("lb3", 100)),
			self: "lb3", hold: false, elected: "lb3", have: 1,
		},
		{
			desc: "the handoff target counts the departing owner and claims with one peer down",
			view: view(node("lb1", 200, claims(4), leaving, handoff("lb2")), node("lb2", 150), node("lb3", 100, dead)),
			self: "lb2", hold: true, elected: "lb2", have: 2,
		},
		{
			desc: "the departing owner counts itself and holds until the target's claim is seen",
			view: view(node("lb1", 200, claims(4), leaving, handoff("lb2")), node("lb2", 150), node("lb3", 100, dead)),
			self: "lb1", hold: true, elected: "lb2", have: 2,
		},
		{
			desc: "with a majority without the departing owner, a third peer still leaves the VIP to the target",
			view: withPeers(view(node("lb1", 200, claims(4), leaving, handoff("lb2")), node("lb2", 150, dead), node("lb3", 100), node("lb4", 90), node("lb5", 80)),
				"lb1", "lb2", "lb3", "lb4", "lb5"),
			self: "lb3", hold: false, elected: "", have: 3,
		},
		{
			desc: "the departing owner's target is elected over a higher-priority peer",
			view: view(node("lb1", 200, claims(4), leaving, handoff("lb2")), node("lb2", 100), node("lb3", 150)),
			self: "lb3", hold: false, elected: "lb2", have: 2,
		},
		{
			desc: "the target claims, whatever the priorities",
			view: view(node("lb1", 200, claims(4), leaving, handoff("lb2")), node("lb2", 100), node("lb3", 150)),
			self: "lb2", hold: true, elected: "lb2", have: 3,
		},
		{
			desc: "after the handoff the new owner keeps the VIP and the departed node counts for nothing",
			view: view(node("lb1", 200, leaving, believes("lb2", 5)), node("lb2", 150, claims(5)), node("lb3", 100)),
			self: "lb3", hold: false, elected: "lb2", have: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			d := Elect(tc.view, tc.self)
			if d.Hold != tc.hold || d.Elected != tc.elected || d.Quorum.Have != tc.have {
				t.Errorf("Elect(%s) = hold %v elected %q have %d (%s); want hold %v elected %q have %d",
					tc.self, d.Hold, d.Elected, d.Quorum.Have, d.Reason, tc.hold, tc.elected, tc.have)
			}
		})
	}
}
