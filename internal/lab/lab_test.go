package lab

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/daemon"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/testenv"
	"github.com/epconsole/epconsole/probes"
)

// The test's own prefix and address slice, so it can run beside a real lab
// and TestLabDemo.
const testPrefix = "lbt"

var (
	testIPv4 = netip.MustParsePrefix("198.18.9.0/24")
	testIPv6 = netip.MustParsePrefix("fd00:198:18:9::/64")
)

// view returns observer's own view of backend in s ("" if none).
func view(s status.Snapshot, backend string) status.BackendView {
	for _, b := range s.Backends {
		if b.Name != backend {
			continue
		}
		for _, v := range b.Views {
			if v.Peer == s.Node {
				return v
			}
		}
	}
	return status.BackendView{}
}

func peerFresh(s status.Snapshot, name string) bool {
	for _, p := range s.Peers {
		if p.Name == name {
			return p.Fresh
		}
	}
	return false
}

// etcdView reports the owner's etcd check as its status socket shows it
// (the TUI's etcd panel): healthy members, quorum, tolerance, leader.
func etcdView(s status.Snapshot) (healthy, quorum, tolerance int, leader string, ok bool) {
	if s.Etcd == nil {
		return 0, 0, 0, "", false
	}
	return s.Etcd.Healthy, s.Etcd.Quorum, s.Etcd.Tolerance, s.Etcd.Leader, true
}

func sanPresent(s status.Snapshot, backend, san string) (present, known bool) {
	for _, c := range s.Certificates {
		if c.Backend != backend {
			continue
		}
		for _, x := range c.SANs {
			if x.Name == san {
				return x.Present, true
			}
		}
	}
	return false, false
}

