package daemon

import (
	"testing"

	"github.com/epconsole/epconsole/probes"
)

func TestProbeFailureReason(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    probes.HealthResult
		want string
	}{
		{"refused", probes.HealthResult{Stage: probes.StageConnect, Cause: probes.CauseRefused}, "connect"},
		{"handshake", probes.HealthResult{Stage: probes.StageTLS, Cause: probes.CauseTLS}, "tls"},
		{"unready", probes.HealthResult{Stage: probes.StageDone, Cause: probes.CauseUnready}, "readyz"},
		{"http error", probes.HealthResult{Stage: probes.StageHTTP, Cause: probes.CauseError}, "readyz"},
		{"timeout connecting", probes.HealthResult{Stage: probes.StageConnect, Cause: probes.CauseTimeout}, "timeout"},
		{"timeout on readyz", probes.HealthResult{Stage: probes.StageHTTP, Cause: probes.CauseTimeout}, "timeout"},
		{"late timeout", probes.HealthResult{Stage: probes.StageHTTP, Cause: probes.CauseTimeout, Discounted: true}, "late"},
		{"no stage", probes.HealthResult{Cause: probes.CauseError}, "error"},
	} {
		if got := probeFailureReason(tc.r); got != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestProbeLateFraction(t *testing.T) {
	t.Setenv(probeLatenessEnv, "")
	if f := probeLateFraction(); f != 0 {
		t.Errorf("unset: late fraction %v, want 0 (the monitor's default discount)", f)
	}
	t.Setenv(probeLatenessEnv, "count")
	if f := probeLateFraction(); f >= 0 {
		t.Errorf("count: late fraction %v, want negative (discount off)", f)
	}
}
