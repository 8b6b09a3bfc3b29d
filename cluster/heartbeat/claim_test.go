package heartbeat

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestClaimVerdict is the helper's decision to claim alone, rule by rule.
func TestClaimVerdict(t *testing.T) {
	owner, other := IDOf("a"), IDOf("c")
	plan := planMsg{successor: true, required: true, peers: 3, need: 2, owner: owner, epoch: 8}
	dead := claimPeer{seen: true, flags: FlagRealtime | FlagHolding | FlagMajority, owner: owner, epoch: 7}
	gone := claimPeer{alive: true, seen: true, flags: FlagRealtime | FlagMajority | FlagOwnerGone, owner: owner, epoch: 7}
	base := func() claimInput {
		return claimInput{plan: plan, havePlan: true, beating: true, owner: dead, ownerKnown: true, others: []claimPeer{gone}}
	}
	cases := []struct {
		name string
		mod  func(*claimInput)
		ok   bool
		why  string
	}{
		{"owner gone, third peer agrees", func(*claimInput) {}, true, "beats stopped"},
		{"no plan", func(in *claimInput) { in.havePlan = false }, false, "not the successor"},
		{"not the successor", func(in *claimInput) { in.plan.successor = false }, false, "not the successor"},
		{"daemon token stale", func(in *claimInput) { in.beating = false }, false, "token"},
		{"already holding", func(in *claimInput) { in.holding = true }, false, "already holds"},
		{"claimed, not answered", func(in *claimInput) { in.claimed = true }, false, "already holds"},
		{"epoch claimed before (undone)", func(in *claimInput) { in.lastEpoch = 8 }, false, "claimed before"},
		{"owner not configured", func(in *claimInput) { in.ownerKnown = false }, false, "not a configured peer"},
		{"owner alive", func(in *claimInput) { in.owner.alive = true }, false, "owner is alive"},
		{"owner never heard", func(in *claimInput) { in.owner.seen = false }, false, "never heard"},
		{"owner leaving (handoff)", func(in *claimInput) { in.owner.flags |= FlagLeaving }, false, "leaving"},
		{"owner restarting its loop", func(in *claimInput) { in.owner.flags |= FlagRestarting }, false, "restarting"},
		{"third peer still hears the owner (asymmetric partition)", func(in *claimInput) { in.others[0].flags &^= FlagOwnerGone }, false, "still hears the owner"},
		{"third peer hears no majority (partition forming)", func(in *claimInput) { in.others[0].flags &^= FlagMajority }, false, "no majority"},
		{"third peer holds", func(in *claimInput) { in.others[0].flags |= FlagHolding }, false, "holds the VIP"},
		{"third peer knows a higher epoch", func(in *claimInput) { in.others[0].epoch, in.others[0].owner = 9, other }, false, "as strong"},
		{"third peer dead: no majority of 3", func(in *claimInput) { in.others[0].alive = false }, false, "no majority: 1 live of 3, 2 needed"},
		{"third peer dead, 2 peers (no majority rule)", func(in *claimInput) {
			in.plan.required, in.plan.peers, in.plan.need = false, 2, 2
			in.others = nil
		}, true, "beats stopped"},
		{"third peer leaving does not count", func(in *claimInput) { in.others[0].flags |= FlagLeaving }, false, "no majority"},
		{"third peer believes in nobody", func(in *claimInput) { in.others[0].owner, in.others[0].flags = 0, FlagMajority }, true, "beats stopped"},
		{"five peers, two dead others", func(in *claimInput) {
			in.plan.peers, in.plan.need = 5, 3
			in.others = []claimPeer{gone, {seen: true}, {}}
		}, false, "no majority: 2 live of 5"},
		{"five peers, majority", func(in *claimInput) {
			in.plan.peers, in.plan.need = 5, 3
			in.others = []claimPeer{gone, gone, {}}
		}, true, "beats stopped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base()
			in.others = append([]claimPeer(nil), in.others...)
			c.mod(&in)
			ok, why := claimVerdict(in)
			if ok != c.ok || !strings.Contains(why, c.why) {
				t.Errorf("claimVerdict = %v, %q; want %v, %q", ok, why, c.ok, c.why)
			}
		})
	}
}

func TestHelperLeaseTTL(t *testing.T) {
	for _, c := range []struct {
		iv     time.Duration
		misses int
		want   time.Duration
	}{
		{5 * time.Millisecond, 4, 40 * time.Millisecond},
		{3 * time.Millisecond, 4, 24 * time.Millisecond},
		{time.Millisecond, 2, 10 * time.Millisecond},
		{0, 0, 2 * time.Duration(DefaultMisses) * DefaultInterval},
	} {
		if got := HelperLeaseTTL(c.iv, c.misses); got != c.want {
			t.Errorf("HelperLeaseTTL(%v, %d) = %v, want %v", c.iv, c.misses, got, c.want)
		}
	}
}

