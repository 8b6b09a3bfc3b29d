package heartbeat

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// The datagram, big-endian. Version 1, DatagramSize (60) bytes:
//
//	offset size field
//	     0    2 magic "eh"
//	     2    1 version (1)
//	     3    1 flags
//	     4    8 sender (NodeID)
//	    12    8 boot ID of the sender's beat loop (random, never 0)
//	    20    8 sequence number (starts at 1 for every boot ID)
//	    28    8 owner the sender believes in (NodeID, 0: none)
//	    36    8 epoch of that owner's claim
//	    44   16 HMAC-SHA256 of bytes 0..43, truncated
//
// Version 2, DatagramSizeV2 (68) bytes, binds the beat to a cluster:
//
//	offset size field
//	     0   44 as in version 1, version byte 2
//	    44    8 cluster (ClusterID of the sender's cluster name)
//	    52   16 HMAC-SHA256 of bytes 0..51, truncated
//
// A loop sends version 2 and reads both: it answers a peer whose last
// authentic beat was version 1 (a release that reads version 1 only) in
// version 1, so peers one release apart keep hearing each other.
const (
	// Version is the datagram version this package writes by default.
	Version = 2
	// Version1 is the datagram version of the previous release (no
	// cluster), still read and written to peers that send it.
	Version1 = 1
	// DatagramSize is the length of a version 1 datagram.
	DatagramSize = macOffset + MACSize
	// DatagramSizeV2 is the length of a version 2 datagram.
	DatagramSizeV2 = macOffsetV2 + MACSize
	// MaxDatagramSize is the length of the longest datagram.
	MaxDatagramSize = DatagramSizeV2
	// MACSize is the length of the truncated HMAC-SHA256 tag.
	MACSize = 16
	// KeyInfo is the HKDF info string of the heartbeat key.
	KeyInfo = "epconsole heartbeat v1"

	magic0, magic1 = 'e', 'h'
	macOffset      = 44
	clusterOffset  = 44
	macOffsetV2    = 52
)

// ClusterID names a cluster on the wire: the first 8 bytes of SHA-256 over
// a domain prefix and the cluster name.
type ClusterID uint64

// ClusterIDOf returns the ClusterID of a cluster name.
func ClusterIDOf(name string) ClusterID {
	sum := sha256.Sum256([]byte("epconsole cluster id\x00" + name))
	return ClusterID(binary.BigEndian.Uint64(sum[:8]))
}

// Flags are the bits a beat carries about its sender.
type Flags uint8

// Beat flags. The daemon sets FlagHolding, FlagLeaving and FlagRestarting (Advert); the
// beat loop sets FlagRealtime and FlagMajority itself.
const (
	// FlagHolding: the sender holds the VIP now (address and lease).
	FlagHolding Flags = 1 << iota
	// FlagLeaving: the sender is stopping and hands the VIP over.
	FlagLeaving
	// FlagRealtime: the sender's beat loop runs at real-time priority, so
	// receivers may use the short threshold for it.
	FlagRealtime
	// FlagMajority: the sender hears fresh beats from a majority of the
	// configured peers (itself included).
	FlagMajority
	// FlagRestarting: the sender's beat loop is about to be restarted
	// (a reload changed its keys, peers or settings); receivers may keep
	// the sender live across the short gap (the daemon's liveness).
	FlagRestarting
	// FlagOwnerGone: the sender's beat loop no longer hears the owner its
	// beat names (set by the loop; a successor's helper claims only once
	// every live peer that believed in that owner says so).
	FlagOwnerGone

	// advertFlags are the flags the daemon controls.
	advertFlags = FlagHolding | FlagLeaving | FlagRestarting
)

// String lists the set flags, for logs.
func (f Flags) String() string {
	names := [...]string{"holding", "leaving", "realtime", "majority", "restarting", "owner-gone"}
	s := ""
	for i, n := range names {
		if f&(1<<i) != 0 {
			if s != "" {
				s += ","
			}
			s += n
		}
	}
	if rest := f &^ (1<<len(names) - 1); rest != 0 {
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf("%#x", uint8(rest))
	}
	if s == "" {
		return "none"
	}
	return s
}

// NodeID names a node on the wire: the first 8 bytes of SHA-256 over a
// domain prefix and the node name. 0 means "nobody".
type NodeID uint64

// IDOf returns the NodeID of a node name. It is never 0.
func IDOf(name string) NodeID {
	sum := sha256.Sum256([]byte("epconsole node id\x00" + name))
	id := NodeID(binary.BigEndian.Uint64(sum[:8]))
	if id == 0 {
		id = 1
	}
	return id
}

