package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/status"
	"golang.org/x/sys/unix"
)

// Cutting the flows of dead backends, off the decision loop. The loop
// programs the forwarding rules with the dataplane's own cut switched off
// and hands the cuts the new desired state calls for to one worker
// goroutine, which deletes them with kernel-filtered dumps in bounded
// batches (dataplane.Conntrack.CutBackend). A conntrack table of any size
// so never holds the loop: the loop keeps deciding (a loop that makes no
// decision for KeepTolerance stops this node's beats, keeper.go).

// EventFlowsCut: the established flows of a dead backend were cut (how
// many, how long), or the cut failed.
const EventFlowsCut = status.EventFlowsCut

// flowCutEnv switched to "inline" makes the decision loop cut flows
// itself, as Reconcile does (a whole-table walk on the loop): a
// diagnostic and the drills' control, not for production.
const flowCutEnv = "EPCONSOLE_FLOW_CUT"

// inlineFlowCut reports whether the environment asks for the inline cut.
func inlineFlowCut() bool { return os.Getenv(flowCutEnv) == "inline" }

// startFlowCutter starts the cut worker for dp (whose own cut must be off)
// and returns the datapath the loop programs, and what stops the worker.
func (d *Daemon) startFlowCutter(run context.Context, dp *dataplane.Dataplane) (datapath, func()) {
	c := newFlowCutter(d.log.With("component", "flowcut"), dp.Conntrack(), d.flowCutDone)
	ctx, cancel := context.WithCancel(run)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx)
	}()
	return cuttingDatapath{datapath: dp, cutter: c}, func() { cancel(); <-done }
}

// cutWorkerNice is the cut worker thread's niceness.
const cutWorkerNice = 10

// cutRetries is how often a failed cut is tried again (after 1 s, 2 s,
// 4 s ...) while its backend stays dead.
const cutRetries = 4

// backendCutter deletes a dead backend's flows and surveys the table.
// *dataplane.Conntrack is one.
type backendCutter interface {
	CutBackend(ctx context.Context, service, backend netip.AddrPort, o dataplane.CutOptions) (dataplane.CutReport, error)
	SurveyServices(ctx context.Context, services []netip.AddrPort) ([]dataplane.BackendCut, error)
}

// cuttingDatapath is the datapath the decision loop programs: the
// dataplane (its own cut off), whose every successful Reconcile hands the
// cuts it calls for to the worker.
type cuttingDatapath struct {
	datapath
	cutter *flowCutter
}

func (c cuttingDatapath) Reconcile(ctx context.Context, want dataplane.Desired) (dataplane.Result, error) {
	res, err := c.datapath.Reconcile(ctx, want)
	if err == nil {
		c.cutter.plan(want)
	}
	return res, err
}

// flowCutter is the worker: one cut at a time, pending cuts coalesced by
// backend and VIP, a pending or running cut of a backend that comes back
// (serving or draining) dropped.
type flowCutter struct {
	log     *slog.Logger
	ct      backendCutter
	planner dataplane.CutPlanner
	opts    dataplane.CutOptions
	// retryBase is the first wait before a failed cut is tried again
	// (doubling; default 1 s).
	retryBase time.Duration
	// done is called (from the worker) after each cut: the event and the
	// counters.
	done func(rep dataplane.CutReport, name string, err error)

	wake chan struct{}

	mu       sync.Mutex
	queue    []dataplane.BackendCut
	queued   map[dataplane.BackendCut]bool
	tries    map[dataplane.BackendCut]int
	names    map[netip.AddrPort]string
	running  dataplane.BackendCut
	stopRun  context.CancelFunc
	surveyed bool
}

func newFlowCutter(log *slog.Logger, ct backendCutter, done func(dataplane.CutReport, string, error)) *flowCutter {
	return &flowCutter{
		log: log, ct: ct, done: done, wake: make(chan struct{}, 1), retryBase: time.Second,
		queued: map[dataplane.BackendCut]bool{}, tries: map[dataplane.BackendCut]int{}, names: map[netip.AddrPort]string{},
	}
}

// plan takes a desired state the datapath now holds: cuts of backends
// that are live in it are dropped, the cuts it calls for queued. It does
// not block.
func (c *flowCutter) plan(want dataplane.Desired) {
	p, err := c.planner.Plan(want)
	if err != nil {
		c.log.Error("planning flow cuts", "err", err)
		return
	}
	c.mu.Lock()
	for _, b := range want.Backends {
		c.names[b.Addr] = b.Name
	}
	live := map[netip.AddrPort]bool{}
	for _, a := range p.Live {
		live[a] = true
	}
	if c.stopRun != nil && live[c.running.Backend] {
		c.stopRun()
	}
	kept := c.queue[:0]
	for _, k := range c.queue {
		if live[k.Backend] {
			delete(c.queued, k)
			delete(c.tries, k)
			c.log.Info("flow cut dropped: the backend is back", "backend", k.Backend, "vip", k.Service)
			continue
		}
		kept = append(kept, k)
	}
	c.queue = kept
	c.mu.Unlock()
	c.enqueue(p.Cut...)
}

