package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// The cut-over drill's lab: namespaces start with "bnc" (so .ci/run's
// check for left-behind "bn*" namespaces covers them), addresses come from
// 198.19.77.0/24 and fd00:198:18:77::/64 (one lab at a time: the drill's
// sub-tests run one after the other).
var (
	cutNet4 = netip.MustParsePrefix("198.19.77.0/24")
	cutNet6 = netip.MustParsePrefix("fd00:198:18:77::/64")
)

// cutLab is one lab of the cut-over drill: a client, lb1..lb3 (priorities
// 150/100/50, lb1 the keepalived MASTER), three stand-in apiservers, and
// the processes running on the LBs by name ("lb1-keepalived",
// "lb1-haproxy", "lb1-epconsole").
type cutLab struct {
	t      *testing.T
	ctx    context.Context
	lab    *netlab.Lab
	client *netlab.Host
	lbs    []*netlab.Host
	vip    netip.Addr
	dir    string
	bin    string
	key    string
	checks map[string]*dataplane.VIP
	procs  map[string]*proc
	// stopped names the processes the drill stopped on purpose.
	stopped map[string]bool
}

// needRival makes sure keepalived and haproxy are installed: in CI
// (EPCONSOLE_REQUIRE_NETNS=1) it installs them from Debian's packages when
// missing, elsewhere the drill skips.
func needRival(t *testing.T) {
	t.Helper()
	missing := func() []string {
		var out []string
		for _, bin := range []string{"keepalived", "haproxy"} {
			if _, err := exec.LookPath(bin); err != nil {
				out = append(out, bin)
			}
		}
		return out
	}
	m := missing()
	if len(m) == 0 {
		return
	}
	if !testenv.NetnsRequired() {
		t.Skipf("%s not installed: apt-get update && apt-get install -y keepalived haproxy", strings.Join(m, " and "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "+strings.Join(m, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing %v from Debian's packages: %v\n%s", m, err, out)
	}
	if m := missing(); len(m) > 0 {
		t.Fatalf("%v still missing after apt-get install", m)
	}
}

// newCutLab builds the topology with its stand-in apiservers; no LB
// process runs yet.
func newCutLab(t *testing.T, ctx context.Context, bin string) *cutLab {
	t.Helper()
	hosts := []netlab.HostSpec{{Name: "client", Role: netlab.RoleClient}}
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("lb%d", i), Role: netlab.RoleLB})
	}
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("cp%d", i), Role: netlab.RoleBackend})
	}
	lab := netlab.New(t, netlab.Spec{Prefix: "bnc", IPv4: cutNet4, IPv6: cutNet6, Hosts: hosts})
	c := &cutLab{
		t: t, ctx: ctx, lab: lab, client: lab.Host("client"), lbs: lab.HostsByRole(netlab.RoleLB),
		vip: lab.VIP4(), dir: t.TempDir(), bin: bin, checks: map[string]*dataplane.VIP{}, procs: map[string]*proc{}, stopped: map[string]bool{},
	}
	for _, h := range lab.HostsByRole(netlab.RoleBackend) {
		if _, err := h.StartStandin(ctx, netlab.StandinOpts{Name: h.Name()}); err != nil {
			t.Fatalf("stand-in on %s: %v", h.Name(), err)
		}
	}
	for _, h := range c.lbs {
		v, err := dataplane.NewVIP(dataplane.WithNetNS(h.Namespace()))
		if err != nil {
			t.Fatalf("VIP check for %s: %v", h.Name(), err)
		}
		t.Cleanup(func() { v.Close() })
		c.checks[h.Name()] = v
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c.key = c.writeFile("gossip.key", base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
	return c
}

func (c *cutLab) writeFile(name, content string, mode os.FileMode) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cutLab) nodes() []lbNode {
	out := make([]lbNode, len(c.lbs))
	for i, h := range c.lbs {
		out[i] = lbNode{Name: h.Name(), Addr: h.IPv4(), Priority: lbPriorities[i]}
	}
	return out
}

