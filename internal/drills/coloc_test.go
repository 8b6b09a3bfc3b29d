package drills

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/lab"
	"github.com/epconsole/epconsole/internal/netlab"
)

// The co-located drill's own slice and namespace prefix.
var (
	colocNet4 = netip.MustParsePrefix("198.18.61.0/24")
	colocNet6 = netip.MustParsePrefix("fd00:198:18:61::/64")
)

const colocPrefix = "col"

// TestColocated drills the co-located topology (`epconsole-lab
// --colocated`): no LB hosts, cp1..cp3 each run a stand-in apiserver on
// its own address, port 6443, and the daemon, whose backends are cp1..cp3.
//
//   - exactly one owner;
//   - the node's own path: from each cp node's namespace a TLS request to
//     VIP:6443 succeeds, and the owner's own requests are spread over the
//     backends (they went through the DNAT, not to its own listener);
//   - no hijack: a request to a node's own address:6443 is answered by that
//     node;
//   - control: with the owner's local-client DNAT bypassed (notrack), the
//     owner's own requests to the VIP all land on its own apiserver, so the
//     spread check fails;
//   - owner failure (the owner's eth0 down): new connections succeed again
//     within a measured time; streams to the third backend and to the new
//     owner's own apiserver survive (those served by the failed node die
//     with it);
//   - graceful handoff (SIGTERM on the owner's daemon) under a loop of
//     400 fresh connections: none fails; every stream survives, those
//     served by the old and by the new owner's own apiserver included;
//   - control: the two other daemons restarted with --no-conn-sync and
//     the owner handed off again: the streams die.
func TestColocated(t *testing.T) {
	if epconsoleBin == "" {
		t.Fatal("no epconsole binary (TestMain did not build one)")
	}
	_ = lab.Down(colocPrefix)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := lab.Up(ctx, lab.Options{
		Prefix: colocPrefix, IPv4: colocNet4, IPv6: colocNet6, Backends: 3,
		Binary: epconsoleBin, Colocated: true, Logger: logger,
	})
	if err != nil {
		t.Fatalf("lab up --colocated: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range l.Peers() {
				if b, err := os.ReadFile(l.LogPath(p)); err == nil {
					t.Logf("daemon log of %s (tail):\n%s", p, colocTail(string(b), 15))
				}
			}
		}
		_ = l.Close()
	})
	net := l.Net()
	if got := len(net.HostsByRole(netlab.RoleLB)); got != 0 {
		t.Fatalf("co-located lab has %d LB hosts, want 0", got)
	}
	owner, err := l.Owner(ctx)
	if err != nil {
		t.Fatalf("exactly one owner: %v", err)
	}
	t.Logf("owner %s (peers %v)", owner, l.Peers())
	vip := netip.AddrPortFrom(net.VIP4(), lab.ServicePort)

	t.Run("node-own-path", func(t *testing.T) {
		for _, p := range l.Peers() {
			res := colocLoad(ctx, t, net.Host(p), vip, 24)
			t.Logf("from %s to %s: ok %d/%d, backends %v", p, vip, res.OK, res.Attempts, res.Backends)
			if res.OK != 24 {
				t.Errorf("from %s's own namespace: %d of 24 requests to the VIP failed: %v", p, res.Failed, res.Errors)
			}
			if p == owner && !throughVIP(res, 24) {
				t.Errorf("from the owner %s: ok %d of 24, answers from %v: its requests did not go through the VIP's DNAT", p, res.OK, res.Backends)
			}
		}
		for _, p := range l.Peers() {
			h := net.Host(p)
			res := colocLoad(ctx, t, net.Host("client"), netip.AddrPortFrom(h.IPv4(), lab.ServicePort), 6)
			if res.OK != 6 || res.Backends[p] != 6 {
				t.Errorf("client to %s's own address: ok %d, backends %v, want all 6 from %s (the DNAT must match the VIP only)", p, res.OK, res.Backends, p)
			}
		}
		res := colocLoad(ctx, t, net.Host("client"), vip, 24)
		t.Logf("from the client to %s: ok %d/%d, backends %v", vip, res.OK, res.Attempts, res.Backends)
		if res.OK != 24 || len(res.Backends) < 2 {
			t.Errorf("from the client: ok %d of 24, backends %v, want all and at least 2 backends", res.OK, res.Backends)
		}
	})

	t.Run("control-owner-dnat-bypassed", func(t *testing.T) {
		h := net.Host(owner)
		if err := notrackVIP(h, net.VIP4(), true); err != nil {
			t.Fatal(err)
		}
		res := colocLoad(ctx, t, h, vip, 24)
		if err := notrackVIP(h, net.VIP4(), false); err != nil {
			t.Fatal(err)
		}
		t.Logf("control: from the owner %s with its DNAT bypassed: ok %d/%d, backends %v", owner, res.OK, res.Attempts, res.Backends)
		if throughVIP(res, 24) {
			t.Errorf("control: with the DNAT bypassed the owner's requests still passed the check (ok %d, %v): it would not catch a missing DNAT", res.OK, res.Backends)
		}
	})

	t.Run("owner-failure", func(t *testing.T) {
		streams := colocStreams(ctx, t, net.Host("client"), vip, 9)
		time.Sleep(time.Second) // the sync reaches the peers in milliseconds
		h := net.Host(owner)
		if err := h.SetLink(false); err != nil {
			t.Fatal(err)
		}
		down := time.Now()
		newOwner, err := l.WaitOwner(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		moved := time.Since(down)
		// New connections: the first success, then 8 in a row.
		var first, steady time.Duration
		for streak := 0; streak < 8 && time.Since(down) < 30*time.Second; {
			r := colocLoad(ctx, t, net.Host("client"), vip, 1)
			if r.OK == 1 {
				if first == 0 {
					first = time.Since(down)
				}
				streak++
				if streak == 8 {
					steady = time.Since(down)
				}
			} else {
				streak = 0
			}
		}
		t.Logf("owner %s link down: new owner %s after %s; first new connection ok after %s, 8 in a row after %s",
			owner, newOwner, moved.Round(time.Millisecond), first.Round(time.Millisecond), steady.Round(time.Millisecond))
		if steady == 0 || steady > 20*time.Second {
			t.Errorf("new connections through the VIP did not succeed steadily within 20 s of the owner failure (first %s)", first)
		}
		// Streams served by the failed node die with it; all others live,
		// those to the new owner's own apiserver included.
		kept, total := colocWaitStreams(ctx, t, streams, owner)
		t.Logf("streams to the surviving backends (the new owner %s's included) complete across the owner failure: %d of %d", newOwner, kept, total)
		if kept != total {
			t.Errorf("%d of %d streams to the surviving backends died with the owner", total-kept, total)
		}
		if err := h.SetLink(true); err != nil {
			t.Fatal(err)
		}
		if _, err := l.WaitOwner(ctx, ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the healed node's backend is seen healthy again
	})

	var handoffKept, handoffTotal int
	t.Run("graceful-handoff", func(t *testing.T) {
		cur, err := l.WaitOwner(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		streams := colocStreams(ctx, t, net.Host("client"), vip, 9)
		job, err := net.Host("client").StartClient(ctx, netlab.ClientOpts{
			Target: vip, Count: 400, Interval: 10 * time.Millisecond, Concurrency: 4,
			RequestTimeout: 2 * time.Second, Timeout: 30 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		err = l.StopDaemon(sctx, cur)
		scancel()
		if err != nil {
			t.Fatal(err)
		}
		res, err := job.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		newOwner, err := l.WaitOwner(ctx, cur)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("SIGTERM on %s's daemon, new owner %s; requests: %d attempts, ok %d, failed %d, backends %v %v",
			cur, newOwner, res.Attempts, res.OK, res.Failed, res.Backends, res.Errors)
		if res.Attempts < 300 || res.Incomplete {
			t.Errorf("handoff: only %d attempts (incomplete %v): the load did not run across the handoff", res.Attempts, res.Incomplete)
		}
		if res.Failed != 0 {
			t.Errorf("handoff: %d of %d requests failed, want 0: %v", res.Failed, res.Attempts, res.Errors)
		}
		after := colocLoad(ctx, t, net.Host("client"), vip, 40)
		t.Logf("after the handoff: ok %d of 40, backends %v", after.OK, after.Backends)
		if after.OK != 40 {
			t.Errorf("after the handoff: %d of 40 requests failed: %v", after.Failed, after.Errors)
		}
		kept, total := colocWaitStreams(ctx, t, streams)
		t.Logf("streams complete across the handoff (old owner %s, new owner %s and the third node): %d of %d", cur, newOwner, kept, total)
		if kept != total {
			t.Errorf("%d of %d streams died across the handoff", total-kept, total)
		}
		if !colocServedBy(streams, cur, newOwner) {
			t.Errorf("no stream was served by the old owner %s's or the new owner %s's own apiserver: the drill did not cover them", cur, newOwner)
		}
		handoffKept, handoffTotal = kept, total
	})

	t.Run("control-no-conn-sync", func(t *testing.T) {
		if handoffTotal == 0 {
			t.Skip("the handoff did not run")
		}
		owner, err := l.WaitOwner(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		// Every node but the owner without the sync: the next owner has
		// no entries of the owner's flows. (No VIP move: the owner stays.)
		for _, p := range l.Peers() {
			if p == owner {
				continue
			}
			if l.DaemonPid(p) != 0 {
				sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
				err := l.StopDaemon(sctx, p)
				scancel()
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := l.StartDaemon(p, "--no-conn-sync"); err != nil {
				t.Fatal(err)
			}
		}
		if err := colocWaitEligible(ctx, l, owner); err != nil {
			t.Fatal(err)
		}
		streams := colocStreams(ctx, t, net.Host("client"), vip, 9)
		time.Sleep(time.Second)
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		err = l.StopDaemon(sctx, owner)
		scancel()
		if err != nil {
			t.Fatal(err)
		}
		newOwner, err := l.WaitOwner(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		kept, total := colocWaitStreams(ctx, t, streams)
		t.Logf("control: SIGTERM on %s, new owner %s without the sync: %d of %d streams complete (with the sync: %d of %d)",
			owner, newOwner, kept, total, handoffKept, handoffTotal)
		if kept*handoffTotal >= handoffKept*total {
			t.Errorf("control: without the sync %d of %d streams survived the handoff, with it %d of %d: the drill does not show what the sync does",
				kept, total, handoffKept, handoffTotal)
		}
	})
}

// colocServedBy reports whether some stream was served by one of names.
func colocServedBy(streams []*netlab.Stream, names ...string) bool {
	return slices.ContainsFunc(streams, func(s *netlab.Stream) bool { return slices.Contains(names, s.Backend) })
}

// colocWaitEligible waits until the owner sees every peer alive, its
// heartbeats fresh and eligible (restarted daemons past their startup).
func colocWaitEligible(ctx context.Context, l *lab.Lab, owner string) error {
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last string
	for {
		if s, err := l.Status(wctx, owner); err == nil {
			ready := len(s.Peers) == len(l.Peers())
			for _, p := range s.Peers {
				ready = ready && p.State == "alive" && p.Fresh && p.Eligible
			}
			if ready {
				return nil
			}
			last = fmt.Sprintf("%+v", s.Peers)
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("peers not all alive and eligible after restart: %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// colocLoad runs n fresh TLS connections from h to target, 4 at a time.
func colocLoad(ctx context.Context, t *testing.T, h *netlab.Host, target netip.AddrPort, n int) netlab.ClientResult {
	t.Helper()
	res, err := h.RunClient(ctx, netlab.ClientOpts{
		Target: target, Count: n, Concurrency: 4, RequestTimeout: time.Second, Timeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("client on %s: %v", h.Name(), err)
	}
	return res
}

// throughVIP says the n requests all succeeded and were spread over at
// least two backends: they went through the VIP's DNAT, not to the node's
// own listener.
func throughVIP(res netlab.ClientResult, n int) bool {
	return res.OK == n && len(res.Backends) >= 2
}

// colocStreams opens n streams from h to target: 60 lines 100 ms apart.
func colocStreams(ctx context.Context, t *testing.T, h *netlab.Host, target netip.AddrPort, n int) []*netlab.Stream {
	t.Helper()
	var out []*netlab.Stream
	for range n {
		s, err := h.StartStream(ctx, netlab.StreamOpts{Target: target, Lines: 60, Every: 100 * time.Millisecond, Timeout: 14 * time.Second})
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		out = append(out, s)
	}
	return out
}

// colocWaitStreams waits for the streams and counts, among those not
// served by a skipped backend (a failed node), the complete ones. All are
// logged.
func colocWaitStreams(ctx context.Context, t *testing.T, streams []*netlab.Stream, skip ...string) (kept, total int) {
	t.Helper()
	var via []string
	for i, s := range streams {
		res, err := s.Wait(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		via = append(via, fmt.Sprintf("%s:%s", s.Backend, res.End))
		if slices.Contains(skip, s.Backend) {
			continue
		}
		total++
		if res.End == netlab.StreamComplete {
			kept++
		} else {
			t.Logf("stream %d (via %s) ended %s after %d lines: %s", i, s.Backend, res.End, res.Lines, res.Err)
		}
	}
	sort.Strings(via)
	t.Logf("streams: %v", via)
	return kept, total
}

// colocControlTable is the control's table in the owner's namespace.
const colocControlTable = "colctl"

// notrackVIP adds (on) or removes a raw-priority output rule in h that
// marks h's own packets to vip:6443 notrack, so no NAT applies to them.
func notrackVIP(h *netlab.Host, vip netip.Addr, on bool) error {
	ns, err := h.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", h.Namespace(), err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: colocControlTable}
	if !on {
		conn.DelTable(table)
		return conn.Flush()
	}
	conn.AddTable(table)
	accept := nftables.ChainPolicyAccept
	out := conn.AddChain(&nftables.Chain{
		Name: "output", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRaw, Policy: &accept,
	})
	conn.AddRule(&nftables.Rule{Table: table, Chain: out, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip.AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{lab.ServicePort >> 8, lab.ServicePort & 0xff}},
		&expr.Notrack{},
	}})
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("control notrack table in %s: %w", h.Namespace(), err)
	}
	return nil
}

// colocTail returns the last n lines of s.
func colocTail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
