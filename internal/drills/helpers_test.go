package drills

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/vishvananda/netns"
)

// The address slice of this package; every test's lab is its own segment.
var (
	net4 = netip.MustParsePrefix("198.18.5.0/24")
	net6 = netip.MustParsePrefix("fd00:198:18:5::/64")
)

const servicePort = 6443

// priorities of lb1..lb5: lb1 is the first owner, lb2 its successor (lb4
// and lb5 only in clusters of five, clusterOpts.peers).
var priorities = map[string]int{"lb1": 150, "lb2": 120, "lb3": 100, "lb4": 80, "lb5": 60}

// cluster is one test's lab: a client, three LB hosts each running the
// epconsole daemon, three backends running stand-in apiservers.
type cluster struct {
	t       *testing.T
	ctx     context.Context
	lab     *netlab.Lab
	client  *netlab.Host
	lbs     []*netlab.Host
	dir     string
	args    []string
	vip     netip.Addr
	daemons map[string]*daemonProc
	checks  map[string]*dataplane.VIP
	// standins are the stand-in apiservers by backend name.
	standins map[string]*netlab.Standin
}

// daemonProc is one running `epconsole --daemon`.
type daemonProc struct {
	name    string
	cmd     *exec.Cmd
	cfgPath string
	logPath string
	done    chan struct{}
	err     error
}

// newCluster builds the lab, starts the stand-ins and the three daemons,
// and waits until exactly one LB owns the VIP. It returns that owner.
func newCluster(t *testing.T, prefix string, timeout time.Duration, extraArgs ...string) (*cluster, string) {
	t.Helper()
	return newClusterWith(t, prefix, timeout, clusterOpts{args: extraArgs})
}

// clusterOpts vary a drill's cluster.
type clusterOpts struct {
	// args are extra daemon flags for every LB.
	args []string
	// tweak edits an LB's generated config.hcl (nil: none).
	tweak func(c *cluster, lb, hcl string) string
	// ownKey lists LBs given a gossip key of their own (not the shared one).
	ownKey []string
	// before runs after the stand-ins started, before any daemon.
	before func(c *cluster)
	// peers is the number of LBs (0: three; at most five).
	peers int
	// extra are more client hosts on the bridge, by name (not peers).
	extra []string
	// net4 and net6 are the lab's segment (zero: the package's net4 and
	// net6).
	net4, net6 netip.Prefix
	// ownerWait bounds the wait for the first VIP owner (0: 15s).
	ownerWait time.Duration
}

