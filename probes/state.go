package probes

import "fmt"

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
