package connsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/epconsole/epconsole/dataplane"
)

// The stream's frames (inside the sealed framing of seal.go).
//
//	hello (owner):  name length u8, name, session u64
//	reply (peer):   name length u8, name, known u8, last sequence u64
//	batch:          1, sequence u64, base time (Unix ns) i64, count u16,
//	                then per entry: age after base (µs) u32, length u8, entry
//	ack:            2, sequence u64 (every batch up to it is applied)
//
// The session is the owner's random number for its stream to this peer;
// a peer that knows it (same owner process, the peer not restarted) says
// which batch it applied last, and the owner resends only what follows:
// a dropped connection costs no full resync.
const (
	frameBatch byte = 1
	frameAck   byte = 2

	batchHeader = 1 + 8 + 8 + 2
)

func encodeHello(name string, session uint64) []byte {
	b := append([]byte{byte(len(name))}, name...)
	return binary.BigEndian.AppendUint64(b, session)
}

func decodeHello(b []byte) (string, uint64, error) {
	if len(b) < 1 || len(b) != 1+int(b[0])+8 {
		return "", 0, errors.New("malformed hello")
	}
	return string(b[1 : 1+b[0]]), binary.BigEndian.Uint64(b[1+b[0]:]), nil
}

func encodeReply(name string, known bool, last uint64) []byte {
	b := append([]byte{byte(len(name))}, name...)
	k := byte(0)
	if known {
		k = 1
	}
	return binary.BigEndian.AppendUint64(append(b, k), last)
}

func decodeReply(b []byte) (name string, known bool, last uint64, err error) {
	if len(b) < 1 || len(b) != 1+int(b[0])+9 {
		return "", false, 0, errors.New("malformed reply")
	}
	p := b[1+b[0]:]
	return string(b[1 : 1+b[0]]), p[0] == 1, binary.BigEndian.Uint64(p[1:]), nil
}

// stamped is an entry with the time the owner saw its event.
type stamped struct {
	e dataplane.SyncEntry
	t time.Time
}

// noTime is the age of an entry that carries no time (a full dump's):
// the peer counts no lag for it.
const noTime = 1<<32 - 1

// encodeBatch packs entries (at most syncBatchMax) as batch seq; an entry
// whose time is zero goes without one.
func encodeBatch(buf []byte, seq uint64, entries []stamped) ([]byte, error) {
	if len(entries) == 0 || len(entries) > syncBatchMax {
		return nil, fmt.Errorf("batch of %d entries", len(entries))
	}
	var base time.Time
	for _, s := range entries {
		if !s.t.IsZero() && (base.IsZero() || s.t.Before(base)) {
			base = s.t
		}
	}
	var baseNS int64
	if !base.IsZero() {
		baseNS = base.UnixNano()
	}
	b := append(buf[:0], frameBatch)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, uint64(baseNS))
	b = binary.BigEndian.AppendUint16(b, uint16(len(entries)))
	for _, s := range entries {
		age := int64(noTime)
		if !s.t.IsZero() {
			age = min(s.t.Sub(base).Microseconds(), noTime-1)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(age))
		at := len(b)
		var err error
		if b, err = s.e.AppendBinary(append(b, 0)); err != nil {
			return nil, err
		}
		b[at] = byte(len(b) - at - 1)
	}
	return b, nil
}

// decodeBatch reads a batch frame.
func decodeBatch(b []byte) (uint64, []stamped, error) {
	if len(b) < batchHeader || b[0] != frameBatch {
		return 0, nil, errors.New("malformed batch")
	}
	seq := binary.BigEndian.Uint64(b[1:])
	base := time.Unix(0, int64(binary.BigEndian.Uint64(b[9:])))
	n := int(binary.BigEndian.Uint16(b[17:]))
	if n == 0 || n > syncBatchMax {
		return 0, nil, fmt.Errorf("batch of %d entries", n)
	}
	out := make([]stamped, 0, n)
	p := b[batchHeader:]
	for i := range n {
		if len(p) < 5 || len(p) < 5+int(p[4]) {
			return 0, nil, fmt.Errorf("batch %d: entry %d truncated", seq, i)
		}
		var s stamped
		if age := binary.BigEndian.Uint32(p); age != noTime {
			s.t = base.Add(time.Duration(age) * time.Microsecond)
		}
		if err := s.e.UnmarshalBinary(p[5 : 5+int(p[4])]); err != nil {
			return 0, nil, fmt.Errorf("batch %d: entry %d: %w", seq, i, err)
		}
		out = append(out, s)
		p = p[5+int(p[4]):]
	}
	if len(p) != 0 {
		return 0, nil, fmt.Errorf("batch %d: %d bytes after the last entry", seq, len(p))
	}
	return seq, out, nil
}

func encodeAck(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{frameAck}, seq)
}

func decodeAck(b []byte) (uint64, error) {
	if len(b) != 9 || b[0] != frameAck {
		return 0, errors.New("malformed ack")
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}
