package drills

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/standin"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/probes"
)

// The panic drills' own segments (not the package's): one per drill.
var panicNets = map[string][2]netip.Prefix{
	"pnc":  {netip.MustParsePrefix("198.18.130.0/24"), netip.MustParsePrefix("fd00:198:18:130::/64")},
	"pnco": {netip.MustParsePrefix("198.18.131.0/24"), netip.MustParsePrefix("fd00:198:18:131::/64")},
}

// panicCluster is a three-peer cluster on the panic drills' segment, with
// metrics on each LB's address; off turns balance.panic_routing off.
func panicCluster(t *testing.T, prefix string, off bool) (*cluster, string) {
	return newClusterWith(t, prefix, 150*time.Second, clusterOpts{
		net4: panicNets[prefix][0], net6: panicNets[prefix][1],
		tweak: func(c *cluster, lb, hcl string) string {
			hcl = strings.Replace(hcl, `metrics_listen = ""`, fmt.Sprintf(`metrics_listen = "%s:9642"`, c.lab.Host(lb).IPv4()), 1)
			if off {
				hcl += "balance {\n  panic_routing = false\n}\n"
			}
			return hcl
		},
	})
}

// failProbes makes every stand-in fail /readyz (500) while it serves every
// other path: the probes fail, the traffic would not.
func (c *cluster) failProbes(unready bool) {
	c.t.Helper()
	for _, name := range []string{"cp1", "cp2", "cp3"} {
		if err := c.standins[name].SetBehavior(c.ctx, standin.Behavior{Unready: unready}); err != nil {
			c.t.Fatalf("stand-in %s: %v", name, err)
		}
	}
}

// through runs n fresh connections from the client through the VIP
// (GET /whoami, which the stand-ins serve even while unready).
func (c *cluster) through(n int) netlab.ClientResult {
	c.t.Helper()
	o := c.loadOpts(n, 20*time.Millisecond)
	o.RequestTimeout, o.Timeout = 2*time.Second, 30*time.Second
	res, err := c.client.RunClient(c.ctx, o)
	if err != nil {
		c.t.Fatalf("client: %v", err)
	}
	return res
}

// settledOwner waits until every LB sees every backend down and returns
// the owner then. The probes do not fail on every LB at the same instant:
// an LB whose probes still pass is eligible, and is elected over an owner
// whose probes failed first, so the VIP may move once on the way (it then
// keeps it, in panic or, with panic routing off, forwarding nowhere).
func (c *cluster) settledOwner(was string) string {
	c.t.Helper()
	for _, h := range c.lbs {
		c.waitSnapshot(h.Name(), 15*time.Second, "seeing every backend down", everyBackendDown)
	}
	owner := c.waitOneOwner(10*time.Second, "")
	if owner != was {
		c.t.Logf("the VIP moved from %s to %s while the probes failed on one LB after the other", was, owner)
	}
	return owner
}

// everyBackendDown: the snapshot's own view of every backend is down.
func everyBackendDown(s status.Snapshot) bool {
	if len(s.Backends) != 3 {
		return false
	}
	for _, b := range s.Backends {
		if st := view(s, b.Name, s.Node); st == "up" || st == "falling" || st == "" {
			return false
		}
	}
	return true
}

func hasEvent(s status.Snapshot, kind string) bool {
	return slices.ContainsFunc(s.Events, func(e status.Event) bool { return e.Kind == kind })
}

