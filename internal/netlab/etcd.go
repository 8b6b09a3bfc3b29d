package netlab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/epconsole/epconsole/internal/embedetcd"
)

// etcd's well-known ports, used on every member's host address.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// Default raft timings of a lab cluster: fast enough that a lab is up (and
// a lost leader replaced) within a second, slow enough not to flap on a
// busy two-core machine.
const (
	DefaultEtcdHeartbeat = 50 * time.Millisecond
	DefaultEtcdElection  = 500 * time.Millisecond
)

// evJoined: an etcd member has joined its cluster (it published itself
// through raft, so the cluster has a leader and a quorum).
const evJoined = "joined"

// EtcdOpts describe an etcd cluster with one member on each host.
type EtcdOpts struct {
	// Hosts each run one member, named after the host; at least one.
	Hosts []*Host
	// Heartbeat and Election are the raft timings (defaults
	// DefaultEtcdHeartbeat and DefaultEtcdElection).
	Heartbeat, Election time.Duration
}

// EtcdCluster is a real etcd cluster (go.etcd.io/etcd/server/v3/embed),
// one member process per host. Client and peer traffic use TLS with
// client certificate authentication, every certificate from the lab CA.
// Its data directories live under the lab's directory and are removed by
// Lab.Close.
type EtcdCluster struct {
	// CAFile is the lab CA, which signs the members' and clients'
	// certificates.
	CAFile string
	// ClientCertFile and ClientKeyFile are a client certificate the
	// members accept (what an apiserver or epconsole uses).
	ClientCertFile, ClientKeyFile string
	// Dir holds the members' data directories and certificates.
	Dir string

	lab     *Lab
	members []*EtcdMember
}

// EtcdMember is one member of an EtcdCluster.
type EtcdMember struct {
	// Name is the member name (the host's name).
	Name string
	// Host is where it runs.
	Host *Host
	// ClientURL (https://<host IPv4>:2379) and PeerURL (:2380).
	ClientURL, PeerURL string
	// DataDir is its data directory, kept across Stop and Start.
	DataDir string

	c    *EtcdCluster
	args embedetcd.Member

	mu sync.Mutex
	p  *proc // nil before the first start
}

// StartEtcd starts a cluster with one member on each of o.Hosts and waits
// until every member has joined (the cluster has elected a leader). ctx
// bounds the start only (15 s when it has no deadline); the members run
// until they are stopped or the lab closes. On error the members started
// are killed again.
func (l *Lab) StartEtcd(ctx context.Context, o EtcdOpts) (*EtcdCluster, error) {
	c, err := l.NewEtcd(o)
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx, c.Names()...); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

// NewEtcd prepares a cluster with one member on each of o.Hosts (its
// certificates and URLs) without starting it: the caller may write
// configs naming its endpoints and client certificate while
// EtcdCluster.Start, with every name, brings it up.
func (l *Lab) NewEtcd(o EtcdOpts) (*EtcdCluster, error) {
	if len(o.Hosts) == 0 {
		return nil, errors.New("netlab: etcd needs at least one host")
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultEtcdHeartbeat
	}
	if o.Election <= 0 {
		o.Election = DefaultEtcdElection
	}
	if l.isClosed() {
		return nil, ErrClosed
	}
	c := &EtcdCluster{lab: l, Dir: filepath.Join(l.dir, "etcd"), CAFile: l.caFile}
	l.mu.Lock()
	if !slices.Contains(l.removeDirs, c.Dir) {
		l.removeDirs = append(l.removeDirs, c.Dir)
	}
	l.mu.Unlock()
	po := embedetcd.Options{
		CA: l.ca, CAFile: l.caFile, Dir: c.Dir, Token: "netlab-" + l.spec.Prefix,
		Heartbeat: o.Heartbeat, Election: o.Election, ClientName: "epconsole-etcd-client",
	}
	for _, h := range o.Hosts {
		if h == nil || h.lab != l {
			return nil, errors.New("netlab: etcd host is not a host of this lab")
		}
		po.Hosts = append(po.Hosts, embedetcd.Host{
			Name:      h.name,
			ClientURL: "https://" + netip.AddrPortFrom(h.addr4, EtcdClientPort).String(),
			PeerURL:   "https://" + netip.AddrPortFrom(h.addr4, EtcdPeerPort).String(),
			DNSNames:  []string{h.name},
			IPs:       []netip.Addr{h.addr4, h.addr6, netip.MustParseAddr("127.0.0.1")},
		})
	}
	plan, err := embedetcd.NewPlan(po)
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	c.ClientCertFile, c.ClientKeyFile = plan.ClientCertFile, plan.ClientKeyFile
	for i, m := range plan.Members {
		c.members = append(c.members, &EtcdMember{
			Name: m.Name, Host: o.Hosts[i], c: c,
			ClientURL: m.ClientURL, PeerURL: m.PeerURL, DataDir: m.DataDir,
			args: m,
		})
	}
	return c, nil
}

