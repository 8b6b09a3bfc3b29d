package drills

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/status"
)

// getEnv makes the test binary an HTTP GET child (runGetChild): it fetches
// the URL from inside the namespace it was started in and prints the body.
const getEnv = "EPCONSOLE_DRILL_GET"

// runGetChild serves as the GET child when getEnv is set; it exits.
func runGetChild() {
	url, ok := os.LookupEnv(getEnv)
	if !ok {
		return
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		os.Exit(1)
	}
	_, _ = io.Copy(os.Stdout, resp.Body)
	os.Exit(0)
}

// scrape GETs url from inside host h (the test binary re-executed there).
func (c *cluster) scrape(h *netlab.Host, url string) (map[string]*dto.MetricFamily, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := h.Command(c.ctx, self)
	cmd.Env = append(os.Environ(), getEnv+"="+url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("GET %s from %s: %w: %s", url, h.Name(), err, stderr.String())
	}
	c.artifact("metrics-"+h.Name()+".txt", out)
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(string(out)))
}

// artifactsEnv names a directory where the status drill leaves what it
// saw (a snapshot read with curl --unix-socket, a metrics scrape), for
// notes and docs.
const artifactsEnv = "EPCONSOLE_DRILL_ARTIFACTS"

func (c *cluster) artifact(name string, b []byte) {
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		if err != nil {
			c.t.Logf("artifact %s: %v", name, err)
		}
	}
}

// curlSnapshot keeps `curl --unix-socket SOCKET http://epconsole/v1/status`
// as an artifact (when asked for and curl is installed; the socket is a
// file, so no network is involved).
func (c *cluster) curlSnapshot(lb string) {
	if os.Getenv(artifactsEnv) == "" {
		return
	}
	if _, err := exec.LookPath("curl"); err != nil {
		c.t.Logf("no curl for the snapshot artifact: %v", err)
		return
	}
	out, err := exec.CommandContext(c.ctx, "curl", "-s", "--unix-socket", c.socket(lb), "http://epconsole/v1/status").Output()
	if err != nil {
		c.t.Logf("curl --unix-socket %s: %v", c.socket(lb), err)
		return
	}
	c.artifact("status-"+lb+".json", out)
}

// gauge returns the value of the series of family name with labels.
func gauge(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil: // its observation count
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func (c *cluster) socket(lb string) string { return filepath.Join(c.dir, lb+".sock") }

// waitSnapshot polls lb's status socket until ok(snapshot) holds.
func (c *cluster) waitSnapshot(lb string, timeout time.Duration, what string, ok func(status.Snapshot) bool) status.Snapshot {
	c.t.Helper()
	last, lastErr, met := c.pollSnapshot(lb, timeout, ok)
	if !met {
		c.t.Fatalf("%s's snapshot: not %s within %s (last error %v); last snapshot: election %+v peers %+v backends %+v",
			lb, what, timeout, lastErr, last.Election, last.Peers, last.Backends)
	}
	return last
}

// pollSnapshot polls lb's status socket every 50 ms until ok(snapshot)
// holds or timeout passes; it returns the last snapshot read, the last
// error and whether ok held.
func (c *cluster) pollSnapshot(lb string, timeout time.Duration, ok func(status.Snapshot) bool) (last status.Snapshot, lastErr error, met bool) {
	cl := status.NewClient(c.socket(lb))
	defer cl.Close()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(c.ctx, time.Second)
		s, err := cl.Status(ctx)
		cancel()
		if err == nil {
			last = s
			if ok(s) {
				return s, nil, true
			}
		}
		lastErr = err
	}
	return last, lastErr, false
}

// view returns peer's view of backend in s ("" if none).
func view(s status.Snapshot, backend, peer string) string {
	for _, b := range s.Backends {
		if b.Name == backend {
			for _, v := range b.Views {
				if v.Peer == peer {
					return v.State
				}
			}
		}
	}
	return ""
}

// complete: every peer alive and fresh, every peer sees every backend up.
func complete(s status.Snapshot) bool {
	if s.Source != "daemon" || len(s.Peers) != 3 || len(s.Backends) != 3 {
		return false
	}
	for _, p := range s.Peers {
		if p.State != "alive" || !p.Fresh {
			return false
		}
	}
	for _, b := range s.Backends {
		for _, p := range []string{"lb1", "lb2", "lb3"} {
			if view(s, b.Name, p) != "up" {
				return false
			}
		}
	}
	return true
}

