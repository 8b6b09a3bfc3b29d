package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/preflight"
	"github.com/epconsole/epconsole/probes"
)

// checkPreflight is the name of the host check; it runs only when named,
// since it judges the LB host it runs on, not the control plane.
const checkPreflight probes.Check = "preflight"

type preflightSection struct {
	sectionHead
	Checked int `json:"checked"`
}

// runPreflightCheck runs the host preflight (read-only) in netnsPath (empty:
// this process's namespace) and turns its findings into check findings.
func runPreflightCheck(ctx context.Context, cfg *config.Config, netnsPath string) *preflightSection {
	o := preflight.OptionsFromConfig(cfg)
	o.NetnsPath = netnsPath
	fs := preflight.Run(ctx, o)
	s := &preflightSection{Checked: len(fs)}
	s.findings = preflightFindings(fs)
	problems := 0
	for _, f := range s.findings {
		if f.Severity != probes.OK {
			problems++
		}
	}
	if problems == 0 {
		s.Summary = fmt.Sprintf("%d host checks fine", len(fs))
	} else {
		s.Summary = fmt.Sprintf("%d of %d host checks need attention", problems, len(fs))
	}
	return s
}

// preflightFindings maps preflight's findings onto check's.
func preflightFindings(fs []preflight.Finding) []probes.Finding {
	out := make([]probes.Finding, 0, len(fs))
	for _, f := range fs {
		sev, err := probes.ParseSeverity(strings.ToLower(string(f.Severity)))
		if err != nil {
			sev = probes.Unknown
		}
		pf := probes.Finding{Check: checkPreflight, Severity: sev, Subject: f.Subject, Code: f.Code, Message: f.Message}
		if f.Fix != "" {
			pf.Fixes = []probes.Fix{{Text: f.Fix}}
		}
		out = append(out, pf)
	}
	return out
}
