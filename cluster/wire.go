package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// Wire formats. Both are compact JSON with short keys and a version
// number; later versions may only add fields, so an older node reads what
// it knows and ignores the rest.

// metaVersion is the version of the node metadata format.
const metaVersion = 1

// Limits that keep the metadata under memberlist's MetaMaxSize (512 bytes)
// and a backend message inside one gossip packet.
const (
	// MaxNameLen bounds node and backend names (config allows 63).
	MaxNameLen = 63
	// MaxVersionLen bounds the software version string.
	MaxVersionLen = 64
	// MaxReasonLen bounds a gossiped BackendView.Reason; longer reasons are cut.
	MaxReasonLen = 200
	// maxStateLen bounds BackendView.State.
	maxStateLen = 32
)

// wireMeta is Meta on the wire.
type wireMeta struct {
	V        int    `json:"v"`
	Name     string `json:"n"`
	Priority int    `json:"p"`
	Eligible bool   `json:"e,omitempty"`
	Preempt  bool   `json:"pe,omitempty"`
	Owner    string `json:"o,omitempty"`
	Epoch    uint64 `json:"ep,omitempty"`
	Version  string `json:"sw,omitempty"`
	Digest   string `json:"cd,omitempty"`
	BootID   string `json:"b,omitempty"`
	Leaving  bool   `json:"lv,omitempty"`
	Handoff  string `json:"ho,omitempty"`
	Drained  string `json:"dr,omitempty"`
	DrainGen uint64 `json:"dg,omitempty"`
	Named    bool   `json:"nm,omitempty"`
	Stream   bool   `json:"ss,omitempty"`
}

// checkMeta validates the fields whose size the encoding depends on.
func checkMeta(m Meta) error {
	switch {
	case m.Name == "" || len(m.Name) > MaxNameLen:
		return fmt.Errorf("node name %q: must be 1..%d bytes", m.Name, MaxNameLen)
	case len(m.Owner) > MaxNameLen, len(m.HandoffTo) > MaxNameLen:
		return fmt.Errorf("owner %q: longer than %d bytes", m.Owner, MaxNameLen)
	case len(m.Version) > MaxVersionLen:
		return fmt.Errorf("version %q: longer than %d bytes", m.Version, MaxVersionLen)
	case len(m.Digest) > ShortDigestLen:
		return fmt.Errorf("config digest %q: longer than %d characters (use ShortDigest)", m.Digest, ShortDigestLen)
	case m.Priority < 0 || m.Priority > 255:
		return fmt.Errorf("priority %d: must be 0..255", m.Priority)
	}
	return nil
}

// encodeMeta encodes m for memberlist's node metadata. The drain set
// travels on its own (drain.go); a copy goes in the metadata for peers of
// the previous version only while it fits, so a long drain set never
// makes a metadata update fail.
func encodeMeta(m Meta) ([]byte, error) {
	b, err := encodeMetaWith(m)
	if err == nil || (m.Drained == "" && m.DrainGen == 0) || checkMeta(m) != nil {
		return b, err
	}
	m.Drained, m.DrainGen = "", 0
	return encodeMetaWith(m)
}

