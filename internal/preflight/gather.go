package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/netnsx"
)

// ownTablePrefix starts the names of epconsole's own tables, which the
// checks ignore.
const ownTablePrefix = "epconsole"

// Gather reads the facts of the namespace named by o. It only reads:
// sysctls and /proc files from a thread that joined the namespace (see
// netnsx for the thread policy), links, addresses and routes over
// netlink, and the nftables ruleset (read-only listing). What cannot be
// read is recorded in Facts.Errors.
func Gather(ctx context.Context, o Options) Facts {
	f := Facts{
		Sysctls:       map[string]string{},
		Links:         map[string]Link{},
		BackendRoutes: map[netip.Addr]string{},
		VIPSubnets:    map[netip.Addr]VIPSubnet{},
		Errors:        map[string]string{},
	}
	ns, closeNs, err := openNetns(o)
	if err != nil {
		f.Errors["netns"] = err.Error()
		return f
	}
	defer closeNs()

	if err := ctx.Err(); err != nil {
		f.Errors["netns"] = err.Error()
		return f
	}
	var routeIfaces []string
	if err := gatherNetlink(ns, o, &f); err != nil {
		f.Errors["link"] = err.Error()
	}
	for _, i := range f.BackendRoutes {
		routeIfaces = append(routeIfaces, i)
	}
	sort.Strings(routeIfaces)

	if err := ctx.Err(); err != nil {
		f.Errors["sysctl"] = err.Error()
		return f
	}
	if err := gatherProc(ns, sysctlKeys(o, routeIfaces), &f); err != nil {
		f.Errors["sysctl"] = err.Error()
	}

	if err := ctx.Err(); err != nil {
		f.Errors["nftables"] = err.Error()
		return f
	}
	tables, err := gatherTables(ns)
	if err != nil {
		f.Errors["nftables"] = err.Error()
	} else {
		f.Tables, f.TablesRead = tables, true
	}
	return f
}

// openNetns resolves o's namespace to a handle and a function releasing it.
func openNetns(o Options) (netns.NsHandle, func(), error) {
	switch {
	case o.NetnsPath != "":
		h, err := netns.GetFromPath(o.NetnsPath)
		if err != nil {
			return 0, nil, fmt.Errorf("opening network namespace %s: %w", o.NetnsPath, err)
		}
		return h, func() { h.Close() }, nil
	case o.NetnsFd > 0:
		return netns.NsHandle(o.NetnsFd), func() {}, nil
	}
	// The process's own namespace: every thread of a daemon that never
	// switches namespaces is in it; ask the main thread's view.
	h, err := netns.GetFromPath(fmt.Sprintf("/proc/%d/ns/net", os.Getpid()))
	if err != nil {
		return 0, nil, fmt.Errorf("opening own network namespace: %w", err)
	}
	return h, func() { h.Close() }, nil
}

// gatherProc reads the sysctls in keys and the iptables-legacy table
// lists, as seen from ns. A missing key is left out (the conntrack keys
// exist only once nf_conntrack is loaded).
func gatherProc(ns netns.NsHandle, keys []string, f *Facts) error {
	sysctls := map[string]string{}
	var legacy []string
	err := netnsx.Do(ns, func() error {
		var errs []error
		for _, k := range keys {
			b, err := os.ReadFile(filepath.Join("/proc/sys", k))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("reading %s: %w", SysctlName(k), err))
				continue
			}
			sysctls[k] = strings.TrimSpace(string(b))
		}
		// /proc/thread-self/net is this thread's namespace (/proc/net
		// follows the thread-group leader's).
		for _, l := range []struct{ file, family string }{{"ip_tables_names", "ip"}, {"ip6_tables_names", "ip6"}} {
			b, err := os.ReadFile(filepath.Join("/proc/thread-self/net", l.file))
			if err != nil {
				continue // module not loaded: no legacy tables
			}
			for _, name := range strings.Fields(string(b)) {
				legacy = append(legacy, l.family+" "+name)
			}
		}
		return errors.Join(errs...)
	})
	for k, v := range sysctls {
		f.Sysctls[k] = v
	}
	sort.Strings(legacy)
	f.LegacyTables = legacy
	return err
}

// gatherNetlink reads the VIP interfaces and the routes to the backends.
func gatherNetlink(ns netns.NsHandle, o Options, f *Facts) error {
	var h *netlink.Handle
	var err error
	if netnsx.Current(ns) {
		h, err = netlink.NewHandle() // no setns: a daemon without CAP_SYS_ADMIN reads its own namespace
	} else {
		h, err = netlink.NewHandleAt(ns)
	}
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()
	var errs []error
	for _, v := range o.VIPs {
		if v.Interface == "" {
			continue
		}
		if _, done := f.Links[v.Interface]; done {
			continue
		}
		l, err := readLink(h, v.Interface)
		if err != nil {
			errs = append(errs, err)
		}
		f.Links[v.Interface] = l
		if !l.Exists && err == nil {
			if sn, ok := vipSubnet(h, v.Address.Unmap()); ok {
				f.VIPSubnets[v.Address.Unmap()] = sn
			}
		}
	}
	for _, b := range o.Backends {
		a := b.Addr().Unmap()
		rs, err := h.RouteGet(a.AsSlice())
		if err != nil || len(rs) == 0 {
			f.BackendRoutes[a] = ""
			continue
		}
		name := ""
		if l, err := h.LinkByIndex(rs[0].LinkIndex); err == nil {
			name = l.Attrs().Name
		}
		f.BackendRoutes[a] = name
	}
	return errors.Join(errs...)
}

