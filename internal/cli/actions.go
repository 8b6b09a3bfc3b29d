package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/internal/status"
)

// Defaults of the action commands.
const (
	defaultActionTimeout = 30 * time.Second
	// confirmPoll is how often an action command reads the daemon's
	// snapshot while it waits for the confirmation.
	confirmPoll = 100 * time.Millisecond
)

// actionExits is the exit code table every action command's help ends with.
const actionExits = `

Exit codes: 0 done and confirmed, 1 refused by the daemon (unknown backend
or peer, not the VIP owner, a peer that cannot take the VIP, permission),
2 usage, 3 no daemon answers on the socket, or no confirmation within
--timeout.`

// actionOptions are the parsed arguments of drain, undrain and handoff.
type actionOptions struct {
	target  daemonTarget
	timeout time.Duration
}

// actionSpec is one action command: how it asks the daemon and when a
// snapshot confirms it.
type actionSpec struct {
	name string
	// do sends the action; before is the daemon's snapshot just before.
	do func(ctx context.Context, c *status.Client, before status.Snapshot) error
	// done reports whether s confirms the action, and what to print then.
	done func(s status.Snapshot) (bool, string)
}

func newDrainCmd(a *app) *cobra.Command {
	return actionCmd(a, &cobra.Command{
		Use:   "drain NAME [--timeout 30s] [--socket path] [-c config.hcl]",
		Short: "drain a backend cluster-wide (no new connections; established ones stay) and wait until it is",
		Long: `Drains the backend NAME on every LB node: the daemon adds it to the
cluster-wide drain set (kept in every node's state_dir, gossiped to the
peers), no new connection goes to it and established ones stay. It waits
until the daemon's snapshot shows NAME drained. Any node's daemon may be
asked.` + actionExits,
	}, "drain", func(name string) actionSpec { return drainSpec(name, true) })
}

func newUndrainCmd(a *app) *cobra.Command {
	return actionCmd(a, &cobra.Command{
		Use:   "undrain NAME [--timeout 30s] [--socket path] [-c config.hcl]",
		Short: "let a drained backend take new connections again, cluster-wide, and wait until it does",
		Long: `Removes the backend NAME from the cluster-wide drain set: it takes new
connections again once healthy. It waits until the daemon's snapshot shows
NAME no longer drained. Any node's daemon may be asked.` + actionExits,
	}, "undrain", func(name string) actionSpec { return drainSpec(name, false) })
}

func newHandoffCmd(a *app) *cobra.Command {
	return actionCmd(a, &cobra.Command{
		Use:   "handoff [PEER] [--timeout 30s] [--socket path] [-c config.hcl]",
		Short: "hand the VIP to PEER (default: the live eligible peer of highest priority) and wait until it holds it",
		Long: `Asks the VIP owner's daemon (run it on the owner, or point --socket at the
owner's socket) to hand the VIP to PEER, make before break. Without PEER
it picks the live, eligible peer with the highest priority (then name)
other than the owner. It waits until the daemon's snapshot shows PEER as
the owner.` + actionExits,
	}, "handoff", handoffSpec)
}