// TestPanicRouting: every probe fails (the stand-ins fail /readyz) while
// the backends serve. The owner keeps the VIP and forwards to every
// backend: connections through the VIP succeed; its status says CRITICAL
// panic-routing, with the event and epconsole_panic_routing 1; `check`
// exits 2. With the owner killed, a live peer claims the VIP in panic and
// it keeps serving. Once a backend passes its probes, panic routing ends.
func TestPanicRouting(t *testing.T) {
	c, owner := panicCluster(t, "pnc", false)
	c.waitSnapshot(owner, 15*time.Second, "complete (3 live peers, 3x3 backend views up)", complete)
	if res := c.through(20); res.Failed != 0 {
		t.Fatalf("before the fault: %d of %d connections failed: %v", res.Failed, res.Attempts, res.Errors)
	}

	c.failProbes(true)
	owner = c.settledOwner(owner)
	s := c.waitSnapshot(owner, 15*time.Second, "in panic routing (every backend down here, panic_routing, the event)", func(s status.Snapshot) bool {
		return everyBackendDown(s) && s.Election.PanicRouting && hasEvent(s, "panic-routing")
	})
	if i := slices.IndexFunc(s.Findings, func(f probes.Finding) bool { return f.Code == status.CodePanicRouting }); i < 0 || s.Findings[i].Severity != probes.Critical {
		t.Errorf("owner's findings %+v: want a CRITICAL %s", s.Findings, status.CodePanicRouting)
	}
	if !s.VIPs[0].Here || s.Election.Owner != owner {
		t.Errorf("the owner %s released the VIP in panic: election %+v VIP %+v", owner, s.Election, s.VIPs[0])
	}
	// Settle past any probe still in flight, then connect.
	time.Sleep(time.Second)
	res := c.through(40)
	t.Logf("every probe failing, owner %s: %d/%d connections OK, by backend %v, latency %+v", owner, res.OK, res.Attempts, res.Backends, res.Latency)
	if res.Failed != 0 || res.OK != 40 {
		t.Errorf("in panic: %d of %d connections failed: %v", res.Failed, res.Attempts, res.Errors)
	}
	if len(res.Backends) < 2 {
		t.Errorf("in panic, answers came from %v: want every backend in the rotation", res.Backends)
	}
	if got := c.owners(); !slices.Equal(got, []string{owner}) {
		t.Errorf("owners %v in panic, want %s alone", got, owner)
	}

	// The metric and `check`.
	h := c.lab.Host(owner)
	fams, err := c.scrape(h, fmt.Sprintf("http://%s:9642/metrics", h.IPv4()))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := gauge(fams, "epconsole_panic_routing"); !ok || v != 1 {
		t.Errorf("epconsole_panic_routing = %v (present %v), want 1", v, ok)
	}
	cmd := h.Command(c.ctx, epconsoleBin, "check", "-c", filepath.Join(c.dir, owner+".hcl"))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(c.dir, "no-kubeconfig"))
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	t.Logf("check in panic: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "panic routing on "+owner) {
		t.Errorf("check in panic: exit %d, want 2 (CRITICAL) with the panic routing finding", cmd.ProcessState.ExitCode())
	}

	// The owner dies: nobody is eligible, a live peer claims in panic.
	c.signal(owner, syscall.SIGKILL)
	next := c.waitOneOwnerAmong(15*time.Second, owner)
	s = c.waitSnapshot(next, 10*time.Second, "holding the VIP in panic", func(s status.Snapshot) bool {
		return s.Election.PanicRouting && s.VIPs[0].Here && strings.Contains(s.Election.Reason, "panic routing")
	})
	t.Logf("after the owner %s died: %s holds, reason %q", owner, next, s.Election.Reason)
	time.Sleep(time.Second)
	if res := c.through(20); res.Failed != 0 {
		t.Errorf("in panic after the failover to %s: %d of %d connections failed: %v", next, res.Failed, res.Attempts, res.Errors)
	}

	// A backend passes its probes again: panic routing ends.
	if err := c.standins["cp2"].SetBehavior(c.ctx, standin.Behavior{}); err != nil {
		t.Fatal(err)
	}
	c.waitSnapshot(next, 15*time.Second, "out of panic routing (cp2 up, the event)", func(s status.Snapshot) bool {
		return !s.Election.PanicRouting && view(s, "cp2", next) == "up" && hasEvent(s, "panic-routing-over")
	})
	time.Sleep(500 * time.Millisecond)
	res = c.through(20)
	if res.Failed != 0 || res.Backends["cp2"] != res.OK {
		t.Errorf("after cp2 recovered: %d failed, answers by backend %v; want every answer from cp2", res.Failed, res.Backends)
	}
}

// TestPanicRoutingOff is the control: with balance.panic_routing = false
// the same fault leaves the VIP forwarding nowhere, connections fail, and
// with the owner killed no peer claims the VIP.
func TestPanicRoutingOff(t *testing.T) {
	c, owner := panicCluster(t, "pnco", true)
	c.waitSnapshot(owner, 15*time.Second, "complete (3 live peers, 3x3 backend views up)", complete)
	if res := c.through(10); res.Failed != 0 {
		t.Fatalf("before the fault: %d of %d connections failed: %v", res.Failed, res.Attempts, res.Errors)
	}
	c.failProbes(true)
	owner = c.settledOwner(owner)
	s := c.waitSnapshot(owner, 15*time.Second, "seeing every backend down", everyBackendDown)
	if s.Election.PanicRouting || hasEvent(s, "panic-routing") {
		t.Errorf("panic routing off, yet panic_routing %v events %+v", s.Election.PanicRouting, s.Events)
	}
	time.Sleep(time.Second)
	res := c.through(10)
	t.Logf("every probe failing, panic routing off: %d/%d connections OK, errors %v", res.OK, res.Attempts, res.Errors)
	if res.OK != 0 {
		t.Errorf("panic routing off: %d of %d connections got through, want none", res.OK, res.Attempts)
	}
	c.signal(owner, syscall.SIGKILL)
	time.Sleep(3 * time.Second)
	if got := slices.DeleteFunc(c.owners(), func(n string) bool { return n == owner }); len(got) != 0 {
		t.Errorf("panic routing off, nobody eligible: %v claimed the VIP", got)
	}
}