// TestClaimRecords: the plan and claim records survive the control socket's encoding.
func TestClaimRecords(t *testing.T) {
	p := planMsg{successor: true, required: true, peers: 5, need: 3, owner: IDOf("a"), epoch: 12, sentAt: 99, ack: 11}
	var pb [planSize]byte
	p.encode(&pb)
	var p2 planMsg
	if !p2.decode(pb[:]) || p2 != p {
		t.Errorf("plan: %+v, want %+v", p2, p)
	}
	c := claimMsg{owner: IDOf("a"), epoch: 12, lastBeat: 1, verdict: 2, lease: 3, address: 4, announced: 5, addressErr: true}
	var cb [claimSize]byte
	c.encode(&cb)
	var c2 claimMsg
	if !c2.decode(cb[:]) || c2 != c {
		t.Errorf("claim: %+v, want %+v", c2, c)
	}
	if c2.decode(pb[:]) || p2.decode(cb[:]) {
		t.Error("a record of one kind decoded as the other")
	}
}

// TestClaimFromTracker: the loop feeds claimVerdict from its tracker: the
// owner's beats stop, and the claim waits for the third peer's beat that
// says it no longer hears the owner either; the loop's own beat says so
// (FlagOwnerGone) once the owner is gone here.
func TestClaimFromTracker(t *testing.T) {
	udp, err := listenUDP(netip.MustParseAddrPort("127.0.5.93:17993"))
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := DeriveKey(testKey(1))
	cfg := loopConfig{
		Self: "b", Peers: []loopPeer{{Name: "a", Addr: netip.MustParseAddrPort("127.0.5.94:17993")}, {Name: "c", Addr: netip.MustParseAddrPort("127.0.5.95:17993")}},
		Keys: [][]byte{key}, Interval: 5 * time.Millisecond, Misses: 4, SlowMisses: 8, TokenTTL: time.Second, ReportInterval: 20 * time.Millisecond,
	}
	l, err := newLoop(cfg, udp, fds[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close(); unix.Close(udp); unix.Close(fds[0]); unix.Close(fds[1]) })
	// The plan arrives through the control socket, whole.
	var pb [planSize]byte
	(&planMsg{successor: true, required: true, peers: 3, need: 2, owner: IDOf("a"), epoch: 5}).encode(&pb)
	if err := unix.Sendto(fds[0], pb[:], 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.readCtl(MonoNow()); err != nil {
		t.Fatal(err)
	}
	if !l.claim.havePlan || !l.claim.plan.successor || l.claim.plan.epoch != 5 {
		t.Fatalf("the loop did not take the plan sent to it: %+v", l.claim.plan)
	}
	l.token, l.tokenSeen = refresh{owner: IDOf("a"), epoch: 4}, true
	ms := func(n int) Mono { return Mono(int64(time.Second) + int64(n)*int64(time.Millisecond)) }
	seq := map[string]uint64{}
	beat := func(from string, at Mono, f Flags) {
		seq[from]++
		b := Beat{Sender: IDOf(from), Boot: 7, Seq: seq[from], Flags: FlagRealtime | FlagMajority | f, Owner: IDOf("a"), Epoch: 4}
		if v := l.tr.Observe(&b, at); v != Accepted {
			t.Fatalf("beat of %s: %v", from, v)
		}
	}
	verdict := func(now Mono) (bool, string) {
		in, _ := l.claimInput(now, true)
		return claimVerdict(in)
	}
	for i := 0; i <= 20; i += 5 {
		beat("a", ms(i), FlagHolding)
		beat("c", ms(i), 0)
	}
	if ok, why := verdict(ms(22)); ok {
		t.Fatalf("claims while the owner beats: %s", why)
	}
	beat("c", ms(41), 0) // c's tick before it sees a gone
	if ok, why := verdict(ms(42)); ok || !strings.Contains(why, "still hears the owner") {
		t.Fatalf("owner gone here, c still hears it: %v %q", ok, why)
	}
	l.tokenAt = ms(42)
	l.beat.Owner = IDOf("a")
	l.claimAdvert(ms(42))
	if l.beat.Flags&FlagOwnerGone == 0 {
		t.Error("the loop's own beat does not say the owner is gone")
	}
	beat("c", ms(45), FlagOwnerGone)
	if ok, why := verdict(ms(45)); !ok {
		t.Fatalf("owner gone and c agrees, no claim: %s", why)
	}
}
