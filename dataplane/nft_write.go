package dataplane

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// queueTable queues the creation of a whole table.
func queueTable(c *nftables.Conn, spec tableSpec) error {
	c.AddTable(spec.table)
	for _, ch := range spec.chains {
		c.AddChain(ch)
	}
	if err := c.AddSet(spec.set, nil); err != nil {
		return fmt.Errorf("queueing slot map: %w", err)
	}
	if err := queueElements(c, spec.set, spec.elems, false); err != nil {
		return err
	}
	for _, r := range spec.rules {
		c.AddRule(r)
	}
	return nil
}

// diffElements returns the elements to delete (keys only) and to add so
// that cur becomes want. A slot whose backend changes is deleted and added
// again: the kernel refuses to overwrite a map element's value.
func diffElements(cur, want []nftables.SetElement) (del, add []nftables.SetElement) {
	have := make(map[string][]byte, len(cur))
	for _, e := range cur {
		have[string(e.Key)] = e.Val
	}
	wanted := make(map[string]bool, len(want))
	for _, e := range want {
		wanted[string(e.Key)] = true
		v, ok := have[string(e.Key)]
		switch {
		case !ok:
			add = append(add, e)
		case string(v) != string(e.Val):
			del = append(del, nftables.SetElement{Key: e.Key})
			add = append(add, e)
		}
	}
	for _, e := range cur {
		if !wanted[string(e.Key)] {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	return del, add
}

// withdrawn returns the backends present in cur's values and absent from
// want's, in address order.
func withdrawn(cur, want []nftables.SetElement) []netip.AddrPort {
	keep := map[string]bool{}
	for _, e := range want {
		keep[string(e.Val)] = true
	}
	seen := map[string]bool{}
	var out []netip.AddrPort
	for _, e := range cur {
		v := string(e.Val)
		if keep[v] || seen[v] {
			continue
		}
		seen[v] = true
		if ap, ok := decodeBackendValue(e.Val); ok {
			out = append(out, ap)
		}
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

func slotsPerBackend(p familyPlan) map[string]int {
	m := map[string]int{}
	for _, b := range p.slots {
		if b >= 0 {
			m[p.backends[b].Name]++
		}
	}
	return m
}

// batchBuffer is the socket buffer size asked for: a whole batch goes out
// in one sendmsg, and a table of 65537 slots per family is ~6 MB.
const batchBuffer = 16 << 20

// setBuffers raises a netlink socket's send and receive buffers, past
// net.core.{w,r}mem_max when CAP_NET_ADMIN allows (SO_*BUFFORCE), else up
// to those limits.
func setBuffers(n int) nftables.SockOption {
	return func(c *netlink.Conn) error {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = raw.Control(func(fd uintptr) {
			for _, opt := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[0], n) == nil {
					continue
				}
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[1], n); err != nil {
					serr = err
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// maxElemsPerMessage bounds the elements in one element message: the
// element list is one netlink attribute, whose length field has 16 bits
// (a longer list wraps it, and the kernel then misparses the message).
// 1024 IPv6 elements take ~50 KB. Several messages stay in one batch.
const maxElemsPerMessage = 1024

// queueElements queues adds (or deletes) of elems in messages of at most
// maxElemsPerMessage elements.
func queueElements(c *nftables.Conn, s *nftables.Set, elems []nftables.SetElement, del bool) error {
	for chunk := range slices.Chunk(elems, maxElemsPerMessage) {
		var err error
		if del {
			err = c.SetDeleteElements(s, chunk)
		} else {
			err = c.SetAddElements(s, chunk)
		}
		if err != nil {
			return fmt.Errorf("queueing slot map elements: %w", err)
		}
	}
	return nil
}
