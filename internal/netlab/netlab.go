// Package netlab builds test hosts out of Linux network namespaces for
// epconsole's kernel tests, benchmarks and the demo, `epconsole-lab`.
//
// A Lab is one L2 segment: a switch namespace ("<prefix>-sw") holding a
// bridge, and one namespace per host ("<prefix>-<host>", named under
// /run/netns so `ip netns exec` works) whose eth0 is a veth into that
// bridge, with an IPv4 address from a /24 inside 198.18.0.0/15 and an IPv6
// address (NODAD) from a /64 inside fd00:198:18::/48. Nothing is created
// in the root namespace. LB hosts forward (IPv4 and IPv6).
//
// Every server or client living in a host is its own process (a network
// namespace belongs to a thread, Go moves goroutines between threads): the
// running binary re-executes itself with `ip netns exec`, and RunChild,
// called first thing from TestMain or main, runs the requested role there.
// The roles are a stand-in apiserver (StartStandin), a load client of fresh
// TLS connections (RunClient), one long-lived stream (StartStream), a
// TCP connect loop measuring dark time (RunTCPConnect), a member of a real
// etcd cluster (Lab.StartEtcd: embedded etcd, TLS with client certificates
// from the lab CA, data under the lab directory) and a one-shot etcd
// status request (EtcdCluster.Status).
//
// Sysctls of a host (forwarding on LB hosts, Host.WriteSysctl) are
// written through /proc/sys from a locked thread that has joined the
// host's namespace; /proc/sys/net resolves against the namespace of the
// thread that opens it (checked in the tests with `ip netns exec ... cat`).
//
// Close kills every process of the lab (its own children by process group,
// then anything else left in its namespaces) and removes the namespaces;
// Cleanup does the same by prefix for a lab whose owner crashed.
package netlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/pki"
	"github.com/epconsole/epconsole/internal/testenv"
)

// ErrClosed is returned when a closed lab is asked to start something.
var ErrClosed = errors.New("netlab: lab is closed")

// bridgeName is the bridge inside the switch namespace.
const bridgeName = "br0"

// killWait bounds every wait for killed processes.
const killWait = 5 * time.Second

// Lab is a built topology. Its methods are safe for concurrent use.
type Lab struct {
	spec   Spec
	dir    string
	ownDir bool
	ca     *pki.CA
	caFile string
	vip4   netip.Addr
	vip6   netip.Addr
	hosts  []*Host

	mu         sync.Mutex
	namespaces []string // created by this lab, switch first
	procs      map[*proc]struct{}
	removeDirs []string // removed by Close even when the lab directory stays (etcd data)
	seq        int
	closed     bool

	closeOnce sync.Once
	closeErr  error
}

// Build creates the topology described by s. On error everything it
// created is removed again. Leftovers of an earlier run with the same
// prefix make it fail; Cleanup removes them.
func Build(ctx context.Context, s Spec) (*Lab, error) {
	if _, child := os.LookupEnv(envRole); child {
		// RunChild unsets it: this binary never called RunChild, and its
		// children would run the tests (and build labs) again.
		return nil, errors.New("netlab: this process is a netlab child that did not call netlab.RunChild; call it first in TestMain or main")
	}
	planned, err := plan(s)
	if err != nil {
		return nil, fmt.Errorf("netlab spec: %w", err)
	}
	if s.DNSName == "" {
		s.DNSName = "api." + s.Prefix + ".epconsole.test"
	}
	l := &Lab{
		spec:  s,
		vip4:  hostAddr4(s.IPv4, VIPIndex),
		vip6:  hostAddr6(s.IPv6, VIPIndex),
		procs: map[*proc]struct{}{},
	}
	ok := false
	defer func() {
		if !ok {
			_ = l.Close()
		}
	}()
	if err := l.makeDir(); err != nil {
		return nil, err
	}
	if l.ca, err = pki.NewCA("netlab " + s.Prefix + " CA"); err != nil {
		return nil, err
	}
	if l.caFile, _, err = l.ca.WriteFiles(filepath.Join(l.dir, "certs"), "ca"); err != nil {
		return nil, err
	}
	if err := ensureNetnsDir(); err != nil {
		return nil, err
	}
	left, err := namedNetns(s.Prefix)
	if err != nil {
		return nil, err
	}
	if len(left) > 0 {
		return nil, fmt.Errorf("namespaces %v are left from an earlier run with prefix %q; remove them with netlab.Cleanup (epconsole-lab down)", left, s.Prefix)
	}
	sw, err := l.buildSwitch()
	if err != nil {
		return nil, err
	}
	defer sw.Close()
	br, err := sw.LinkByName(bridgeName)
	if err != nil {
		return nil, fmt.Errorf("finding bridge: %w", err)
	}
	for _, ph := range planned {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("building lab %s: %w", s.Prefix, err)
		}
		h := &Host{lab: l, name: ph.Name, role: ph.Role, index: ph.Index, ns: s.Prefix + "-" + ph.Name, addr4: ph.Addr4, addr6: ph.Addr6}
		if err := l.buildHost(sw, br.Attrs().Index, h); err != nil {
			return nil, err
		}
		l.hosts = append(l.hosts, h)
	}
	ok = true
	return l, nil
}

