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

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/lab"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// labPrefix names the lab's namespaces ("lab-lb1", ...).
var labPrefix = lab.DefaultPrefix

const labUsage = `usage: epconsole lab [--peers N] [--backends M] [--headless] [--duration D] [--rate N]
       epconsole lab fault NAME | epconsole lab heal NAME
       epconsole lab down

Builds a whole control-plane endpoint in network namespaces on this machine
(as root): a client, lb1..lbN each running the real 'epconsole --daemon'
(generated config.hcl with an IPv4 and an IPv6 VIP, a gossip key, a status
socket), and cp1..cpM each running a stand-in apiserver (a real TLS server
with a certificate from a lab CA carrying the VIPs and the endpoint DNS
name), the first three also a member of a real etcd cluster (TLS, client
certificates). The client sends fresh TLS connections through the VIP.

On a terminal the console opens, attached to the VIP owner's daemon (and to
the next peer's when that one dies); quitting it removes the lab. With --headless or --duration the lab prints, every
second, which backend answered each connection. Ctrl-C removes everything.

'lab fault NAME' and 'lab heal NAME' (from another terminal) run a drill on
the running lab and print what an operator should now see in the console
and in 'epconsole check'. Drills: %s.

'lab down' removes what a crashed lab left behind.

flags:
`

func runLab(ctx context.Context, args []string, stdio IO) int {
	if len(args) > 0 {
		switch args[0] {
		case "down":
			if err := lab.Down(labPrefix); err != nil {
				fmt.Fprintf(stdio.Err, "epconsole lab down: %v\n", err)
				return 1
			}
			fmt.Fprintln(stdio.Out, "lab removed")
			return 0
		case "fault", "heal":
			if len(args) != 2 {
				fmt.Fprintf(stdio.Err, "usage: epconsole lab %s NAME (one of %s)\n", args[0], strings.Join(lab.Faults(), ", "))
				return 2
			}
			text, err := lab.Control(ctx, labPrefix, args[0], args[1])
			if err != nil {
				fmt.Fprintf(stdio.Err, "epconsole lab %s: %v\n", args[0], err)
				return 1
			}
			fmt.Fprintln(stdio.Out, text)
			return 0
		}
	}
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stdio.Err)
	duration := fs.Duration("duration", 0, "stop after this long, headless (0: run until Ctrl-C or the console quits)")
	headless := fs.Bool("headless", false, "no console: print the client's results every second")
	rate := fs.Int("rate", 20, "new TLS connections per second through the VIP, per address family (1..200)")
	peers := fs.Int("peers", lab.DefaultPeers, fmt.Sprintf("LB peers running the daemon (1..%d)", lab.MaxPeers))
	backends := fs.Int("backends", lab.DefaultBackends, fmt.Sprintf("control-plane hosts with a stand-in apiserver (1..%d)", lab.MaxBackends))
	binary := fs.String("binary", "", "the epconsole binary the LB peers run (default: this one)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), labUsage, strings.Join(lab.Faults(), ", "))
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
	if *peers < 1 || *peers > lab.MaxPeers || *backends < 1 || *backends > lab.MaxBackends {
		fmt.Fprintf(stdio.Err, "epconsole lab: --peers %d --backends %d: use 1 to %d peers and 1 to %d backends\n", *peers, *backends, lab.MaxPeers, lab.MaxBackends)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stdio.Err, "epconsole lab: needs root (it creates network namespaces and nftables tables); run it with sudo")
		return 1
	}
	tui := !*headless && *duration == 0 && terminal(stdio.In) && terminal(stdio.Out)
	opts := lab.Options{
		Prefix: labPrefix, Peers: *peers, Backends: *backends, Binary: *binary,
		Logger: slog.New(slog.NewTextHandler(stdio.Err, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if err := runLabDemo(ctx, stdio, opts, *rate, *duration, tui); err != nil {
		fmt.Fprintf(stdio.Err, "epconsole lab: %v\n", err)
		return 1
	}
	return 0
}

func runLabDemo(ctx context.Context, stdio IO, opts lab.Options, rate int, duration time.Duration, tui bool) error {
	// A lab whose owner crashed is in the way: remove it, as `lab down` would.
	if err := lab.Down(opts.Prefix); err != nil {
		return fmt.Errorf("removing an earlier lab: %w", err)
	}
	// Set-up and teardown must not be cut short by Ctrl-C.
	setup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
	defer cancel()
	l, err := lab.Up(setup, opts)
	if err != nil {
		return fmt.Errorf("bringing the lab up (does this kernel have nf_tables?): %w", err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintf(stdio.Err, "removing the lab: %v (run `epconsole lab down`)\n", err)
			return
		}
		fmt.Fprintln(stdio.Out, "lab removed: no namespace, link, table or process left")
	}()
	owner, err := l.Owner(setup)
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- l.ServeControl(runCtx) }()
	defer func() { stopRun(); <-ctlDone }()

	n := l.Net()
	fmt.Fprintf(stdio.Out, "lab up: VIP %s and [%s] port %d, DNS name %s; owner %s\n", n.VIP4(), n.VIP6(), lab.ServicePort, n.DNSName(), owner)
	for _, p := range l.Peers() {
		h := n.Host(p)
		fmt.Fprintf(stdio.Out, "  peer    %-4s %s  epconsole --daemon -c %s  (status %s, metrics http://%s:%d/metrics)\n", p, h.IPv4(), l.ConfigPath(p), l.Socket(p), h.IPv4(), lab.MetricsPort)
	}
	for _, b := range l.Backends() {
		h := n.Host(b)
		fmt.Fprintf(stdio.Out, "  backend %-4s %s:%d  [%s]:%d  stand-in apiserver\n", b, h.IPv4(), lab.ServicePort, h.IPv6(), lab.ServicePort)
	}
	if e := l.Etcd(); e != nil {
		fmt.Fprintf(stdio.Out, "  etcd    %s  %s  (TLS; client cert %s)\n", strings.Join(e.Names(), ","), strings.Join(e.Endpoints(), " "), e.ClientCertFile)
	}
	fmt.Fprintf(stdio.Out, "  try: ip netns exec %s curl --cacert %s https://%s:%d/version\n", n.Host("client").Namespace(), n.CAFile(), n.VIP4(), lab.ServicePort)
	fmt.Fprintf(stdio.Out, "       epconsole lab fault stop-backend   (then: epconsole lab heal stop-backend; drills: %s)\n", strings.Join(lab.Faults(), ", "))
	socks := []string{l.Socket(owner)}
	for _, p := range l.Peers() {
		if p != owner {
			socks = append(socks, l.Socket(p))
		}
	}
	fmt.Fprintf(stdio.Out, "       epconsole console -c %s --socket %s\n", l.ConfigPath(owner), strings.Join(socks, ","))

	if tui {
		cfg, diags := config.Load(l.ConfigPath(owner))
		if diags.HasErrors() {
			return fmt.Errorf("the lab's config for %s: %v", owner, diags)
		}
		// The client keeps sending fresh connections while the console runs.
		loadDone := make(chan struct{})
		go func() {
			defer close(loadDone)
			_, _, _ = labLoad(runCtx, l, rate, nil)
		}()
		// The owner's daemon first, then the others: when the owner dies
		// (kill-owner) the console falls over to the next peer.
		eps := []status.Endpoint{{Name: owner, Socket: l.Socket(owner)}}
		for _, p := range l.Peers() {
			if p != owner {
				eps = append(eps, status.Endpoint{Name: p, Socket: l.Socket(p)})
			}
		}
		code := console(ctx, cfg, eps, labDrills{prefix: opts.Prefix}, stdio)
		stopRun()
		<-loadDone
		if code != 0 {
			return fmt.Errorf("console exited with %d", code)
		}
		return nil
	}
	if duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, duration)
		defer cancel()
	}
	fmt.Fprintln(stdio.Out, "fresh TLS connections from the client through the VIP, per second (Ctrl-C ends):")
	total, failed, err := labLoad(runCtx, l, rate, &stdio)
	printLabTotals(stdio, total, failed)
	return err
}

