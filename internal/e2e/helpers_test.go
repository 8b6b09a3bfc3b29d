package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
)

// The address slice of this package (see the brief); every lab is its own
// L2 segment, so labs of parallel tests reuse it.
var (
	net4 = netip.MustParsePrefix("198.18.4.0/24")
	net6 = netip.MustParsePrefix("fd00:198:18:4::/64")
)

// servicePort is the VIP's port and the stand-ins' port.
const servicePort = 6443

// labOpts describes a test's topology.
type labOpts struct {
	lbs      int // LB hosts lb1.. (default 1)
	backends int // backend hosts b1.. with a stand-in on servicePort (default 3)
}

// env is one test's lab: a client "cl", LB hosts, backend hosts with
// running stand-ins, and the VIPs.
type env struct {
	t        testing.TB
	ctx      context.Context
	lab      *netlab.Lab
	cl       *netlab.Host
	lbs      []*netlab.Host
	backends []*netlab.Host
	standins map[string]*netlab.Standin // by stand-in name
	vip4     netip.AddrPort
	vip6     netip.AddrPort
}

// newEnv builds the lab and starts a stand-in on every backend host. The
// context is bounded (timeout) and cancelled at cleanup.
func newEnv(t testing.TB, prefix string, o labOpts, timeout time.Duration) *env {
	t.Helper()
	if o.lbs == 0 {
		o.lbs = 1
	}
	if o.backends == 0 {
		o.backends = 3
	}
	hosts := []netlab.HostSpec{{Name: "cl", Role: netlab.RoleClient}}
	for i := 1; i <= o.lbs; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("lb%d", i), Role: netlab.RoleLB})
	}
	for i := 1; i <= o.backends; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("b%d", i), Role: netlab.RoleBackend})
	}
	lab := netlab.New(t, netlab.Spec{Prefix: prefix, IPv4: net4, IPv6: net6, Hosts: hosts})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	e := &env{
		t: t, ctx: ctx, lab: lab,
		cl:       lab.Host("cl"),
		lbs:      lab.HostsByRole(netlab.RoleLB),
		backends: lab.HostsByRole(netlab.RoleBackend),
		standins: map[string]*netlab.Standin{},
		vip4:     netip.AddrPortFrom(lab.VIP4(), servicePort),
		vip6:     netip.AddrPortFrom(lab.VIP6(), servicePort),
	}
	for _, h := range e.backends {
		e.startStandin(h, netlab.StandinOpts{})
	}
	return e
}

func (e *env) startStandin(h *netlab.Host, o netlab.StandinOpts) *netlab.Standin {
	e.t.Helper()
	s, err := h.StartStandin(e.ctx, o)
	if err != nil {
		e.t.Fatalf("stand-in on %s: %v", h.Name(), err)
	}
	e.standins[s.Name] = s
	return s
}

// backendName6 names a host's IPv6 backend in Desired (names are unique
// across families; the stand-in reports the host name on both).
func backendName6(host string) string { return host + "v6" }

// backendsOf lists hosts as Desired backends on servicePort: all IPv4
// entries, then all IPv6 ones, in the order given.
func backendsOf(hosts ...*netlab.Host) []dataplane.Backend {
	var out []dataplane.Backend
	for _, h := range hosts {
		out = append(out, dataplane.Backend{Name: h.Name(), Addr: netip.AddrPortFrom(h.IPv4(), servicePort)})
	}
	for _, h := range hosts {
		out = append(out, dataplane.Backend{Name: backendName6(h.Name()), Addr: netip.AddrPortFrom(h.IPv6(), servicePort)})
	}
	return out
}

// healthyOf is the healthy set holding hosts in both families.
func healthyOf(hosts ...*netlab.Host) map[string]bool {
	m := map[string]bool{}
	for _, h := range hosts {
		m[h.Name()], m[backendName6(h.Name())] = true, true
	}
	return m
}

// desired is the state of the lab's VIPs served by all backend hosts,
// with the healthy ones given.
func (e *env) desired(healthy ...*netlab.Host) dataplane.Desired {
	return dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{{Addr: e.vip4.Addr(), Port: servicePort}, {Addr: e.vip6.Addr(), Port: servicePort}},
		Backends: backendsOf(e.backends...),
		Healthy:  healthyOf(healthy...),
	}
}

// dataplane returns a Dataplane bound to host's namespace, closed at
// cleanup (its tables stay until the lab goes).
func (e *env) dataplane(h *netlab.Host, opts ...dataplane.Option) *dataplane.Dataplane {
	e.t.Helper()
	d, err := dataplane.New(append([]dataplane.Option{dataplane.WithNetNS(h.Namespace()), dataplane.WithLogger(testLogger(e.t, h.Name()))}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { d.Close() })
	return d
}

// reconcile runs d.Reconcile and fails the test on error.
func (e *env) reconcile(d *dataplane.Dataplane, want dataplane.Desired) dataplane.Result {
	e.t.Helper()
	res, err := d.Reconcile(e.ctx, want)
	if err != nil {
		e.t.Fatalf("Reconcile: %v", err)
	}
	return res
}

// generation reads the ruleset generation of d's namespace.
func (e *env) generation(d *dataplane.Dataplane) uint32 {
	e.t.Helper()
	g, err := d.Generation(e.ctx)
	if err != nil {
		e.t.Fatalf("Generation: %v", err)
	}
	return g
}

// ownVIP puts both VIPs on h's eth0 (with announcements), as the VIP
// owner does.
func (e *env) ownVIP(h *netlab.Host) {
	e.t.Helper()
	v, err := dataplane.NewVIP(dataplane.WithNetNS(h.Namespace()), dataplane.WithLogger(testLogger(e.t, h.Name())))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { v.Close() })
	for _, a := range []netip.Addr{e.vip4.Addr(), e.vip6.Addr()} {
		if err := v.Add(e.ctx, netlab.HostLink, a); err != nil {
			e.t.Fatalf("adding VIP %v on %s: %v", a, h.Name(), err)
		}
	}
}

