package cluster

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Quorum is the majority rule as one node sees it.
type Quorum struct {
	// Peers is the number of configured nodes, this one included.
	Peers int
	// Need is a majority of Peers: Peers/2 + 1.
	Need int
	// Have is how many configured nodes (this one included) are fresh.
	Have int
	// Required: with 3 or more peers a node may hold the VIP only while
	// Have >= Need.
	Required bool
	// Possible is false with exactly 2 peers: no majority can be formed,
	// so a partition can leave both holding the VIP (as with keepalived).
	Possible bool
}

// OK reports whether the majority rule lets this node hold the VIP.
func (q Quorum) OK() bool { return !q.Required || q.Have >= q.Need }

// String describes the quorum for status lines.
func (q Quorum) String() string {
	switch {
	case q.Peers == 1:
		return "single node: no majority needed"
	case !q.Possible:
		return "2 peers: a majority is impossible; a partition can leave both holding the VIP"
	default:
		return fmt.Sprintf("hears %d of %d peers, majority %d", q.Have, q.Peers, q.Need)
	}
}

// Claim is one member's claim to the VIP.
type Claim struct {
	Name  string
	Epoch uint64
}

// Decision is what Elect decides for one node.
type Decision struct {
	// Hold: this node should hold the VIP now.
	Hold bool
	// Owner is who holds the VIP by this node's direct evidence, after this
	// decision: this node when Hold, else the strongest claim of a fresh
	// member; empty if none. Publish it (Meta.Owner, beats) with Epoch.
	Owner string
	// Epoch is the epoch of Owner's claim: when Hold, the epoch this node
	// claims with (kept while it stays owner, highest known + 1 on a new
	// claim); with no Owner, the highest epoch known.
	Epoch uint64
	// Elected is who the election picks: the owner that keeps the VIP or
	// the member that should claim it; empty if no member can.
	Elected string
	// Reason says why this node holds the VIP or not.
	Reason string
	// Quorum is the majority rule as this node sees it.
	Quorum Quorum
	// Digest is the reference config digest: the most common among fresh
	// peers (ties: the owner's, then the best eligible member's).
	Digest string
	// Mismatch lists fresh configured members whose digest differs from
	// Digest (shown in status and logs; never moves the VIP by itself).
	Mismatch []string
	// Claims are the claims of fresh members, strongest first. More than
	// one is a conflict, resolved by the higher epoch (then priority, name).
	Claims []Claim
	// Panic: no live member is eligible and View.PanicRouting is on, so
	// the election picked among the live members that are not leaving
	// (each forwards to every backend, unprobed).
	Panic bool
}

// Conflict reports whether more than one fresh member claims the VIP.
func (d Decision) Conflict() bool { return len(d.Claims) > 1 }

