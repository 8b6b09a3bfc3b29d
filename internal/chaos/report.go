package chaos

// A campaign's report as text: the summary, the fault log and the
// observer's timeline (claims for the VIP and runs of failed connects,
// with the faults, in time order).

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// FailRun is a run of consecutive failed connects.
type FailRun struct {
	From, To time.Duration
	Count    int
	Err      string // the first failure's
}

// FailRuns returns the runs of consecutive failed connects in attempts.
func FailRuns(attempts []Attempt) []FailRun {
	var out []FailRun
	in := false
	for _, a := range attempts {
		if a.OK {
			in = false
			continue
		}
		if !in {
			out = append(out, FailRun{From: a.At, Err: a.Err})
			in = true
		}
		f := &out[len(out)-1]
		f.To = a.At + a.Dur
		f.Count++
	}
	return out
}

// Finish fills the report's timeline from obs.
func (r *Report) Finish(obs *Observer) {
	end := obs.Now()
	r.Intervals = Intervals(obs.Claims(0, end), claimGap)
	r.Fails = FailRuns(obs.Attempts(0, end))
}

// Summary is the report's verdict in one paragraph.
func (r Report) Summary() string {
	wr, wrs := r.WorstRecovery()
	wd, wds := r.WorstDark()
	moves := 0
	for _, s := range r.Steps {
		moves += s.Moves
	}
	return fmt.Sprintf("seed %d: %d of %d faults run, %d invariant violations, %d VIP moves; worst recovery after a heal %s (step %d, bound %s); worst dark time %s (step %d); two-MAC bound %s",
		r.Seed, len(r.Steps), r.Options.Count, len(r.Violations), moves, wr.Round(time.Millisecond), wrs, r.Options.RecoveryBound,
		wd.Round(time.Millisecond), wds, r.Options.TwoMACBound)
}

// FaultLog is one line per step.
func (r Report) FaultLog() string {
	var b strings.Builder
	for _, s := range r.Steps {
		b.WriteString(s.line())
		b.WriteByte('\n')
	}
	return b.String()
}

// Timeline merges the faults, the claims for the VIP and the runs of
// failed connects in time order.
func (r Report) Timeline() string {
	type line struct {
		at   time.Duration
		text string
	}
	var ls []line
	for _, s := range r.Steps {
		ls = append(ls, line{s.Start, fmt.Sprintf("fault %d: %s on %s (owner %s)", s.N, s.Kind, s.Target, s.OwnerFrom)})
		ls = append(ls, line{s.Healed, fmt.Sprintf("heal %d: %s on %s", s.N, s.Kind, s.Target)})
	}
	for _, i := range r.Intervals {
		ls = append(ls, line{i.From, fmt.Sprintf("VIP claimed by %s (%s) until %s, %d claims (first: %s)", i.Port, i.MAC, fmtAt(i.To), i.Claims, i.Kind)})
	}
	for _, f := range r.Fails {
		ls = append(ls, line{f.From, fmt.Sprintf("connects fail until %s (%d attempts): %s", fmtAt(f.To), f.Count, f.Err)})
	}
	slices.SortStableFunc(ls, func(a, b line) int { return cmp.Compare(a.at, b.at) })
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "%s %s\n", fmtAt(l.at), l.text)
	}
	return b.String()
}

// String is the whole report: summary, violations, fault log, timeline.
func (r Report) String() string {
	var b strings.Builder
	b.WriteString(r.Summary() + "\n")
	if len(r.Violations) > 0 {
		b.WriteString("violations:\n")
		for _, v := range r.Violations {
			b.WriteString("  " + v.String() + "\n")
		}
	}
	b.WriteString("fault log:\n" + r.FaultLog())
	b.WriteString("timeline:\n" + r.Timeline())
	return b.String()
}
