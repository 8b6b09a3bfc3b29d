package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
)

// TestDeThroughVIP sends fresh TLS connections from the client through the
// VIP, IPv4 and IPv6: every one is answered, by all three backends, and
// the certificate the client verifies (against the lab CA, for the VIP as
// IP SAN or the DNS name) is the backend's own: the LB forwards TCP and
// never terminates TLS. A certificate without the VIP fails through the
// VIP, which shows that the client talks TLS with the backend itself.
func TestDeThroughVIP(t *testing.T) {
	e := newEnv(t, "de1", labOpts{}, 90*time.Second)
	d := e.setupLB(e.lbs[0])
	names := hostNames(e.backends...)

	const n = 210
	for _, vip := range []netip.AddrPort{e.vip4, e.vip6} {
		// ServerName empty: the client checks the VIP against IP SANs.
		r := e.run(e.cl, netlab.ClientOpts{Target: vip, Count: n, Concurrency: 4})
		// Each backend holds a third of the slots: ~70 of 210, and
		// fewer than 20 is far outside chance.
		wantAll(t, fmt.Sprintf("through %v", vip), r, n, 20, names...)
		r = e.run(e.cl, netlab.ClientOpts{Target: vip, ServerName: e.lab.DNSName(), Count: 30, Concurrency: 2})
		wantAll(t, fmt.Sprintf("through %v as %s", vip, e.lab.DNSName()), r, 30, 1, names...)
	}

	// Forwarded flows are SNATed to the VIP on the LB (what keeps a
	// flow's tuples the same on every peer).
	for _, vip := range []netip.AddrPort{e.vip4, e.vip6} {
		fl := e.flows(d, vip)
		if len(fl) < n {
			t.Errorf("%d conntrack entries to %v on the LB, want at least %d", len(fl), vip, n)
		}
		for _, f := range fl {
			if replyDst(f).Addr() != vip.Addr() {
				t.Errorf("forwarded flow %v: replies go to %v, want the VIP", origSrc(f), replyDst(f))
				break
			}
		}
	}

	// b2 gets a certificate without the VIPs (only its own addresses and
	// the DNS name): connections that land on b2 through the VIP fail
	// verification for the VIP address, while the others pass.
	b2 := e.lab.Host("b2")
	co := e.lab.ServerCertOptions(b2)
	co.IPs = []netip.Addr{b2.IPv4(), b2.IPv6()}
	if _, _, err := e.lab.IssueCert("b2", co); err != nil {
		t.Fatal(err)
	}
	if err := e.standins["b2"].Reload(e.ctx); err != nil {
		t.Fatal(err)
	}
	r := e.run(e.cl, netlab.ClientOpts{Target: e.vip4, Count: 60, Concurrency: 4})
	if r.Failed == 0 || r.Backends["b2"] != 0 || r.OK == 0 || r.OK+r.Failed != 60 {
		t.Errorf("with b2's certificate lacking the VIP: %s; want b2's connections failing verification, the others answered", summary(r))
	}
	for _, er := range r.Errors {
		if !strings.Contains(er.Err, "certificate") {
			t.Errorf("failure other than certificate verification: %s", er.Err)
		}
	}
}