// Elect decides, from the view alone, who owns the VIP and whether self
// should hold it. It is pure and deterministic: nodes with the same view
// agree on Elected, and at most the current owner and Elected hold (both
// only while a handover is under way). The rules:
//
//   - Only configured members count (View.Peers). Liveness is Member.Fresh.
//   - Candidates are fresh, eligible, not leaving members with readable metadata; the
//     highest (priority, name) wins — at equal priority the greater name.
//   - The current owner is the strongest claim of a fresh member: the higher
//     epoch, then (priority, name). It keeps the VIP while it is eligible,
//     unless a candidate with Preempt and a strictly higher priority exists.
//   - A config digest mismatch never moves the VIP by itself: the owner
//     keeps it whatever its digest, and a member whose digest differs from
//     the reference is not chosen as a new owner (or preemptor) while a
//     matching candidate exists.
//   - An owner that publishes HandoffTo = X (an operator's handoff) has X
//     elected while X is a live, eligible candidate, whatever the
//     priorities and digests; otherwise the request changes nothing.
//   - A departing member (Meta.Leaving: a graceful stop) counts for
//     nothing but its own handoff: it is no candidate, it counts toward
//     the majority only of itself and of the peer its claim names in
//     HandoffTo, and while it still claims the VIP with a HandoffTo only
//     that peer may be elected (none, where that peer is not a live
//     candidate: the departing owner names another, or releases when its
//     handoff times out). One handoff, one move.
//   - Panic routing (View.PanicRouting): while no live member is
//     eligible, every live member that is not leaving counts as a
//     candidate, so that the owner keeps the VIP and, with no owner, the
//     highest (priority, name) claims it; the other rules stay. Once a
//     member is eligible again the others are not, and it is elected.
//   - With 3 or more peers self holds only while it hears a majority, and
//     makes no new claim while a fresh member says it hears no majority
//     (Member.NoMajority: a partition is forming, and what self hears of
//     the other side may be about to go stale as well).
//   - Make before break: an owner that is no longer elected keeps holding
//     until the elected member's claim (a higher epoch) is visible.
//   - A holder yields to a stronger claim it hears of only through another
//     fresh member's belief (an owner it does not hear itself), and self
//     makes no new claim while such a hidden owner is reported and beats
//     every claim self hears directly. Beliefs are published from direct
//     evidence only (Decision.Owner), so they cannot keep each other alive.
func Elect(v View, self string) Decision {
	e := newElection(v)
	d := Decision{Quorum: e.quorum(self), Panic: e.panic}
	maxEpoch := e.maxEpoch()

	claims := e.claims()
	for _, c := range claims {
		d.Claims = append(d.Claims, Claim{c.Name, c.Meta.Epoch})
	}
	var current *Member
	if len(claims) > 0 {
		current = claims[0]
	}
	d.Digest = e.referenceDigest(current)
	for _, m := range e.live {
		if d.Digest != "" && m.Meta.Digest != d.Digest {
			d.Mismatch = append(d.Mismatch, m.Name)
		}
	}
	slices.Sort(d.Mismatch)

	elected, why := e.elect(current, d.Digest)
	if elected != nil {
		d.Elected = elected.Name
	}

	me, configured := e.peers[self]
	hidden := e.hiddenOwner()
	switch {
	case !configured:
		d.Reason = fmt.Sprintf("%s is not a configured peer", self)
	case me == nil:
		d.Reason = fmt.Sprintf("%s is not in its own view", self)
	case !me.Fresh:
		d.Reason = fmt.Sprintf("%s is not live (its own heartbeat is not fresh)", self)
	case !me.metaOK():
		d.Reason = fmt.Sprintf("%s has no valid metadata", self)
	case !d.Quorum.OK():
		d.Reason = fmt.Sprintf("no majority: %s", d.Quorum)
	case current == me:
		if hidden != nil && betterClaim(hidden.claim, hidden.owner, Claim{me.Name, me.Meta.Epoch}, me) {
			d.Reason = fmt.Sprintf("yields: %s reports %s holds the VIP with epoch %d (higher than ours, %d)",
				hidden.reporter, hidden.claim.Name, hidden.claim.Epoch, me.Meta.Epoch)
			break
		}
		d.Hold, d.Epoch = true, me.Meta.Epoch
		switch {
		case elected == me:
			d.Reason = "owner: keeps the VIP (" + why + ")"
		case elected == nil:
			d.Reason = "owner: keeps the VIP, no other member is eligible (" + why + ")"
		default:
			d.Reason = fmt.Sprintf("owner: hands over to %s, holds until its claim is seen (%s)", elected.Name, why)
		}
	case elected == me:
		if hidden != nil && (current == nil || betterClaim(hidden.claim, hidden.owner, Claim{current.Name, current.Meta.Epoch}, current)) {
			d.Reason = fmt.Sprintf("elected, but waits: %s reports %s holds the VIP (epoch %d) and this node does not hear it",
				hidden.reporter, hidden.claim.Name, hidden.claim.Epoch)
			break
		}
		if u := e.unreadHolder(); u != nil {
			d.Reason = fmt.Sprintf("elected, but waits: %s beats that it holds the VIP (epoch %d) and its metadata has not been read here yet",
				u.Name, u.Meta.Epoch)
			break
		}
		if w := e.withoutMajority(self); w != nil && d.Quorum.Required {
			d.Reason = fmt.Sprintf("elected, but waits: %s hears no majority (a partition may be forming; this node may be on its small side too)", w.Name)
			break
		}
		d.Hold, d.Epoch = true, maxEpoch+1
		d.Reason = "claims the VIP: " + why
	case elected != nil:
		d.Reason = fmt.Sprintf("%s is elected (%s)", elected.Name, why)
	default:
		d.Reason = "no member can own the VIP: " + why
	}
	if !d.Quorum.Possible && d.Quorum.Peers == 2 {
		d.Reason += "; " + d.Quorum.String()
	}

	if d.Hold {
		d.Owner = self
		return d
	}
	d.Epoch = maxEpoch
	for _, c := range claims {
		if c.Name != self {
			d.Owner, d.Epoch = c.Name, c.Meta.Epoch
			break
		}
	}
	return d
}

