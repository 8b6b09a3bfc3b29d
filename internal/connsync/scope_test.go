package connsync

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/epconsole/epconsole/dataplane"
)

func TestScopeCheck(t *testing.T) {
	ap := netip.MustParseAddrPort
	sc := Scope{
		VIPs:     []netip.AddrPort{ap("198.18.173.200:6443"), ap("[fd00:198:18:173::200]:7443")},
		Backends: []netip.AddrPort{ap("198.18.173.21:6443"), ap("198.18.173.22:0"), ap("[fd00:198:18:173::21]:6443")},
	}
	good := dataplane.SyncEntry{
		Op: dataplane.SyncUpsert, OrigSrc: ap("198.18.173.50:40000"), OrigDst: ap("198.18.173.200:6443"),
		ReplySrc: ap("198.18.173.21:6443"), ReplyDst: ap("198.18.173.200:40000"),
		TCPState: 3, Timeout: 300, Mark: dataplane.DefaultCtMark,
	}
	with := func(f func(e *dataplane.SyncEntry)) dataplane.SyncEntry { e := good; f(&e); return e }
	for _, tc := range []struct {
		name string
		e    dataplane.SyncEntry
		want error // nil: in scope
	}{
		{"established flow to the VIP", good, nil},
		{"no mark", with(func(e *dataplane.SyncEntry) { e.Mark = 0 }), nil},
		{"unknown TCP state (the owner did not say)", with(func(e *dataplane.SyncEntry) { e.TCPState = 0 }), nil},
		{"delete", with(func(e *dataplane.SyncEntry) { e.Op = dataplane.SyncDelete; e.TCPState = 1 }), nil},
		{"backend with the service port (port 0 in the config)", with(func(e *dataplane.SyncEntry) { e.ReplySrc = ap("198.18.173.22:6443") }), nil},
		{"IPv6 flow to the IPv6 VIP", dataplane.SyncEntry{Op: dataplane.SyncUpsert,
			OrigSrc: ap("[fd00:198:18:173::50]:40000"), OrigDst: ap("[fd00:198:18:173::200]:7443"),
			ReplySrc: ap("[fd00:198:18:173::21]:6443"), ReplyDst: ap("[fd00:198:18:173::200]:40000"), TCPState: 3}, nil},

		{"the reported attack: SSH on another host NATed elsewhere with a mark", dataplane.SyncEntry{Op: dataplane.SyncUpsert,
			OrigSrc: ap("198.18.0.50:40000"), OrigDst: ap("198.18.0.11:22"),
			ReplySrc: ap("198.18.0.77:2222"), ReplyDst: ap("198.18.0.11:40000"), TCPState: 3, Mark: 0x1}, errVIP},
		{"VIP on another port", with(func(e *dataplane.SyncEntry) { e.OrigDst = ap("198.18.173.200:22") }), errVIP},
		{"NAT to a host that is no backend", with(func(e *dataplane.SyncEntry) { e.ReplySrc = ap("198.18.173.77:6443") }), errBackend},
		{"NAT to a backend's other port", with(func(e *dataplane.SyncEntry) { e.ReplySrc = ap("198.18.173.21:22") }), errBackend},
		{"port-0 backend on another port", with(func(e *dataplane.SyncEntry) { e.ReplySrc = ap("198.18.173.22:22") }), errBackend},
		{"SNAT to another address", with(func(e *dataplane.SyncEntry) { e.ReplyDst = ap("198.18.173.99:40000") }), errSNAT},
		{"foreign mark", with(func(e *dataplane.SyncEntry) { e.Mark = 0x1 }), errMark},
		{"our mark plus another bit", with(func(e *dataplane.SyncEntry) { e.Mark = dataplane.DefaultCtMark | 1 }), errMark},
		{"handshake state", with(func(e *dataplane.SyncEntry) { e.TCPState = 1 }), errState},
		{"state out of range", with(func(e *dataplane.SyncEntry) { e.TCPState = 200 }), errState},
		{"unknown op", with(func(e *dataplane.SyncEntry) { e.Op = 9 }), errOp},
		{"delete of a foreign flow", with(func(e *dataplane.SyncEntry) { e.Op = dataplane.SyncDelete; e.OrigDst = ap("198.18.0.11:22") }), errVIP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sc.Check(tc.e)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check: %v, want %v", err, tc.want)
			}
			if err != nil && reasonOf(err) == "other" {
				t.Errorf("no reason name for %v", err)
			}
		})
	}
	// A configured mark bit replaces the default.
	sc.Mark = 0x4
	if err := sc.Check(good); !errors.Is(err, errMark) {
		t.Errorf("default mark with a configured 0x4: %v", err)
	}
}
