package probes

import (
	"strings"
	"testing"
)

func TestNext(t *testing.T) {
	up := Tracker{State: StateUp}
	down := Tracker{State: StateDown}
	tests := []struct {
		desc       string
		from       Tracker
		results    string // P = pass, F = fail
		rise, fall int
		want       []Tracker // state after each result
	}{
		{desc: "first pass is decisive", from: Tracker{}, results: "P", rise: 2, fall: 3,
			want: []Tracker{up}},
		{desc: "first fail is decisive", from: Tracker{}, results: "F", rise: 2, fall: 3,
			want: []Tracker{down}},
		{desc: "up stays up on passes", from: up, results: "PPP", rise: 2, fall: 3,
			want: []Tracker{up, up, up}},
		{desc: "up falls after fall consecutive failures", from: up, results: "FFF", rise: 2, fall: 3,
			want: []Tracker{{StateFalling, 1}, {StateFalling, 2}, down}},
		{desc: "a pass while falling cancels the streak", from: up, results: "FFPFF", rise: 2, fall: 3,
			want: []Tracker{{StateFalling, 1}, {StateFalling, 2}, up, {StateFalling, 1}, {StateFalling, 2}}},
		{desc: "down rises after rise consecutive passes", from: down, results: "PP", rise: 2, fall: 3,
			want: []Tracker{{StateRising, 1}, up}},
		{desc: "a fail while rising sends it back down", from: down, results: "PFPP", rise: 2, fall: 3,
			want: []Tracker{{StateRising, 1}, down, {StateRising, 1}, up}},
		{desc: "down stays down on failures", from: down, results: "FF", rise: 2, fall: 3,
			want: []Tracker{down, down}},
		{desc: "fall 1 goes down at once", from: up, results: "F", rise: 2, fall: 1,
			want: []Tracker{down}},
		{desc: "rise 1 comes up at once", from: down, results: "P", rise: 1, fall: 2,
			want: []Tracker{up}},
		{desc: "rise and fall below 1 count as 1", from: up, results: "FP", rise: 0, fall: -3,
			want: []Tracker{down, up}},
		{desc: "classic runbook baseline inter 3s fall 3 rise 2, flapping", from: up, results: "FPFPFFF", rise: 2, fall: 3,
			want: []Tracker{{StateFalling, 1}, up, {StateFalling, 1}, up, {StateFalling, 1}, {StateFalling, 2}, down}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if len(tc.results) != len(tc.want) {
				t.Fatalf("bad table: %d results, %d states", len(tc.results), len(tc.want))
			}
			s := tc.from
			var got []string
			for i, c := range tc.results {
				s = Next(s, c == 'P', tc.rise, tc.fall)
				if s != tc.want[i] {
					t.Errorf("after %q: got %v/%d, want %v/%d", tc.results[:i+1], s.State, s.Streak, tc.want[i].State, tc.want[i].Streak)
				}
				got = append(got, s.State.String())
			}
			t.Logf("%s -> %s", tc.results, strings.Join(got, ","))
		})
	}
}

func TestTrackerServing(t *testing.T) {
	tests := []struct {
		s                      State
		serving, transitioning bool
	}{
		{StateUnknown, false, false},
		{StateUp, true, false},
		{StateFalling, true, true},
		{StateDown, false, false},
		{StateRising, false, true},
	}
	for _, tc := range tests {
		tr := Tracker{State: tc.s}
		if tr.Serving() != tc.serving || tr.Transitioning() != tc.transitioning {
			t.Errorf("%v: serving %v transitioning %v, want %v %v", tc.s, tr.Serving(), tr.Transitioning(), tc.serving, tc.transitioning)
		}
	}
}
