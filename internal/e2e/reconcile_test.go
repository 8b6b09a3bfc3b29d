package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
)

// loop is a paced client load of fresh connections that runs until
// stopped (its count and run time are bounded all the same).
func (e *env) loop(h *netlab.Host, target netip.AddrPort) *netlab.Job[netlab.ClientResult] {
	e.t.Helper()
	j, err := h.StartClient(e.ctx, netlab.ClientOpts{
		Target: target, Count: 5000, Interval: 5 * time.Millisecond, Concurrency: 2,
		RequestTimeout: 3 * time.Second, Timeout: 30 * time.Second,
	})
	if err != nil {
		e.t.Fatalf("client loop on %s to %v: %v", h.Name(), target, err)
	}
	return j
}

// stop stops loops and returns their results, in order.
func (e *env) stop(jobs ...*netlab.Job[netlab.ClientResult]) []netlab.ClientResult {
	e.t.Helper()
	for _, j := range jobs {
		j.Stop()
	}
	out := make([]netlab.ClientResult, len(jobs))
	for i, j := range jobs {
		r, err := j.Wait(e.ctx)
		if err != nil {
			e.t.Fatalf("client loop: %v", err)
		}
		out[i] = r
	}
	return out
}

// TestDeRemovedBackend withdraws a healthy backend (b2) from the healthy
// set while loops of fresh TLS connections run through the VIP, IPv4 and
// IPv6. The loops started right after the withdraw answer every request
// and never reach b2, and the LB's conntrack table holds no flow to b2 at
// the end (the withdraw deleted b2's entries, so any entry to it would be a
// connection made after it). The loops that ran across the change lose no
// request on the other backends. A request that was in flight to b2 at
// the withdraw may fail, since the withdraw deletes b2's conntrack entries
// (its answer is then dropped at the VIP): such failures are allowed only
// when the failed connection's own tuple maps to b2 in the slot map before
// the withdraw. (A withdraw without Desired.Drain means b2 is dead;
// TestDeDrainedBackend shows the drain that spares such requests.)
func TestDeRemovedBackend(t *testing.T) {
	e := newEnv(t, "de2", labOpts{}, 60*time.Second)
	lb := e.lbs[0]
	d := e.setupLB(lb)
	b1, b2, b3 := e.backends[0], e.backends[1], e.backends[2]
	vips := []netip.AddrPort{e.vip4, e.vip6}
	allHealthy := e.desired(e.backends...)

	var before []*netlab.Job[netlab.ClientResult]
	for _, vip := range vips {
		before = append(before, e.loop(e.cl, vip))
	}
	time.Sleep(time.Second)
	res := e.reconcile(d, e.desired(b1, b3))
	withdrawn := map[netip.AddrPort]bool{}
	for _, fr := range res.Families {
		for _, b := range fr.Withdrawn {
			withdrawn[b] = true
		}
		t.Logf("withdraw of b2, %s: %s, %d elements moved, slots now %v, %d conntrack entries deleted",
			fr.Family, fr.Action, fr.ElementsAdded, fr.SlotsPerBackend, fr.FlowsDeleted)
	}
	if len(withdrawn) != 2 || !withdrawn[netip.AddrPortFrom(b2.IPv4(), servicePort)] || !withdrawn[netip.AddrPortFrom(b2.IPv6(), servicePort)] {
		t.Errorf("withdrawn backends %v, want b2's two addresses", withdrawn)
	}
	// From here on every connection of the "after" loops starts after
	// the withdraw was committed.
	var after []*netlab.Job[netlab.ClientResult]
	for _, vip := range vips {
		after = append(after, e.loop(e.cl, vip))
	}
	rb := e.stop(before...)
	time.Sleep(2 * time.Second)
	ra := e.stop(after...)

	for i, vip := range vips {
		t.Logf("%v across the withdraw: %s", vip, summary(rb[i]))
		t.Logf("%v after the withdraw: %s", vip, summary(ra[i]))
		// Across: no failure on b1 or b3, b2 served until the withdraw.
		if rb[i].OK < 100 || rb[i].Backends["b2"] == 0 {
			t.Errorf("%v across the withdraw: %s; want at least 100 answers, b2 among them", vip, summary(rb[i]))
		}
		onB2, other := failedBackends(rb[i], allHealthy)
		if len(other) > 0 {
			t.Errorf("%v across the withdraw: %d requests failed, not attributable to b2: %q", vip, rb[i].Failed, other)
		}
		if onB2 > 0 {
			t.Logf("%v across the withdraw: %d requests in flight to b2 were cut by its withdraw", vip, onB2)
		}
		// After: no failure, never b2, the others serving (the count is
		// loose: a loaded 2-core machine made 114 in 1.5 s once).
		if ra[i].Failed != 0 || ra[i].OK < 100 {
			t.Errorf("%v after the withdraw: %s; want no failure, at least 100 answers", vip, summary(ra[i]))
		}
		if ra[i].Backends["b2"] != 0 || ra[i].Backends["b1"] < 30 || ra[i].Backends["b3"] < 30 {
			t.Errorf("%v after the withdraw: backends %s; want none from b2, b1 and b3 serving", vip, counts(ra[i].Backends))
		}
		n := 0
		for _, f := range e.flows(d, vip) {
			if a := replySrc(f).Addr(); a == b2.IPv4() || a == b2.IPv6() {
				n++
			}
		}
		if n != 0 {
			t.Errorf("%v: %d conntrack entries to b2 on the LB after its withdraw, want none", vip, n)
		}
	}
}

