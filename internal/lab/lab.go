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
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/status"
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

// daemonProc is one running `epconsole --daemon`.
type daemonProc struct {
	cmd  *exec.Cmd
	done chan struct{}
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

// explainDead adds, to err, the last log lines of every daemon that exited.
func (l *Lab) explainDead(err error) error {
	for _, p := range l.Peers() {
		if l.daemonRunning(p) {
			continue
		}
		b, _ := os.ReadFile(l.LogPath(p))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		err = fmt.Errorf("%w\nthe daemon on %s exited; its log (%s) ends:\n%s", err, p, l.LogPath(p), strings.Join(lines, "\n"))
	}
	return err
}

func writeKey(path string) (string, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("lab: writing gossip key: %w", err)
	}
	return path, nil
}

// configInput gathers what ConfigHCL needs from the built topology.
func (l *Lab) configInput() ConfigInput {
	in := ConfigInput{
		Cluster: l.opts.Prefix, VIP4: l.net.VIP4(), VIP6: l.net.VIP6(), DNSName: l.net.DNSName(),
		CAFile: l.net.CAFile(), KeyFile: l.key, Dir: l.net.Dir(),
	}
	if l.etcd != nil {
		in.Etcd = EtcdInput{Endpoints: l.etcd.Endpoints(), CAFile: l.etcd.CAFile, CertFile: l.etcd.ClientCertFile, KeyFile: l.etcd.ClientKeyFile}
	}
	for i, h := range l.peerHosts() {
		in.Peers = append(in.Peers, PeerInput{Name: h.Name(), Addr4: h.IPv4(), Priority: 150 - 10*i})
	}
	for _, h := range l.net.HostsByRole(netlab.RoleBackend) {
		in.Backends = append(in.Backends, BackendInput{Name: h.Name(), Addr4: h.IPv4(), Addr6: h.IPv6()})
	}
	return in
}

// Net returns the underlying topology (hosts, addresses, the lab CA).
func (l *Lab) Net() *netlab.Lab { return l.net }

// peerHosts returns the hosts that run a daemon: the LB hosts, or with
// Colocated the control-plane hosts.
func (l *Lab) peerHosts() []*netlab.Host {
	if l.opts.Colocated {
		return l.net.HostsByRole(netlab.RoleBackend)
	}
	return l.net.HostsByRole(netlab.RoleLB)
}

// Colocated reports whether the daemons run on the control-plane hosts.
func (l *Lab) Colocated() bool { return l.opts.Colocated }

// Peers returns the names of the hosts running a daemon in order (the
// first has the highest priority): lb1..lbN, or cp1..cpN co-located.
func (l *Lab) Peers() []string {
	var out []string
	for _, h := range l.peerHosts() {
		out = append(out, h.Name())
	}
	return out
}

// Backends returns the backend names in config order.
func (l *Lab) Backends() []string {
	var out []string
	for _, h := range l.net.HostsByRole(netlab.RoleBackend) {
		out = append(out, h.Name())
	}
	return out
}

// EtcdMembers returns the names of the control-plane hosts that run an
// etcd member, in order.
func (l *Lab) EtcdMembers() []string { return l.etcd.Names() }

// Etcd returns the lab's etcd cluster (endpoints, client certificate,
// members).
func (l *Lab) Etcd() *netlab.EtcdCluster { return l.etcd }

// ConfigPath returns the config.hcl of LB peer.
func (l *Lab) ConfigPath(peer string) string { return filepath.Join(l.net.Dir(), peer+".hcl") }

// Socket returns the status socket of LB peer.
func (l *Lab) Socket(peer string) string { return socketPath(l.net.Dir(), peer) }

// LogPath returns the daemon log of LB peer.
func (l *Lab) LogPath(peer string) string {
	return filepath.Join(l.net.Dir(), "logs", peer+"-daemon.log")
}

func (l *Lab) stateDir(peer string) string { return filepath.Join(l.net.Dir(), peer+"-state") }

// startDaemon starts `epconsole --daemon` on LB peer with extra flags
// args, appending to its log.
func (l *Lab) startDaemon(peer string, args ...string) error {
	h := l.net.Host(peer)
	f, err := os.OpenFile(l.LogPath(peer), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lab: daemon log: %w", err)
	}
	cmd := h.Command(l.ctx, append([]string{l.opts.Binary, "--daemon", "-c", l.ConfigPath(peer)}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// The daemon must not see netlab's child variables (it would run a role).
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("lab: starting the daemon on %s: %w", peer, err)
	}
	d := &daemonProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(d.done)
	}()
	l.mu.Lock()
	l.daemons[peer] = d
	l.mu.Unlock()
	l.log.Info("daemon started", "peer", peer, "pid", cmd.Process.Pid, "config", l.ConfigPath(peer))
	return nil
}