// actionCmd completes cmd, the action command name, with its flags,
// arguments and run: spec makes the action for the name argument ("" for
// a handoff without one).
func actionCmd(a *app, cmd *cobra.Command, name string, spec func(arg string) actionSpec) *cobra.Command {
	o := actionOptions{timeout: defaultActionTimeout}
	handoff := name == "handoff"
	cmd.DisableFlagsInUseLine = true
	cmd.Args = func(_ *cobra.Command, args []string) error {
		switch {
		case handoff && len(args) > 1:
			return usagef(exitUsage, "handoff takes at most one peer name, got %d arguments", len(args))
		case !handoff && len(args) != 1:
			return usagef(exitUsage, "%s takes one backend name (e.g. epconsole %s cp1)", name, name)
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if o.timeout <= 0 {
			return usagef(exitUsage, "--timeout must be positive")
		}
		socket, err := o.target.resolve(a.stdio.Err)
		if err != nil {
			return err
		}
		arg := ""
		if len(args) == 1 {
			arg = args[0]
		}
		a.code = runAction(cmd.Context(), socket, o.timeout, spec(arg), a.stdio)
		return nil
	}
	cmd.ValidArgsFunction = completeFromConfig(&o.target, handoff)
	fs := cmd.Flags()
	daemonFlags(fs, &o.target)
	fs.DurationVar(&o.timeout, "timeout", defaultActionTimeout, "give up waiting for the daemon's confirmation after this `duration`")
	return cmd
}

// drainSpec drains (drain true) or undrains backend.
func drainSpec(backend string, drain bool) actionSpec {
	name, word := "undrain", "undrained"
	if drain {
		name, word = "drain", "drained"
	}
	return actionSpec{
		name: name,
		do: func(ctx context.Context, c *status.Client, _ status.Snapshot) error {
			if drain {
				return c.Drain(ctx, backend)
			}
			return c.Undrain(ctx, backend)
		},
		done: func(s status.Snapshot) (bool, string) {
			for _, b := range s.Backends {
				if b.Name == backend && b.Drained == drain {
					return true, fmt.Sprintf("%s %s (cluster-wide; confirmed by %s)", word, backend, s.Node)
				}
			}
			return false, ""
		},
	}
}

// handoffSpec hands the VIP to peer ("": the best other candidate in the
// snapshot before).
func handoffSpec(peer string) actionSpec {
	var target, from string
	return actionSpec{
		name: "handoff",
		do: func(ctx context.Context, c *status.Client, before status.Snapshot) error {
			from = before.Election.Owner
			target = peer
			if target == "" && before.Node != from {
				// Only the owner hands over; name it rather than pick
				// a target from a node that cannot act.
				return fmt.Errorf("%w: this node (%s) does not hold the VIP, %s does: run the handoff on %s, or point --socket at its status socket",
					errNoCandidate, before.Node, orNone(from), orNone(from))
			}
			if target == "" {
				var err error
				if target, err = handoffTarget(before); err != nil {
					return err
				}
			}
			return c.Handoff(ctx, target)
		},
		done: func(s status.Snapshot) (bool, string) {
			if s.Election.Owner == "" || s.Election.Owner != target {
				return false, ""
			}
			if from == "" || from == target {
				return true, fmt.Sprintf("%s holds the VIP (confirmed by %s)", target, s.Node)
			}
			return true, fmt.Sprintf("handed the VIP from %s to %s (confirmed by %s)", from, target, s.Node)
		},
	}
}

// errNoCandidate: a handoff without a peer found none to hand to, or was
// asked of a node that does not own the VIP.
var errNoCandidate = errors.New("no candidate")

// handoffTarget is the peer a handoff without a name goes to: live,
// eligible, not the owner; the highest priority, then the name.
func handoffTarget(s status.Snapshot) (string, error) {
	var cands []status.Peer
	for _, p := range s.Peers {
		if p.Name != s.Election.Owner && p.Live() && p.Eligible {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("%w: no live, eligible peer other than the owner (%s) to hand the VIP to (epconsole status shows the peers)", errNoCandidate, orNone(s.Election.Owner))
	}
	slices.SortFunc(cands, func(a, b status.Peer) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return cands[0].Name, nil
}

// runAction sends spec's action to the daemon at socket and waits, within
// timeout, until its snapshot confirms it.
func runAction(ctx context.Context, socket string, timeout time.Duration, spec actionSpec, stdio IO) int {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := status.NewClient(socket)
	defer c.Close()
	before, err := c.Status(ctx)
	if err != nil {
		return daemonExit(stdio.Err, spec.name, err)
	}
	if err := spec.do(ctx, c, before); err != nil {
		if errors.Is(err, errNoCandidate) {
			fmt.Fprintf(stdio.Err, "epconsole %s: %v\n", spec.name, err)
			return exitRefused
		}
		return daemonExit(stdio.Err, spec.name, err)
	}
	t := time.NewTicker(confirmPoll)
	defer t.Stop()
	for {
		s, err := c.Status(ctx)
		if err == nil {
			if ok, msg := spec.done(s); ok {
				fmt.Fprintf(stdio.Out, "%s in %s\n", msg, time.Since(start).Round(time.Millisecond))
				return exitOK
			}
		}
		select {
		case <-ctx.Done():
			why := "its snapshot does not show it yet"
			if err != nil {
				why = err.Error()
			}
			fmt.Fprintf(stdio.Err, "epconsole %s: the daemon at %s accepted the %s but did not confirm it within %s: %s (epconsole status shows the state)\n",
				spec.name, socket, spec.name, timeout, why)
			return exitNoDaemon
		case <-t.C:
		}
	}
}
