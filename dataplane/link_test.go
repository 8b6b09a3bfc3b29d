package dataplane

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/internal/netnsx"
)

func TestLinkUp(t *testing.T) {
	for _, tc := range []struct {
		flags net.Flags
		oper  netlink.LinkOperState
		up    bool
	}{
		{net.FlagUp, netlink.OperUp, true},
		{net.FlagUp, netlink.OperUnknown, true},
		{net.FlagUp | net.FlagLoopback, netlink.OperUnknown, true},
		{net.FlagUp, netlink.OperDown, false},
		{net.FlagUp, netlink.OperLowerLayerDown, false},
		{net.FlagUp, netlink.OperDormant, false},
		{net.FlagUp, netlink.OperNotPresent, false},
		{net.FlagUp, netlink.OperTesting, false},
		{0, netlink.OperUp, false},
		{0, netlink.OperUnknown, false},
		{net.FlagBroadcast, netlink.OperDown, false},
	} {
		if got := LinkUp(netlink.LinkAttrs{Flags: tc.flags, OperState: tc.oper}); got != tc.up {
			t.Errorf("LinkUp(flags %v, oper %v) = %v, want %v", tc.flags, tc.oper, got, tc.up)
		}
	}
}

// TestInterfacesUp reads this namespace's links: lo is up, a missing
// link is down.
func TestInterfacesUp(t *testing.T) {
	if !InterfaceUp("lo") {
		t.Error("lo is not up")
	}
	if InterfaceUp("nosuchlink0") {
		t.Error("a missing link is up")
	}
	if !InterfacesUp([]ServiceVIP{{Interface: "lo"}, {Interface: "lo"}}) || InterfacesUp([]ServiceVIP{{Interface: "lo"}, {Interface: "nosuchlink0"}}) {
		t.Error("InterfacesUp disagrees with InterfaceUp")
	}
}

// TestWatchLinks: the subscription signals a link added, set up and set
// down in its namespace, and its channel closes when ctx ends.
func TestWatchLinks(t *testing.T) {
	ns, ctx := kernelTest(t)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ch <-chan struct{}
	if err := netnsx.Do(ns, func() (err error) { ch, err = WatchLinks(wctx, nil); return err }); err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	wait := func(what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the subscription ended", what)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no signal within 2 s", what)
		}
	}
	l := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wl0"}, PeerName: "wl1"}
	if err := h.LinkAdd(l); err != nil {
		t.Fatal(err)
	}
	wait("link added")
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	wait("link up")
	for len(ch) > 0 {
		<-ch
	}
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	wait("link down")
	cancel()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the channel is not closed after ctx ended")
		}
	}
}
