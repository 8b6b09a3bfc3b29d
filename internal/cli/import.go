package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/epconsole/epconsole/internal/migrate"
	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// importLong is import's help text.
const importLong = `Turns an HAProxy + keepalived control-plane VIP setup into epconsole
configs, one per LB node. Give haproxy.cfg and every LB node's
keepalived.conf together: each keepalived file is one node (its
unicast_src_ip is the node's address; for multicast VRRP name the nodes
with --node, in the order of the files). Without keepalived files, --vip,
--interface and --node say what keepalived would have.

Every config is commented with what each part was mapped from (file:line)
and what has no equivalent. Diagnostics go to stderr as
file:line: severity: message (error, warning or note).

With one node and no -o, the config goes to stdout; -o FILE writes it to
FILE. With several nodes, -o DIR writes DIR/<node>/config.hcl each (a
single node's config goes to a directory too when DIR exists or ends in /).
Nothing is written when there are errors, and no existing file is ever
overwritten. Exit code 0: written; 1: errors in the inputs, or a file
exists; 2: usage error.`

// importOptions are import's parsed arguments.
type importOptions struct {
	haproxy    string
	keepalived []string
	nodes      []migrate.NodeName
	vips       []netip.Addr
	iface      string
	cluster    string
	dnsNames   []string
	keyFile    string
	out        string
}

// newImportCmd is `epconsole import`.
func newImportCmd(a *app) *cobra.Command {
	var o importOptions
	cmd := &cobra.Command{
		Use:   "import --haproxy FILE [--keepalived FILE ...] [-o DIR|FILE]",
		Short: "turn haproxy.cfg + keepalived.conf into epconsole configs, one per LB node",
		Long:  importLong,
		Annotations: map[string]string{synopsisKey: "epconsole import --haproxy FILE --keepalived FILE [--keepalived FILE ...] [-o DIR|FILE]\n" +
			"                 [--node NAME=IP ...] [--vip IP] [--interface IF] [--cluster-name NAME]\n" +
			"                 [--dns-name NAME ...] [--key-file PATH]"},
		Args:                  noArgs(" (input files go after --haproxy and --keepalived)"),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.haproxy == "" {
				return usagef(exitUsage, "--haproxy FILE is required: the haproxy.cfg that serves the apiservers")
			}
			a.code = runImport(cmd.Context(), o, a.stdio)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.haproxy, "haproxy", "", "the haproxy.cfg `file` whose frontend serves the apiservers")
	fs.StringArrayVar(&o.keepalived, "keepalived", nil, "a keepalived.conf `file`, one per LB node (repeat for each)")
	fs.Var(nodeList{&o.nodes}, "node", "name an LB node by its address, NAME=IP (repeat; for multicast VRRP in the order of the keepalived files)")
	fs.Var(addrList{&o.vips}, "vip", "the VIP, replacing keepalived's virtual_ipaddress (repeat for an IPv4 and an IPv6 VIP)")
	fs.StringVar(&o.iface, "interface", "", "the `link` the VIP goes on, replacing keepalived's interface")
	fs.StringVar(&o.cluster, "cluster-name", "", "the cluster's `name` (default: the HAProxy frontend's name)")
	fs.StringArrayVar(&o.dnsNames, "dns-name", nil, "a DNS `name` clients use for the VIP (repeat)")
	fs.StringVar(&o.keyFile, "key-file", migrate.DefaultKeyFile, "the `path` where the configs expect the gossip key on the nodes")
	fs.StringVarP(&o.out, "output", "o", "", "write to this `path`: a directory (DIR/<node>/config.hcl) or, for one node, a file (default: stdout)")
	return cmd
}

// runImport reads the inputs, imports them and writes the configs.
func runImport(_ context.Context, o importOptions, stdio IO) int {
	hp, err := readSource(o.haproxy)
	if err != nil {
		fmt.Fprintf(stdio.Err, "epconsole import: %v\n", err)
		return 1
	}
	var kas []migrate.Source
	for _, f := range o.keepalived {
		s, err := readSource(f)
		if err != nil {
			fmt.Fprintf(stdio.Err, "epconsole import: %v\n", err)
			return 1
		}
		kas = append(kas, s)
	}
	res, err := migrate.Import(hp, kas, migrate.ImportOptions{
		ClusterName: o.cluster, DNSNames: o.dnsNames, Nodes: o.nodes, VIPs: o.vips, Interface: o.iface, KeyFile: o.keyFile,
	})
	for _, d := range res.Diagnostics {
		fmt.Fprintln(stdio.Err, d.String())
	}
	if err != nil {
		var de diag.Errors
		n := 1
		if errors.As(err, &de) {
			n = len(de)
		}
		fmt.Fprintf(stdio.Err, "epconsole import: %s in the inputs; nothing written\n", plural(n, "error"))
		return 1
	}
	if len(res.Configs) == 0 {
		fmt.Fprintf(stdio.Err, "epconsole import: no LB node to write a config for\n")
		return 1
	}
	return writeImport(o.out, res, stdio)
}