// TestDeLocalClient runs the client role on the LB host that owns the VIP:
// the output chain DNATs its connections to the backends. The kernel gives
// a connection to VIP:port the VIP itself as its source (the destination
// is local when the source is chosen); postrouting masquerades those flows
// to the host's own eth0 address, so the backend sees and answers the LB
// host, not the VIP, as conntrack's reply tuple on the LB shows, in IPv4
// and IPv6. A flow that starts from the host's own address is left alone.
// No local flow carries the forwarded-flow mark, and each lands on the
// backend the slot map predicts.
func TestDeLocalClient(t *testing.T) {
	e := newEnv(t, "de4", labOpts{}, 60*time.Second)
	lb := e.lbs[0]
	d := e.setupLB(lb)
	want := e.desired(e.backends...)
	names := hostNames(e.backends...)
	for _, vip := range []netip.AddrPort{e.vip4, e.vip6} {
		const n = 120
		r := e.run(lb, netlab.ClientOpts{Target: vip, Count: n, Concurrency: 4})
		wantAll(t, fmt.Sprintf("from the LB to %v", vip), r, n, 10, names...)

		fl := e.flows(d, vip)
		if len(fl) != n {
			t.Errorf("%d conntrack entries to %v on the LB, want %d", len(fl), vip, n)
		}
		own := lb.IPv4()
		if vip.Addr().Is6() {
			own = lb.IPv6()
		}
		sources := map[netip.Addr]int{}
		seen := map[netip.Addr]int{} // source address the backends saw
		for _, f := range fl {
			src := origSrc(f)
			sources[src.Addr()]++
			seen[replyDst(f).Addr()]++
			switch src.Addr() {
			case vip.Addr():
				if replyDst(f).Addr() != own {
					t.Errorf("local flow from the VIP %v: the backend answers %v, want the LB's own address %v (masquerade)", src, replyDst(f), own)
				}
			case own:
				if replyDst(f) != src {
					t.Errorf("local flow from the LB's own address %v was NATed: replies go to %v", src, replyDst(f))
				}
			default:
				t.Errorf("local flow from %v: not an address of the LB host", src)
			}
			if f.Mark&dataplane.DefaultCtMark != 0 {
				t.Errorf("local flow from %v carries the forwarded-flow mark (%#x)", src, f.Mark)
			}
			if p := predict(want, src); replySrc(f) != p.Addr {
				t.Errorf("local flow from %v went to %v, the slot map gives %v", src, replySrc(f), p.Addr)
			}
		}
		// The case the masquerade is for must have happened.
		if sources[vip.Addr()] == 0 {
			t.Errorf("no local flow to %v started from the VIP (sources %v): the masquerade was not exercised", vip, sources)
		}
		if seen[vip.Addr()] != 0 || seen[own] != len(fl) {
			t.Errorf("source addresses seen by the backends: %v; want only the LB's own %v", seen, own)
		}
		t.Logf("local flows to %v by source address: %v; as seen by the backends: %v", vip, sources, seen)
	}
}

// TestDeColocatedBackend lists the LB host itself as a fourth backend (a
// stand-in on the LB host's :6443, as a stacked control-plane node runs
// kube-apiserver next to the VIP): requests from the client through the VIP
// and from the LB host itself reach it, and the others.
func TestDeColocatedBackend(t *testing.T) {
	e := newEnv(t, "de5", labOpts{}, 60*time.Second)
	lb := e.lbs[0]
	// The stand-in listens on *:6443 on the LB host, VIP included.
	e.startStandin(lb, netlab.StandinOpts{})
	all := append(e.backends[:len(e.backends):len(e.backends)], lb)
	names := hostNames(all...)
	d := e.dataplane(lb)
	want := e.desired(all...)
	want.Backends = backendsOf(all...)
	res := e.reconcile(d, want)
	for _, fr := range res.Families {
		if fr.SlotsPerBackend[lb.Name()] == 0 && fr.SlotsPerBackend[backendName6(lb.Name())] == 0 {
			t.Fatalf("%s: the co-located backend holds no slot: %v", fr.Family, fr.SlotsPerBackend)
		}
	}
	e.ownVIP(lb)
	const n = 200
	for _, vip := range []netip.AddrPort{e.vip4, e.vip6} {
		// A quarter of 200 is 50; fewer than 10 is far outside chance.
		r := e.run(e.cl, netlab.ClientOpts{Target: vip, Count: n, Concurrency: 4})
		wantAll(t, fmt.Sprintf("client through %v", vip), r, n, 10, names...)
		r = e.run(lb, netlab.ClientOpts{Target: vip, Count: n, Concurrency: 4})
		wantAll(t, fmt.Sprintf("LB host through %v", vip), r, n, 10, names...)
	}

	// Only the co-located backend healthy: everything lands on it, and it
	// still answers when the VIP's port and its own are the same socket.
	want.Healthy = healthyOf(lb)
	e.reconcile(d, want)
	for _, vip := range []netip.AddrPort{e.vip4, e.vip6} {
		r := e.run(e.cl, netlab.ClientOpts{Target: vip, Count: 40, Concurrency: 2})
		wantAll(t, fmt.Sprintf("client through %v, co-located backend only", vip), r, 40, 40, lb.Name())
	}
}