// labDrills are the running lab's drills for the console's lab key, over
// the lab's control socket.
type labDrills struct{ prefix string }

// drillTimeout bounds one drill asked from the console (the lab bounds
// each drill at 30 s).
const drillTimeout = 45 * time.Second

// List returns the lab's drills and which are in place.
func (d labDrills) List(ctx context.Context) ([]tui.Drill, error) {
	ctx, cancel := context.WithTimeout(ctx, drillTimeout)
	defer cancel()
	fs, err := lab.ListFaults(ctx, d.prefix)
	if err != nil {
		return nil, err
	}
	out := make([]tui.Drill, 0, len(fs))
	for _, f := range fs {
		out = append(out, tui.Drill{Name: f.Name, Active: f.Active, Target: f.Target})
	}
	return out, nil
}

// Run faults or heals drill name and returns what to look for.
func (d labDrills) Run(ctx context.Context, verb, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, drillTimeout)
	defer cancel()
	return lab.Control(ctx, d.prefix, verb, name)
}

// labLoad sends rate fresh TLS connections per second and family through
// the VIPs until ctx ends, printing a line a second when stdio is given.
// Each round is bounded in count and time.
func labLoad(ctx context.Context, l *lab.Lab, rate int, stdio *IO) (map[string]int, int, error) {
	total := map[string]int{}
	failed := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for t := 1; ; t++ {
		var line strings.Builder
		fmt.Fprintf(&line, "%4ds", t)
		for _, v6 := range []bool{false, true} {
			res, err := l.Load(ctx, rate, v6, 900*time.Millisecond)
			if ctx.Err() != nil {
				return total, failed, nil
			}
			if err != nil {
				return total, failed, fmt.Errorf("client through the VIP: %w", err)
			}
			failed += res.Failed
			fam := l.Net().VIP4()
			if v6 {
				fam = l.Net().VIP6()
			}
			fmt.Fprintf(&line, "  %s ok %d failed %d:", familyName(fam), res.OK, res.Failed)
			for _, name := range sortedKeys(res.Backends) {
				fmt.Fprintf(&line, " %s=%d", name, res.Backends[name])
				total[name] += res.Backends[name]
			}
		}
		if stdio != nil {
			fmt.Fprintln(stdio.Out, line.String())
		}
		select {
		case <-ctx.Done():
			return total, failed, nil
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
