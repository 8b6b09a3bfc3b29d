package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/epconsole/epconsole/internal/daemon"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/standin"
)

// The drills.
const (
	FaultStopBackend    = "stop-backend"
	FaultUnreadyBackend = "unready-backend"
	FaultSANMissing     = "san-missing"
	FaultKillOwner      = "kill-owner"
	FaultPartition      = "partition"
	FaultSlowBackend    = "slow-backend"
	FaultEtcdStopOne    = "etcd-stop-one"
	FaultEtcdQuorumLost = "etcd-quorum-lost"
)

// Faults lists the drills in the order a tour runs them.
func Faults() []string {
	return []string{FaultStopBackend, FaultUnreadyBackend, FaultSANMissing, FaultSlowBackend,
		FaultEtcdStopOne, FaultEtcdQuorumLost, FaultPartition, FaultKillOwner}
}

// etcdDrill reports whether name is one of the etcd drills (they stop
// members of the same cluster, so one at a time).
func etcdDrill(name string) bool { return name == FaultEtcdStopOne || name == FaultEtcdQuorumLost }

// EtcdStopTargets returns the etcd members drill name stops, out of
// members (in host order): etcd-stop-one the last one; etcd-quorum-lost as
// many of the last ones as it takes to lose quorum (two of three, one of
// two, the only one). It is pure.
func EtcdStopTargets(name string, members []string) []string {
	n := len(members)
	if n == 0 {
		return nil
	}
	k := 1
	if name == FaultEtcdQuorumLost {
		k = n - (n/2 + 1) + 1
	}
	return members[n-k:]
}

// EtcdVerdict is what `epconsole check etcd` concludes with stopped of
// members stopped: the members still running, the quorum, how many more
// may fail, and the exit code (0 OK, 1 WARNING, 2 CRITICAL). While quorum
// holds the running members are the healthy ones; without it none knows a
// leader and check counts 0 healthy. It is pure.
func EtcdVerdict(members, stopped int) (running, quorum, tolerance, exit int) {
	running, quorum = members-stopped, members/2+1
	switch {
	case running < quorum:
		return running, quorum, 0, 2
	case stopped > 0 || members%2 == 0:
		// An unreachable member, or an even member count, is a warning.
		return running, quorum, running - quorum, 1
	}
	return running, quorum, running - quorum, 0
}

// SlowDelay is what slow-backend adds to every health answer: above the
// lab's probe timeout (400ms), so the probes fail by timeout.
const SlowDelay = 700 * time.Millisecond

// partitionTable is the nftables table a partition adds in the cut-off
// peer's namespace (its own; epconsole's tables are not touched).
const partitionTable = "labpartition"

// activeFault is a fault in place and how to undo it.
type activeFault struct {
	target string
	heal   func(ctx context.Context) error
}

// FaultTarget returns the host a drill acts on now: a backend for the
// backend drills (stop cp1, unready cp2, SAN cp3, slow the last backend),
// the VIP owner for kill-owner, the next owner in line for partition.
func (l *Lab) FaultTarget(ctx context.Context, name string) (string, error) {
	bs := l.Backends()
	pick := func(i int) string { return bs[i%len(bs)] }
	switch name {
	case FaultStopBackend:
		return pick(0), nil
	case FaultUnreadyBackend:
		return pick(1), nil
	case FaultSANMissing:
		return pick(2), nil
	case FaultSlowBackend:
		return bs[len(bs)-1], nil
	case FaultEtcdStopOne, FaultEtcdQuorumLost:
		return strings.Join(EtcdStopTargets(name, l.EtcdMembers()), ","), nil
	case FaultKillOwner:
		return l.Owner(ctx)
	case FaultPartition:
		owner, err := l.Owner(ctx)
		if err != nil {
			return "", err
		}
		// Peers are in priority order: the first other one is next in line.
		for _, p := range l.Peers() {
			if p != owner {
				l.log.Info("partition target", "owner", owner, "next", p)
				return p, nil
			}
		}
		return "", errors.New("lab: partition needs at least two peers")
	}
	return "", fmt.Errorf("lab: unknown fault %q (want one of %s)", name, strings.Join(Faults(), ", "))
}

