package heartbeat

// beaterClaim is the Beater's part of the claim.
type beaterClaim struct {
	pending []HelperClaim
	planBuf [planSize]byte
}

// takeClaimLocked records a claim record from the loop; it reports
// whether it was one.
func (b *Beater) takeClaimLocked(msg []byte) bool {
	var m claimMsg
	if !m.decode(msg) {
		b.log.Error("dropping a malformed claim record from the heartbeat loop", "len", len(msg))
		return false
	}
	c := HelperClaim{
		Owner: b.nameOf(m.owner), Epoch: m.epoch, LastBeat: m.lastBeat, Verdict: m.verdict, Lease: m.lease,
		Address: m.address, Announced: m.announced, LeaseErr: m.leaseErr, AddressErr: m.addressErr, AnnounceErr: m.announceErr,
	}
	b.claim.pending = append(b.claim.pending, c)
	return true
}

func (b *Beater) nameOf(id NodeID) string {
	if id == 0 {
		return ""
	}
	if n, ok := b.names[id]; ok {
		return n
	}
	return id.String()
}

// Claims returns the claims the helper made since the last call (reading
// pending reports first), oldest first.
func (b *Beater) Claims() []HelperClaim {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drainPendingLocked()
	out := b.claim.pending
	b.claim.pending = nil
	return out
}

// HelperLease reports whether the helper renews the owner lease and the
// lease runs, as of its latest report.
func (b *Beater) HelperLease() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.haveReport && !b.stale && b.rep.lease
}

// SetPlan hands the loop the daemon's succession plan, and acknowledges
// every helper claim up to epoch ack (adopted or undone): the loop stops
// advertising its own claim and follows the liveness token again. Call
// it after the Refresh that says what the daemon decided.
func (b *Beater) SetPlan(p ClaimPlan, ack uint64) error {
	m := planMsg{successor: p.Successor, required: p.Required, peers: p.Peers, need: p.Need, epoch: p.Epoch, sentAt: MonoNow(), ack: ack}
	if p.Owner != "" {
		m.owner = IDOf(p.Owner)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m.encode(&b.claim.planBuf)
	return b.sendLocked(b.claim.planBuf[:], "sending the succession plan")
}
