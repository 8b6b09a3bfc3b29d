package connsync

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/epconsole/epconsole/dataplane"
)

func syncEntry(i int, v6 bool) dataplane.SyncEntry {
	vip, be := netip.MustParseAddr("198.18.5.100"), netip.MustParseAddr("198.18.5.21")
	cl := netip.AddrFrom4([4]byte{198, 18, 5, byte(10 + i%200)})
	if v6 {
		vip, be = netip.MustParseAddr("fd00:198:18:5::100"), netip.MustParseAddr("fd00:198:18:5::21")
		cl = netip.MustParseAddr(fmt.Sprintf("fd00:198:18:5::%x", 0x1000+i))
	}
	op := dataplane.SyncUpsert
	if i%3 == 2 {
		op = dataplane.SyncDelete
	}
	port := uint16(30000 + i)
	return dataplane.SyncEntry{
		Op: op, OrigSrc: netip.AddrPortFrom(cl, port), OrigDst: netip.AddrPortFrom(vip, 6443),
		ReplySrc: netip.AddrPortFrom(be, 6443), ReplyDst: netip.AddrPortFrom(vip, port),
		TCPState: 3, Timeout: uint32(100 + i), Mark: dataplane.DefaultCtMark,
	}
}

func TestSyncBatch(t *testing.T) {
	var full []dataplane.SyncEntry
	for i := range syncBatchMax {
		full = append(full, syncEntry(i, i%2 == 1))
	}
	tests := []struct {
		name    string
		entries []dataplane.SyncEntry
		encErr  bool
	}{
		{"one IPv4", full[:1], false},
		{"mixed families", full[:7], false},
		{"largest batch", full, false},
		{"empty", nil, true},
		{"too many", append(slices.Clone(full), full[0]), true},
		{"invalid entry", []dataplane.SyncEntry{{Op: dataplane.SyncUpsert}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeSyncBatch(tc.entries)
			if tc.encErr {
				if err == nil {
					t.Fatalf("encoded %d bytes, want an error", len(b))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeSyncBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.entries) {
				t.Errorf("round trip of %d entries gave %d, or different ones", len(tc.entries), len(got))
			}
		})
	}

	good, err := encodeSyncBatch(full[:3])
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"header only", good[:3]},
		{"version", append([]byte{9}, good[1:]...)},
		{"count zero", append([]byte{1, 0, 0}, good[3:]...)},
		{"count too high", append([]byte{1, 0, 4}, good[3:]...)},
		{"truncated", good[:len(good)-2]},
		{"trailing bytes", append(slices.Clone(good), 1, 2)},
		{"entry length off", func() []byte { b := slices.Clone(good); b[3]--; return b }()},
	}
	for _, tc := range bad {
		t.Run("decode "+tc.name, func(t *testing.T) {
			if got, err := decodeSyncBatch(tc.b); err == nil {
				t.Errorf("decoded %d entries from %x, want an error", len(got), tc.b)
			}
		})
	}
}