// Fault starts drill name and returns what an operator should now see in
// the TUI and in `epconsole check`. A drill already in place is refused.
func (l *Lab) Fault(ctx context.Context, name string) (string, error) {
	l.mu.Lock()
	_, active := l.faults[name]
	var otherEtcd string
	for n := range l.faults {
		if etcdDrill(name) && etcdDrill(n) {
			otherEtcd = n
		}
	}
	l.mu.Unlock()
	if active {
		return "", fmt.Errorf("lab: %s is already in place; heal it first", name)
	}
	if otherEtcd != "" {
		return "", fmt.Errorf("lab: %s is in place; heal it before %s (both stop etcd members)", otherEtcd, name)
	}
	target, err := l.FaultTarget(ctx, name)
	if err != nil {
		return "", err
	}
	var heal func(context.Context) error
	var see string
	switch name {
	case FaultStopBackend:
		heal, see, err = l.stopBackend(ctx, target)
	case FaultUnreadyBackend:
		heal, see, err = l.behave(ctx, target, standin.Behavior{Unready: true, FailingCheck: "etcd"},
			fmt.Sprintf("%s answers /readyz with 500 ([-]etcd failed). TUI: %s DOWN on every peer with the reason from /readyz?verbose (etcd); the VIP stays, flows go to the other backends. check backends: WARNING (or CRITICAL when none is left), naming %s and the failing check.", target, target, target))
	case FaultSlowBackend:
		heal, see, err = l.behave(ctx, target, standin.Behavior{Delay: SlowDelay},
			fmt.Sprintf("%s answers health checks after %s, over the probe timeout (400ms). TUI: %s DOWN (timeout) on every peer, its latency column high; the VIP stays. check backends: WARNING naming %s as timing out.", target, SlowDelay, target, target))
	case FaultSANMissing:
		heal, see, err = l.sanMissing(ctx, target)
	case FaultKillOwner:
		heal, see, err = l.killOwner(ctx, target)
	case FaultPartition:
		heal, see, err = l.partition(target)
	case FaultEtcdStopOne, FaultEtcdQuorumLost:
		heal, see, err = l.stopEtcd(ctx, strings.Split(target, ","))
	}
	if err != nil {
		return "", fmt.Errorf("lab: fault %s on %s: %w", name, target, err)
	}
	l.mu.Lock()
	l.faults[name] = &activeFault{target: target, heal: heal}
	l.mu.Unlock()
	l.log.Info("fault", "name", name, "target", target)
	return see, nil
}

// Heal undoes drill name and returns what the operator should see next.
func (l *Lab) Heal(ctx context.Context, name string) (string, error) {
	l.mu.Lock()
	f := l.faults[name]
	l.mu.Unlock()
	if f == nil {
		if slices.Contains(Faults(), name) {
			return "", fmt.Errorf("lab: %s is not in place", name)
		}
		return "", fmt.Errorf("lab: unknown fault %q (want one of %s)", name, strings.Join(Faults(), ", "))
	}
	if err := f.heal(ctx); err != nil {
		return "", fmt.Errorf("lab: healing %s on %s: %w", name, f.target, err)
	}
	l.mu.Lock()
	delete(l.faults, name)
	l.mu.Unlock()
	l.log.Info("healed", "name", name, "target", f.target)
	switch name {
	case FaultKillOwner:
		return fmt.Sprintf("the daemon on %s runs again: it rejoins as a standby (no preempt), the VIP stays where it is. TUI: %s alive and fresh. check: OK.", f.target, f.target), nil
	case FaultPartition:
		return fmt.Sprintf("%s hears its peers again: fresh in the TUI, no VIP move. check: OK.", f.target), nil
	case FaultEtcdStopOne, FaultEtcdQuorumLost:
		n := len(l.EtcdMembers())
		healthy, quorum, tol, code := EtcdVerdict(n, 0)
		return fmt.Sprintf("the etcd member(s) on %s run again from their data directories and have rejoined: %d/%d healthy, quorum %d, can lose %d, a leader. check etcd: %s (exit %d). TUI: the etcd panel shows it at the daemon's next etcd check (every %s).",
			strings.ReplaceAll(f.target, ",", " and "), healthy, n, quorum, tol, severityWord(code), code, daemon.DefaultEtcdInterval), nil
	}
	return fmt.Sprintf("%s is back: UP on every peer after rise (2 probes); check: OK.", f.target), nil
}