// readSource reads one input file; diagnostics name it as given.
func readSource(path string) (migrate.Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return migrate.Source{}, fmt.Errorf("reading the input: %w", err)
	}
	return migrate.Source{Name: path, Data: b}, nil
}

// writeImport writes the configs where out says: stdout (one node, no
// -o), one file, or a directory of <node>/config.hcl.
func writeImport(out string, res *migrate.Result, stdio IO) int {
	var names []string
	for _, c := range res.Configs {
		names = append(names, c.Name)
	}
	if out == "" {
		if len(res.Configs) > 1 {
			fmt.Fprintf(stdio.Err, "epconsole import: %d configs (%s): name a directory with -o DIR to write DIR/<node>/config.hcl for each\n",
				len(res.Configs), strings.Join(names, ", "))
			return exitUsage
		}
		if _, err := stdio.Out.Write(res.Configs[0].HCL); err != nil {
			fmt.Fprintf(stdio.Err, "epconsole import: %v\n", err)
			return 1
		}
		writeSteps(stdio.Err, res.Notes)
		return exitOK
	}
	fi, statErr := os.Stat(out)
	isDir := statErr == nil && fi.IsDir()
	if !isDir && len(res.Configs) == 1 && !strings.HasSuffix(out, string(filepath.Separator)) {
		if err := createFile(out, res.Configs[0].HCL, 0o644); err != nil {
			fmt.Fprintf(stdio.Err, "epconsole import: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdio.Out, "wrote %s (node %s, %s)\n", out, res.Configs[0].Name, res.Configs[0].Addr)
		writeSteps(stdio.Out, res.Notes)
		return exitOK
	}
	if statErr == nil && !isDir {
		fmt.Fprintf(stdio.Err, "epconsole import: -o %s is a file, but there are %d configs (%s): name a directory\n",
			out, len(res.Configs), strings.Join(names, ", "))
		return exitUsage
	}
	files := map[string][]byte{}
	for _, c := range res.Configs {
		files[filepath.Join(c.Name, "config.hcl")] = c.HCL
	}
	if err := writeAll(out, files); err != nil {
		fmt.Fprintf(stdio.Err, "epconsole import: %v\n", err)
		return 1
	}
	for _, c := range res.Configs {
		fmt.Fprintf(stdio.Out, "wrote %s (node %s, %s)\n", filepath.Join(out, c.Name, "config.hcl"), c.Name, c.Addr)
	}
	writeSteps(stdio.Out, res.Notes)
	return exitOK
}

// writeAll writes files under dir (migrate.WriteFiles: the gossip key
// 0600), after checking that none of them exists, so a refusal leaves
// nothing half written.
func writeAll(dir string, files map[string][]byte) error {
	for name := range files {
		if err := refuseExisting(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return migrate.WriteFiles(dir, files)
}

// refuseExisting is the error for a path that exists: nothing is ever
// overwritten.
func refuseExisting(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; nothing is overwritten: move it away or choose another -o", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	return nil
}

// createFile writes a new file with mode, refusing an existing one.
func createFile(path string, data []byte, mode os.FileMode) error {
	if err := refuseExisting(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeSteps prints the steps left to the operator, numbered.
func writeSteps(w io.Writer, steps []string) {
	if len(steps) == 0 {
		return
	}
	fmt.Fprintln(w, "next steps:")
	for i, s := range steps {
		fmt.Fprintf(w, "  %d. %s\n", i+1, s)
	}
}

// nodeList is a repeatable NAME=IP flag (--node, --peer, --backend).
type nodeList struct{ p *[]migrate.NodeName }

func (v nodeList) Type() string { return "NAME=IP" }

func (v nodeList) String() string {
	var s []string
	for _, n := range *v.p {
		s = append(s, n.Name+"="+n.Addr.String())
	}
	return strings.Join(s, ",")
}

func (v nodeList) Set(s string) error {
	n, err := migrate.ParseNodeName(s)
	if err != nil {
		return err
	}
	for _, o := range *v.p {
		if o.Name == n.Name {
			return fmt.Errorf("%s is named twice", n.Name)
		}
	}
	*v.p = append(*v.p, n)
	return nil
}

// addrList is a repeatable IP address flag (--vip).
type addrList struct{ p *[]netip.Addr }

func (v addrList) Type() string { return "IP" }

func (v addrList) String() string {
	var s []string
	for _, a := range *v.p {
		s = append(s, a.String())
	}
	return strings.Join(s, ",")
}

func (v addrList) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	*v.p = append(*v.p, a)
	return nil
}

var _ pflag.Value = nodeList{}
var _ pflag.Value = addrList{}