// kill kills every member (a failed start).
func (c *EtcdCluster) kill() {
	for _, m := range c.members {
		_ = m.Kill()
	}
}

// Members returns the members in host order.
func (c *EtcdCluster) Members() []*EtcdMember { return slices.Clone(c.members) }

// Names returns the member names in host order.
func (c *EtcdCluster) Names() []string {
	out := make([]string, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m.Name)
	}
	return out
}

// Member returns the named member, or nil.
func (c *EtcdCluster) Member(name string) *EtcdMember {
	for _, m := range c.members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Endpoints returns every member's client URL in host order.
func (c *EtcdCluster) Endpoints() []string {
	out := make([]string, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Start starts the named members that are not running, all at once (a
// cluster that lost quorum needs several back before any can join), and
// waits until each has joined: for a restarted member that means the
// cluster has a leader and a quorum again. Members keep their data
// directories, so a restarted member rejoins as itself. ctx bounds the
// wait (15 s when it has no deadline).
func (c *EtcdCluster) Start(ctx context.Context, names ...string) error {
	var started []*proc
	for _, n := range names {
		m := c.Member(n)
		if m == nil {
			return fmt.Errorf("netlab: no etcd member %s", n)
		}
		m.mu.Lock()
		if m.p != nil && !m.p.exited() {
			m.mu.Unlock()
			continue
		}
		p, err := m.Host.startChild(roleEtcd, m.args)
		if err != nil {
			m.mu.Unlock()
			return fmt.Errorf("netlab: starting etcd member %s: %w", n, err)
		}
		m.p = p
		m.mu.Unlock()
		started = append(started, p)
	}
	sctx, cancel := startCtx(ctx)
	defer cancel()
	for _, p := range started {
		if _, err := p.waitEvent(sctx, evJoined); err != nil {
			return fmt.Errorf("netlab: etcd member on %s did not join its cluster: %w", p.host.name, err)
		}
	}
	return nil
}

// Stop stops the named members gracefully (SIGTERM: a leader hands its
// leadership over first), killing one that has not exited after 5 s, and
// waits until they have exited. Stopped members are skipped.
func (c *EtcdCluster) Stop(ctx context.Context, names ...string) error {
	var errs []error
	for _, n := range names {
		m := c.Member(n)
		if m == nil {
			errs = append(errs, fmt.Errorf("netlab: no etcd member %s", n))
			continue
		}
		if err := m.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Running lists the names of the members whose process runs.
func (c *EtcdCluster) Running() []string {
	var out []string
	for _, m := range c.members {
		if m.Running() {
			out = append(out, m.Name)
		}
	}
	return out
}

// Pids returns the process ids of the running members.
func (c *EtcdCluster) Pids() []int {
	var out []int
	for _, m := range c.members {
		if pid := m.Pid(); pid != 0 {
			out = append(out, pid)
		}
	}
	return out
}

// Stop stops the member gracefully (see EtcdCluster.Stop).
func (m *EtcdMember) Stop(ctx context.Context) error {
	p := m.proc()
	if p == nil {
		return nil
	}
	return p.stop(ctx)
}

// Kill kills the member at once (a crash) and waits until it has exited.
func (m *EtcdMember) Kill() error {
	p := m.proc()
	if p == nil {
		return nil
	}
	return p.kill()
}

// Running reports whether the member's process runs.
func (m *EtcdMember) Running() bool {
	p := m.proc()
	return p != nil && !p.exited()
}

// Pid returns the member's process id (0 when it does not run).
func (m *EtcdMember) Pid() int {
	p := m.proc()
	if p == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

func (m *EtcdMember) proc() *proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.p
}

// exited reports whether the process has been reaped.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// runEtcd is the child side: run one member until SIGTERM. It reports
// "ready" once it listens and "joined" once it has published itself
// through raft.
func runEtcd(ctx context.Context, a embedetcd.Member, out *eventWriter, log *slog.Logger) error {
	var zl *zap.Logger
	if z, err := zap.NewProductionConfig().Build(); err == nil {
		zl = z.WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	}
	e, err := embedetcd.Start(a, zl)
	if err != nil {
		return err
	}
	defer e.Close()
	log.Info("etcd member listening", "name", a.Name, "client", a.ClientURL, "peer", a.PeerURL)
	if err := out.emit(evReady, map[string]string{"client_url": a.ClientURL}); err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
		log.Info("etcd member joined", "name", a.Name, "id", strconv.FormatUint(uint64(e.Server.MemberID()), 16))
		if err := out.emit(evJoined, map[string]string{"id": strconv.FormatUint(uint64(e.Server.MemberID()), 16)}); err != nil {
			return err
		}
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", a.Name, err)
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", a.Name, err)
	case <-ctx.Done():
		return nil
	}
}

// EtcdMemberStatus is one member as a status request to it sees itself.
type EtcdMemberStatus struct {
	Name string `json:"name"`
	// Reachable: it answered a status request.
	Reachable bool `json:"reachable"`
	// Leader names the leader it believes in ("" none).
	Leader string `json:"leader,omitempty"`
	Error  string `json:"error,omitempty"`
}

// etcdStatusArgs are the status child's arguments.
type etcdStatusArgs struct {
	Names     []string `json:"names"`
	Endpoints []string `json:"endpoints"`
	CAFile    string   `json:"ca_file"`
	CertFile  string   `json:"cert_file"`
	KeyFile   string   `json:"key_file"`
}

// Status asks every member for its status from host from (a process in
// from's namespace, with the client certificate) and returns what each
// says, in host order. A stopped member is not reachable.
func (c *EtcdCluster) Status(ctx context.Context, from *Host) ([]EtcdMemberStatus, error) {
	a := etcdStatusArgs{Names: c.Names(), Endpoints: c.Endpoints(), CAFile: c.CAFile, CertFile: c.ClientCertFile, KeyFile: c.ClientKeyFile}
	j, err := startJob[[]EtcdMemberStatus](ctx, from, roleEtcdStatus, a)
	if err != nil {
		return nil, err
	}
	return j.Wait(ctx)
}

// Leader returns the leader every reachable member agrees on, from host
// from; "" when a member knows none or they disagree.
func (c *EtcdCluster) Leader(ctx context.Context, from *Host) (string, error) {
	st, err := c.Status(ctx, from)
	if err != nil {
		return "", err
	}
	return agreedLeader(st), nil
}

// agreedLeader is the leader all reachable members name ("" otherwise).
func agreedLeader(st []EtcdMemberStatus) string {
	lead := ""
	for _, s := range st {
		if !s.Reachable {
			continue
		}
		if s.Leader == "" || lead != "" && s.Leader != lead {
			return ""
		}
		lead = s.Leader
	}
	return lead
}

// runEtcdStatus is the status child: one status request per member, each
// bounded by a second.
func runEtcdStatus(ctx context.Context, a etcdStatusArgs, out *eventWriter) error {
	if err := out.emit(evStarted, struct{}{}); err != nil {
		return err
	}
	tlsInfo := transport.TLSInfo{CertFile: a.CertFile, KeyFile: a.KeyFile, TrustedCAFile: a.CAFile}
	tc, err := tlsInfo.ClientConfig()
	if err != nil {
		return fmt.Errorf("etcd client TLS: %w", err)
	}
	res := make([]EtcdMemberStatus, len(a.Endpoints))
	ids := map[uint64]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, ep := range a.Endpoints {
		res[i].Name = a.Names[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, lead, err := memberStatus(ctx, ep, tc)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res[i].Error = err.Error()
				return
			}
			res[i].Reachable = true
			ids[id] = a.Names[i]
			if lead != 0 {
				res[i].Leader = strconv.FormatUint(lead, 16)
			}
		}()
	}
	wg.Wait()
	for i := range res {
		if id, err := strconv.ParseUint(res[i].Leader, 16, 64); err == nil {
			if n, ok := ids[id]; ok {
				res[i].Leader = n
			}
		}
	}
	return out.emit(evResult, res)
}

// memberStatus asks one endpoint for its own ID and its leader's.
func memberStatus(ctx context.Context, ep string, tc *tls.Config) (id, leader uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tc, DialTimeout: time.Second, Logger: zap.NewNop(), Context: ctx})
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	st, err := cli.Status(ctx, ep)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", ep, err)
	}
	if st.Header != nil {
		id = st.Header.MemberId
	}
	return id, st.Leader, nil
}
