package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// The cut-over drill (docs/migration.md): three LBs run the classic
// runbook's keepalived (VRRPv2, advert_int 1, PASS authentication, unicast
// peers, a track script on HAProxy) and HAProxy `mode tcp`; the client
// connects to VIP:6443 every 5 ms; the LBs move to `epconsole --daemon`
// host by host, and every step's client-visible gap is measured.
//
//	flock /tmp/epconsole-test.lock go test -count=1 -p 1 -v -run TestCutover ./internal/bench/
//
// runs the documented order and the control once (about 50 s).
// EPCONSOLE_DRILL_CUTOVER=1 repeats each order EPCONSOLE_DRILL_CUTOVER_RUNS
// times (default 5) for the figures in docs/migration.md.
const (
	cutoverEnv     = "EPCONSOLE_DRILL_CUTOVER"
	cutoverRunsEnv = "EPCONSOLE_DRILL_CUTOVER_RUNS"
)

// Each step runs inside a connect loop of its own: the loop starts, the
// step acts stepAct into it, the step's expected state must settle within
// stepSettle, and the loop runs out at stepWindow.
const (
	stepWindow = 5 * time.Second
	stepAct    = 300 * time.Millisecond
	stepSettle = 4 * time.Second
)

// cutStep is one step of a cut-over order, on one LB.
type cutStep struct {
	host, what string
	// do acts on the LB; stopped collects the processes it stopped.
	do func(c *cutLab, h *netlab.Host, stopped map[string]bool) error
	// settle waits until the step's expected state holds.
	settle func(c *cutLab) error
}

func (s cutStep) describe() string { return s.host + ": " + s.what }

// toEpconsole is the cut-over of one LB: stop keepalived (it removes the
// VIP if it holds it and sends its priority-0 advertisement), stop
// HAProxy, start epconsole.
func toEpconsole(host string, settle func(*cutLab) error) cutStep {
	return cutStep{host: host, what: "stop keepalived, stop HAProxy, start epconsole", settle: settle,
		do: func(c *cutLab, h *netlab.Host, stopped map[string]bool) error {
			for _, kind := range []string{"keepalived", "haproxy"} {
				err := c.stop(h, kind)
				stopped[h.Name()+"-"+kind] = true
				if err != nil {
					return err
				}
			}
			c.startEpconsole(h)
			return nil
		}}
}

// cutOrder is a cut-over order: its steps, host by host.
type cutOrder struct {
	short, name string
	// preempt is node.preempt in the epconsole configs (`import` writes
	// true for keepalived instances without nopreempt).
	preempt bool
	// owner holds the VIP at the end.
	owner string
	// control: the order is expected to show a gap in its first step.
	control bool
	steps   []cutStep
}

