package chaos

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// claimsOf builds claims: each pair is a MAC ("a", "b") and a time in ms.
func claimsOf(spec ...any) []ClaimAt {
	var out []ClaimAt
	for i := 0; i+1 < len(spec); i += 2 {
		mac := spec[i].(string)
		out = append(out, ClaimAt{At: time.Duration(spec[i+1].(int)) * ms, Claim: Claim{MAC: mac, Port: "lb-" + mac}})
	}
	return out
}

// every returns claims by mac every step ms in [from, to].
func every(mac string, from, to, step int) []any {
	var out []any
	for t := from; t <= to; t += step {
		out = append(out, mac, t)
	}
	return out
}

func sorted(cs []ClaimAt) []ClaimAt {
	slices.SortStableFunc(cs, func(a, b ClaimAt) int { return int(a.At - b.At) })
	return cs
}

func TestIntervalsOverlapsMoves(t *testing.T) {
	cases := []struct {
		name       string
		claims     []ClaimAt
		intervals  int
		maxOverlap time.Duration
		moves      int
		holders    []string
	}{
		{"one owner", claimsOf(every("a", 0, 500, 5)...), 1, 0, 0, []string{"lb-a"}},
		{"one owner, silent for a while", claimsOf(append(every("a", 0, 100, 5), every("a", 300, 400, 5)...)...), 2, 0, 0, []string{"lb-a"}},
		{"clean move", claimsOf(append(every("a", 0, 100, 5), every("b", 110, 300, 5)...)...), 2, 0, 1, []string{"lb-a", "lb-b"}},
		{"move with 90 ms overlap", sorted(claimsOf(append(every("a", 0, 190, 5), every("b", 100, 400, 5)...)...)), 2, 90 * ms, 1, []string{"lb-a", "lb-b"}},
		{"move and back", claimsOf(append(append(every("a", 0, 100, 5), every("b", 110, 300, 5)...), every("a", 310, 400, 5)...)...), 3, 0, 2, []string{"lb-a", "lb-b", "lb-a"}},
		{"a single stray answer is no move", claimsOf(append(append(every("a", 0, 100, 5), "b", 105), every("a", 110, 200, 5)...)...), 2, 0, 0, []string{"lb-a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			iv := Intervals(c.claims, claimGap)
			if len(iv) != c.intervals {
				t.Errorf("%d intervals, want %d: %+v", len(iv), c.intervals, iv)
			}
			var longest time.Duration
			if ov := Overlaps(iv); len(ov) > 0 {
				longest = ov[0].Len()
			}
			if longest != c.maxOverlap {
				t.Errorf("longest overlap %v, want %v", longest, c.maxOverlap)
			}
			if m := Moves(c.claims); m != c.moves {
				t.Errorf("%d moves, want %d", m, c.moves)
			}
			if h := Holders(c.claims); !slices.Equal(h, c.holders) {
				t.Errorf("holders %v, want %v", h, c.holders)
			}
			if v := CheckTwoMACs(1, iv, 30*ms); (len(v) > 0) != (c.maxOverlap > 30*ms) {
				t.Errorf("two-MAC violations %v with the longest overlap %v (bound 30ms)", v, c.maxOverlap)
			}
		})
	}
}

func TestRecover(t *testing.T) {
	at := func(start, dur int, ok bool) Attempt {
		return Attempt{At: time.Duration(start) * ms, Dur: time.Duration(dur) * ms, OK: ok}
	}
	cases := []struct {
		name      string
		attempts  []Attempt
		heal      time.Duration
		recovered bool
		rec, dark time.Duration
		violation bool
	}{
		{"nothing failed", []Attempt{at(0, 1, true), at(5, 1, true), at(10, 1, true)}, 5 * ms, true, 0, 5 * ms, false},
		{"failed during the fault only", []Attempt{at(0, 1, true), at(5, 300, false), at(310, 1, true), at(400, 1, true)}, 350 * ms, true, 0, 310 * ms, false},
		{"back 200 ms after the heal", []Attempt{at(0, 1, true), at(100, 300, false), at(400, 300, false), at(700, 1, true)}, 500 * ms, true, 201 * ms, 700 * ms, false},
		{"back 2 s after the heal", []Attempt{at(0, 1, true), at(100, 300, false), at(2400, 300, false), at(2700, 1, true)}, 1000 * ms, true, 1701 * ms, 2700 * ms, true},
		{"never back", []Attempt{at(0, 1, true), at(100, 300, false), at(400, 300, false)}, 200 * ms, false, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Recover(c.attempts, c.heal)
			if r.Recovered != c.recovered || r.RecoveryTime != c.rec || r.Dark != c.dark {
				t.Errorf("got recovered %v after %v, dark %v; want %v after %v, dark %v", r.Recovered, r.RecoveryTime, r.Dark, c.recovered, c.rec, c.dark)
			}
			if v := CheckRecovery(1, r, time.Second); (len(v) > 0) != c.violation {
				t.Errorf("violations %v, want any: %v", v, c.violation)
			}
		})
	}
}

func TestCheckPauseQuiet(t *testing.T) {
	resumed := 1000 * ms
	quiet := Intervals(sorted(claimsOf(append(every("a", 0, 150, 5), every("b", 30, 2000, 5)...)...)), claimGap)
	if v := checkPauseQuiet(1, quiet, "lb-a", resumed); len(v) != 0 {
		t.Errorf("a paused owner silent after its lease: %v", v)
	}
	loud := Intervals(sorted(claimsOf(append(append(every("a", 0, 150, 5), every("b", 30, 2000, 5)...), "a", 1010)...)), claimGap)
	if v := checkPauseQuiet(1, loud, "lb-a", resumed); len(v) != 1 {
		t.Errorf("a woken owner answering once after the successor's claim: violations %v, want one", v)
	}
	// Control: no one else claimed (a short pause), the owner goes on answering.
	short := Intervals(claimsOf(every("a", 0, 2000, 5)...), claimGap)
	if v := checkPauseQuiet(1, short, "lb-a", resumed); len(v) != 0 {
		t.Errorf("an owner that kept the VIP: %v", v)
	}
}

