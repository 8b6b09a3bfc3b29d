package dataplane

import (
	"fmt"
	"slices"
	"testing"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("cp%d", i+1)
	}
	return out
}

func allHealthy(backends []string) map[string]bool {
	h := make(map[string]bool, len(backends))
	for _, b := range backends {
		h[b] = true
	}
	return h
}

func without(h map[string]bool, drop ...string) map[string]bool {
	out := make(map[string]bool, len(h))
	for k, v := range h {
		out[k] = v
	}
	for _, d := range drop {
		delete(out, d)
	}
	return out
}

// counts returns the number of slots per backend index.
func counts(slots []int, n int) []int {
	c := make([]int, n)
	for _, b := range slots {
		if b >= 0 {
			c[b]++
		}
	}
	return c
}

func TestSlotCount(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{0, DefaultSlots}, {-5, DefaultSlots}, {1, 2}, {2, 2}, {4, 5}, {1021, 1021}, {1022, 1031}, {65536, 65537},
	} {
		if got := SlotCount(tc.in); got != tc.want {
			t.Errorf("SlotCount(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestBuildSlotsEvenness(t *testing.T) {
	for _, tc := range []struct {
		desc string
		n    int
		size int
	}{
		{"three backends, default size", 3, 0},
		{"five backends", 5, 1021},
		{"seven backends", 7, 1021},
		{"two backends, small map", 2, 13},
		{"ten backends, large map", 10, 65537},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b := names(tc.n)
			slots := BuildSlots(b, allHealthy(b), 0x5eed, tc.size)
			if len(slots) != SlotCount(tc.size) {
				t.Fatalf("len = %d, want %d", len(slots), SlotCount(tc.size))
			}
			c := counts(slots, tc.n)
			if slices.Contains(slots, -1) {
				t.Fatalf("unfilled slot with all backends healthy")
			}
			lo, hi := slices.Min(c), slices.Max(c)
			t.Logf("slots per backend: %v", c)
			// Maglev's round-robin fill: counts differ by at most one.
			if hi-lo > 1 {
				t.Errorf("max-min = %d, want <= 1 (counts %v)", hi-lo, c)
			}
		})
	}
}

func TestBuildSlotsOneLeaves(t *testing.T) {
	for _, n := range []int{2, 3, 5, 7, 10} {
		b := names(n)
		all := allHealthy(b)
		before := BuildSlots(b, all, 0x5eed, DefaultSlots)
		for gone := range n {
			t.Run(fmt.Sprintf("%d backends, %s leaves", n, b[gone]), func(t *testing.T) {
				after := BuildSlots(b, without(all, b[gone]), 0x5eed, DefaultSlots)
				movedOthers, movedOwn := 0, 0
				for s := range before {
					switch {
					case before[s] == gone:
						movedOwn++
						if after[s] == gone || after[s] < 0 {
							t.Fatalf("slot %d still on the removed backend or empty: %d", s, after[s])
						}
					case before[s] != after[s]:
						movedOthers++
					}
				}
				// The slot map's promise: only the removed
				// backend's slots move.
				if movedOthers != 0 {
					t.Errorf("%d slots of healthy backends moved, want 0", movedOthers)
				}
				c := counts(after, n)
				c = slices.Delete(c, gone, gone+1)
				lo, hi := slices.Min(c), slices.Max(c)
				t.Logf("moved %d slots (all of %s's); remaining counts %v", movedOwn, b[gone], c)
				// The removed backend's ~M/N slots are spread by the second
				// Maglev table: not exact, but close.
				if float64(hi) > 1.15*float64(lo) {
					t.Errorf("uneven after removal: counts %v (max/min %.3f > 1.15)", c, float64(hi)/float64(lo))
				}
				// And it comes back to exactly the slots it had.
				if back := BuildSlots(b, all, 0x5eed, DefaultSlots); !slices.Equal(back, before) {
					t.Errorf("after recovery the map differs from the original")
				}
			})
		}
	}
}

func TestBuildSlotsSecondLeaves(t *testing.T) {
	// A second failure moves the second backend's slots and, at most, a
	// few of the slots already moved by the first: measure and bound it.
	for _, n := range []int{3, 5, 7} {
		b := names(n)
		all := allHealthy(b)
		one := BuildSlots(b, without(all, b[0]), 0x5eed, DefaultSlots)
		two := BuildSlots(b, without(all, b[0], b[1]), 0x5eed, DefaultSlots)
		extra := 0
		for s := range one {
			if one[s] != 1 && one[s] != two[s] {
				extra++
			}
		}
		t.Logf("%d backends: second failure moved %d slots not owned by the failed backend (%.2f%% of %d)",
			n, extra, 100*float64(extra)/float64(len(one)), len(one))
		if float64(extra) > 0.05*float64(len(one)) {
			t.Errorf("%d backends: %d extra slots moved on a second failure, want <= 5%%", n, extra)
		}
		c := counts(two, n)[2:]
		if slices.Min(c) == 0 {
			t.Errorf("a healthy backend got no slots: %v", c)
		}
	}
}

func TestBuildSlotsDeterministic(t *testing.T) {
	b := names(5)
	h := without(allHealthy(b), "cp3")
	first := BuildSlots(b, h, 42, DefaultSlots)
	for range 3 {
		// A fresh copy of the inputs, as another peer would have.
		if got := BuildSlots(slices.Clone(b), without(h), 42, DefaultSlots); !slices.Equal(got, first) {
			t.Fatalf("same inputs gave a different map")
		}
	}
	if other := BuildSlots(b, h, 43, DefaultSlots); slices.Equal(other, first) {
		t.Errorf("a different seed gave the same map")
	}
	// The healthy flag matters, not the presence of the key.
	h2 := without(h)
	h2["cp3"] = false
	if got := BuildSlots(b, h2, 42, DefaultSlots); !slices.Equal(got, first) {
		t.Errorf("healthy[name]=false differs from a missing name")
	}
}

func TestBuildSlotsEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		backends []string
		healthy  map[string]bool
		check    func(t *testing.T, slots []int)
	}{
		{
			desc:     "no backends",
			backends: nil,
			healthy:  nil,
			check:    func(t *testing.T, slots []int) { allEqual(t, slots, -1) },
		},
		{
			desc:     "all unhealthy",
			backends: names(3),
			healthy:  map[string]bool{"cp1": false, "other": true},
			check:    func(t *testing.T, slots []int) { allEqual(t, slots, -1) },
		},
		{
			desc:     "single backend",
			backends: names(1),
			healthy:  allHealthy(names(1)),
			check:    func(t *testing.T, slots []int) { allEqual(t, slots, 0) },
		},
		{
			desc:     "one healthy of three",
			backends: names(3),
			healthy:  map[string]bool{"cp2": true},
			check:    func(t *testing.T, slots []int) { allEqual(t, slots, 1) },
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			slots := BuildSlots(tc.backends, tc.healthy, 7, 31)
			if len(slots) != 31 {
				t.Fatalf("len = %d, want 31", len(slots))
			}
			tc.check(t, slots)
		})
	}
}

func allEqual(t *testing.T, slots []int, want int) {
	t.Helper()
	for s, b := range slots {
		if b != want {
			t.Fatalf("slot %d = %d, want %d", s, b, want)
		}
	}
}

func BenchmarkBuildSlots(b *testing.B) {
	n := names(5)
	h := without(allHealthy(n), "cp2")
	for b.Loop() {
		BuildSlots(n, h, 0x5eed, DefaultSlots)
	}
}
