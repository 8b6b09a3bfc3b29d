package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/internal/migrate"
)

// initLong is init's help text.
const initLong = `Writes a new cluster's files into DIR: DIR/<node>/config.hcl for every LB
node named with --peer, and one gossip key, DIR/gossip.key (mode 0600).
The configs are the same in their cluster-wide parts (name, VIPs,
backends, key file, health, TLS, balance) and differ only in the node and
peer blocks; each is checked before anything is written. No existing file
is ever overwritten.

Exit code 0: written; 1: the values do not make a valid config, or a file
exists; 2: usage error.`

// initOptions are init's parsed arguments.
type initOptions struct {
	vips     []netip.Addr
	iface    string
	peers    []migrate.NodeName
	backends []migrate.NodeName
	dnsNames []string
	cluster  string
	caFile   string
	keyFile  string
	out      string
}

// newInitCmd is `epconsole init`.
func newInitCmd(a *app) *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init --vip IP --interface IF --peer NAME=IP ... --backend NAME=IP ... -o DIR",
		Short: "write a new cluster's configs, one per LB node, and its gossip key",
		Long:  initLong,
		Annotations: map[string]string{synopsisKey: "epconsole init --vip IP [--vip IP6] --interface IF --peer NAME=IP [--peer NAME=IP ...]\n" +
			"               --backend NAME=IP [--backend NAME=IP ...] -o DIR\n" +
			"               [--dns-name NAME ...] [--cluster-name NAME] [--ca-file FILE] [--key-file PATH]"},
		Args:                  noArgs(" (every value goes after its flag)"),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			a.code = runInit(cmd.Context(), o, a.stdio)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.Var(addrList{&o.vips}, "vip", "a VIP clients use (repeat for an IPv4 and an IPv6 VIP)")
	fs.StringVar(&o.iface, "interface", "", "the `link` the VIP goes on, the same on every LB node")
	fs.Var(nodeList{&o.peers}, "peer", "an LB node, NAME=IP, its gossip address (repeat for every node, this one included)")
	fs.Var(nodeList{&o.backends}, "backend", "an apiserver, NAME=IP, port 6443 (repeat for each, in a fixed order)")
	fs.StringArrayVar(&o.dnsNames, "dns-name", nil, "a DNS `name` clients use for the VIP (repeat)")
	fs.StringVar(&o.cluster, "cluster-name", "k8s-api", "the cluster's `name`")
	fs.StringVar(&o.caFile, "ca-file", "", "the cluster CA `file` on the nodes the probes verify against (default: not checked)")
	fs.StringVar(&o.keyFile, "key-file", migrate.DefaultKeyFile, "the `path` where the configs expect the gossip key on the nodes")
	fs.StringVarP(&o.out, "output", "o", "", "the `directory` to write into (created if missing)")
	return cmd
}

// check names every required flag that is missing.
func (o initOptions) check() error {
	var missing []string
	if len(o.vips) == 0 {
		missing = append(missing, "--vip")
	}
	if o.iface == "" {
		missing = append(missing, "--interface")
	}
	if len(o.peers) == 0 {
		missing = append(missing, "--peer")
	}
	if len(o.backends) == 0 {
		missing = append(missing, "--backend")
	}
	if o.out == "" {
		missing = append(missing, "-o")
	}
	if len(missing) > 0 {
		return usagef(exitUsage, "missing %s: init needs the VIP, its interface, every LB node (--peer), every apiserver (--backend) and a directory (-o)", strings.Join(missing, ", "))
	}
	return nil
}

// runInit writes the cluster's files into o.out.
func runInit(_ context.Context, o initOptions, stdio IO) int {
	files, err := migrate.Init(migrate.InitOptions{
		ClusterName: o.cluster, VIPs: o.vips, Interface: o.iface, Nodes: o.peers, Backends: o.backends,
		DNSNames: o.dnsNames, CAFile: o.caFile, KeyFile: o.keyFile,
	})
	if err != nil {
		fmt.Fprintf(stdio.Err, "epconsole %v\nnothing written\n", err)
		return 1
	}
	if err := writeAll(o.out, files); err != nil {
		fmt.Fprintf(stdio.Err, "epconsole init: %v\n", err)
		return 1
	}
	keyPath := filepath.Join(o.out, migrate.KeyName)
	fmt.Fprintf(stdio.Out, "wrote %s (mode 0600): the cluster's gossip key; keep it secret\n", keyPath)
	for _, n := range o.peers {
		fmt.Fprintf(stdio.Out, "wrote %s (node %s, %s)\n", filepath.Join(o.out, n.Name, "config.hcl"), n.Name, n.Addr)
	}
	writeInitSteps(stdio.Out, o, keyPath)
	return exitOK
}

// writeInitSteps prints how to install the files on the nodes.
func writeInitSteps(w io.Writer, o initOptions, keyPath string) {
	fmt.Fprintf(w, "next steps, on each LB node:\n")
	fmt.Fprintf(w, "  1. copy %s to %s on that node\n", filepath.Join(o.out, "<node>", "config.hcl"), systemConfig)
	for _, n := range o.peers {
		fmt.Fprintf(w, "       %s (%s): %s\n", n.Name, n.Addr, filepath.Join(o.out, n.Name, "config.hcl"))
	}
	fmt.Fprintf(w, "  2. copy %s to %s with mode 0600: install -m 0600 %s %s\n", keyPath, o.keyFile, migrate.KeyName, o.keyFile)
	fmt.Fprintf(w, "  3. check it there: epconsole validate\n")
	fmt.Fprintf(w, "  4. start the service: systemctl start epconsole (or epconsole daemon)\n")
}
