package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
)

// Lab addresses: a slice of the benchmarking range no test uses.
var (
	labPrefix = "lab"
	labIPv4   = netip.MustParsePrefix("198.19.0.0/24")
	labIPv6   = netip.MustParsePrefix("fd00:198:18:100::/64")
)

const labUsage = `usage: epconsole lab [--duration D] [--rate N]
       epconsole lab down

Builds a demo control-plane endpoint in network namespaces on this machine
(as root): a client, an LB node and three stand-in apiservers (real TLS
servers with certificates from a lab CA). The LB's nftables datapath is
programmed by epconsole and the VIP added to its interface; the client then
sends fresh TLS connections through the VIP and the lab prints, every second,
which backend answered each. Ctrl-C (or --duration) removes everything.

'lab down' removes what a crashed lab left behind.

flags:
`

func runLab(ctx context.Context, args []string, stdio IO) int {
	if len(args) > 0 && args[0] == "down" {
		if err := netlab.Cleanup(labPrefix); err != nil {
			fmt.Fprintf(stdio.Err, "epconsole lab down: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdio.Out, "lab removed")
		return 0
	}
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stdio.Err)
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	rate := fs.Int("rate", 20, "new TLS connections per second through the VIP, per address family (1..200)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), labUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *rate < 1 || *rate > 200 {
		fmt.Fprintf(stdio.Err, "epconsole lab: --rate %d is out of range: use 1 to 200\n", *rate)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stdio.Err, "epconsole lab: needs root (it creates network namespaces and nftables tables); run it with sudo")
		return 1
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := runLabDemo(ctx, stdio, *rate); err != nil {
		fmt.Fprintf(stdio.Err, "epconsole lab: %v\n", err)
		return 1
	}
	return 0
}

func runLabDemo(ctx context.Context, stdio IO, rate int) error {
	spec := netlab.Spec{
		Prefix: labPrefix, IPv4: labIPv4, IPv6: labIPv6, DNSName: "api.lab.epconsole.test",
		Hosts: []netlab.HostSpec{
			{Name: "client", Role: netlab.RoleClient},
			{Name: "lb1", Role: netlab.RoleLB},
			{Name: "cp1", Role: netlab.RoleBackend},
			{Name: "cp2", Role: netlab.RoleBackend},
			{Name: "cp3", Role: netlab.RoleBackend},
		},
	}
	// A lab whose owner crashed is in the way: remove it, as `lab down` would.
	if err := netlab.Cleanup(labPrefix); err != nil {
		return fmt.Errorf("removing an earlier lab: %w", err)
	}
	// Set-up and teardown must not be cut short by Ctrl-C.
	setup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	lab, err := netlab.Build(setup, spec)
	if err != nil {
		return fmt.Errorf("building the lab: %w", err)
	}
	defer func() {
		if err := lab.Close(); err != nil {
			fmt.Fprintf(stdio.Err, "removing the lab: %v (run `epconsole lab down`)\n", err)
			return
		}
		fmt.Fprintln(stdio.Out, "lab removed: no namespace, link, table or process left")
	}()

	var backends []dataplane.Backend
	healthy := map[string]bool{}
	for _, h := range lab.HostsByRole(netlab.RoleBackend) {
		if _, err := h.StartStandin(setup, netlab.StandinOpts{Name: h.Name()}); err != nil {
			return fmt.Errorf("starting the stand-in apiserver on %s: %w", h.Name(), err)
		}
		backends = append(backends,
			dataplane.Backend{Name: h.Name(), Addr: netip.AddrPortFrom(h.IPv4(), 6443)},
			dataplane.Backend{Name: h.Name() + "-v6", Addr: netip.AddrPortFrom(h.IPv6(), 6443)})
		healthy[h.Name()], healthy[h.Name()+"-v6"] = true, true
	}
	lb := lab.Host("lb1")
	quiet := dataplane.WithLogger(slog.New(slog.NewTextHandler(stdio.Err, &slog.HandlerOptions{Level: slog.LevelWarn})))
	dp, err := dataplane.New(dataplane.WithNetNS(lb.Namespace()), quiet)
	if err != nil {
		return fmt.Errorf("opening nftables in %s (does this kernel have nf_tables?): %w", lb.Namespace(), err)
	}
	defer dp.Close()
	desired := dataplane.Desired{
		VIPs: []netip.Addr{lab.VIP4(), lab.VIP6()}, Port: 6443,
		Backends: backends, Healthy: healthy,
		Mode: dataplane.BalanceConnection, Seed: 0x5eed, Slots: 1021,
	}
	if _, err := dp.Reconcile(setup, desired); err != nil {
		return fmt.Errorf("programming the datapath on %s: %w", lb.Name(), err)
	}
	vip, err := dataplane.NewVIP(dataplane.WithNetNS(lb.Namespace()), quiet)
	if err != nil {
		return fmt.Errorf("opening %s for the VIP: %w", lb.Name(), err)
	}
	defer vip.Close()
	for _, a := range desired.VIPs {
		if err := vip.Add(setup, netlab.HostLink, a); err != nil {
			return fmt.Errorf("adding VIP %s on %s: %w", a, lb.Name(), err)
		}
	}

	fmt.Fprintf(stdio.Out, "lab up: VIP %s and [%s] port 6443 on %s (%s)\n", lab.VIP4(), lab.VIP6(), lb.Name(), lb.IPv4())
	for _, h := range lab.HostsByRole(netlab.RoleBackend) {
		fmt.Fprintf(stdio.Out, "  backend %s  %s:6443  [%s]:6443  stand-in apiserver\n", h.Name(), h.IPv4(), h.IPv6())
	}
	fmt.Fprintf(stdio.Out, "  datapath: nftables tables ip/ip6 epconsole in %s: DNAT VIP:6443 by flow hash into 1021 slots, SNAT to the VIP\n", lb.Namespace())
	fmt.Fprintf(stdio.Out, "  try: ip netns exec %s curl --cacert %s https://%s:6443/version\n", lab.Host("client").Namespace(), lab.CAFile(), lab.VIP4())
	fmt.Fprintln(stdio.Out, "fresh TLS connections from the client through the VIP, per second (Ctrl-C ends):")

	client := lab.Host("client")
	total := map[string]int{}
	failed := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for t := 1; ; t++ {
		var line strings.Builder
		fmt.Fprintf(&line, "%4ds", t)
		for _, target := range []netip.Addr{lab.VIP4(), lab.VIP6()} {
			res, err := client.RunClient(ctx, netlab.ClientOpts{
				Target: netip.AddrPortFrom(target, 6443), Count: rate, Concurrency: 4,
				Timeout: 900 * time.Millisecond, RequestTimeout: 500 * time.Millisecond,
			})
			if ctx.Err() != nil {
				printLabTotals(stdio, total, failed)
				return nil
			}
			if err != nil {
				return fmt.Errorf("client through %s: %w", target, err)
			}
			failed += res.Failed
			fmt.Fprintf(&line, "  %s ok %d failed %d:", familyName(target), res.OK, res.Failed)
			for _, name := range sortedKeys(res.Backends) {
				fmt.Fprintf(&line, " %s=%d", name, res.Backends[name])
				total[name] += res.Backends[name]
			}
		}
		fmt.Fprintln(stdio.Out, line.String())
		select {
		case <-ctx.Done():
			printLabTotals(stdio, total, failed)
			return nil
		case <-tick.C:
		}
	}
}

func printLabTotals(stdio IO, total map[string]int, failed int) {
	var b strings.Builder
	b.WriteString("totals:")
	for _, name := range sortedKeys(total) {
		fmt.Fprintf(&b, " %s=%d", name, total[name])
	}
	fmt.Fprintf(&b, " failed=%d", failed)
	fmt.Fprintln(stdio.Out, b.String())
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
