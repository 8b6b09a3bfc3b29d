package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Announcement defaults: how many gratuitous ARPs / unsolicited NAs Add
// sends, and how far apart.
const (
	DefaultAnnounceCount    = 3
	DefaultAnnounceInterval = 100 * time.Millisecond
)

// VIP puts the virtual IP on an interface of one network namespace, takes
// it off, and announces it: gratuitous ARP for IPv4, unsolicited neighbour
// advertisement for IPv6. It knows nothing about elections; the cluster
// decides when to call it. Add and Remove are idempotent. Methods are safe
// for concurrent use.
type VIP struct {
	ns       netNS
	log      *slog.Logger
	count    int
	interval time.Duration
	wg       sync.WaitGroup // announcement repeats

	mu sync.Mutex
	// gate, when set, must hold before each repeat of an announcement
	// (SetAnnounceGate); repeats holds the cancel of each address's
	// running repeats, ended by Remove.
	gate    func() bool
	repeats map[netip.Addr]context.CancelFunc
}

// SetAnnounceGate makes the background repeats of an announcement go out
// only while mayAnnounce reports true; the daemon passes its owner lease's
// Held, so that a process paused between two repeats (a stopped VM) does
// not announce a VIP whose lease ran out meanwhile: gratuitous ARPs leave
// on a packet socket, which the lease's arp table never sees.
func (v *VIP) SetAnnounceGate(mayAnnounce func() bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gate = mayAnnounce
}

// mayRepeat reports whether a repeat may go out now.
func (v *VIP) mayRepeat() bool {
	v.mu.Lock()
	gate := v.gate
	v.mu.Unlock()
	return gate == nil || gate()
}

// repeating registers the repeats of addr's announcement and returns
// their context, ending any earlier repeats of addr.
func (v *VIP) repeating(ctx context.Context, addr netip.Addr) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithCancel(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	if prev := v.repeats[addr]; prev != nil {
		prev()
	}
	if v.repeats == nil {
		v.repeats = map[netip.Addr]context.CancelFunc{}
	}
	v.repeats[addr] = cancel
	return rctx, cancel
}

// stopRepeats ends the running repeats of addr's announcement.
func (v *VIP) stopRepeats(addr netip.Addr) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if cancel := v.repeats[addr]; cancel != nil {
		cancel()
		delete(v.repeats, addr)
	}
}

// NewVIP returns a VIP for the namespace given by the options (default:
// the calling process's namespace).
func NewVIP(opts ...Option) (*VIP, error) {
	o := buildOptions(opts)
	ns, err := openNetNS(o)
	if err != nil {
		return nil, err
	}
	return &VIP{ns: ns, log: o.log, count: DefaultAnnounceCount, interval: DefaultAnnounceInterval}, nil
}

// Close waits for announcement repeats still running (their contexts bound
// them) and releases the namespace handle if the VIP opened it. The address
// stays on the interface.
func (v *VIP) Close() error {
	v.wg.Wait()
	return v.ns.close()
}

func (v *VIP) handle() (*netlink.Handle, error) {
	var (
		h   *netlink.Handle
		err error
	)
	// A route socket only: the default handle opens a netfilter socket
	// too, whose close takes the namespace's nftables commit mutex and
	// waits for nf_tables' destroy work (an RCU grace period): 7-15 ms
	// measured when the daemon's commits run.
	if v.ns.fd >= 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(v.ns.fd), unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("opening rtnetlink handle: %w", err)
	}
	return h, nil
}

// vipAddr is the host prefix of addr: /32 or /128. An IPv6 VIP is added
// without DAD and deprecated (preferred lifetime 0, valid forever): it
// stays fully usable for traffic to it, but source address selection
// (RFC 6724 rule 3, before rule 8's longest match, which a /128 in the
// node's own /64 would always win) never picks it for connections the
// host starts, nor for the masquerade of local flows from the VIP. IPv4
// source selection prefers an address in the destination's subnet, which
// a /32 VIP never is (for other destinations than itself).
func vipAddr(addr netip.Addr) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(addr.BitLen(), addr.BitLen())}}
	if addr.Is6() {
		a.Flags = unix.IFA_F_NODAD
		a.PreferedLft, a.ValidLft = 0, infiniteLifetime
	}
	return a
}

// infiniteLifetime is INFINITY_LIFE_TIME of the kernel's address lifetimes.
const infiniteLifetime = 0xffffffff

func checkVIP(addr netip.Addr) (netip.Addr, error) {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() {
		return addr, fmt.Errorf("invalid VIP %v", addr)
	}
	return addr.WithZone(""), nil
}