// election indexes a view for Elect.
type election struct {
	// peers maps every configured name to its member (nil if absent).
	peers map[string]*Member
	// live are the fresh configured members with readable metadata,
	// strongest (priority, name) first.
	live []*Member
	// panic: panic routing is on and no live member is eligible.
	panic bool
}

func newElection(v View) *election {
	e := &election{peers: make(map[string]*Member, len(v.Peers))}
	for _, p := range v.Peers {
		e.peers[p] = nil
	}
	for i := range v.Members {
		m := &v.Members[i]
		if _, ok := e.peers[m.Name]; !ok {
			continue
		}
		e.peers[m.Name] = m
		if m.Fresh && m.metaOK() {
			e.live = append(e.live, m)
		}
	}
	slices.SortFunc(e.live, func(a, b *Member) int { return -compareRank(a, b) })
	e.panic = v.PanicRouting && !slices.ContainsFunc(e.live, func(m *Member) bool { return m.Meta.candidate() })
	return e
}

// offers reports whether m offers to own the VIP: it is eligible and not
// leaving or, in panic, not leaving.
func (e *election) offers(m *Member) bool {
	return m.Meta.candidate() || (e.panic && !m.Meta.Leaving)
}

// withoutMajority returns the first fresh member other than self that
// says it hears no majority, or nil.
func (e *election) withoutMajority(self string) *Member {
	for _, m := range e.live {
		if m.Name != self && m.NoMajority {
			return m
		}
	}
	return nil
}

// unreadHolder returns the fresh member, with the strongest claim, whose
// beats say it holds the VIP but whose metadata this node has not read (nil
// if none): such a member is not live for the election (no priority, no
// eligibility to weigh), yet it is the owner the others follow, as after a
// gossip key fixed on this node, when the beats flow before the gossip
// state does. Self makes no new claim beside it.
func (e *election) unreadHolder() *Member {
	var best *Member
	for _, p := range slices.Sorted(maps.Keys(e.peers)) {
		m := e.peers[p]
		if m == nil || !m.Fresh || m.metaOK() || m.Meta.Owner != m.Name {
			continue
		}
		if best == nil || m.Meta.Epoch > best.Meta.Epoch {
			best = m
		}
	}
	return best
}

// metaOK reports whether the member's metadata was read and names it.
func (m *Member) metaOK() bool { return m.MetaErr == "" && m.Meta.Name == m.Name }