func newClusterWith(t *testing.T, prefix string, timeout time.Duration, o clusterOpts) (*cluster, string) {
	t.Helper()
	c := newLab(t, prefix, timeout, o)
	shared := c.writeKey("gossip.key")
	for _, h := range c.lbs {
		keyFile := shared
		if slices.Contains(o.ownKey, h.Name()) {
			keyFile = c.writeKey(h.Name() + ".key")
		}
		cfg := c.config(h, keyFile)
		if o.tweak != nil {
			cfg = o.tweak(c, h.Name(), cfg)
		}
		v, err := dataplane.NewVIP(dataplane.WithNetNS(h.Namespace()))
		if err != nil {
			t.Fatalf("VIP check for %s: %v", h.Name(), err)
		}
		t.Cleanup(func() { v.Close() })
		c.checks[h.Name()] = v
		path := filepath.Join(c.dir, h.Name()+".hcl")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if o.before != nil {
		o.before(c)
	}
	for _, h := range c.lbs {
		c.start(h)
	}
	wait := o.ownerWait
	if wait == 0 {
		wait = 15 * time.Second
	}
	owner := c.waitOneOwner(wait, "")
	return c, owner
}

// newLab builds a drill's lab (a client, the LB hosts, three stand-in
// apiservers cp1..cp3 and o.extra's clients) and starts the stand-ins; no
// daemon runs yet.
func newLab(t *testing.T, prefix string, timeout time.Duration, o clusterOpts) *cluster {
	t.Helper()
	if epconsoleBin == "" {
		t.Fatal("no epconsole binary (TestMain did not build one)")
	}
	hosts := []netlab.HostSpec{{Name: "client", Role: netlab.RoleClient}}
	peers := o.peers
	if peers == 0 {
		peers = 3
	}
	for i := 1; i <= peers; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("lb%d", i), Role: netlab.RoleLB})
	}
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, netlab.HostSpec{Name: fmt.Sprintf("cp%d", i), Role: netlab.RoleBackend})
	}
	for _, name := range o.extra {
		hosts = append(hosts, netlab.HostSpec{Name: name, Role: netlab.RoleClient})
	}
	n4, n6 := net4, net6
	if o.net4.IsValid() {
		n4, n6 = o.net4, o.net6
	}
	lab := netlab.New(t, netlab.Spec{Prefix: prefix, IPv4: n4, IPv6: n6, Hosts: hosts})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	c := &cluster{
		t: t, ctx: ctx, lab: lab, client: lab.Host("client"), lbs: lab.HostsByRole(netlab.RoleLB),
		dir: t.TempDir(), args: o.args, vip: lab.VIP4(), daemons: map[string]*daemonProc{}, checks: map[string]*dataplane.VIP{},
		standins: map[string]*netlab.Standin{},
	}
	for _, h := range lab.HostsByRole(netlab.RoleBackend) {
		s, err := h.StartStandin(ctx, netlab.StandinOpts{Name: h.Name()})
		if err != nil {
			t.Fatalf("stand-in on %s: %v", h.Name(), err)
		}
		c.standins[h.Name()] = s
	}
	return c
}

// writeKey writes a fresh gossip key to the file name in the cluster's
// directory and returns its path.
func (c *cluster) writeKey(name string) string {
	c.t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	f := filepath.Join(c.dir, name)
	if err := os.WriteFile(f, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return f
}

// config is the config.hcl of LB h.
func (c *cluster) config(h *netlab.Host, keyFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster_name = \"drill\"\nstate_dir = %q\n", filepath.Join(c.dir, h.Name()+"-state"))
	fmt.Fprintf(&b, "vip %q {\n  interface = %q\n  port = %d\n}\n", c.vip, netlab.HostLink, servicePort)
	fmt.Fprintf(&b, "node {\n  name = %q\n  gossip_bind = \"%s:7946\"\n  priority = %d\n}\n", h.Name(), h.IPv4(), priorities[h.Name()])
	for _, p := range c.lbs {
		if p != h {
			fmt.Fprintf(&b, "peer %q {\n  address = \"%s:7946\"\n}\n", p.Name(), p.IPv4())
		}
	}
	fmt.Fprintf(&b, "gossip {\n  key_file = %q\n}\n", keyFile)
	for _, be := range c.lab.HostsByRole(netlab.RoleBackend) {
		fmt.Fprintf(&b, "backend %q {\n  address = %q\n  port = %d\n}\n", be.Name(), be.IPv4().String(), servicePort)
	}
	fmt.Fprintf(&b, "health {\n  interval = \"500ms\"\n  fast_interval = \"100ms\"\n  timeout = \"400ms\"\n}\n")
	fmt.Fprintf(&b, "tls {\n  ca_file = %q\n}\n", c.lab.CAFile())
	fmt.Fprintf(&b, "status {\n  socket = %q\n  metrics_listen = \"\"\n}\n", filepath.Join(c.dir, h.Name()+".sock"))
	return b.String()
}

