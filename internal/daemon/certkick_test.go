package daemon

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/epconsole/epconsole/probes"
)

// TestCertPresentedKicksCheck: the first certificate a backend presents
// and the same one again change nothing; another one records a
// cert-changed event and asks the certificate check to run now (once,
// however many changes arrive before it runs).
func TestCertPresentedKicksCheck(t *testing.T) {
	d := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	fpA, fpB, fpC := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	kicked := func() bool {
		select {
		case <-d.certKick:
			return true
		default:
			return false
		}
	}
	steps := []struct {
		backend, fp string
		kick        bool
	}{
		{"cp1", "", false},  // tcp probe, or no handshake
		{"cp1", fpA, false}, // first seen
		{"cp2", fpB, false}, // first seen, another backend
		{"cp1", fpA, false}, // unchanged
		{"cp1", fpC, true},  // reissued
		{"cp2", fpB, false},
		{"cp1", "", false}, // a failed probe forgets nothing
		{"cp1", fpC, false},
	}
	for i, s := range steps {
		d.certPresented(probes.HealthResult{Backend: s.backend, CertSHA256: s.fp})
		if got := kicked(); got != s.kick {
			t.Errorf("step %d (%s %.4s): kick %v, want %v", i, s.backend, s.fp, got, s.kick)
		}
	}
	var changed []string
	for _, e := range d.Events() {
		if e.Kind == EventCertChanged {
			changed = append(changed, e.Subject+": "+e.Message)
		}
	}
	if len(changed) != 1 || !strings.HasPrefix(changed[0], "cp1: presents another certificate (sha256 cccccccccccc…, was aaaaaaaaaaaa…)") {
		t.Errorf("cert-changed events %q", changed)
	}
	// Two changes before the check runs: one pending kick.
	d.certPresented(probes.HealthResult{Backend: "cp2", CertSHA256: fpA})
	d.certPresented(probes.HealthResult{Backend: "cp1", CertSHA256: fpB})
	if !kicked() || kicked() {
		t.Error("two changes before the check ran: want exactly one pending kick")
	}
}