// enqueue queues cuts not queued yet and wakes the worker.
func (c *flowCutter) enqueue(cuts ...dataplane.BackendCut) {
	c.mu.Lock()
	for _, k := range cuts {
		if !c.queued[k] {
			c.queued[k] = true
			c.queue = append(c.queue, k)
		}
	}
	c.mu.Unlock()
	c.poke()
}

func (c *flowCutter) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next takes the next cut whose backend is still dead, and a context
// that plan cancels when it comes back.
func (c *flowCutter) next(ctx context.Context) (dataplane.BackendCut, context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 {
		k := c.queue[0]
		c.queue = c.queue[1:]
		delete(c.queued, k)
		if !c.planner.Dead(k.Backend) {
			delete(c.tries, k)
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		c.running, c.stopRun = k, cancel
		return k, rctx, true
	}
	return dataplane.BackendCut{}, nil, false
}

func (c *flowCutter) finished() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopRun != nil {
		c.stopRun()
	}
	c.running, c.stopRun = dataplane.BackendCut{}, nil
}

// run is the worker; it returns when ctx ends. Its thread runs at a
// lower CPU priority (nice 10) than the rest of the daemon, so that on a
// busy host a large cut takes longer rather than delaying the decision
// loop.
func (c *flowCutter) run(ctx context.Context) {
	runtime.LockOSThread() // the thread ends with the goroutine: its niceness with it
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), cutWorkerNice); err != nil {
		c.log.Debug("lowering the flow cut worker's priority", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.survey(ctx)
		for {
			k, rctx, ok := c.next(ctx)
			if !ok {
				break
			}
			c.cut(ctx, rctx, k)
		}
	}
}

// survey asks the conntrack table, once, which backends hold flows
// through the VIPs (flows an earlier process left), after the first plan.
func (c *flowCutter) survey(ctx context.Context) {
	c.mu.Lock()
	done := c.surveyed
	c.mu.Unlock()
	services := c.planner.Services()
	if done || len(services) == 0 {
		return
	}
	t0 := time.Now()
	found, err := c.ct.SurveyServices(ctx, services)
	if err != nil {
		c.log.Warn("surveying the conntrack table for flows of dead backends; trying again at the next change", "err", err)
		return
	}
	c.mu.Lock()
	c.surveyed = true
	c.mu.Unlock()
	cut := c.planner.Learn(found)
	c.log.Debug("conntrack surveyed", "backends_with_flows", len(found), "dead", len(cut), "took", time.Since(t0).Round(time.Microsecond))
	c.enqueue(cut...)
}

// cut carries out one cut; a failure is tried again later while the
// backend stays dead.
func (c *flowCutter) cut(ctx, rctx context.Context, k dataplane.BackendCut) {
	rep, err := c.ct.CutBackend(rctx, k.Service, k.Backend, c.opts)
	c.finished()
	c.mu.Lock()
	name := c.names[k.Backend]
	tries := c.tries[k] + 1
	if err == nil || tries > cutRetries {
		delete(c.tries, k)
	} else {
		c.tries[k] = tries
	}
	c.mu.Unlock()
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return // stopping
	case errors.Is(err, context.Canceled):
		// The backend came back: its remaining flows are its own again.
		c.planner.Restore(k)
		c.log.Info("flow cut stopped: the backend is back", "backend", name, "address", k.Backend,
			"vip", k.Service, "flows", rep.Cut, "of", rep.Found)
		return
	case tries > cutRetries:
		c.planner.Restore(k) // cut again when the backend next dies
	default:
		wait := c.retryBase << (tries - 1)
		c.log.Warn("cutting flows failed; trying again", "backend", name, "vip", k.Service, "err", err, "retry_in", wait)
		time.AfterFunc(wait, func() {
			if ctx.Err() == nil && c.planner.Dead(k.Backend) {
				c.enqueue(k)
			}
		})
	}
	if c.done != nil {
		c.done(rep, name, err)
	}
}

// flowCutDone is the worker's report into the event log and the counters.
func (d *Daemon) flowCutDone(rep dataplane.CutReport, name string, err error) {
	subject := name
	if subject == "" {
		subject = rep.Backend.String()
	}
	d.counters.add(func(c *status.Counters) {
		c.FlowCuts++
		c.FlowsCut += uint64(rep.Cut)
		c.FlowCutTime += rep.Took
		if err != nil {
			c.FlowCutErrors++
		}
	})
	if err != nil {
		d.record(EventFlowsCut, subject, fmt.Sprintf("cutting the flows of backend %s (%s) via %s failed after %s flows in %s: %v",
			subject, rep.Backend, rep.Service, thousands(rep.Cut), rep.Took.Round(time.Millisecond), err))
		return
	}
	d.record(EventFlowsCut, subject, fmt.Sprintf("cut %s flows of backend %s (%s) via %s in %s (%d batches; dump %s)",
		thousands(rep.Cut), subject, rep.Backend, rep.Service, rep.Took.Round(time.Millisecond), rep.Batches,
		rep.Dump.Round(time.Millisecond)))
}

// thousands formats n with thousands separators: 2,840.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
