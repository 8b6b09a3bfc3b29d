// Package netnsx runs code on an OS thread inside another network
// namespace, with one thread policy for every caller (the dataplane,
// preflight's fact gathering and the test lab).
//
// A network namespace belongs to an OS thread, and Go moves goroutines
// between threads, so the policy is:
//
//  1. run on a goroutine of its own and lock it to its OS thread;
//  2. remember the thread's namespace, switch to the target one;
//  3. run the function;
//  4. switch the thread back and unlock it, so the runtime may reuse it.
//
// If switching back fails the thread is never unlocked: when the
// goroutine exits, the runtime retires (terminates) a thread that is still
// locked, so no other goroutine ever runs in the wrong namespace. The same
// holds when the function itself moves the thread (Locked: creating a
// namespace with unshare).
//
// Sockets and netlink handles opened inside the function stay in the
// namespace they were opened in after the thread moves back.
//
// The package imports nothing of epconsole's.
package netnsx

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Locked runs fn on a locked OS thread of its own and then returns the
// thread to the network namespace it started in, whatever namespace fn
// moved it to (netns.New, netns.Set). It unlocks the thread only when that
// worked; otherwise the thread is retired.
func Locked(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			// The thread's namespace is unknown: retire it.
			errc <- fmt.Errorf("reading the thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if inNamespace(orig) {
			// Never moved (Do into the namespace it was in): no setns,
			// which needs CAP_SYS_ADMIN.
			runtime.UnlockOSThread()
			errc <- ferr
			return
		}
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread is retired when this goroutine ends.
			errc <- fmt.Errorf("returning to the original network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Do runs fn on a locked OS thread inside the namespace ns (see the
// package policy). ns stays owned by the caller.
func Do(ns netns.NsHandle, fn func() error) error {
	return Locked(func() error {
		if inNamespace(ns) {
			// Already there (the caller's own namespace): a daemon
			// without CAP_SYS_ADMIN, as the systemd unit runs it, may not
			// setns even into the namespace it is in.
			return fn()
		}
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("entering network namespace: %w", err)
		}
		return fn()
	})
}

// DoPath runs fn inside the namespace bound at path (/run/netns/NAME,
// /proc/PID/ns/net), as Do.
func DoPath(path string, fn func() error) error {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer h.Close()
	return Do(h, fn)
}

// Current reports whether ns is the namespace the process's threads are
// in (read on a locked thread of its own). A caller that opens a netlink
// or nftables connection "at" ns uses a plain one then: connecting at a
// namespace setns()s, which needs CAP_SYS_ADMIN even into one's own.
func Current(ns netns.NsHandle) bool {
	var same bool
	_ = Locked(func() error {
		same = inNamespace(ns)
		return nil
	})
	return same
}

// inNamespace reports whether the calling thread is in the network
// namespace ns.
func inNamespace(ns netns.NsHandle) bool {
	cur, err := netns.Get()
	if err != nil {
		return false
	}
	defer cur.Close()
	return cur.Equal(ns)
}
