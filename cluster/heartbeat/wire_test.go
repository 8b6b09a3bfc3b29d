package heartbeat

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestDeriveKey(t *testing.T) {
	g := testKey(1)
	k, err := DeriveKey(g)
	if err != nil {
		t.Fatal(err)
	}
	// Independent computation: HKDF = Expand(Extract(salt=zeros, g), info).
	prk := hmac.New(sha256.New, make([]byte, sha256.Size))
	prk.Write(g)
	t1 := hmac.New(sha256.New, prk.Sum(nil))
	t1.Write([]byte("epconsole heartbeat v1"))
	t1.Write([]byte{1})
	if want := t1.Sum(nil); !bytes.Equal(k, want) {
		t.Fatalf("DeriveKey = %x, want %x", k, want)
	}
	if bytes.Equal(k, g) {
		t.Fatal("derived key equals the gossip key")
	}
	other, _ := hkdf.Key(sha256.New, g, nil, "epconsole gossip", 32)
	if bytes.Equal(k, other) {
		t.Fatal("info string does not separate keys")
	}
	if _, err := DeriveKey(nil); err == nil {
		t.Fatal("empty key accepted")
	}
}

func TestIDOf(t *testing.T) {
	a, b := IDOf("lb1"), IDOf("lb2")
	if a == 0 || b == 0 || a == b {
		t.Fatalf("IDOf: %v %v", a, b)
	}
	if IDOf("lb1") != a {
		t.Fatal("IDOf is not deterministic")
	}
	sum := sha256.Sum256([]byte("epconsole node id\x00lb1"))
	if got, want := a.String(), hex.EncodeToString(sum[:8]); got != want {
		t.Fatalf("IDOf(lb1) = %s, want %s", got, want)
	}
}

func TestSealOpen(t *testing.T) {
	primary, old, stranger := testKey(1), testKey(2), testKey(3)
	beat := Beat{Flags: FlagHolding | FlagRealtime, Sender: IDOf("lb1"), Boot: 0x1122334455667788, Seq: 42, Owner: IDOf("lb1"), Epoch: 7, Version: Version1}
	seal := func(keys ...[]byte) [DatagramSize]byte {
		k, err := NewKeyring(keys)
		if err != nil {
			t.Fatal(err)
		}
		var d [DatagramSize]byte
		k.Seal(&d, &beat)
		return d
	}
	mutate := func(d [DatagramSize]byte, f func(p []byte) []byte) []byte {
		return f(append([]byte(nil), d[:]...))
	}
	byPrimary := seal(primary, old)
	byOld := seal(old)
	byStranger := seal(stranger)
	for _, tc := range []struct {
		desc    string
		pkt     []byte
		keyring [][]byte
		wantErr error
	}{
		{"primary key", byPrimary[:], [][]byte{primary, old}, nil},
		{"rotation: sealed with the old key, accepted by a ring that still holds it", byOld[:], [][]byte{primary, old}, nil},
		{"sealed with the primary, receiver has it second", byPrimary[:], [][]byte{old, primary}, nil},
		{"wrong key", byStranger[:], [][]byte{primary, old}, ErrBadMAC},
		{"old key dropped from the ring", byOld[:], [][]byte{primary}, ErrBadMAC},
		{"flipped payload bit", mutate(byPrimary, func(p []byte) []byte { p[25] ^= 1; return p }), [][]byte{primary}, ErrBadMAC},
		{"flipped flags", mutate(byPrimary, func(p []byte) []byte { p[3] ^= byte(FlagHolding); return p }), [][]byte{primary}, ErrBadMAC},
		{"flipped MAC bit", mutate(byPrimary, func(p []byte) []byte { p[DatagramSize-1] ^= 0x80; return p }), [][]byte{primary}, ErrBadMAC},
		{"short", byPrimary[:DatagramSize-1], [][]byte{primary}, ErrMalformed},
		{"long", mutate(byPrimary, func(p []byte) []byte { return append(p, 0) }), [][]byte{primary}, ErrMalformed},
		{"bad magic", mutate(byPrimary, func(p []byte) []byte { p[0] = 'x'; return p }), [][]byte{primary}, ErrMalformed},
		{"version 2 byte on a version 1 datagram", mutate(byPrimary, func(p []byte) []byte { p[2] = 2; return p }), [][]byte{primary}, ErrMalformed},
		{"unknown version", mutate(byPrimary, func(p []byte) []byte { p[2] = 3; return p }), [][]byte{primary}, ErrVersion},
		{"empty", nil, [][]byte{primary}, ErrMalformed},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			k, err := NewKeyring(tc.keyring)
			if err != nil {
				t.Fatal(err)
			}
			got := Beat{Seq: 999}
			err = k.Open(tc.pkt, &got)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if got.Seq != 999 {
					t.Fatal("Open wrote the beat on failure")
				}
				return
			}
			if got != beat {
				t.Fatalf("Open = %+v, want %+v", got, beat)
			}
		})
	}
}

