package bench

// The stresses the suite puts beside a system: busy loops on the
// machine's cores and random loss on the LB hosts.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/netlab"
)

// busyLoops starts n shell busy loops in the root namespace, each in a
// process group of its own and bounded by timeout(1) to limit; stop kills
// them sooner. Two saturate both cores of this machine; more give the
// load average the loaded mode wants.
func busyLoops(ctx context.Context, n int, limit time.Duration) (stop func(), err error) {
	var cmds []*exec.Cmd
	kill := func() {
		for _, c := range cmds {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL) // timeout and its sh
			_ = c.Wait()
		}
	}
	secs := fmt.Sprintf("%.1f", limit.Seconds())
	for range n {
		c := exec.CommandContext(ctx, "timeout", secs, "sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
		if err := c.Start(); err != nil {
			kill()
			return nil, fmt.Errorf("starting a busy loop: %w", err)
		}
		cmds = append(cmds, c)
	}
	return kill, nil
}

// lossTable is the nftables table setLoss adds in an LB's namespace.
const lossTable = "benchloss"

// setLoss drops one packet in every oneIn (random, nft numgen) entering
// and leaving h's namespace, with the rules of the loss drill
// (internal/lab's SetLoss); oneIn 0 removes them.
func setLoss(h *netlab.Host, oneIn int) error {
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
	for name, hook := range map[string]*nftables.ChainHook{"input": nftables.ChainHookInput, "output": nftables.ChainHookOutput} {
		ch := conn.AddChain(&nftables.Chain{Name: name, Table: table, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter})
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

// loadedModes are the owner failures of the loaded mode: the ones the
// failover targets name for a busy host.
var loadedModes = []faultMode{faultLink, faultPowerOff}

// loadedWarmup lets the busy loops take the cores before the first run.
const loadedWarmup = 3 * time.Second

// loadedFailovers runs the loaded mode: p.LoadedLoops busy loops beside
// the system, and p.LoadedRuns runs of every loaded mode.
func (s *stack) loadedFailovers(sys system, p suiteParams) (map[faultMode][]faultRun, error) {
	limit := loadedWarmup + time.Duration(len(loadedModes)*p.LoadedRuns)*(sys.Loop+60*time.Second)
	stop, err := busyLoops(s.ctx, p.LoadedLoops, limit)
	if err != nil {
		return nil, err
	}
	defer stop()
	time.Sleep(loadedWarmup)
	out := map[faultMode][]faultRun{}
	for _, mode := range loadedModes {
		for i := range p.LoadedRuns {
			out[mode] = append(out[mode], s.logRun(sys, mode, i, s.failoverRun(sys, mode, true)))
		}
	}
	return out, nil
}