func encodeMetaWith(m Meta) ([]byte, error) {
	if err := checkMeta(m); err != nil {
		return nil, err
	}
	b, err := json.Marshal(wireMeta{
		V: metaVersion, Name: m.Name, Priority: m.Priority, Eligible: m.Eligible, Preempt: m.Preempt,
		Owner: m.Owner, Epoch: m.Epoch, Version: m.Version, Digest: m.Digest, BootID: m.BootID,
		Leaving: m.Leaving, Handoff: m.HandoffTo, Drained: m.Drained, DrainGen: m.DrainGen,
		Named:  true, // this binary's user messages name their sender (usermsg.go)
		Stream: true, // and it takes sync streams on the gossip port (stream.go)
	})
	if err != nil {
		return nil, fmt.Errorf("encoding node metadata: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, memberlist allows %d", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta reads node metadata.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, errors.New("no metadata")
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("decoding metadata: %w", err)
	}
	if w.V < 1 {
		return Meta{}, fmt.Errorf("metadata version %d: not an epconsole node", w.V)
	}
	return Meta{
		Name: w.Name, Priority: w.Priority, Eligible: w.Eligible, Preempt: w.Preempt,
		Owner: w.Owner, Epoch: w.Epoch, Version: w.Version, Digest: w.Digest, BootID: w.BootID,
		Leaving: w.Leaving, HandoffTo: w.Handoff, Drained: w.Drained, DrainGen: w.DrainGen,
		NamedMessages: w.Named, SyncStream: w.Stream,
	}, nil
}

// Message types of the delegate's user messages (first byte).
const (
	msgBackend byte = 1 // one wireBackend
)

// stateVersion is the version of the push/pull state format.
const stateVersion = 1

// wireBackend is one origin's view of one backend.
type wireBackend struct {
	Origin  string `json:"o"`
	Seq     uint64 `json:"s"`
	Name    string `json:"n"`
	State   string `json:"st,omitempty"`
	Latency int64  `json:"l,omitempty"` // nanoseconds
	Reason  string `json:"r,omitempty"`
	Since   int64  `json:"t,omitempty"` // Unix nanoseconds
	Gone    bool   `json:"g,omitempty"` // the origin no longer has this backend
}

// wireState is the push/pull state: every backend view this node knows.
type wireState struct {
	V        int           `json:"v"`
	From     string        `json:"f"`
	Backends []wireBackend `json:"b"`
	// Drains are the drain records this node holds, its own included
	// (drain.go); older nodes ignore them.
	Drains []wireDrain `json:"dr,omitempty"`
}

func (w wireBackend) valid() error {
	switch {
	case w.Origin == "" || len(w.Origin) > MaxNameLen:
		return fmt.Errorf("backend view: bad origin %q", w.Origin)
	case w.Name == "" || len(w.Name) > MaxNameLen:
		return fmt.Errorf("backend view from %s: bad backend name %q", w.Origin, w.Name)
	case w.Seq == 0:
		return fmt.Errorf("backend view %s/%s: no sequence number", w.Origin, w.Name)
	}
	return nil
}

func (w wireBackend) view() BackendView {
	v := BackendView{Name: w.Name, State: w.State, Latency: time.Duration(w.Latency), Reason: w.Reason}
	if w.Since != 0 {
		v.Since = time.Unix(0, w.Since)
	}
	return v
}

// toWire converts a local backend view, cutting fields to their limits.
func toWire(origin string, seq uint64, v BackendView) wireBackend {
	w := wireBackend{
		Origin: origin, Seq: seq, Name: v.Name, State: cut(v.State, maxStateLen),
		Latency: int64(v.Latency), Reason: cut(v.Reason, MaxReasonLen),
	}
	if !v.Since.IsZero() {
		w.Since = v.Since.UnixNano()
	}
	return w
}

// cut shortens s to at most n bytes on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func encodeBackendMsg(w wireBackend) ([]byte, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encoding backend view: %w", err)
	}
	return append([]byte{msgBackend}, b...), nil
}

// decodeMsg reads one user message.
func decodeMsg(b []byte) (wireBackend, error) {
	if len(b) == 0 {
		return wireBackend{}, errors.New("empty message")
	}
	if b[0] != msgBackend {
		return wireBackend{}, fmt.Errorf("unknown message type %d", b[0])
	}
	var w wireBackend
	if err := json.Unmarshal(b[1:], &w); err != nil {
		return wireBackend{}, fmt.Errorf("decoding backend view: %w", err)
	}
	if err := w.valid(); err != nil {
		return wireBackend{}, err
	}
	return w, nil
}

func encodeState(s wireState) ([]byte, error) {
	s.V = stateVersion
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding state: %w", err)
	}
	return b, nil
}

func decodeState(b []byte) (wireState, error) {
	var s wireState
	if err := json.Unmarshal(b, &s); err != nil {
		return wireState{}, fmt.Errorf("decoding state: %w", err)
	}
	if s.V < 1 {
		return wireState{}, fmt.Errorf("state version %d: not an epconsole node", s.V)
	}
	return s, nil
}
