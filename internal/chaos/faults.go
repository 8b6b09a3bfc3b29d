package chaos

// The nemesis: the faults, a plan of them drawn from a seed, and how each
// is done to a lab and undone.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/epconsole/epconsole/internal/lab"
	"github.com/epconsole/epconsole/internal/standin"
)

// Kind is a fault.
type Kind string

// The faults.
const (
	KillOwner      Kind = "kill-owner"        // kill -9 of the owner's daemon, restarted after
	KillBackup     Kind = "kill-backup"       // kill -9 of a backup's daemon, restarted after
	PauseOwner     Kind = "pause-owner"       // SIGSTOP of the owner's daemon and helper, SIGCONT after
	LinkDown       Kind = "link-down"         // a peer's switch port down, up after
	Partition      Kind = "partition"         // a peer cut off from the others (both ways)
	PartitionOneIn Kind = "partition-one-way" // a peer hears nobody, the others hear it
	Loss           Kind = "loss"              // 1 % random loss in and out of every peer
	Saturate       Kind = "saturate"          // both cores busy (two bounded busy loops)
	BackendStop    Kind = "backend-stop"      // a stand-in apiserver stopped, started after
	BackendUnready Kind = "backend-unready"   // a stand-in answers /readyz with 500
	BackendSlow    Kind = "backend-slow"      // a stand-in answers health checks late
	RestartPeer    Kind = "restart-peer"      // a peer's daemon stopped (SIGTERM) and started
	Handoff        Kind = "handoff"           // `epconsole handoff` on the owner
)

// Kinds lists every fault, in the order Plan draws from.
func Kinds() []Kind {
	return []Kind{KillOwner, KillBackup, PauseOwner, LinkDown, Partition, PartitionOneIn, Loss, Saturate,
		BackendStop, BackendUnready, BackendSlow, RestartPeer, Handoff}
}

// Step is one fault of a plan: what, on which peer or backend (an index
// into the lab's peers or backends, taken modulo their number; faults on
// the owner pick it when the step runs), and for how long.
type Step struct {
	Kind  Kind
	Index int
	Hold  time.Duration
}

func (s Step) String() string {
	return fmt.Sprintf("%s #%d for %s", s.Kind, s.Index, s.Hold)
}

// holdRange is how long each fault stays, at least and at most.
func holdRange(k Kind) (lo, hi time.Duration) {
	switch k {
	case PauseOwner:
		return 100 * time.Millisecond, 5 * time.Second
	case Handoff, RestartPeer:
		return 0, 0
	case Loss, Saturate:
		return time.Second, 3 * time.Second
	}
	return 300 * time.Millisecond, 2 * time.Second
}

// Plan draws count faults from seed (only the kinds given; all when
// none). The same seed and count give the same plan. It is pure.
func Plan(seed uint64, count int, kinds ...Kind) []Step {
	if len(kinds) == 0 {
		kinds = Kinds()
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]Step, 0, count)
	for range count {
		k := kinds[r.IntN(len(kinds))]
		lo, hi := holdRange(k)
		hold := lo
		if hi > lo {
			hold = lo + time.Duration(r.Int64N(int64(hi-lo)))
		}
		out = append(out, Step{Kind: k, Index: r.IntN(1 << 16), Hold: hold.Round(time.Millisecond)})
	}
	return out
}

// ParseKinds turns a comma-separated list of fault names into kinds.
func ParseKinds(s string) ([]Kind, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		found := false
		for _, known := range Kinds() {
			found = found || known == k
		}
		if !found {
			return nil, fmt.Errorf("chaos: unknown fault %q (want some of %v)", k, Kinds())
		}
		out = append(out, k)
	}
	return out, nil
}

// movesVIP reports whether a fault of kind k is meant to move the VIP
// (streams must survive it; the others must not move it at all... except
// that a loaded machine may).
func movesVIP(k Kind) bool {
	switch k {
	case KillOwner, PauseOwner, Handoff, RestartPeer, LinkDown:
		return true
	}
	return false
}

// backendFault reports whether a fault of kind k acts on a backend.
func backendFault(k Kind) bool {
	return k == BackendStop || k == BackendUnready || k == BackendSlow
}

