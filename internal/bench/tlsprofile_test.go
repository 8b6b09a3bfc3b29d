package bench

// Where the machine's CPU goes during the new-TLS-connection load, per
// system: the whole machine's user, system and softirq time from
// /proc/stat, every process of the lab by host and command from
// /proc/PID/stat, and, with perf installed, a system-wide perf profile
// of the load's middle. For epconsole and the nft rival it then stops
// the daemons (the nft tables stay, the VIP stays on lb1 and, for
// epconsole, the ARP lease gate is removed so that lb1 keeps answering
// for it) and measures again: the hop's own cost with no daemon, the
// "hand-written nft" figure. Not part of the suite: run it by hand,
//
//	EPCONSOLE_BENCH_TLSPROF=/tmp/prof go test -c -o /tmp/b.test ./internal/bench/ &&
//	  flock /tmp/epconsole-test.lock /tmp/b.test -test.run '^$' -test.bench '^BenchmarkTLSProfile$' -test.benchtime 1x -test.v
//
// (EPCONSOLE_BENCH_SYSTEMS limits the systems, epconsole-no-conn-sync
// among them: epconsole with --no-conn-sync; perf's data and reports
// go under the named directory).

import (
	"context"
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

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// tlsProfEnv names the directory for the profile's files; the benchmark
// runs only when it is set.
const tlsProfEnv = "EPCONSOLE_BENCH_TLSPROF"

// cpuStat is the machine's CPU time so far, in clock ticks (/proc/stat).
type cpuStat struct{ user, system, softirq, irq, idle, steal, total int64 }

func readCPUStat() cpuStat {
	b, _ := os.ReadFile("/proc/stat")
	l, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(l)
	v := make([]int64, 11)
	for i := 1; i < len(f) && i < len(v); i++ {
		v[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	c := cpuStat{user: v[1] + v[2], system: v[3], idle: v[4] + v[5], irq: v[6], softirq: v[7], steal: v[8]}
	c.total = c.user + c.system + c.idle + c.irq + c.softirq + c.steal
	return c
}

// procKey names a process of the lab: its host and command.
type procKey struct{ host, comm string }

// labTicks reads utime+stime of every process in every namespace of the
// lab, by pid, with its key.
func labTicks(lab *netlab.Lab, hosts []string) (map[int]int64, map[int]procKey) {
	ticks, keys := map[int]int64{}, map[int]procKey{}
	for _, name := range hosts {
		h := lab.Host(name)
		for _, pid := range nsPIDs(h) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			s := string(b)
			open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
			f := strings.Fields(s[end+1:])
			if open < 0 || len(f) < 13 {
				continue
			}
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			ticks[pid], keys[pid] = ut+st, procKey{name, s[open+1 : end]}
		}
	}
	return ticks, keys
}

// profRow is one measured load of the profile.
type profRow struct {
	system, phase string
	rate          float64
	machine       string
	procs         []string
}

// profileLoad runs the new-connection load through target for d and
// reads the CPU around it; with perf, it records the whole machine for
// the middle of the load into dir/name.data.
func profileLoad(b *testing.B, s *stack, target netip.AddrPort, d time.Duration, dir, name string) profRow {
	var hosts []string
	for _, h := range s.lab.Hosts() {
		hosts = append(hosts, h.Name())
	}
	p := params(true)
	p.LoadFor = d
	job, err := s.startProbe(s.ctx, "load", loadArgs{Target: target.String(), CAFile: s.lab.CAFile(), Clients: p.LoadClients, Duration: d, New: true})
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	c0, t0 := readCPUStat(), time.Now()
	pt0, _ := labTicks(s.lab, hosts)
	var perf *exec.Cmd
	if _, err := exec.LookPath("perf"); err == nil && dir != "" {
		perf = exec.CommandContext(s.ctx, "perf", "record", "-a", "-g", "-q", "-o", filepath.Join(dir, name+".data"), "--", "sleep", fmt.Sprint(int(d.Seconds()/2)))
		_ = perf.Start()
	}
	time.Sleep(d - time.Second)
	c1, el := readCPUStat(), time.Since(t0)
	pt1, keys := labTicks(s.lab, hosts)
	var lr loadResult
	if err := job.result(d+30*time.Second, &lr); err != nil {
		b.Fatal(err)
	}
	if perf != nil {
		_ = perf.Wait()
	}
	row := profRow{system: s.sys.Name, rate: float64(lr.OK) / lr.Elapsed.Seconds()}
	pct := func(v int64) float64 { return float64(v) / (el.Seconds() * 100) * 100 }
	row.machine = fmt.Sprintf("machine (%% of one core; 200 = both): user %.0f, system %.0f, softirq %.0f, irq %.0f, steal %.0f, idle %.0f; load %s",
		pct(c1.user-c0.user), pct(c1.system-c0.system), pct(c1.softirq-c0.softirq), pct(c1.irq-c0.irq), pct(c1.steal-c0.steal), pct(c1.idle-c0.idle), loadavg())
	by := map[procKey]int64{}
	for pid, t := range pt1 {
		by[keys[pid]] += t - pt0[pid]
	}
	var ks []procKey
	for k := range by {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(x, y procKey) int { return int(by[y] - by[x]) })
	for _, k := range ks {
		if by[k] > 0 {
			row.procs = append(row.procs, fmt.Sprintf("%s/%s %.1f", k.host, k.comm, pct(by[k])))
		}
	}
	return row
}

// perfReport summarizes dir/name.data: the share by command and the top
// kernel and user symbols.
func perfReport(dir, name string) string {
	data := filepath.Join(dir, name+".data")
	if _, err := os.Stat(data); err != nil {
		return ""
	}
	var out strings.Builder
	for _, sort := range []string{"comm", "sym"} {
		cmd := exec.Command("perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none", "--percent-limit", "0.7")
		o, _ := cmd.Output()
		_ = os.WriteFile(filepath.Join(dir, name+"-"+sort+".txt"), o, 0o644)
		for _, l := range strings.Split(string(o), "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				fmt.Fprintf(&out, "    %s\n", t)
			}
		}
	}
	return out.String()
}

// stopDaemons kills every process of the system on every LB (the nft
// tables stay) and keeps the VIP answering on lb1: the address back if
// it went, epconsole's ARP lease gate removed.
func (s *stack) stopDaemons() error {
	for _, p := range s.procs {
		p.expectDead = true
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
	lb1 := s.lbs[0]
	_ = lb1.Command(s.ctx, "nft", "delete", "table", "arp", "epconsole").Run()
	o, _ := s.owners()
	if !slices.Contains(o, lb1.Name()) {
		if out, err := lb1.Command(s.ctx, "ip", "addr", "add", s.vip.String()+"/32", "dev", netlab.HostLink).CombinedOutput(); err != nil {
			return fmt.Errorf("VIP back on lb1: %w: %s", err, out)
		}
	}
	return nil
}

// noConnSync is epconsole started with --no-conn-sync: everything but
// the connection sync, to tell its share of the daemons' cost.
func noConnSync(sys system) system {
	procs := sys.procs
	sys.Name, sys.Label = "epconsole-no-conn-sync", "epconsole --no-conn-sync"
	sys.procs = func(s *stack, i int) []procSpec {
		ps := procs(s, i)
		for j := range ps {
			ps[j].argv = append(ps[j].argv, "--no-conn-sync")
		}
		return ps
	}
	return sys
}

func BenchmarkTLSProfile(b *testing.B) {
	dir := os.Getenv(tlsProfEnv)
	if dir == "" {
		b.Skipf("set %s=DIR to profile the new-TLS-connection load (root, network namespaces)", tlsProfEnv)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	d := 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	only := os.Getenv(onlyEnv)
	var rows []profRow
	all := systems(testenv.Binary(b))
	for _, sys := range all {
		if sys.Name == "epconsole" {
			all = append(all, noConnSync(sys))
			break
		}
	}
	for _, sys := range all {
		if sys.Name == "seeds" || (only != "" && !slices.Contains(strings.Split(only, ","), sys.Name)) {
			continue
		}
		b.Run(sys.Name, func(b *testing.B) {
			s := newStack(b, ctx, sys.Prefix)
			if err := s.startSystem(sys); err != nil {
				b.Fatal(err)
			}
			target := netip.AddrPortFrom(s.vip, servicePort)
			if !sys.VIP {
				target = netip.AddrPortFrom(s.lab.Host("cp1").IPv4(), servicePort)
			}
			row := profileLoad(b, s, target, d, dir, sys.Name)
			row.phase = "running"
			rows = append(rows, row)
			b.Logf("%s running: %.0f new TLS connections/s\n  %s\n  %s\n%s", sys.Name, row.rate, row.machine, strings.Join(row.procs, ", "), perfReport(dir, sys.Name))
			if sys.Name != "epconsole" && sys.Name != "keepalived-nft-conntrackd" {
				return
			}
			if err := s.stopDaemons(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(time.Second)
			row = profileLoad(b, s, target, d, dir, sys.Name+"-stopped")
			row.phase = "daemons stopped, nft tables left"
			rows = append(rows, row)
			b.Logf("%s with its daemons stopped (nft tables left): %.0f new TLS connections/s\n  %s\n  %s\n%s", sys.Name, row.rate, row.machine, strings.Join(row.procs, ", "), perfReport(dir, sys.Name+"-stopped"))
		})
	}
	for _, r := range rows {
		b.Logf("%-28s %-34s %6.0f/s", r.system, r.phase, r.rate)
	}
}
