package connsync

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/testenv"
)

// syncNode is one LB of a stream test: its namespace with epconsole's
// rules for the VIP 198.18.180.200:6443 -> 198.18.180.21:6443, a
// conntrack handle there, and its real cluster on loopback.
type syncNode struct {
	name string
	ct   *dataplane.Conntrack
	cl   *cluster.Cluster
	opts []dataplane.Option
	nsFd int
}

var (
	streamVIP     = netip.MustParseAddrPort("198.18.180.200:6443")
	streamBackend = netip.MustParseAddrPort("198.18.180.21:6443")
)

func streamAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 31, 181, byte(i)}), uint16(28100+i))
}

// startSyncNodes starts n nodes (syn1..synN) that know each other.
func startSyncNodes(t testing.TB, ctx context.Context, n int) []*syncNode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes []*syncNode
	for i := 1; i <= n; i++ {
		ns := newNS(t)
		opts := []dataplane.Option{dataplane.WithNetNSFd(int(ns)), dataplane.WithLogger(log)}
		d, err := dataplane.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if _, err := d.Reconcile(ctx, dataplane.Desired{
			VIPs:     []dataplane.ServiceVIP{{Addr: streamVIP.Addr(), Port: streamVIP.Port()}},
			Backends: []dataplane.Backend{{Name: "cp1", Addr: streamBackend}},
			Healthy:  map[string]bool{"cp1": true},
		}); err != nil {
			t.Fatal(err)
		}
		ct, err := dataplane.NewConntrack(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ct.Close() })
		cfg := cluster.Config{Name: fmt.Sprintf("syn%d", i), Bind: streamAddr(i), Keys: [][]byte{benchKey},
			Version: "test", Logger: log, Local: cluster.Local{Priority: 100 - i, Eligible: true, Digest: "d1"}}
		for j := 1; j <= n; j++ {
			if j != i {
				cfg.Peers = append(cfg.Peers, cluster.Peer{Name: fmt.Sprintf("syn%d", j), Addr: streamAddr(j)})
			}
		}
		cl, err := cluster.New(ctx, cfg)
		if err != nil {
			t.Fatalf("cluster %s: %v", cfg.Name, err)
		}
		t.Cleanup(func() { _ = cl.Shutdown() })
		nodes = append(nodes, &syncNode{name: cfg.Name, ct: ct, cl: cl, opts: opts, nsFd: int(ns)})
	}
	waitUntil(t, 20*time.Second, "the nodes see each other with SyncStream", func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				m, ok := a.cl.View().Member(b.name)
				if a != b && (!ok || m.State != cluster.StateAlive || !m.Meta.SyncStream) {
					return false
				}
			}
		}
		return true
	})
	return nodes
}

func (n *syncNode) start(t testing.TB, ctx context.Context) *Sync {
	t.Helper()
	var w io.Writer = io.Discard
	if os.Getenv("EPCONSOLE_SYNC_DEBUG") == "1" {
		w = os.Stderr
	}
	s, err := Start(ctx, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.name), n.cl, n.name,
		Scope{VIPs: []netip.AddrPort{streamVIP}, Backends: []netip.AddrPort{streamBackend}}, n.opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// entries is the number of entries in n's whole table, from the
// kernel's counter (no dump: cheap enough to poll at 50,000 entries).
func (n *syncNode) entries(t testing.TB) int {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: n.nsFd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.StatsGlobal()
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Entries)
}

// count is the number of entries to the VIP in n's table.
func (n *syncNode) count(t testing.TB, ctx context.Context) int {
	t.Helper()
	flows, err := n.ct.Flows(ctx, streamVIP)
	if err != nil {
		t.Fatal(err)
	}
	return len(flows)
}

// create makes entries [from, to) in n's table, as if n forwarded them.
func (n *syncNode) create(t testing.TB, ctx context.Context, from, to int) {
	t.Helper()
	ap, err := n.ct.NewSyncApplier()
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	for i := from; i < to; i++ {
		e := benchEntry(i)
		e.ReplySrc = streamBackend
		if err := ap.Apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

// remove deletes entries [from, to) from n's table.
func (n *syncNode) remove(t testing.TB, ctx context.Context, from, to int) {
	t.Helper()
	ap, err := n.ct.NewSyncApplier()
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	for i := from; i < to; i++ {
		e := benchEntry(i)
		e.ReplySrc, e.Op = streamBackend, dataplane.SyncDelete
		if err := ap.Apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

func waitUntil(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStreamSyncKernel: the owner's flows reach a peer over the stream
// and are in its table; the peer measured the lag of each. A dropped
// connection is repaired from the resend window without a full dump; a
// restarted peer gets one full dump. Control: while the owner does not
// hold the VIP, nothing is sent.
func TestStreamSyncKernel(t *testing.T) {
	testenv.NeedNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	nodes := startSyncNodes(t, ctx, 2)
	owner, peer := nodes[0], nodes[1]
	so := owner.start(t, ctx)
	t.Cleanup(so.Close)
	sp := peer.start(t, ctx)

	// Control: not holding, nothing goes.
	owner.create(t, ctx, 0, 10)
	time.Sleep(time.Second)
	if n := peer.count(t, ctx); n != 0 {
		t.Fatalf("control: the peer has %d entries while the owner does not hold the VIP", n)
	}

	so.SetHolding(true)
	waitUntil(t, 10*time.Second, "the full dump of 10 entries reaches the peer", func() bool { return peer.count(t, ctx) == 10 })
	const n = 2000
	owner.create(t, ctx, 10, n)
	waitUntil(t, 20*time.Second, fmt.Sprintf("%d entries on the peer", n), func() bool { return peer.count(t, ctx) == n })
	st := sp.Stats()
	if st.Lag.Count < n-10 {
		t.Errorf("the peer measured the lag of %d entries, want >= %d", st.Lag.Count, n-10)
	}
	os := so.Stats()
	if len(os.Peers) != 1 || !os.Peers[0].Connected || os.Resyncs != 1 {
		t.Fatalf("owner stats %+v: want one connected stream and one full dump", os)
	}
	t.Logf("lag of %d entries: mean %v; wire %d bytes in %d batches", st.Lag.Count, st.Lag.Sum/time.Duration(st.Lag.Count), os.WireBytes, os.Sent)

	// The connection drops: repaired without a full dump.
	sp.rxMu.Lock()
	sp.rx[owner.name].conn.Close()
	sp.rxMu.Unlock()
	owner.create(t, ctx, n, n+500)
	waitUntil(t, 20*time.Second, "500 more entries on the peer after a reconnect", func() bool { return peer.count(t, ctx) == n+500 })
	if r := so.Stats().Resyncs; r != 1 {
		t.Errorf("%d full dumps after a dropped connection, want still 1", r)
	}

	// Closed flows go too (deletes over the kept ctnetlink socket).
	owner.remove(t, ctx, 0, 100)
	waitUntil(t, 20*time.Second, "100 deletes on the peer", func() bool { return peer.count(t, ctx) == n+400 })

	// The peer restarts: one full dump.
	sp.Close()
	sp = peer.start(t, ctx)
	t.Cleanup(sp.Close)
	waitUntil(t, 20*time.Second, "a full dump to the restarted peer", func() bool { return so.Stats().Resyncs == 2 })
	waitUntil(t, 20*time.Second, "the restarted peer acknowledged everything", func() bool {
		p := so.Stats().Peers
		return len(p) == 1 && p[0].Connected && p[0].Pending == 0 && p[0].Unacked == 0
	})
	if d := sp.Stats().Dropped; len(d) != 0 {
		t.Errorf("dropped %v", d)
	}
}
