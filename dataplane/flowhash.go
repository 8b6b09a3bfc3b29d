package dataplane

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// FlowSlot returns the slot that the DNAT rule picks for a TCP connection
// from client: the kernel's jhash (include/linux/jhash.h) of the client
// address (and port, with BalanceConnection) as the rule lays them out in
// its registers, scaled to the slot count as nft_jhash does. With
// BuildSlots it tells which backend a flow lands on, on every peer alike.
// Zero values of mode, seed and slots mean their defaults, as in Desired.
func FlowSlot(mode BalanceMode, seed uint32, slots int, client netip.AddrPort) int {
	if seed == 0 {
		seed = DefaultSeed
	}
	a := client.Addr().Unmap()
	key := a.AsSlice()
	if mode != BalanceSource {
		// tcp sport, padded to a 4-byte register
		key = append(key, byte(client.Port()>>8), byte(client.Port()), 0, 0)
	}
	h := jhash(key, seed)
	// reciprocal_scale(h, modulus)
	return int((uint64(h) * uint64(SlotCount(slots))) >> 32)
}

// jhash is Bob Jenkins' lookup3 as in the kernel's jhash(): whole 12-byte
// blocks are read in host byte order, the tail byte by byte.
func jhash(k []byte, initval uint32) uint32 {
	const initVal = 0xdeadbeef
	length := uint32(len(k))
	a := initVal + length + initval
	b, c := a, a
	rol := bits.RotateLeft32
	for len(k) > 12 {
		a += binary.NativeEndian.Uint32(k[0:])
		b += binary.NativeEndian.Uint32(k[4:])
		c += binary.NativeEndian.Uint32(k[8:])
		// __jhash_mix
		a -= c
		a ^= rol(c, 4)
		c += b
		b -= a
		b ^= rol(a, 6)
		a += c
		c -= b
		c ^= rol(b, 8)
		b += a
		a -= c
		a ^= rol(c, 16)
		c += b
		b -= a
		b ^= rol(a, 19)
		a += c
		c -= b
		c ^= rol(b, 4)
		b += a
		k = k[12:]
	}
	if len(k) == 0 {
		return c
	}
	var tail [12]byte
	copy(tail[:], k)
	// The kernel's switch adds k[i] << (8 * (i % 4)) to a, b or c.
	a += uint32(tail[0]) | uint32(tail[1])<<8 | uint32(tail[2])<<16 | uint32(tail[3])<<24
	b += uint32(tail[4]) | uint32(tail[5])<<8 | uint32(tail[6])<<16 | uint32(tail[7])<<24
	c += uint32(tail[8]) | uint32(tail[9])<<8 | uint32(tail[10])<<16 | uint32(tail[11])<<24
	// __jhash_final
	c ^= b
	c -= rol(b, 14)
	a ^= c
	a -= rol(c, 11)
	b ^= a
	b -= rol(a, 25)
	c ^= b
	c -= rol(b, 16)
	a ^= c
	a -= rol(c, 4)
	b ^= a
	b -= rol(a, 14)
	c ^= b
	c -= rol(b, 24)
	return c
}