// Active lists the drills in place with their targets.
func (l *Lab) Active() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	for n, f := range l.faults {
		out[n] = f.target
	}
	return out
}

func (l *Lab) standin(name string) (*netlab.Standin, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.standins[name]
	if s == nil {
		return nil, fmt.Errorf("no stand-in %s", name)
	}
	return s, nil
}

func (l *Lab) stopBackend(ctx context.Context, target string) (func(context.Context) error, string, error) {
	s, err := l.standin(target)
	if err != nil {
		return nil, "", err
	}
	if err := s.Stop(ctx); err != nil {
		return nil, "", err
	}
	heal := func(ctx context.Context) error {
		ns, err := l.net.Host(target).StartStandin(ctx, netlab.StandinOpts{Name: target})
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.standins[target] = ns
		l.mu.Unlock()
		return nil
	}
	see := fmt.Sprintf("the apiserver on %s is stopped (connection refused). TUI: %s DOWN on every peer within about a second (connect refused), its slots moved to the others, the VIP stays. check backends: WARNING, %s down, with the fix.", target, target, target)
	return heal, see, nil
}

func (l *Lab) behave(ctx context.Context, target string, b standin.Behavior, see string) (func(context.Context) error, string, error) {
	s, err := l.standin(target)
	if err != nil {
		return nil, "", err
	}
	if err := s.SetBehavior(ctx, b); err != nil {
		return nil, "", err
	}
	heal := func(ctx context.Context) error { return s.SetBehavior(ctx, standin.Behavior{}) }
	return heal, see, nil
}

func (l *Lab) sanMissing(ctx context.Context, target string) (func(context.Context) error, string, error) {
	s, err := l.standin(target)
	if err != nil {
		return nil, "", err
	}
	h := l.net.Host(target)
	o := l.net.ServerCertOptions(h)
	// The same certificate without the VIPs (a kubeadm cert made before
	// the VIP existed): the DNS name and the host's own addresses stay.
	o.IPs = []netip.Addr{h.IPv4(), h.IPv6()}
	if _, _, err := l.net.IssueCert(target, o); err != nil {
		return nil, "", err
	}
	if err := s.Reload(ctx); err != nil {
		return nil, "", err
	}
	heal := func(ctx context.Context) error {
		if _, _, err := l.net.IssueCert(target, l.net.ServerCertOptions(h)); err != nil {
			return err
		}
		return s.Reload(ctx)
	}
	see := fmt.Sprintf("%s serves a certificate without the VIPs %s and %s in its SANs: clients through the VIP that reach it fail verification. TUI (certificates view; the daemons re-check a certificate as soon as their probes see a new one, else every 60 s): %s with the VIP SANs ✘. check tls: CRITICAL now, naming %s and the missing SAN, with the kubeadm fix (--apiserver-cert-extra-sans).", target, l.net.VIP4(), l.net.VIP6(), target, target)
	return heal, see, nil
}

func (l *Lab) killOwner(ctx context.Context, owner string) (func(context.Context) error, string, error) {
	if err := l.killDaemon(owner); err != nil {
		return nil, "", err
	}
	heal := func(ctx context.Context) error { return l.startDaemon(owner) }
	see := fmt.Sprintf("the daemon on %s was killed with SIGKILL (its VIP address and rules stay in the kernel until its lease runs out). TUI on another peer: %s not fresh, then dead; the next in line owns the VIP within well under a second; a vip-acquired event. check on a survivor: OK for backends; the cluster view shows %s down.", owner, owner, owner)
	return heal, see, nil
}

