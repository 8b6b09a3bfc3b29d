package connsync

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestSyncBenchConntrackd (EPCONSOLE_BENCH_SYNC_RIVAL=1, with the
// workload variables of TestSyncBench): the same load against the
// anchor keepalived users add for this, conntrackd in FTFW mode between
// three LB namespaces on one link (multicast, as conntrack-tools'
// primary-backup example), each with epconsole's nft DNAT rules. The
// owner's table is filled and churned as in TestSyncBench; conntrackd
// follows its events and its peers keep the flows in their external
// caches (written into the kernel only when keepalived makes them
// primary: `conntrackd -c`). It reports the time until both peers' caches
// hold the fill, each conntrackd's CPU during the churn, how long a
// restarted peer takes to hold every flow after asking for a resync
// (`conntrackd -n`), and how long a peer's commit into its kernel table
// takes. The lag of each entry is not observable from outside (the
// caches are only counted).
func TestSyncBenchConntrackd(t *testing.T) {
	if os.Getenv("EPCONSOLE_BENCH_SYNC_RIVAL") != "1" {
		t.Skip("EPCONSOLE_BENCH_SYNC_RIVAL=1 runs conntrackd under the sync bench's load")
	}
	testenv.NeedNetns(t)
	if _, err := exec.LookPath("conntrackd"); err != nil {
		t.Skip("conntrackd is not installed: apt-get install -y conntrackd")
	}
	flows, rate, secs := envInt("EPCONSOLE_BENCH_SYNC_FLOWS", 50000), envInt("EPCONSOLE_BENCH_SYNC_RATE", 2000), envInt("EPCONSOLE_BENCH_SYNC_SECONDS", 60)
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("workload: %d flows, %d new and %d closed a second for %d s; %s; load average at start: %s", flows, rate, rate, secs, time.Now().UTC().Format(time.RFC3339), load)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+8*time.Minute)
	defer cancel()
	lab := netlab.New(t, netlab.Spec{
		Prefix: "syx", IPv4: netip.MustParsePrefix("198.18.191.0/24"), IPv6: netip.MustParsePrefix("fd00:198:18:191::/64"),
		Hosts: []netlab.HostSpec{{Name: "lb1", Role: netlab.RoleLB}, {Name: "lb2", Role: netlab.RoleLB}, {Name: "lb3", Role: netlab.RoleLB}},
	})
	dir := t.TempDir()
	var lbs []*rivalLB
	for _, name := range []string{"lb1", "lb2", "lb3"} {
		lbs = append(lbs, newRivalLB(t, ctx, lab.Host(name), dir))
	}
	owner := lbs[0]
	for _, p := range lbs[1:] {
		p.ctl(t, ctx, "-n") // ask for a resync, as a backup does
	}

	// Fill.
	start := time.Now()
	ap, err := owner.ct.NewSyncApplier()
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	var batch []dataplane.SyncEntry
	for i := range flows {
		e := benchEntry(i)
		e.ReplySrc = streamBackend
		batch = append(batch, e)
	}
	for i, err := range ap.ApplyAll(ctx, batch, false) {
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	for _, p := range lbs[1:] {
		waitUntil(t, 5*time.Minute, p.name+"'s conntrackd holds the fill", func() bool { return p.external(t, ctx) >= flows })
	}
	t.Logf("fill: %d flows created on the owner and in both peers' external caches in %v", flows, time.Since(start).Round(time.Millisecond))

	// Churn, as in TestSyncBench.
	cpu0 := make([]time.Duration, len(lbs))
	for i, l := range lbs {
		cpu0[i] = procCPU(t, l.cmd.Process.Pid)
	}
	t0 := time.Now()
	next, oldest := flows, 0
	step := max(rate/100, 1)
	tick := time.NewTicker(10 * time.Millisecond)
	for time.Since(t0) < time.Duration(secs)*time.Second {
		<-tick.C
		for range step {
			e := benchEntry(next)
			e.ReplySrc = streamBackend
			if err := ap.Apply(ctx, e); err != nil {
				t.Fatal(err)
			}
			next++
			old := benchEntry(oldest)
			old.Op = dataplane.SyncDelete
			if err := ap.Apply(ctx, old); err != nil {
				t.Fatal(err)
			}
			oldest++
		}
	}
	tick.Stop()
	elapsed := time.Since(t0)
	for i, l := range lbs {
		c := procCPU(t, l.cmd.Process.Pid) - cpu0[i]
		t.Logf("%s conntrackd CPU during the churn: %.1f %% of a core", l.name, 100*c.Seconds()/elapsed.Seconds())
	}
	want := owner.entries(t)
	t.Logf("churn: %d created and %d closed in %v; the owner holds %d entries", next-flows, oldest, elapsed.Round(time.Millisecond), want)
	c0 := time.Now()
	for _, p := range lbs[1:] {
		var got int
		for first := true; first || time.Since(c0) < 30*time.Second; first = false {
			if got = p.external(t, ctx); got == want {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s's external cache: %d entries %v after the churn ended (the owner's table: %d)", p.name, got, time.Since(c0).Round(time.Millisecond), want)
	}

	// Join: the last peer's conntrackd restarts empty and asks for a resync.
	joiner := lbs[2]
	joiner.stop()
	joiner.start(t, ctx)
	j0 := time.Now()
	joiner.ctl(t, ctx, "-n")
	waitUntil(t, 2*time.Minute, "the restarted peer's cache holds every flow", func() bool { return joiner.external(t, ctx) >= want-want/1000 })
	t.Logf("join: a restarted conntrackd holds all %d flows %v after asking for a resync", want, time.Since(j0).Round(time.Millisecond))

	// Takeover: a peer commits its cache into its kernel table.
	p := lbs[1]
	k0 := time.Now()
	p.ctl(t, ctx, "-c")
	t.Logf("commit: %s's conntrackd -c wrote its cache into the kernel table (%d entries there) in %v",
		p.name, p.entries(t), time.Since(k0).Round(time.Millisecond))
}

// rivalLB is one LB of the conntrackd bench.
type rivalLB struct {
	name, conf string
	h          *netlab.Host
	ct         *dataplane.Conntrack
	cmd        *exec.Cmd
	nsFd       int
}

func newRivalLB(t *testing.T, ctx context.Context, h *netlab.Host, dir string) *rivalLB {
	t.Helper()
	ns, err := h.OpenNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	opts := []dataplane.Option{dataplane.WithNetNSFd(int(ns))}
	d, err := dataplane.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Reconcile(ctx, dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{{Addr: streamVIP.Addr(), Port: streamVIP.Port()}},
		Backends: []dataplane.Backend{{Name: "cp1", Addr: streamBackend}},
		Healthy:  map[string]bool{"cp1": true},
	}); err != nil {
		t.Fatal(err)
	}
	ct, err := dataplane.NewConntrack(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ct.Close() })
	l := &rivalLB{name: h.Name(), h: h, ct: ct, nsFd: int(ns), conf: filepath.Join(dir, h.Name()+"-conntrackd.conf")}
	if err := os.WriteFile(l.conf, []byte(rivalConf(h.Name(), h.IPv4(), dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	l.start(t, ctx)
	t.Cleanup(l.stop)
	return l
}

// rivalConf is conntrackd.conf for one LB: FTFW over multicast on the
// LB link, TCP only, a hash table sized for the bench.
func rivalConf(name string, addr netip.Addr, dir string) string {
	return fmt.Sprintf(`Sync {
  Mode FTFW {
  }
  Multicast {
    IPv4_address 225.0.0.50
    Group 3780
    IPv4_interface %[2]s
    Interface %[4]s
    SndSocketBuffer 8388608
    RcvSocketBuffer 8388608
    Checksum on
  }
}
General {
  HashSize 65536
  HashLimit 1048576
  Syslog off
  LogFile %[3]s/%[1]s-conntrackd.log
  LockFile %[3]s/%[1]s-conntrackd.lock
  UNIX {
    Path %[3]s/%[1]s-conntrackd.ctl
  }
  NetlinkBufferSize 8388608
  NetlinkBufferSizeMaxGrowth 67108864
  Filter From Userspace {
    Protocol Accept {
      TCP
    }
    Address Ignore {
      IPv4_address 127.0.0.1
      IPv4_address %[2]s
    }
  }
}
`, name, addr, dir, netlab.HostLink)
}

func (l *rivalLB) start(t *testing.T, ctx context.Context) {
	t.Helper()
	dir := filepath.Dir(l.conf)
	_ = os.Remove(filepath.Join(dir, l.name+"-conntrackd.lock"))
	_ = os.Remove(filepath.Join(dir, l.name+"-conntrackd.ctl"))
	l.cmd = l.h.Command(ctx, "conntrackd", "-C", l.conf)
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(dir, l.name+"-conntrackd.ctl")
	waitUntil(t, 20*time.Second, l.name+"'s conntrackd is up", func() bool {
		_, err := os.Stat(ctl)
		return err == nil
	})
}

func (l *rivalLB) stop() {
	if l.cmd != nil && l.cmd.Process != nil {
		_ = l.cmd.Process.Kill()
		_ = l.cmd.Wait()
	}
}

// ctl runs `conntrackd -C conf args` in the LB's namespace.
func (l *rivalLB) ctl(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := l.h.Command(ctx, append([]string{"conntrackd", "-C", l.conf}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: conntrackd %v: %v: %s", l.name, args, err, out)
	}
	return string(out)
}

var activeRE = regexp.MustCompile(`current active connections:\s+(\d+)`)

// external is the number of flows in the LB's external cache (the
// second "current active connections" of `conntrackd -s`).
func (l *rivalLB) external(t *testing.T, ctx context.Context) int {
	t.Helper()
	out := l.ctl(t, ctx, "-s")
	i := strings.Index(out, "cache external")
	if i < 0 {
		t.Fatalf("%s: no external cache in conntrackd -s:\n%s", l.name, out)
	}
	m := activeRE.FindStringSubmatch(out[i:])
	if m == nil {
		t.Fatalf("%s: no count in conntrackd -s:\n%s", l.name, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// entries is the kernel table's entry count in the LB's namespace.
func (l *rivalLB) entries(t *testing.T) int {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: l.nsFd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.StatsGlobal()
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Entries)
}

// procCPU is a process's user and system time.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