func (l *Lab) makeDir() error {
	if l.spec.Dir != "" {
		l.dir = l.spec.Dir
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return fmt.Errorf("creating lab dir: %w", err)
		}
	} else {
		d, err := os.MkdirTemp("", "netlab-"+l.spec.Prefix+"-")
		if err != nil {
			return fmt.Errorf("creating lab dir: %w", err)
		}
		l.dir, l.ownDir = d, true
	}
	for _, sub := range []string{"certs", "sock", "logs"} {
		if err := os.MkdirAll(filepath.Join(l.dir, sub), 0o755); err != nil {
			return fmt.Errorf("creating lab dir: %w", err)
		}
	}
	// Unix socket paths are limited to 108 bytes.
	if n := len(filepath.Join(l.dir, "sock", "0123456789.sock")); n > 100 {
		return fmt.Errorf("lab dir %s is too long for unix socket paths", l.dir)
	}
	return nil
}

// addNamespace creates a named namespace and records it for Close.
func (l *Lab) addNamespace(name string) (netns.NsHandle, error) {
	if err := createNamedNetns(name); err != nil {
		return netns.None(), err
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, name)
	l.mu.Unlock()
	h, err := netns.GetFromName(name)
	if err != nil {
		return netns.None(), fmt.Errorf("opening namespace %s: %w", name, err)
	}
	return h, nil
}

// buildSwitch creates the switch namespace with its bridge and returns a
// netlink handle into it.
func (l *Lab) buildSwitch() (*netlink.Handle, error) {
	name := l.SwitchNamespace()
	ns, err := l.addNamespace(name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	if err := setUp(h, "lo"); err != nil {
		h.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}, MulticastSnooping: &off}
	if err := h.LinkAdd(br); err != nil {
		h.Close()
		return nil, fmt.Errorf("adding bridge in %s: %w", name, err)
	}
	if err := setUp(h, bridgeName); err != nil {
		h.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return h, nil
}

// buildHost creates the host's namespace, its veth into the bridge and its
// addresses.
func (l *Lab) buildHost(sw *netlink.Handle, brIndex int, h *Host) error {
	ns, err := l.addNamespace(h.ns)
	if err != nil {
		return err
	}
	defer ns.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: h.switchPort(), MasterIndex: brIndex},
		PeerName:      HostLink,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := sw.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding veth for %s: %w", h.ns, err)
	}
	if err := setUp(sw, h.switchPort()); err != nil {
		return fmt.Errorf("switch port of %s: %w", h.ns, err)
	}
	if h.role == RoleLB {
		for _, key := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			if err := writeSysctl(h.NsPath(), key, "1"); err != nil {
				return err
			}
		}
	}
	nh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", h.ns, err)
	}
	defer nh.Close()
	if err := setUp(nh, "lo"); err != nil {
		return fmt.Errorf("%s: %w", h.ns, err)
	}
	if err := h.addAddrs(nh); err != nil {
		return err
	}
	if err := setUp(nh, HostLink); err != nil {
		return fmt.Errorf("%s: %w", h.ns, err)
	}
	return nil
}

func setUp(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// New builds a lab for a test and removes it when the test ends (also on
// failure). It skips the test (or fails it under EPCONSOLE_REQUIRE_NETNS=1)
// when namespaces are unavailable, and first removes leftovers of a crashed
// earlier run with the same prefix.
func New(t testing.TB, s Spec) *Lab {
	t.Helper()
	testenv.NeedNetns(t)
	if err := Cleanup(s.Prefix); err != nil {
		t.Fatalf("netlab: removing leftovers: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Build(ctx, s)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab close: %v", err)
		}
	})
	return l
}

