package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/epconsole/epconsole/internal/config"
)

// textReport writes validate's human-readable output.
type textReport struct {
	stdio IO
	err   error // the first write error
}

// file reports one file: its diagnostics with their source, then a count
// of its problems or its OK line.
func (t *textReport) file(file string, cfg *config.Config, diags hcl.Diagnostics) {
	if t.err != nil {
		return
	}
	if err := config.WriteDiagnostics(t.stdio.Out, diags, nil); err != nil {
		t.fail(err)
		return
	}
	if cfg == nil {
		fmt.Fprintf(t.stdio.Out, "%s: %s\n", file, plural(len(diags.Errs()), "problem"))
		return
	}
	fmt.Fprintf(t.stdio.Out, "OK: %s: cluster %s, %s, %s, %s\n", file, cfg.ClusterName,
		plural(len(cfg.VIPs), "VIP"), plural(len(cfg.Backends), "backend"), plural(len(cfg.Peers), "peer"))
}

// compare reports the comparison of the files that loaded (when there are
// two or more): every difference, or that they agree.
func (t *textReport) compare(cfgs []*config.Config, diffs []config.Difference, files int) {
	if t.err != nil || len(cfgs) < 2 {
		return
	}
	var names []string
	for _, c := range cfgs {
		names = append(names, c.File)
	}
	w := t.stdio.Out
	if len(diffs) == 0 {
		fmt.Fprintf(w, "OK: %s agree on the cluster-wide settings (digest %.12s)\n", strings.Join(names, ", "), cfgs[0].Digest())
		return
	}
	fmt.Fprintf(w, "%s between %s:\n", plural(len(diffs), "difference"), strings.Join(names, ", "))
	for _, d := range diffs {
		fmt.Fprintf(w, "%s\n", d)
		fmt.Fprintf(w, "  %s\n", d.Why)
	}
	if len(cfgs) < files {
		fmt.Fprintf(w, "(only the files without problems were compared)\n")
	}
}

func (t *textReport) fail(err error) {
	t.err = err
	fmt.Fprintf(t.stdio.Err, "epconsole validate: %v\n", err)
}

// jsonDiagnostic is one element of `validate --json`.
type jsonDiagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
}

// writeJSONDiagnostics writes diags as a JSON array ([] when there are none).
func writeJSONDiagnostics(w io.Writer, diags hcl.Diagnostics) error {
	out := make([]jsonDiagnostic, 0, len(diags))
	for _, d := range diags {
		j := jsonDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			j.Severity = "warning"
		}
		if d.Subject != nil {
			j.File, j.Line, j.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}
