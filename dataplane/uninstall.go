package dataplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
)

// Removed is what Uninstall took out of the kernel.
type Removed struct {
	// Tables are the nftables tables deleted, as "FAMILY NAME" ("inet
	// epconsole", "arp epconsole", "ip6 epconsole-lease").
	Tables []string
	// VIPs are the VIP addresses taken off their interfaces.
	VIPs []ServiceVIP
	// Flows counts the conntrack entries deleted: connections to a VIP's
	// service port that were DNATed to a backend.
	Flows int
}

// Empty reports whether Uninstall found nothing to remove.
func (r Removed) Empty() bool {
	return len(r.Tables) == 0 && len(r.VIPs) == 0 && r.Flows == 0
}

// OwnTable reports whether an nftables table of that name is epconsole's:
// TableName itself or a name starting with TableName + "-" (LeaseTable6).
// Uninstall deletes these tables, in every family, and no other.
func OwnTable(name string) bool {
	return name == TableName || strings.HasPrefix(name, TableName+"-")
}

// Uninstall removes from the namespace given by the options (default: the
// calling process's) what a daemon with vips leaves in the kernel: each VIP
// address on its interface (only these addresses; an absent address or
// interface is nothing to remove), epconsole's nftables tables in every
// family (OwnTable: the dataplane's tables, the arp owner-lease table and
// the ip6 lease table; no other table), and the conntrack entries of
// connections to a VIP's service port that were DNATed to a backend. It
// goes on after an error and returns what it removed with every error
// joined. Call it only when no daemon runs in that namespace.
func Uninstall(ctx context.Context, vips []ServiceVIP, opts ...Option) (Removed, error) {
	var (
		r    Removed
		errs []error
	)
	o := buildOptions(opts)
	ns, err := openNetNS(o)
	if err != nil {
		return r, err
	}
	defer ns.close()
	byFd := []Option{WithNetNSFd(ns.fd), WithLogger(o.log)}

	r.VIPs, err = removeVIPs(ctx, vips, byFd)
	errs = append(errs, err)
	r.Tables, err = removeOwnTables(ns)
	errs = append(errs, err)
	r.Flows, err = removeVIPFlows(ctx, vips, byFd)
	errs = append(errs, err)
	return r, errors.Join(errs...)
}

// removeVIPs takes each VIP off its interface where it is.
func removeVIPs(ctx context.Context, vips []ServiceVIP, opts []Option) ([]ServiceVIP, error) {
	v, err := NewVIP(opts...)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	var (
		removed []ServiceVIP
		errs    []error
	)
	for _, sv := range vips {
		has, err := v.Has(ctx, sv.Interface, sv.Addr)
		var notFound netlink.LinkNotFoundError
		switch {
		case errors.As(err, &notFound):
			continue // no interface, no address on it
		case err != nil:
			errs = append(errs, fmt.Errorf("VIP %v on %s: %w", sv.Addr, sv.Interface, err))
			continue
		case !has:
			continue
		}
		if err := v.Remove(ctx, sv.Interface, sv.Addr); err != nil {
			errs = append(errs, fmt.Errorf("VIP %v on %s: %w", sv.Addr, sv.Interface, err))
			continue
		}
		removed = append(removed, sv)
	}
	return removed, errors.Join(errs...)
}

// removeOwnTables deletes every table OwnTable names, in every family, in
// one batch, and returns their names as "FAMILY NAME".
func removeOwnTables(ns netNS) ([]string, error) {
	opts := []nftables.ConnOption{}
	if ns.fd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(ns.fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	tables, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("listing nftables tables: %w", err)
	}
	var names []string
	for _, t := range tables {
		if !OwnTable(t.Name) {
			continue
		}
		c.DelTable(t)
		names = append(names, tableFamilyName(t.Family)+" "+t.Name)
	}
	if len(names) == 0 {
		return nil, nil
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("deleting tables %s: %w", strings.Join(names, ", "), err)
	}
	slices.Sort(names)
	return names, nil
}

// tableFamilyName is the nft keyword of a table family.
func tableFamilyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return fmt.Sprintf("family-%d", f)
}

// removeVIPFlows deletes the TCP conntrack entries whose original
// destination is a VIP's service address and port and whose reply comes
// from another address (DNATed to a backend).
func removeVIPFlows(ctx context.Context, vips []ServiceVIP, opts []Option) (int, error) {
	if len(vips) == 0 {
		return 0, nil
	}
	ct, err := NewConntrack(opts...)
	if err != nil {
		return 0, err
	}
	defer ct.Close()
	services := AddrPorts(vips)
	return ct.deleteMatching(ctx, func(f conntrack.Flow) bool {
		return slices.Contains(services, origDst(f)) && replySrc(f) != origDst(f)
	})
}
