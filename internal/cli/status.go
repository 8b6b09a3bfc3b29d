package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// statusLong is status's help text.
const statusLong = `One screen from this node's daemon, over its status socket: the cluster,
each VIP and its owner (since when), each peer (live, priority, eligible,
last heartbeat), each backend as every peer sees it (and whether it is
drained), etcd's quorum and the worst findings. --json prints the daemon's
snapshot (epconsole.status/v1, docs/status.md) as it is.

Exit codes: 0 shown, 1 the daemon refused (permission), 2 usage,
3 no daemon answers on the socket.`

// statusFindings is how many findings status shows, worst first.
const statusFindings = 5

// statusOptions are status's parsed arguments.
type statusOptions struct {
	target daemonTarget
	json   bool
}

// newStatusCmd is `epconsole status`.
func newStatusCmd(a *app) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:                   "status [--json] [--socket path] [-c config.hcl]",
		Short:                 "one-screen summary from the daemon: VIP owner, peers, backends, etcd, worst findings",
		Long:                  statusLong,
		Args:                  noArgs(""),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			socket, err := o.target.resolve(a.stdio.Err)
			if err != nil {
				return err
			}
			a.code = runStatus(cmd.Context(), socket, o.json, a.stdio)
			return nil
		},
	}
	daemonFlags(cmd.Flags(), &o.target)
	cmd.Flags().BoolVar(&o.json, "json", false, "print the daemon's snapshot as JSON")
	return cmd
}

// runStatus reads one snapshot from the daemon at socket and prints it.
func runStatus(ctx context.Context, socket string, asJSON bool, stdio IO) int {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c := status.NewClient(socket)
	defer c.Close()
	snap, err := c.Status(ctx)
	if err != nil {
		return daemonExit(stdio.Err, "status", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdio.Out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		_ = enc.Encode(snap)
		return exitOK
	}
	writeStatus(stdio.Out, snap, socket)
	return exitOK
}

// writeStatus renders snap on one screen; times are relative to when it
// was taken.
func writeStatus(w io.Writer, s status.Snapshot, socket string) {
	var b strings.Builder
	now := s.Generated
	fmt.Fprintf(&b, "cluster %s, seen by %s (%s) at %s via %s\n", orDash(s.Cluster), orDash(s.Node), orDash(s.Version),
		now.UTC().Format(time.RFC3339), socket)
	if s.Source != status.SourceDaemon {
		fmt.Fprintf(&b, "(a %s snapshot: no cluster view)\n", s.Source)
	}
	for _, v := range s.VIPs {
		fmt.Fprintf(&b, "VIP %s on %s: ", addrPort(v.Address, v.Port), orDash(v.Interface))
		switch {
		case v.Owner == "":
			b.WriteString("no owner")
		case v.OwnerSince.IsZero():
			fmt.Fprintf(&b, "owner %s", v.Owner)
		default:
			fmt.Fprintf(&b, "owner %s since %s (%s ago)", v.Owner, v.OwnerSince.UTC().Format(time.RFC3339), ago(now, v.OwnerSince))
		}
		if v.Here {
			b.WriteString(", on this node")
		}
		b.WriteString("\n")
	}
	writeElection(&b, s.Election)

	if len(s.Peers) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tADDRESS\tSTATE\tLIVE\tPRIO\tELIGIBLE\tOWNS\tLAST BEAT")
		for _, p := range s.Peers {
			live := yesNo(p.Live())
			if p.Self {
				live = "self"
			}
			owns := ""
			if p.Name == s.Election.Owner {
				owns = "VIP"
			}
			beat := "-"
			if !p.Self && !p.LastSeen.IsZero() {
				beat = ago(now, p.LastSeen) + " ago"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.Name, orDash(p.Address), p.State, live, p.Priority, yesNo(p.Eligible), owns, beat)
		}
		tw.Flush()
	}
	if len(s.Backends) > 0 {
		writeBackends(&b, s)
	}
	if e := s.Etcd; e != nil {
		b.WriteString("\n")
		fmt.Fprintf(&b, "etcd: %d/%d healthy, quorum %d, can lose %d", e.Healthy, len(e.Members), e.Quorum, e.Tolerance)
		if e.Leader != "" {
			fmt.Fprintf(&b, ", leader %s", e.Leader)
		} else {
			b.WriteString(", no leader")
		}
		if len(e.Alarms) > 0 {
			fmt.Fprintf(&b, ", alarms %s", strings.Join(e.Alarms, ","))
		}
		fmt.Fprintf(&b, " (%s)\n", e.Severity)
	}
	writeFindings(&b, s.Findings)
	_, _ = io.WriteString(w, b.String())
}

