package connsync

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

var (
	keyA = []byte("0123456789abcdef0123456789abcdef")
	keyB = []byte("fedcba9876543210fedcba9876543210")
)

// handshakePair runs both sides over a pipe.
func handshakePair(t *testing.T, ownerKey []byte, peerKeys [][]byte) (*secureConn, *secureConn, error) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	type res struct {
		c   *secureConn
		err error
	}
	srv := make(chan res, 1)
	go func() {
		c, err := serverHandshake(b, peerKeys, func(hello []byte) ([]byte, error) {
			name, _, err := decodeHello(hello)
			if err != nil {
				return nil, err
			}
			if name != "lb1" {
				return nil, errors.New("not lb1")
			}
			return encodeReply("lb2", true, 41), nil
		})
		if err != nil {
			b.Close()
		}
		srv <- res{c, err}
	}()
	cc, answer, err := clientHandshake(a, ownerKey, encodeHello("lb1", 7))
	s := <-srv
	if err != nil || s.err != nil {
		return nil, nil, errors.Join(err, s.err)
	}
	if name, known, last, err := decodeReply(answer); err != nil || name != "lb2" || !known || last != 41 {
		t.Fatalf("reply %q %v %d %v", name, known, last, err)
	}
	return cc, s.c, nil
}

// TestStreamHandshake: the stream opens with the gossip key (any key of
// the peer's keyring), not with another; frames go both ways; a frame
// changed on the way, or one replayed, does not authenticate.
func TestStreamHandshake(t *testing.T) {
	tests := []struct {
		name     string
		owner    []byte
		peer     [][]byte
		wantFail bool
	}{
		{"same key", keyA, [][]byte{keyA}, false},
		{"the owner's key is the peer's second (a rotation)", keyA, [][]byte{keyB, keyA}, false},
		{"another key", keyB, [][]byte{keyA}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, p, err := handshakePair(t, tc.owner, tc.peer)
			if tc.wantFail {
				if err == nil {
					t.Fatal("the handshake succeeded with a key the peer does not have")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			go func() { _, _ = o.WriteFrame([]byte("batch"), true) }()
			b, err := p.ReadFrame()
			if err != nil || string(b) != "batch" {
				t.Fatalf("peer read %q, %v", b, err)
			}
			go func() { _, _ = p.WriteFrame(encodeAck(5), true) }()
			b, err = o.ReadFrame()
			if seq, derr := decodeAck(b); err != nil || derr != nil || seq != 5 {
				t.Fatalf("owner read ack %v %v %v", seq, err, derr)
			}
		})
	}
}

// TestStreamFrameTamperAndReplay: a flipped bit, or a frame sent again,
// fails to open.
func TestStreamFrameTamperAndReplay(t *testing.T) {
	send, _ := newGCM(deriveKey(keyA, "owner->peer", []byte("c"), []byte("s")))
	recv, _ := newGCM(deriveKey(keyA, "owner->peer", []byte("c"), []byte("s")))
	var wire bytes.Buffer
	w := &secureConn{send: send}
	w.w = bufio.NewWriter(&wire)
	if _, err := w.WriteFrame([]byte("one"), true); err != nil {
		t.Fatal(err)
	}
	frame := append([]byte(nil), wire.Bytes()...)
	read := func(b []byte, ctr uint64) error {
		r := &secureConn{recv: recv, recvCtr: ctr}
		r.r = bufio.NewReader(bytes.NewReader(b))
		_, err := r.ReadFrame()
		return err
	}
	if err := read(frame, 0); err != nil {
		t.Fatalf("the frame as sent: %v", err)
	}
	bad := append([]byte(nil), frame...)
	bad[len(bad)-1] ^= 1
	if err := read(bad, 0); err == nil {
		t.Error("a changed frame opened")
	}
	if err := read(frame, 1); err == nil {
		t.Error("a replayed frame (as the second) opened")
	}
}

// TestBatchRoundTrip: a batch keeps its entries, order and times (to the
// microsecond); malformed ones are refused.
func TestBatchRoundTrip(t *testing.T) {
	t0 := time.Unix(1700000000, 123456000)
	var in []stamped
	for i := range 3 {
		in = append(in, stamped{e: benchEntry(i), t: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	in = append(in, stamped{e: benchEntry(3)}) // a full dump's entry: no time
	b, err := encodeBatch(nil, 9, in)
	if err != nil {
		t.Fatal(err)
	}
	seq, out, err := decodeBatch(b)
	if err != nil || seq != 9 || len(out) != len(in) {
		t.Fatalf("decode: %d %d %v", seq, len(out), err)
	}
	for i := range in {
		if out[i].e != in[i].e || !out[i].t.Equal(in[i].t) {
			t.Errorf("entry %d: %+v at %v, want %+v at %v", i, out[i].e, out[i].t, in[i].e, in[i].t)
		}
	}
	for _, bad := range [][]byte{nil, b[:batchHeader], b[:len(b)-1], append(append([]byte(nil), b...), 0)} {
		if _, _, err := decodeBatch(bad); err == nil {
			t.Errorf("a malformed batch of %d bytes decoded", len(bad))
		}
	}
	if _, err := encodeBatch(nil, 1, nil); err == nil {
		t.Error("an empty batch encoded")
	}
	// A batch of a dump alone: no time at all.
	b, err = encodeBatch(nil, 10, in[3:])
	if err != nil {
		t.Fatal(err)
	}
	if _, out, err := decodeBatch(b); err != nil || len(out) != 1 || !out[0].t.IsZero() {
		t.Errorf("a dump's batch decoded as %+v, %v; want one entry without a time", out, err)
	}
}