// compareRank orders members by (priority, name).
func compareRank(a, b *Member) int {
	if c := cmp.Compare(a.Meta.Priority, b.Meta.Priority); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// betterClaim reports whether claim a (by member ma, nil if unknown) beats
// claim b (by mb): the higher epoch, then (priority, name).
func betterClaim(a Claim, ma *Member, b Claim, mb *Member) bool {
	if a.Epoch != b.Epoch {
		return a.Epoch > b.Epoch
	}
	pa, pb := 0, 0
	if ma != nil {
		pa = ma.Meta.Priority
	}
	if mb != nil {
		pb = mb.Meta.Priority
	}
	if pa != pb {
		return pa > pb
	}
	return a.Name > b.Name
}

// quorum is the majority rule as self sees it. A departing member counts
// only for itself and for the peer its claim hands the VIP to.
func (e *election) quorum(self string) Quorum {
	q := Quorum{Peers: len(e.peers)}
	q.Need = q.Peers/2 + 1
	for _, m := range e.peers {
		if m == nil || !m.Fresh {
			continue
		}
		if m.Meta.Leaving && m.Name != self && !(m.Meta.Claims() && m.Meta.HandoffTo == self) {
			continue
		}
		q.Have++
	}
	q.Required = q.Peers >= 3
	q.Possible = q.Peers != 2
	return q
}

// maxEpoch is the highest epoch any configured member published.
func (e *election) maxEpoch() uint64 {
	var max uint64
	for _, m := range e.peers {
		if m != nil && m.Meta.Epoch > max {
			max = m.Meta.Epoch
		}
	}
	return max
}

// claims are the live members claiming the VIP, strongest claim first.
func (e *election) claims() []*Member {
	var cs []*Member
	for _, m := range e.live {
		if m.Meta.Claims() {
			cs = append(cs, m)
		}
	}
	slices.SortFunc(cs, func(a, b *Member) int {
		switch {
		case betterClaim(Claim{a.Name, a.Meta.Epoch}, a, Claim{b.Name, b.Meta.Epoch}, b):
			return -1
		case betterClaim(Claim{b.Name, b.Meta.Epoch}, b, Claim{a.Name, a.Meta.Epoch}, a):
			return 1
		}
		return 0
	})
	return cs
}

// referenceDigest is the most common digest among live members; a tie goes
// to the current owner's digest, then to the digest of the strongest
// eligible member, then to the greatest digest.
func (e *election) referenceDigest(current *Member) string {
	counts := map[string]int{}
	top := 0
	for _, m := range e.live {
		if m.Meta.Digest == "" {
			continue
		}
		counts[m.Meta.Digest]++
		top = max(top, counts[m.Meta.Digest])
	}
	var tied []string
	for d, n := range counts {
		if n == top {
			tied = append(tied, d)
		}
	}
	switch {
	case len(tied) == 0:
		return ""
	case len(tied) == 1:
		return tied[0]
	case current != nil && slices.Contains(tied, current.Meta.Digest):
		return current.Meta.Digest
	}
	for _, m := range e.live {
		if m.Meta.candidate() && slices.Contains(tied, m.Meta.Digest) {
			return m.Meta.Digest
		}
	}
	slices.Sort(tied)
	return tied[len(tied)-1]
}

// elect picks the member that should own the VIP, and says why.
func (e *election) elect(current *Member, digest string) (*Member, string) {
	var eligible, matching []*Member
	for _, m := range e.live {
		if !e.offers(m) {
			continue
		}
		eligible = append(eligible, m)
		if digest == "" || m.Meta.Digest == digest {
			matching = append(matching, m)
		}
	}
	if current != nil && current.Meta.Leaving {
		if to := current.Meta.HandoffTo; to != "" && to != current.Name {
			for _, m := range eligible {
				if m.Name == to {
					return m, fmt.Sprintf("%s is leaving and hands the VIP to %s", current.Name, to)
				}
			}
			return nil, fmt.Sprintf("%s is leaving and hands the VIP to %s, which is not a live eligible member here", current.Name, to)
		}
	}
	if current != nil && e.offers(current) {
		if to := current.Meta.HandoffTo; to != "" && to != current.Name {
			for _, m := range eligible {
				if m.Name == to {
					return m, fmt.Sprintf("%s hands the VIP to %s on request", current.Name, to)
				}
			}
		}
		for _, m := range matching { // strongest first
			if m != current && m.Meta.Preempt && m.Meta.Priority > current.Meta.Priority {
				return m, fmt.Sprintf("preempts %s: priority %d > %d", current.Name, m.Meta.Priority, current.Meta.Priority)
			}
		}
		if e.panic {
			return current, fmt.Sprintf("%s holds the VIP with epoch %d; %s", current.Name, current.Meta.Epoch, panicNote)
		}
		return current, fmt.Sprintf("%s holds the VIP with epoch %d and is eligible", current.Name, current.Meta.Epoch)
	}
	pool, note := matching, ""
	if len(matching) == 0 && len(eligible) > 0 {
		pool, note = eligible, "; no eligible member has the reference config digest"
	}
	var prefix string
	switch {
	case current != nil:
		prefix = fmt.Sprintf("owner %s is not eligible", current.Name)
	default:
		prefix = "no live owner"
	}
	if len(pool) == 0 {
		return nil, prefix + ", no member is eligible"
	}
	if e.panic {
		note += "; " + panicNote
	}
	best := pool[0]
	return best, fmt.Sprintf("%s, %s has the highest (priority, name) (%d, %s)%s", prefix, best.Name, best.Meta.Priority, best.Name, note)
}

// panicNote ends the reason of an election in panic.
const panicNote = "panic routing: no member is eligible, so the live members that are not leaving stand in"

// hidden is an owner reported by a fresh member that this node does not hear.
type hidden struct {
	claim    Claim
	owner    *Member // the owner's (stale) member entry, nil if never seen
	reporter string
}

// hiddenOwner returns the strongest owner belief of a live member about a
// configured member that is not live here (nil if none). Beliefs about live
// members are ignored: their own metadata says whether they claim.
func (e *election) hiddenOwner() *hidden {
	var best *hidden
	for _, m := range e.live {
		o := m.Meta.Owner
		if o == "" || o == m.Name {
			continue
		}
		om, configured := e.peers[o]
		if !configured || (om != nil && om.Fresh && om.metaOK()) {
			continue
		}
		h := &hidden{claim: Claim{o, m.Meta.Epoch}, owner: om, reporter: m.Name}
		if best == nil || betterClaim(h.claim, h.owner, best.claim, best.owner) {
			best = h
		}
	}
	return best
}