func TestOpenRejectsZeroFields(t *testing.T) {
	k, _ := NewKeyring([][]byte{testKey(1)})
	for _, b := range []Beat{
		{Sender: IDOf("a"), Boot: 0, Seq: 1},
		{Sender: 0, Boot: 1, Seq: 1},
		{Sender: IDOf("a"), Boot: 1, Seq: 0},
	} {
		var d [DatagramSize]byte
		k.Seal(&d, &b)
		var got Beat
		if err := k.Open(d[:], &got); !errors.Is(err, ErrMalformed) {
			t.Errorf("Open(%+v) = %v, want ErrMalformed", b, err)
		}
	}
}

func TestWireLayout(t *testing.T) {
	k, _ := NewKeyring([][]byte{testKey(1)})
	var d [DatagramSize]byte
	k.Seal(&d, &Beat{Flags: FlagLeaving, Sender: 0x0102030405060708, Boot: 0x1112131415161718, Seq: 0x2122232425262728, Owner: 0x3132333435363738, Epoch: 0x4142434445464748})
	want := "6568" + "01" + "02" + "0102030405060708" + "1112131415161718" + "2122232425262728" + "3132333435363738" + "4142434445464748"
	if got := hex.EncodeToString(d[:macOffset]); got != want {
		t.Fatalf("header\n got %s\nwant %s", got, want)
	}
	if DatagramSize != 60 {
		t.Fatalf("DatagramSize = %d", DatagramSize)
	}
}

func TestSealOpenDoNotAllocate(t *testing.T) {
	k, err := NewKeyring([][]byte{testKey(9), testKey(1)}) // the sender's key second: Open tries both
	if err != nil {
		t.Fatal(err)
	}
	sender, _ := NewKeyring([][]byte{testKey(1)})
	var d [DatagramSize]byte
	b := Beat{Sender: IDOf("lb1"), Boot: 1, Seq: 1, Owner: IDOf("lb2"), Epoch: 3, Version: Version1}
	var got Beat
	allocs := totalAllocs(1000, func() {
		b.Seq++
		sender.Seal(&d, &b)
		if err := k.Open(d[:], &got); err != nil {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("1000 Seal+Open allocated %d times", allocs)
	}
	if got != b {
		t.Fatalf("got %+v", got)
	}
	// A rejected datagram does not allocate either.
	d[10] ^= 1
	allocs = totalAllocs(1000, func() {
		if err := k.Open(d[:], &got); err != ErrBadMAC {
			panic(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("1000 rejections allocated %d times", allocs)
	}
}

func TestFlagsString(t *testing.T) {
	for f, want := range map[Flags]string{0: "none", FlagHolding | FlagMajority: "holding,majority", 0x80 | FlagLeaving: "leaving,0x80"} {
		if got := f.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", uint8(f), got, want)
		}
	}
}

// TestSealOpenV2: version 2 carries the cluster under the MAC; Open reads
// both versions.
func TestSealOpenV2(t *testing.T) {
	k, _ := NewKeyring([][]byte{testKey(1)})
	c := ClusterIDOf("prod")
	if c == ClusterIDOf("staging") || c != ClusterIDOf("prod") {
		t.Fatal("ClusterIDOf does not tell names apart")
	}
	b := Beat{Flags: FlagMajority, Sender: 0x0102030405060708, Boot: 0x1112131415161718, Seq: 0x2122232425262728, Owner: 0x3132333435363738, Epoch: 0x4142434445464748}
	var d [DatagramSizeV2]byte
	k.SealV2(&d, &b, 0x5152535455565758)
	want := "6568" + "02" + "08" + "0102030405060708" + "1112131415161718" + "2122232425262728" + "3132333435363738" + "4142434445464748" + "5152535455565758"
	if got := hex.EncodeToString(d[:macOffsetV2]); got != want {
		t.Fatalf("header\n got %s\nwant %s", got, want)
	}
	var got Beat
	if err := k.Open(d[:], &got); err != nil {
		t.Fatal(err)
	}
	b.Version, b.Cluster = Version, 0x5152535455565758
	if got != b {
		t.Fatalf("Open = %+v, want %+v", got, b)
	}
	d[clusterOffset] ^= 1 // the cluster is authenticated
	if err := k.Open(d[:], &got); err != ErrBadMAC {
		t.Fatalf("changed cluster: %v, want ErrBadMAC", err)
	}
	if err := k.Open(d[:DatagramSize], &got); err != ErrMalformed {
		t.Fatalf("version 2 cut to 60 bytes: %v, want ErrMalformed", err)
	}
}
