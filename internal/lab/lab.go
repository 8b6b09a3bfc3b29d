// Package lab builds the whole epconsole system on one machine, in network
// namespaces (internal/netlab): a client host, lb1..lbN each running the
// real `epconsole --daemon` with a generated config.hcl (dual-stack VIP,
// endpoint DNS name, the backends, a status socket under the lab's
// directory, metrics on the LB's address, a shared gossip key), and
// cp1..cpM each running a stand-in apiserver whose certificate comes from
// the lab CA with both VIPs and the DNS name in its SANs.
//
// With Options.Colocated the lab has no LB hosts: the daemons run on
// cp1..cpN themselves, beside each host's stand-in apiserver (the way most
// kube-vip users run), and every daemon's backends are cp1..cpN, itself
// included. The VIP's port equals the apiserver's (6443): the daemon's
// DNAT matches the VIP only, so the node's own address keeps reaching its
// own apiserver.
//
// The first three control-plane hosts (all of them with --backends 1 or 2)
// each run a member of a real etcd cluster (embedded etcd, netlab's etcd
// role): TLS with client certificate auth on ports 2379 (client) and 2380
// (peer) of the host's IPv4 address, every certificate from the lab CA,
// data under the lab's directory. The daemons' config.hcl names it in its
// etcd block, so their etcd check and `epconsole check` report its quorum.
// The stand-in apiservers do not use it.
//
// Fault and Heal run the operator drills (stop-backend, unready-backend,
// san-missing, slow-backend, etcd-stop-one, etcd-quorum-lost, partition,
// kill-owner); each says what an operator should now see in the TUI and in
// `epconsole check`. Down removes what a crashed lab left behind.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"

	"github.com/epconsole/epconsole/internal/netlab"
)

// Defaults of Options.
const (
	DefaultPrefix   = "lab"
	DefaultPeers    = 3
	DefaultBackends = 3
	MaxPeers        = 5
	MaxBackends     = 7
	// ServicePort is the VIP's and the backends' port.
	ServicePort = 6443
	// MetricsPort is where each daemon serves /metrics on its LB address.
	MetricsPort = 9642
	// MaxEtcdMembers: the etcd cluster runs on the first (at most) three
	// control-plane hosts.
	MaxEtcdMembers = 3
)

// The lab's address slice (reserved for `epconsole-lab`).
var (
	DefaultIPv4 = netip.MustParsePrefix("198.19.0.0/24")
	DefaultIPv6 = netip.MustParsePrefix("fd00:198:18:100::/64")
)

// Options describe a lab.
type Options struct {
	// Prefix names the namespaces ("<prefix>-lb1", ...); default "lab".
	// Tests use another one so they can run beside a real lab.
	Prefix string
	// IPv4 is a /24 inside 198.18.0.0/15, IPv6 a /64 inside
	// fd00:198:18::/48 (defaults: DefaultIPv4, DefaultIPv6).
	IPv4, IPv6 netip.Prefix
	// Peers is the number of LB hosts (default 3, at most 5); Backends the
	// number of control-plane hosts (default 3, at most 7).
	Peers, Backends int
	// DaemonArgs are extra flags for every daemon the lab starts (a
	// drill's control: --no-beat-lease).
	DaemonArgs []string
	// Dir holds certificates, configs, sockets and logs. Default: a fresh
	// netlab-<prefix>-* under os.TempDir, removed by Close and by Down.
	Dir string
	// Binary is the epconsole binary the LBs run (default os.Executable()).
	Binary string
	// Logger receives progress (default: discarded).
	Logger *slog.Logger
	// Colocated runs the daemons on the control-plane hosts (no LB hosts):
	// the peers are cp1..cpN, Peers is ignored and Backends is at most
	// MaxPeers.
	Colocated bool
	// Observer adds a host named ObserverHost on the same segment that
	// runs nothing of epconsole: fault campaigns send their ARP and
	// neighbour probes for the VIP from it, so the client's own
	// neighbour cache stays as a real client's would.
	Observer bool
}

// ObserverHost is the name of Options.Observer's host.
const ObserverHost = "obs"

