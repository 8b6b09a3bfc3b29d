package dataplane

import (
	"encoding/binary"
	"hash/fnv"
)

// DefaultSlots is the default size of the slot map. It is prime, as
// Maglev's permutations need: every skip is then coprime with the size, so
// each backend's preference list visits every slot.
const DefaultSlots = 1021

// SlotCount returns the slot map size used for a requested size n: n itself
// when it is a prime of at least 2, else the next prime above it, and
// DefaultSlots when n <= 0.
func SlotCount(n int) int {
	if n <= 0 {
		return DefaultSlots
	}
	if n < 2 {
		return 2
	}
	for !isPrime(n) {
		n++
	}
	return n
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// BuildSlots fills a slot map of SlotCount(size) slots: element s is the
// index into backends of the backend that serves slot s, or -1 when no
// backend is healthy. A backend is healthy when healthy[name] is true; names
// missing from healthy count as unhealthy.
//
// The result is a pure function of (backends in config order, the healthy
// set, seed, size), so every peer computes the same map. It is filled in two
// Maglev passes:
//
//   - the primary table is Maglev's fill over all configured backends,
//     healthy or not; it decides the owner of each slot while that owner is
//     healthy;
//   - a slot whose primary owner is unhealthy takes its owner from a second
//     Maglev table filled from the healthy backends only.
//
// So with all backends healthy each backend holds floor(M/N) or ceil(M/N)
// slots, and losing one backend moves exactly that backend's slots (no
// other slot changes owner); its slots are spread over the rest as evenly as
// the second table's fill allows. When it comes back, exactly its slots
// return. Losing further backends moves their slots plus, at most, a small
// Maglev remapping among slots that were already on their second choice.
// Backend names should be unique; a duplicate name is treated as a backend
// of its own with the same preferences.
func BuildSlots(backends []string, healthy map[string]bool, seed uint32, size int) []int {
	m := SlotCount(size)
	out := make([]int, m)
	var up []int
	for i, name := range backends {
		if healthy[name] {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		for s := range out {
			out[s] = -1
		}
		return out
	}
	primary := maglev(backends, seed, m)
	if len(up) == len(backends) {
		return primary
	}
	names := make([]string, len(up))
	for k, i := range up {
		names[k] = backends[i]
	}
	secondary := maglev(names, seed, m)
	for s, owner := range primary {
		if healthy[backends[owner]] {
			out[s] = owner
		} else {
			out[s] = up[secondary[s]]
		}
	}
	return out
}

// maglev is the table fill of Maglev (Eisenbud et al., NSDI 2016, section
// 3.4): each backend walks its own permutation of the slots (offset + j*skip
// mod m) and, in turn, takes the next slot of its list that is still free.
// m must be prime and names non-empty.
func maglev(names []string, seed uint32, m int) []int {
	n := len(names)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	for i, name := range names {
		offset[i] = nameHash(seed, 'o', name) % uint64(m)
		skip[i] = nameHash(seed, 's', name)%uint64(m-1) + 1
	}
	table := make([]int, m)
	for s := range table {
		table[s] = -1
	}
	filled := 0
	for filled < m {
		for i := 0; i < n && filled < m; i++ {
			c := (offset[i] + next[i]*skip[i]) % uint64(m)
			for table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % uint64(m)
			}
			table[c] = i
			next[i]++
			filled++
		}
	}
	return table
}

// nameHash is FNV-1a (64 bit) over the seed, a tag byte and the name: fixed
// by the standard library, so it is the same on every peer and release.
func nameHash(seed uint32, tag byte, name string) uint64 {
	h := fnv.New64a()
	var b [5]byte
	binary.LittleEndian.PutUint32(b[:4], seed)
	b[4] = tag
	h.Write(b[:])
	h.Write([]byte(name))
	return h.Sum64()
}