// graceful reports whether a fault of kind k is an orderly move, which
// must fail no connect.
func graceful(k Kind) bool { return k == Handoff }

// applied is a fault in place: its target and how to undo it.
type applied struct {
	target string
	heal   func(ctx context.Context) error
}

// apply does step s to l; owner is the VIP owner now.
func apply(ctx context.Context, l *lab.Lab, s Step, owner string) (applied, error) {
	peers, backends := l.Peers(), l.Backends()
	pick := func(from []string, not string) string {
		var c []string
		for _, p := range from {
			if p != not {
				c = append(c, p)
			}
		}
		return c[s.Index%len(c)]
	}
	switch s.Kind {
	case KillOwner, KillBackup:
		t := owner
		if s.Kind == KillBackup {
			t = pick(peers, owner)
		}
		if err := l.KillDaemon(t); err != nil {
			return applied{}, err
		}
		return applied{t, func(context.Context) error { return l.StartDaemon(t) }}, nil
	case PauseOwner:
		resume, err := l.PauseDaemon(owner)
		if err != nil {
			return applied{}, err
		}
		return applied{owner, func(context.Context) error { return resume() }}, nil
	case LinkDown:
		t := pick(peers, "")
		h := l.Net().Host(t)
		if err := h.SetCable(false); err != nil {
			return applied{}, err
		}
		return applied{t, func(context.Context) error { return h.SetCable(true) }}, nil
	case Partition, PartitionOneIn:
		t := pick(peers, "")
		heal, err := l.PartitionPeer(t, s.Kind == PartitionOneIn)
		if err != nil {
			return applied{}, err
		}
		return applied{t, func(context.Context) error { return heal() }}, nil
	case Loss:
		for _, p := range peers {
			if err := l.SetLoss(p, 100); err != nil {
				return applied{}, err
			}
		}
		return applied{"every peer", func(context.Context) error {
			var first error
			for _, p := range peers {
				if err := l.SetLoss(p, 0); err != nil && first == nil {
					first = err
				}
			}
			return first
		}}, nil
	case Saturate:
		stop, err := saturate(ctx, 2, s.Hold+time.Second)
		if err != nil {
			return applied{}, err
		}
		return applied{"both cores", func(context.Context) error { stop(); return nil }}, nil
	case BackendStop:
		t := pick(backends, "")
		heal, err := l.StopBackend(ctx, t)
		return applied{t, heal}, err
	case BackendUnready, BackendSlow:
		t := pick(backends, "")
		b := standin.Behavior{Unready: true, FailingCheck: "etcd"}
		if s.Kind == BackendSlow {
			b = standin.Behavior{Delay: lab.SlowDelay}
		}
		heal, err := l.SetBackendBehavior(ctx, t, b)
		return applied{t, heal}, err
	case RestartPeer:
		t := pick(peers, "")
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := l.StopDaemon(sctx, t); err != nil {
			return applied{}, err
		}
		return applied{t, func(context.Context) error { return l.StartDaemon(t) }}, nil
	case Handoff:
		if err := l.Handoff(ctx, owner); err != nil {
			return applied{}, err
		}
		return applied{owner, func(context.Context) error { return nil }}, nil
	}
	return applied{}, fmt.Errorf("chaos: unknown fault %q", s.Kind)
}

// saturate keeps the cores busy with n shell busy loops (normal
// priority), each in a process group of its own and bounded by timeout(1)
// to at most limit; stop kills the groups sooner.
func saturate(ctx context.Context, n int, limit time.Duration) (stop func(), err error) {
	var cmds []*exec.Cmd
	secs := fmt.Sprintf("%.1f", limit.Seconds())
	for range n {
		c := exec.CommandContext(ctx, "timeout", secs, "sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
		if err := c.Start(); err != nil {
			for _, c := range cmds {
				_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				_ = c.Wait()
			}
			return nil, fmt.Errorf("chaos: starting a busy loop: %w", err)
		}
		cmds = append(cmds, c)
	}
	return func() {
		for _, c := range cmds {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL) // timeout and its sh
			_ = c.Wait()
		}
	}, nil
}
