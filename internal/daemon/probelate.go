package daemon

import "os"

// probeLatenessEnv set to "count" makes the probe monitor count every
// timed-out probe as a failure, also one this node ran too late to judge
// the backend by (probes.Discount off): a diagnostic and the overload
// drill's control, not for production. Unset, late timeouts are
// discounted (probes.MonitorOptions.LateFraction's default).
const probeLatenessEnv = "EPCONSOLE_PROBE_LATENESS"

// probeLateFraction is the probe monitor's LateFraction the environment
// asks for: 0 (the default) unless probeLatenessEnv is "count".
func probeLateFraction() float64 {
	if os.Getenv(probeLatenessEnv) == "count" {
		return -1
	}
	return 0
}
