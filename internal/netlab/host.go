package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is one network namespace attached to the lab's switch.
type Host struct {
	lab          *Lab
	name         string
	role         Role
	index        int
	ns           string
	addr4, addr6 netip.Addr
}

// Name returns the host's name in the spec (e.g. "lb1").
func (h *Host) Name() string { return h.name }

// Role returns the host's role.
func (h *Host) Role() Role { return h.role }

// Index returns the host part of its addresses.
func (h *Host) Index() int { return h.index }

// Namespace returns the namespace name ("<prefix>-<host>"), usable with
// `ip netns exec`.
func (h *Host) Namespace() string { return h.ns }

// NsPath returns the namespace file (/run/netns/<name>).
func (h *Host) NsPath() string { return filepath.Join(netnsDir, h.ns) }

// IPv4 returns the host's IPv4 address on eth0.
func (h *Host) IPv4() netip.Addr { return h.addr4 }

// IPv6 returns the host's IPv6 address on eth0.
func (h *Host) IPv6() netip.Addr { return h.addr6 }

// Lab returns the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// switchPort is the name of the host's veth end inside the switch.
func (h *Host) switchPort() string { return "v" + h.name }

// Command returns a command that runs argv inside the host's namespace
// (`ip netns exec`) in a process group of its own that is killed when ctx
// ends or at Lab.Close. (It sets no Pdeathsig: that signal follows the OS
// thread that calls Start, which Go may retire at any time.)
func (h *Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// killGroup signals the process group led by pid; a gone group is fine.
func killGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// OpenNetNS opens the host's namespace; the caller closes the handle. Use
// int(handle) with nftables.WithNetNSFd or netlink.NewHandleAt.
func (h *Host) OpenNetNS() (netns.NsHandle, error) {
	ns, err := netns.GetFromPath(h.NsPath())
	if err != nil {
		return netns.None(), fmt.Errorf("opening namespace %s: %w", h.ns, err)
	}
	return ns, nil
}

// NetlinkHandle returns a netlink (route) handle inside the host's
// namespace; the caller closes it.
func (h *Host) NetlinkHandle() (*netlink.Handle, error) {
	ns, err := h.OpenNetNS()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", h.ns, err)
	}
	return nh, nil
}

// SetCable sets the switch end of the host's veth up or down: the host
// keeps its addresses and sees its eth0 lose carrier, as with a pulled
// cable or a dead switch port.
func (h *Host) SetCable(up bool) error {
	ns, err := netns.GetFromName(h.lab.SwitchNamespace())
	if err != nil {
		return fmt.Errorf("opening switch namespace: %w", err)
	}
	defer ns.Close()
	sw, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink handle in switch: %w", err)
	}
	defer sw.Close()
	return setLink(sw, h.switchPort(), up)
}

// SetLink sets the host's own eth0 administratively up or down. The kernel
// drops IPv6 addresses of a link that goes down; SetLink(true) adds the
// host's addresses back (other addresses, such as a VIP, are the owner's
// business).
func (h *Host) SetLink(up bool) error {
	nh, err := h.NetlinkHandle()
	if err != nil {
		return err
	}
	defer nh.Close()
	if err := setLink(nh, HostLink, up); err != nil {
		return err
	}
	if up {
		return h.addAddrs(nh)
	}
	return nil
}

func setLink(nh *netlink.Handle, name string, up bool) error {
	link, err := nh.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if up {
		err = nh.LinkSetUp(link)
	} else {
		err = nh.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("setting %s up=%v: %w", name, up, err)
	}
	return nil
}

// addAddrs puts the host's addresses on eth0 (IPv6 without DAD, usable at
// once); addresses already present are fine.
func (h *Host) addAddrs(nh *netlink.Handle) error {
	link, err := nh.LinkByName(HostLink)
	if err != nil {
		return fmt.Errorf("finding %s in %s: %w", HostLink, h.ns, err)
	}
	addrs := []*netlink.Addr{
		{IPNet: &net.IPNet{IP: h.addr4.AsSlice(), Mask: net.CIDRMask(h.lab.spec.IPv4.Bits(), 32)}},
		{IPNet: &net.IPNet{IP: h.addr6.AsSlice(), Mask: net.CIDRMask(h.lab.spec.IPv6.Bits(), 128)}, Flags: unix.IFA_F_NODAD},
	}
	for _, a := range addrs {
		if err := nh.AddrAdd(link, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding %v to %s in %s: %w", a.IPNet, HostLink, h.ns, err)
		}
	}
	return nil
}

// WriteSysctl writes /proc/sys/<key> (e.g. "net/ipv4/ip_forward") inside
// the host's namespace, from a thread that has joined it.
func (h *Host) WriteSysctl(key, value string) error { return writeSysctl(h.NsPath(), key, value) }

// ReadSysctl reads /proc/sys/<key> inside the host's namespace.
func (h *Host) ReadSysctl(key string) (string, error) { return readSysctl(h.NsPath(), key) }
