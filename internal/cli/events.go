package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/internal/status"
)

// eventsLong is events' help text.
const eventsLong = `The daemon's event history, for postmortems: VIP moves with their
reasons, backends going up and down, drains, handoffs, config reloads,
peers joining, leaving and failing. The daemon keeps it across restarts
in state_dir/events.jsonl (rotated at 4 MiB, one older file kept) and
serves it on its status socket; root and the members of
status.socket_group may read it.

Lines are TIME (UTC)  KIND  SUBJECT  MESSAGE; --json writes one JSON
object a line instead. --since takes a duration back from now (90m, 1h,
24h) or an RFC 3339 time (2026-01-02T03:04:05Z). --follow keeps printing
new events as they happen, and waits for a restarting daemon.

Exit code 0: printed; 1: no daemon, no permission or another error;
2: usage error.`

// eventsOptions are events' parsed arguments.
type eventsOptions struct {
	target daemonTarget
	since  string
	follow bool
	json   bool
	now    func() time.Time
	// retry is the wait between reconnects of --follow.
	retry time.Duration
}

// newEventsCmd is `epconsole events`.
func newEventsCmd(a *app) *cobra.Command {
	o := eventsOptions{now: time.Now, retry: time.Second}
	cmd := &cobra.Command{
		Use:                   "events [--since 1h] [--follow] [--json] [-c config.hcl] [--socket path]",
		Short:                 "the daemon's event history: VIP moves, backend changes, reloads, peers",
		Long:                  eventsLong,
		Args:                  noArgs(""),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			since, err := parseSince(o.since, o.now())
			if err != nil {
				return usageError{code: exitUsage, err: err}
			}
			a.code = runEvents(cmd.Context(), o, since, a.stdio)
			return nil
		},
	}
	fs := cmd.Flags()
	daemonFlags(fs, &o.target)
	fs.StringVar(&o.since, "since", "", "only events at or after this: a `duration` back from now (1h) or an RFC 3339 time")
	fs.BoolVarP(&o.follow, "follow", "f", false, "keep printing new events as they happen")
	fs.BoolVar(&o.json, "json", false, "one JSON object a line (time, kind, subject, message)")
	return cmd
}

// parseSince reads --since: empty (everything kept), a duration back
// from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: give how long back, without a sign (--since 1h)", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: use a duration such as 90m or 24h, or an RFC 3339 time such as 2026-01-02T03:04:05Z", s)
}

// runEvents prints the events at or after since, then with --follow the
// new ones until ctx ends.
func runEvents(ctx context.Context, o eventsOptions, since time.Time, stdio IO) int {
	socket, err := o.target.resolve(stdio.Err)
	if err != nil {
		fmt.Fprintf(stdio.Err, "epconsole events: %v\n", err)
		return exitUsage
	}
	c := status.NewClient(socket)
	defer c.Close()
	p := eventPrinter{w: stdio.Out, json: o.json}
	p.header()
	if !o.follow {
		evs, err := c.Events(ctx, since)
		if err != nil {
			fmt.Fprintf(stdio.Err, "epconsole events: %s\n", eventsError(socket, err))
			return 1
		}
		for _, e := range evs {
			p.print(e)
		}
		return exitOK
	}
	// --follow: after the first connection, a daemon that stops or
	// restarts is waited for; events are asked for again from the last
	// one printed.
	connected := false
	lastErr := ""
	for {
		err := c.FollowEvents(ctx, since, func(e status.Event) error {
			connected = true
			p.print(e)
			since = e.Time.Add(time.Nanosecond)
			return nil
		})
		if ctx.Err() != nil {
			return exitOK
		}
		if errors.Is(err, status.ErrPermission) || errors.Is(err, status.ErrNotFound) || errors.Is(err, status.ErrUnsupported) ||
			(!connected && errors.Is(err, status.ErrNoDaemon)) {
			fmt.Fprintf(stdio.Err, "epconsole events: %s\n", eventsError(socket, err))
			return 1
		}
		connected = true
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			fmt.Fprintf(stdio.Err, "epconsole events: %v; waiting for the daemon\n", err)
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(o.retry):
		}
	}
}

// eventsError says what went wrong in the operator's words.
func eventsError(socket string, err error) string {
	switch {
	case errors.Is(err, status.ErrNotFound):
		return fmt.Sprintf("the daemon at %s serves no event history: it is older than this epconsole; upgrade it (%v)", socket, err)
	case errors.Is(err, status.ErrUnsupported):
		return fmt.Sprintf("the daemon at %s keeps no event history (%v)", socket, err)
	}
	return err.Error()
}

// eventPrinter writes events as aligned lines or JSON lines.
type eventPrinter struct {
	w    io.Writer
	json bool
}

// eventLine is the layout of a line: TIME (UTC, so that the histories of
// several nodes line up) KIND SUBJECT MESSAGE.
const eventLine = "%-20s  %-19s  %-15s  %s\n"

func (p eventPrinter) header() {
	if !p.json {
		fmt.Fprintf(p.w, eventLine, "TIME", "KIND", "SUBJECT", "MESSAGE")
	}
}

func (p eventPrinter) print(e status.Event) {
	if p.json {
		b, _ := json.Marshal(e)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	subject := e.Subject
	if subject == "" {
		subject = "-"
	}
	msg := strings.ReplaceAll(e.Message, "\n", " ")
	fmt.Fprintf(p.w, eventLine, e.Time.UTC().Format(time.RFC3339), e.Kind, subject, msg)
}
