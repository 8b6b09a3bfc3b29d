package chaos

// The invariants, as pure functions over what the observer recorded.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Interval is a stretch of time in which one MAC kept claiming the VIP:
// its claims, none further apart than the gap Intervals was given.
type Interval struct {
	MAC, Port string
	// Kind is the first claim's (reply, gratuitous, na).
	Kind     string
	From, To time.Duration
	Claims   int
}

// Intervals groups claims (in time order) per MAC into intervals, a new
// one whenever a MAC was silent for more than gap; sorted by start.
func Intervals(claims []ClaimAt, gap time.Duration) []Interval {
	open := map[string]int{} // MAC -> index in out of its current interval
	var out []Interval
	for _, c := range claims {
		if i, ok := open[c.MAC]; ok && c.At-out[i].To <= gap {
			out[i].To = c.At
			out[i].Claims++
			continue
		}
		open[c.MAC] = len(out)
		out = append(out, Interval{MAC: c.MAC, Port: c.Port, Kind: c.Kind, From: c.At, To: c.At, Claims: 1})
	}
	slices.SortStableFunc(out, func(a, b Interval) int { return cmp.Compare(a.From, b.From) })
	return out
}

// Overlap is a time in which two MACs claimed the VIP.
type Overlap struct {
	A, B     Interval
	From, To time.Duration
}

// Len is how long both claimed.
func (o Overlap) Len() time.Duration { return o.To - o.From }

// Overlaps returns every overlap of intervals of different MACs (two MACs
// answering for the VIP at once), longest first.
func Overlaps(iv []Interval) []Overlap {
	var out []Overlap
	for i := range iv {
		for j := i + 1; j < len(iv); j++ {
			a, b := iv[i], iv[j]
			if a.MAC == b.MAC {
				continue
			}
			from, to := max(a.From, b.From), min(a.To, b.To)
			if to >= from {
				out = append(out, Overlap{A: a, B: b, From: from, To: to})
			}
		}
	}
	slices.SortStableFunc(out, func(x, y Overlap) int { return cmp.Compare(y.Len(), x.Len()) })
	return out
}

// stableClaims is how many claims in a row, with no other MAC between
// them, make a MAC the one answering for the VIP (at the observer's pace,
// about 20 ms of answering alone).
const stableClaims = 4

// Moves counts the VIP moves in claims (in time order): how often the MAC
// answering alone for the VIP (stableClaims in a row) changes. While two
// MACs answer, their replies interleave and neither counts; a MAC that
// falls silent and answers again is no move.
func Moves(claims []ClaimAt) int { return max(len(Holders(claims))-1, 0) }

// Holders lists, in order, the hosts (switch ports) that answered alone
// for the VIP (stableClaims in a row) in claims: one entry per stretch,
// so a VIP that moved from lb1 to lb2 and back gives lb1, lb2, lb1.
func Holders(claims []ClaimAt) []string {
	var out []string
	owner, cur, run := "", "", 0
	for _, c := range claims {
		if c.MAC != cur {
			cur, run = c.MAC, 0
		}
		run++
		if run == stableClaims && cur != owner {
			owner = cur
			out = append(out, c.Port)
		}
	}
	return out
}

// Recovery says how connects fared around a heal at healAt: Recovered is
// when (after healAt) the first success after the last failure ended, and
// RecoveryTime that minus healAt (zero when nothing failed after healAt).
// Dark is the longest stretch without a successful connect (completion to
// completion) in the attempts, and Failures their failed connects.
type Recovery struct {
	RecoveryTime time.Duration
	Recovered    bool
	Dark         time.Duration
	DarkFrom     time.Duration
	Failures     int
	Attempts     int
}

// Recover computes Recovery from attempts (in start order) around healAt.
func Recover(attempts []Attempt, healAt time.Duration) Recovery {
	var r Recovery
	r.Attempts = len(attempts)
	lastFail := -1
	var lastOK time.Duration = -1
	for i, a := range attempts {
		end := a.At + a.Dur
		if !a.OK {
			r.Failures++
			if a.At+a.Dur >= healAt {
				lastFail = i
			}
			continue
		}
		if lastOK >= 0 && end-lastOK > r.Dark {
			r.Dark, r.DarkFrom = end-lastOK, lastOK
		}
		lastOK = end
	}
	if lastFail < 0 {
		r.Recovered = true
		return r
	}
	for _, a := range attempts[lastFail+1:] {
		if a.OK {
			r.Recovered = true
			r.RecoveryTime = max(0, a.At+a.Dur-healAt)
			return r
		}
	}
	return r
}

// Violation is an invariant that did not hold during a step.
type Violation struct {
	Step      int
	Invariant string
	Detail    string
}

func (v Violation) String() string {
	return fmt.Sprintf("step %d: %s: %s", v.Step, v.Invariant, v.Detail)
}

// The invariants' names.
const (
	InvTwoMACs    = "two-macs"      // two MACs answer for the VIP longer than the bound
	InvRecovery   = "recovery"      // connects fail longer than the bound after a heal
	InvHandoff    = "handoff-clean" // a graceful handoff failed a connect
	InvStreams    = "streams"       // a stream died at a VIP move
	InvSlotMap    = "slot-map"      // a backend up everywhere left out of a slot map
	InvOneOwner   = "one-owner"     // no single owner after the step settled
	InvPauseQuiet = "pause-quiet"   // a woken paused owner answered for the VIP
	InvNoMove     = "no-move"       // a fault on a backend moved the VIP
)

// CheckTwoMACs returns a violation for every overlap longer than bound.
func CheckTwoMACs(step int, iv []Interval, bound time.Duration) []Violation {
	var out []Violation
	for _, o := range Overlaps(iv) {
		if o.Len() > bound {
			out = append(out, Violation{Step: step, Invariant: InvTwoMACs, Detail: fmt.Sprintf(
				"%s (%s) and %s (%s) both answered for the VIP for %s (%s to %s; bound %s)",
				o.A.MAC, o.A.Port, o.B.MAC, o.B.Port, o.Len().Round(time.Millisecond), fmtAt(o.From), fmtAt(o.To), bound)})
		}
	}
	return out
}

// CheckRecovery returns a violation when connects were not back within
// bound of the heal.
func CheckRecovery(step int, r Recovery, bound time.Duration) []Violation {
	switch {
	case !r.Recovered:
		return []Violation{{Step: step, Invariant: InvRecovery, Detail: fmt.Sprintf("no successful connect after the last failure (%d of %d failed)", r.Failures, r.Attempts)}}
	case r.RecoveryTime > bound:
		return []Violation{{Step: step, Invariant: InvRecovery, Detail: fmt.Sprintf("connects failed until %s after the heal (bound %s)", r.RecoveryTime.Round(time.Millisecond), bound)}}
	}
	return nil
}

// CheckNoMove returns a violation when a fault of kind k that acts on a
// backend only (stopped, unready, slow: every peer sees the same backend
// fail, and the others stay up) moved the VIP: holders are the hosts that
// answered alone for it on the wire, in order (Holders).
func CheckNoMove(step int, k Kind, holders []string) []Violation {
	if !backendFault(k) || len(holders) < 2 {
		return nil
	}
	return []Violation{{Step: step, Invariant: InvNoMove, Detail: fmt.Sprintf(
		"the VIP moved %d times during %s (%s); a fault on one backend moves no VIP", len(holders)-1, k, strings.Join(holders, " -> "))}}
}

// fmtAt formats a time since the start of a run.
func fmtAt(d time.Duration) string {
	return fmt.Sprintf("t+%.3fs", d.Seconds())
}