// Close kills the lab's processes (each child's process group, then any
// other process left in its namespaces), removes its namespaces (and with
// them every link) and its directory when the lab made it. Later calls
// return the first call's result.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	procs := make([]*proc, 0, len(l.procs))
	for p := range l.procs {
		procs = append(procs, p)
	}
	namespaces := slices.Clone(l.namespaces)
	l.mu.Unlock()

	// Newest first: load roles (clients, streams) are started after the
	// servers they talk to, so they die before they can see a server die
	// and report that as their result.
	slices.SortFunc(procs, func(a, b *proc) int { return cmp.Compare(b.seq, a.seq) })
	var errs []error
	for _, p := range procs {
		p.signal(unix.SIGKILL)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(killWait):
			errs = append(errs, fmt.Errorf("%s process %d did not exit after SIGKILL", p.role, p.cmd.Process.Pid))
		}
	}
	for _, ns := range namespaces {
		if err := killNetnsPids(filepath.Join(netnsDir, ns), killWait); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range slices.Backward(namespaces) {
		if err := deleteNamedNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	removeDirs := slices.Clone(l.removeDirs)
	l.mu.Unlock()
	for _, d := range removeDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", d, err))
		}
	}
	if l.ownDir && l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing lab dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes what a lab with this prefix left behind when its owner
// died: it kills every process in the namespaces named "<prefix>-*",
// removes those namespaces and the lab directories netlab-<prefix>-* under
// os.TempDir. It is what `epconsole-lab down` runs.
func Cleanup(prefix string) error {
	if err := ValidPrefix(prefix); err != nil {
		return err
	}
	names, err := namedNetns(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		if err := killNetnsPids(filepath.Join(netnsDir, ns), killWait); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range names {
		if err := deleteNamedNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "netlab-"+prefix+"-*"))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", d, err))
		}
	}
	if len(names) > 0 || len(dirs) > 0 {
		slog.Info("netlab: removed leftovers", "prefix", prefix, "namespaces", names, "dirs", dirs)
	}
	return errors.Join(errs...)
}

// Prefix returns the lab's name prefix.
func (l *Lab) Prefix() string { return l.spec.Prefix }

// SwitchNamespace returns the name of the namespace holding the bridge.
func (l *Lab) SwitchNamespace() string { return l.spec.Prefix + "-" + switchSuffix }

// Hosts returns the hosts in spec order.
func (l *Lab) Hosts() []*Host { return slices.Clone(l.hosts) }

// Host returns the named host, or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// HostsByRole returns the hosts of one role in spec order.
func (l *Lab) HostsByRole(r Role) []*Host {
	var out []*Host
	for _, h := range l.hosts {
		if h.role == r {
			out = append(out, h)
		}
	}
	return out
}

// IPv4Prefix returns the lab's IPv4 /24.
func (l *Lab) IPv4Prefix() netip.Prefix { return l.spec.IPv4 }

// IPv6Prefix returns the lab's IPv6 /64.
func (l *Lab) IPv6Prefix() netip.Prefix { return l.spec.IPv6 }

// VIP4 returns the address reserved for the IPv4 VIP (.100); netlab
// assigns it to no host.
func (l *Lab) VIP4() netip.Addr { return l.vip4 }

// VIP6 returns the address reserved for the IPv6 VIP (::100).
func (l *Lab) VIP6() netip.Addr { return l.vip6 }

// DNSName returns the endpoint DNS name used in default certificates.
func (l *Lab) DNSName() string { return l.spec.DNSName }

// Dir returns the lab's directory (certificates, sockets, child logs).
func (l *Lab) Dir() string { return l.dir }

// CA returns the lab-wide CA that signs the stand-ins' certificates.
func (l *Lab) CA() *pki.CA { return l.ca }

// CAFile returns the path of the CA certificate (PEM).
func (l *Lab) CAFile() string { return l.caFile }

// ServerCertOptions returns the default SANs of a server certificate for
// h: its addresses, both VIPs and the DNS name.
func (l *Lab) ServerCertOptions(h *Host) pki.LeafOptions {
	return pki.LeafOptions{
		CommonName: h.name,
		DNSNames:   []string{l.spec.DNSName},
		IPs:        []netip.Addr{h.addr4, h.addr6, l.vip4, l.vip6},
	}
}

// IssueCert signs a certificate with the lab CA and writes it to
// <dir>/certs/<name>.crt and .key, replacing an earlier one of the same
// name (a stand-in named name picks it up on Reload).
func (l *Lab) IssueCert(name string, o pki.LeafOptions) (certFile, keyFile string, err error) {
	if !hostNameRE.MatchString(name) || name == "ca" {
		return "", "", fmt.Errorf("certificate name %q: want a host-like name other than ca", name)
	}
	if l.isClosed() {
		return "", "", ErrClosed
	}
	leaf, err := l.ca.Issue(o)
	if err != nil {
		return "", "", err
	}
	// Written into the existing directory only: a lab closed meanwhile
	// must not get its directory back.
	certFile = filepath.Join(l.dir, "certs", name+".crt")
	keyFile = filepath.Join(l.dir, "certs", name+".key")
	if err := os.WriteFile(certFile, leaf.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("writing certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, leaf.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("writing key: %w", err)
	}
	return certFile, keyFile, nil
}

func (l *Lab) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}
