package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// What the binary says it is, set at build time with
//
//	go build -ldflags "-X github.com/epconsole/epconsole/internal/cli.Version=v1.2.0
//	  -X github.com/epconsole/epconsole/internal/cli.Commit=$(git rev-parse HEAD)
//	  -X github.com/epconsole/epconsole/internal/cli.BuildDate=$(date -u +%FT%TZ)"
//
// Left empty, each comes from the build's own record (debug.ReadBuildInfo:
// the module version, vcs.revision, vcs.time).
var (
	Version   string
	Commit    string
	BuildDate string
)

// versionInfo is what `epconsole version` prints (--json: this object).
type versionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Modified is set when the build's working tree had uncommitted
	// changes (vcs.modified).
	Modified bool `json:"modified"`
	// BuildDate is -X BuildDate, else the commit's time (vcs.time).
	BuildDate string `json:"build_date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// readVersion is this binary's versionInfo.
func readVersion() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveVersion(versionInfo{Version: Version, Commit: Commit, BuildDate: BuildDate}, bi)
}

// resolveVersion fills what set (the -X values) leaves empty from bi (nil:
// none): the version from the main module ("dev" without one), commit
// and date from its vcs settings.
func resolveVersion(set versionInfo, bi *debug.BuildInfo) versionInfo {
	v := set
	v.GoVersion, v.Platform = runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH
	if bi != nil {
		if bi.GoVersion != "" {
			v.GoVersion = bi.GoVersion
		}
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if set.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.modified":
				v.Modified = set.Commit == "" && s.Value == "true"
			case "vcs.time":
				if set.BuildDate == "" {
					v.BuildDate = s.Value
				}
			}
		}
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	return v
}

// writeVersion prints v for a person: the first line is the one
// `epconsole version` always printed ("epconsole v1.2.0").
func writeVersion(w io.Writer, v versionInfo) {
	commit := orUnknown(v.Commit)
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "epconsole %s\n  commit      %s\n  build date  %s\n  go          %s %s\n",
		v.Version, commit, orUnknown(v.BuildDate), v.GoVersion, v.Platform)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// newVersionCmd is `epconsole version`.
func newVersionCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:                   "version [--json]",
		Short:                 "print the version, commit, build date and Go version",
		Args:                  noArgs(""),
		DisableFlagsInUseLine: true,
		RunE: func(*cobra.Command, []string) error {
			v := readVersion()
			if !asJSON {
				writeVersion(a.stdio.Out, v)
				return nil
			}
			e := json.NewEncoder(a.stdio.Out)
			e.SetIndent("", "  ")
			if err := e.Encode(v); err != nil {
				fmt.Fprintf(a.stdio.Err, "epconsole version: %v\n", err)
				a.code = 1
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as a JSON object")
	return cmd
}
