package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testEvent is the i-th event of a test, a second apart.
func testEvent(i int) Event {
	return Event{Time: time.Date(2026, 3, 4, 3, 12, i, 0, time.UTC), Kind: EventVIPAcquired,
		Subject: "192.0.2.10", Message: fmt.Sprintf("event %d: elected, lowest priority among the healthy", i)}
}

// TestEventsHistoryAcrossRestart: what one daemon run keeps, the next
// reads back, in order, and goes on appending to.
func TestEventsHistoryAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	h, skipped, err := OpenHistory(dir, 0)
	if err != nil || skipped != 0 {
		t.Fatalf("OpenHistory on a new dir: %v, %d skipped", err, skipped)
	}
	for i := range 3 {
		if err := h.Add(testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	fi, err := os.Stat(filepath.Join(dir, EventFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("event file: %v, %v; want mode 0600", fi, err)
	}

	h2, _, err := OpenHistory(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	got := h2.Events()
	if len(got) != 3 {
		t.Fatalf("after the restart %d events, want 3", len(got))
	}
	for i, e := range got {
		if want := testEvent(i); !e.Time.Equal(want.Time) || e.Kind != want.Kind || e.Subject != want.Subject || e.Message != want.Message {
			t.Errorf("event %d after the restart = %+v, want %+v", i, e, want)
		}
	}
	h2.Add(testEvent(3))
	evs, last, _ := h2.EventsAfter(0)
	if len(evs) != 4 || last != 4 || evs[3].Message != testEvent(3).Message {
		t.Errorf("EventsAfter(0) = %d events, last %d; want 4, 4", len(evs), last)
	}
	if evs, _, _ := h2.EventsAfter(2); len(evs) != 2 || evs[0].Message != testEvent(2).Message {
		t.Errorf("EventsAfter(2) = %+v, want events 2 and 3", evs)
	}
}

// TestEventsHistoryRotation: the file is rotated at the bound, one older
// file is kept, the disk never holds more than twice the bound, and a
// restart reads both files.
func TestEventsHistoryRotation(t *testing.T) {
	dir := t.TempDir()
	const max = 1000
	h, _, err := OpenHistory(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	line := len(mustJSON(t, testEvent(0))) + 1
	const n = 40 // about four files' worth
	for i := range n {
		h.Add(testEvent(i))
		cur, _ := os.Stat(filepath.Join(dir, EventFile))
		old, _ := os.Stat(filepath.Join(dir, EventFile+".1"))
		total := cur.Size()
		if old != nil {
			total += old.Size()
		}
		if cur.Size() > max || total > 2*max {
			t.Fatalf("after %d events: %s is %d bytes, both files %d; bound %d each", i+1, EventFile, cur.Size(), total, max)
		}
	}
	perFile := max / line
	kept := h.Events()
	if len(kept) < perFile || len(kept) > 2*perFile {
		t.Errorf("%d events kept, want between %d and %d (one to two files of %d)", len(kept), perFile, 2*perFile, perFile)
	}
	if kept[len(kept)-1].Message != testEvent(n-1).Message {
		t.Errorf("newest kept = %q, want event %d", kept[len(kept)-1].Message, n-1)
	}
	evs, last, _ := h.EventsAfter(0)
	if last != n || len(evs) != len(kept) {
		t.Errorf("EventsAfter(0): last %d, %d events; want last %d, %d events", last, len(evs), n, len(kept))
	}
	// Asking from a number rotated away gives all that is kept.
	if evs, _, _ := h.EventsAfter(1); len(evs) != len(kept) {
		t.Errorf("EventsAfter(1) after rotation = %d events, want %d", len(evs), len(kept))
	}
	if evs, _, _ := h.EventsAfter(n - 1); len(evs) != 1 {
		t.Errorf("EventsAfter(n-1) = %d events, want 1", len(evs))
	}
	h.Close()
	h2, _, err := OpenHistory(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	again := h2.Events()
	if len(again) != len(kept) || again[0].Message != kept[0].Message {
		t.Errorf("after a restart %d events from %q, want %d from %q", len(again), again[0].Message, len(kept), kept[0].Message)
	}
}

// TestEventsHistoryTornLine: a line cut short by a crash is skipped and
// counted, and the next event starts a line of its own.
func TestEventsHistoryTornLine(t *testing.T) {
	dir := t.TempDir()
	good := string(mustJSON(t, testEvent(0)))
	torn := string(mustJSON(t, testEvent(1)))[:30]
	if err := os.WriteFile(filepath.Join(dir, EventFile), []byte(good+"\n"+torn), 0o600); err != nil {
		t.Fatal(err)
	}
	h, skipped, err := OpenHistory(dir, 0)
	if err != nil || skipped != 1 || len(h.Events()) != 1 {
		t.Fatalf("OpenHistory: %v, %d skipped, %d events; want 1 skipped, 1 event", err, skipped, len(h.Events()))
	}
	h.Add(testEvent(2))
	h.Close()
	h2, skipped, _ := OpenHistory(dir, 0)
	defer h2.Close()
	evs := h2.Events()
	if skipped != 1 || len(evs) != 2 || evs[1].Message != testEvent(2).Message {
		t.Errorf("after the torn line and one more event: %d skipped, %+v", skipped, evs)
	}
}

// TestEventsHistoryUnwritable: a state_dir that cannot be written keeps
// the history in memory and says why.
func TestEventsHistoryUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(file, nil, 0o600)
	h, _, err := OpenHistory(filepath.Join(file, "state"), 0)
	if err == nil || !strings.Contains(err.Error(), "event history") {
		t.Errorf("OpenHistory under a file: err = %v", err)
	}
	if err := h.Add(testEvent(0)); err != nil || len(h.Events()) != 1 {
		t.Errorf("in-memory Add: %v, %d events", err, len(h.Events()))
	}
}

// TestEventsRecordedKept: the daemon's record keeps each event in the
// history of its state_dir.
func TestEventsRecordedKept(t *testing.T) {
	dir := t.TempDir()
	d := New(Options{})
	closeHistory := d.openHistory(dir)
	d.record(EventBackendDown, "cp2", "failed: readyz 500")
	closeHistory()
	data, err := os.ReadFile(filepath.Join(dir, EventFile))
	if err != nil || !strings.Contains(string(data), `"kind":"backend-down","subject":"cp2","message":"failed: readyz 500"`) {
		t.Errorf("%s = %q, %v", EventFile, data, err)
	}
	if evs := d.Events(); len(evs) != 1 || !evs[0].Time.Equal(d.history.Load().Events()[0].Time) {
		t.Errorf("the ring and the history disagree: %+v", evs)
	}
}

func mustJSON(t *testing.T, e Event) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
