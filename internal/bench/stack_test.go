package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
)

// The address slice of this package.
var (
	net4 = netip.MustParsePrefix("198.18.8.0/24")
	net6 = netip.MustParsePrefix("fd00:198:18:8::/64")
)

const servicePort = 6443

// lbPriorities are the priorities of lb1..lb3 on both sides: lb1 is the
// first owner and the one whose cable is pulled, lb2 its successor.
var lbPriorities = []int{150, 100, 50}

// lbPriority is LB i's priority of n: 150 down to 50 in even steps
// (lbPriorities for 3; 150/125/100/75/50 for 5).
func lbPriority(i, n int) int {
	if n < 2 {
		return 150
	}
	return 150 - i*100/(n-1)
}

// firstOwner is the LB that owns the VIP at the start of every run.
const firstOwner = "lb1"

// stack is one contender's lab: a client, three LB hosts, three stand-in
// apiservers, and the processes the contender runs on the LBs.
type stack struct {
	b      *testing.B
	ctx    context.Context
	lab    *netlab.Lab
	client *netlab.Host
	lbs    []*netlab.Host
	vip    netip.Addr
	dir    string
	checks map[string]*dataplane.VIP
	procs  []*proc
	// sys is the system the suite started (startSystem).
	sys system
	// standins are the stand-in apiservers by backend host name.
	standins map[string]*netlab.Standin
}

// proc is one process started on an LB host.
type proc struct {
	name string
	host string
	// expectDead: the suite killed or stopped it on purpose.
	expectDead bool
	cmd        *exec.Cmd
	logPath    string
	done       chan struct{}
	err        error
}

// newStack builds the topology both sides share, with its own namespace
// prefix, and starts the stand-in apiservers.
func newStack(b *testing.B, ctx context.Context, prefix string) *stack {
	b.Helper()
	return newStackN(b, ctx, prefix, 3)
}

// newStackN is newStack with n LB hosts (priorities by lbPriority).
func newStackN(b *testing.B, ctx context.Context, prefix string, n int) *stack {
	b.Helper()
	hosts := []netlab.HostSpec{{Name: "client", Role: netlab.RoleClient}}
	for i := 1; i <= n; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("lb%d", i), Role: netlab.RoleLB})
	}
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("cp%d", i), Role: netlab.RoleBackend})
	}
	lab := netlab.New(b, netlab.Spec{Prefix: prefix, IPv4: net4, IPv6: net6, Hosts: hosts})
	s := &stack{
		b: b, ctx: ctx, lab: lab, client: lab.Host("client"), lbs: lab.HostsByRole(netlab.RoleLB),
		vip: lab.VIP4(), dir: b.TempDir(), checks: map[string]*dataplane.VIP{}, standins: map[string]*netlab.Standin{},
	}
	for _, h := range lab.HostsByRole(netlab.RoleBackend) {
		st, err := h.StartStandin(ctx, netlab.StandinOpts{Name: h.Name()})
		if err != nil {
			b.Fatalf("stand-in on %s: %v", h.Name(), err)
		}
		s.standins[h.Name()] = st
	}
	for _, h := range s.lbs {
		v, err := dataplane.NewVIP(dataplane.WithNetNS(h.Namespace()))
		if err != nil {
			b.Fatalf("VIP check for %s: %v", h.Name(), err)
		}
		b.Cleanup(func() { v.Close() })
		s.checks[h.Name()] = v
	}
	return s
}

// nodes returns the LBs as the configs see them, and each one's peers.
func (s *stack) nodes() []lbNode {
	out := make([]lbNode, len(s.lbs))
	for i, h := range s.lbs {
		out[i] = lbNode{Name: h.Name(), Addr: h.IPv4(), Priority: lbPriority(i, len(s.lbs))}
	}
	return out
}

func peersOf(all []lbNode, i int) []lbNode {
	var out []lbNode
	for j, n := range all {
		if j != i {
			out = append(out, n)
		}
	}
	return out
}

// writeFile writes a config file into the stack's directory.
func (s *stack) writeFile(name, content string) string {
	s.b.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		s.b.Fatal(err)
	}
	return p
}

