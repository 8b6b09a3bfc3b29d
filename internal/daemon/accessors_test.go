package daemon

import (
	"reflect"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/probes"
)

// TestSameStatus: every field of the status counts, so that a change
// pokes the status producer at once.
func TestSameStatus(t *testing.T) {
	// A field added to Status or Decision must be compared by
	// sameStatus/sameDecision (and counted here).
	if n := reflect.TypeFor[Status]().NumField(); n != 23 {
		t.Fatalf("Status has %d fields, sameStatus compares 23: compare the new one", n)
	}
	if n := reflect.TypeFor[cluster.Decision]().NumField(); n != 10 {
		t.Fatalf("Decision has %d fields, sameDecision compares 10: compare the new one", n)
	}
	pre := []probes.Finding{{Code: "x"}}
	base := func() Status {
		return Status{
			Node: "lb1", Started: time.Unix(1, 0), Healthy: map[string]bool{"a": true}, Preflight: pre,
			Decision: cluster.Decision{Owner: "lb1", Claims: []cluster.Claim{{Name: "lb1", Epoch: 1}}},
		}
	}
	a := base()
	if b := base(); !sameStatus(&a, &b) {
		t.Fatal("equal statuses differ")
	}
	for name, change := range map[string]func(*Status){
		"node":       func(s *Status) { s.Node = "lb2" },
		"holding":    func(s *Status) { s.Holding = true },
		"iface":      func(s *Status) { s.InterfaceUp = true },
		"healthy":    func(s *Status) { s.Healthy = map[string]bool{"a": false} },
		"drain":      func(s *Status) { s.Drain = map[string]bool{"a": true} },
		"owner":      func(s *Status) { s.Decision.Owner = "lb2" },
		"quorum":     func(s *Status) { s.Decision.Quorum.Have = 2 },
		"claims":     func(s *Status) { s.Decision.Claims = append(s.Decision.Claims, cluster.Claim{Name: "lb2"}) },
		"mismatch":   func(s *Status) { s.Decision.Mismatch = []string{"lb3"} },
		"faults":     func(s *Status) { s.Faults = []probes.Finding{{Code: "f"}} },
		"preflight":  func(s *Status) { s.Preflight = []probes.Finding{{Code: "x"}} },
		"realtime":   func(s *Status) { s.HeartbeatRealtime.InEffect = true },
		"drained":    func(s *Status) { s.Drained = []string{"a"} },
		"handoff":    func(s *Status) { s.HandoffTo = "lb2" },
		"reload":     func(s *Status) { s.LastReload = time.Unix(2, 0) },
		"beat error": func(s *Status) { s.HeartbeatError = "x" },
	} {
		b := base()
		change(&b)
		if sameStatus(&a, &b) {
			t.Errorf("%s: a changed status counts as the same", name)
		}
	}
}
