package cluster

import (
	"testing"
	"time"
)

// startupMember is a configured member for the startup-wait tables.
func startupMember(name string, fresh, eligible bool, owner string, epoch uint64) Member {
	return Member{Name: name, Configured: true, Fresh: fresh, State: StateAlive,
		Meta: Meta{Name: name, Priority: 100, Eligible: eligible, Owner: owner, Epoch: epoch}}
}

func startupView(self string, ms ...Member) View {
	v := View{Self: self}
	for _, m := range ms {
		v.Peers = append(v.Peers, m.Name)
	}
	v.Members = ms
	return v
}

func TestViewComplete(t *testing.T) {
	lb1 := startupMember("lb1", true, true, "", 0)
	lb2 := startupMember("lb2", true, true, "", 0)
	lb3 := startupMember("lb3", true, true, "", 0)
	noMeta := Member{Name: "lb3", Configured: true, Fresh: true, State: StateAlive}
	tests := []struct {
		name         string
		live, gossip View
		want         bool
	}{
		{"every peer fresh and eligible", startupView("lb1", lb1, lb2, lb3), startupView("lb1", lb1, lb2, lb3), true},
		{"a single node", startupView("lb1", lb1), startupView("lb1", lb1), true},
		{"a peer not fresh", startupView("lb1", lb1, lb2, startupMember("lb3", false, true, "", 0)),
			startupView("lb1", lb1, lb2, lb3), false},
		{"a peer absent from the live view", View{Self: "lb1", Peers: []string{"lb1", "lb2", "lb3"}, Members: []Member{lb1, lb2}},
			startupView("lb1", lb1, lb2, lb3), false},
		{"a peer absent from the gossip view", startupView("lb1", lb1, lb2, lb3),
			View{Self: "lb1", Peers: []string{"lb1", "lb2", "lb3"}, Members: []Member{lb1, lb2}}, false},
		{"a peer without gossiped metadata", startupView("lb1", lb1, lb2, lb3), startupView("lb1", lb1, lb2, noMeta), false},
		{"a peer still starting (ineligible, no claim)", startupView("lb1", lb1, lb2, lb3),
			startupView("lb1", lb1, lb2, startupMember("lb3", true, false, "", 0)), false},
		{"an ineligible peer that claims counts as started", startupView("lb1", lb1, lb2, lb3),
			startupView("lb1", lb1, lb2, startupMember("lb3", true, false, "lb3", 4)), true},
		{"a peer that believes another owner is not a claim", startupView("lb1", lb1, lb2, lb3),
			startupView("lb1", lb1, lb2, startupMember("lb3", true, false, "lb2", 4)), false},
		// The beats' owner belief is laid over the live view only; the
		// gossiped metadata decides.
		{"a claim seen only in the beats does not count", startupView("lb1", lb1, lb2, startupMember("lb3", true, false, "lb3", 5)),
			startupView("lb1", lb1, lb2, startupMember("lb3", true, false, "", 0)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ViewComplete(tc.live, tc.gossip); got != tc.want {
				t.Errorf("ViewComplete = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHighestOtherEpoch(t *testing.T) {
	tests := []struct {
		name string
		v    View
		want uint64
	}{
		{"nobody else", startupView("lb1", startupMember("lb1", true, true, "lb1", 9)), 0},
		{"own epoch is left out", startupView("lb1", startupMember("lb1", true, true, "lb1", 9),
			startupMember("lb2", true, true, "lb1", 3)), 3},
		{"the highest of the others", startupView("lb1", startupMember("lb1", true, true, "", 1),
			startupMember("lb2", true, true, "lb2", 7), startupMember("lb3", false, true, "lb2", 4)), 7},
		// Not only fresh members: an epoch once published is known.
		{"a member that is not fresh counts", startupView("lb1", startupMember("lb1", true, true, "", 0),
			startupMember("lb2", false, true, "lb2", 12), startupMember("lb3", true, true, "lb3", 5)), 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := HighestOtherEpoch(tc.v); got != tc.want {
				t.Errorf("HighestOtherEpoch = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestStartupWaitOver(t *testing.T) {
	lb1 := startupMember("lb1", true, true, "", 0)
	lb2 := startupMember("lb2", true, true, "", 0)
	complete := startupView("lb1", lb1, lb2)
	incomplete := startupView("lb1", lb1, startupMember("lb2", false, true, "", 0))
	const wait = 2 * time.Second
	tests := []struct {
		name    string
		elapsed time.Duration
		live    View
		want    bool
	}{
		{"incomplete, within the wait", time.Second, incomplete, false},
		{"incomplete, just before the end", wait - time.Nanosecond, incomplete, false},
		{"incomplete, the wait is over", wait, incomplete, true},
		{"incomplete, long after", time.Minute, incomplete, true},
		{"complete at once", 0, complete, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := StartupWaitOver(tc.elapsed, wait, tc.live, tc.live); got != tc.want {
				t.Errorf("StartupWaitOver(%v, %v) = %v, want %v", tc.elapsed, wait, got, tc.want)
			}
		})
	}
}

func TestStartupDecision(t *testing.T) {
	v := startupView("lb1", startupMember("lb1", true, true, "", 2),
		startupMember("lb2", true, true, "lb2", 6), startupMember("lb3", true, true, "lb2", 8))
	tests := []struct {
		name string
		dec  Decision
		want Decision
	}{
		{"a claim of its own is not made, nor its epoch published",
			Decision{Hold: true, Owner: "lb1", Epoch: 9, Reason: "claims the VIP: x"},
			Decision{Owner: "", Epoch: 8, Reason: "claims the VIP: x"}},
		{"itself as owner without holding: the same",
			Decision{Owner: "lb1", Epoch: 9, Reason: "yields"},
			Decision{Owner: "", Epoch: 8, Reason: "yields"}},
		{"an owner it hears is published as heard",
			Decision{Owner: "lb2", Epoch: 6, Elected: "lb2", Reason: "lb2 is elected"},
			Decision{Owner: "lb2", Epoch: 6, Elected: "lb2", Reason: "lb2 is elected"}},
		{"no owner keeps the highest epoch known",
			Decision{Epoch: 8, Reason: "no member can own the VIP"},
			Decision{Epoch: 8, Reason: "no member can own the VIP"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := StartupDecision(tc.dec, v, "lb1")
			if got.Hold || got.Owner != tc.want.Owner || got.Epoch != tc.want.Epoch ||
				got.Elected != tc.want.Elected || got.Reason != tc.want.Reason {
				t.Errorf("StartupDecision = %+v, want %+v", got, tc.want)
			}
		})
	}
	// Elect's own claim during the wait, end to end: a lone eligible node
	// would claim with epoch 1; waiting, it publishes no owner, epoch 0.
	lone := startupView("lb1", startupMember("lb1", true, true, "", 0), startupMember("lb2", false, false, "", 0))
	dec := Elect(lone, "lb1")
	if !dec.Hold || dec.Epoch != 1 {
		t.Fatalf("control: Elect(%v) = %+v, want a claim with epoch 1", lone, dec)
	}
	if got := StartupDecision(dec, lone, "lb1"); got.Hold || got.Owner != "" || got.Epoch != 0 {
		t.Errorf("waiting with Elect's %+v: %+v, want no hold, no owner, epoch 0", dec, got)
	}
}