// writeElection is the election line: owner, epoch, the majority and a
// config digest mismatch.
func writeElection(b *strings.Builder, e status.Election) {
	fmt.Fprintf(b, "election: owner %s, epoch %d", orNone(e.Owner), e.Epoch)
	switch {
	case e.QuorumRequired:
		fmt.Fprintf(b, "; majority: %d of %d peers heard, %d needed", e.QuorumHave, e.QuorumPeers, e.QuorumNeed)
	case e.QuorumPeers > 0:
		fmt.Fprintf(b, "; %d peers, no majority rule", e.QuorumPeers)
	}
	if e.ConfigDigest != "" {
		fmt.Fprintf(b, "; config %s", e.ConfigDigest)
	}
	if len(e.Mismatch) > 0 {
		fmt.Fprintf(b, " (differs on %s)", strings.Join(e.Mismatch, ", "))
	}
	b.WriteString("\n")
	if e.Reason != "" {
		fmt.Fprintf(b, "  %s\n", e.Reason)
	}
}

// writeBackends is the backend table: one column per peer's view.
func writeBackends(b *strings.Builder, s status.Snapshot) {
	var peers []string
	seen := map[string]bool{}
	for _, p := range s.Peers {
		peers, seen[p.Name] = append(peers, p.Name), true
	}
	for _, be := range s.Backends {
		for _, v := range be.Views {
			if !seen[v.Peer] {
				peers, seen[v.Peer] = append(peers, v.Peer), true
			}
		}
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	head := "BACKEND\tADDRESS\tDRAINED\tCONNS"
	for _, p := range peers {
		head += "\t" + strings.ToUpper(p)
	}
	fmt.Fprintln(tw, head)
	for _, be := range s.Backends {
		drained := "no"
		if be.Drained {
			drained = "drained"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%d", be.Name, orDash(be.Address), drained, be.Connections)
		for _, p := range peers {
			state := "-"
			for _, v := range be.Views {
				if v.Peer == p {
					state = v.State
				}
			}
			line += "\t" + state
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

// writeFindings lists the worst findings (without their fixes: `epconsole
// check` prints those).
func writeFindings(b *strings.Builder, fs status.Findings) {
	var problems []probes.Finding
	for _, f := range fs {
		if f.Severity != probes.OK {
			problems = append(problems, f)
		}
	}
	b.WriteString("\n")
	if len(problems) == 0 {
		b.WriteString("no findings\n")
		return
	}
	status.SortWorstFirst(problems)
	if len(problems) > statusFindings {
		fmt.Fprintf(b, "findings (the worst %d of %d; epconsole check lists all, with fixes):\n", statusFindings, len(problems))
		problems = problems[:statusFindings]
	} else {
		fmt.Fprintf(b, "findings (epconsole check gives the fixes):\n")
	}
	for _, f := range problems {
		subject := string(f.Check)
		if f.Subject != "" {
			subject += "/" + f.Subject
		}
		fmt.Fprintf(b, "  %-8s %s: %s\n", f.Severity, subject, f.Text())
	}
}

// ago is the time from t to now, rounded for a person.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func addrPort(addr string, port uint16) string {
	if port == 0 {
		return addr
	}
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
