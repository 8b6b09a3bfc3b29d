package probes

import (
	"strings"
	"testing"
	"time"
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
			want: []Tracker{{State: StateFalling, Streak: 1}, {State: StateFalling, Streak: 2}, down}},
		{desc: "a pass while falling cancels the streak", from: up, results: "FFPFF", rise: 2, fall: 3,
			want: []Tracker{{State: StateFalling, Streak: 1}, {State: StateFalling, Streak: 2}, up, {State: StateFalling, Streak: 1}, {State: StateFalling, Streak: 2}}},
		{desc: "down rises after rise consecutive passes", from: down, results: "PP", rise: 2, fall: 3,
			want: []Tracker{{State: StateRising, Streak: 1}, up}},
		{desc: "a fail while rising sends it back down", from: down, results: "PFPP", rise: 2, fall: 3,
			want: []Tracker{{State: StateRising, Streak: 1}, down, {State: StateRising, Streak: 1}, up}},
		{desc: "down stays down on failures", from: down, results: "FF", rise: 2, fall: 3,
			want: []Tracker{down, down}},
		{desc: "fall 1 goes down at once", from: up, results: "F", rise: 2, fall: 1,
			want: []Tracker{down}},
		{desc: "rise 1 comes up at once", from: down, results: "P", rise: 1, fall: 2,
			want: []Tracker{up}},
		{desc: "rise and fall below 1 count as 1", from: up, results: "FP", rise: 0, fall: -3,
			want: []Tracker{down, up}},
		{desc: "classic runbook baseline inter 3s fall 3 rise 2, flapping", from: up, results: "FPFPFFF", rise: 2, fall: 3,
			want: []Tracker{{State: StateFalling, Streak: 1}, up, {State: StateFalling, Streak: 1}, up, {State: StateFalling, Streak: 1}, {State: StateFalling, Streak: 2}, down}},
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

// result makes one probe result from a letter: P 200, F 403 (readiness
// unknown), U 500 (unready), T timeout, R refused (curl's 000), N no route,
// X a TLS failure.
func result(c byte, at time.Time) HealthResult {
	r := HealthResult{Time: at, Outcome: OutcomeFail, Stage: StageDone}
	switch c {
	case 'P':
		r.Outcome, r.StatusCode = OutcomePass, 200
	case 'F':
		r.Outcome, r.StatusCode, r.Cause = OutcomeReadinessUnknown, 403, CauseForbidden
	case 'U':
		r.StatusCode, r.Cause = 500, CauseUnready
	case 'T':
		r.Stage, r.Cause = StageHTTP, CauseTimeout
	case 'R':
		r.Stage, r.Cause = StageConnect, CauseRefused
	case 'N':
		r.Stage, r.Cause = StageConnect, CauseUnreachable
	case 'X':
		r.Stage, r.Cause = StageTLS, CauseTLS
	default:
		panic("bad result letter " + string(c))
	}
	return r
}

// run feeds results (one letter each, every interval) to Step from t.
func run(from Tracker, results string, interval time.Duration, p Params) []Tracker {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []Tracker
	s := from
	for i := range len(results) {
		s = Step(s, result(results[i], at.Add(time.Duration(i)*interval)), p)
		out = append(out, s)
	}
	return out
}