func TestPlanReproducible(t *testing.T) {
	a, b := Plan(21, 50), Plan(21, 50)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave two plans")
	}
	if c := Plan(22, 50); slices.Equal(a, c) {
		t.Error("seeds 21 and 22 gave the same plan")
	}
	seen := map[Kind]bool{}
	for _, s := range Plan(21, 500) {
		seen[s.Kind] = true
		lo, hi := holdRange(s.Kind)
		if s.Hold < lo || (hi > lo && s.Hold > hi) {
			t.Errorf("%s held %v, outside [%v, %v]", s.Kind, s.Hold, lo, hi)
		}
	}
	for _, k := range Kinds() {
		if !seen[k] {
			t.Errorf("500 faults never drew %s", k)
		}
	}
	only := Plan(5, 30, PauseOwner)
	for _, s := range only {
		if s.Kind != PauseOwner {
			t.Fatalf("a plan limited to pause-owner drew %s", s.Kind)
		}
	}
	if _, err := ParseKinds("pause-owner,bogus"); err == nil {
		t.Error("ParseKinds took an unknown fault")
	}
}

func TestParseClaim(t *testing.T) {
	vip4 := netip.MustParseAddr("198.18.120.100")
	vip6 := netip.MustParseAddr("fd00:198:18:120::100")
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	req := arpRequest(mac, netip.MustParseAddr("198.18.120.31"), vip4)
	if _, ok := parseClaim(req, vip4, vip6); ok {
		t.Error("a who-has for the VIP from another host counted as a claim")
	}
	// The reply: op 2, sender the VIP.
	reply := arpRequest(mac, vip4, netip.MustParseAddr("198.18.120.31"))
	reply[14+7] = 2
	c, ok := parseClaim(reply, vip4, vip6)
	if !ok || c.Kind != "reply" || c.MAC != mac.String() {
		t.Errorf("reply: %+v %v", c, ok)
	}
	// A gratuitous ARP: a request from the VIP for the VIP.
	garp := arpRequest(mac, vip4, vip4)
	if c, ok := parseClaim(garp, vip4, vip6); !ok || c.Kind != "gratuitous" {
		t.Errorf("gratuitous: %+v %v", c, ok)
	}
	// A neighbour advertisement for the IPv6 VIP.
	na := make([]byte, 14+40+24)
	copy(na[6:12], mac)
	na[12], na[13] = 0x86, 0xdd
	na[14+6] = 58
	na[14+40] = 136
	v6 := vip6.As16()
	copy(na[14+48:], v6[:])
	if c, ok := parseClaim(na, vip4, vip6); !ok || c.Kind != "na" {
		t.Errorf("na: %+v %v", c, ok)
	}
	na[14+40] = 135 // a solicitation
	if _, ok := parseClaim(na, vip4, vip6); ok {
		t.Error("a neighbour solicitation counted as a claim")
	}
}

func TestFailRuns(t *testing.T) {
	a := []Attempt{{At: 0, OK: true}, {At: 5 * ms, Dur: 300 * ms, Err: "timeout"}, {At: 305 * ms, Dur: 300 * ms}, {At: 610 * ms, OK: true}, {At: 700 * ms, Dur: ms, Err: "refused"}}
	got := FailRuns(a)
	want := []FailRun{{From: 5 * ms, To: 605 * ms, Count: 2, Err: "timeout"}, {From: 700 * ms, To: 701 * ms, Count: 1, Err: "refused"}}
	if !slices.Equal(got, want) {
		t.Errorf("FailRuns = %+v, want %+v", got, want)
	}
}

// TestCIPlanCoversEveryFault: CI's 20 faults (TestCampaign's defaults)
// include every kind.
func TestCIPlanCoversEveryFault(t *testing.T) {
	seen := map[Kind]bool{}
	for _, s := range Plan(defaultSeed, defaultCount) {
		seen[s.Kind] = true
	}
	for _, k := range Kinds() {
		if !seen[k] {
			t.Errorf("seed %d's %d faults never draw %s: pick another default seed", defaultSeed, defaultCount, k)
		}
	}
}

func TestCheckNoMove(t *testing.T) {
	for _, tc := range []struct {
		kind    Kind
		holders []string
		want    int
	}{
		{BackendStop, nil, 0},
		{BackendStop, []string{"lb1"}, 0},
		{BackendStop, []string{"lb1", "lb2"}, 1},
		{BackendUnready, []string{"lb1", "lb2", "lb1"}, 1},
		{BackendSlow, []string{"lb2", "lb1"}, 1},
		{KillOwner, []string{"lb1", "lb2"}, 0}, // meant to move it
		{Saturate, []string{"lb1", "lb2"}, 0},  // not a backend fault: not this invariant's
	} {
		vs := CheckNoMove(7, tc.kind, tc.holders)
		if len(vs) != tc.want {
			t.Errorf("%s with holders %v: %v, want %d violations", tc.kind, tc.holders, vs, tc.want)
		}
		for _, v := range vs {
			if v.Invariant != InvNoMove || v.Step != 7 || !strings.Contains(v.Detail, strings.Join(tc.holders, " -> ")) {
				t.Errorf("%s: violation %+v", tc.kind, v)
			}
		}
	}
}
