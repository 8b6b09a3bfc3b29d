// Command epconsole is the control-plane endpoint console: the TUI, the
// daemon (--daemon), `check` and `validate`. All wiring lives in
// internal/cli so it can be tested. The demo lab is a binary of its own,
// cmd/epconsole-lab; this one links no lab or test code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/cli"
)

func main() {
	// The daemon's heartbeat runs in a helper process, this binary
	// re-executed: run the beat loop and exit when this is it.
	heartbeat.RunHelper()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