// start starts the daemon on h, logging to a file kept with the test.
func (c *cluster) start(h *netlab.Host) *daemonProc {
	c.t.Helper()
	d := &daemonProc{
		name: h.Name(), cfgPath: filepath.Join(c.dir, h.Name()+".hcl"),
		logPath: filepath.Join(c.dir, h.Name()+".log"), done: make(chan struct{}),
	}
	f, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	d.cmd = h.Command(c.ctx, append([]string{epconsoleBin, "--daemon", "-c", d.cfgPath, "--log-level", "debug"}, c.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("starting the daemon on %s: %v", h.Name(), err)
	}
	go func() {
		d.err = d.cmd.Wait()
		f.Close()
		close(d.done)
	}()
	c.daemons[h.Name()] = d
	c.t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
		}
		if c.t.Failed() || os.Getenv("EPCONSOLE_DRILL_LOGS") != "" {
			c.dumpLog(d)
		}
	})
	return d
}

// dumpLog prints the tail of a daemon's log into the test output.
func (c *cluster) dumpLog(d *daemonProc) {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		c.t.Logf("%s log: %v", d.name, err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var keep []string
	for _, l := range lines {
		// The decision, VIP and reload lines tell the story; probe and
		// gossip chatter does not.
		if strings.Contains(l, `"level":"DEBUG"`) {
			continue
		}
		keep = append(keep, l)
	}
	if n := 60; len(keep) > n && os.Getenv("EPCONSOLE_DRILL_LOGS") == "" {
		keep = keep[len(keep)-n:]
	}
	c.t.Logf("%s log (%s), last %d lines:\n%s", d.name, d.logPath, len(keep), strings.Join(keep, "\n"))
}

// signal sends sig to the daemon on name.
func (c *cluster) signal(name string, sig syscall.Signal) {
	c.t.Helper()
	if err := c.daemons[name].cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to %s: %v", sig, name, err)
	}
}

// owners lists the LBs that have the VIP address on their link now.
func (c *cluster) owners() []string {
	c.t.Helper()
	var out []string
	for _, h := range c.lbs {
		has, err := c.checks[h.Name()].Has(c.ctx, netlab.HostLink, c.vip)
		if err != nil {
			c.t.Fatalf("VIP on %s: %v", h.Name(), err)
		}
		if has {
			out = append(out, h.Name())
		}
	}
	return out
}

// waitOneOwner waits until exactly one LB other than not has the VIP, and
// stays so for 300 ms; it returns that LB.
func (c *cluster) waitOneOwner(timeout time.Duration, not string) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last []string
	var since time.Time
	for time.Now().Before(deadline) {
		o := c.owners()
		if len(o) == 1 && o[0] != not {
			if !slices.Equal(o, last) {
				since = time.Now()
			}
			if time.Since(since) >= 300*time.Millisecond {
				return o[0]
			}
		}
		last = o
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range c.daemons {
		c.dumpLog(d)
	}
	c.t.Fatalf("no single VIP owner (other than %q) within %s; owners now %v", not, timeout, last)
	return ""
}

// forgetFlows deletes, on every LB, the conntrack entries of finished
// connections through the VIP to backend (the test's own earlier loads).
// Linux conntrack sends a SYN that matches a live entry (ESTABLISHED,
// FIN_WAIT, CLOSE_WAIT, LAST_ACK, or a synced TIME_WAIT) along that
// entry's NAT, whatever the slot map says now: a fresh connection whose
// client reuses such a port reaches the old backend, drained or not. The
// client's ports come from a counter the kernel shares across network
// namespaces, so other labs on the same addresses can wrap it onto this
// test's earlier ports. Call it only when no connection to backend that
// the test still needs is open.
func (c *cluster) forgetFlows(backend string) {
	c.t.Helper()
	to := netip.AddrPortFrom(c.lab.Host(backend).IPv4(), servicePort)
	for _, lb := range c.lbs {
		ct, err := dataplane.NewConntrack(dataplane.WithNetNSPath(lb.NsPath()))
		if err != nil {
			c.t.Fatalf("conntrack of %s: %v", lb.Name(), err)
		}
		n, err := ct.DeleteBackendFlows(c.ctx, netipPort(c), to)
		ct.Close()
		if err != nil {
			c.t.Fatalf("deleting %s's flows to %s: %v", lb.Name(), backend, err)
		}
		c.t.Logf("%s: %d finished flows to %s forgotten", lb.Name(), n, backend)
	}
}