// TestDeOtherPortsDropped checks that the VIP accepts only its service
// port: TCP connects to VIP:22 and VIP:8443 get no answer at all (dropped,
// not refused), although the LB host has a server on *:8443 that answers on
// its own address, while VIP:6443 works; IPv4 and IPv6.
func TestDeOtherPortsDropped(t *testing.T) {
	e := newEnv(t, "de6", labOpts{}, 60*time.Second)
	lb := e.lbs[0]
	e.setupLB(lb)
	// Without the VIP filter, VIP:8443 would reach this server.
	s := e.startStandin(lb, netlab.StandinOpts{Port: 8443})

	// All connect loops of a family run at once; each is bounded.
	connect := func(targets ...netip.AddrPort) []netlab.TCPConnectResult {
		t.Helper()
		jobs := make([]*netlab.Job[netlab.TCPConnectResult], len(targets))
		for i, target := range targets {
			j, err := e.cl.StartTCPConnect(e.ctx, netlab.TCPConnectOpts{Target: target, Every: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, Duration: 700 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			jobs[i] = j
		}
		out := make([]netlab.TCPConnectResult, len(targets))
		for i, j := range jobs {
			r, err := j.Wait(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			first := ""
			if len(r.Errors) > 0 {
				first = r.Errors[0].Err
			}
			t.Logf("connect to %v: %d attempts, %d failures %s", targets[i], r.Attempts, r.Failures, first)
			out[i] = r
		}
		return out
	}
	for _, fam := range []struct {
		vip, own netip.AddrPort
	}{{e.vip4, s.Addr4}, {e.vip6, s.Addr6}} {
		ports := []uint16{22, 8443}
		rs := connect(fam.vip, fam.own, netip.AddrPortFrom(fam.vip.Addr(), ports[0]), netip.AddrPortFrom(fam.vip.Addr(), ports[1]))
		if r := rs[0]; r.Attempts == 0 || r.Failures != 0 {
			t.Errorf("VIP %v: %d of %d connects failed, want none", fam.vip, r.Failures, r.Attempts)
		}
		if r := rs[1]; r.Attempts == 0 || r.Failures != 0 {
			t.Errorf("LB address %v (control): %d of %d connects failed, want none", fam.own, r.Failures, r.Attempts)
		}
		for i, port := range ports {
			r := rs[2+i]
			if r.Attempts == 0 || r.Failures != r.Attempts {
				t.Errorf("VIP port %d: %d of %d connects failed, want all", port, r.Failures, r.Attempts)
			}
			for _, er := range r.Errors {
				if !strings.Contains(er.Err, "timeout") {
					t.Errorf("VIP port %d: %s; want a timeout (dropped), not an answer", port, er.Err)
					break
				}
			}
		}
		// TLS through the VIP still works after all that.
		r := e.run(e.cl, netlab.ClientOpts{Target: fam.vip, Count: 20, Concurrency: 2})
		wantAll(t, fmt.Sprintf("through %v", fam.vip), r, 20, 1, hostNames(e.backends...)...)
	}
}

// TestDeTwoPeers programs the same desired state on two LB peers; lb1 owns
// the VIP, lb2 does not. A process on lb2 reaches the VIP through lb2's own
// output DNAT: straight to a backend, with lb2's own source address (no
// SNAT to the VIP, which would send the replies to the owner), and lb1 sees
// none of those flows. Both peers pick the same backend for the same flow:
// every flow observed in conntrack on each peer (forwarded from the client
// on lb1, local on lb2) went to the backend that FlowSlot + BuildSlots
// predict for its tuple from the shared inputs, and the per-backend answers
// the clients got equal those predictions.
func TestDeTwoPeers(t *testing.T) {
	e := newEnv(t, "de7", labOpts{lbs: 2}, 60*time.Second)
	lb1, lb2 := e.lbs[0], e.lbs[1]
	d1 := e.setupLB(lb1)
	d2 := e.dataplane(lb2)
	want := e.desired(e.backends...)
	e.reconcile(d2, want)
	names := hostNames(e.backends...)

	// predicted counts the backends the slot map gives to flows from src.
	predicted := func(fl []conntrack.Flow, from netip.Addr) map[string]int {
		m := map[string]int{}
		for _, f := range fl {
			if origSrc(f).Addr() != from {
				continue
			}
			p := predict(want, origSrc(f))
			if replySrc(f) != p.Addr {
				t.Errorf("flow from %v went to %v; the slot map gives %v", origSrc(f), replySrc(f), p.Addr)
			}
			m[strings.TrimSuffix(p.Name, "v6")]++
		}
		return m
	}
	const n = 120
	for _, vip := range []netip.AddrPort{e.vip4, e.vip6} {
		own2, cl := lb2.IPv4(), e.cl.IPv4()
		if vip.Addr().Is6() {
			own2, cl = lb2.IPv6(), e.cl.IPv6()
		}

		// lb2, not the owner: output DNAT, own source, straight to the backend.
		r2 := e.run(lb2, netlab.ClientOpts{Target: vip, Count: n, Concurrency: 4})
		wantAll(t, fmt.Sprintf("from lb2 to %v", vip), r2, n, 10, names...)
		fl2 := e.flows(d2, vip)
		if len(fl2) != n {
			t.Errorf("lb2: %d conntrack entries to %v, want %d", len(fl2), vip, n)
		}
		for _, f := range fl2 {
			if origSrc(f).Addr() != own2 || replyDst(f) != origSrc(f) || f.Mark&dataplane.DefaultCtMark != 0 {
				t.Errorf("lb2 local flow %v -> reply to %v, mark %#x: want lb2's own address %v, not SNATed, unmarked",
					origSrc(f), replyDst(f), f.Mark, own2)
				break
			}
		}
		p2 := predicted(fl2, own2)
		if counts(p2) != counts(r2.Backends) {
			t.Errorf("lb2 to %v: backends answered %s, the slot map predicts %s for the observed tuples", vip, counts(r2.Backends), counts(p2))
		}
		for _, f := range e.flows(d1, vip) {
			if origSrc(f).Addr() == own2 {
				t.Errorf("lb1 saw lb2's local flow %v: it should go straight to the backend", origSrc(f))
				break
			}
		}

		// The client through lb1, the owner: prerouting DNAT and SNAT to
		// the VIP, on the same slots.
		r1 := e.run(e.cl, netlab.ClientOpts{Target: vip, Count: n, Concurrency: 4})
		wantAll(t, fmt.Sprintf("client through lb1 to %v", vip), r1, n, 10, names...)
		fl1 := e.flows(d1, vip)
		for _, f := range fl1 {
			if origSrc(f).Addr() == cl && replyDst(f).Addr() != vip.Addr() {
				t.Errorf("forwarded flow %v on lb1: replies go to %v, want the VIP", origSrc(f), replyDst(f))
				break
			}
		}
		p1 := predicted(fl1, cl)
		if counts(p1) != counts(r1.Backends) {
			t.Errorf("client through lb1 to %v: backends answered %s, the slot map predicts %s", vip, counts(r1.Backends), counts(p1))
		}
		t.Logf("%v: lb2 local %s, client through lb1 %s (both as predicted)", vip, counts(r2.Backends), counts(r1.Backends))
	}
}