// start runs argv in h's namespace, output to <dir>/<name>.log. At the
// end of the benchmark it gets SIGTERM (keepalived then removes its VIP),
// then its whole process group SIGKILL; Lab.Close kills anything left.
func (s *stack) start(h *netlab.Host, name string, argv ...string) *proc {
	s.b.Helper()
	p := &proc{name: name, host: h.Name(), logPath: filepath.Join(s.dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.b.Fatal(err)
	}
	if strings.HasSuffix(name, "-haproxy") {
		fmt.Fprintln(f, proxyStartMark)
	}
	p.cmd = h.Command(s.ctx, argv...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		s.b.Fatalf("starting %s on %s: %v", argv[0], h.Name(), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	s.b.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if s.b.Failed() {
			s.b.Logf("%s log (%s):\n%s", p.name, p.logPath, tail(p.logPath, 30))
		}
	})
	return p
}

// exited returns an error naming the first of the stack's processes that
// has ended.
func (s *stack) exited() error {
	for _, p := range s.procs {
		if p.expectDead {
			continue
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s ended (%v); log %s:\n%s", p.name, p.err, p.logPath, tail(p.logPath, 30))
		default:
		}
	}
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// owners lists the LBs that have the VIP on their link now.
func (s *stack) owners() ([]string, error) {
	var out []string
	for _, h := range s.lbs {
		has, err := s.checks[h.Name()].Has(s.ctx, netlab.HostLink, s.vip)
		if err != nil {
			return nil, fmt.Errorf("VIP on %s: %w", h.Name(), err)
		}
		if has {
			out = append(out, h.Name())
		}
	}
	return out, nil
}

// waitOwner waits until want alone holds the VIP, continuously for
// stable.
func (s *stack) waitOwner(want string, stable, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var since time.Time
	var last []string
	for time.Now().Before(deadline) {
		o, err := s.owners()
		if err != nil {
			return err
		}
		if slices.Equal(o, []string{want}) {
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) >= stable {
				return nil
			}
		} else {
			since = time.Time{}
		}
		last = o
		if err := s.exited(); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s was not the only VIP owner for %s within %s; owners now %v", want, stable, timeout, last)
}

// waitNewOwner waits until exactly one LB other than old holds the VIP.
func (s *stack) waitNewOwner(old string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var last []string
	for time.Now().Before(deadline) {
		o, err := s.owners()
		if err != nil {
			return "", err
		}
		others := slices.DeleteFunc(o, func(n string) bool { return n == old })
		if len(others) == 1 {
			return others[0], nil
		}
		last = others
		time.Sleep(10 * time.Millisecond)
	}
	return "", fmt.Errorf("no single new owner other than %s within %s: %v", old, timeout, last)
}

// The connect loop of every run: a TCP connect to VIP:6443 every 5 ms,
// each bounded by 20 ms, started on schedule even while earlier ones wait
// (netlab's Overlap: a failing connect no longer hides the 5 ms slots
// behind it, so the dark time has 5 ms resolution, not 20 ms steps); the
// cable is pulled pullAfter into the loop.
const (
	connectEvery   = 5 * time.Millisecond
	connectTimeout = 20 * time.Millisecond
	loopDuration   = 4 * time.Second
	pullAfter      = time.Second
)

// linkDownRun is one run: with firstOwner holding the VIP, the client's
// connect loop starts, firstOwner's cable is pulled, the loop's longest
// gap is the dark time. Then the cable is plugged back and the run waits
// until firstOwner holds the VIP again (both sides preempt) and the
// client's neighbour cache has settled.
func (s *stack) linkDownRun() (runResult, error) {
	if err := s.waitOwner(firstOwner, 300*time.Millisecond, 30*time.Second); err != nil {
		return runResult{}, fmt.Errorf("before the run: %w", err)
	}
	loop, err := s.client.StartTCPConnect(s.ctx, netlab.TCPConnectOpts{
		Target: netip.AddrPortFrom(s.vip, servicePort), Every: connectEvery, Timeout: connectTimeout, Duration: loopDuration,
		Overlap: true,
	})
	if err != nil {
		return runResult{}, err
	}
	time.Sleep(pullAfter)
	owner := s.lab.Host(firstOwner)
	watch, err := s.watchTakeover()
	if err != nil {
		return runResult{}, err
	}
	pulled := time.Now()
	if err := owner.SetCable(false); err != nil {
		watch.wait(pulled, 0)
		return runResult{}, err
	}
	took := watch.wait(pulled, 3*time.Second)
	res, err := loop.Wait(s.ctx)
	if err != nil {
		return runResult{}, err
	}
	newOwner, ownerErr := s.waitNewOwner(firstOwner, 5*time.Second)
	if err := owner.SetCable(true); err != nil {
		return runResult{}, err
	}
	if ownerErr != nil {
		return runResult{}, ownerErr
	}
	if res.GapStart < pullAfter-100*time.Millisecond {
		return runResult{}, fmt.Errorf("the longest gap (%s) began %s into the loop, before the pull at %s: the VIP was not reachable before the fault: %v",
			res.LongestGap, res.GapStart, pullAfter, res.Errors)
	}
	r := runResult{
		Dark: res.LongestGap, Takeover: took, Failures: res.Failures, Attempts: res.Attempts, NewOwner: newOwner,
		Recovered: res.LastSuccess > res.LastFailure,
		// Connects start every connectEvery and one started while the
		// VIP is dark fails within connectTimeout, so with no
		// failure a gap longer than a few timeouts was the client not
		// running (seen: 714 ms with 0 of 256 connects failed).
		Stalled: res.Failures == 0 && res.LongestGap > 3*connectTimeout,
	}
	if err := s.waitOwner(firstOwner, time.Second, 30*time.Second); err != nil {
		return r, fmt.Errorf("after the heal: %w", err)
	}
	return r, nil
}

// takeoverWatch reports when the VIP address is added on an LB other than
// firstOwner, from netlink address events of those LBs' namespaces
// (event-driven: no polling lag, only the wake-up of this process).
type takeoverWatch struct {
	done    chan struct{}
	updates chan netlink.AddrUpdate
	vip     netip.Addr
}

// watchTakeover subscribes to address events on every LB but firstOwner.
func (s *stack) watchTakeover() (*takeoverWatch, error) {
	w := &takeoverWatch{done: make(chan struct{}), updates: make(chan netlink.AddrUpdate, 64), vip: s.vip}
	for _, h := range s.lbs {
		if h.Name() == firstOwner {
			continue
		}
		ns, err := h.OpenNetNS()
		if err != nil {
			close(w.done)
			return nil, err
		}
		// Each subscription closes its own channel when done: fan in.
		ch := make(chan netlink.AddrUpdate, 16)
		err = netlink.AddrSubscribeWithOptions(ch, w.done, netlink.AddrSubscribeOptions{Namespace: &ns})
		ns.Close()
		if err != nil {
			close(w.done)
			return nil, fmt.Errorf("address events in %s: %w", h.Name(), err)
		}
		go func() {
			for u := range ch {
				select {
				case w.updates <- u:
				default: // nobody waits any more, or a burst: only the VIP's event matters and it comes alone
				}
			}
		}()
	}
	return w, nil
}

// wait returns how long after since the VIP was added (zero: not within
// limit) and ends the subscriptions.
func (w *takeoverWatch) wait(since time.Time, limit time.Duration) time.Duration {
	defer close(w.done)
	timeout := time.After(limit)
	for {
		select {
		case u := <-w.updates:
			if a, ok := netip.AddrFromSlice(u.LinkAddress.IP); ok && u.NewAddr && a.Unmap() == w.vip {
				return time.Since(since)
			}
		case <-timeout:
			return 0
		}
	}
}

// schedPolicies describes the scheduling policy of every process in the
// process group pgid ("pid:SCHED_FIFO/50"), read from /proc.
func schedPolicies(pgid int) []string {
	names := map[int]string{0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE", 6: "SCHED_DEADLINE"}
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		comm := string(b[strings.IndexByte(string(b), '(')+1 : i])
		f := strings.Fields(string(b[i+1:]))
		// f[0] is field 3 (state): pgrp is field 5, rt_priority 40, policy 41.
		if len(f) < 39 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		pol, _ := strconv.Atoi(f[38])
		name, ok := names[pol]
		if !ok {
			name = strconv.Itoa(pol)
		}
		out = append(out, fmt.Sprintf("%s[%d]:%s/%s", comm, pid, name, f[37]))
	}
	return out
}

// machine describes this machine: cores, CPU model, kernel.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	kernel := "unknown kernel"
	if err := syscall.Uname(&u); err == nil {
		kernel = "Linux " + utsString(u.Release[:])
	}
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%d cores (%s), %s, load average at the start %s (the machine is shared)", runtime.NumCPU(), cpu, kernel, load)
}

func utsString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// version runs argv and returns the first line of its output.
func version(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return argv[0] + ": " + err.Error()
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
