// Command epconsole is the control-plane endpoint console: the TUI, the
// daemon (--daemon), `check`, `validate` and `lab`. All wiring lives in
// internal/cli so it can be tested.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/cli"
	"github.com/epconsole/epconsole/internal/netlab"
)

func main() {
	// The daemon's heartbeat runs in a helper process, this binary
	// re-executed: run the beat loop and exit when this is it.
	heartbeat.RunHelper()
	// In a netlab child (a lab host's stand-in apiserver or client, the
	// binary re-executed inside a network namespace) run that and exit.
	netlab.RunChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
