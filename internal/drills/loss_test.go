package drills

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/status"
)

// lossEnv enables TestLossSaturatedNoFailover and sets how long the loss
// and the saturation last ("60s"; at most 10m). Off by default: the drill
// is long and statistical.
const lossEnv = "EPCONSOLE_DRILL_LOSS"

// lossModulus: each of the two chains a packet between peers crosses (the
// sender's output, the receiver's input) drops 1 in lossModulus at random
// (`numgen random mod 200 == 0`), so 1 − (1 − 1/200)² ≈ 1 % of the packets
// are lost end to end.
const lossModulus = 200

// heartbeatPort is the drill configs' heartbeat port (gossip_bind's port
// 7946 + 1, the default).
const heartbeatPort = 7947

// lossClass is what a loss rule matches: the heartbeat, or the rest of
// the UDP and TCP between peers (gossip).
type lossClass string

const (
	classHeartbeat lossClass = "heartbeat"
	classOther     lossClass = "gossip"
)

// lossCount is what a chain's counters saw of one class.
type lossCount struct{ seen, dropped uint64 }

func (l lossCount) ratio() float64 {
	if l.seen == 0 {
		return 0
	}
	return float64(l.dropped) / float64(l.seen)
}

// lossTable is a host's "drillloss" table.
type lossTable struct{ *peerTable }

// addLoss makes h drop packets between it and peers at random, in its own
// "drillloss" table: for UDP and TCP in either direction, the output and
// the input chain each drop 1 in lossModulus (numgen random), with
// counters of the packets seen and dropped, the heartbeat (UDP to port
// heartbeatPort) apart from the rest. ARP and ICMP pass. remove (also run
// at cleanup) deletes the table.
func addLoss(t *testing.T, h *netlab.Host, peers ...*netlab.Host) *lossTable {
	t.Helper()
	proto := func(p byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		}
	}
	heartbeat := append(proto(unix.IPPROTO_UDP),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(heartbeatPort)},
	)
	// numgen random mod lossModulus == 0 (0 reads the same in either byte
	// order).
	random := []expr.Any{
		&expr.Numgen{Register: 1, Modulus: lossModulus, Type: unix.NFT_NG_RANDOM},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
	counter := []expr.Any{&expr.Counter{}}
	drop := []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	pt := addPeerTable(t, h, "drillloss", "loss rules", peers, func(rule func(tag string, parts ...[]expr.Any), peer []expr.Any) {
		// The heartbeat: counted, dropped at random, and accepted (in
		// this chain only) so the rules below draw no second number for
		// it.
		rule("seen "+string(classHeartbeat), peer, heartbeat, counter)
		rule("dropped "+string(classHeartbeat), peer, heartbeat, random, counter, drop)
		rule("", peer, heartbeat, []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})
		// Everything else in UDP or TCP (memberlist's gossip).
		for _, pr := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			rule("seen "+string(classOther), peer, proto(pr), counter)
			rule("dropped "+string(classOther), peer, proto(pr), random, counter, drop)
		}
	})
	return &lossTable{pt}
}

// counts reads the counters, by chain name and class.
func (l *lossTable) counts() (map[string]map[lossClass]lossCount, error) {
	out := map[string]map[lossClass]lossCount{}
	for _, ch := range l.chains {
		rules, err := l.conn.GetRules(l.table, ch)
		if err != nil {
			return nil, fmt.Errorf("rules of %s %s: %w", l.host.Name(), ch.Name, err)
		}
		m := map[lossClass]lossCount{}
		for _, r := range rules {
			kind, class, ok := strings.Cut(string(r.UserData), " ")
			if !ok {
				continue
			}
			for _, e := range r.Exprs {
				c, isCounter := e.(*expr.Counter)
				if !isCounter {
					continue
				}
				lc := m[lossClass(class)]
				if kind == "seen" {
					lc.seen += c.Packets
				} else {
					lc.dropped += c.Packets
				}
				m[lossClass(class)] = lc
			}
		}
		out[ch.Name] = m
	}
	return out, nil
}

// udpIn opens a UDP socket in h's namespace (closed at the end of the
// test).
func udpIn(t *testing.T, h *netlab.Host, open func() (*net.UDPConn, error)) *net.UDPConn {
	t.Helper()
	c := inHost(t, h, "UDP socket", open)
	t.Cleanup(func() { c.Close() })
	return c
}

