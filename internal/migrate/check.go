package migrate

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// errOnTarget stands for a file that lives on the target node (the CA
// file, say), which the import does not read.
var errOnTarget = errors.New("read on the node, not by the import")

// validate checks a generated config with internal/config's Parse. The
// gossip key and other files it names live on the nodes, so the key is a
// stand-in and problems reading other files are not reported.
func validate(hclText []byte, name, keyFile string) (*config.Config, hcl.Diagnostics) {
	standIn := []byte(base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n")
	cfg, diags := config.Parse(hclText, name, config.WithReadFile(func(p string) ([]byte, error) {
		if p == keyFile {
			return standIn, nil
		}
		return nil, errOnTarget
	}))
	var kept hcl.Diagnostics
	for _, d := range diags {
		if !strings.HasPrefix(d.Summary, "Cannot read") {
			kept = append(kept, d)
		}
	}
	return cfg, kept
}

// selfCheck validates every generated config and reports its problems as
// diagnostics on the generated text ("<node>/config.hcl:line"): an
// invalid config is never handed out as if it were good.
func selfCheck(res *Result, keyFile string) {
	for _, nc := range res.Configs {
		name := nc.Name + "/config.hcl"
		_, diags := validate(nc.HCL, name, keyFile)
		for _, d := range diags {
			sev := diag.Warning
			if d.Severity == hcl.DiagError {
				sev = diag.Error
			}
			line := 1
			if d.Subject != nil {
				line = d.Subject.Start.Line
			}
			res.Diagnostics = append(res.Diagnostics, diag.Diagnostic{File: name, Line: line, Severity: sev,
				Message: "generated config: " + d.Summary + "; " + d.Detail})
		}
	}
}
