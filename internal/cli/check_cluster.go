package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// checkCluster is the name of the cluster part of `check` (from the
// daemon's snapshot).
const checkCluster = probes.CheckCluster

// clusterDialTimeout bounds asking the daemon for its snapshot.
const clusterDialTimeout = 2 * time.Second

// clusterSection is the cluster part of the check report: the daemon's
// view when its socket answers, else a note that only direct probes ran.
type clusterSection struct {
	sectionHead
	// Source: "daemon" (its snapshot was read) or "direct" (no daemon
	// answered: only this process's probes ran).
	Source string `json:"source"`
	Socket string `json:"socket"`
	// Node is the daemon's node; Owner the VIP owner it sees.
	Node  string        `json:"node,omitempty"`
	Owner string        `json:"owner,omitempty"`
	Peers []status.Peer `json:"peers,omitempty"`
	// Error says why no snapshot was read.
	Error string `json:"error,omitempty"`
	// perf is the cluster view's perfdata (perfdata.go).
	perf []perfDatum
}

// addCluster asks the daemon on cfg's status socket for its snapshot and
// adds the cluster section, its findings and its summary part to r (run
// by `check all`); without a daemon the summary says only direct probes ran.
func addCluster(ctx context.Context, cfg *config.Config, r *checkReport) {
	sec := daemonCluster(ctx, cfg.Status.Socket)
	r.Checks.Cluster = sec
	r.Findings = append(r.Findings, sec.findings...)
	r.perf = append(r.perf, sec.perf...)
	r.finish()
	r.Summary += "; cluster: " + sec.Summary
}

// daemonCluster reads the daemon's snapshot and judges it.
func daemonCluster(ctx context.Context, socket string) *clusterSection {
	ctx, cancel := context.WithTimeout(ctx, clusterDialTimeout)
	defer cancel()
	c, err := status.Dial(ctx, socket)
	if err == nil {
		defer c.Close()
		var snap status.Snapshot
		if snap, err = c.Status(ctx); err == nil {
			return clusterFromSnapshot(socket, snap)
		}
	}
	sec := &clusterSection{Source: "direct", Socket: socket, Error: err.Error()}
	switch {
	case errors.Is(err, status.ErrNoDaemon):
		sec.Summary = "no daemon at " + socket + ", direct probes only"
	case errors.Is(err, status.ErrPermission):
		sec.Summary = "daemon socket " + socket + " not readable (run as root), direct probes only"
	default:
		sec.Summary = "daemon at " + socket + " did not answer (" + err.Error() + "), direct probes only"
	}
	sec.Skipped = true
	return sec
}

// clusterFromSnapshot is the pure part: the section and findings of a
// daemon's snapshot, judged by the status model (status.ClusterFindings).
func clusterFromSnapshot(socket string, snap status.Snapshot) *clusterSection {
	sec := &clusterSection{Source: snap.Source, Socket: socket, Node: snap.Node, Owner: snap.Election.Owner, Peers: snap.Peers}
	sec.findings = status.ClusterFindings(snap)
	sec.perf = clusterPerf(snap)
	v := status.ClusterVerdict(snap, sec.findings)
	sec.Status = v.Severity
	sec.Summary = fmt.Sprintf("%s (daemon on %s)", v.Summary, snap.Node)
	if snap.Source != status.SourceDaemon {
		sec.Summary = "the socket serves a " + snap.Source + " snapshot, no cluster view"
	}
	return sec
}
