package cluster

import (
	"slices"
	"testing"
)

func TestElect(t *testing.T) {
	tests := []electCase{
		{
			desc: "basic priority: the highest priority claims with epoch 1",
			view: view(node("lb1", 100), node("lb2", 150), node("lb3", 120)),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 1, elected: "lb2",
			reason: "claims the VIP",
		},
		{
			desc: "basic priority: a lower priority node does not claim",
			view: view(node("lb1", 100), node("lb2", 150), node("lb3", 120)),
			self: "lb1",
			hold: false, owner: "", epoch: 0, elected: "lb2",
			reason: "lb2 is elected",
		},
		{
			desc: "a fresh peer whose metadata is unread here but whose beats say it holds the VIP: no new claim beside it",
			view: view(unread("lb1", 1), unread("lb2", 0), node("lb3", 100)),
			self: "lb3",
			hold: false, owner: "", epoch: 1, elected: "lb3",
			reason: "elected, but waits: lb1 beats that it holds the VIP (epoch 1)",
		},
		{
			desc: "fresh peers with unread metadata, control: none says it holds, so self claims",
			view: view(unread("lb1", 0), unread("lb2", 0), node("lb3", 100)),
			self: "lb3",
			hold: true, owner: "lb3", epoch: 1, elected: "lb3",
			reason: "claims the VIP",
		},
		{
			desc: "a forming partition: the old owner released for want of a majority; a fresh peer saying it hears no majority holds the claim back",
			view: view(node("lb1", 150), node("lb2", 120, noMajority), node("lb3", 100), node("lb4", 80), node("lb5", 60)),
			self: "lb1",
			hold: false, owner: "", epoch: 0, elected: "lb1",
			reason: "elected, but waits: lb2 hears no majority",
		},
		{
			desc: "a forming partition, control: the same view without the sign claims",
			view: view(node("lb1", 150), node("lb2", 120), node("lb3", 100), node("lb4", 80), node("lb5", 60)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 1, elected: "lb1",
			reason: "claims the VIP",
		},
		{
			desc: "a forming partition: an owner keeps holding whatever a peer says",
			view: view(node("lb1", 150, claims(3)), node("lb2", 120, noMajority), node("lb3", 100)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 3, elected: "lb1",
			reason: "owner: keeps the VIP",
		},
		{
			desc: "a forming partition: with two peers there is no majority rule to wait for",
			view: view(node("lb1", 150), node("lb2", 120, noMajority)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 1, elected: "lb1",
		},
		{
			desc: "name tie-break: at equal priority the greater name wins",
			view: view(node("lb1", 100), node("lb2", 100), node("lb3", 100)),
			self: "lb3",
			hold: true, owner: "lb3", epoch: 1, elected: "lb3",
		},
		{
			desc: "name tie-break: the others agree",
			view: view(node("lb1", 100), node("lb2", 100), node("lb3", 100)),
			self: "lb2",
			hold: false, elected: "lb3",
		},
		{
			desc: "non-preempt: the owner keeps the VIP against a higher priority",
			view: view(node("lb1", 100, claims(4)), node("lb2", 200), node("lb3", 120)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 4, elected: "lb1",
			reason: "owner: keeps the VIP",
		},
		{
			desc: "non-preempt: the higher priority node does not claim",
			view: view(node("lb1", 100, claims(4)), node("lb2", 200), node("lb3", 120)),
			self: "lb2",
			hold: false, owner: "lb1", epoch: 4, elected: "lb1",
		},
		{
			desc: "preempt: a higher priority node with preempt claims with a new epoch",
			view: view(node("lb1", 100, claims(4)), node("lb2", 200, preempt), node("lb3", 120)),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 5, elected: "lb2",
			reason: "preempts lb1",
		},
		{
			desc: "preempt: the old owner holds until the new claim is seen",
			view: view(node("lb1", 100, claims(4)), node("lb2", 200, preempt), node("lb3", 120)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 4, elected: "lb2",
			reason: "hands over to lb2",
		},
		{
			desc: "preempt: the old owner releases once the new claim is seen",
			view: view(node("lb1", 100, claims(4)), node("lb2", 200, preempt, claims(5)), node("lb3", 120)),
			self: "lb1",
			hold: false, owner: "lb2", epoch: 5, elected: "lb2",
		},
		{
			desc: "preempt: equal priority never preempts",
			view: view(node("lb1", 100, claims(4)), node("lb2", 100, preempt), node("lb3", 100)),
			self: "lb2",
			hold: false, owner: "lb1", epoch: 4, elected: "lb1",
		},
		{
			desc: "preempt: a lower priority node with preempt does not take the VIP",
			view: view(node("lb1", 150, claims(4)), node("lb2", 100, preempt), node("lb3", 120)),
			self: "lb2",
			hold: false, owner: "lb1", epoch: 4, elected: "lb1",
		},
		{
			desc: "ineligible owner: the best eligible member claims",
			view: view(node("lb1", 200, claims(4), inelig), node("lb2", 150), node("lb3", 120)),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 5, elected: "lb2",
			reason: "owner lb1 is not eligible",
		},
		{
			desc: "ineligible owner: it holds until the successor's claim is seen (make before break)",
			view: view(node("lb1", 200, claims(4), inelig), node("lb2", 150), node("lb3", 120)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 4, elected: "lb2",
		},
		{
			desc: "ineligible owner: released after the successor claimed",
			view: view(node("lb1", 200, claims(4), inelig), node("lb2", 150, claims(5)), node("lb3", 120)),
			self: "lb1",
			hold: false, owner: "lb2", epoch: 5, elected: "lb2",
		},
		{
			desc: "ineligible owner and nobody else eligible: the owner keeps the VIP",
			view: view(node("lb1", 200, claims(4), inelig), node("lb2", 150, inelig), node("lb3", 120, inelig)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 4, elected: "",
			reason: "no other member is eligible",
		},
		{
			desc: "nobody eligible and no owner: nobody claims",
			view: view(node("lb1", 200, inelig), node("lb2", 150, inelig), node("lb3", 120, inelig)),
			self: "lb1",
			hold: false, elected: "",
			reason: "no member is eligible",
		},
		{
			desc: "dead owner: the successor claims with the next epoch",
			view: view(node("lb1", 100), node("lb2", 150), node("lb3", 200, claims(7), dead)),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 8, elected: "lb2",
			reason: "no live owner",
		},
		{
			desc: "dead owner: the others agree on the successor",
			view: view(node("lb1", 100), node("lb2", 150), node("lb3", 200, claims(7), dead)),
			self: "lb1",
			hold: false, owner: "", epoch: 7, elected: "lb2",
		},
		{
			desc: "dead owner: a stale belief in it from a node that still hears it holds the successor back",
			view: view(node("lb1", 100, believes("lb3", 7)), node("lb2", 150), node("lb3", 200, claims(7), dead)),
			self: "lb2",
			hold: false, owner: "", epoch: 7, elected: "lb2",
			reason: "waits: lb1 reports lb3 holds the VIP",
		},
		{
			desc: "minority partition (3 peers): the best node alone does not claim",
			view: view(node("lb1", 100, dead), node("lb2", 150), node("lb3", 120, dead)),
			self: "lb2",
			hold: false, elected: "lb2",
			reason: "no majority: hears 1 of 3 peers, majority 2",
		},
		{
			desc: "minority partition (3 peers): the owner drops the VIP",
			view: view(node("lb1", 100, dead), node("lb2", 150, claims(3)), node("lb3", 120, dead)),
			self: "lb2",
			hold: false, owner: "", epoch: 3, elected: "lb2",
			reason: "no majority",
		},
		{
			desc: "majority side (3 peers): the best of the two claims",
			view: view(node("lb1", 100), node("lb2", 150, claims(3), dead), node("lb3", 120)),
			self: "lb3",
			hold: true, owner: "lb3", epoch: 4, elected: "lb3",
		},
		{
			desc: "minority partition (5 peers): two of five never claim",
			view: view(node("lb1", 100, dead), node("lb2", 110, dead), node("lb3", 120, dead),
				node("lb4", 130), node("lb5", 140, claims(2))),
			self: "lb5",
			hold: false, owner: "", epoch: 2, elected: "lb5",
			reason: "hears 2 of 5 peers, majority 3",
		},
		{
			desc: "majority partition (5 peers): three of five elect among themselves",
			view: view(node("lb1", 100), node("lb2", 110), node("lb3", 120),
				node("lb4", 130, dead), node("lb5", 140, claims(2), dead)),
			self: "lb3",
			hold: true, owner: "lb3", epoch: 3, elected: "lb3",
			check: func(t *testing.T, d Decision) {
				if d.Quorum.Have != 3 || d.Quorum.Need != 3 || !d.Quorum.Required {
					t.Errorf("quorum = %+v, want have 3 need 3 required", d.Quorum)
				}
			},
		},
		{
			desc: "configured peers never seen count against the majority",
			view: withPeers(view(node("lb1", 100), node("lb2", 150)), "lb1", "lb2", "lb3", "lb4", "lb5"),
			self: "lb2",
			hold: false, elected: "lb2",
			reason: "hears 2 of 5 peers",
		},
		{
			desc: "2-peer mode: the survivor claims without a majority and says so",
			view: view(node("lb1", 100, claims(1), dead), node("lb2", 90)),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 2, elected: "lb2",
			reason: "a majority is impossible",
			check: func(t *testing.T, d Decision) {
				if d.Quorum.Possible || d.Quorum.Required || d.Quorum.Peers != 2 {
					t.Errorf("quorum = %+v, want 2 peers, not possible, not required", d.Quorum)
				}
			},
		},
		{
			desc: "2-peer mode: both alive, the owner keeps",
			view: view(node("lb1", 100, claims(1)), node("lb2", 90)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 1, elected: "lb1",
		},
		{
			desc: "single node: claims",
			view: view(node("lb1", 100)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 1, elected: "lb1",
			reason: "claims",
		},
		{
			desc: "digest mismatch: the owner keeps the VIP though its digest differs from the majority",
			view: view(node("lb1", 100, claims(4), digest("old")), node("lb2", 150, digest("new")), node("lb3", 120, digest("new"))),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 4, elected: "lb1",
			check: func(t *testing.T, d Decision) {
				if d.Digest != "new" || !slices.Equal(d.Mismatch, []string{"lb1"}) {
					t.Errorf("digest %q mismatch %v, want new [lb1]", d.Digest, d.Mismatch)
				}
			},
		},
		{
			desc: "digest mismatch: a mismatched preemptor does not take the VIP",
			view: view(node("lb1", 100, claims(4)), node("lb2", 110), node("lb3", 200, preempt, digest("other"))),
			self: "lb3",
			hold: false, owner: "lb1", epoch: 4, elected: "lb1",
		},
		{
			desc: "digest mismatch: a mismatched peer is not chosen as a new owner while a matching one is eligible",
			view: view(node("lb1", 100), node("lb2", 110), node("lb3", 200, digest("other"))),
			self: "lb3",
			hold: false, elected: "lb2",
			check: func(t *testing.T, d Decision) {
				if d.Digest != "d1" || !slices.Equal(d.Mismatch, []string{"lb3"}) {
					t.Errorf("digest %q mismatch %v, want d1 [lb3]", d.Digest, d.Mismatch)
				}
			},
		},
		{
			desc: "digest mismatch: the matching peer claims instead",
			view: view(node("lb1", 100), node("lb2", 110), node("lb3", 200, digest("other"))),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 1, elected: "lb2",
		},
		{
			desc: "digest mismatch: with no matching peer eligible a mismatched one is chosen (a VIP beats none)",
			view: view(node("lb1", 100, inelig), node("lb2", 110, inelig), node("lb3", 200, digest("other"))),
			self: "lb3",
			hold: true, owner: "lb3", epoch: 1, elected: "lb3",
			reason: "no eligible member has the reference config digest",
		},
		{
			desc: "digest mismatch: all digests differ, the best eligible member's digest is the reference",
			view: view(node("lb1", 100, digest("x")), node("lb2", 150, digest("y")), node("lb3", 120, digest("z"))),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 1, elected: "lb2",
			check: func(t *testing.T, d Decision) {
				if d.Digest != "y" || !slices.Equal(d.Mismatch, []string{"lb1", "lb3"}) {
					t.Errorf("digest %q mismatch %v, want y [lb1 lb3]", d.Digest, d.Mismatch)
				}
			},
		},
		{
			desc: "digest mismatch: two peers split, the owner's digest is the reference",
			view: view(node("lb1", 100, claims(2), digest("x")), node("lb2", 150, digest("y"))),
			self: "lb2",
			hold: false, owner: "lb1", epoch: 2, elected: "lb1",
			check: func(t *testing.T, d Decision) {
				if d.Digest != "x" || !slices.Equal(d.Mismatch, []string{"lb2"}) {
					t.Errorf("digest %q mismatch %v, want x [lb2]", d.Digest, d.Mismatch)
				}
			},
		},
		{
			desc: "dual claim: the higher epoch wins, the other yields",
			view: view(node("lb1", 200, claims(5)), node("lb2", 100, claims(6)), node("lb3", 120)),
			self: "lb1",
			hold: false, owner: "lb2", epoch: 6, elected: "lb2",
			check: func(t *testing.T, d Decision) {
				want := []Claim{{"lb2", 6}, {"lb1", 5}}
				if !d.Conflict() || !slices.Equal(d.Claims, want) {
					t.Errorf("claims %v, want conflict %v", d.Claims, want)
				}
			},
		},
		{
			desc: "dual claim: the higher epoch keeps",
			view: view(node("lb1", 200, claims(5)), node("lb2", 100, claims(6)), node("lb3", 120)),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 6, elected: "lb2",
		},
		{
			desc: "dual claim with equal epochs: the higher (priority, name) wins",
			view: view(node("lb1", 200, claims(6)), node("lb2", 100, claims(6)), node("lb3", 120)),
			self: "lb2",
			hold: false, owner: "lb1", epoch: 6, elected: "lb1",
		},
		{
			desc: "dual claim with equal epochs and priorities: the greater name wins",
			view: view(node("lb1", 100, claims(6)), node("lb2", 100, claims(6)), node("lb3", 100)),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 6, elected: "lb2",
		},
		{
			desc: "self not alive in its own view: never holds",
			view: view(node("lb1", 100), node("lb2", 150, dead), node("lb3", 120)),
			self: "lb2",
			hold: false, elected: "lb3",
			reason: "lb2 is not live",
		},
		{
			desc: "self missing from the view",
			view: withPeers(view(node("lb1", 100), node("lb3", 120)), "lb1", "lb2", "lb3"),
			self: "lb2",
			hold: false, elected: "lb3",
			reason: "not in its own view",
		},
		{
			desc: "self not configured",
			view: view(node("lb1", 100), node("lb3", 120)),
			self: "lb9",
			hold: false, elected: "lb3",
			reason: "not a configured peer",
		},
		{
			desc: "an unconfigured member is ignored, even with a claim",
			view: withPeers(view(node("lb1", 100), node("lb2", 150), node("rogue", 255, claims(99))), "lb1", "lb2"),
			self: "lb2",
			hold: true, owner: "lb2", epoch: 1, elected: "lb2",
		},
		{
			desc: "a member with unreadable metadata is no candidate",
			view: view(node("lb1", 100), node("lb2", 150, func(m *Member) { m.MetaErr = "bad json" }), node("lb3", 120)),
			self: "lb3",
			hold: true, owner: "lb3", epoch: 1, elected: "lb3",
		},
		{
			desc: "hidden owner: a holder yields to a stronger owner it hears of only through a peer",
			view: view(node("lb1", 150, claims(5)), node("lb2", 100, believes("lb3", 6)), node("lb3", 120, dead)),
			self: "lb1",
			hold: false, owner: "", epoch: 6, elected: "lb1",
			reason: "yields: lb2 reports lb3 holds the VIP with epoch 6",
		},
		{
			desc: "hidden owner: a weaker belief does not make the holder yield",
			view: view(node("lb1", 150, claims(5)), node("lb2", 100, believes("lb3", 4)), node("lb3", 120, dead)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 5, elected: "lb1",
		},
		{
			desc: "a stale belief about a live member that does not claim is ignored",
			view: view(node("lb1", 150), node("lb2", 100, believes("lb3", 6)), node("lb3", 120)),
			self: "lb1",
			hold: true, owner: "lb1", epoch: 7, elected: "lb1",
		},
	}
	runElect(t, tests)
}
