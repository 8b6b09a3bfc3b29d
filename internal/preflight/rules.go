package preflight

// Field names a packet property a rule condition reads. The names are the
// nft ones, so messages read like `nft list ruleset`.
type Field string

// The fields decodeRule understands. Anything else makes a condition
// Unknown.
const (
	FieldNfproto  Field = "meta nfproto"
	FieldL4proto  Field = "meta l4proto"
	FieldIPProto  Field = "ip protocol"
	FieldIP6Next  Field = "ip6 nexthdr"
	FieldIIFName  Field = "iifname"
	FieldOIFName  Field = "oifname"
	FieldIPSaddr  Field = "ip saddr"
	FieldIPDaddr  Field = "ip daddr"
	FieldIP6Saddr Field = "ip6 saddr"
	FieldIP6Daddr Field = "ip6 daddr"
	FieldSport    Field = "th sport"
	FieldDport    Field = "th dport"
	FieldCtState  Field = "ct state"
)

// Cond is one decoded match of a rule: (field & Mask) ^ Xor compared with
// Data by Op (or within From..To for a range). A condition the decoder
// cannot follow has Unknown set to what it is ("set lookup", "xt match
// conntrack", ...) and is neither true nor false for any packet.
type Cond struct {
	Field     Field  `json:"field,omitempty"`
	Op        string `json:"op,omitempty"` // "==", "!=", "<", "<=", ">", ">=", "in", "not in"
	Mask, Xor []byte `json:"-"`
	Data      []byte `json:"-"`
	From, To  []byte `json:"-"`
	// Set is the set of an "in" / "not in" lookup (with its name).
	Set     *SetFacts `json:"-"`
	Unknown string    `json:"unknown,omitempty"`
}

// SetFacts is a plain (not concatenated, not a map) nftables set's
// elements: single values and inclusive ranges (from interval sets).
type SetFacts struct {
	Name   string
	Values [][]byte
	Ranges [][2][]byte
}

// contains reports whether v is in the set.
func (s *SetFacts) contains(v []byte) bool {
	for _, e := range s.Values {
		if compare(v, e) == 0 {
			return true
		}
	}
	for _, r := range s.Ranges {
		if compare(v, r[0]) >= 0 && compare(v, r[1]) <= 0 {
			return true
		}
	}
	return false
}

// Verdict kinds of a Rule.
const (
	VerdictNone   = ""       // no verdict: evaluation continues with the next rule
	VerdictAccept = "accept" // ends this hook's base chain for the packet
	VerdictDrop   = "drop"   // drop (and reject, which also drops)
	VerdictJump   = "jump"
	VerdictGoto   = "goto"
	VerdictReturn = "return"
)

// Rule is a decoded nftables rule: all of Conds must hold for Verdict to
// apply.
type Rule struct {
	Handle  uint64 `json:"handle"`
	Conds   []Cond `json:"conds,omitempty"`
	Verdict string `json:"verdict,omitempty"`
	// Target is the chain of a jump or goto.
	Target string `json:"target,omitempty"`
}
