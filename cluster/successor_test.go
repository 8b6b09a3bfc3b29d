package cluster

import (
	"strings"
	"testing"
)

// TestSuccessor: the plan the daemon hands its heartbeat helper, for the
// view as it is while the owner still beats.
func TestSuccessor(t *testing.T) {
	leaving := func(m *Member) { m.Meta.Leaving, m.Meta.HandoffTo = true, "c" }
	cases := []struct {
		name  string
		v     View
		self  string
		succ  bool
		epoch uint64
		why   string
	}{
		{"next by priority", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4)), node("c", 80, believes("a", 4))), "b", true, 5, "claims the VIP"},
		{"not next", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4)), node("c", 80, believes("a", 4))), "c", false, 0, "b is elected"},
		{"the owner itself", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4))), "a", false, 0, "holds the VIP"},
		{"no owner", view(node("a", 100), node("b", 90)), "b", false, 0, "no owner"},
		{"ineligible self", view(node("a", 100, claims(4)), node("b", 90, inelig, believes("a", 4)), node("c", 80, believes("a", 4))), "b", false, 0, "c is elected"},
		{"next is ineligible: the one after", view(node("a", 100, claims(4)), node("b", 90, inelig, believes("a", 4)), node("c", 80, believes("a", 4))), "c", true, 5, "claims"},
		{"third peer dead: no majority without the owner", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4)), node("c", 80, dead)), "b", false, 0, "no majority"},
		{"two peers: no majority rule", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4))), "b", true, 5, "claims"},
		{"partition forming", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4)), node("c", 80, noMajority, believes("a", 4))), "b", false, 0, "hears no majority"},
		{"owner leaving: its handoff decides", view(node("a", 100, claims(4), leaving), node("b", 90, believes("a", 4)), node("c", 80, believes("a", 4))), "b", false, 0, "leaving"},
		{"another peer believes in a stronger owner elsewhere", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4)), node("c", 80, believes("d", 6)), node("d", 70, dead), node("e", 60)), "b", false, 0, ""},
		{"conflict: two claims", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4)), node("c", 80, claims(3))), "b", false, 0, "more than one"},
		{"epoch above every published epoch", view(node("a", 100, claims(4)), node("b", 90, believes("a", 4)), node("c", 80, believes("a", 4)), node("d", 10, dead, claims(9))), "b", false, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dec := Elect(c.v, c.self)
			s := Successor(c.v, c.self, dec)
			if s.Successor != c.succ || (c.succ && s.Epoch != c.epoch) || !strings.Contains(s.Reason, c.why) {
				t.Errorf("Successor = %+v; want successor %v epoch %d reason containing %q (decision %+v)", s, c.succ, c.epoch, c.why, dec)
			}
		})
	}
}
