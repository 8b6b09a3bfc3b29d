package probes

import (
	"fmt"
	"time"
)

// State is where a backend stands in the rise/fall state machine.
type State int

// States. Up and Falling are in rotation; Unknown, Down and Rising are not.
const (
	// StateUnknown: no probe result yet.
	StateUnknown State = iota
	// StateUp: healthy; in rotation.
	StateUp
	// StateFalling: was up, has failed fewer than fall probes in a row;
	// still in rotation.
	StateFalling
	// StateDown: failed; out of rotation.
	StateDown
	// StateRising: was down, has passed fewer than rise probes in a row;
	// still out of rotation.
	StateRising
)

// String returns "unknown", "up", "falling", "down" or "rising".
func (s State) String() string {
	switch s {
	case StateUnknown:
		return "unknown"
	case StateUp:
		return "up"
	case StateFalling:
		return "falling"
	case StateDown:
		return "down"
	case StateRising:
		return "rising"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText encodes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Tracker is one backend's position in the state machine: the state and,
// while Rising or Falling, how many probes in a row have pointed the new
// way.
type Tracker struct {
	State State `json:"state"`
	// Streak counts consecutive results against the current state (passes
	// while Rising, failures while Falling); 0 otherwise.
	Streak int `json:"streak,omitempty"`

	// The fields below are kept by Step (Next leaves them zero).

	// Cause is the last counted failure's cause while the last counted
	// result failed (CauseNone after a pass).
	Cause Cause `json:"cause,omitempty"`
	// SilentSince is when the current run of failures without an answer
	// (timeouts, TLS failures, broken connections) began; zero after a
	// pass or an answer.
	SilentSince time.Time `json:"silent_since,omitzero"`
	// Dead says the backend is gone, not merely slow or unready: it
	// refused the connection, its host is unreachable, or it has failed
	// without answering for longer than Params.DeadAfter. Out of rotation,
	// a dead backend's flows are cut; any other one drains.
	Dead bool `json:"dead,omitempty"`
	// ForbiddenSince is when the current run of consecutive 401/403
	// answers began (zero when the last result was anything else).
	ForbiddenSince time.Time `json:"forbidden_since,omitzero"`
	// AuthOnly says the backend answers nothing but 401/403 to the probe
	// (anonymous /readyz not allowed and no client certificate): it is
	// judged by its completed TLS handshake until it answers /readyz with
	// a readiness status again.
	AuthOnly bool `json:"auth_only,omitempty"`
}

// Condition is the state with the failure's character: "falling (slow)",
// "down (dead)", "down (draining)", "up (TLS only)", or the bare state.
func (t Tracker) Condition() string {
	switch {
	case t.State == StateUp && t.AuthOnly:
		return "up (TLS only)"
	case t.State == StateFalling && t.Cause == CauseTimeout:
		return "falling (slow)"
	case t.State == StateFalling && t.Cause != CauseNone:
		return "falling (" + string(t.Cause) + ")"
	case t.State == StateDown && t.Dead:
		return "down (dead)"
	case t.State == StateDown && t.Cause == CauseTimeout:
		return "down (slow, draining)"
	case t.State == StateDown && t.Cause != CauseNone:
		return "down (draining)"
	}
	return t.State.String()
}

// Serving reports whether the backend gets traffic: Up or Falling.
func (t Tracker) Serving() bool { return t.State == StateUp || t.State == StateFalling }

// Transitioning reports whether the backend is changing state (Rising or
// Falling), when probes run at the fast interval.
func (t Tracker) Transitioning() bool { return t.State == StateRising || t.State == StateFalling }

// Next applies one probe result to t, with HAProxy's documented meaning of
// rise and fall: a backend goes down after fall consecutive failed probes
// and comes back after rise consecutive passed ones; a result that
// interrupts a streak cancels it. rise and fall below 1 count as 1.
//
// The first result is decisive (Unknown goes straight to Up or Down): at
// start there is no history to smooth, and waiting rise probes before
// serving anything would take the endpoint dark on every daemon restart.
func Next(t Tracker, healthy bool, rise, fall int) Tracker {
	rise, fall = max(rise, 1), max(fall, 1)
	switch t.State {
	case StateUp:
		if healthy {
			return Tracker{State: StateUp}
		}
		if fall == 1 {
			return Tracker{State: StateDown}
		}
		return Tracker{State: StateFalling, Streak: 1}
	case StateFalling:
		if healthy {
			return Tracker{State: StateUp}
		}
		if t.Streak+1 >= fall {
			return Tracker{State: StateDown}
		}
		return Tracker{State: StateFalling, Streak: t.Streak + 1}
	case StateDown:
		if !healthy {
			return Tracker{State: StateDown}
		}
		if rise == 1 {
			return Tracker{State: StateUp}
		}
		return Tracker{State: StateRising, Streak: 1}
	case StateRising:
		if !healthy {
			return Tracker{State: StateDown}
		}
		if t.Streak+1 >= rise {
			return Tracker{State: StateUp}
		}
		return Tracker{State: StateRising, Streak: t.Streak + 1}
	default: // StateUnknown or anything else: the first result decides.
		if healthy {
			return Tracker{State: StateUp}
		}
		return Tracker{State: StateDown}
	}
}

// Params are the state machine's settings.
type Params struct {
	// Rise and Fall as in HAProxy (below 1 count as 1).
	Rise, Fall int
	// DeadAfter is how long a backend may fail without an answer
	// (timeouts, TLS failures, broken connections) before it counts as
	// dead and its flows are cut. Refused and unreachable are dead at once;
	// an answer (/readyz not ready, 401/403) is never dead.
	DeadAfter time.Duration
	// AuthOnlyAfter is how long a backend must answer nothing but 401/403
	// before it is judged by its TLS handshake (AuthOnly). A starting
	// kube-apiserver answers 403 for a moment before its RBAC is loaded;
	// that 403 must not make it rise.
	AuthOnlyAfter time.Duration
}

// Defaults for Params' durations.
const (
	DefaultDeadAfter     = 10 * time.Second
	DefaultAuthOnlyAfter = 10 * time.Second
)

func (p Params) withDefaults() Params {
	if p.DeadAfter <= 0 {
		p.DeadAfter = DefaultDeadAfter
	}
	if p.AuthOnlyAfter <= 0 {
		p.AuthOnlyAfter = DefaultAuthOnlyAfter
	}
	return p
}

// Step applies one probe result, observed at r.Time, to t. It is Next
// with the failure's character kept:
//
//   - A 401/403 (OutcomeReadinessUnknown) is a pass only for a backend
//     known to answer nothing but 401/403: its very first result was one,
//     or it has answered 401/403 and nothing else for AuthOnlyAfter. Else
//     it is a failure (alive: it drains). So 401/403 never makes a backend
//     that answered /readyz before rise.
//   - A failure records its Cause and since when the backend fails. The
//     backend is Dead (flows cut when out of rotation) when it refused the
//     connection or its host is unreachable, or when it has failed without
//     an answer for DeadAfter. A timeout alone only drains it.
func Step(t Tracker, r HealthResult, p Params) Tracker {
	p = p.withDefaults()
	at := r.Time
	forbidden := r.Outcome == OutcomeReadinessUnknown
	auth, forbiddenSince := t.AuthOnly, t.ForbiddenSince
	switch {
	case forbidden:
		if forbiddenSince.IsZero() {
			forbiddenSince = at
		}
		if t.State == StateUnknown || at.Sub(forbiddenSince) >= p.AuthOnlyAfter {
			auth = true
		}
	case r.Outcome == OutcomePass && r.StatusCode != 0, r.Cause == CauseUnready:
		// /readyz answered with a readiness status: readable again.
		auth, forbiddenSince = false, time.Time{}
	default:
		forbiddenSince = time.Time{}
	}
	healthy := r.Outcome == OutcomePass || (forbidden && auth)
	n := Next(t, healthy, p.Rise, p.Fall)
	n.AuthOnly, n.ForbiddenSince = auth, forbiddenSince
	if healthy {
		return n
	}
	n.Cause = r.Cause
	if n.Cause == CauseNone {
		n.Cause = CauseError
	}
	switch n.Cause {
	case CauseUnready, CauseForbidden:
		n.Dead = false // it answers: alive
		return n
	}
	n.SilentSince = t.SilentSince
	if n.SilentSince.IsZero() {
		n.SilentSince = at
	}
	switch n.Cause {
	case CauseRefused, CauseUnreachable:
		n.Dead = true
	default:
		n.Dead = t.Dead || at.Sub(n.SilentSince) >= p.DeadAfter
	}
	return n
}
