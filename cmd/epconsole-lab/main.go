// Command epconsole-lab is the demo: a whole control-plane endpoint in
// network namespaces on this machine (`epconsole-lab`, as root), with
// drills (`epconsole-lab fault NAME`, `heal NAME`) and a clean-up after a
// crash (`epconsole-lab down`). The lab's LB peers run this same binary as
// `epconsole-lab --daemon`, and its stand-in apiservers, clients and etcd
// members are this binary re-executed inside the lab's namespaces; every
// other argument (check, console, validate, version) is epconsole's. The
// shipping binary, cmd/epconsole, links none of the lab.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/cli"
	"github.com/epconsole/epconsole/internal/labcli"
	"github.com/epconsole/epconsole/internal/netlab"
)

func main() {
	// The daemon's heartbeat runs in a helper process, this binary
	// re-executed: run the beat loop and exit when this is it.
	heartbeat.RunHelper()
	// In a netlab child (a lab host's stand-in apiserver, client or etcd
	// member, the binary re-executed inside a network namespace) run that
	// and exit.
	netlab.RunChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stdio := cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	var code int
	if args, ok := labcli.Route(os.Args[1:]); ok {
		code = labcli.Run(ctx, args, stdio)
	} else {
		code = cli.Run(ctx, os.Args[1:], stdio)
	}
	stop()
	os.Exit(code)
}
