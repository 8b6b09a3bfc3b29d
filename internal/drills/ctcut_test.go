package drills

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
)

// ctcutEntriesEnv sets how many conntrack entries the cut drill puts on
// the owner (default 37,000: the size of the table the freeze was seen
// with).
const ctcutEntriesEnv = "EPCONSOLE_DRILL_CTCUT_ENTRIES"

// ctcutPerBackend is how many of those entries are flows through the VIP
// to each backend (the rest are the host's other connections).
const ctcutPerBackend = 3000

// ctcutMaxStall is the longest the owner's decision loop may go without a
// pass while a dead backend's flows are cut.
const ctcutMaxStall = 100 * time.Millisecond

// TestCutDeadBackendFlows: the owner holds ~37,000 conntrack entries,
// 3,000 of them flows through the VIP to each backend, and one backend is
// killed. Its flows are cut by the cut worker: the owner's decision loop
// never stalls more than ctcutMaxStall (its passes are seen as the
// WATCHDOG=1 notifications it sends each pass), its heartbeat keeps
// beating, no peer misses it, the VIP does not move, and the dead
// backend's flows are gone. The control cuts on the decision loop as
// before (EPCONSOLE_FLOW_CUT=inline): the loop stalls for the whole-table
// walk.
func TestCutDeadBackendFlows(t *testing.T) {
	t.Run("worker", func(t *testing.T) {
		r := runCtCut(t, false)
		if r.stall > ctcutMaxStall {
			t.Errorf("the owner's decision loop stalled %s while the flows were cut, want at most %s", r.stall, ctcutMaxStall)
		}
		if r.notBeating > 0 || r.missed > 0 || r.moves > 0 {
			t.Errorf("%d not-beating verdicts on the owner, %d missed-owner verdicts on the peers, %d VIP moves; want 0", r.notBeating, r.missed, r.moves)
		}
	})
	t.Run("inline-control", func(t *testing.T) {
		t.Setenv("EPCONSOLE_FLOW_CUT", "inline")
		r := runCtCut(t, true)
		// The control shows what the worker is for: the loop is held for
		// the whole cut (the walk of the table included).
		if r.stall <= ctcutMaxStall {
			t.Errorf("control: the decision loop stalled only %s cutting on the loop, want more than %s (the drill would not tell)", r.stall, ctcutMaxStall)
		}
	})
}

// ctcutResult is what one run saw.
type ctcutResult struct {
	// stall is the longest gap between two passes of the owner's decision
	// loop from the kill until 1 s after the cut; baseline the same
	// before the kill.
	stall, baseline time.Duration
	// notBeating counts the owner's heartbeat verdicts "beating":false,
	// missed the peers' verdicts that miss the owner, moves the VIP
	// acquire/release events, all after the kill.
	notBeating, missed, moves int
	flowsCut                  int
	cutTook                   time.Duration
}