// load runs n fresh TLS connections from the client through the VIP.
func (c *cluster) loadOpts(n int, interval time.Duration) netlab.ClientOpts {
	return netlab.ClientOpts{
		Target: netip.AddrPortFrom(c.vip, servicePort), Count: n, Interval: interval, Concurrency: 4,
		RequestTimeout: 3 * time.Second, Timeout: 45 * time.Second,
	}
}

// logHas reports whether the daemon's log holds a line containing every
// one of parts.
func logHas(d *daemonProc, parts ...string) bool {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return false
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		ok := true
		for _, p := range parts {
			if !bytes.Contains(l, []byte(p)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// waitLog waits until the daemon's log holds a line with every part.
func (c *cluster) waitLog(d *daemonProc, timeout time.Duration, parts ...string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if logHas(d, parts...) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.dumpLog(d)
	c.t.Fatalf("%s log: no line with %q within %s", d.name, parts, timeout)
}

// waitExit waits for the daemon to end and returns how it ended.
func (c *cluster) waitExit(d *daemonProc, timeout time.Duration) error {
	c.t.Helper()
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		return errors.New("still running")
	}
}

func netipPort(c *cluster) netip.AddrPort { return netip.AddrPortFrom(c.vip, servicePort) }

// waitOneOwnerAmong waits until one LB other than not owns the VIP, and
// only it among the others (not may still hold it, cut off).
func (c *cluster) waitOneOwnerAmong(timeout time.Duration, not string) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last []string
	for time.Now().Before(deadline) {
		var others []string
		for _, o := range c.owners() {
			if o != not {
				others = append(others, o)
			}
		}
		if len(others) == 1 {
			return others[0]
		}
		last = others
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range c.daemons {
		c.dumpLog(d)
	}
	c.t.Fatalf("no single new owner among the LBs other than %s within %s: %v", not, timeout, last)
	return ""
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

// writeFile replaces p atomically (the daemon may read it at any time).
func writeFile(p, s string) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// lastEventTime returns the time of the daemon's last event of kind, from
// its JSON log.
func lastEventTime(d *daemonProc, kind string) (time.Time, error) {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, l := range bytes.Split(b, []byte("\n")) {
		var e struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
			Kind string    `json:"kind"`
		}
		if json.Unmarshal(l, &e) != nil || e.Msg != "event" || e.Kind != kind {
			continue
		}
		last = e.Time
	}
	if last.IsZero() {
		return last, fmt.Errorf("%s log has no %s event", d.name, kind)
	}
	return last, nil
}

// logLines returns the daemon's log lines.
func logLines(d *daemonProc) []string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return nil
	}
	return strings.Split(string(b), "\n")
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// inHost runs open on a thread moved into h's namespace and never
// unlocked (the runtime retires it with its goroutine), so the socket it
// opens stays in that namespace; what names the socket in a failure.
func inHost[T any](t *testing.T, h *netlab.Host, what string, open func() (T, error)) T {
	t.Helper()
	ns, err := h.OpenNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			ch <- result{err: err}
			return
		}
		v, err := open()
		ch <- result{v, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("%s in %s: %v", what, h.Namespace(), r.err)
	}
	return r.v
}

// linesSince returns the daemon's log lines stamped at or after since.
func linesSince(d *daemonProc, since time.Time) []string {
	var out []string
	for _, l := range logLines(d) {
		var e struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && !e.Time.Before(since) {
			out = append(out, l)
		}
	}
	return out
}

// logSince reports whether a log line stamped at or after since holds
// every part.
func logSince(d *daemonProc, since time.Time, parts ...string) bool {
	return slices.ContainsFunc(linesSince(d, since), func(l string) bool { return containsAll(l, parts...) })
}
