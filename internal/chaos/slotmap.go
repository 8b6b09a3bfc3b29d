package chaos

// The slot-map invariant: a backend that every running peer sees up is in
// every running peer's slot map (the nftables map the DNAT draws from)
// within one probe interval.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/lab"
)

// slotBackends returns the IPv4 backend addresses in peer's slot map.
func slotBackends(l *lab.Lab, peer string) (map[netip.Addr]bool, error) {
	h := l.Net().Host(peer)
	ns, err := h.OpenNetNS()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return nil, fmt.Errorf("nftables in %s: %w", h.Namespace(), err)
	}
	defer c.CloseLasting()
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: dataplane.TableName}
	set, err := c.GetSetByName(t, dataplane.SlotMapName)
	if err != nil {
		return nil, fmt.Errorf("reading the slot map of %s: %w", peer, err)
	}
	els, err := c.GetSetElements(set)
	if err != nil {
		return nil, fmt.Errorf("reading the slot map of %s: %w", peer, err)
	}
	out := map[netip.Addr]bool{}
	for _, e := range els {
		if len(e.Val) >= 4 {
			out[netip.AddrFrom4([4]byte(e.Val[:4]))] = true
		}
	}
	return out, nil
}

// upEverywhere returns the IPv4 backends that every running peer's own
// view shows up, by address, with their names.
func upEverywhere(ctx context.Context, l *lab.Lab, running []string) (map[netip.Addr]string, error) {
	views := map[string]map[string]string{} // backend -> peer -> state
	addrs := map[string]netip.Addr{}
	for _, p := range running {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := l.Status(qctx, p)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", p, err)
		}
		for _, b := range s.Backends {
			a, err := netip.ParseAddr(b.Address)
			if err != nil || !a.Is4() {
				continue
			}
			addrs[b.Name] = a
			for _, v := range b.Views {
				if v.Peer == p {
					if views[b.Name] == nil {
						views[b.Name] = map[string]string{}
					}
					views[b.Name][p] = v.State
				}
			}
		}
	}
	out := map[netip.Addr]string{}
	for name, a := range addrs {
		ok := true
		for _, p := range running {
			ok = ok && views[name][p] == "up"
		}
		if ok {
			out[a] = name
		}
	}
	return out, nil
}

// checkSlotMaps samples, every 100 ms for window, whether each backend up
// in every running peer's view is in every running peer's slot map; a
// backend missing from one for longer than bound (continuously) is a
// violation.
func checkSlotMaps(ctx context.Context, l *lab.Lab, step int, window, bound time.Duration) []Violation {
	var running []string
	for _, p := range l.Peers() {
		if l.DaemonRunning(p) {
			running = append(running, p)
		}
	}
	missingSince := map[string]time.Time{} // "peer/backend"
	reported := map[string]bool{}
	var out []Violation
	end := time.Now().Add(window)
	for time.Now().Before(end) && ctx.Err() == nil {
		up, err := upEverywhere(ctx, l, running)
		if err == nil {
			now := time.Now()
			seen := map[string]bool{}
			for _, p := range running {
				m, err := slotBackends(l, p)
				if err != nil {
					continue
				}
				for a, name := range up {
					key := p + "/" + name
					if m[a] {
						continue
					}
					seen[key] = true
					if _, ok := missingSince[key]; !ok {
						missingSince[key] = now
					}
					if d := now.Sub(missingSince[key]); d > bound && !reported[key] {
						reported[key] = true
						out = append(out, Violation{Step: step, Invariant: InvSlotMap, Detail: fmt.Sprintf(
							"%s is up in every peer's view (%v) but missing from %s's slot map for %s (bound %s)",
							name, running, p, d.Round(time.Millisecond), bound)})
					}
				}
			}
			for k := range missingSince {
				if !seen[k] {
					delete(missingSince, k)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.SortFunc(out, func(a, b Violation) int { return compareStrings(a.Detail, b.Detail) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