// daemonRunning reports whether the daemon on peer runs.
func (l *Lab) daemonRunning(peer string) bool {
	l.mu.Lock()
	d := l.daemons[peer]
	l.mu.Unlock()
	if d == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// killDaemon kills the daemon on peer with SIGKILL (a crash: its VIP and
// rules stay in the kernel) and waits until it is gone.
func (l *Lab) killDaemon(peer string) error {
	l.mu.Lock()
	d := l.daemons[peer]
	l.mu.Unlock()
	if d == nil {
		return fmt.Errorf("lab: no daemon on %s", peer)
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("lab: the daemon on %s did not exit after SIGKILL", peer)
	}
}

// Status returns LB peer's status snapshot from its daemon's socket.
func (l *Lab) Status(ctx context.Context, peer string) (status.Snapshot, error) {
	c := status.NewClient(l.Socket(peer))
	defer c.Close()
	return c.Status(ctx)
}

// Owner returns the LB whose daemon says it holds the IPv4 VIP; it fails
// unless exactly one running daemon says so.
func (l *Lab) Owner(ctx context.Context) (string, error) {
	var owners []string
	for _, p := range l.Peers() {
		if !l.daemonRunning(p) {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := l.Status(qctx, p)
		cancel()
		if err != nil {
			continue
		}
		for _, v := range s.VIPs {
			if v.Here && v.Address == l.net.VIP4().String() {
				owners = append(owners, p)
			}
		}
	}
	if len(owners) != 1 {
		return "", fmt.Errorf("lab: VIP owners %v, want exactly one", owners)
	}
	return owners[0], nil
}

// WaitOwner waits until exactly one running daemon other than not holds
// the VIP, and returns it.
func (l *Lab) WaitOwner(ctx context.Context, not string) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var err error
	for {
		var o string
		if o, err = l.Owner(wctx); err == nil && o != not {
			return o, nil
		} else if err == nil {
			err = fmt.Errorf("lab: the owner is still %s", o)
		}
		if !slices.ContainsFunc(l.Peers(), l.daemonRunning) {
			return "", errors.New("lab: no daemon is running")
		}
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("lab: waiting for a VIP owner: %w (last: %v)", wctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Load runs n fresh TLS connections from the client through the VIP
// (IPv4, or IPv6 when v6), at most 4 at a time, starting them within
// timeout. Each may take 2 s (a SYN lost at a VIP move is retransmitted
// after 1 s; a loaded 2-core machine needs more than 500 ms for a
// handshake at times): a failure is a refused, reset or lost connection,
// not a slow one.
func (l *Lab) Load(ctx context.Context, n int, v6 bool, timeout time.Duration) (netlab.ClientResult, error) {
	vip := l.net.VIP4()
	if v6 {
		vip = l.net.VIP6()
	}
	return l.net.Host("client").RunClient(ctx, netlab.ClientOpts{
		Target: netip.AddrPortFrom(vip, ServicePort), Count: n, Concurrency: 4,
		Timeout: timeout, RequestTimeout: 2 * time.Second,
	})
}

// Check runs `epconsole check <what> --json` with LB peer's config inside
// peer's namespace (check probes directly, from where it runs) and
// returns its exit code and output.
func (l *Lab) Check(ctx context.Context, peer string, what ...string) (int, []byte, error) {
	h := l.net.Host(peer)
	if h == nil {
		return 0, nil, fmt.Errorf("lab: no host %s", peer)
	}
	args := append([]string{l.opts.Binary, "check"}, what...)
	cmd := h.Command(ctx, append(args, "--json", "-c", l.ConfigPath(peer))...)
	cmd.Env = os.Environ()
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out, nil
	}
	if err != nil {
		return 0, out, fmt.Errorf("lab: running check on %s: %w", peer, err)
	}
	return 0, out, nil
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

// DaemonPid returns the process id of the daemon on peer (0 if none).
func (l *Lab) DaemonPid(peer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.daemons[peer]; d != nil {
		return d.cmd.Process.Pid
	}
	return 0
}

// StopDaemon stops the daemon on peer with SIGTERM (a graceful handoff:
// it gives the VIP away and removes its rules) and waits until it exits.
func (l *Lab) StopDaemon(ctx context.Context, peer string) error {
	l.mu.Lock()
	d := l.daemons[peer]
	l.mu.Unlock()
	if d == nil {
		return fmt.Errorf("lab: no daemon on %s", peer)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("lab: the daemon on %s did not exit after SIGTERM: %w", peer, ctx.Err())
	}
}

// StartDaemon starts the daemon on peer again (after StopDaemon or a
// kill), with extra flags args (a drill's control: --no-conn-sync).
func (l *Lab) StartDaemon(peer string, args ...string) error {
	if l.daemonRunning(peer) {
		return fmt.Errorf("lab: the daemon on %s runs already", peer)
	}
	return l.startDaemon(peer, args...)
}
