// Package labcli is the command line of the demo binary, epconsole-lab:
// it parses the lab's flags and subcommands (fault, heal, down), brings a
// whole endpoint up in network namespaces (internal/lab), prints the
// client's results or opens the console on the VIP owner's daemon, and
// tears it all down. The shipping binary, cmd/epconsole, does not link it.
package labcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/epconsole/epconsole/internal/cli"
	"github.com/epconsole/epconsole/internal/lab"
)

// labPrefix names the lab's namespaces ("lab-lb1", ...).
const labPrefix = lab.DefaultPrefix

// subcommands are the lab's own words after the program name.
var subcommands = map[string]bool{"lab": true, "fault": true, "heal": true, "down": true}

// Route says whether args (without the program name) are for the lab, and
// returns the lab's arguments: none, the lab's flags, `lab ...` (the old
// `epconsole lab` spelling), fault, heal or down. Anything else (--daemon,
// check, console, validate, version, help) is an epconsole command: the
// lab's LB peers run this binary as `epconsole-lab --daemon`.
func Route(args []string) ([]string, bool) {
	if len(args) == 0 {
		return nil, true
	}
	switch a := args[0]; {
	case a == "lab":
		return args[1:], true
	case subcommands[a]:
		return args, true
	case a == "--daemon" || a == "-daemon":
		return nil, false
	case strings.HasPrefix(a, "-"):
		return args, true
	}
	return nil, false
}

const usage = `usage: epconsole-lab [--peers N] [--backends M] [--colocated] [--headless] [--duration D] [--rate N]
       epconsole-lab fault NAME | epconsole-lab heal NAME
       epconsole-lab down
       epconsole-lab check|console|validate|version ...   (as epconsole)

Builds a whole control-plane endpoint in network namespaces on this machine
(as root): a client, lb1..lbN each running the real 'epconsole --daemon'
(this binary, unless --binary names another; generated config.hcl with an
IPv4 and an IPv6 VIP, a gossip key, a status socket), and cp1..cpM each
running a stand-in apiserver (a real TLS server with a certificate from a
lab CA carrying the VIPs and the endpoint DNS name), the first three also
a member of a real etcd cluster (TLS, client certificates). The client
sends fresh TLS connections through the VIP.

With --colocated there are no LB hosts: cp1..cpM each run the daemon beside
their stand-in apiserver (the daemon on the control-plane nodes, as most
kube-vip users run it), every daemon's backends are cp1..cpM, itself
included; --peers is then ignored and --backends is at most 5.

On a terminal the console opens, attached to the VIP owner's daemon (and to
the next peer's when that one dies); quitting it removes the lab. With --headless or --duration the lab prints, every
second, which backend answered each connection. Ctrl-C removes everything.

'fault NAME' and 'heal NAME' (from another terminal) run a drill on
the running lab and print what an operator should now see in the console
and in 'epconsole check'. Drills: %s.

'down' removes what a crashed lab left behind.

flags:
`

// Run runs the lab with args (what Route returned) and returns the exit
// code.
func Run(ctx context.Context, args []string, stdio cli.IO) int {
	if len(args) > 0 {
		switch args[0] {
		case "down":
			if err := lab.Down(labPrefix); err != nil {
				fmt.Fprintf(stdio.Err, "epconsole-lab down: %v\n", err)
				return 1
			}
			fmt.Fprintln(stdio.Out, "lab removed")
			return 0
		case "fault", "heal":
			if len(args) != 2 {
				fmt.Fprintf(stdio.Err, "usage: epconsole-lab %s NAME (one of %s)\n", args[0], strings.Join(lab.Faults(), ", "))
				return 2
			}
			text, err := lab.Control(ctx, labPrefix, args[0], args[1])
			if err != nil {
				fmt.Fprintf(stdio.Err, "epconsole-lab %s: %v\n", args[0], err)
				return 1
			}
			fmt.Fprintln(stdio.Out, text)
			return 0
		}
	}
	fs := flag.NewFlagSet("epconsole-lab", flag.ContinueOnError)
	fs.SetOutput(stdio.Err)
	duration := fs.Duration("duration", 0, "stop after this long, headless (0: run until Ctrl-C or the console quits)")
	headless := fs.Bool("headless", false, "no console: print the client's results every second")
	rate := fs.Int("rate", 20, "new TLS connections per second through the VIP, per address family (1..200)")
	peers := fs.Int("peers", lab.DefaultPeers, fmt.Sprintf("LB peers running the daemon (1..%d)", lab.MaxPeers))
	backends := fs.Int("backends", lab.DefaultBackends, fmt.Sprintf("control-plane hosts with a stand-in apiserver (1..%d)", lab.MaxBackends))
	colocated := fs.Bool("colocated", false, "run the daemons on the control-plane hosts (no LB hosts; each node is its own backend)")
	binary := fs.String("binary", "", "the epconsole binary the LB peers run (default: this one)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), usage, strings.Join(lab.Faults(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdio.Err, "epconsole-lab: unexpected argument %q (subcommands: fault, heal, down)\n", fs.Arg(0))
		return 2
	}
	if *rate < 1 || *rate > 200 {
		fmt.Fprintf(stdio.Err, "epconsole-lab: --rate %d is out of range: use 1 to 200\n", *rate)
		return 2
	}
	if *colocated && *backends > lab.MaxPeers {
		fmt.Fprintf(stdio.Err, "epconsole-lab: --colocated --backends %d: each control-plane host runs a daemon; use 1 to %d\n", *backends, lab.MaxPeers)
		return 2
	}
	if *peers < 1 || *peers > lab.MaxPeers || *backends < 1 || *backends > lab.MaxBackends {
		fmt.Fprintf(stdio.Err, "epconsole-lab: --peers %d --backends %d: use 1 to %d peers and 1 to %d backends\n", *peers, *backends, lab.MaxPeers, lab.MaxBackends)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stdio.Err, "epconsole-lab: needs root (it creates network namespaces and nftables tables); run it with sudo")
		return 1
	}
	tui := !*headless && *duration == 0 && terminal(stdio.In) && terminal(stdio.Out)
	opts := lab.Options{
		Prefix: labPrefix, Peers: *peers, Backends: *backends, Binary: *binary, Colocated: *colocated,
		Logger: slog.New(slog.NewTextHandler(stdio.Err, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if err := runDemo(ctx, stdio, opts, *rate, *duration, tui); err != nil {
		fmt.Fprintf(stdio.Err, "epconsole-lab: %v\n", err)
		return 1
	}
	return 0
}