// sendUDP sends n numbered datagrams from one host to another's port
// (paced: 100, then 1 ms) and returns how many distinct ones arrived.
func sendUDP(t *testing.T, from, to *netlab.Host, port uint16, n int) int {
	t.Helper()
	dst := netip.AddrPortFrom(to.IPv4(), port)
	rx := udpIn(t, to, func() (*net.UDPConn, error) { return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(dst)) })
	tx := udpIn(t, from, func() (*net.UDPConn, error) { return net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst)) })
	_ = rx.SetReadBuffer(8 << 20)
	defer rx.Close()
	defer tx.Close()
	var (
		mu   sync.Mutex
		got  = map[uint32]bool{}
		last = time.Now()
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, err := rx.Read(buf)
			if err != nil {
				return
			}
			if k == 4 {
				mu.Lock()
				got[binary.BigEndian.Uint32(buf)] = true
				last = time.Now()
				mu.Unlock()
			}
		}
	}()
	buf := make([]byte, 4)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(buf, uint32(i))
		// A packet dropped in the sender's output chain fails with EPERM.
		if _, err := tx.Write(buf); err != nil && !errors.Is(err, syscall.EPERM) {
			t.Fatalf("sending datagram %d from %s: %v", i, from.Name(), err)
		}
		if i%100 == 99 {
			time.Sleep(time.Millisecond)
		}
	}
	// Done when nothing more arrived for 300 ms (bounded by the 2 s read
	// deadline).
	for {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		quiet := time.Since(last) > 300*time.Millisecond
		mu.Unlock()
		if quiet {
			break
		}
	}
	rx.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return len(got)
}

// logHeartbeatStats logs what each LB's status says of its heartbeat.
func (c *cluster) logHeartbeatStats(when string) {
	for _, h := range c.lbs {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		s, err := status.NewClient(c.socket(h.Name())).Status(ctx)
		cancel()
		if err != nil {
			c.t.Logf("%s: %s status: %v", when, h.Name(), err)
			continue
		}
		e := s.Election
		var peers []string
		for _, p := range s.Peers {
			if !p.Self {
				peers = append(peers, fmt.Sprintf("%s fresh=%v state=%s rtt=%s", p.Name, p.Fresh, p.State, p.RTT))
			}
		}
		c.t.Logf("%s: %s owner=%s epoch=%d realtime=%v heartbeat %s x%d quorum %d/%d; %s",
			when, h.Name(), e.Owner, e.Epoch, e.Realtime, e.HeartbeatInterval, e.HeartbeatMisses,
			e.QuorumHave, e.QuorumNeed, strings.Join(peers, "; "))
	}
}