// holds waits until host is among the VIP owners.
func holds(host string, within time.Duration) func(c *cutLab) error {
	return func(c *cutLab) error {
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			o, err := c.owners()
			if err != nil {
				return err
			}
			if slices.Contains(o, host) {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		o, _ := c.owners()
		return fmt.Errorf("%s does not hold the VIP within %s; owners %v", host, within, o)
	}
}

// only waits until hosts alone hold the VIP, for stable.
func only(stable, within time.Duration, hosts ...string) func(c *cutLab) error {
	return func(c *cutLab) error { return c.waitOwners(hosts, stable, within) }
}

// documentedOrder is the order docs/migration.md gives: the BACKUPs first,
// the highest priority first, each stopped and then running epconsole at
// once; the MASTER last. epconsole on one LB alone claims nothing (it
// hears 1 of 3 peers, no majority); when the second one starts, the first
// (past its startup wait, and the higher priority) claims at once and
// holds the VIP next to keepalived's MASTER until the MASTER's own step;
// with preempt on (as imported), the VIP ends on lb1. (Lowest priority
// first, the first LB would claim and the second take the VIP from it
// two seconds later: one more move.)
var documentedOrder = cutOrder{short: "documented", name: "documented: BACKUPs first, MASTER last (preempt = true, as imported)", preempt: true, owner: "lb1", steps: []cutStep{
	toEpconsole("lb2", only(2500*time.Millisecond, stepSettle, "lb1")),
	toEpconsole("lb3", holds("lb2", stepSettle)),
	toEpconsole("lb1", only(time.Second, stepSettle, "lb1")),
}}

// noPreemptOrder is the documented order with preempt = false: the last
// step moves nothing, the VIP stays on lb2.
var noPreemptOrder = cutOrder{short: "nopreempt", name: "documented order with preempt = false", owner: "lb2", steps: []cutStep{
	toEpconsole("lb2", only(2500*time.Millisecond, stepSettle, "lb1")),
	toEpconsole("lb3", holds("lb2", stepSettle)),
	toEpconsole("lb1", only(2500*time.Millisecond, stepSettle, "lb2")),
}}

// masterFirstOrder is the control: the MASTER first. Each of the first two
// steps makes keepalived fail the VIP over to the next BACKUP, which the
// client sees.
var masterFirstOrder = cutOrder{short: "masterfirst", name: "control: MASTER first", preempt: true, owner: "lb1", control: true, steps: []cutStep{
	toEpconsole("lb1", only(time.Second, stepSettle, "lb2")),
	toEpconsole("lb2", holds("lb1", stepSettle)),
	toEpconsole("lb3", only(time.Second, stepSettle, "lb1")),
}}

// stepResult is what the client and the owner watch saw during one step.
type stepResult struct {
	Step               string
	Gap                time.Duration // the longest time without a successful connect
	Failures, Attempts int
	Dual, None         time.Duration // the VIP on two or more LBs, on none
	Settled            time.Duration // from the action until the expected state held
	// FirstFail and LastFail are when the first and the last failed
	// connect started, from the action (meaningful with Failures > 0).
	FirstFail, LastFail time.Duration
	Owners              []string // VIP owners at the end of the step
}

// runStep runs one step inside a connect loop of its own.
func (c *cutLab) runStep(s cutStep, window time.Duration, stopped map[string]bool) (stepResult, error) {
	r := stepResult{Step: s.describe()}
	h := c.lab.Host(s.host)
	loop, err := c.client.StartTCPConnect(c.ctx, netlab.TCPConnectOpts{
		Target: netip.AddrPortFrom(c.vip, servicePort), Every: connectEvery, Timeout: connectTimeout, Duration: window, Overlap: true,
	})
	if err != nil {
		return r, err
	}
	time.Sleep(stepAct)
	watch := c.watchOwners()
	t0 := time.Now()
	stepErr := s.do(c, h, stopped)
	if stepErr == nil {
		stepErr = s.settle(c)
	}
	r.Settled = time.Since(t0)
	res, err := loop.Wait(c.ctx)
	ot := watch.end()
	if stepErr != nil {
		return r, stepErr
	}
	if err != nil {
		return r, err
	}
	if ot.Err != nil {
		return r, ot.Err
	}
	if err := c.crashed(stopped); err != nil {
		return r, err
	}
	r.Gap, r.Failures, r.Attempts, r.Dual, r.None = res.LongestGap, res.Failures, res.Attempts, ot.Dual, ot.None
	if len(res.Errors) > 0 {
		r.FirstFail, r.LastFail = res.Errors[0].At-stepAct, res.LastFailure-stepAct
	}
	r.Owners, err = c.owners()
	return r, err
}

// runOrder builds a lab running keepalived + HAProxy, cuts it over in
// order and checks the end state: only epconsole runs, order.owner alone
// holds the VIP and the client reaches it. It returns the lab for more
// steps (the rollback drill).
func runOrder(t *testing.T, ctx context.Context, bin string, order cutOrder) (*cutLab, []stepResult) {
	c := newCutLab(t, ctx, bin)
	c.startClassic()
	for _, h := range c.lbs {
		c.epconsoleConfig(h, order.preempt)
	}
	out := c.runSteps(order.name, order.steps, stepWindow)
	if err := c.waitOwners([]string{order.owner}, time.Second, 5*time.Second); err != nil {
		t.Fatalf("%s: after the cut-over: %v", order.name, err)
	}
	c.checkRunning(order.name, "epconsole")
	c.checkServing(order.name, false)
	return c, out
}

// runSteps runs steps one after the other, each in a connect loop of its
// own lasting window, and logs each one's figures.
func (c *cutLab) runSteps(name string, steps []cutStep, window time.Duration) []stepResult {
	var out []stepResult
	for _, s := range steps {
		r, err := c.runStep(s, window, c.stopped)
		if err != nil {
			c.t.Fatalf("%s: step %q: %v", name, r.Step, err)
		}
		c.t.Logf("%s: %s: longest gap %s, %d of %d connects failed (from %s to %s after the action), VIP on two LBs %s, on none %s, settled after %s, owners %v",
			name, r.Step, r.Gap.Round(100*time.Microsecond), r.Failures, r.Attempts, r.FirstFail.Round(time.Millisecond), r.LastFail.Round(time.Millisecond),
			r.Dual.Round(time.Millisecond), r.None.Round(time.Millisecond), r.Settled.Round(time.Millisecond), r.Owners)
		out = append(out, r)
	}
	return out
}

// checkRunning checks that of the LB processes exactly those of kind
// ("epconsole", or "keepalived" and "haproxy" for "classic") run.
func (c *cutLab) checkRunning(when, kind string) {
	c.t.Helper()
	for name, p := range c.procs {
		want := strings.HasSuffix(name, "-"+kind) || kind == "classic" && (strings.HasSuffix(name, "-keepalived") || strings.HasSuffix(name, "-haproxy"))
		if running := !p.ended(); running != want {
			c.t.Errorf("%s: %s running = %v, want %v", when, name, running, want)
		}
	}
}

// checkServing checks that the client reaches the VIP: connects for a
// second with a timeout no busy machine reaches, none may fail. With
// fresh, the client first forgets the VIP's MAC address and so has to
// resolve it again, as a new client would.
func (c *cutLab) checkServing(when string, fresh bool) {
	c.t.Helper()
	res, err := c.connectCheck(fresh)
	if err != nil {
		c.t.Fatal(err)
	}
	if res.Failures > 0 {
		c.t.Errorf("%s: %d of %d connects to the VIP failed (fresh ARP %v): %v", when, res.Failures, res.Attempts, fresh, res.Errors)
	}
}

func (c *cutLab) connectCheck(fresh bool) (netlab.TCPConnectResult, error) {
	if fresh {
		if out, err := c.client.Command(c.ctx, "ip", "neigh", "flush", "dev", netlab.HostLink).CombinedOutput(); err != nil {
			return netlab.TCPConnectResult{}, fmt.Errorf("ip neigh flush in the client: %v: %s", err, out)
		}
	}
	return c.client.RunTCPConnect(c.ctx, netlab.TCPConnectOpts{
		Target: netip.AddrPortFrom(c.vip, servicePort), Every: 10 * time.Millisecond, Timeout: 500 * time.Millisecond, Duration: time.Second,
	})
}

// cutoverRuns is how often each order runs: once, or with
// EPCONSOLE_DRILL_CUTOVER=1 EPCONSOLE_DRILL_CUTOVER_RUNS times (default 5).
func cutoverRuns(t *testing.T) int {
	if os.Getenv(cutoverEnv) == "" {
		return 1
	}
	v := os.Getenv(cutoverRunsEnv)
	if v == "" {
		return 5
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 20 {
		t.Fatalf("%s=%q: want 1..20", cutoverRunsEnv, v)
	}
	return n
}

// TestCutover drills the cut-over from keepalived + HAProxy to epconsole
// on the same three LBs, in the documented order and, as the control, the
// MASTER first; the control's first step is a keepalived failover, which
// the client's connect loop must see as failed connects (the measure
// detects a gap when there is one). With EPCONSOLE_DRILL_CUTOVER=1 the
// documented order also runs with preempt = false, and every order runs
// EPCONSOLE_DRILL_CUTOVER_RUNS times.
func TestCutover(t *testing.T) {
	testenv.NeedNetns(t)
	needRival(t)
	runs := cutoverRuns(t)
	orders := []cutOrder{documentedOrder, masterFirstOrder}
	if os.Getenv(cutoverEnv) != "" {
		orders = append(orders, noPreemptOrder)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(runs*len(orders))*time.Minute)
	defer cancel()
	bin := testenv.Binary(t)
	rep := cutReport{Date: time.Now(), Machine: machine(), Runs: runs,
		Versions: []string{version("keepalived", "--version"), version("haproxy", "-v"), "epconsole " + binDesc()}}
	for _, order := range orders {
		var all [][]stepResult
		for i := range runs {
			ok := t.Run(fmt.Sprintf("%s/run%d", order.short, i+1), func(t *testing.T) {
				_, r := runOrder(t, ctx, bin, order)
				all = append(all, r)
			})
			if !ok {
				t.FailNow()
			}
		}
		if len(all) == 0 { // not selected by -run
			continue
		}
		rep.Orders = append(rep.Orders, orderRuns{Order: order, Runs: all})
		for _, run := range all {
			if order.control && run[0].Failures == 0 {
				t.Errorf("%s: the first step (a keepalived failover) showed no failed connect: the gap measure missed it (%+v)", order.name, run[0])
			}
		}
	}
	t.Logf("cut-over figures:\n%s", rep.markdown())
}

// orderRuns are one order's runs, each a result per step.
type orderRuns struct {
	Order cutOrder
	Runs  [][]stepResult
}

// cutReport is the drill's figures for docs/migration.md.
type cutReport struct {
	Date     time.Time
	Machine  string
	Runs     int
	Versions []string
	Orders   []orderRuns
}

// markdown renders one table per order: per step, the worst and median
// longest gap, the failed connects, the time with the VIP on two LBs and
// on none, over the runs.
func (r cutReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s; %d run(s) per order; %s.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Machine, r.Runs, strings.Join(r.Versions, "; "))
	for _, o := range r.Orders {
		fmt.Fprintf(&b, "%s:\n\n", o.Order.name)
		b.WriteString("| step | longest gap, median / worst | failed connects, median / worst | VIP on two LBs, worst | VIP on none, worst | owners after |\n|---|---|---|---|---|---|\n")
		for i, s := range o.Order.steps {
			var gaps, fails, duals, nones []time.Duration
			var owners string
			for _, run := range o.Runs {
				st := run[i]
				gaps = append(gaps, st.Gap)
				fails = append(fails, time.Duration(st.Failures))
				duals = append(duals, st.Dual)
				nones = append(nones, st.None)
				owners = strings.Join(st.Owners, ", ")
			}
			gm, _, gw := median(gaps)
			fm, _, fw := median(fails)
			_, _, dw := median(duals)
			_, _, nw := median(nones)
			fmt.Fprintf(&b, "| %s | %s / %s ms | %d / %d | %s ms | %s ms | %s |\n", s.describe(), ms(gm), ms(gw), int(fm), int(fw), ms(dw), ms(nw), owners)
		}
		var total []time.Duration
		var worst time.Duration
		for _, run := range o.Runs {
			var f int
			for _, st := range run {
				f += st.Failures
				worst = max(worst, st.Gap)
			}
			total = append(total, time.Duration(f))
		}
		tm, _, tw := median(total)
		fmt.Fprintf(&b, "\nWhole cut-over: longest gap %s ms (worst of all steps and runs), failed connects %d median / %d worst per run (one connect every 5 ms).\n\n", ms(worst), int(tm), int(tw))
	}
	return b.String()
}