// vipSubnet finds the interface with an address whose prefix holds vip
// (not the VIP itself, not link-local): where the VIP belongs.
func vipSubnet(h *netlink.Handle, vip netip.Addr) (VIPSubnet, bool) {
	fam := netlink.FAMILY_V4
	if vip.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(nil, fam)
	if err != nil {
		return VIPSubnet{}, false
	}
	for _, ad := range addrs {
		if ad.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		ones, _ := ad.Mask.Size()
		p := netip.PrefixFrom(ip.Unmap(), ones)
		if p.Addr() == vip || p.Addr().IsLinkLocalUnicast() || !p.Masked().Contains(vip) {
			continue
		}
		l, err := h.LinkByIndex(ad.LinkIndex)
		if err != nil {
			continue
		}
		return VIPSubnet{Interface: l.Attrs().Name, Prefix: p}, true
	}
	return VIPSubnet{}, false
}

func readLink(h *netlink.Handle, name string) (Link, error) {
	out := Link{Name: name}
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return out, nil
		}
		return out, fmt.Errorf("link %s: %w", name, err)
	}
	out.Exists = true
	a := l.Attrs()
	out.Up = a.RawFlags&unix.IFF_UP != 0
	out.Carrier = a.RawFlags&unix.IFF_LOWER_UP != 0
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return out, fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		ones, _ := ad.Mask.Size()
		out.Addrs = append(out.Addrs, LinkAddr{
			Prefix:  netip.PrefixFrom(ip.Unmap(), ones),
			Dynamic: ip.Is6() && !ip.Is4In6() && ad.Flags&unix.IFA_F_PERMANENT == 0,
		})
	}
	routes, err := h.RouteList(l, netlink.FAMILY_V6)
	if err != nil {
		return out, fmt.Errorf("routes of %s: %w", name, err)
	}
	for _, r := range routes {
		if r.Protocol == unix.RTPROT_RA {
			out.RARoutes++
		}
	}
	return out, nil
}

// gatherTables lists the foreign nftables tables with their chains and
// rules (read-only).
func gatherTables(ns netns.NsHandle) ([]Table, error) {
	var opts []nftables.ConnOption
	if !netnsx.Current(ns) { // no setns into the own namespace (CAP_SYS_ADMIN)
		opts = append(opts, nftables.WithNetNSFd(int(ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	defer c.CloseLasting()
	tables, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("listing nftables chains: %w", err)
	}
	var out []Table
	for _, t := range tables {
		if strings.HasPrefix(t.Name, ownTablePrefix) {
			continue
		}
		ot := Table{Family: familyName(t.Family), Name: t.Name}
		if ot.Sets, err = readSets(c, t); err != nil {
			return nil, fmt.Errorf("listing sets of %s %s: %w", ot.Family, ot.Name, err)
		}
		for _, ch := range chains {
			if ch.Table == nil || ch.Table.Name != t.Name || ch.Table.Family != t.Family {
				continue
			}
			oc := Chain{Name: ch.Name, Type: string(ch.Type)}
			if ch.Hooknum != nil {
				oc.Hook = hookName(t.Family, *ch.Hooknum)
				oc.Policy = "accept"
				if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
					oc.Policy = "drop"
				}
				if ch.Priority != nil {
					oc.Priority = int32(*ch.Priority)
				}
			} else {
				oc.Type = ""
			}
			rules, err := c.GetRules(t, ch)
			if err != nil {
				return nil, fmt.Errorf("listing rules of %s: %w", ot.Ref(ch.Name), err)
			}
			for _, r := range rules {
				oc.Rules = append(oc.Rules, DecodeRuleSets(r.Handle, r.Exprs, ot.Sets))
			}
			ot.Chains = append(ot.Chains, oc)
		}
		out = append(out, ot)
	}
	return out, nil
}

// readSets reads t's plain sets (not maps, not concatenations) with their
// elements; the others stay undecidable.
func readSets(c *nftables.Conn, t *nftables.Table) (map[string]*SetFacts, error) {
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, err
	}
	out := map[string]*SetFacts{}
	for _, s := range sets {
		if s.IsMap || s.Concatenation {
			continue
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("elements of set %s: %w", s.Name, err)
		}
		out[s.Name] = SetFromElements(s.Name, s.Interval, elems)
	}
	return out, nil
}

// SetFromElements turns a set's elements as the kernel lists them into
// values, or for an interval set into inclusive ranges: each start
// element is followed (in key order) by an end element holding the first
// key after the range.
func SetFromElements(name string, interval bool, elems []nftables.SetElement) *SetFacts {
	s := &SetFacts{Name: name}
	if !interval {
		for _, e := range elems {
			s.Values = append(s.Values, e.Key)
		}
		return s
	}
	sorted := slices.Clone(elems)
	slices.SortStableFunc(sorted, func(a, b nftables.SetElement) int { return bytes.Compare(a.Key, b.Key) })
	for i, e := range sorted {
		if e.IntervalEnd {
			continue
		}
		if len(e.KeyEnd) > 0 {
			s.Ranges = append(s.Ranges, [2][]byte{e.Key, e.KeyEnd})
			continue
		}
		end := bytes.Repeat([]byte{0xff}, len(e.Key))
		if i+1 < len(sorted) && sorted[i+1].IntervalEnd {
			end = minusOne(sorted[i+1].Key)
		}
		s.Ranges = append(s.Ranges, [2][]byte{e.Key, end})
	}
	return s
}

// minusOne returns the big-endian number b - 1 (b > 0).
func minusOne(b []byte) []byte {
	out := slices.Clone(b)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprintf("family%d", f)
}

func hookName(f nftables.TableFamily, h nftables.ChainHook) string {
	if f == nftables.TableFamilyNetdev {
		switch h {
		case *nftables.ChainHookIngress:
			return "ingress"
		case *nftables.ChainHookEgress:
			return "egress"
		}
	}
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprintf("hook%d", h)
}