// Add puts addr on iface as a /32 (IPv4, with arp_announce=2 set on the
// interface) or a /128 without duplicate address detection and deprecated
// (IPv6: never chosen as a source address), unless it is there already,
// then announces it: once before returning, and
// DefaultAnnounceCount-1 more times DefaultAnnounceInterval apart in the
// background while ctx lasts. Repeated calls are harmless and announce
// again (useful on takeover).
func (v *VIP) Add(ctx context.Context, iface string, addr netip.Addr) error {
	addr, err := v.addAddress(ctx, iface, addr)
	if err != nil {
		return err
	}
	return v.announce(ctx, iface, addr, v.count)
}

// AddAddress puts addr on iface as Add does, without announcing it: the
// heartbeat helper's claim adds the address, then sends one announcement
// (Announce) itself, and the daemon repeats it once it confirmed the
// claim.
func (v *VIP) AddAddress(ctx context.Context, iface string, addr netip.Addr) error {
	_, err := v.addAddress(ctx, iface, addr)
	return err
}

func (v *VIP) addAddress(ctx context.Context, iface string, addr netip.Addr) (netip.Addr, error) {
	addr, err := checkVIP(addr)
	if err != nil {
		return addr, err
	}
	if err := ctx.Err(); err != nil {
		return addr, err
	}
	h, err := v.handle()
	if err != nil {
		return addr, err
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return addr, fmt.Errorf("finding interface %s: %w", iface, err)
	}
	if addr.Is4() {
		// Never use the VIP as the source of ARP requests for other
		// addresses: peers would learn it from a node that may not own it.
		path := "/proc/sys/net/ipv4/conf/" + iface + "/arp_announce"
		if err := v.ns.do(func() error { return os.WriteFile(path, []byte("2"), 0o644) }); err != nil {
			return addr, fmt.Errorf("setting arp_announce on %s: %w", iface, err)
		}
	}
	cur, err := findAddr(h, link, addr)
	if err != nil {
		return addr, err
	}
	switch {
	case cur == nil:
		if err := h.AddrAdd(link, vipAddr(addr)); err != nil && !errors.Is(err, unix.EEXIST) {
			return addr, fmt.Errorf("adding %v to %s: %w", addr, iface, err)
		}
		v.log.Info("VIP added", "iface", iface, "vip", addr)
	case addr.Is6() && cur.Flags&unix.IFA_F_DEPRECATED == 0:
		// Put there by someone else (or an older version): deprecate it
		// in place, so that it is not picked as a source address.
		if err := h.AddrReplace(link, vipAddr(addr)); err != nil {
			return addr, fmt.Errorf("deprecating %v on %s: %w", addr, iface, err)
		}
		v.log.Info("VIP deprecated as a source address", "iface", iface, "vip", addr)
	}
	return addr, nil
}

// Remove takes addr off iface and ends the repeats of its announcement.
// Removing an absent address is not an error.
func (v *VIP) Remove(ctx context.Context, iface string, addr netip.Addr) error {
	addr, err := checkVIP(addr)
	if err != nil {
		return err
	}
	v.stopRepeats(addr)
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := v.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("finding interface %s: %w", iface, err)
	}
	has, err := hasAddr(h, link, addr)
	if err != nil || !has {
		return err
	}
	if err := h.AddrDel(link, vipAddr(addr)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing %v from %s: %w", addr, iface, err)
	}
	v.log.Info("VIP removed", "iface", iface, "vip", addr)
	return nil
}

// Has reports whether addr is on iface (with any prefix length).
func (v *VIP) Has(ctx context.Context, iface string, addr netip.Addr) (bool, error) {
	addr, err := checkVIP(addr)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	h, err := v.handle()
	if err != nil {
		return false, err
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return false, fmt.Errorf("finding interface %s: %w", iface, err)
	}
	return hasAddr(h, link, addr)
}

func hasAddr(h *netlink.Handle, link netlink.Link, addr netip.Addr) (bool, error) {
	a, err := findAddr(h, link, addr)
	return a != nil, err
}

// findAddr returns addr as it is on link (any prefix length), or nil.
func findAddr(h *netlink.Handle, link netlink.Link, addr netip.Addr) (*netlink.Addr, error) {
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(link, fam)
	if err != nil {
		return nil, fmt.Errorf("listing addresses of %s: %w", link.Attrs().Name, err)
	}
	for i, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == addr {
			return &addrs[i], nil
		}
	}
	return nil, nil
}

// Announce sends one gratuitous ARP (IPv4) or unsolicited neighbour
// advertisement (IPv6) for addr on iface now. Interfaces without an
// Ethernet address (loopback, tunnels) are skipped.
func (v *VIP) Announce(ctx context.Context, iface string, addr netip.Addr) error {
	addr, err := checkVIP(addr)
	if err != nil {
		return err
	}
	return v.announce(ctx, iface, addr, 1)
}

