package dataplane

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// eventFilter is the classic BPF program of the owner's event socket: it
// drops the events of TCP flows whose original destination is none of
// vips, and of other protocols, and keeps everything else. It reads the
// event at fixed offsets, which is how the kernel lays out the original
// tuple first (nlmsghdr, nfgenmsg, CTA_TUPLE_ORIG > CTA_TUPLE_IP > source,
// destination; CTA_TUPLE_PROTO > number, source port, destination port);
// an event laid out otherwise, or too short, is kept (and judged in
// decodeSyncEvent), so the filter can only spare work, never lose an
// event that matters.
func eventFilter(vips []netip.AddrPort) []unix.SockFilter {
	var p bpfProg
	p.ins(unix.BPF_LD|unix.BPF_W|unix.BPF_LEN, 0, "", "")
	p.ins(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, 100, "", "keep") // the longest offset read is 96
	p.ins(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, nlmsgHeaderLen, "", "")
	p.ins(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.AF_INET, "v4", "")
	p.ins(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.AF_INET6, "v6", "keep")
	for _, fam := range []struct {
		label string
		alen  uint32
		is4   bool
	}{{"v4", 4, true}, {"v6", 16, false}} {
		p.label(fam.label)
		// Offsets of the attribute headers (type at +2) and values.
		const orig, tip, src = 20, 24, 28
		dst := src + 4 + fam.alen
		tproto := dst + 4 + fam.alen
		num := tproto + 4
		sport := num + 8
		dport := sport + 8
		for _, a := range []struct{ off, typ, length uint32 }{
			{orig, ctaTupleOrig, 0}, {tip, ctaTupleIP, 0},
			{src, map[bool]uint32{true: ctaIPv4Src, false: ctaIPv6Src}[fam.is4], 4 + fam.alen},
			{dst, map[bool]uint32{true: ctaIPv4Dst, false: ctaIPv6Dst}[fam.is4], 4 + fam.alen},
			{tproto, ctaTupleProto, 0}, {num, ctaProtoNum, 5}, {sport, ctaProtoSrc, 6}, {dport, ctaProtoDst, 6},
		} {
			p.ins(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, a.off+2+lowByte, "", "")
			p.ins(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, a.typ, "", "keep")
			if a.length != 0 {
				p.ins(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, a.off+lowByte, "", "")
				p.ins(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, a.length, "", "keep")
			}
		}
		p.ins(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, num+4, "", "")
		p.ins(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, unix.IPPROTO_TCP, "", "drop")
		for i, v := range vips {
			a := v.Addr().Unmap()
			if a.Is4() != fam.is4 {
				continue
			}
			next := fam.label + "next" + string(rune('a'+i))
			raw := a.AsSlice()
			for w := 0; w < len(raw); w += 4 {
				p.ins(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, dst+4+uint32(w), "", "")
				p.ins(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, binary.BigEndian.Uint32(raw[w:]), "", next)
			}
			p.ins(unix.BPF_LD|unix.BPF_H|unix.BPF_ABS, dport+4, "", "")
			p.ins(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, uint32(v.Port()), "keep", next)
			p.label(next)
		}
		p.ins(unix.BPF_JMP|unix.BPF_JA, 0, "drop", "")
	}
	p.label("keep")
	p.ins(unix.BPF_RET|unix.BPF_K, 0xffffffff, "", "")
	if len(p.code) > 250 {
		// Too many VIPs for 8-bit jumps: keep every event.
		return []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}}
	}
	p.label("drop")
	p.ins(unix.BPF_RET|unix.BPF_K, 0, "", "")
	return p.assemble()
}

// lowByte is the offset of the low byte of a host-order 16-bit field.
var lowByte = func() uint32 {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return 0
	}
	return 1
}()

// bpfProg is a classic BPF program with named jump targets.
type bpfProg struct {
	code   []bpfIns
	labels map[string]int
}

type bpfIns struct {
	op     uint16
	k      uint32
	jt, jf string // labels; "" falls through
}

func (p *bpfProg) ins(op uint16, k uint32, jt, jf string) {
	p.code = append(p.code, bpfIns{op: op, k: k, jt: jt, jf: jf})
}

func (p *bpfProg) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.code)
}

// assemble resolves the labels into jump offsets (an unconditional jump
// takes its target in jt).
func (p *bpfProg) assemble() []unix.SockFilter {
	out := make([]unix.SockFilter, len(p.code))
	for i, in := range p.code {
		off := func(l string) uint32 {
			if l == "" {
				return 0
			}
			return uint32(p.labels[l] - i - 1)
		}
		f := unix.SockFilter{Code: in.op, K: in.k}
		if in.op == unix.BPF_JMP|unix.BPF_JA {
			f.K = off(in.jt)
		} else if in.op&0x07 == unix.BPF_JMP {
			f.Jt, f.Jf = uint8(off(in.jt)), uint8(off(in.jf))
		}
		out[i] = f
	}
	return out
}
