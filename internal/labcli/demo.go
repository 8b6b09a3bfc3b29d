package labcli

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/epconsole/epconsole/internal/cli"
	"github.com/epconsole/epconsole/internal/lab"
	"github.com/epconsole/epconsole/internal/status"
)

// runDemo brings the lab up, prints what runs where, then runs the console
// (tui) or prints the client's results every second until duration (0:
// Ctrl-C) is over, and removes the lab.
func runDemo(ctx context.Context, stdio cli.IO, opts lab.Options, rate int, duration time.Duration, tui bool) error {
	// A lab whose owner crashed is in the way: remove it, as `epconsole-lab down` would.
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
			fmt.Fprintf(stdio.Err, "removing the lab: %v (run `epconsole-lab down`)\n", err)
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
	fmt.Fprintf(stdio.Out, "       epconsole-lab fault stop-backend   (then: epconsole-lab heal stop-backend; drills: %s)\n", strings.Join(lab.Faults(), ", "))
	socks := []string{l.Socket(owner)}
	for _, p := range l.Peers() {
		if p != owner {
			socks = append(socks, l.Socket(p))
		}
	}
	fmt.Fprintf(stdio.Out, "       epconsole console -c %s --socket %s\n", l.ConfigPath(owner), strings.Join(socks, ","))

	if tui {
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
		code := console(ctx, eps, labDrills{prefix: opts.Prefix}, stdio)
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

// labLoad sends rate fresh TLS connections per second and family through
// the VIPs until ctx ends, printing a line a second when stdio is given.
// Each round is bounded in count and time.
func labLoad(ctx context.Context, l *lab.Lab, rate int, stdio *cli.IO) (map[string]int, int, error) {
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

func printLabTotals(stdio cli.IO, total map[string]int, failed int) {
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
