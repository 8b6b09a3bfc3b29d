package dataplane_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestDcsSyncClash: on a node that is the flow's backend, its own plain
// entry of the flow (VIP:sport -> backend, no NAT; left from before the
// raw rules stopped tracking those packets) holds the synced entry's reply
// tuple. CreateSynced (a peer) and AddSynced (the owner) replace it with
// the synced entry; a clash with another flow's NAT entry is left alone
// and reported as ErrSyncClash.
func TestDcsSyncClash(t *testing.T) {
	testenv.NeedNetns(t)
	ns := newNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	opts := []dataplane.Option{dataplane.WithNetNSFd(int(ns)), dataplane.WithLogger(quietLogger(t, "cp2"))}

	vip := netip.MustParseAddr("198.18.140.100")
	self := netip.MustParseAddrPort("198.18.140.12:6443") // this node's own backend
	d, err := dataplane.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Reconcile(ctx, dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{{Addr: vip, Port: 6443}},
		Backends: []dataplane.Backend{{Name: "cp2", Addr: self}},
		Healthy:  map[string]bool{"cp2": true},
	}); err != nil {
		t.Fatal(err)
	}
	ct, err := dataplane.NewConntrack(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	conn, err := conntrack.Dial(&netlink.Config{NetNS: int(ns)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	// plain creates the node's own backend-side entry VIP:sport -> self.
	plain := func(sport uint16) conntrack.Flow {
		t.Helper()
		f := conntrack.NewFlow(unix.IPPROTO_TCP, conntrack.StatusAssured|conntrack.StatusSeenReply|conntrack.StatusConfirmed,
			vip, self.Addr(), sport, self.Port(), 300, 0)
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: 3}
		if err := conn.Create(f); err != nil {
			t.Fatalf("creating the local entry from port %d: %v", sport, err)
		}
		return f
	}
	exists := func(f conntrack.Flow) bool {
		t.Helper()
		_, err := conn.Get(f)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			t.Fatal(err)
		}
		return err == nil
	}
	synced := func(client string, sport uint16) dataplane.SyncEntry {
		return dataplane.SyncEntry{
			Op: dataplane.SyncUpsert, OrigSrc: netip.MustParseAddrPort(client), OrigDst: netip.AddrPortFrom(vip, 6443),
			ReplySrc: self, ReplyDst: netip.AddrPortFrom(vip, sport),
			TCPState: 3, Timeout: 300, Mark: dataplane.DefaultCtMark,
		}
	}
	origOf := func(e dataplane.SyncEntry) conntrack.Flow {
		return conntrack.NewFlow(unix.IPPROTO_TCP, 0, e.OrigSrc.Addr(), e.OrigDst.Addr(), e.OrigSrc.Port(), e.OrigDst.Port(), 0, 0)
	}

	for _, tc := range []struct {
		name  string
		apply func(context.Context, dataplane.SyncEntry) error
		port  uint16
	}{
		{"peer (CreateSynced)", ct.CreateSynced, 41000},
		{"owner (AddSynced)", ct.AddSynced, 41001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := plain(tc.port)
			e := synced("198.18.140.10:"+itoa(tc.port), tc.port)
			if err := tc.apply(ctx, e); err != nil {
				t.Fatalf("applying the synced entry: %v", err)
			}
			if !exists(origOf(e)) {
				t.Fatal("the synced entry was not created: the local entry holding its reply tuple was kept")
			}
			if exists(local) {
				t.Error("the local backend-side entry is still there")
			}
			// Applying again is a refresh (or nothing, for the owner).
			if err := tc.apply(ctx, e); err != nil {
				t.Errorf("applying the synced entry again: %v", err)
			}
		})
	}

	t.Run("clash with another flow's NAT entry", func(t *testing.T) {
		first := synced("198.18.140.10:42000", 42000)
		if err := ct.CreateSynced(ctx, first); err != nil {
			t.Fatal(err)
		}
		other := synced("198.18.140.9:42000", 42000) // same reply tuple
		err := ct.CreateSynced(ctx, other)
		if !errors.Is(err, dataplane.ErrSyncClash) {
			t.Errorf("CreateSynced of a clashing entry: %v, want ErrSyncClash", err)
		}
		if !exists(origOf(first)) {
			t.Error("the NAT entry holding the reply tuple was deleted")
		}
	})
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}