// TestStatusAPI runs the status API against a running three-peer cluster:
// the snapshot over the socket, the metrics scraped from inside an LB's
// namespace against it, the stream delivering a stopped backend, a
// cluster-wide drain (no new connections to the backend, a stream to it
// continues), an operator's handoff to a named peer under load, and the
// cluster-wide `check` seeing a peer go down.
func TestStatusAPI(t *testing.T) {
	c, owner := newClusterWith(t, "cls", 120*time.Second, clusterOpts{
		tweak: func(c *cluster, lb, hcl string) string {
			return strings.Replace(hcl, `metrics_listen = ""`, fmt.Sprintf(`metrics_listen = "%s:9642"`, c.lab.Host(lb).IPv4()), 1)
		},
	})

	// 1. Snapshot: owner, peers, every peer's view of every backend.
	snap := c.waitSnapshot(owner, 15*time.Second, "complete (3 live peers, 3x3 backend views up)", complete)
	if snap.Election.Owner != owner || snap.VIPs[0].Owner != owner || !snap.VIPs[0].Here || snap.Node != owner {
		t.Errorf("owner's snapshot: node %s election owner %q VIP %+v; want %s here", snap.Node, snap.Election.Owner, snap.VIPs[0], owner)
	}
	for _, lb := range []string{"lb1", "lb2", "lb3"} {
		if lb == owner {
			continue
		}
		s := c.waitSnapshot(lb, 5*time.Second, "complete", complete)
		if s.Election.Owner != owner || s.VIPs[0].Here {
			t.Errorf("%s's snapshot: owner %q here %v, want %s and not here", lb, s.Election.Owner, s.VIPs[0].Here, owner)
		}
	}

	// 2. Metrics from inside the owner's namespace, against its snapshot.
	fams, err := c.scrape(c.lab.Host(owner), fmt.Sprintf("http://%s:9642/metrics", c.lab.Host(owner).IPv4()))
	if err != nil {
		t.Fatal(err)
	}
	snap = c.waitSnapshot(owner, time.Second, "readable", func(status.Snapshot) bool { return true })
	c.curlSnapshot(owner)
	vip := snap.VIPs[0].Address
	if v, ok := gauge(fams, "epconsole_vip_owner", "vip", vip); !ok || v != 1 {
		t.Errorf("epconsole_vip_owner{vip=%s} = %v (%v), want 1 on the owner", vip, v, ok)
	}
	if v, _ := gauge(fams, "epconsole_peers_alive"); v != 3 {
		t.Errorf("epconsole_peers_alive = %v, want 3", v)
	}
	for _, b := range snap.Backends {
		for _, bv := range b.Views {
			want := 0.0
			if status.BackendInService(bv.State) {
				want = 1
			}
			if v, ok := gauge(fams, "epconsole_backend_up", "backend", b.Name, "peer", bv.Peer); !ok || v != want {
				t.Errorf("epconsole_backend_up{backend=%s,peer=%s} = %v (%v), snapshot says %s", b.Name, bv.Peer, v, ok, bv.State)
			}
		}
	}
	if v, _ := gauge(fams, "epconsole_failovers_total"); v < 1 || uint64(v) != snap.Counters.Failovers {
		t.Errorf("epconsole_failovers_total = %v, snapshot %d", v, snap.Counters.Failovers)
	}
	// The latency histograms count what the owner did (it claimed the VIP
	// and programmed nftables), and every peer's heartbeats arrive.
	for _, h := range []string{status.ClaimLatencyMetric, status.ReconcileLatencyMetric} {
		if n, ok := gauge(fams, h); !ok || n < 1 {
			t.Errorf("%s counts %v observations (%v), want at least 1 on the owner", h, n, ok)
		}
	}
	for _, p := range snap.Peers {
		if v, ok := gauge(fams, "epconsole_peer_heartbeat_fresh", "peer", p.Name); !ok || v != 1 {
			t.Errorf("epconsole_peer_heartbeat_fresh{peer=%s} = %v (%v), want 1", p.Name, v, ok)
		}
	}
	t.Logf("scraped %d metric families from %s", len(fams), owner)

	// 3. The stream delivers a stopped backend.
	sctx, stopSub := context.WithCancel(c.ctx)
	sub := status.NewClient(c.socket(owner)).Subscribe(sctx)
	for u := range sub { // the first snapshot arrives at once
		if u.Kind == status.SnapshotUpdate {
			break
		}
	}
	stopped := time.Now()
	if err := c.standins["cp3"].Stop(c.ctx); err != nil {
		t.Fatal(err)
	}
	var seen time.Duration
	timeout := time.After(5 * time.Second)
wait:
	for {
		select {
		case u := <-sub:
			if u.Kind == status.SnapshotUpdate && view(*u.Snapshot, "cp3", owner) != "up" {
				seen = time.Since(stopped)
				t.Logf("stream: cp3 %s on %s %s after its stand-in was stopped (probe interval 500 ms, timeout 400 ms)",
					view(*u.Snapshot, "cp3", owner), owner, seen.Round(time.Millisecond))
				break wait
			}
		case <-timeout:
			t.Fatal("the stream delivered no change of cp3 within 5 s of its stand-in stopping")
		}
	}
	stopSub()
	if seen > 1500*time.Millisecond {
		t.Errorf("the change took %s to arrive, want within one probe interval plus the probe timeout and margin (< 1.5 s)", seen)
	}

	c.waitSnapshot(owner, 5*time.Second, "seeing cp3 down", func(s status.Snapshot) bool { return view(s, "cp3", owner) == "down" })

	// 4. Drain cp1 through a non-owner's socket: cluster-wide.
	var other string
	for _, lb := range []string{"lb1", "lb2", "lb3"} {
		if lb != owner {
			other = lb
			break
		}
	}
	var stream *netlab.Stream
	for i := 0; i < 10 && stream == nil; i++ {
		s, err := c.client.StartStream(c.ctx, netlab.StreamOpts{Target: netipPort(c), Lines: 40, Every: 100 * time.Millisecond, Timeout: 20 * time.Second})
		if err != nil {
			t.Logf("stream %d: %v", i, err)
			continue
		}
		if s.Backend == "cp1" {
			stream = s
			break
		}
		s.Stop()
		_, _ = s.Wait(c.ctx)
	}
	if stream == nil {
		t.Fatal("no stream landed on cp1 in 10 tries")
	}
	// Control: before the drain, fresh connections do reach cp1.
	ctl, err := c.client.RunClient(c.ctx, c.loadOpts(60, 0))
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Failed != 0 || ctl.Backends["cp1"] == 0 {
		t.Fatalf("control before the drain: ok %d failed %d backends %v; want cp1 among them", ctl.OK, ctl.Failed, ctl.Backends)
	}
	dcl := status.NewClient(c.socket(other))
	if err := dcl.Drain(c.ctx, "cp1"); err != nil {
		t.Fatalf("drain cp1 on %s: %v", other, err)
	}
	if err := dcl.Drain(c.ctx, "nope"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("drain of an unknown backend: %v, want not found", err)
	}
	c.waitSnapshot(owner, 5*time.Second, "showing cp1 drained", func(s status.Snapshot) bool {
		return s.Backends[0].Name == "cp1" && s.Backends[0].Drained
	})
	if b, err := os.ReadFile(filepath.Join(c.dir, owner+"-state", "drained.json")); err != nil || !strings.Contains(string(b), "cp1") {
		t.Errorf("owner's state_dir/drained.json: %q, %v; want cp1 kept", b, err)
	}
	res, err := c.client.RunClient(c.ctx, c.loadOpts(150, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("150 fresh connections with cp1 drained: ok %d failed %d backends %v", res.OK, res.Failed, res.Backends)
	if res.Failed != 0 || res.Backends["cp1"] != 0 || res.Backends["cp2"] != 150 {
		t.Errorf("with cp1 drained (cp3 stopped): ok %d failed %d backends %v; want all 150 on cp2", res.OK, res.Failed, res.Backends)
	}
	sres, err := stream.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stream on cp1 across the drain: %d lines, end %s", sres.Lines, sres.End)
	if sres.End != netlab.StreamComplete || sres.Lines != 40 {
		t.Errorf("the stream established on cp1 before the drain ended %s after %d of 40 lines (%s), want complete", sres.End, sres.Lines, sres.Err)
	}
	drainEvent := false
	for _, e := range c.waitSnapshot(owner, time.Second, "readable", func(status.Snapshot) bool { return true }).Events {
		drainEvent = drainEvent || e.Kind == "drain" && e.Subject == "cp1"
	}
	if !drainEvent {
		t.Errorf("the owner's snapshot has no drain event for cp1")
	}

	// 5. Handoff to the lowest-priority peer, under a bounded load loop,
	// with cp1 still drained: the new owner keeps the drain.
	target := "lb3"
	if owner == "lb3" {
		target = "lb2"
	}
	// Precondition: the target already holds the drain (gossiped).
	c.waitSnapshot(target, 5*time.Second, "showing cp1 drained", func(s status.Snapshot) bool {
		return s.Backends[0].Name == "cp1" && s.Backends[0].Drained
	})
	if err := status.NewClient(c.socket(target)).Handoff(c.ctx, target); !errors.Is(err, status.ErrConflict) {
		t.Errorf("handoff asked of a non-owner: %v, want a conflict", err)
	}
	// The stream and the control load left conntrack entries to cp1 (some
	// of finished connections stay FIN_WAIT, CLOSE_WAIT or even
	// ESTABLISHED); a load connection reusing one of their client ports
	// would follow it to cp1 on any LB, which says nothing about the
	// drain. Nothing to cp1 is open now: forget them.
	c.forgetFlows("cp1")
	const inFlight = 2
	o := c.loadOpts(300, 10*time.Millisecond)
	o.Concurrency = inFlight
	job, err := c.client.StartClient(c.ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	t0 := time.Now()
	if err := status.NewClient(c.socket(owner)).Handoff(c.ctx, target); err != nil {
		t.Fatalf("handoff %s -> %s: %v", owner, target, err)
	}
	t.Logf("handoff %s -> %s answered after %s", owner, target, time.Since(t0).Round(time.Millisecond))
	if got := c.waitOneOwner(5*time.Second, owner); got != target {
		t.Errorf("VIP on %s after the handoff, want %s", got, target)
	}
	lres, err := job.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load across the handoff: %d attempts, ok %d, failed %d", lres.Attempts, lres.OK, lres.Failed)
	if lres.Failed > 0 || lres.Incomplete {
		t.Errorf("failed %d (incomplete %v) across the handoff, want 0: %v", lres.Failed, lres.Incomplete, lres.Errors)
	}
	if lres.Backends["cp1"] != 0 {
		c.dumpLog(c.daemons[target])
		t.Errorf("drained cp1 answered %d requests across the handoff: the new owner lost the drain (%v)", lres.Backends["cp1"], lres.Backends)
	}
	old := owner
	owner = target

	// The drain survives a restart: the old owner reads it back from its
	// state directory.
	c.signal(old, syscall.SIGTERM)
	if err := c.waitExit(c.daemons[old], 10*time.Second); err != nil {
		t.Fatalf("%s after SIGTERM: %v", old, err)
	}
	c.start(c.lab.Host(old))
	c.waitLog(c.daemons[old], 10*time.Second, "drained backends restored", "cp1")
	c.waitSnapshot(old, 10*time.Second, "showing cp1 drained after the restart", func(s status.Snapshot) bool {
		return len(s.Backends) > 0 && s.Backends[0].Drained
	})
	if err := dcl.Undrain(c.ctx, "cp1"); err != nil {
		t.Fatalf("undrain cp1: %v", err)
	}
	for _, lb := range []string{"lb1", "lb2", "lb3"} {
		c.waitSnapshot(lb, 5*time.Second, "showing cp1 undrained", func(s status.Snapshot) bool { return len(s.Backends) > 0 && !s.Backends[0].Drained })
	}

	// 6. Cluster-wide check from the owner's namespace: a peer down. cp3
	// comes back first, so the check is OK before the fault.
	if _, err := c.lab.Host("cp3").StartStandin(c.ctx, netlab.StandinOpts{Name: "cp3"}); err != nil {
		t.Fatal(err)
	}
	c.waitSnapshot(owner, 10*time.Second, "seeing cp3 up again everywhere", complete)
	check := func() (int, string) {
		cmd := c.lab.Host(owner).Command(c.ctx, epconsoleBin, "check", "-c", filepath.Join(c.dir, owner+".hcl"))
		cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(c.dir, "no-kubeconfig"))
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	victim := "lb1"
	if owner == "lb1" {
		victim = "lb2"
	}
	code, out := check()
	t.Logf("check with every peer up: exit %d\n%s", code, out)
	if code != 0 || !strings.Contains(out, "(daemon on "+owner+")") || strings.Contains(out, "cluster/"+victim) {
		t.Errorf("check before the fault: exit %d, want 0 with the daemon's view", code)
	}
	c.signal(victim, syscall.SIGKILL)
	c.waitSnapshot(owner, 10*time.Second, victim+" not live", func(s status.Snapshot) bool {
		for _, p := range s.Peers {
			if p.Name == victim {
				return !p.Fresh || p.State != "alive"
			}
		}
		return false
	})
	ocl := status.NewClient(c.socket(owner))
	if err := ocl.Handoff(c.ctx, victim); !errors.Is(err, status.ErrConflict) {
		t.Errorf("handoff to the killed %s: %v, want a conflict", victim, err)
	} else {
		t.Logf("handoff to the killed %s refused: %v", victim, err)
	}
	if err := ocl.Handoff(c.ctx, "lb9"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("handoff to an unknown peer: %v, want not found", err)
	}
	code, out = check()
	t.Logf("check with %s killed: exit %d\n%s", victim, code, out)
	if code != 1 || !strings.Contains(out, "WARNING cluster/"+victim+": peer "+victim+" is not live") {
		t.Errorf("check with %s down: exit %d, want 1 with its peer finding", victim, code)
	}
}
