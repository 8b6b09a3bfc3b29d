package lab

// Low-level faults for fault campaigns (internal/chaos): each does one
// thing to one host and returns how to undo it. Unlike the operator
// drills (Fault, Heal) they say nothing about what the TUI shows.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/standin"
)

// lossTable is the nftables table SetLoss adds in an LB's namespace.
const lossTable = "labloss"

// KillDaemon kills the daemon on peer with SIGKILL (a crash: the VIP and
// the rules stay in the kernel, the heartbeat helper dies with it) and
// waits until it is gone. StartDaemon starts it again.
func (l *Lab) KillDaemon(peer string) error { return l.killDaemon(peer) }

// PauseDaemon stops the daemon on peer and its heartbeat helper at once
// (SIGSTOP to the daemon's process group, which the helper shares), as a
// paused VM would; resume sends SIGCONT to the same group.
func (l *Lab) PauseDaemon(peer string) (resume func() error, err error) {
	pid := l.DaemonPid(peer)
	if pid == 0 || !l.daemonRunning(peer) {
		return nil, fmt.Errorf("lab: no daemon runs on %s", peer)
	}
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("lab: pausing the daemon on %s (process group %d): %w", peer, pid, err)
	}
	return func() error {
		if err := syscall.Kill(-pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("lab: resuming the daemon on %s (process group %d): %w", peer, pid, err)
		}
		return nil
	}, nil
}

// PartitionPeer cuts target off from the other LB peers with nft drops in
// its own namespace (the link stays up; the backends and the client are
// still reached). With oneWay only what the peers send to target is
// dropped: target is heard but hears nobody. The returned heal removes
// the drops.
func (l *Lab) PartitionPeer(target string, oneWay bool) (heal func() error, err error) {
	h := l.net.Host(target)
	if h == nil {
		return nil, fmt.Errorf("lab: no host %s", target)
	}
	var others []netip.Addr
	for _, p := range l.peerHosts() {
		if p.Name() != target {
			others = append(others, p.IPv4())
		}
	}
	if err := nftPartition(h, others, true, oneWay); err != nil {
		return nil, err
	}
	return func() error { return nftPartition(h, nil, false, false) }, nil
}

// SetLoss drops one packet in every `oneIn` (random, nft numgen) entering
// and leaving peer's namespace; oneIn 0 removes the loss.
func (l *Lab) SetLoss(peer string, oneIn int) error {
	h := l.net.Host(peer)
	if h == nil {
		return fmt.Errorf("lab: no host %s", peer)
	}
	ns, err := h.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", h.Namespace(), err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: lossTable}
	if oneIn <= 0 {
		conn.DelTable(table)
		if err := conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing the loss in %s: %w", h.Namespace(), err)
		}
		return nil
	}
	conn.AddTable(table)
	for _, hook := range []*nftables.ChainHook{nftables.ChainHookInput, nftables.ChainHookOutput} {
		name := "input"
		if hook == nftables.ChainHookOutput {
			name = "output"
		}
		ch := conn.AddChain(&nftables.Chain{Name: name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter})
		// numgen random mod oneIn == 0 drop (zero is zero in either byte order).
		conn.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: []expr.Any{
			&expr.Numgen{Register: 1, Modulus: uint32(oneIn), Type: unix.NFT_NG_RANDOM},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("adding loss in %s: %w", h.Namespace(), err)
	}
	return nil
}

// StopBackend stops the stand-in apiserver on backend host name
// (connections refused); the returned heal starts it again.
func (l *Lab) StopBackend(ctx context.Context, name string) (heal func(context.Context) error, err error) {
	heal, _, err = l.stopBackend(ctx, name)
	return heal, err
}

// SetBackendBehavior makes the stand-in on name answer as b (unready,
// slow); the returned heal makes it healthy again.
func (l *Lab) SetBackendBehavior(ctx context.Context, name string, b standin.Behavior) (heal func(context.Context) error, err error) {
	heal, _, err = l.behave(ctx, name, b, "")
	return heal, err
}

// Handoff runs `epconsole handoff` against peer's daemon (the operator's
// graceful move of the VIP to the next in line) and waits for its answer.
func (l *Lab) Handoff(ctx context.Context, peer string) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, l.opts.Binary, "handoff", "--socket", l.Socket(peer))
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: epconsole handoff on %s: %w: %s", peer, err, out)
	}
	return nil
}

// DaemonRunning reports whether the daemon on peer runs (a paused one
// runs).
func (l *Lab) DaemonRunning(peer string) bool { return l.daemonRunning(peer) }
