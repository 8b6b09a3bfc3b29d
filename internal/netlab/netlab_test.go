package netlab

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/epconsole/epconsole/internal/standin"
	"github.com/epconsole/epconsole/internal/testenv"
)

func testSpec(prefix string, hosts ...HostSpec) Spec {
	return Spec{Prefix: prefix, IPv4: testNet4, IPv6: testNet6, Hosts: hosts}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// labNamespaces lists /run/netns entries of a prefix.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	names, err := namedNetns(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// childrenOf lists live processes started as netlab children of the lab
// whose directory is dir (their original environment names the role and
// their arguments name files in dir).
func childrenOf(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || zombie(pid) {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		s := string(env)
		if strings.Contains(s, envRole+"=") && strings.Contains(s, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// nsCat reads a file inside a namespace through `ip netns exec`, a path
// independent of netlab's own sysctl code.
func nsCat(t *testing.T, ns, path string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", path).Output()
	if err != nil {
		t.Fatalf("ip netns exec %s cat %s: %v", ns, path, err)
	}
	return strings.TrimSpace(string(out))
}

func TestDirectToBackends(t *testing.T) {
	rootFwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	lab := New(t, testSpec("nl1",
		HostSpec{Name: "cl", Role: RoleClient}, HostSpec{Name: "lb", Role: RoleLB},
		HostSpec{Name: "b1", Role: RoleBackend}, HostSpec{Name: "b2", Role: RoleBackend}))
	ctx := testCtx(t, 60*time.Second)

	// Names, addresses, links.
	want := []string{"nl1-b1", "nl1-b2", "nl1-cl", "nl1-lb", "nl1-sw"}
	if got := labNamespaces(t, "nl1"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("namespaces %v, want %v", got, want)
	}
	b1, b2, cl, lb := lab.Host("b1"), lab.Host("b2"), lab.Host("cl"), lab.Host("lb")
	if b1.IPv4() != netip.MustParseAddr("198.18.2.21") || b2.IPv6() != netip.MustParseAddr("fd00:198:18:2::22") {
		t.Fatalf("addresses b1 %v, b2 %v", b1.IPv4(), b2.IPv6())
	}
	nh, err := b1.NetlinkHandle()
	if err != nil {
		t.Fatal(err)
	}
	link, err := nh.LinkByName(HostLink)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := nh.AddrList(link, netlink.FAMILY_ALL)
	nh.Close()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, a := range addrs {
		found[a.IPNet.String()] = true
	}
	if !found["198.18.2.21/24"] || !found["fd00:198:18:2::21/64"] {
		t.Errorf("b1 eth0 addresses %v", addrs)
	}
	if rl, err := netlink.LinkList(); err == nil {
		for _, l := range rl {
			if n := l.Attrs().Name; n == "vb1" || n == "vcl" || n == "vlb" {
				t.Errorf("link %s appeared in the root namespace", n)
			}
		}
	}

	// Forwarding sysctls: set in the LB only, the root namespace untouched.
	if v := nsCat(t, "nl1-lb", "/proc/sys/net/ipv4/ip_forward"); v != "1" {
		t.Errorf("lb ip_forward = %s, want 1", v)
	}
	if v := nsCat(t, "nl1-lb", "/proc/sys/net/ipv6/conf/all/forwarding"); v != "1" {
		t.Errorf("lb IPv6 forwarding = %s, want 1", v)
	}
	if v := nsCat(t, "nl1-cl", "/proc/sys/net/ipv4/ip_forward"); v != "0" {
		t.Errorf("client ip_forward = %s, want 0", v)
	}
	if v, err := lb.ReadSysctl("net/ipv4/ip_forward"); err != nil || v != "1" {
		t.Errorf("ReadSysctl(lb ip_forward) = %q, %v", v, err)
	}
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(after) != string(rootFwd) {
		t.Errorf("root ip_forward changed from %q to %q", rootFwd, after)
	}

	s1, err := b1.StartStandin(ctx, StandinOpts{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b2.StartStandin(ctx, StandinOpts{})
	if err != nil {
		t.Fatal(err)
	}

	// Fresh TLS connections to each backend, IPv4 and IPv6.
	for _, s := range []*Standin{s1, s2} {
		for _, target := range []netip.AddrPort{s.Addr4, s.Addr6} {
			res, err := cl.RunClient(ctx, ClientOpts{Target: target, Count: 20})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v: ok %d, latency %+v", target, res.OK, res.Latency)
			if res.OK != 20 || res.Failed != 0 || res.Backends[s.Name] != 20 || len(res.Backends) != 1 {
				t.Errorf("client to %v: %+v, want 20 answers from %s", target, res, s.Name)
			}
			if res.Latency.Min <= 0 || res.Latency.Max < res.Latency.Median {
				t.Errorf("client to %v: latency %+v", target, res.Latency)
			}
		}
	}
	// SNI with the DNS name in the default certificate, a few in parallel.
	res, err := cl.RunClient(ctx, ClientOpts{Target: s2.Addr4, ServerName: lab.DNSName(), Count: 30, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 30 || res.Backends["b2"] != 30 {
		t.Errorf("client with SNI %s: %+v", lab.DNSName(), res)
	}
	// A name the certificate does not hold fails verification.
	res, err = cl.RunClient(ctx, ClientOpts{Target: s2.Addr4, ServerName: "other.example.test", Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 2 || len(res.Errors) == 0 || !strings.Contains(res.Errors[0].Err, "certificate") {
		t.Errorf("client with a wrong name: %+v, want 2 certificate failures", res)
	}

	// The control socket changes the stand-in's behaviour.
	if err := s1.SetBehavior(ctx, standin.Behavior{Unready: true}); err != nil {
		t.Fatal(err)
	}
	if b, err := s1.Behavior(ctx); err != nil || !b.Unready {
		t.Fatalf("Behavior = %+v, %v; want unready", b, err)
	}
	res, err = cl.RunClient(ctx, ClientOpts{Target: s1.Addr6, Path: "/readyz", Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 3 || !strings.Contains(res.Errors[0].Err, "HTTP 500") {
		t.Errorf("client to unready stand-in: %+v, want 3 HTTP 500 failures", res)
	}
	if err := s1.SetBehavior(ctx, standin.Behavior{}); err != nil {
		t.Fatal(err)
	}
	res, err = cl.RunClient(ctx, ClientOpts{Target: s1.Addr6, Path: "/readyz", Count: 3})
	if err != nil || res.OK != 3 {
		t.Errorf("client to ready stand-in: %+v, %v", res, err)
	}

	// A paced client stopped early reports what it did.
	job, err := cl.StartClient(ctx, ClientOpts{Target: s2.Addr4, Count: 1000, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	job.Stop()
	res, err = job.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Incomplete || res.OK == 0 || res.OK >= 1000 || res.Failed != 0 {
		t.Errorf("stopped client: %+v, want some answers, no failure, incomplete", res)
	}

	// A certificate reissued without the DNS name is served after Reload.
	sni := ClientOpts{Target: s2.Addr4, ServerName: lab.DNSName(), Count: 1}
	co := lab.ServerCertOptions(b2)
	co.DNSNames = nil
	if _, _, err := lab.IssueCert(s2.Name, co); err != nil {
		t.Fatal(err)
	}
	if res, err := cl.RunClient(ctx, sni); err != nil || res.OK != 1 {
		t.Errorf("before Reload the old certificate should still be served: %+v, %v", res, err)
	}
	if err := s2.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := cl.RunClient(ctx, sni); err != nil || res.Failed != 1 || !strings.Contains(res.Errors[0].Err, "certificate") {
		t.Errorf("after Reload without the DNS SAN: %+v, %v; want a certificate failure", res, err)
	}

	// A stream runs to its end.
	st, err := cl.StartStream(ctx, StreamOpts{Target: s2.Addr6, Lines: 5, Every: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if st.Backend != "b2" {
		t.Errorf("stream backend %q, want b2", st.Backend)
	}
	sr, err := st.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sr.End != StreamComplete || sr.Lines != 5 {
		t.Errorf("stream: %+v, want 5 lines, complete", sr)
	}

	// A stream whose server dies ends promptly, and says how.
	st, err = cl.StartStream(ctx, StreamOpts{Target: s1.Addr4, Lines: 1000, Every: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := s1.Kill(); err != nil {
		t.Fatal(err)
	}
	sr, err = st.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stream after server kill: %+v (%v after the kill)", sr, time.Since(killed))
	if (sr.End != StreamEOF && sr.End != StreamReset) || sr.Lines == 0 || sr.Lines >= 1000 || sr.Ended > sr.LastLine+5*time.Second {
		t.Errorf("stream after server kill: %+v, want eof or reset soon after the last line", sr)
	}
	// The killed backend refuses new connections.
	res, err = cl.RunClient(ctx, ClientOpts{Target: s1.Addr4, Count: 1})
	if err != nil || res.Failed != 1 || !strings.Contains(res.Errors[0].Err, "refused") {
		t.Errorf("client to killed stand-in: %+v, %v; want connection refused", res, err)
	}

	// A graceful stop, then a restart under the same name (a healed drill).
	if err := s2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s2.Done():
	default:
		t.Fatal("stand-in not done after Stop")
	}
	if res, err := cl.RunClient(ctx, ClientOpts{Target: s2.Addr6, Count: 1}); err != nil || res.Failed != 1 {
		t.Errorf("client to stopped stand-in: %+v, %v", res, err)
	}
	s2, err = b2.StartStandin(ctx, StandinOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := cl.RunClient(ctx, ClientOpts{Target: s2.Addr6, ServerName: lab.DNSName(), Count: 5}); err != nil || res.Backends["b2"] != 5 {
		t.Errorf("client to restarted stand-in: %+v, %v", res, err)
	}
}

func TestBuildRollsBack(t *testing.T) {
	testenv.NeedNetns(t)
	if err := Cleanup("nl6"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Build(ctx, testSpec("nl6", HostSpec{Name: "cl", Role: RoleClient}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build with a cancelled context: %v", err)
	}
	if left := labNamespaces(t, "nl6"); len(left) != 0 {
		t.Errorf("a failed Build left namespaces %v", left)
	}
	if dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "netlab-nl6-*")); len(dirs) != 0 {
		t.Errorf("a failed Build left directories %v", dirs)
	}
}

func TestLinkDown(t *testing.T) {
	t.Parallel()
	lab := New(t, testSpec("nl2", HostSpec{Name: "cl", Role: RoleClient}, HostSpec{Name: "b1", Role: RoleBackend}))
	ctx := testCtx(t, 60*time.Second)
	cl, b1 := lab.Host("cl"), lab.Host("b1")
	s, err := b1.StartStandin(ctx, StandinOpts{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, target netip.AddrPort, wantOK bool) {
		t.Helper()
		// A failure is expected within 300 ms; recovery may wait for
		// neighbour discovery to retry (1 s) after a failed resolution.
		timeout := 300 * time.Millisecond
		if wantOK {
			timeout = 3 * time.Second
		}
		res, err := cl.RunClient(ctx, ClientOpts{Target: target, Count: 3, Concurrency: 3, RequestTimeout: timeout, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if wantOK && res.OK != 3 {
			t.Errorf("%s: %+v, want 3 answers", what, res)
		}
		if !wantOK && res.Failed != 3 {
			t.Errorf("%s: %+v, want 3 failures", what, res)
		}
		if res.Elapsed > timeout+time.Second {
			t.Errorf("%s: took %v", what, res.Elapsed)
		}
	}
	check("before", s.Addr4, true)

	// Cable pulled at the switch: the host sees no carrier, keeps its addresses.
	if err := b1.SetCable(false); err != nil {
		t.Fatal(err)
	}
	check("cable out, IPv4", s.Addr4, false)
	check("cable out, IPv6", s.Addr6, false)
	nh, err := b1.NetlinkHandle()
	if err != nil {
		t.Fatal(err)
	}
	link, err := nh.LinkByName(HostLink)
	nh.Close()
	if err != nil {
		t.Fatal(err)
	}
	if link.Attrs().OperState == netlink.OperUp {
		t.Errorf("b1 eth0 is oper up with its cable out")
	}
	if err := b1.SetCable(true); err != nil {
		t.Fatal(err)
	}
	check("cable back, IPv4", s.Addr4, true)
	check("cable back, IPv6", s.Addr6, true)

	// Host side down: the kernel drops the IPv6 address, SetLink(true) restores it.
	if err := b1.SetLink(false); err != nil {
		t.Fatal(err)
	}
	check("link down, IPv4", s.Addr4, false)
	if err := b1.SetLink(true); err != nil {
		t.Fatal(err)
	}
	check("link up, IPv6", s.Addr6, true)

	// The connect loop measures the dark time of a 400 ms cable pull, one
	// attempt at a time and with overlapping attempts.
	for _, overlap := range []bool{false, true} {
		job, err := cl.StartTCPConnect(ctx, TCPConnectOpts{Target: s.Addr4, Every: 5 * time.Millisecond, Timeout: 50 * time.Millisecond, Duration: 1500 * time.Millisecond, Overlap: overlap})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := b1.SetCable(false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
		if err := b1.SetCable(true); err != nil {
			t.Fatal(err)
		}
		tr, err := job.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("connect loop (overlap %v): %d attempts, %d failures, longest gap %v at %v", overlap, tr.Attempts, tr.Failures, tr.LongestGap, tr.GapStart)
		// Functional bounds only: the gap covers most of the pull, and the
		// target was reachable again after the last failure.
		if tr.Failures == 0 || tr.LongestGap < 300*time.Millisecond || tr.LastSuccess <= tr.LastFailure {
			t.Errorf("connect loop (overlap %v) through a 400 ms cable pull: %+v", overlap, tr)
		}
		// Overlapping attempts keep their schedule through the pull: 400 ms
		// of 50 ms timeouts would cost one-at-a-time attempts 80 slots of 5 ms.
		if overlap && tr.Attempts < 200 {
			t.Errorf("overlapping connect loop made %d attempts in 1.5 s at 5 ms, want at least 200 (the pull must not stall it)", tr.Attempts)
		}
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	testenv.NeedNetns(t)
	if err := Cleanup("nl3"); err != nil {
		t.Fatal(err)
	}
	lab, err := Build(testCtx(t, 30*time.Second), testSpec("nl3", HostSpec{Name: "cl", Role: RoleClient}, HostSpec{Name: "b1", Role: RoleBackend}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.Close() })
	ctx := testCtx(t, 30*time.Second)
	cl, b1 := lab.Host("cl"), lab.Host("b1")
	s, err := b1.StartStandin(ctx, StandinOpts{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.StartStream(ctx, StreamOpts{Target: s.Addr4, Lines: 1000, Every: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A process started by hand in a host, which the lab does not track.
	sleeper := b1.Command(context.Background(), "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if pids := childrenOf(t, lab.Dir()); len(pids) != 2 {
		t.Fatalf("netlab children before Close: %v, want 2", pids)
	}

	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if left := labNamespaces(t, "nl3"); len(left) != 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	select {
	case <-s.Done():
	default:
		t.Error("stand-in still running after Close")
	}
	if _, err := st.Wait(ctx); err == nil {
		t.Error("stream reported a result after being killed by Close")
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("hand-started process ended with %v, want killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("hand-started process still running after Close")
	}
	if pids := childrenOf(t, lab.Dir()); len(pids) != 0 {
		t.Errorf("netlab children left after Close: %v", pids)
	}
	if _, err := os.Stat(lab.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lab dir %s left after Close (%v)", lab.Dir(), err)
	}
	if err := lab.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b1.StartStandin(ctx, StandinOpts{}); !errors.Is(err, ErrClosed) {
		t.Errorf("StartStandin on a closed lab: %v, want ErrClosed", err)
	}
	if _, err := os.Stat(lab.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lab dir %s came back after a start on the closed lab", lab.Dir())
	}
}

func TestCleanupLostLab(t *testing.T) {
	testenv.NeedNetns(t)
	if err := Cleanup("nl4"); err != nil {
		t.Fatal(err)
	}
	lab, err := Build(testCtx(t, 30*time.Second), testSpec("nl4", HostSpec{Name: "b1", Role: RoleBackend}, HostSpec{Name: "b2", Role: RoleBackend}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.Close() })
	ctx := testCtx(t, 30*time.Second)
	s, err := lab.Host("b1").StartStandin(ctx, StandinOpts{})
	if err != nil {
		t.Fatal(err)
	}
	dir := lab.Dir()

	// A second Build with the same prefix is refused while the first exists.
	if _, err := Build(ctx, testSpec("nl4", HostSpec{Name: "b1", Role: RoleBackend})); err == nil || !strings.Contains(err.Error(), "left from an earlier run") {
		t.Fatalf("second Build with a live prefix: %v", err)
	}

	// The Lab object is lost; Cleanup works from the prefix alone.
	if err := Cleanup("nl4"); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if left := labNamespaces(t, "nl4"); len(left) != 0 {
		t.Errorf("namespaces left after Cleanup: %v", left)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Error("stand-in still running after Cleanup")
	}
	if pids := childrenOf(t, dir); len(pids) != 0 {
		t.Errorf("netlab children left after Cleanup: %v", pids)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lab dir %s left after Cleanup (%v)", dir, err)
	}
	if err := Cleanup("nl4"); err != nil {
		t.Errorf("Cleanup with nothing left: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Errorf("Close after Cleanup: %v", err)
	}
	if err := Cleanup("../x"); err == nil {
		t.Error("Cleanup accepted a bad prefix")
	}
}
