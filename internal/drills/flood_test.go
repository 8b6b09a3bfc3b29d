package drills

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/status"
)

// floodEnv sets how long the flood drill floods ("30s" for the long
// version); without it, 5 s.
const floodEnv = "EPCONSOLE_DRILL_FLOOD"

// floodQuietMax bounds the quiet watch before the flood (its verdicts
// are only logged, beside the flood's): a 5-minute flood is not preceded
// by 5 quiet minutes.
const floodQuietMax = time.Minute

const (
	// floodRate is the junk datagrams a second from the non-peer host,
	// split between the owner's and a backup's heartbeat port.
	floodRate = 40000
	// floodSize is the junk datagram's length: a heartbeat's (version 1).
	floodSize = 60
)

// floodResult is what one flood run saw.
type floodResult struct {
	sent int
	// missed counts heartbeat verdicts with a missing peer logged during
	// the flood, per LB, quiet the same over as long a time without the
	// flood just before it; moves the VIP acquire/release events.
	missed, quiet, moves map[string]int
	// nonPeer is the heartbeat's non-peer counter, nftDropped the peer
	// filter's drop counters, per flooded LB.
	nonPeer, nftDropped map[string]uint64
	// ownerChanged: the VIP was seen elsewhere than on the first owner.
	ownerChanged []string
	// flooded are the LBs flooded (owner and backup).
	flooded []string
}

// floodedMissed counts the missed-peer verdicts of the flooded LBs: the
// ones whose beat loop read the junk.
func (r floodResult) floodedMissed() (n int) {
	for _, lb := range r.flooded {
		n += r.missed[lb]
	}
	return n
}

// check fails t when a flooded LB missed a peer or the VIP moved. A
// missed peer on the LB that was not flooded is logged only: it read no
// junk, and on a loaded machine a beat is now and then late without any
// flood (quiet says how often in as long a time just before).
func (r floodResult) check(t *testing.T, what string) {
	t.Helper()
	if r.floodedMissed() != 0 || r.totalMoves() != 0 || len(r.ownerChanged) != 0 {
		t.Errorf("%s: %d missed-peer verdicts on the flooded LBs %v (all: %v), %d VIP moves %v, owners seen %v; want none",
			what, r.floodedMissed(), r.flooded, r.missed, r.totalMoves(), r.moves, r.ownerChanged)
	}
	if n := r.totalMissed() - r.floodedMissed(); n != 0 {
		t.Logf("%s: %d missed-peer verdicts on the LB not flooded (%v in the quiet time before)", what, n, r.quiet)
	}
}

func (r floodResult) totalMissed() (n int) {
	for _, m := range r.missed {
		n += m
	}
	return n
}

func (r floodResult) totalMoves() (n int) {
	for _, m := range r.moves {
		n += m
	}
	return n
}

// TestHeartbeatFlood floods the owner's and a backup's heartbeat port with
// 40,000 60-byte UDP datagrams a second from a host on the LB segment that
// is not a peer (5 s; EPCONSOLE_DRILL_FLOOD=30s for the long version).
// With the defaults (the nftables peer filter and the heartbeat's source
// check) and with the heartbeat's source check alone, the flooded LBs never
// declare a peer missing and the VIP stays (the LB not flooded is watched
// too, and compared with as long a quiet time before the flood). The
// control turns both off (gossip.peer_filter = false and the test-only
// TestAnySourceEnv): the junk then uses up the heartbeat's read budget,
// and the flooded LBs declare their peers missing.
func TestHeartbeatFlood(t *testing.T) {
	d := 5 * time.Second
	if v := os.Getenv(floodEnv); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 || d > 5*time.Minute {
			t.Fatalf("%s=%q: want a duration up to 5m", floodEnv, v)
		}
	}
	noPeerFilter := func(_ *cluster, _, hcl string) string {
		return strings.Replace(hcl, "gossip {\n", "gossip {\n  peer_filter = false\n", 1)
	}
	t.Run("filtered", func(t *testing.T) {
		r := runFlood(t, "fla", clusterOpts{}, d)
		r.check(t, "with the peer filter")
		for lb, n := range r.nftDropped {
			if n == 0 {
				t.Errorf("%s: the peer filter dropped nothing", lb)
			}
		}
	})
	t.Run("source-check-only", func(t *testing.T) {
		r := runFlood(t, "flb", clusterOpts{tweak: noPeerFilter}, d)
		r.check(t, "with the heartbeat's source check alone")
		for lb, n := range r.nonPeer {
			if n == 0 {
				t.Errorf("%s: the heartbeat counted no non-peer datagram", lb)
			}
		}
	})
	t.Run("control", func(t *testing.T) {
		t.Setenv(heartbeat.TestAnySourceEnv, "1")
		r := runFlood(t, "flc", clusterOpts{tweak: noPeerFilter}, d)
		t.Logf("control (no filter, any source): %d missed-peer verdicts %v, %d VIP moves %v",
			r.totalMissed(), r.missed, r.totalMoves(), r.moves)
		if r.floodedMissed() == 0 {
			t.Errorf("control: the flood made no peer missing without the filters; the drill shows nothing on this machine")
		}
	})
}

