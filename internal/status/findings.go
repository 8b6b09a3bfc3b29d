package status

import (
	"encoding/json"
	"slices"

	"github.com/epconsole/epconsole/probes"
)

// Findings are a snapshot's findings: probes' one Finding type, written in
// the status schema's form (see wireFinding).
type Findings []probes.Finding

// wireFinding is a finding as epconsole.status/v1 writes it: the check is
// the "area", the detail is part of the message ("message (detail)") and
// each fix is one line ("[kubeadm] text" for a setup's fix).
type wireFinding struct {
	Area     string          `json:"area"`
	Severity probes.Severity `json:"severity"`
	Subject  string          `json:"subject,omitempty"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Fixes    []string        `json:"fixes,omitempty"`
}

// MarshalJSON writes the findings in the status schema's form.
func (fs Findings) MarshalJSON() ([]byte, error) {
	if fs == nil {
		return []byte("null"), nil
	}
	out := make([]wireFinding, len(fs))
	for i, f := range fs {
		w := wireFinding{Area: string(f.Check), Severity: f.Severity, Subject: f.Subject, Code: f.Code, Message: f.Text()}
		for _, fx := range f.Fixes {
			w.Fixes = append(w.Fixes, fx.String())
		}
		out[i] = w
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads findings in the status schema's form; the detail
// stays in the message.
func (fs *Findings) UnmarshalJSON(b []byte) error {
	var in []wireFinding
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	if in == nil {
		*fs = nil
		return nil
	}
	out := make(Findings, len(in))
	for i, w := range in {
		f := probes.Finding{Check: probes.Check(w.Area), Severity: w.Severity, Subject: w.Subject, Code: w.Code, Message: w.Message}
		for _, fx := range w.Fixes {
			f.Fixes = append(f.Fixes, probes.ParseFix(fx))
		}
		out[i] = f
	}
	*fs = out
	return nil
}

// Of returns the findings of one area (a probes.Check), in order.
func (fs Findings) Of(area probes.Check) []probes.Finding {
	var out []probes.Finding
	for _, f := range fs {
		if f.Check == area {
			out = append(out, f)
		}
	}
	return out
}

// SortWorstFirst orders findings worst first (CRITICAL, UNKNOWN, WARNING,
// OK), keeping the order among equals.
func SortWorstFirst(fs []probes.Finding) {
	slices.SortStableFunc(fs, func(a, b probes.Finding) int { return b.Severity.Rank() - a.Severity.Rank() })
}
