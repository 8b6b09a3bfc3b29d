package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestElectIdenticalViews: three nodes, each computing Elect from its own
// copy of the same view, agree on the owner and exactly one holds.
func TestElectIdenticalViews(t *testing.T) {
	tests := []struct {
		desc string
		view View
		want string
	}{
		{"fresh cluster", view(node("lb1", 100), node("lb2", 150), node("lb3", 120)), "lb2"},
		{"steady owner", view(node("lb1", 100, claims(3)), node("lb2", 150), node("lb3", 120)), "lb1"},
		{"dead owner", view(node("lb1", 100), node("lb2", 150, claims(3), dead), node("lb3", 120)), "lb3"},
		{"dual claim", view(node("lb1", 100, claims(3)), node("lb2", 150, claims(2)), node("lb3", 120)), "lb1"},
		{"2 peers", view(node("lb1", 100), node("lb2", 100)), "lb2"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			var holders []string
			for _, m := range tt.view.Members {
				if !m.Fresh {
					continue
				}
				v := tt.view
				v.Members = slices.Clone(tt.view.Members)
				v.Self = m.Name
				d := Elect(v, m.Name)
				if d.Elected != tt.want {
					t.Errorf("%s elects %q, want %q (%s)", m.Name, d.Elected, tt.want, d.Reason)
				}
				if d.Hold {
					holders = append(holders, m.Name)
				}
			}
			if !slices.Equal(holders, []string{tt.want}) {
				t.Errorf("holders %v, want exactly [%s]", holders, tt.want)
			}
		})
	}
}

// sim is a cluster whose nodes share one view (the same liveness for all)
// and publish what Elect decides, round by round.
type sim struct {
	members []Member
}

// round lets every live node decide on the current view and publish its
// decision; it reports the decisions and whether any published meta changed.
func (s *sim) round() (map[string]Decision, bool) {
	v := view(s.members...)
	ds := map[string]Decision{}
	for _, m := range s.members {
		if m.Fresh {
			ds[m.Name] = Elect(v, m.Name)
		}
	}
	changed := false
	for i := range s.members {
		m := &s.members[i]
		d, ok := ds[m.Name]
		if !ok {
			continue
		}
		if m.Meta.Owner != d.Owner || m.Meta.Epoch != d.Epoch {
			m.Meta.Owner, m.Meta.Epoch = d.Owner, d.Epoch
			changed = true
		}
	}
	return ds, changed
}

// settle runs rounds until nothing changes (at most max rounds) and
// returns the last decisions.
func (s *sim) settle(t *testing.T, max int) map[string]Decision {
	t.Helper()
	for r := 1; r <= max; r++ {
		ds, changed := s.round()
		if !changed {
			return ds
		}
	}
	t.Fatalf("no fixpoint after %d rounds: %+v", max, s.members)
	return nil
}

func holders(ds map[string]Decision) []string {
	var hs []string
	for n, d := range ds {
		if d.Hold {
			hs = append(hs, n)
		}
	}
	slices.Sort(hs)
	return hs
}

func (s *sim) set(name string, f mod) {
	for i := range s.members {
		if s.members[i].Name == name {
			f(&s.members[i])
		}
	}
}

// TestElectConverges runs the publish/decide loop through owner changes:
// every fixpoint has exactly one holder, reached within a few rounds.
func TestElectConverges(t *testing.T) {
	s := &sim{members: []Member{node("lb1", 100), node("lb2", 150), node("lb3", 120)}}
	expect := func(step, want string) {
		t.Helper()
		ds := s.settle(t, 4)
		if hs := holders(ds); !slices.Equal(hs, []string{want}) {
			t.Fatalf("%s: holders %v, want [%s]", step, hs, want)
		}
		for n, d := range ds {
			if d.Owner != want {
				t.Errorf("%s: %s believes owner %q, want %q", step, n, d.Owner, want)
			}
		}
	}
	expect("start", "lb2")
	s.set("lb2", dead)
	expect("owner dies", "lb3")
	s.set("lb2", func(m *Member) { m.Fresh, m.State = true, StateAlive })
	expect("old owner returns without preempt", "lb3")
	s.set("lb2", preempt)
	expect("old owner returns with preempt", "lb2")
	s.set("lb2", inelig)
	expect("owner ineligible", "lb3")
	s.set("lb3", digest("new"))
	s.set("lb1", digest("new"))
	expect("rolling config change (owner first)", "lb3")
	s.set("lb2", func(m *Member) { m.Meta.Eligible = true; m.Meta.Digest = "new" })
	expect("preemptor back with the new config", "lb2")
}

// TestElectConvergesRandom: random clusters (priorities, eligibility,
// digests, preempt, stale claims and epochs, dead members) always settle
// on one holder when a majority is live and someone is eligible, and on
// none otherwise; all live nodes agree on the owner.
func TestElectConvergesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	outcomes := map[string]int{}
	for trial := range 1000 {
		n := 2 + rng.IntN(4) // 2..5 peers
		s := &sim{}
		for i := range n {
			m := node(fmt.Sprintf("lb%d", i+1), 1+rng.IntN(3)*50)
			m.Meta.Eligible = rng.IntN(3) != 0
			m.Meta.Preempt = rng.IntN(2) == 0
			m.Meta.Digest = []string{"a", "b"}[rng.IntN(2)]
			if rng.IntN(3) == 0 {
				m.Meta.Owner, m.Meta.Epoch = m.Name, uint64(rng.IntN(5))
			} else {
				m.Meta.Epoch = uint64(rng.IntN(5))
			}
			if rng.IntN(4) == 0 {
				dead(&m)
			}
			s.members = append(s.members, m)
		}
		live, eligible := 0, 0
		for _, m := range s.members {
			if m.Fresh {
				live++
				if m.Meta.Eligible {
					eligible++
				}
			}
		}
		ds := s.settle(t, 6)
		hs := holders(ds)
		majority := n < 3 || live >= n/2+1
		want := 0
		if live > 0 && majority && eligible > 0 {
			want = 1
		}
		// An ineligible owner from the random start may keep the VIP when
		// nobody is eligible; that is allowed, more than one never is.
		if len(hs) > 1 || (want == 1 && len(hs) != 1) || (!majority && len(hs) != 0) {
			t.Fatalf("trial %d: holders %v (live %d of %d, eligible %d)\n%+v", trial, hs, live, n, eligible, s.members)
		}
		var owner string
		first := true
		for _, d := range ds {
			if first {
				owner, first = d.Owner, false
			} else if d.Owner != owner {
				t.Fatalf("trial %d: nodes disagree on the owner: %+v", trial, ds)
			}
		}
		if len(hs) == 1 && owner != hs[0] {
			t.Fatalf("trial %d: owner %q but holder %v", trial, owner, hs)
		}
		switch {
		case !majority:
			outcomes["no majority"]++
		case len(hs) == 1:
			outcomes["one holder"]++
		default:
			outcomes["none eligible"]++
		}
	}
	t.Logf("outcomes: %v", outcomes)
	for _, k := range []string{"no majority", "one holder", "none eligible"} {
		if outcomes[k] < 10 {
			t.Errorf("only %d trials with %q: the generator does not cover it", outcomes[k], k)
		}
	}
}
