package dataplane

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
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
