package dataplane

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/vishvananda/netlink"
)

// LinkUp is the one rule for "the VIP's interface is up": administratively
// up and operationally up or unknown (loopback and some virtual links
// report unknown). Dormant, lower-layer-down, not-present, testing and
// down links are not up: a VIP put there would not be reachable, so the
// node must not count as eligible to own it.
func LinkUp(a netlink.LinkAttrs) bool {
	if a.Flags&net.FlagUp == 0 {
		return false
	}
	switch a.OperState {
	case netlink.OperUp, netlink.OperUnknown:
		return true
	}
	return false
}

// InterfaceUp reads the link called name in this process's network
// namespace and applies LinkUp; a missing or unreadable link is down.
func InterfaceUp(name string) bool {
	l, err := netlink.LinkByName(name)
	return err == nil && LinkUp(*l.Attrs())
}

// InterfacesUp reports whether every VIP's interface is up (LinkUp).
func InterfacesUp(vips []ServiceVIP) bool {
	seen := map[string]bool{}
	for _, v := range vips {
		if seen[v.Interface] {
			continue
		}
		seen[v.Interface] = true
		if !InterfaceUp(v.Interface) {
			return false
		}
	}
	return true
}

// WatchLinks subscribes to the link changes (RTM_NEWLINK, RTM_DELLINK) of
// this process's network namespace: the returned channel receives a
// signal, coalesced, after every change of any link, so the caller reads
// the links it cares about (InterfacesUp) only when one changed. The
// channel is closed when ctx ends or the subscription fails (the kernel
// dropped messages, the socket broke); onErr, if not nil, is told why.
// The caller then reads on its own schedule and may subscribe again.
func WatchLinks(ctx context.Context, onErr func(error)) (<-chan struct{}, error) {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	failed := make(chan struct{})
	var once sync.Once
	fail := func(err error) {
		if onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
		once.Do(func() { close(failed) })
	}
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{ErrorCallback: fail})
	if err != nil {
		close(done)
		return nil, fmt.Errorf("subscribing to link changes: %w", err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer func() {
			close(done) // closes the socket: the reader stops and closes updates
			go func() {
				for range updates { // a reader blocked on a full channel
				}
			}()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-failed:
				return
			case _, ok := <-updates:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}
