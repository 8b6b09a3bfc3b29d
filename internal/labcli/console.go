package labcli

import (
	"context"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/epconsole/epconsole/internal/cli"
	"github.com/epconsole/epconsole/internal/lab"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/tui"
)

// console runs the console live on the lab's daemons at eps, the owner's
// first (several: it falls over to the next when the one it follows dies).
// drills are the lab's drills for the console's lab key.
func console(ctx context.Context, eps []status.Endpoint, drills tui.Drills, stdio cli.IO) int {
	return cli.Console(ctx, nil, eps, drills, stdio)
}

// terminal reports whether v is a terminal (an *os.File on a tty).
func terminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
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