// failedBackends attributes the failed requests of r to backends: each
// error names its connection's tuple ("read tcp CLIENT->VIP: ..."), and
// the slot map of want gives the backend of that tuple. It returns how many
// failures map to b2 and the errors that do not (or that name no tuple, or
// were not recorded: Errors holds only the first ones).
func failedBackends(r netlab.ClientResult, want dataplane.Desired) (onB2 int, other []string) {
	for _, er := range r.Errors {
		m := tupleRE.FindStringSubmatch(er.Err)
		if m == nil {
			other = append(other, er.Err)
			continue
		}
		src, err := netip.ParseAddrPort(m[1])
		if err != nil {
			other = append(other, er.Err)
			continue
		}
		if b := predict(want, src); b.Name == "b2" || b.Name == backendName6("b2") {
			onB2++
		} else {
			other = append(other, fmt.Sprintf("%s (on %s)", er.Err, b.Name))
		}
	}
	if n := r.Failed - len(r.Errors); n > 0 {
		other = append(other, fmt.Sprintf("%d more failures not recorded", n))
	}
	return onB2, other
}

// tupleRE finds the local address of a connection in a Go net error.
var tupleRE = regexp.MustCompile(`tcp (\S+)->\S+:`)

// TestDeDeadBackendStream holds a long-lived TLS stream (with TCP
// keep-alive every second) through the VIP, pulls the cable of the backend
// it landed on and withdraws that backend. With conntrack deletion on (the
// default) the stream is reset within cutBound: its next keep-alive probe
// no longer matches a flow and is sent to a live backend, which resets it.
// The control run does the same with WithConntrackFlush(false): the stream
// keeps waiting on the dead backend past the bound and ends only when
// keep-alive gives up (no reset).
func TestDeDeadBackendStream(t *testing.T) {
	e := newEnv(t, "de3", labOpts{}, 90*time.Second)
	lb := e.lbs[0]
	withFlush := e.setupLB(lb)
	// Kernel timers decide both outcomes: the first keep-alive probe goes
	// out ~1 s after the last line (reset with deletion); without it,
	// three unanswered probes end the stream ~4 s after the last line.
	const cutBound = 3 * time.Second

	type outcome struct {
		backend string
		res     netlab.StreamResult
		ended   time.Duration // from the cable pull to the stream's end
		deleted int
	}
	drill := func(d *dataplane.Dataplane) outcome {
		t.Helper()
		// Every backend healthy and cabled.
		for _, h := range e.backends {
			if err := h.SetCable(true); err != nil {
				t.Fatal(err)
			}
		}
		e.reconcile(d, e.desired(e.backends...))
		st, err := e.cl.StartStream(e.ctx, netlab.StreamOpts{
			Target: e.vip4, Lines: 100000, Every: 50 * time.Millisecond, KeepAlive: time.Second, Timeout: 20 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		x := e.lab.Host(st.Backend)
		if x == nil || x.Role() != netlab.RoleBackend {
			t.Fatalf("stream landed on %q, not a backend host", st.Backend)
		}
		time.Sleep(300 * time.Millisecond) // a few lines flow
		var rest []*netlab.Host
		for _, h := range e.backends {
			if h != x {
				rest = append(rest, h)
			}
		}
		if err := x.SetCable(false); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		res := e.reconcile(d, e.desired(rest...))
		o := outcome{backend: x.Name()}
		for _, fr := range res.Families {
			o.deleted += fr.FlowsDeleted
		}
		// The stream's own entry, still pointing at x without deletion.
		left := 0
		for _, f := range e.flows(d, e.vip4) {
			if replySrc(f).Addr() == x.IPv4() {
				left++
			}
		}
		wctx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
		defer cancel()
		o.res, err = st.Wait(wctx)
		o.ended = time.Since(cut)
		if err != nil {
			t.Fatalf("stream through the VIP to %s: %v", x.Name(), err)
		}
		t.Logf("stream on %s: %d lines, ended %q (%s) %v after the cable pull; %d conntrack entries deleted, %d left to %s after the withdraw",
			x.Name(), o.res.Lines, o.res.End, o.res.Err, o.ended.Round(time.Millisecond), o.deleted, left, x.Name())
		return o
	}

	on := drill(withFlush)
	if on.deleted == 0 {
		t.Errorf("deletion on: no conntrack entry deleted for the dead backend %s", on.backend)
	}
	if on.res.End != netlab.StreamReset || on.ended > cutBound || on.res.Lines == 0 {
		t.Errorf("deletion on: stream on %s ended %q after %v; want a reset within %v", on.backend, on.res.End, on.ended, cutBound)
	}

	// Control: a daemon with deletion switched off adopts the same table.
	noFlush := e.dataplane(lb, dataplane.WithConntrackFlush(false))
	off := drill(noFlush)
	if off.deleted != 0 {
		t.Errorf("deletion off: %d conntrack entries deleted", off.deleted)
	}
	if off.res.End == netlab.StreamReset || off.ended <= cutBound {
		t.Errorf("deletion off: stream on %s ended %q after %v; want it still waiting on the dead backend past %v, and no reset",
			off.backend, off.res.End, off.ended, cutBound)
	}
	t.Logf("dead backend: stream cut after %v with conntrack deletion, %v without (%s: %s)",
		on.ended.Round(time.Millisecond), off.ended.Round(time.Millisecond), off.res.End, off.res.Err)
}

// foreignRuleset creates tables in h's namespace that are not epconsole's:
// ip filter and ip6 filter with a counting forward chain (every forwarded
// packet passes it), and an inet table that shares epconsole's name.
func foreignRuleset(t *testing.T, h *netlab.Host) {
	t.Helper()
	c := nftConn(t, h)
	accept := nftables.ChainPolicyAccept
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		tab := c.AddTable(&nftables.Table{Name: "filter", Family: fam})
		fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: tab, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		c.AddRule(&nftables.Rule{Table: tab, Chain: fwd, Exprs: []expr.Any{&expr.Counter{}}})
	}
	inet := c.AddTable(&nftables.Table{Name: dataplane.TableName, Family: nftables.TableFamilyINet})
	other := c.AddChain(&nftables.Chain{Name: "other", Table: inet})
	c.AddRule(&nftables.Rule{Table: inet, Chain: other, Exprs: []expr.Any{&expr.Counter{}}})
	if err := c.Flush(); err != nil {
		t.Fatalf("creating the foreign ruleset: %v", err)
	}
}

// nftConn opens an nftables connection into h's namespace (set-up and
// reads only).
func nftConn(t *testing.T, h *netlab.Host) *nftables.Conn {
	t.Helper()
	ns, err := h.OpenNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// foreignState lists every table, chain and rule (handles and expressions,
// counters zeroed) outside epconsole's ip and ip6 tables, and sums the
// packets counted by the forward chains of the filter tables.
func foreignState(t *testing.T, h *netlab.Host) (snapshot []string, forwarded uint64) {
	t.Helper()
	c := nftConn(t, h)
	chains, err := c.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	mine := func(tab *nftables.Table) bool {
		return tab.Name == dataplane.TableName && (tab.Family == nftables.TableFamilyIPv4 || tab.Family == nftables.TableFamilyIPv6)
	}
	for _, tab := range tables {
		if !mine(tab) {
			snapshot = append(snapshot, fmt.Sprintf("table %d %s", tab.Family, tab.Name))
		}
	}
	for _, ch := range chains {
		if mine(ch.Table) {
			continue
		}
		snapshot = append(snapshot, fmt.Sprintf("chain %d %s %s", ch.Table.Family, ch.Table.Name, ch.Name))
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			s := fmt.Sprintf("rule %d %s %s handle %d:", ch.Table.Family, ch.Table.Name, ch.Name, r.Handle)
			for _, x := range r.Exprs {
				if cnt, ok := x.(*expr.Counter); ok {
					if ch.Table.Name == "filter" && ch.Name == "forward" {
						forwarded += cnt.Packets
					}
					x = &expr.Counter{}
				}
				s += fmt.Sprintf(" %T%+v", x, x)
			}
			snapshot = append(snapshot, s)
		}
	}
	slices.Sort(snapshot)
	return snapshot, forwarded
}

// TestDeAtomicReconcile runs loops of fresh TLS connections through the
// VIP (IPv4 and IPv6) while (a) the dataplane replaces its whole tables
// several times (slot map size and balance mode changes, which the
// client's flows still match) and (b) a "daemon restart": a new Dataplane
// adopts the tables in place: its Reconcile with the same desired state
// commits nothing, and the ruleset generation stays put, also on a second
// call. No request fails. A foreign ruleset in the same namespace (ip and
// ip6 filter tables with counting forward chains, an inet table named
// epconsole) is untouched by all of it and by Remove, and keeps counting
// the forwarded traffic.
func TestDeAtomicReconcile(t *testing.T) {
	e := newEnv(t, "de8", labOpts{}, 90*time.Second)
	lb := e.lbs[0]
	foreignRuleset(t, lb)
	foreign, fwd0 := foreignState(t, lb)
	t.Logf("foreign ruleset: %q", foreign)
	d := e.setupLB(lb)
	want := e.desired(e.backends...)

	var jobs []*netlab.Job[netlab.ClientResult]
	for _, vip := range []netip.AddrPort{e.vip4, e.vip6} {
		jobs = append(jobs, e.loop(e.cl, vip))
	}
	time.Sleep(300 * time.Millisecond)

	// (a) Whole-table replacements under load.
	changes := []func(*dataplane.Desired){
		func(w *dataplane.Desired) { w.Slots = 1031 },
		func(w *dataplane.Desired) { w.Mode = dataplane.BalanceSource },
		func(w *dataplane.Desired) { w.Slots = 0 },
		func(w *dataplane.Desired) { w.Mode = dataplane.BalanceConnection },
		func(w *dataplane.Desired) { w.Slots = 2039 },
		func(w *dataplane.Desired) { w.Slots = 0 },
	}
	replaced := 0
	for _, change := range changes {
		g := e.generation(d)
		change(&want)
		res := e.reconcile(d, want)
		for _, fr := range res.Families {
			if fr.Action != dataplane.ActionReplaced {
				t.Errorf("slots %d, mode %q: %s table %s, want replaced", want.Slots, want.Mode, fr.Family, fr.Action)
			}
		}
		if g2 := e.generation(d); !res.Committed || g2 == g {
			t.Errorf("slots %d, mode %q: committed %v, generation %d -> %d", want.Slots, want.Mode, res.Committed, g, g2)
		}
		replaced++
		time.Sleep(150 * time.Millisecond)
	}

	// (b) Daemon restart: a new instance adopts the tables as they are.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := e.dataplane(lb)
	g0 := e.generation(d2)
	for i := range 2 {
		res := e.reconcile(d2, want)
		for _, fr := range res.Families {
			if fr.Action != dataplane.ActionUnchanged {
				t.Errorf("restart, reconcile %d: %s table %s, want unchanged", i+1, fr.Family, fr.Action)
			}
		}
		if g := e.generation(d2); res.Committed || g != g0 {
			t.Errorf("restart, reconcile %d: committed %v, generation %d -> %d; want nothing committed", i+1, res.Committed, g0, g)
		}
		time.Sleep(300 * time.Millisecond)
	}
	rs := e.stop(jobs...)
	for i, vip := range []netip.AddrPort{e.vip4, e.vip6} {
		t.Logf("%v through %d table replacements and a restart: %s", vip, replaced, summary(rs[i]))
		if rs[i].Failed != 0 || rs[i].OK < 200 {
			t.Errorf("%v through reconciles: %s; want no failure, at least 200 answers", vip, summary(rs[i]))
		}
		for _, b := range e.backends {
			if rs[i].Backends[b.Name()] == 0 {
				t.Errorf("%v through reconciles: %s never answered (%s)", vip, b.Name(), counts(rs[i].Backends))
			}
		}
	}

	// The foreign ruleset: unchanged, and still counting the traffic.
	after, fwd1 := foreignState(t, lb)
	if !slices.Equal(after, foreign) {
		t.Errorf("foreign ruleset changed:\n got %q\nwant %q", after, foreign)
	}
	if fwd1 <= fwd0 {
		t.Errorf("the foreign forward chains counted %d packets before and %d after the load; want more", fwd0, fwd1)
	}
	t.Logf("foreign forward chains counted %d forwarded packets", fwd1-fwd0)
	if err := d2.Remove(e.ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := foreignState(t, lb); !slices.Equal(after, foreign) {
		t.Errorf("foreign ruleset changed by Remove:\n got %q\nwant %q", after, foreign)
	}
	c := nftConn(t, lb)
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		tabs, err := c.ListTablesOfFamily(fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, tab := range tabs {
			if tab.Name == dataplane.TableName {
				t.Errorf("table %d %s still there after Remove", fam, tab.Name)
			}
		}
	}
}