// announce sends the first announcement now and count-1 more in the
// background, bounded by ctx, by Remove and by the announce gate.
func (v *VIP) announce(ctx context.Context, iface string, addr netip.Addr, count int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a, err := v.openAnnouncer(iface, addr)
	if err != nil || a == nil {
		return err
	}
	if err := a.send(); err != nil {
		a.close()
		return fmt.Errorf("announcing %v on %s: %w", addr, iface, err)
	}
	v.log.Debug("VIP announced", "iface", iface, "vip", addr)
	if count <= 1 {
		a.close()
		return nil
	}
	rctx, cancel := v.repeating(ctx, addr)
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		defer cancel()
		defer a.close()
		t := time.NewTicker(v.interval)
		defer t.Stop()
		for range count - 1 {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			if rctx.Err() != nil || !v.mayRepeat() {
				v.log.Debug("VIP announcement repeats stopped: the owner lease is not held", "iface", iface, "vip", addr)
				return
			}
			if err := a.send(); err != nil {
				v.log.Warn("VIP announcement failed", "iface", iface, "vip", addr, "err", err)
				return
			}
		}
	}()
	return nil
}

// announcer holds a socket that sends one kind of announcement.
type announcer struct {
	send  func() error
	close func()
}

// openAnnouncer opens the announcement socket. Raw sockets belong to the
// namespace of the thread that creates them, so it is created (and the
// interface looked up) on a thread inside the namespace. It returns nil
// for interfaces without an Ethernet address.
func (v *VIP) openAnnouncer(iface string, addr netip.Addr) (*announcer, error) {
	var a *announcer
	err := v.ns.do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("finding interface %s: %w", iface, err)
		}
		if len(ifi.HardwareAddr) != 6 {
			return nil
		}
		if addr.Is4() {
			a, err = arpAnnouncer(ifi, addr)
		} else {
			a, err = ndpAnnouncer(ifi, addr)
		}
		return err
	})
	if a == nil && err == nil {
		v.log.Debug("VIP not announced: interface has no Ethernet address", "iface", iface, "vip", addr)
	}
	return a, err
}

// arpAnnouncer sends gratuitous ARP requests (sender and target address
// both the VIP, to the broadcast address), as keepalived does.
func arpAnnouncer(ifi *net.Interface, addr netip.Addr) (*announcer, error) {
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, fmt.Errorf("opening ARP socket on %s: %w", ifi.Name, err)
	}
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, addr, ethernet.Broadcast, addr)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &announcer{
		send:  func() error { return c.WriteTo(p, ethernet.Broadcast) },
		close: func() { c.Close() },
	}, nil
}

// ndpAnnouncer sends unsolicited neighbour advertisements (override set,
// target link-layer address option) from the VIP to all nodes.
func ndpAnnouncer(ifi *net.Interface, addr netip.Addr) (*announcer, error) {
	// ndp sends with the interface's name as the destination zone, and Go
	// resolves a zone name when sending, in the namespace of whatever thread
	// sends (the root namespace's eth0 is another interface). A name that is
	// the index itself resolves the same everywhere.
	byIndex := *ifi
	byIndex.Name = strconv.Itoa(ifi.Index)
	c, _, err := ndp.Listen(&byIndex, ndp.Addr(addr.String()))
	if err != nil {
		return nil, fmt.Errorf("opening NDP socket on %s: %w", ifi.Name, err)
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
	}
	return &announcer{
		send:  func() error { return c.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes()) },
		close: func() { c.Close() },
	}, nil
}

// Announcer sends the announcement of one VIP on one interface from a
// socket opened once: the heartbeat helper opens it at its start, so that
// its claim announces at once. An IPv6 announcer needs the VIP on the host
// (its socket is bound to it), so the helper opens that one at the claim.
type Announcer struct{ a *announcer }

// OpenAnnouncer opens an Announcer for addr on iface (one that sends
// nothing on an interface without an Ethernet address).
func (v *VIP) OpenAnnouncer(iface string, addr netip.Addr) (*Announcer, error) {
	addr, err := checkVIP(addr)
	if err != nil {
		return nil, err
	}
	a, err := v.openAnnouncer(iface, addr)
	if err != nil {
		return nil, err
	}
	return &Announcer{a: a}, nil
}

// Send sends one gratuitous ARP / unsolicited NA.
func (a *Announcer) Send() error {
	if a == nil || a.a == nil {
		return nil
	}
	return a.a.send()
}

// Close closes the socket.
func (a *Announcer) Close() {
	if a != nil && a.a != nil {
		a.a.close()
	}
}