func runCtCut(t *testing.T, inline bool) ctcutResult {
	entries := 37000
	if v := os.Getenv(ctcutEntriesEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3*ctcutPerBackend || n > 500000 {
			t.Fatalf("%s=%q: want %d to 500000 entries", ctcutEntriesEnv, v, 3*ctcutPerBackend)
		}
		entries = n
	}
	// The loop's passes, as WATCHDOG=1 notifications (sent at most every
	// half WATCHDOG_USEC, on a pass of the loop).
	dir, err := os.MkdirTemp("", "ctc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	watch := watchLoops(t, filepath.Join(dir, "notify.sock"))
	t.Setenv("NOTIFY_SOCKET", watch.path)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", "")

	// Detection at 20 x 5 ms: the 20-30 ms beat gaps a loaded host shows
	// with the default 4 misses, whatever the cut does, do not count
	// here; a stall of the liveness token (1 s) still does.
	c, owner := newClusterWith(t, "ctc", 90*time.Second, clusterOpts{tweak: func(_ *cluster, _, hcl string) string {
		return strings.Replace(hcl, "gossip {\n", "gossip {\n  heartbeat_misses = 20\n", 1)
	}})
	ownerPid := c.daemons[owner].cmd.Process.Pid
	victim := c.lab.Host("cp1")
	vip := netip.AddrPortFrom(c.vip, servicePort)
	victimAddr := netip.AddrPortFrom(victim.IPv4(), servicePort)

	t0 := time.Now()
	fillConntrack(t, c, c.lab.Host(owner), entries)
	t.Logf("%d conntrack entries on %s in %s (%d through the VIP to each backend)", entries, owner, time.Since(t0).Round(time.Millisecond), ctcutPerBackend)
	time.Sleep(2 * time.Second) // the connection sync settles
	before := map[string]int{}
	for name, d := range c.daemons {
		before[name] = countEvents(d, "vip-acquired") + countEvents(d, "vip-released")
	}

	kill := time.Now()
	if err := c.standins["cp1"].Kill(); err != nil {
		t.Fatal(err)
	}
	// Watch the owners while the cut runs.
	var owners sync.WaitGroup
	stopOwners := make(chan struct{})
	var wrongOwners []string
	owners.Go(func() {
		for {
			select {
			case <-stopOwners:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if o := c.owners(); len(o) != 1 || o[0] != owner {
				wrongOwners = append(wrongOwners, fmt.Sprintf("%s: %v", time.Since(kill).Round(time.Millisecond), o))
			}
		}
	})
	d := c.daemons[owner]
	if inline {
		c.waitLog(d, 30*time.Second, "backend dead, its conntrack entries deleted", victimAddr.String())
	} else {
		c.waitLog(d, 30*time.Second, `"kind":"flows-cut"`, `"subject":"cp1"`)
	}
	cutDone := time.Now()
	time.Sleep(3 * time.Second) // a flap would follow the stall
	close(stopOwners)
	owners.Wait()

	var r ctcutResult
	r.stall = watch.maxGap(ownerPid, kill, cutDone.Add(time.Second))
	r.baseline = watch.maxGap(ownerPid, kill.Add(-4*time.Second), kill)
	for name, dp := range c.daemons {
		r.moves += countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released") - before[name]
		for _, v := range verdictsSince(dp, kill) {
			switch {
			case name == owner && !v.Beating:
				r.notBeating++
			case name != owner && slices.Contains(v.Missing, owner):
				r.missed++
			}
		}
	}
	r.flowsCut, r.cutTook = cutFigures(t, d, inline, victimAddr)
	left := countFlows(t, c.lab.Host(owner), vip, victimAddr)
	t.Logf("figures (%s, load %s): inline=%v flows_cut=%d cut_took=%s loop_stall=%s (baseline %s before the kill) not_beating=%d peers_missed_owner=%d vip_moves=%d wrong_owner_samples=%d left=%d",
		time.Now().UTC().Format(time.RFC3339), loadavg(), inline, r.flowsCut, r.cutTook, r.stall, r.baseline, r.notBeating, r.missed, r.moves, len(wrongOwners), left)
	if left != 0 {
		t.Errorf("%d flows to the dead backend left on the owner, want 0", left)
	}
	if r.flowsCut < ctcutPerBackend {
		t.Errorf("%d flows cut, want at least the %d the drill put there", r.flowsCut, ctcutPerBackend)
	}
	if !inline && len(wrongOwners) > 0 {
		t.Errorf("VIP owners other than %s while the flows were cut: %v", owner, wrongOwners)
	}
	return r
}

// fillConntrack puts n TCP entries into h's conntrack table:
// ctcutPerBackend established flows through the VIP to each backend (NAT
// as the owner's rules leave it: DNAT to the backend, SNAT to the VIP,
// the forwarding mark), the rest the host's other connections. The clients
// are in 198.18.110.0/24 to 198.18.119.0/24.
func fillConntrack(t *testing.T, c *cluster, h *netlab.Host, n int) {
	t.Helper()
	ns, err := h.OpenNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	conn, err := conntrack.Dial(&netlink.Config{NetNS: int(ns)})
	if err != nil {
		t.Fatalf("ctnetlink in %s: %v", h.Name(), err)
	}
	defer conn.Close()
	vip := netip.AddrPortFrom(c.vip, servicePort)
	backends := c.lab.HostsByRole(netlab.RoleBackend)
	other := netip.AddrPortFrom(netip.MustParseAddr("198.18.119.250"), 443)
	for i := range n {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(110 + i/50000), byte(1 + i/250%250)}), uint16(10000+i%50000))
		var f conntrack.Flow
		if i < ctcutPerBackend*len(backends) {
			b := netip.AddrPortFrom(backends[i%len(backends)].IPv4(), servicePort)
			f = conntrack.NewFlow(unix.IPPROTO_TCP, conntrack.StatusConfirmed|conntrack.StatusSeenReply|conntrack.StatusAssured,
				client.Addr(), vip.Addr(), client.Port(), vip.Port(), 600, dataplane.DefaultCtMark)
			f.TupleReply.IP.SourceAddress, f.TupleReply.Proto.SourcePort = b.Addr(), b.Port()
			f.TupleReply.IP.DestinationAddress, f.TupleReply.Proto.DestinationPort = vip.Addr(), client.Port()
		} else {
			f = conntrack.NewFlow(unix.IPPROTO_TCP, conntrack.StatusConfirmed|conntrack.StatusSeenReply|conntrack.StatusAssured,
				client.Addr(), other.Addr(), client.Port(), other.Port(), 600, 0)
		}
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: 3} // ESTABLISHED
		if err := conn.Create(f); err != nil {
			t.Fatalf("creating entry %d (%v): %v", i, f.TupleOrig, err)
		}
	}
}

