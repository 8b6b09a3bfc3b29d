package connsync

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/testenv"
)

var benchKey = []byte("epconsole-connsync-bench-key-32!")

// benchPair starts two real clusters on loopback (127.31.180.1 and .2)
// that know each other.
func benchPair(b testing.TB) (a, z *cluster.Cluster) {
	b.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr := func(i byte) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 31, 180, i}), 27980+uint16(i))
	}
	var cs []*cluster.Cluster
	for i, name := range []string{"syn1", "syn2"} {
		other := []string{"syn2", "syn1"}[i]
		c, err := cluster.New(context.Background(), cluster.Config{
			Name: name, Bind: addr(byte(i + 1)), Keys: [][]byte{benchKey}, Version: "bench", Logger: log,
			Local: cluster.Local{Priority: 100 - i, Eligible: true, Digest: "d1"},
			Peers: []cluster.Peer{{Name: other, Addr: addr(byte(2 - i))}},
		})
		if err != nil {
			b.Skipf("cluster: %v", err)
		}
		b.Cleanup(func() { _ = c.Shutdown() })
		cs = append(cs, c)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, ok := cs[0].View().Member("syn2")
		if ok && m.State == cluster.StateAlive {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the pair never met")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cs[0], cs[1]
}

// BenchmarkLegacySendOneEntry: the previous path's cost of one event to
// one peer: a one-entry batch over memberlist's reliable channel.
func BenchmarkLegacySendOneEntry(b *testing.B) {
	a, z := benchPair(b)
	got := make(chan struct{}, 1<<16)
	z.SetMessageHandler(func(string, []byte) { got <- struct{}{} })
	e := benchEntry(1)
	msg, err := encodeSyncBatch([]dataplane.SyncEntry{e})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := a.SendTo("syn2", msg); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}

// benchEntry is the i-th of up to 640,000 distinct flows to the VIP
// 198.18.180.200:6443 (clients in 198.19.180.0/24-198.19.189.0/24).
func benchEntry(i int) dataplane.SyncEntry {
	c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, 180 + byte(i/64000%10), byte(i / 250 % 256)}), uint16(1024+i%64000))
	vip := netip.MustParseAddrPort("198.18.180.200:6443")
	return dataplane.SyncEntry{Op: dataplane.SyncUpsert, OrigSrc: c, OrigDst: vip,
		ReplySrc: netip.MustParseAddrPort("198.18.180.21:6443"), ReplyDst: netip.AddrPortFrom(vip.Addr(), c.Port()),
		TCPState: 3, Timeout: 600, Mark: dataplane.DefaultCtMark}
}

// BenchmarkApplyOneEntry: a peer's cost of creating one synced entry.
func BenchmarkApplyOneEntry(b *testing.B) {
	testenv.NeedNetns(b)
	ns := newNS(b)
	ctx := context.Background()
	opts := []dataplane.Option{dataplane.WithNetNSFd(int(ns))}
	d, err := dataplane.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	vip := netip.MustParseAddrPort("198.18.180.200:6443")
	if _, err := d.Reconcile(ctx, dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{{Addr: vip.Addr(), Port: vip.Port()}},
		Backends: []dataplane.Backend{{Name: "cp1", Addr: netip.MustParseAddrPort("198.18.180.21:6443")}},
		Healthy:  map[string]bool{"cp1": true},
	}); err != nil {
		b.Fatal(err)
	}
	ct, err := dataplane.NewConntrack(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ct.Close() })
	b.ResetTimer()
	for i := range b.N {
		if err := ct.CreateSynced(ctx, benchEntry(i%60000)); err != nil {
			b.Fatal(err)
		}
	}
}
