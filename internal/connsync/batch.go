package connsync

import (
	"encoding/binary"
	"fmt"

	"github.com/epconsole/epconsole/dataplane"
)

// The batch format.
const (
	syncBatchMax    = 1024 // entries per message
	syncBatchHeader = 3    // version, count (u16)
	syncBatchV1     = 1
)

// encodeSyncBatch packs entries into one message: a version byte, the
// count, then each entry's wire form preceded by its length.
func encodeSyncBatch(entries []dataplane.SyncEntry) ([]byte, error) {
	if len(entries) == 0 || len(entries) > syncBatchMax {
		return nil, fmt.Errorf("sync batch of %d entries: want 1 to %d", len(entries), syncBatchMax)
	}
	b := make([]byte, syncBatchHeader, syncBatchHeader+len(entries)*40)
	b[0] = syncBatchV1
	binary.BigEndian.PutUint16(b[1:], uint16(len(entries)))
	for _, e := range entries {
		at := len(b)
		var err error
		if b, err = e.AppendBinary(append(b, 0)); err != nil {
			return nil, err
		}
		b[at] = byte(len(b) - at - 1)
	}
	return b, nil
}

// decodeSyncBatch reads a message made by encodeSyncBatch.
func decodeSyncBatch(b []byte) ([]dataplane.SyncEntry, error) {
	if len(b) < syncBatchHeader {
		return nil, fmt.Errorf("sync batch: %d bytes, too short", len(b))
	}
	if b[0] != syncBatchV1 {
		return nil, fmt.Errorf("sync batch: version %d, want %d", b[0], syncBatchV1)
	}
	n := int(binary.BigEndian.Uint16(b[1:]))
	if n == 0 || n > syncBatchMax {
		return nil, fmt.Errorf("sync batch: %d entries", n)
	}
	out := make([]dataplane.SyncEntry, 0, n)
	p := b[syncBatchHeader:]
	for i := range n {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return nil, fmt.Errorf("sync batch: entry %d truncated", i)
		}
		var e dataplane.SyncEntry
		if err := e.UnmarshalBinary(p[1 : 1+int(p[0])]); err != nil {
			return nil, fmt.Errorf("sync batch: entry %d: %w", i, err)
		}
		out = append(out, e)
		p = p[1+int(p[0]):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("sync batch: %d bytes after the last entry", len(p))
	}
	return out, nil
}