// countFlows counts h's entries through vip to backend.
func countFlows(t *testing.T, h *netlab.Host, vip, backend netip.AddrPort) int {
	t.Helper()
	ct, err := dataplane.NewConntrack(dataplane.WithNetNSPath(h.NsPath()))
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	flows, err := ct.Flows(t.Context(), vip)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range flows {
		if f.TupleReply.IP.SourceAddress.Unmap() == backend.Addr() && f.TupleReply.Proto.SourcePort == backend.Port() {
			n++
		}
	}
	return n
}

// cutFigures reads how many flows the owner cut for backend and how long
// the cut took, from its log.
func cutFigures(t *testing.T, d *daemonProc, inline bool, backend netip.AddrPort) (int, time.Duration) {
	t.Helper()
	for _, l := range logLines(d) {
		var e struct {
			Msg     string `json:"msg"`
			Kind    string `json:"kind"`
			Message string `json:"message"`
			Backend string `json:"backend"`
			Flows   int    `json:"flows"`
		}
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		switch {
		case inline && e.Msg == "backend dead, its conntrack entries deleted" && e.Backend == backend.String():
			// The inline cut logs no duration: the loop's stall is its time.
			return e.Flows, 0
		case !inline && e.Msg == "event" && e.Kind == "flows-cut":
			// "cut 3,001 flows of backend cp1 (...) via ... in 41ms (...)"
			var n string
			var took string
			f := strings.Fields(e.Message)
			for i := range f {
				if f[i] == "cut" && i+1 < len(f) && n == "" {
					n = f[i+1]
				}
				if f[i] == "in" && i+1 < len(f) && took == "" {
					took = f[i+1]
				}
			}
			flows, _ := strconv.Atoi(strings.ReplaceAll(n, ",", ""))
			dur, _ := time.ParseDuration(took)
			return flows, dur
		}
	}
	t.Errorf("%s log: no cut of %s", d.name, backend)
	return 0, 0
}

// verdict is one "heartbeat verdict" log line.
type verdict struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Beating bool      `json:"beating"`
	Missing []string  `json:"missing"`
}

// verdictsSince returns the daemon's heartbeat verdicts logged after t0.
func verdictsSince(d *daemonProc, t0 time.Time) []verdict {
	var out []verdict
	for _, l := range logLines(d) {
		var v verdict
		if json.Unmarshal([]byte(l), &v) != nil || v.Msg != "heartbeat verdict" || v.Time.Before(t0) {
			continue
		}
		out = append(out, v)
	}
	return out
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// loopWatch is a NOTIFY_SOCKET: it records when each process (by the
// sender's pid, SO_PASSCRED) sent WATCHDOG=1.
type loopWatch struct {
	path  string
	mu    sync.Mutex
	pings map[int32][]time.Time
}

func watchLoops(t *testing.T, path string) *loopWatch {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); err != nil || serr != nil {
		t.Fatalf("SO_PASSCRED: %v %v", err, serr)
	}
	w := &loopWatch{path: path, pings: map[int32][]time.Time{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			now := time.Now()
			if !strings.Contains(string(buf[:n]), "WATCHDOG=1") {
				continue
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil || len(msgs) == 0 {
				continue
			}
			cred, err := unix.ParseUnixCredentials(&msgs[0])
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.pings[cred.Pid] = append(w.pings[cred.Pid], now)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return w
}

// maxGap is the longest time between two WATCHDOG=1 of pid that overlaps
// [from, to] (a gap that starts before from or ends after to counts).
func (w *loopWatch) maxGap(pid int, from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pings[int32(pid)]
	var worst time.Duration
	for i := 1; i < len(p); i++ {
		if p[i].Before(from) || p[i-1].After(to) {
			continue
		}
		worst = max(worst, p[i].Sub(p[i-1]))
	}
	if len(p) > 0 && p[len(p)-1].Before(to) {
		worst = max(worst, to.Sub(p[len(p)-1])) // silent until the end
	}
	return worst
}
