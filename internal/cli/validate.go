package cli

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/internal/config"
)

// Config file locations tried when -c is not given, in order.
const (
	localConfig  = "config.hcl"
	systemConfig = "/etc/epconsole/config.hcl"
)

// defaultConfigPath is ./config.hcl when it exists, else the system path.
func defaultConfigPath() string {
	if _, err := os.Stat(localConfig); err == nil {
		return localConfig
	}
	return systemConfig
}

// validateLong is validate's help text.
const validateLong = `Checks config files and prints OK, or every problem as file:line:col:
message followed by the source it points at. Given the files of several
nodes of one cluster, it then compares their cluster-wide settings (those
in the config digest, and the heartbeat settings) and their node and peer
blocks, and prints each difference with every file's value and line:

  backend "cp2".address: a.hcl:40 198.18.0.22, b.hcl:40 198.18.0.23

--offline checks syntax and values without reading the gossip key,
certificate, private key or CA files, and without looking at this host
(for CI). --json prints the diagnostics as a JSON array of objects
{file, line, column, severity, summary, detail}; a difference between
files is an error whose summary is the setting's path.
Exit code 0: valid (and the files agree); 1: problems found; 2: usage error.`

// validateOptions are validate's parsed arguments.
type validateOptions struct {
	files   []string
	offline bool
	json    bool
	// hostAddrs lists this host's addresses (address -> interface);
	// tests replace it.
	hostAddrs func() (map[netip.Addr]string, error)
}

// newValidateCmd is `epconsole validate`.
func newValidateCmd(a *app) *cobra.Command {
	var path string
	o := validateOptions{hostAddrs: hostAddresses}
	cmd := &cobra.Command{
		Use:                   "validate [-c config.hcl] [file.hcl...] [--offline] [--json]",
		Short:                 "check config files (and that several nodes' files agree); problems as file:line:col",
		Long:                  validateLong,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path != "" {
				o.files = append(o.files, path)
			}
			o.files = append(o.files, args...)
			if len(o.files) == 0 {
				o.files = []string{defaultConfigPath()}
			}
			a.code = runValidate(cmd.Context(), o, a.stdio)
			return nil
		},
	}
	fs := cmd.Flags()
	configFlag(fs, &path)
	fs.BoolVar(&o.offline, "offline", false, "check syntax and values only: read no key, certificate or CA file, and do not look at this host")
	fs.BoolVar(&o.json, "json", false, "print the diagnostics as a JSON array of {file, line, column, severity, summary, detail}")
	return cmd
}

// runValidate checks every file in o.files, then compares them.
func runValidate(_ context.Context, o validateOptions, stdio IO) int {
	var opts []config.Option
	if o.offline {
		opts = append(opts, config.Offline())
	}
	var onHost map[netip.Addr]string
	var hostErr error
	if !o.offline && o.hostAddrs != nil {
		onHost, hostErr = o.hostAddrs()
	}
	var (
		all    hcl.Diagnostics
		cfgs   []*config.Config
		failed bool
		text   = &textReport{stdio: stdio}
	)
	for _, file := range o.files {
		cfg, diags := config.Load(file, opts...)
		if cfg != nil && onHost != nil {
			diags = append(diags, cfg.VIPsOnHost(onHost)...)
		}
		all = append(all, diags...)
		if cfg == nil {
			failed = true
		} else {
			cfgs = append(cfgs, cfg)
		}
		if !o.json {
			text.file(file, cfg, diags)
		}
	}
	diffs := config.Compare(cfgs)
	if len(diffs) > 0 {
		failed = true
	}
	if o.json {
		for _, d := range diffs {
			all = append(all, d.Diagnostic())
		}
		if err := writeJSONDiagnostics(stdio.Out, all); err != nil {
			fmt.Fprintf(stdio.Err, "epconsole validate: %v\n", err)
			return 1
		}
	} else {
		text.compare(cfgs, diffs, len(o.files))
	}
	if hostErr != nil {
		fmt.Fprintf(stdio.Err, "epconsole validate: cannot list this host's addresses (the VIPs were not compared with them): %v\n", hostErr)
	}
	if failed || text.err != nil {
		return 1
	}
	return 0
}

// hostAddresses lists this host's addresses and the interface of each.
func hostAddresses() (map[netip.Addr]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]string{}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					out[ip.Unmap()] = ifc.Name
				}
			}
		}
	}
	return out, nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
