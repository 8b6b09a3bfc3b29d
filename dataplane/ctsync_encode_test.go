package dataplane

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestDcsAppendNetlinkMessage: the applier's own encoding of a request
// is netlink's, byte for byte.
func TestDcsAppendNetlinkMessage(t *testing.T) {
	e := SyncEntry{Op: SyncUpsert, OrigSrc: netip.MustParseAddrPort("198.18.229.10:40000"),
		OrigDst: netip.MustParseAddrPort("198.18.229.100:6443"), ReplySrc: netip.MustParseAddrPort("198.18.229.21:6443"),
		ReplyDst: netip.MustParseAddrPort("198.18.229.100:40000"), TCPState: 3, Timeout: 600, Mark: DefaultCtMark}
	for _, create := range []bool{true, false} {
		m, err := syncedMessage(e, create)
		if err != nil {
			t.Fatal(err)
		}
		m.Header.Sequence, m.Header.Length = 7, uint32(nlmsgHeaderLen+len(m.Data))
		want, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if got := appendNetlinkMessage([]byte{9}, m); !bytes.Equal(got[1:], want) || got[0] != 9 {
			t.Errorf("create %v: appended %x, want %x after the 09", create, got, want)
		}
	}
}