// partition drops every IPv4 packet between target and the other LB peers
// in target's namespace (input and output), with the link up: gossip and
// heartbeats stop, the backends and the client are still reached.
func (l *Lab) partition(target string) (func(context.Context) error, string, error) {
	h := l.net.Host(target)
	var others []netip.Addr
	for _, p := range l.peerHosts() {
		if p.Name() != target {
			others = append(others, p.IPv4())
		}
	}
	if err := nftPartition(h, others, true, false); err != nil {
		return nil, "", err
	}
	heal := func(context.Context) error { return nftPartition(h, nil, false, false) }
	see := fmt.Sprintf("%s is cut off from the other peers by nft drops (link up). TUI on the owner: %s not fresh (heartbeats stop within ~20 ms), then suspect/dead in gossip; the VIP does not move: %s hears no majority and never claims. check: the cluster view shows %s down.", target, target, target, target)
	return heal, see, nil
}

// nftPartition adds (on) or removes (off) the partition table in h. With
// inboundOnly it drops only what comes from peers (h still reaches them:
// a one-way partition).
func nftPartition(h *netlab.Host, peers []netip.Addr, on, inboundOnly bool) error {
	ns, err := h.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", h.Namespace(), err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: partitionTable}
	if !on {
		conn.DelTable(table)
		if err := conn.Flush(); err != nil {
			return fmt.Errorf("removing the partition in %s: %w", h.Namespace(), err)
		}
		return nil
	}
	conn.AddTable(table)
	for _, hook := range []struct {
		name   string
		hook   *nftables.ChainHook
		offset uint32 // 12: ip saddr (input), 16: ip daddr (output)
	}{{"input", nftables.ChainHookInput, 12}, {"output", nftables.ChainHookOutput, 16}} {
		if inboundOnly && hook.name == "output" {
			continue
		}
		ch := conn.AddChain(&nftables.Chain{Name: hook.name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: hook.hook, Priority: nftables.ChainPriorityFilter})
		for _, p := range peers {
			a := p.As4()
			conn.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: hook.offset, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("partitioning %s: %w", h.Namespace(), err)
	}
	return nil
}

// stopEtcd stops the etcd members names (gracefully, as systemctl stop
// etcd would: a leader hands over first); the heal starts them again, all
// at once, and waits until they have rejoined.
func (l *Lab) stopEtcd(ctx context.Context, names []string) (func(context.Context) error, string, error) {
	if l.etcd == nil || len(names) == 0 || names[0] == "" {
		return nil, "", errors.New("the lab runs no etcd")
	}
	if err := l.etcd.Stop(ctx, names...); err != nil {
		return nil, "", err
	}
	heal := func(ctx context.Context) error { return l.etcd.Start(ctx, names...) }
	n := len(l.EtcdMembers())
	running, quorum, tol, code := EtcdVerdict(n, len(names))
	who := strings.Join(names, " and ")
	var see string
	switch {
	case running == 0:
		see = fmt.Sprintf("every etcd member (%s) is stopped: etcd is down. check etcd: CRITICAL (exit 2): etcd-unreachable, no endpoint answers. TUI: the etcd panel shows it unreachable at the daemon's next etcd check (every %s).", who, daemon.DefaultEtcdInterval)
	case code == 2:
		see = fmt.Sprintf("the etcd member(s) on %s are stopped: %d of %d left, quorum needs %d, so etcd has no leader and refuses writes (a real apiserver's /readyz etcd check fails; the lab's stand-ins do not use etcd, and the VIP stays: epconsole's data path does not depend on etcd). check etcd: CRITICAL (exit 2) within about a second: quorum-lost and no-leader, %s unreachable, with the fix (bring a member back). TUI: the etcd panel shows quorum lost at the daemon's next etcd check (every %s).",
			who, running, n, quorum, who, daemon.DefaultEtcdInterval)
	default:
		see = fmt.Sprintf("the etcd member on %s is stopped: %d of %d running, quorum %d holds (a new leader within about a second if it led), it can lose %d more. check etcd: %s (exit %d): member-unreachable %s and no-tolerance (one more failure loses quorum). TUI: the etcd panel shows %s unreachable and tolerance %d at the daemon's next etcd check (every %s).",
			who, running, n, quorum, tol, severityWord(code), code, who, who, tol, daemon.DefaultEtcdInterval)
	}
	return heal, see, nil
}

// severityWord names check's exit code.
func severityWord(code int) string {
	switch code {
	case 0:
		return "OK"
	case 1:
		return "WARNING"
	case 2:
		return "CRITICAL"
	}
	return "UNKNOWN"
}
