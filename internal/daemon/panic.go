package daemon

import (
	"strings"

	"github.com/epconsole/epconsole/internal/components"
	"github.com/epconsole/epconsole/internal/status"
)

// Panic routing: when this node's probes see no healthy backend at all
// (and balance.panic_routing is on), the datapath forwards new
// connections to every configured backend (components.Desired), and the
// election lets a live member stand in for the eligible one there is
// not (cluster.Elect). Both are pure; this says so, loudly, when it
// starts and ends: a log line and an event (the status's finding and
// metric are built from the probe results).

// EventPanicRouting: this node's datapath started or stopped forwarding
// to every backend because none passes its probes.
const (
	EventPanicRouting    = status.EventPanicRouting
	EventPanicRoutingEnd = status.EventPanicRoutingEnd
)

// notePanic logs and records a change of this node's panic routing: on
// while the programmed healthy set is empty and panic routing is on.
func (d *Daemon) notePanic(s *state) {
	on := s.reconciled && components.Panic(s.cfg, s.programmed)
	if on == d.panicking {
		return
	}
	d.panicking = on
	names := make([]string, 0, len(s.cfg.Backends))
	for _, b := range s.cfg.Backends {
		names = append(names, b.Name)
	}
	if on {
		d.log.Error("panic routing: no backend passes its probes here; new connections go to every configured backend",
			"backends", names, "holding", s.holding)
		d.record(EventPanicRouting, "", "no backend passes its probes here: new connections go to every backend ("+
			strings.Join(names, ", ")+") unprobed; check why the probes fail (epconsole check backends)")
		return
	}
	d.log.Info("panic routing over: a backend passes its probes again", "healthy_backends", countHealthy(s.programmed))
	d.record(EventPanicRoutingEnd, "", "a backend passes its probes again: new connections go to the healthy backends only")
}