// TestLossSaturatedNoFailover: both cores saturated by bounded busy loops
// while 1 % of the packets between the LB peers (heartbeats and gossip)
// are lost at random, for EPCONSOLE_DRILL_LOSS: the VIP never moves
// (exactly one owner throughout, no vip-acquired or vip-released after the
// start). The control, before the daemons start: the same rules really
// lose about 1 % of datagrams sent to the heartbeat port (0.3–3 %), and
// none without them. During the drill, the rules' counters show how many
// heartbeats were dropped.
func TestLossSaturatedNoFailover(t *testing.T) {
	v := os.Getenv(lossEnv)
	if v == "" {
		t.Skipf("set %s=60s (how long; at most 10m) for the 1 %% loss + saturation drill; off by default (long and statistical)", lossEnv)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 10*time.Minute {
		t.Fatalf("%s=%q: want a duration up to 10m", lossEnv, v)
	}
	const datagrams = 20000
	control := func(c *cluster) {
		lb1, lb2 := c.lab.Host("lb1"), c.lab.Host("lb2")
		got := sendUDP(t, lb1, lb2, heartbeatPort, datagrams)
		t.Logf("control without loss rules: %d of %d datagrams lb1 -> lb2:%d arrived (%.2f %% lost)",
			got, datagrams, heartbeatPort, 100*float64(datagrams-got)/datagrams)
		if lost := datagrams - got; lost > datagrams/500 {
			t.Fatalf("without loss rules %d of %d datagrams were lost: the lab itself loses packets, the drill would measure nothing", lost, datagrams)
		}
		l1, l2 := addLoss(t, lb1, lb2), addLoss(t, lb2, lb1)
		got = sendUDP(t, lb1, lb2, heartbeatPort, datagrams)
		lost := float64(datagrams-got) / datagrams
		c1, err1 := l1.counts()
		c2, err2 := l2.counts()
		l1.remove()
		l2.remove()
		if err1 != nil || err2 != nil {
			t.Fatalf("loss counters: %v %v", err1, err2)
		}
		t.Logf("control with loss rules: %d of %d arrived (%.2f %% lost); lb1 output dropped %d of %d, lb2 input dropped %d of %d",
			got, datagrams, 100*lost, c1["output"][classHeartbeat].dropped, c1["output"][classHeartbeat].seen,
			c2["input"][classHeartbeat].dropped, c2["input"][classHeartbeat].seen)
		if lost < 0.003 || lost > 0.03 {
			t.Fatalf("the loss rules lost %.2f %% of the datagrams, want about 1 %% (0.3–3 %%)", 100*lost)
		}
		if c1["output"][classHeartbeat].seen < datagrams || c2["input"][classHeartbeat].seen == 0 {
			t.Fatalf("the heartbeat counters saw %d (lb1 output) and %d (lb2 input) of %d datagrams",
				c1["output"][classHeartbeat].seen, c2["input"][classHeartbeat].seen, datagrams)
		}
	}
	c, owner := newClusterWith(t, "cll", d+90*time.Second, clusterOpts{before: control})
	c.keepLogs()
	before := map[string]int{}
	decisions := map[string]int{}
	for name, dp := range c.daemons {
		before[name] = countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released")
		decisions[name] = countDecisions(dp)
	}
	c.logHeartbeatStats("before")

	var tables []*lossTable
	for _, h := range c.lbs {
		var peers []*netlab.Host
		for _, p := range c.lbs {
			if p != h {
				peers = append(peers, p)
			}
		}
		tables = append(tables, addLoss(t, h, peers...))
	}
	ctx, cancel := context.WithTimeout(c.ctx, d)
	defer cancel()
	n := busyLoops(t, ctx)
	start := time.Now()
	t.Logf("1 %% loss between the LBs and %d busy loops for %s; owner %s", n, d, owner)
	checks, halfway := 0, false
	for ctx.Err() == nil {
		if o := c.owners(); len(o) != 1 || o[0] != owner {
			t.Fatalf("owners %v after %s of loss and saturation, want only %s", o, time.Since(start).Round(time.Millisecond), owner)
		}
		checks++
		if !halfway && time.Since(start) > d/2 {
			halfway = true
			c.logHeartbeatStats("halfway")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var hb, other [2]lossCount // by chain: input, output
	for _, l := range tables {
		cs, err := l.counts()
		if err != nil {
			t.Fatal(err)
		}
		for i, ch := range []string{"input", "output"} {
			hb[i].seen += cs[ch][classHeartbeat].seen
			hb[i].dropped += cs[ch][classHeartbeat].dropped
			other[i].seen += cs[ch][classOther].seen
			other[i].dropped += cs[ch][classOther].dropped
		}
		t.Logf("%s: heartbeats dropped: input %d of %d, output %d of %d; gossip dropped: input %d of %d, output %d of %d",
			l.host.Name(), cs["input"][classHeartbeat].dropped, cs["input"][classHeartbeat].seen,
			cs["output"][classHeartbeat].dropped, cs["output"][classHeartbeat].seen,
			cs["input"][classOther].dropped, cs["input"][classOther].seen,
			cs["output"][classOther].dropped, cs["output"][classOther].seen)
		l.remove()
	}
	endToEnd := 1 - (1-hb[0].ratio())*(1-hb[1].ratio())
	t.Logf("after %s: owner %s alone in %d checks; heartbeats lost end to end %.2f %% (input %d of %d, output %d of %d dropped); gossip %d of %d",
		d, owner, checks, 100*endToEnd, hb[0].dropped, hb[0].seen, hb[1].dropped, hb[1].seen,
		other[0].dropped+other[1].dropped, other[0].seen+other[1].seen)
	if endToEnd < 0.003 || endToEnd > 0.03 {
		t.Errorf("the drill's heartbeats lost %.2f %% end to end, want about 1 %% (0.3–3 %%): the loss did not happen as meant", 100*endToEnd)
	}
	c.logHeartbeatStats("after")
	for name, dp := range c.daemons {
		if after := countEvents(dp, "vip-acquired") + countEvents(dp, "vip-released"); after != before[name] {
			t.Errorf("%s: %d VIP moves under loss and saturation, want 0", name, after-before[name])
		}
		t.Logf("%s: %d changes of decision (owner, hold or reason, e.g. \"no majority\") during the drill", name, countDecisions(dp)-decisions[name])
	}
}

// countDecisions counts the decision lines in a daemon's log (one per
// change of what it decides, the reason included).
func countDecisions(d *daemonProc) int {
	n := 0
	for _, l := range logLines(d) {
		if strings.Contains(l, `"msg":"decision"`) {
			n++
		}
	}
	return n
}