// setupLB programs h with all backends healthy and gives it the VIPs.
func (e *env) setupLB(h *netlab.Host, opts ...dataplane.Option) *dataplane.Dataplane {
	e.t.Helper()
	d := e.dataplane(h, opts...)
	e.reconcile(d, e.desired(e.backends...))
	e.ownVIP(h)
	return d
}

// run runs a client load from h and fails the test if the run itself
// could not be done (failed requests are in the result).
func (e *env) run(h *netlab.Host, o netlab.ClientOpts) netlab.ClientResult {
	e.t.Helper()
	res, err := h.RunClient(e.ctx, o)
	if err != nil {
		e.t.Fatalf("client on %s to %v: %v", h.Name(), o.Target, err)
	}
	e.t.Logf("client on %s to %v (%s): %s", h.Name(), o.Target, o.ServerName, summary(res))
	return res
}

// summary is a one-line account of a client result.
func summary(r netlab.ClientResult) string {
	s := fmt.Sprintf("%d attempts, %d ok, %d failed, backends %s, median %v, max %v, elapsed %v",
		r.Attempts, r.OK, r.Failed, counts(r.Backends), r.Latency.Median, r.Latency.Max, r.Elapsed.Round(time.Millisecond))
	if len(r.Errors) > 0 {
		s += fmt.Sprintf(", first error at %v: %s", r.Errors[0].At.Round(time.Millisecond), r.Errors[0].Err)
	}
	return s
}

// counts prints a per-backend count map in name order.
func counts(m map[string]int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// wantAll checks that r answered every request and that exactly the
// named backends answered, each at least min times.
func wantAll(t testing.TB, what string, r netlab.ClientResult, count, min int, names ...string) {
	t.Helper()
	if r.Attempts != count || r.OK != count || r.Failed != 0 || r.Incomplete {
		t.Errorf("%s: %s; want %d answers, no failure", what, summary(r), count)
	}
	for _, n := range names {
		if r.Backends[n] < min {
			t.Errorf("%s: backend %s answered %d times, want at least %d (%s)", what, n, r.Backends[n], min, counts(r.Backends))
		}
	}
	for n := range r.Backends {
		if !slices.Contains(names, n) {
			t.Errorf("%s: unexpected backend %s answered %d times", what, n, r.Backends[n])
		}
	}
}

// hostNames lists the names of hosts.
func hostNames(hosts ...*netlab.Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.Name()
	}
	return out
}

// flows dumps the conntrack entries to vip in d's namespace.
func (e *env) flows(d *dataplane.Dataplane, vip netip.AddrPort) []conntrack.Flow {
	e.t.Helper()
	fl, err := d.Conntrack().Flows(e.ctx, vip)
	if err != nil {
		e.t.Fatalf("conntrack dump: %v", err)
	}
	return fl
}

// Tuple parts of a conntrack flow.
func origSrc(f conntrack.Flow) netip.AddrPort {
	return netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress, f.TupleOrig.Proto.SourcePort)
}

func replySrc(f conntrack.Flow) netip.AddrPort {
	return netip.AddrPortFrom(f.TupleReply.IP.SourceAddress, f.TupleReply.Proto.SourcePort)
}

func replyDst(f conntrack.Flow) netip.AddrPort {
	return netip.AddrPortFrom(f.TupleReply.IP.DestinationAddress, f.TupleReply.Proto.DestinationPort)
}

// predict returns the backend (Desired name and address) that the slot
// map of want gives to a flow from client to the VIP of client's family:
// FlowSlot into BuildSlots, computed in Go, the same on every peer.
func predict(want dataplane.Desired, client netip.AddrPort) dataplane.Backend {
	var fam []dataplane.Backend
	for _, b := range want.Backends {
		if b.Addr.Addr().Is4() == client.Addr().Is4() {
			if b.Addr.Port() == 0 {
				for _, v := range want.VIPs {
					if v.Addr.Is4() == client.Addr().Is4() {
						b.Addr = netip.AddrPortFrom(b.Addr.Addr(), v.AddrPort().Port())
					}
				}
			}
			fam = append(fam, b)
		}
	}
	names := make([]string, len(fam))
	for i, b := range fam {
		names[i] = b.Name
	}
	seed := want.Seed
	if seed == 0 {
		seed = dataplane.DefaultSeed
	}
	slots := dataplane.BuildSlots(names, want.Healthy, seed, want.Slots)
	s := dataplane.FlowSlot(want.Mode, seed, len(slots), client)
	if slots[s] < 0 {
		return dataplane.Backend{}
	}
	return fam[slots[s]]
}

// testLogger sends a component's logs to t.Log (shown for failures and -v).
func testLogger(t testing.TB, host string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("host", host)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
