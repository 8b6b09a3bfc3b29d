package bench

import (
	"fmt"
	"slices"
	"strings"
)

// The suite's sections. scripts/bench --only takes system names, section
// names or both: only those systems, only those sections.
const (
	secRates    = "rates"           // new TLS connections and kept-alive requests
	secIdle     = "idle"            // idle cost at 3 peers, every system at once
	secFailover = "failover"        // owner failures on a quiet host
	secLoaded   = "loaded"          // owner failures beside busy loops
	secStreams  = "streams"         // streams and in-flight requests through a power-off
	secBackend  = "backend-failure" // a backend killed, a backend's link down, under load
	secBulk     = "bulk"            // iperf3 through the VIP
	secIdle5    = "idle-5"          // idle cost at 5 peers, every system at once
	secFalse    = "false-failovers" // saturation and 1 % loss, every system at once
)

var sectionNames = []string{secRates, secIdle, secFailover, secLoaded, secStreams, secBackend, secBulk, secIdle5, secFalse}

// selection is what --only keeps; empty sets keep everything.
type selection struct {
	systems, sections []string
}

// parseOnly splits --only's comma-separated names into systems and
// sections.
func parseOnly(only string, systemNames []string) (selection, error) {
	var sel selection
	for _, n := range strings.Split(only, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case slices.Contains(systemNames, n):
			sel.systems = append(sel.systems, n)
		case slices.Contains(sectionNames, n):
			sel.sections = append(sel.sections, n)
		default:
			return sel, fmt.Errorf("--only %q: %q is neither a system (%s) nor a section (%s)",
				only, n, strings.Join(systemNames, ", "), strings.Join(sectionNames, ", "))
		}
	}
	return sel, nil
}

func (sel selection) system(name string) bool {
	return len(sel.systems) == 0 || slices.Contains(sel.systems, name)
}

func (sel selection) section(name string) bool {
	return len(sel.sections) == 0 || slices.Contains(sel.sections, name)
}

// anyFor tells whether a section that runs in sys's own lab is selected
// (direct has no VIP: only the rates and the bulk transfer).
func (sel selection) anyFor(sys system) bool {
	for _, n := range []string{secRates, secFailover, secLoaded, secStreams, secBackend, secBulk} {
		if sel.section(n) && (sys.VIP || n == secRates || n == secBulk) {
			return true
		}
	}
	return false
}
