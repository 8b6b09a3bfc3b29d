package cluster

import (
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/epconsole/epconsole/internal/floodlimit"
	"github.com/hashicorp/memberlist"
)

func TestMetaEncoding(t *testing.T) {
	long := strings.Repeat("n", MaxNameLen)
	worst := Meta{
		Name: long, Priority: 255, Eligible: true, Preempt: true, Owner: strings.Repeat("o", MaxNameLen),
		Epoch: math.MaxUint64, Version: strings.Repeat("v", MaxVersionLen), Digest: strings.Repeat("d", ShortDigestLen),
		BootID: "0123456789abcdef", Leaving: true, NamedMessages: true, SyncStream: true,
	}
	b, err := encodeMeta(worst)
	if err != nil {
		t.Fatalf("worst-case metadata: %v", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		t.Fatalf("worst-case metadata is %d bytes, limit %d", len(b), memberlist.MetaMaxSize)
	}
	t.Logf("worst-case metadata: %d bytes of %d", len(b), memberlist.MetaMaxSize)
	got, err := decodeMeta(b)
	if err != nil || got != worst {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	small, _ := encodeMeta(Meta{Name: "lb1", Priority: 100, Digest: "0123456789abcdef", BootID: "0123456789abcdef"})
	t.Logf("typical metadata: %s (%d bytes)", small, len(small))

	for _, tt := range []struct {
		desc string
		meta Meta
	}{
		{"no name", Meta{Priority: 1}},
		{"name too long", Meta{Name: long + "x"}},
		{"owner too long", Meta{Name: "a", Owner: long + "x"}},
		{"version too long", Meta{Name: "a", Version: strings.Repeat("v", MaxVersionLen+1)}},
		{"full digest", Meta{Name: "a", Digest: strings.Repeat("d", 64)}},
		{"priority out of range", Meta{Name: "a", Priority: 256}},
	} {
		if _, err := encodeMeta(tt.meta); err == nil {
			t.Errorf("%s: encoded", tt.desc)
		}
	}
	for _, tt := range []struct{ desc, in string }{
		{"empty", ""},
		{"not json", "\x00\x01garbage"},
		{"no version", `{"n":"lb1","p":100}`},
		{"wrong types", `{"v":1,"n":5}`},
	} {
		if m, err := decodeMeta([]byte(tt.in)); err == nil {
			t.Errorf("%s: decoded %+v", tt.desc, m)
		}
	}
	// A later version's extra fields are ignored.
	m, err := decodeMeta([]byte(`{"v":2,"n":"lb1","p":7,"future":{"x":1}}`))
	if err != nil || m.Name != "lb1" || m.Priority != 7 {
		t.Errorf("newer version: %+v, %v", m, err)
	}
}

func TestBackendMessageFitsAPacket(t *testing.T) {
	v := BackendView{
		Name: strings.Repeat("b", MaxNameLen), State: strings.Repeat("s", 100),
		Latency: time.Hour, Reason: strings.Repeat("é", MaxReasonLen), Since: time.Now(),
	}
	w := toWire(strings.Repeat("o", MaxNameLen), math.MaxUint64, v)
	if !utf8.ValidString(w.Reason) || len(w.Reason) > MaxReasonLen || len(w.State) > maxStateLen {
		t.Errorf("cut fields: reason %d bytes valid %v, state %d bytes", len(w.Reason), utf8.ValidString(w.Reason), len(w.State))
	}
	b, err := encodeBackendMsg(w)
	if err != nil {
		t.Fatal(err)
	}
	// memberlist packs broadcasts into its 1400-byte UDP packets, minus a
	// few dozen bytes of framing and the encryption overhead.
	if len(b) > 1000 {
		t.Errorf("worst-case backend message is %d bytes", len(b))
	}
	got, err := decodeMsg(b)
	if err != nil || got != w {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if gv := got.view(); gv.Latency != time.Hour || !gv.Since.Equal(v.Since.Round(0)) {
		t.Errorf("view %+v", gv)
	}
	for _, in := range [][]byte{nil, {9}, {msgBackend}, append([]byte{msgBackend}, `{"o":"a","n":"b"}`...)} {
		if w, err := decodeMsg(in); err == nil {
			t.Errorf("decodeMsg(%q) = %+v", in, w)
		}
	}
}

func FuzzDecode(f *testing.F) {
	meta, _ := encodeMeta(Meta{Name: "lb1", Priority: 100, Owner: "lb1", Epoch: 3})
	msg, _ := encodeBackendMsg(wireBackend{Origin: "lb1", Seq: 1, Name: "cp1", State: "up"})
	state, _ := encodeState(wireState{From: "lb1", Backends: []wireBackend{{Origin: "lb1", Seq: 1, Name: "cp1"}}})
	for _, s := range [][]byte{meta, msg, state, nil, {0}} {
		f.Add(s)
	}
	c := testCluster("lb9", nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeMeta(b)
		_, _ = decodeMsg(b)
		_, _ = decodeState(b)
		c.handleMsg(b)
		c.mergeRemoteState(b)
	})
}

// testCluster is a Cluster without memberlist, for the handlers; its
// configured peers are lb1, lb2 and lb3 (except itself) on 127.0.5.N.
func testCluster(name string, events chan Event) *Cluster {
	c := &Cluster{
		cfg:        Config{Name: name, Events: events, Advertise: testAddr(99)},
		timers:     DefaultTimers(),
		log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		members:    map[string]*memberRec{},
		backends:   map[string]map[string]*backendRec{},
		drains:     map[string]wireDrain{},
		limiter:    floodlimit.New(reportWindow, reportBurst, 0, nil),
		logLimiter: floodlimit.New(reportWindow, logReportBurst, 0, nil),
		local:      Meta{Name: name, Digest: "d1"},
	}
	for i, p := range []string{"lb1", "lb2", "lb3"} {
		if p != name {
			c.peers = append(c.peers, Peer{Name: p, Addr: testAddr(i + 1)})
		}
	}
	c.queue = &memberlist.TransmitLimitedQueue{NumNodes: c.numAlive, RetransmitMult: 4}
	return c
}

func TestApplyBackendOrder(t *testing.T) {
	events := make(chan Event, 16)
	c := testCluster("lb1", events)
	msg := func(w wireBackend) []byte {
		b, err := encodeBackendMsg(w)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	state := func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		r := c.backends["lb2"]["cp1"]
		if r == nil {
			return "none"
		}
		if r.w.Gone {
			return "gone"
		}
		return r.w.State
	}
	c.handleMsg(msg(wireBackend{Origin: "lb2", Seq: 10, Name: "cp1", State: "up"}))
	c.handleMsg(msg(wireBackend{Origin: "lb2", Seq: 5, Name: "cp1", State: "down"})) // older: ignored
	if s := state(); s != "up" {
		t.Fatalf("after an older view: %s, want up", s)
	}
	if n := c.queue.NumQueued(); n != 1 {
		t.Errorf("queued %d broadcasts, want the new view passed on once", n)
	}
	c.handleMsg(msg(wireBackend{Origin: "lb2", Seq: 11, Name: "cp1", State: "down", Reason: "connection refused"}))
	if s := state(); s != "down" {
		t.Fatalf("after a newer view: %s, want down", s)
	}
	select {
	case e := <-events:
		if e.Type != EventBackend || e.Member != "lb2" || e.Backend.State != "down" {
			t.Errorf("event %v", e)
		}
	default:
		t.Error("no backend event for up -> down")
	}
	c.handleMsg(msg(wireBackend{Origin: "lb2", Seq: 12, Name: "cp1", Gone: true}))
	if s := state(); s != "gone" {
		t.Fatalf("after a withdrawal: %s", s)
	}

	// A stale view of our own backend (from before a restart) is answered
	// with a tombstone; a stale copy of one we have, with a fresh stamp.
	c.handleMsg(msg(wireBackend{Origin: "lb1", Seq: 3, Name: "old", State: "up"}))
	c.mu.Lock()
	r := c.backends["lb1"]["old"]
	c.mu.Unlock()
	if r == nil || !r.w.Gone || r.w.Seq <= 3 {
		t.Errorf("own stale backend: %+v", r)
	}
	if err := c.SetBackends([]BackendView{{Name: "cp1", State: "up"}}); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	seq := c.backends["lb1"]["cp1"].w.Seq
	c.mu.Unlock()
	c.handleMsg(msg(wireBackend{Origin: "lb1", Seq: seq, Name: "cp1", State: "down"}))
	c.mu.Lock()
	r = c.backends["lb1"]["cp1"]
	c.mu.Unlock()
	if r.w.State != "up" || r.w.Seq <= seq {
		t.Errorf("own backend after a conflicting copy: %+v", r.w)
	}
	if s := c.Stats(); s.DecodeErrors != 0 {
		t.Errorf("stats %+v", s)
	}
	c.handleMsg([]byte("garbage"))
	c.mergeRemoteState([]byte(`{"v":1,"f":"lb2","b":[{"o":"","s":1,"n":"x"}]}`))
	if s := c.Stats(); s.DecodeErrors != 2 {
		t.Errorf("decode errors %d, want 2", s.DecodeErrors)
	}
}

func TestEventsNeverBlock(t *testing.T) {
	events := make(chan Event, 1)
	c := testCluster("lb1", events)
	done := make(chan struct{})
	go func() {
		for range 3 {
			c.emit(Event{Type: EventJoin, Member: "lb2"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("emit blocked on a full channel")
	}
	if s := c.Stats(); s.EventsDropped != 2 {
		t.Errorf("dropped %d, want 2", s.EventsDropped)
	}
	testCluster("lb1", nil).emit(Event{Type: EventJoin}) // no channel: no-op
}

func TestMemberlistLogLines(t *testing.T) {
	for _, tt := range []struct {
		line, msg string
		level     slog.Level
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1234\n", "Stream connection from=127.0.0.1:1234", slog.LevelDebug},
		{"[INFO] memberlist: Suspect lb2 has failed, no acks received", "Suspect lb2 has failed, no acks received", slog.LevelInfo},
		{"[WARN] memberlist: Refuting a dead message (from: lb3)", "Refuting a dead message (from: lb3)", slog.LevelWarn},
		{"[ERR] memberlist: Failed to send gossip to 1.2.3.4:7946: x", "Failed to send gossip to 1.2.3.4:7946: x", slog.LevelError},
		{"[ERROR] memberlist: Failed to compress payload: x", "Failed to compress payload: x", slog.LevelError},
		{"Err: Could not set the deadline: x", "Err: Could not set the deadline: x", slog.LevelInfo},
	} {
		level, msg := parseMemberlistLog(tt.line)
		if level != tt.level || msg != tt.msg {
			t.Errorf("parse(%q) = %v %q, want %v %q", tt.line, level, msg, tt.level, tt.msg)
		}
	}
	for _, tt := range []struct {
		msg, addr string
		match     bool
	}{
		{"failed to receive: no installed keys could decrypt the message from=127.0.0.1:4567", "127.0.0.1:4567", true},
		{"Decrypt packet failed: no installed keys could decrypt the message from=[fd00:198:18:5::2]:7946", "[fd00:198:18:5::2]:7946", true},
		{"failed to join 198.18.5.7:7946: No installed keys could decrypt the message", "198.18.5.7:7946", true},
		{"failed to receive: encryption is configured but remote state is not encrypted from=198.18.5.9:555", "198.18.5.9:555", true},
		{"Push/Pull with lb2 failed: no installed keys could decrypt the message", "", true},
		{"Failed UDP ping: lb2 (timeout reached)", "", false},
	} {
		addr, ok := keyMismatchAddr(tt.msg)
		if ok != tt.match || addr != tt.addr {
			t.Errorf("keyMismatchAddr(%q) = %q %v, want %q %v", tt.msg, addr, ok, tt.addr, tt.match)
		}
	}
}

// TestDrainRecords: per configured peer the highest generation wins;
// records of this node, of unconfigured names and with implausible
// generations are not taken; gossiped records round-trip.
func TestDrainRecords(t *testing.T) {
	c := testCluster("lb1", nil)
	for _, tc := range []struct {
		w     wireDrain
		fresh bool
		err   bool
	}{
		{wireDrain{Origin: "lb2", Gen: 3, Set: "cp1"}, true, false},
		{wireDrain{Origin: "lb2", Gen: 2, Set: "cp2"}, false, false}, // older
		{wireDrain{Origin: "lb2", Gen: 3, Set: "cp3"}, false, false}, // same generation
		{wireDrain{Origin: "lb2", Gen: 4}, true, false},              // an undrain
		{wireDrain{Origin: "lb1", Gen: 99, Set: "cp1"}, false, false},
		{wireDrain{Origin: "intruder", Gen: 5, Set: "cp1"}, false, true},
		{wireDrain{Origin: "lb3", Gen: math.MaxUint64, Set: "cp1"}, false, true},
		{wireDrain{Origin: "", Gen: 1}, false, true},
	} {
		fresh, err := c.applyDrainLocked(tc.w)
		if fresh != tc.fresh || (err != nil) != tc.err {
			t.Errorf("%+v: fresh %v err %v, want %v %v", tc.w, fresh, err, tc.fresh, tc.err)
		}
	}
	if w := c.drains["lb2"]; w.Gen != 4 || w.Set != "" {
		t.Errorf("lb2's record %+v", w)
	}
	b, err := encodeDrainMsg(wireDrain{Origin: "lb2", Gen: 7, Set: "cp1,cp2"})
	if err != nil || b[0] != msgDrain {
		t.Fatal(err)
	}
	if w, err := decodeDrainMsg(b[1:]); err != nil || w.Gen != 7 || w.Set != "cp1,cp2" {
		t.Errorf("round trip %+v %v", w, err)
	}
	// Metadata with a drain set too long for 512 bytes is sent without it.
	long := strings.Repeat("d", 59)
	m := Meta{Name: "lb1", Priority: 1, Owner: "lb1", Epoch: 3, Version: "1.4.0", Digest: "0123456789abcdef", BootID: "0123456789abcdef", Drained: strings.Repeat(long+",", 7)[:7*60-1], DrainGen: 2}
	b, err = encodeMeta(m)
	if err != nil {
		t.Fatalf("metadata with seven 59-byte drained names: %v", err)
	}
	if got, _ := decodeMeta(b); got.Drained != "" || got.Owner != "lb1" || got.Epoch != 3 {
		t.Errorf("decoded %+v", got)
	}
	m.Drained = "cp1"
	if b, _ = encodeMeta(m); !strings.Contains(string(b), `"dr":"cp1"`) {
		t.Errorf("a short drain set is not kept in the metadata for older peers: %s", b)
	}
}

// TestMetaSaysNamedMessages: this binary's metadata always says it names
// the sender of its user messages, whatever the caller set; metadata
// without the field (the previous version's) decodes as not naming them.
func TestMetaSaysNamedMessages(t *testing.T) {
	b, err := encodeMeta(Meta{Name: "lb1", Priority: 100})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := decodeMeta(b); err != nil || !m.NamedMessages || !m.SyncStream {
		t.Errorf("this version's metadata: %+v, %v; want NamedMessages and SyncStream", m, err)
	}
	old := []byte(`{"v":1,"n":"lb1","p":100}`)
	if m, err := decodeMeta(old); err != nil || m.NamedMessages || m.SyncStream {
		t.Errorf("the previous version's metadata: %+v, %v; want no NamedMessages nor SyncStream", m, err)
	}
	// The version before this one names its senders but takes no stream.
	prev := []byte(`{"v":1,"n":"lb1","p":100,"nm":true}`)
	if m, err := decodeMeta(prev); err != nil || !m.NamedMessages || m.SyncStream {
		t.Errorf("the version before's metadata: %+v, %v; want NamedMessages without SyncStream", m, err)
	}
}
