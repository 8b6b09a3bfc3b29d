package heartbeat

// The claim's records on the control socket (see ctrl.go for the others).
const (
	msgPlan  byte = 3 // daemon -> loop: succession plan and claim acknowledgement
	msgClaim byte = 4 // loop -> daemon: the helper claimed the VIP

	planSize  = 48
	claimSize = 72

	// maxCtlSize is the longest record the loop reads.
	maxCtlSize = max(refreshSize, planSize)

	bitPlanSuccessor = 1
	bitPlanRequired  = 2

	bitClaimLeaseErr    = 1
	bitClaimAddressErr  = 2
	bitClaimAnnounceErr = 4
)

// planMsg is the daemon's succession plan.
//
//	0 type, 1 bits (successor, required), 2 peers, 3 need, 4..7 zero,
//	8 owner (8), 16 epoch to claim with (8), 24 sent at (8),
//	32 acknowledged claim epoch (8): the daemon adopted or undid every
//	helper claim up to it, 40 zero (8)
type planMsg struct {
	successor, required bool
	peers, need         int
	owner               NodeID
	epoch               uint64
	sentAt              Mono
	ack                 uint64
}

func (p *planMsg) encode(dst *[planSize]byte) {
	*dst = [planSize]byte{}
	dst[0] = msgPlan
	dst[1] = boolBit(p.successor, bitPlanSuccessor) | boolBit(p.required, bitPlanRequired)
	dst[2], dst[3] = byte(p.peers), byte(p.need)
	hostOrder.PutUint64(dst[8:], uint64(p.owner))
	hostOrder.PutUint64(dst[16:], p.epoch)
	hostOrder.PutUint64(dst[24:], uint64(p.sentAt))
	hostOrder.PutUint64(dst[32:], p.ack)
}

func (p *planMsg) decode(b []byte) bool {
	if len(b) != planSize || b[0] != msgPlan {
		return false
	}
	p.successor, p.required = b[1]&bitPlanSuccessor != 0, b[1]&bitPlanRequired != 0
	p.peers, p.need = int(b[2]), int(b[3])
	p.owner = NodeID(hostOrder.Uint64(b[8:]))
	p.epoch = hostOrder.Uint64(b[16:])
	p.sentAt = Mono(hostOrder.Uint64(b[24:]))
	p.ack = hostOrder.Uint64(b[32:])
	return true
}

// claimMsg is the helper's claim, as sent to the daemon.
//
//	0 type, 1 error bits, 2..7 zero, 8 owner, 16 epoch, 24 owner's last
//	beat, 32 verdict, 40 lease, 48 address, 56 announced, 64 zero
type claimMsg struct {
	owner                                        NodeID
	epoch                                        uint64
	lastBeat, verdict, lease, address, announced Mono
	leaseErr, addressErr, announceErr            bool
}

func (c *claimMsg) encode(dst *[claimSize]byte) {
	*dst = [claimSize]byte{}
	dst[0] = msgClaim
	dst[1] = boolBit(c.leaseErr, bitClaimLeaseErr) | boolBit(c.addressErr, bitClaimAddressErr) | boolBit(c.announceErr, bitClaimAnnounceErr)
	hostOrder.PutUint64(dst[8:], uint64(c.owner))
	hostOrder.PutUint64(dst[16:], c.epoch)
	for i, m := range [...]Mono{c.lastBeat, c.verdict, c.lease, c.address, c.announced} {
		hostOrder.PutUint64(dst[24+8*i:], uint64(m))
	}
}

func (c *claimMsg) decode(b []byte) bool {
	if len(b) != claimSize || b[0] != msgClaim {
		return false
	}
	c.leaseErr, c.addressErr, c.announceErr = b[1]&bitClaimLeaseErr != 0, b[1]&bitClaimAddressErr != 0, b[1]&bitClaimAnnounceErr != 0
	c.owner = NodeID(hostOrder.Uint64(b[8:]))
	c.epoch = hostOrder.Uint64(b[16:])
	ts := [...]*Mono{&c.lastBeat, &c.verdict, &c.lease, &c.address, &c.announced}
	for i, m := range ts {
		*m = Mono(hostOrder.Uint64(b[24+8*i:]))
	}
	return true
}