// runFlood builds a cluster with a non-peer host, floods, and reports.
func runFlood(t *testing.T, prefix string, o clusterOpts, d time.Duration) floodResult {
	o.extra = []string{"mallory"}
	c, owner := newClusterWith(t, prefix, d+90*time.Second, o)
	backup := "lb2"
	if owner == backup {
		backup = "lb1"
	}
	mallory := c.lab.Host("mallory")
	r := floodResult{missed: map[string]int{}, quiet: map[string]int{}, moves: map[string]int{}, nonPeer: map[string]uint64{}, nftDropped: map[string]uint64{}}
	var targets []netip.AddrPort
	hosts := map[string]*netlab.Host{}
	for _, h := range c.lbs {
		if h.Name() == owner || h.Name() == backup {
			targets = append(targets, netip.AddrPortFrom(h.IPv4(), heartbeatPort))
			hosts[h.Name()] = h
			r.flooded = append(r.flooded, h.Name())
		}
	}
	conn := inHost(t, mallory, "the flood socket", func() (*net.UDPConn, error) {
		return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(mallory.IPv4(), 0)))
	})
	t.Cleanup(func() { conn.Close() })
	// Let the cluster settle past its start (peers seen, verdicts logged),
	// then watch it as long as the flood will last (at most floodQuietMax),
	// without it.
	time.Sleep(time.Second)
	quietStart := time.Now()
	time.Sleep(min(d, floodQuietMax))
	moves0 := map[string]int{}
	for name, dp := range c.daemons {
		moves0[name] = countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released")
	}
	start := time.Now()
	done := make(chan int)
	go func() { done <- flood(conn, targets, d) }()
	watching := true
	for watching {
		select {
		case r.sent = <-done:
			watching = false
		case <-time.After(50 * time.Millisecond):
			if os := c.owners(); len(os) != 1 || os[0] != owner {
				r.ownerChanged = append(r.ownerChanged, strings.Join(os, "+"))
			}
		}
	}
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond) // verdicts of the flood's last moments
	for name, dp := range c.daemons {
		var lines []string
		r.quiet[name], _ = missedVerdicts(dp, quietStart, start)
		r.missed[name], lines = missedVerdicts(dp, start, time.Now())
		for _, l := range lines {
			t.Logf("%s: %s", name, l)
		}
		r.moves[name] = countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released") - moves0[name]
	}
	for name, h := range hosts {
		s := c.waitSnapshot(name, 5*time.Second, "readable", func(status.Snapshot) bool { return true })
		if s.Counters != nil {
			r.nonPeer[name] = s.Counters.HeartbeatNonPeer
		}
		r.nftDropped[name] = nftDrops(t, c, h)
	}
	t.Logf("%d datagrams of %d bytes in %v (%.0f/s) from %s to %v; owner %s, backup %s",
		r.sent, floodSize, took.Round(time.Millisecond), float64(r.sent)/took.Seconds(), mallory.IPv4(), targets, owner, backup)
	seen := r.ownerChanged
	if len(seen) > 10 {
		seen = append(seen[:10:10], fmt.Sprintf("... %d samples in all", len(r.ownerChanged)))
	}
	t.Logf("missed-peer verdicts %v (%v in as long before the flood), VIP moves %v, owners seen besides %s: %v", r.missed, r.quiet, r.moves, owner, seen)
	t.Logf("heartbeat non-peer drops %v, peer filter (nftables) drops %v", r.nonPeer, r.nftDropped)
	return r
}

// flood sends floodRate junk datagrams a second, round robin to targets,
// for d, paced every millisecond; it returns how many it sent.
func flood(conn *net.UDPConn, targets []netip.AddrPort, d time.Duration) int {
	var junk [floodSize]byte
	for i := range junk {
		junk[i] = byte(i * 7)
	}
	perTick := floodRate / 1000
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for {
		el := time.Since(start)
		if el >= d {
			return sent
		}
		// Catch up after a late tick (a few ticks' worth at most), so the
		// rate holds on average when the sender can keep up.
		due := min(int(el.Seconds()*floodRate)+perTick, sent+4*perTick)
		for sent < due {
			if _, err := conn.WriteToUDPAddrPort(junk[:], targets[sent%len(targets)]); err == nil {
				sent++
			} else {
				break
			}
		}
		<-tick.C
	}
}

// missedVerdicts counts the daemon's "heartbeat verdict" log lines from
// since until until that name a missing peer, and returns the first few
// in short.
func missedVerdicts(d *daemonProc, since, until time.Time) (int, []string) {
	n := 0
	var lines []string
	for _, l := range logLines(d) {
		if !strings.Contains(l, `"msg":"heartbeat verdict"`) {
			continue
		}
		var v struct {
			Time     time.Time         `json:"time"`
			Missing  []string          `json:"missing"`
			Ages     map[string]string `json:"last_beat_age"`
			Lateness string            `json:"loop_max_lateness"`
			NonPeer  uint64            `json:"non_peer"`
			Received uint64            `json:"received"`
		}
		if json.Unmarshal([]byte(l), &v) != nil || v.Time.Before(since) || !v.Time.Before(until) {
			continue
		}
		if len(v.Missing) > 0 {
			n++
			if len(lines) < 3 {
				lines = append(lines, fmt.Sprintf("%s missing %v, last beat ages %v, loop max lateness %s, received %d, non-peer %d",
					v.Time.Format("15:04:05.000"), v.Missing, v.Ages, v.Lateness, v.Received, v.NonPeer))
			}
		}
	}
	return n, lines
}

var nftCounterRE = regexp.MustCompile(`counter packets (\d+)`)

// nftDrops sums the peer filter's drop counters on h (0 without the table).
func nftDrops(t *testing.T, c *cluster, h *netlab.Host) uint64 {
	t.Helper()
	out, err := h.Command(c.ctx, "nft", "list", "table", "inet", "epconsole").Output()
	if err != nil {
		return 0
	}
	var n uint64
	for _, m := range nftCounterRE.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseUint(m[1], 10, 64)
		n += v
	}
	return n
}