// classicKeepalivedConf is the classic runbook's keepalived.conf for one
// LB: VRRPv2 with advert_int 1, PASS authentication, unicast peers,
// MASTER/BACKUP by priority (preempt by default) and a track script that
// takes the node out when its HAProxy is gone. The runbook's script is
// `pgrep haproxy`; the lab's LBs share one process table, so the script
// checks this LB's HAProxy by its pid file instead.
func classicKeepalivedConf(self lbNode, peers []lbNode, iface string, vip netip.Addr, master bool, checkScript string) string {
	var b strings.Builder
	state := "BACKUP"
	if master {
		state = "MASTER"
	}
	fmt.Fprintf(&b, "global_defs {\n  router_id bnc-%s\n  script_user root\n}\n\n", self.Name)
	fmt.Fprintf(&b, "vrrp_script chk_haproxy {\n  script %q\n  interval 1\n  rise 2\n  fall 2\n}\n\n", checkScript)
	fmt.Fprintf(&b, "vrrp_instance VI_1 {\n  state %s\n  interface %s\n  virtual_router_id 51\n  priority %d\n  advert_int 1\n", state, iface, self.Priority)
	fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n", self.Addr)
	for _, p := range peers {
		fmt.Fprintf(&b, "    %s\n", p.Addr)
	}
	b.WriteString("  }\n  authentication {\n    auth_type PASS\n    auth_pass k8shapas\n  }\n")
	b.WriteString("  track_script {\n    chk_haproxy\n  }\n")
	fmt.Fprintf(&b, "  virtual_ipaddress {\n    %s/%d dev %s\n  }\n}\n", vip, cutNet4.Bits(), iface)
	return b.String()
}

// startClassic starts HAProxy and keepalived on every LB, as the classic
// runbook leaves them, and waits until lb1 alone holds the VIP.
func (c *cutLab) startClassic() {
	c.t.Helper()
	backends := map[string]netip.AddrPort{}
	for _, h := range c.lab.HostsByRole(netlab.RoleBackend) {
		backends[h.Name()] = netip.AddrPortFrom(h.IPv4(), servicePort)
	}
	c.writeFile("haproxy.cfg", haproxyConf(c.vip, servicePort, backends), 0o644)
	for _, h := range c.lbs {
		if err := h.WriteSysctl("net/ipv4/ip_nonlocal_bind", "1"); err != nil {
			c.t.Fatal(err)
		}
		c.startClassicOn(h)
	}
	if err := c.waitOwners([]string{firstOwner}, 2*time.Second, 40*time.Second); err != nil {
		c.t.Fatalf("keepalived + HAProxy: %v", err)
	}
}