// upTestLab brings up a lab with the tests' prefix and address slice
// (peers and backends 0: the defaults), after removing one a crashed test
// left. The caller closes it.
func upTestLab(t *testing.T, ctx context.Context, peers, backends int) *Lab {
	t.Helper()
	testenv.NeedNetns(t)
	if epconsoleBin == "" {
		t.Fatal("no epconsole binary (TestMain did not build one)")
	}
	if err := Down(testPrefix); err != nil {
		t.Fatal(err)
	}
	l, err := Up(ctx, Options{
		Prefix: testPrefix, IPv4: testIPv4, IPv6: testIPv6, Binary: epconsoleBin,
		Peers: peers, Backends: backends,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatalf("lab up (--peers %d --backends %d): %v", peers, backends, err)
	}
	return l
}

// waitStatus polls peer's status socket until cond holds and returns how
// long it took.
func waitStatus(t *testing.T, ctx context.Context, l *Lab, peer string, bound time.Duration, what string, cond func(status.Snapshot) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(bound)
	var last status.Snapshot
	var lastErr error
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := l.Status(qctx, peer)
		cancel()
		if err == nil {
			if cond(s) {
				return time.Since(start)
			}
			last = s
		}
		lastErr = err
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: not seen on %s's status socket within %s (last error %v; findings %v)", what, peer, bound, lastErr, last.Findings)
	return 0
}

// checkDoc is the part of `epconsole check --json` the tests read.
type checkDoc struct {
	ExitCode int    `json:"exit_code"`
	Summary  string `json:"summary"`
	Checks   struct {
		Etcd *struct {
			Summary string              `json:"summary"`
			Members []probes.EtcdMember `json:"members"`
			Verdict probes.EtcdVerdict  `json:"verdict"`
		} `json:"etcd"`
	} `json:"checks"`
	Findings []probes.Finding `json:"findings"`
}

// has reports whether the document has a finding of check with code
// (about subject, unless subject is "").
func (d checkDoc) has(check probes.Check, code, subject string) bool {
	return slices.ContainsFunc(d.Findings, func(f probes.Finding) bool {
		return f.Check == check && f.Code == code && (subject == "" || f.Subject == subject)
	})
}

// etcdVerdict returns the etcd section's verdict (zero when absent).
func (d checkDoc) etcdVerdict() probes.EtcdVerdict {
	if d.Checks.Etcd == nil {
		return probes.EtcdVerdict{}
	}
	return d.Checks.Etcd.Verdict
}

// waitCheck runs `epconsole check <area> --json` in peer's namespace until
// it exits with want and cond holds, and returns how long that took.
func waitCheck(t *testing.T, ctx context.Context, l *Lab, peer, area string, want int, bound time.Duration, what string, cond func(checkDoc) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var lastCode int
	var lastOut []byte
	for time.Since(start) < bound {
		code, out, err := l.Check(ctx, peer, area)
		if err != nil {
			t.Fatal(err)
		}
		var d checkDoc
		if err := json.Unmarshal(out, &d); err != nil {
			t.Fatalf("%s: check %s --json: %v\n%s", what, area, err, out)
		}
		if d.ExitCode != code {
			t.Errorf("%s: check %s: exit %d but exit_code %d in the JSON", what, area, code, d.ExitCode)
		}
		if code == want && (cond == nil || cond(d)) {
			return time.Since(start)
		}
		lastCode, lastOut = code, out
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: check %s on %s did not exit %d with the expected findings within %s; last exit %d:\n%s", what, area, peer, want, bound, lastCode, lastOut)
	return 0
}

// TestLabDrills brings a lab up headless, waits for one owner, runs every
// drill and checks that the owner's status socket (a survivor's, for
// kill-owner) shows the fault, that `epconsole check` in the owner's
// namespace turns non-OK where it probes the fault and OK after the heal,
// and that teardown leaves no namespace or process. The etcd drills are
// judged by check etcd alone (the daemons check etcd every 60 s), the
// partition and kill-owner by the cluster part of check all (peer-down).
func TestLabDrills(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	started := time.Now()
	l := upTestLab(t, ctx, 0, 0)
	var pids []int
	closed := false
	closeLab := func() {
		if closed {
			return
		}
		closed = true
		for _, p := range l.Peers() {
			pids = append(pids, l.DaemonPid(p))
		}
		if t.Failed() {
			for _, p := range l.Peers() {
				if b, err := os.ReadFile(l.LogPath(p)); err == nil {
					lines := strings.Split(strings.TrimSpace(string(b)), "\n")
					t.Logf("%s daemon VIP events and decisions:\n%s", p, strings.Join(vipLines(l.LogPath(p)), "\n"))
					if len(lines) > 40 {
						lines = lines[len(lines)-40:]
					}
					t.Logf("%s daemon log, last lines:\n%s", p, strings.Join(lines, "\n"))
				}
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	}
	t.Cleanup(closeLab)
	owner, err := l.Owner(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab up in %s, owner %s", time.Since(started).Round(time.Millisecond), owner)

	for _, v6 := range []bool{false, true} {
		res, err := l.Load(ctx, 150, v6, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed != 0 || len(res.Backends) != 3 {
			t.Fatalf("through the VIP (v6 %v): ok %d failed %d backends %v errors %v", v6, res.OK, res.Failed, res.Backends, res.Errors)
		}
	}
	if code, out, err := l.Check(ctx, owner, "all"); err != nil || code != 0 {
		t.Fatalf("check before any fault: exit %d (%v): %s", code, err, out)
	}
	// A real three-member etcd cluster on cp1..cp3, with a leader.
	members := l.EtcdMembers()
	if !slices.Equal(members, []string{"cp1", "cp2", "cp3"}) {
		t.Fatalf("etcd members %v, want cp1..cp3", members)
	}
	if pids := l.Etcd().Pids(); len(pids) != 3 {
		t.Fatalf("etcd member processes %v, want 3", pids)
	}
	waitCheck(t, ctx, l, owner, "etcd", 0, 10*time.Second, "etcd after lab up", func(d checkDoc) bool {
		v := d.etcdVerdict()
		t.Logf("check etcd: %s", d.Summary)
		return v.Members == 3 && v.Healthy == 3 && v.Quorum == 2 && v.Tolerance == 1 && slices.Contains(members, v.Leader)
	})
	// The daemons check etcd too (every daemon.DefaultEtcdInterval): the
	// owner's status socket, which the TUI shows, has the same quorum.
	etcdBound := 2*daemon.DefaultEtcdInterval + 5*time.Second
	waitStatus(t, ctx, l, owner, etcdBound, "etcd 3/3 on the status socket", func(s status.Snapshot) bool {
		h, q, tol, lead, ok := etcdView(s)
		return ok && h == 3 && q == 2 && tol == 1 && slices.Contains(members, lead)
	})

	up := func(b string) func(status.Snapshot) bool {
		return func(s status.Snapshot) bool { return view(s, b).State == "up" }
	}
	// check's exit codes (Nagios): one backend of three down is WARNING
	// (1), a certificate without the VIP SANs CRITICAL (2), healed OK (0).
	checkCode := func(area string, want int, what string) {
		t.Helper()
		code, out, err := l.Check(ctx, owner, area)
		if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Errorf("%s: check %s exit %d, want %d:\n%s", what, area, code, want, out)
		}
	}
	detected := map[string]time.Duration{}
	drills := Faults()
	if only := os.Getenv("EPCONSOLE_LAB_DRILLS"); only != "" {
		drills = strings.Split(only, ",") // a subset while working on one drill
	}
	for _, name := range drills {
		// The owner may have moved without a fault (a false failover on a
		// loaded machine); observe the current one, and say so.
		if o, err := l.WaitOwner(ctx, ""); err != nil {
			t.Fatal(err)
		} else if o != owner {
			t.Logf("NOTE: the VIP moved from %s to %s with no fault in place", owner, o)
			for _, p := range l.Peers() {
				t.Logf("%s VIP events and decisions:\n%s", p, strings.Join(vipLines(l.LogPath(p)), "\n"))
			}
			owner = o
		}
		target, err := l.FaultTarget(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		see, err := l.Fault(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("fault %s on %s: %s", name, target, see)
		var d time.Duration
		switch name {
		case FaultStopBackend, FaultSlowBackend:
			d = waitStatus(t, ctx, l, owner, 10*time.Second, name, func(s status.Snapshot) bool { return view(s, target).State == "down" })
			checkCode("backends", 1, name)
		case FaultUnreadyBackend:
			d = waitStatus(t, ctx, l, owner, 10*time.Second, name, func(s status.Snapshot) bool {
				v := view(s, target)
				return v.State == "down" && strings.Contains(v.Reason, "etcd")
			})
			checkCode("backends", 1, name)
		case FaultSANMissing:
			checkCode("tls", 2, name)
			// The daemon checks certificates every 60 s.
			d = waitStatus(t, ctx, l, owner, 75*time.Second, name, func(s status.Snapshot) bool {
				p, known := sanPresent(s, target, l.Net().VIP4().String())
				return known && !p
			})
		case FaultPartition:
			d = waitStatus(t, ctx, l, owner, 10*time.Second, name, func(s status.Snapshot) bool { return !peerFresh(s, target) })
			// The cut-off peer hears no majority: it must never claim.
			for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				qctx, cancel := context.WithTimeout(ctx, time.Second)
				s, err := l.Status(qctx, target)
				cancel()
				if err != nil {
					t.Fatalf("status of the cut-off %s: %v", target, err)
				}
				for _, v := range s.VIPs {
					if v.Here {
						t.Fatalf("%s, cut off from its peers, holds VIP %s", target, v.Address)
					}
				}
			}
			if o, err := l.Owner(ctx); err != nil || o != owner {
				t.Logf("NOTE: during the partition of %s the owner is %q (%v), was %s", target, o, err, owner)
			}
			// check all on the owner: the cut-off peer is down (WARNING).
			waitCheck(t, ctx, l, owner, "all", 1, 10*time.Second, name, func(d checkDoc) bool {
				return d.has("cluster", "peer-down", target)
			})
		case FaultKillOwner:
			start := time.Now()
			newOwner, err := l.WaitOwner(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			d = time.Since(start)
			t.Logf("kill-owner: %s owns the VIP now", newOwner)
			// check all on the new owner: the killed peer is down (WARNING).
			waitCheck(t, ctx, l, newOwner, "all", 1, 10*time.Second, name, func(d checkDoc) bool {
				return d.has("cluster", "peer-down", target)
			})
		case FaultEtcdStopOne:
			if target != "cp3" {
				t.Fatalf("etcd-stop-one stops %q, want cp3", target)
			}
			if r := l.Etcd().Running(); !slices.Equal(r, []string{"cp1", "cp2"}) {
				t.Fatalf("etcd members running %v, want cp1 and cp2", r)
			}
			// Quorum holds, no more failures tolerated: WARNING.
			d = waitCheck(t, ctx, l, owner, "etcd", 1, 15*time.Second, name, func(d checkDoc) bool {
				v := d.etcdVerdict()
				return v.Healthy == 2 && v.Quorum == 2 && v.Tolerance == 0 && v.Leader != "" && v.Leader != target &&
					d.has(probes.CheckEtcd, "member-unreachable", target) && d.has(probes.CheckEtcd, "no-tolerance", "") &&
					!d.has(probes.CheckEtcd, "quorum-lost", "")
			})
			sd := waitStatus(t, ctx, l, owner, etcdBound, name+" on the status socket", func(s status.Snapshot) bool {
				h, q, tol, lead, ok := etcdView(s)
				return ok && h == 2 && q == 2 && tol == 0 && lead != "" && lead != target
			})
			t.Logf("%s: the owner's status socket shows 2/3 after %s", name, sd.Round(time.Millisecond))
		case FaultEtcdQuorumLost:
			if target != "cp2,cp3" {
				t.Fatalf("etcd-quorum-lost stops %q, want cp2,cp3", target)
			}
			// Quorum lost, no leader: CRITICAL.
			d = waitCheck(t, ctx, l, owner, "etcd", 2, 15*time.Second, name, func(d checkDoc) bool {
				v := d.etcdVerdict()
				return v.Healthy < v.Quorum && v.Leader == "" && d.has(probes.CheckEtcd, "quorum-lost", "") &&
					d.has(probes.CheckEtcd, "member-unreachable", "cp2") && d.has(probes.CheckEtcd, "member-unreachable", "cp3")
			})
			sd := waitStatus(t, ctx, l, owner, etcdBound, name+" on the status socket", func(s status.Snapshot) bool {
				h, q, _, lead, ok := etcdView(s)
				return ok && h < q && lead == ""
			})
			t.Logf("%s: the owner's status socket shows quorum lost after %s", name, sd.Round(time.Millisecond))
		}
		detected[name] = d
		t.Logf("detected %s on %s in %s", name, target, d.Round(time.Millisecond))

		if _, err := l.Heal(ctx, name); err != nil {
			t.Fatal(err)
		}
		switch name {
		case FaultStopBackend, FaultSlowBackend, FaultUnreadyBackend:
			h := waitStatus(t, ctx, l, owner, 10*time.Second, name+" healed", up(target))
			t.Logf("healed %s: %s up after %s", name, target, h.Round(time.Millisecond))
			checkCode("backends", 0, name+" healed")
		case FaultSANMissing:
			checkCode("tls", 0, name+" healed")
		case FaultPartition:
			waitStatus(t, ctx, l, owner, 10*time.Second, name+" healed", func(s status.Snapshot) bool { return peerFresh(s, target) })
			waitCheck(t, ctx, l, owner, "all", 0, 10*time.Second, name+" healed", nil)
			if o, err := l.Owner(ctx); err != nil || o == target {
				t.Errorf("after healing the partition: owner %q (%v); the healed %s must not take it", o, err, target)
			}
		case FaultKillOwner:
			newOwner, err := l.Owner(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The restarted daemon finds the address its killed
			// predecessor left, holds it through its startup wait
			// (silent: no lease), and gives it up once it has decided.
			waitStatus(t, ctx, l, target, 20*time.Second, "restarted "+target+" (the left address given up)", func(s status.Snapshot) bool {
				return s.Election.Owner == newOwner && peerFresh(s, newOwner) && len(s.VIPs) > 0 && !s.VIPs[0].Here
			})
			if o, err := l.Owner(ctx); err != nil || o != newOwner {
				t.Errorf("after restarting %s: owner %q (%v), want %s to keep it", target, o, err, newOwner)
			}
			owner = newOwner
			waitCheck(t, ctx, l, owner, "all", 0, 20*time.Second, name+" healed", nil)
		case FaultEtcdStopOne, FaultEtcdQuorumLost:
			// Heal waited until the members rejoined: quorum is back.
			if r := l.Etcd().Running(); len(r) != 3 {
				t.Fatalf("etcd members running after the heal: %v", r)
			}
			h := waitCheck(t, ctx, l, owner, "etcd", 0, 10*time.Second, name+" healed", func(d checkDoc) bool {
				v := d.etcdVerdict()
				return v.Healthy == 3 && v.Tolerance == 1 && v.Leader != ""
			})
			t.Logf("healed %s: check etcd OK after %s", name, h.Round(time.Millisecond))
			waitStatus(t, ctx, l, owner, etcdBound, name+" healed on the status socket", func(s status.Snapshot) bool {
				h, _, tol, lead, ok := etcdView(s)
				return ok && h == 3 && tol == 1 && lead != ""
			})
		}
	}
	res, err := l.Load(ctx, 150, false, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || len(res.Backends) != 3 {
		t.Errorf("after every heal: ok %d failed %d backends %v errors %v", res.OK, res.Failed, res.Backends, res.Errors)
	}
	for _, name := range drills {
		t.Logf("detection time %-16s %s", name, detected[name].Round(time.Millisecond))
	}

	etcdPids, etcdDir, labDir := l.Etcd().Pids(), l.Etcd().Dir, l.Net().Dir()
	closeLab()
	for _, pid := range etcdPids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("etcd member process %d left behind", pid)
		}
	}
	for _, d := range []string{etcdDir, labDir} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", d, err)
		}
	}
	testenv.NoNamespacesLeft(t, testPrefix)
	for _, pid := range pids {
		if pid != 0 && syscall.Kill(pid, 0) == nil {
			t.Errorf("daemon process %d left behind", pid)
		}
	}
}

// vipLines returns a daemon log's VIP events and election decisions.
func vipLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"kind":"vip-`) || strings.Contains(line, `"msg":"decision"`) || strings.Contains(line, `"kind":"peer-`) && !strings.Contains(line, "peer-backend") {
			out = append(out, line)
		}
	}
	return out
}

// testWriter sends the lab's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestUpDaemonFails: when the LBs' daemons cannot run, Up fails at once
// saying so (not after the owner wait) and removes everything it built.
func TestUpDaemonFails(t *testing.T) {
	testenv.NeedNetns(t)
	if err := Down(testPrefix); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	l, err := Up(ctx, Options{Prefix: testPrefix, IPv4: testIPv4, IPv6: testIPv6, Peers: 1, Backends: 1, Binary: "/bin/false"})
	if err == nil {
		l.Close()
		t.Fatal("Up succeeded with a binary that exits at once")
	}
	t.Logf("Up failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "no daemon is running") || !strings.Contains(err.Error(), "the daemon on lb1 exited") {
		t.Errorf("the error does not say the daemons exited: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Up took %s to fail, want well under the 60 s owner wait", d)
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), testPrefix+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}
