package heartbeat

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// jitterEnv enables TestBeatJitterWorstCase: how long it runs ("20s").
const jitterEnv = "EPCONSOLE_BENCH_HEARTBEAT_JITTER"

// jitterSettingsEnv lists the interval × misses settings the jitter
// bench measures, one after the other, each for jitterEnv's duration:
// "5ms/4,4ms/4,3ms/5,3ms/4" (default: the default setting alone).
const jitterSettingsEnv = "EPCONSOLE_BENCH_HEARTBEAT_SETTINGS"

// jitterSetting is one interval × misses the jitter bench measures.
type jitterSetting struct {
	interval time.Duration
	misses   int
}

func (s jitterSetting) String() string { return fmt.Sprintf("%v x %d", s.interval, s.misses) }

// parseJitterSettings reads jitterSettingsEnv's value ("" : the default).
func parseJitterSettings(v string) ([]jitterSetting, error) {
	if v == "" {
		return []jitterSetting{{DefaultInterval, DefaultMisses}}, nil
	}
	var out []jitterSetting
	for _, f := range strings.Split(v, ",") {
		iv, m, ok := strings.Cut(strings.TrimSpace(f), "/")
		d, err := time.ParseDuration(iv)
		n, err2 := strconv.Atoi(m)
		if !ok || err != nil || err2 != nil || d <= 0 || n < 1 {
			return nil, fmt.Errorf("%s: %q: want INTERVAL/MISSES, e.g. 3ms/4", jitterSettingsEnv, f)
		}
		out = append(out, jitterSetting{d, n})
	}
	return out, nil
}

// TestBeatJitterWorstCase measures the beat loop under the fault
// campaign's worst conditions at once: three real-time helpers in a
// network namespace of their own that drops 1 % of the packets it
// receives (nftables, as the campaign's loss fault), every core saturated by busy processes (two per core, normal
// priority), and 40,000 junk datagrams a second sent to one helper from
// an address that is no peer. It prints each helper's worst tick
// lateness (send-time lateness), longest gap between two beats of a peer
// by kernel receive time, longest wait of a beat in the socket, and the
// peers seen gone (false deaths), for each interval × misses setting of
// jitterSettingsEnv in turn (default: the default 5 ms x 4). It asserts
// only that the helpers ran.
func TestBeatJitterWorstCase(t *testing.T) {
	v := os.Getenv(jitterEnv)
	if v == "" {
		t.Skipf("set %s=20s to measure the beat loop's jitter under saturation, loss and a junk flood", jitterEnv)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 5*time.Minute {
		t.Fatalf("%s=%q: want a duration up to 5m", jitterEnv, v)
	}
	settings, err := parseJitterSettings(os.Getenv(jitterSettingsEnv))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		t.Run(strings.ReplaceAll(s.String(), " ", ""), func(t *testing.T) { measureJitter(t, d, s) })
	}
}

// measureJitter is one setting's run of TestBeatJitterWorstCase.
func measureJitter(t *testing.T, d time.Duration, set jitterSetting) {
	const ns = "bjtj"
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	sh("ip", "-n", ns, "link", "set", "lo", "up")
	// 1 % loss on receipt, as the fault campaign's (numgen random mod 100).
	sh("ip", "netns", "exec", ns, "nft", "add table inet bjtloss; add chain inet bjtloss in { type filter hook input priority 0; }; add rule inet bjtloss in numgen random mod 100 == 0 drop")

	all := map[string]netip.AddrPort{}
	for i, n := range []string{"a", "b", "c"} {
		all[n] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 9, byte(1 + i)}), 17995)
	}
	var nodes []*node
	var junk *net.UDPConn
	var err error
	inNetns(t, ns, func() {
		for _, n := range []string{"a", "b", "c"} {
			cfg := testConfig(t, modes[1], n, all, testKey(1))
			cfg.Interval, cfg.Misses = set.interval, set.misses
			nodes = append(nodes, startNode(t, cfg))
		}
		junk, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 9, 99)})
		if err != nil {
			t.Fatal(err)
		}
	})
	defer junk.Close()
	for _, n := range nodes {
		n.waitView(5*time.Second, "all alive", allAlive)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	exe, _ := os.Executable()
	for range 2 * runtime.NumCPU() {
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), testBusyEnv+"="+d.String())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Wait() })
	}
	go func() { // 40 junk datagrams every millisecond, 60 bytes each
		dst := net.UDPAddrFromAddrPort(all["a"])
		payload := make([]byte, 60)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for ctx.Err() == nil {
			for range 40 {
				_, _ = junk.WriteToUDP(payload, dst)
			}
			<-tk.C
		}
	}()
	deaths := map[string]int{}
	was := map[string]bool{}
	for ctx.Err() == nil {
		for _, n := range nodes {
			for _, p := range n.b.View().Peers {
				k := n.name + "->" + p.Name
				if was[k] && !p.Alive {
					deaths[k]++
				}
				was[k] = p.Alive
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%v at %v: saturated (%d busy processes), 1%% loss, 40k junk datagrams/s to a; load %s", set, d, 2*runtime.NumCPU(), load)
	for _, n := range nodes {
		v := n.b.View()
		s := v.Stats
		if s.Ticks == 0 {
			t.Errorf("%s: no tick", n.name)
		}
		t.Logf("%s: rt=%v ticks=%d late ticks=%d worst tick lateness=%v longest beat gap=%v longest wait in socket=%v sent=%d accepted=%d non-peer=%d",
			n.name, v.Realtime.InEffect, s.Ticks, s.LateTicks, s.MaxLateness, s.MaxBeatGap, s.MaxRxDelay, s.Sent, s.Accepted, s.NonPeer)
	}
	t.Logf("peers seen gone with %v (threshold %v): %v", set, DetectionTime(set.interval, set.misses), deaths)
}

// inNetns runs f on a thread in network namespace ns (sockets and the
// helpers it starts live there), then returns the thread to its own.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			panic("returning to the test's network namespace: " + err.Error())
		}
	}()
	f()
}