func (o *Options) defaults() error {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !o.IPv4.IsValid() {
		o.IPv4 = DefaultIPv4
	}
	if !o.IPv6.IsValid() {
		o.IPv6 = DefaultIPv6
	}
	if o.Peers == 0 {
		o.Peers = DefaultPeers
	}
	if o.Backends == 0 {
		o.Backends = DefaultBackends
	}
	if o.Colocated {
		if o.Backends < 1 || o.Backends > MaxPeers {
			return fmt.Errorf("lab: %d co-located control-plane hosts: want 1 to %d (each runs a daemon)", o.Backends, MaxPeers)
		}
		o.Peers = o.Backends
	}
	if o.Peers < 1 || o.Peers > MaxPeers {
		return fmt.Errorf("lab: %d peers: want 1 to %d", o.Peers, MaxPeers)
	}
	if o.Backends < 1 || o.Backends > MaxBackends {
		return fmt.Errorf("lab: %d backends: want 1 to %d", o.Backends, MaxBackends)
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("lab: finding the epconsole binary: %w", err)
		}
		o.Binary = exe
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Lab is a running lab. Its methods are safe for concurrent use.
type Lab struct {
	opts   Options
	net    *netlab.Lab
	log    *slog.Logger
	key    string // gossip key file
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	etcd     *netlab.EtcdCluster
	standins map[string]*netlab.Standin
	daemons  map[string]*daemonProc
	faults   map[string]*activeFault
}

// Up builds the lab: namespaces, stand-ins, configs, the daemons; it
// returns once exactly one LB holds the VIP (ctx bounds the wait). On
// error everything is removed again.
func Up(ctx context.Context, o Options) (*Lab, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	hosts := []netlab.HostSpec{{Name: "client", Role: netlab.RoleClient}}
	for i := 1; i <= o.Peers && !o.Colocated; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("lb%d", i), Role: netlab.RoleLB})
	}
	for i := 1; i <= o.Backends; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("cp%d", i), Role: netlab.RoleBackend})
	}
	if o.Observer {
		hosts = append(hosts, netlab.HostSpec{Name: ObserverHost, Role: netlab.RoleClient})
	}
	nl, err := netlab.Build(ctx, netlab.Spec{
		Prefix: o.Prefix, IPv4: o.IPv4, IPv6: o.IPv6, Hosts: hosts, Dir: o.Dir,
		DNSName: "api." + o.Prefix + ".epconsole.test",
	})
	if err != nil {
		return nil, fmt.Errorf("building the lab topology: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Lab{
		opts: o, net: nl, log: o.Logger, ctx: lctx, cancel: cancel,
		standins: map[string]*netlab.Standin{}, daemons: map[string]*daemonProc{}, faults: map[string]*activeFault{},
	}
	ok := false
	defer func() {
		if !ok {
			_ = l.Close()
		}
	}()
	if err := nftablesWorks(l.peerHosts()[0]); err != nil {
		return nil, err
	}
	if o.Colocated {
		// A co-located owner forwards to the other control-plane hosts, as
		// an LB host does (netlab enables forwarding on LB hosts only).
		for _, h := range l.peerHosts() {
			for _, key := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
				if err := h.WriteSysctl(key, "1"); err != nil {
					return nil, fmt.Errorf("lab: enabling forwarding on %s: %w", h.Name(), err)
				}
			}
		}
	}
	cps := nl.HostsByRole(netlab.RoleBackend)
	if l.etcd, err = nl.NewEtcd(netlab.EtcdOpts{Hosts: cps[:min(len(cps), MaxEtcdMembers)]}); err != nil {
		return nil, fmt.Errorf("lab: preparing etcd: %w", err)
	}
	// etcd elects its leader while the stand-ins and daemons start.
	etcdUp := make(chan error, 1)
	go func() { etcdUp <- l.etcd.Start(ctx, l.etcd.Names()...) }()
	etcdWaited := false
	defer func() {
		if !etcdWaited {
			if !ok {
				_ = l.Close() // kills the members, so Start returns at once
			}
			<-etcdUp
		}
	}()
	for _, h := range cps {
		s, err := h.StartStandin(ctx, netlab.StandinOpts{Name: h.Name()})
		if err != nil {
			return nil, fmt.Errorf("starting the stand-in apiserver on %s: %w", h.Name(), err)
		}
		l.standins[h.Name()] = s
	}
	if l.key, err = writeKey(filepath.Join(nl.Dir(), "gossip.key")); err != nil {
		return nil, err
	}
	in := l.configInput()
	for _, h := range l.peerHosts() {
		if err := os.MkdirAll(l.stateDir(h.Name()), 0o700); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		if err := os.WriteFile(l.ConfigPath(h.Name()), []byte(ConfigHCL(in, h.Name())), 0o600); err != nil {
			return nil, fmt.Errorf("lab: writing config: %w", err)
		}
	}
	for _, h := range l.peerHosts() {
		if err := l.startDaemon(h.Name()); err != nil {
			return nil, err
		}
	}
	etcdWaited = true
	if err := <-etcdUp; err != nil {
		return nil, fmt.Errorf("lab: starting etcd on %s: %w", strings.Join(l.etcd.Names(), ", "), err)
	}
	owner, err := l.WaitOwner(ctx, "")
	if err != nil {
		return nil, l.explainDead(err)
	}
	l.log.Info("lab up", "owner", owner, "vip4", nl.VIP4(), "vip6", nl.VIP6(), "etcd", l.etcd.Names())
	ok = true
	return l, nil
}

// nftablesWorks lists the tables in h's namespace: a kernel without
// nf_tables fails here, before any daemon starts.
func nftablesWorks(h *netlab.Host) error {
	ns, err := h.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err == nil {
		_, err = conn.ListTables()
	}
	if err != nil {
		return fmt.Errorf("lab: nftables does not work in %s (does this kernel have nf_tables? try modprobe nf_tables): %w", h.Namespace(), err)
	}
	return nil
}

// Close heals nothing: it stops the daemons (SIGTERM, then SIGKILL),
// kills every other process of the lab (the etcd members too) and removes
// its namespaces, etcd's data and certificates, and (when the lab made it)
// its directory.
func (l *Lab) Close() error {
	l.mu.Lock()
	daemons := make([]*daemonProc, 0, len(l.daemons))
	for _, d := range l.daemons {
		daemons = append(daemons, d)
	}
	l.mu.Unlock()
	for _, d := range daemons {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, d := range daemons {
		select {
		case <-d.done:
		case <-time.After(3 * time.Second):
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	l.cancel() // kills what is left of each daemon's process group
	for _, d := range daemons {
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
		}
	}
	return l.net.Close()
}

// Down removes what a lab with this prefix left behind (namespaces and
// every process in them, netlab-<prefix>-* directories): `epconsole-lab
// down` after a crash, and its control socket.
func Down(prefix string) error {
	if err := netlab.ValidPrefix(prefix); err != nil {
		return err
	}
	err := netlab.Cleanup(prefix)
	if e := os.Remove(ControlSocket(prefix)); e != nil && !errors.Is(e, os.ErrNotExist) {
		err = errors.Join(err, e)
	}
	return err
}