// String is the ID in hex.
func (id NodeID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// Beat is the content of one heartbeat datagram.
type Beat struct {
	Flags  Flags
	Sender NodeID
	// Boot is the sender loop's boot ID: random and non-zero, new for every
	// start of the loop.
	Boot uint64
	// Seq numbers the sender's beats within one boot ID, from 1.
	Seq uint64
	// Owner is the VIP owner the sender believes in (0: none).
	Owner NodeID
	// Epoch is the epoch of that owner's claim; a claim raises it.
	Epoch uint64
	// Version is the datagram version it came in (Open sets it).
	Version uint8
	// Cluster is the sender's cluster (version 2; 0 in version 1).
	Cluster ClusterID
}

// Errors of Keyring.Open. They are values, so dropping a datagram does not
// allocate.
var (
	ErrMalformed = errors.New("heartbeat: malformed datagram")
	ErrVersion   = errors.New("heartbeat: unknown datagram version")
	ErrBadMAC    = errors.New("heartbeat: authentication failed (no key of the keyring matches)")
)

// DeriveKey returns the heartbeat key for one gossip key:
// HKDF-SHA256(secret = gossip key, no salt, info = KeyInfo), 32 bytes.
func DeriveKey(gossipKey []byte) ([]byte, error) {
	if len(gossipKey) == 0 {
		return nil, errors.New("heartbeat: empty gossip key")
	}
	k, err := hkdf.Key(sha256.New, gossipKey, nil, KeyInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("deriving heartbeat key: %w", err)
	}
	return k, nil
}

// Keyring seals beats with its primary key and opens beats sealed with any
// of its keys (key rotation). It keeps one HMAC state per key, so Seal and
// Open do not allocate; it is not safe for concurrent use.
type Keyring struct {
	macs []hash.Hash
	sum  [sha256.Size]byte
}

// NewKeyring derives the heartbeat keys from a gossip keyring (primary
// first) with DeriveKey.
func NewKeyring(gossipKeys [][]byte) (*Keyring, error) {
	derived := make([][]byte, 0, len(gossipKeys))
	for i, k := range gossipKeys {
		d, err := DeriveKey(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		derived = append(derived, d)
	}
	return newKeyringDerived(derived)
}

// newKeyringDerived builds a Keyring from heartbeat keys (already derived).
func newKeyringDerived(keys [][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("heartbeat: no key")
	}
	k := &Keyring{}
	for _, key := range keys {
		if len(key) == 0 {
			return nil, errors.New("heartbeat: empty key")
		}
		k.macs = append(k.macs, hmac.New(sha256.New, key))
	}
	return k, nil
}

// Len returns the number of keys.
func (k *Keyring) Len() int { return len(k.macs) }

// Seal writes b into dst as a version 1 datagram signed with the primary
// key (b.Version and b.Cluster are not written).
func (k *Keyring) Seal(dst *[DatagramSize]byte, b *Beat) {
	putHeader(dst[:], Version1, b)
	k.tag(0, dst[:macOffset])
	copy(dst[macOffset:], k.sum[:MACSize])
}

// SealV2 writes b into dst as a version 2 datagram of cluster c, signed
// with the primary key.
func (k *Keyring) SealV2(dst *[DatagramSizeV2]byte, b *Beat, c ClusterID) {
	putHeader(dst[:], Version, b)
	binary.BigEndian.PutUint64(dst[clusterOffset:], uint64(c))
	k.tag(0, dst[:macOffsetV2])
	copy(dst[macOffsetV2:], k.sum[:MACSize])
}

func putHeader(dst []byte, version byte, b *Beat) {
	dst[0], dst[1], dst[2], dst[3] = magic0, magic1, version, byte(b.Flags)
	binary.BigEndian.PutUint64(dst[4:], uint64(b.Sender))
	binary.BigEndian.PutUint64(dst[12:], b.Boot)
	binary.BigEndian.PutUint64(dst[20:], b.Seq)
	binary.BigEndian.PutUint64(dst[28:], uint64(b.Owner))
	binary.BigEndian.PutUint64(dst[36:], b.Epoch)
}

// Open verifies pkt (version 1 or 2) against every key of the keyring and
// decodes it into b. b is only written when Open returns nil. The caller
// checks b.Cluster.
func (k *Keyring) Open(pkt []byte, b *Beat) error {
	if len(pkt) < 3 || pkt[0] != magic0 || pkt[1] != magic1 {
		return ErrMalformed
	}
	macAt := 0
	switch pkt[2] {
	case Version1:
		macAt = macOffset
	case Version:
		macAt = macOffsetV2
	default:
		return ErrVersion
	}
	if len(pkt) != macAt+MACSize {
		return ErrMalformed
	}
	ok := false
	for i := range k.macs {
		k.tag(i, pkt[:macAt])
		if hmac.Equal(k.sum[:MACSize], pkt[macAt:]) {
			ok = true
			break
		}
	}
	if !ok {
		return ErrBadMAC
	}
	boot := binary.BigEndian.Uint64(pkt[12:])
	sender := NodeID(binary.BigEndian.Uint64(pkt[4:]))
	seq := binary.BigEndian.Uint64(pkt[20:])
	if boot == 0 || sender == 0 || seq == 0 {
		return ErrMalformed
	}
	*b = Beat{
		Flags:   Flags(pkt[3]),
		Sender:  sender,
		Boot:    boot,
		Seq:     seq,
		Owner:   NodeID(binary.BigEndian.Uint64(pkt[28:])),
		Epoch:   binary.BigEndian.Uint64(pkt[36:]),
		Version: pkt[2],
	}
	if pkt[2] == Version {
		b.Cluster = ClusterID(binary.BigEndian.Uint64(pkt[clusterOffset:]))
	}
	return nil
}

// tag computes the HMAC of msg under key i into k.sum.
func (k *Keyring) tag(i int, msg []byte) {
	m := k.macs[i]
	m.Reset()
	m.Write(msg)
	m.Sum(k.sum[:0])
}