func TestStep(t *testing.T) {
	p := Params{Rise: 2, Fall: 2} // DeadAfter and AuthOnlyAfter default to 10s
	up, down := Tracker{State: StateUp}, Tracker{State: StateDown}
	tests := []struct {
		desc     string
		from     Tracker
		results  string
		interval time.Duration
		// want is the condition after each result, comma-separated.
		want string
		// wantDead is Dead after the last result.
		wantDead bool
	}{
		{desc: "slow is not dead: timeouts drain", from: up, results: "TTT", interval: time.Second,
			want: "falling (slow),down (slow, draining),down (slow, draining)"},
		{desc: "timeouts for DeadAfter make it dead", from: up, results: "TTTTTTTTTTT", interval: time.Second,
			want: "falling (slow)" + strings.Repeat(",down (slow, draining)", 9) + ",down (dead)", wantDead: true},
		{desc: "a slow backend that answers again is up and forgotten", from: up, results: "TTTPP", interval: time.Second,
			want: "falling (slow),down (slow, draining),down (slow, draining),rising,up"},
		{desc: "refused is dead at once", from: up, results: "RR", interval: time.Second,
			want: "falling (refused),down (dead)", wantDead: true},
		{desc: "no route is dead at once", from: up, results: "NN", interval: time.Second,
			want: "falling (unreachable),down (dead)", wantDead: true},
		{desc: "a timeout after refusals stays dead", from: up, results: "RRT", interval: time.Second,
			want: "falling (refused),down (dead),down (dead)", wantDead: true},
		{desc: "unready drains for ever: it answers", from: up, results: "UU" + strings.Repeat("U", 60), interval: time.Second,
			want: "falling (unready)" + strings.Repeat(",down (draining)", 61)},
		{desc: "TLS failures drain until DeadAfter", from: up, results: "XX", interval: time.Second,
			want: "falling (tls),down (draining)"},
		{desc: "an answer resets the silent clock", from: up, results: "TTTTTUTTTTT", interval: time.Second,
			want: "falling (slow)" + strings.Repeat(",down (slow, draining)", 4) + ",down (draining)" + strings.Repeat(",down (slow, draining)", 5)},
		{desc: "a first 403 is decisive (judged by TLS)", from: Tracker{}, results: "FFF", interval: time.Second,
			want: "up (TLS only),up (TLS only),up (TLS only)"},
		{desc: "403 after a readable answer is not a pass", from: up, results: "PFF", interval: time.Second,
			want: "up,falling (forbidden),down (draining)"},
		{desc: "403 only, for AuthOnlyAfter, is judged by TLS", from: down, results: "R" + strings.Repeat("F", 12), interval: time.Second,
			want: "down (dead)" + strings.Repeat(",down (draining)", 10) + ",rising,up (TLS only)"},
		{desc: "TLS-only backend restarts and rises on 403 again", from: Tracker{}, results: "FRRFF", interval: time.Second,
			want: "up (TLS only),falling (refused),down (dead),rising,up (TLS only)"},
		{desc: "a readable answer ends TLS-only judging", from: Tracker{}, results: "FUF", interval: time.Second,
			want: "up (TLS only),falling (unready),down (draining)"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := run(tc.from, tc.results, tc.interval, p)
			var conds []string
			for _, s := range got {
				conds = append(conds, s.Condition())
			}
			if strings.Join(conds, ",") != tc.want {
				t.Errorf("%s:\n got  %s\n want %s", tc.results, strings.Join(conds, ","), tc.want)
			}
			if last := got[len(got)-1]; last.Dead != tc.wantDead {
				t.Errorf("dead %v, want %v", last.Dead, tc.wantDead)
			}
		})
	}
}

// TestStepStartingAPIServer: anonymous /readyz polled every 50 ms across a
// kube-apiserver restart answered 000, 000, 403, 500 x13, 200. The 403
// must not count toward rise: the backend rises only on the 200s.
func TestStepStartingAPIServer(t *testing.T) {
	seq := "RRF" + strings.Repeat("U", 13) + "PP"
	for _, from := range []Tracker{{State: StateUp}, {State: StateDown}, {}} {
		got := run(from, seq, 50*time.Millisecond, Params{Rise: 2, Fall: 2})
		firstPass := strings.IndexByte(seq, 'P')
		for i, s := range got[:firstPass] {
			if i >= 2 && (s.Serving() || s.State == StateRising) {
				t.Errorf("from %v: after %q the backend is %s (a 403 or 500 counted toward rise)", from.State, seq[:i+1], s.Condition())
			}
		}
		if last := got[len(got)-1]; last.State != StateUp {
			t.Errorf("from %v: after the 200s: %s, want up", from.State, last.Condition())
		}
	}
}
