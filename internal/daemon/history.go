package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/epconsole/epconsole/internal/status"
)

// EventFile is the file in state_dir that keeps the event history, one
// JSON object a line; EventFile+".1" is the one before it.
const EventFile = "events.jsonl"

// DefaultEventFileMax is the size at which the event file is rotated:
// events.jsonl becomes events.jsonl.1 (replacing the older one) and a new
// events.jsonl begins. The history thus takes at most twice this on disk,
// and about as much in memory: some 40,000 events at a typical 200 bytes.
const DefaultEventFileMax = 4 << 20

// History is the event history kept across restarts: every event is
// appended to state_dir/events.jsonl, the file is rotated at a bound, and
// both files are read back at start. It keeps in memory what the files
// hold and serves it to the status API (status.History). It is safe for
// concurrent use.
type History struct {
	mu   sync.Mutex
	path string // "" keeps the history in memory only
	max  int64
	f    *os.File
	// size is the bytes of cur (as written to the file).
	size int64
	// old and cur are the events of events.jsonl.1 and events.jsonl.
	old, cur []Event
	// first is the number of the first kept event.
	first   uint64
	changed chan struct{}
	// werr is the last write error, reported once by Add.
	werr error
}

// OpenHistory reads the history kept in dir (events.jsonl.1, then
// events.jsonl) and opens events.jsonl to append; max is the rotation
// size (DefaultEventFileMax when <= 0). Lines that do not decode (a line
// torn by a crash) are skipped and counted in skipped. With an error the
// returned History still works, in memory only, with what could be read.
func OpenHistory(dir string, max int64) (h *History, skipped int, err error) {
	if max <= 0 {
		max = DefaultEventFileMax
	}
	h = &History{max: max, first: 1, changed: make(chan struct{})}
	if dir == "" {
		return h, 0, nil
	}
	path := filepath.Join(dir, EventFile)
	var n int
	if h.old, n, err = readEvents(path + ".1"); err != nil {
		return h, skipped, err
	}
	skipped += n
	if h.cur, n, err = readEvents(path); err != nil {
		return h, skipped, err
	}
	skipped += n
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return h, skipped, fmt.Errorf("event history: creating state_dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return h, skipped, fmt.Errorf("event history: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return h, skipped, fmt.Errorf("event history: %w", err)
	}
	h.path, h.f, h.size = path, f, fi.Size()
	if h.size > 0 && !endsWithNewline(path, h.size) {
		// A line torn by a crash: end it, so the next event starts a line.
		n, _ := f.Write([]byte("\n"))
		h.size += int64(n)
	}
	return h, skipped, nil
}

// readEvents reads one event file; a missing file holds none.
func readEvents(path string) (evs []Event, skipped int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("event history: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			var e Event
			if json.Unmarshal(line, &e) != nil || e.Kind == "" || e.Time.IsZero() {
				skipped++
			} else {
				evs = append(evs, e)
			}
		}
		if errors.Is(err, io.EOF) {
			return evs, skipped, nil
		}
		if err != nil {
			return evs, skipped, fmt.Errorf("event history: reading %s: %w", path, err)
		}
	}
}

// endsWithNewline reports whether the file at path of size bytes ends
// with a newline.
func endsWithNewline(path string, size int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, size-1); err != nil {
		return true
	}
	return b[0] == '\n'
}

// Add appends e to the history and its file, rotating the file first
// when e would take it past the bound. A write error is returned once
// (until a write succeeds again); the event is kept in memory all the
// same.
func (h *History) Add(e Event) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("event history: %w", err)
	}
	line = append(line, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	var werr error
	if h.size > 0 && h.size+int64(len(line)) > h.max {
		werr = h.rotate()
	}
	if h.f != nil {
		if _, err := h.f.Write(line); err != nil && werr == nil {
			werr = fmt.Errorf("event history: writing %s: %w", h.path, err)
		}
	}
	h.size += int64(len(line))
	h.cur = append(h.cur, e)
	close(h.changed)
	h.changed = make(chan struct{})
	report := werr != nil && h.werr == nil
	h.werr = werr
	if report {
		return werr
	}
	return nil
}

// rotate makes the current file the old one and starts a new one (h.mu
// held); in memory the same happens to the events.
func (h *History) rotate() error {
	h.first += uint64(len(h.old))
	h.old, h.cur, h.size = h.cur, nil, 0
	if h.f == nil {
		return nil
	}
	h.f.Close()
	h.f = nil
	if err := os.Rename(h.path, h.path+".1"); err != nil {
		return fmt.Errorf("event history: rotating %s: %w", h.path, err)
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("event history: %w", err)
	}
	h.f = f
	return nil
}

// Events returns every kept event, oldest first.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(append([]Event(nil), h.old...), h.cur...)
}

// EventsAfter implements status.History.
func (h *History) EventsAfter(seq uint64) ([]status.Event, uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := uint64(len(h.old) + len(h.cur))
	last := h.first + n - 1
	skip := uint64(0)
	if seq >= h.first {
		skip = min(seq-h.first+1, n)
	}
	out := make([]status.Event, 0, n-skip)
	for i := skip; i < n; i++ {
		var e Event
		if i < uint64(len(h.old)) {
			e = h.old[i]
		} else {
			e = h.cur[i-uint64(len(h.old))]
		}
		out = append(out, status.Event{Time: e.Time.UTC(), Kind: string(e.Kind), Subject: e.Subject, Message: e.Message})
	}
	return out, last, h.changed
}

// Close closes the file; later events are kept in memory only.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}

// openHistory opens the event history in dir for record and the status
// API, and returns what closes it. A history that cannot be read or
// written is logged and kept in memory: the endpoint matters more.
func (d *Daemon) openHistory(dir string) (closeHistory func()) {
	h, skipped, err := OpenHistory(dir, d.opts.EventFileMax)
	if err != nil {
		d.log.Error("event history not kept across restarts", "state_dir", dir, "err", err)
	}
	if skipped > 0 {
		d.log.Warn("event history: lines skipped that do not decode (torn by a crash?)", "file", filepath.Join(dir, EventFile), "lines", skipped)
	}
	d.log.Info("event history", "file", filepath.Join(dir, EventFile), "events", len(h.old)+len(h.cur))
	d.history.Store(h)
	return func() { h.Close() }
}

// keep adds e to the history, if one is open.
func (d *Daemon) keep(e Event) {
	if h := d.history.Load(); h != nil {
		if err := h.Add(e); err != nil {
			d.log.Error("event not kept in state_dir (it is lost on a restart)", "err", err)
		}
	}
}