// startClassicOn starts HAProxy, then keepalived (lb1 in state MASTER) on
// h, with the configs startClassic wrote or writes.
func (c *cutLab) startClassicOn(h *netlab.Host) {
	c.t.Helper()
	nodes := c.nodes()
	i := slices.IndexFunc(nodes, func(n lbNode) bool { return n.Name == h.Name() })
	hp := c.start(h, "haproxy", "haproxy", "-db", "-f", filepath.Join(c.dir, "haproxy.cfg"))
	pidFile := c.writeFile(h.Name()+"-haproxy.pid", strconv.Itoa(hp.cmd.Process.Pid)+"\n", 0o644)
	script := c.writeFile(h.Name()+"-chk_haproxy.sh", "#!/bin/sh\nkill -0 \"$(cat "+pidFile+")\"\n", 0o755)
	conf := c.writeFile(h.Name()+"-keepalived.conf", classicKeepalivedConf(nodes[i], peersOf(nodes, i), netlab.HostLink, c.vip, i == 0, script), 0o644)
	pid := func(kind string) string { return filepath.Join(c.dir, h.Name()+"-"+kind+".pid") }
	c.start(h, "keepalived", "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"-f", conf, "--pid", pid("keepalived"), "--vrrp_pid", pid("vrrp"), "--checkers_pid", pid("checkers"))
}

// epconsoleConfig writes h's config.hcl: the same cluster as the
// keepalived instance (priorities, the three LBs as peers, the HAProxy
// backends) with epconsole's health checks, and preempt as given.
func (c *cutLab) epconsoleConfig(h *netlab.Host, preempt bool) string {
	backends := map[string]netip.Addr{}
	for _, b := range c.lab.HostsByRole(netlab.RoleBackend) {
		backends[b.Name()] = b.IPv4()
	}
	nodes := c.nodes()
	i := slices.IndexFunc(nodes, func(n lbNode) bool { return n.Name == h.Name() })
	conf := epconsoleConf(epconsoleParams{
		Self: nodes[i], Peers: peersOf(nodes, i), Interface: netlab.HostLink, VIP: c.vip, Port: servicePort,
		Backends: backends, KeyFile: c.key, CAFile: c.lab.CAFile(),
		StateDir: filepath.Join(c.dir, h.Name()+"-state"), Socket: filepath.Join(c.dir, h.Name()+".sock"),
	})
	if !preempt {
		conf = strings.Replace(conf, "preempt = true", "preempt = false", 1)
	}
	return c.writeFile(h.Name()+".hcl", conf, 0o644)
}

// startEpconsole starts `epconsole --daemon` on h (its config is written
// before the cut-over begins, as the runbook installs it everywhere first).
func (c *cutLab) startEpconsole(h *netlab.Host) {
	c.start(h, "epconsole", c.bin, "--daemon", "-c", filepath.Join(c.dir, h.Name()+".hcl"), "--log-level", "info")
}

// start runs argv in h's namespace as "<host>-<kind>", output to a log
// file in the lab's directory. The test's end kills what is left.
func (c *cutLab) start(h *netlab.Host, kind string, argv ...string) *proc {
	c.t.Helper()
	name := h.Name() + "-" + kind
	if p := c.procs[name]; p != nil && !p.ended() {
		c.t.Fatalf("%s is already running", name)
	}
	p := &proc{name: name, logPath: filepath.Join(c.dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = h.Command(c.ctx, argv...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("starting %s on %s: %v", argv[0], h.Name(), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs[name] = p
	delete(c.stopped, name)
	c.t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if c.t.Failed() {
			c.t.Logf("%s log (%s):\n%s", p.name, p.logPath, tail(p.logPath, 25))
		}
	})
	return p
}

// ended reports whether the process has exited.
func (p *proc) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to "<host>-<kind>" (what `systemctl stop` does) and
// waits until it has exited: keepalived then has removed its VIP and sent
// its priority-0 advertisement, HAProxy has closed its listener.
func (c *cutLab) stop(h *netlab.Host, kind string) error {
	name := h.Name() + "-" + kind
	p := c.procs[name]
	if p == nil {
		return fmt.Errorf("%s was never started", name)
	}
	if p.ended() {
		return fmt.Errorf("%s had already ended (%v)", name, p.err)
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within 5 s of SIGTERM; killed", name)
	}
}

// owners lists the LBs that have the VIP on their link now.
func (c *cutLab) owners() ([]string, error) {
	var out []string
	for _, h := range c.lbs {
		has, err := c.checks[h.Name()].Has(c.ctx, netlab.HostLink, c.vip)
		if err != nil {
			return nil, fmt.Errorf("VIP on %s: %w", h.Name(), err)
		}
		if has {
			out = append(out, h.Name())
		}
	}
	return out, nil
}

// crashed names a process that ended without being stopped.
func (c *cutLab) crashed(stopped map[string]bool) error {
	for name, p := range c.procs {
		if !stopped[name] && p.ended() {
			return fmt.Errorf("%s ended (%v); log %s:\n%s", name, p.err, p.logPath, tail(p.logPath, 25))
		}
	}
	return nil
}

// waitOwners waits until exactly want hold the VIP, continuously for
// stable.
func (c *cutLab) waitOwners(want []string, stable, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var since time.Time
	var last []string
	for time.Now().Before(deadline) {
		o, err := c.owners()
		if err != nil {
			return err
		}
		if slices.Equal(o, want) {
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
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("VIP owners %v, want %v for %s, within %s", last, want, stable, timeout)
}

// ownerWatch samples the VIP owners every 10 ms while a step runs: how
// long the VIP sat on two or more LBs, and on none.
type ownerWatch struct {
	stop chan struct{}
	done chan struct{}
	res  ownerTimes
}

type ownerTimes struct {
	Dual, None time.Duration
	Err        error
}

func (c *cutLab) watchOwners() *ownerWatch {
	w := &ownerWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := time.Now()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			o, err := c.owners()
			now := time.Now()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					w.res.Err = err
				}
				return
			}
			switch {
			case len(o) > 1:
				w.res.Dual += now.Sub(last)
			case len(o) == 0:
				w.res.None += now.Sub(last)
			}
			last = now
		}
	}()
	return w
}

func (w *ownerWatch) end() ownerTimes {
	close(w.stop)
	<-w.done
	return w.res
}
