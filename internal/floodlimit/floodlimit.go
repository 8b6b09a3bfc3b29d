// Package floodlimit bounds the reports (log lines, events) that traffic
// from the network can cause. Per kind of report, a few occurrences per
// window are reported one by one; the rest are counted and summarised
// once per window ("3,000 rejected packets from 2,990 sources in the last
// minute"). Memory is fixed: the kinds are the caller's (a handful of
// constants, or one per configured peer) and each keeps at most
// MaxSources distinct sources per window.
package floodlimit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of New's zero arguments.
const (
	DefaultWindow     = time.Minute
	DefaultBurst      = 5
	DefaultMaxSources = 4096
	// maxPending bounds the summaries waiting for Flush.
	maxPending = 64
)

// Summary is what a kind's window suppressed.
type Summary struct {
	Kind string
	// Total counts every occurrence in the window, reported or not;
	// Suppressed the ones not reported one by one.
	Total, Suppressed uint64
	// Sources is the number of distinct sources in the window, at most
	// the limiter's MaxSources (then SourcesCapped).
	Sources       int
	SourcesCapped bool
	// Start and End bound the window.
	Start, End time.Time
}

// Describe says what the summary counts, thing being the occurrences'
// name in the plural ("rejected packets"): "3,000 rejected packets from
// 2,990 sources in the last minute (3,995 not reported one by one)".
func (s Summary) Describe(thing string) string {
	src := Thousands(uint64(s.Sources)) + " sources"
	if s.Sources == 1 {
		src = "1 source"
	}
	if s.SourcesCapped {
		src = "at least " + src
	}
	return fmt.Sprintf("%s %s from %s in the last %s (%s not reported one by one)",
		Thousands(s.Total), thing, src, span(s.End.Sub(s.Start)), Thousands(s.Suppressed))
}

func span(d time.Duration) string {
	switch {
	case d <= 0:
		return "moment"
	case d > 55*time.Second && d < 65*time.Second:
		return "minute"
	default:
		return d.Round(time.Second).String()
	}
}

// Thousands formats n with thousands separators (3,000).
func Thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Limiter decides which occurrences are reported. It is safe for
// concurrent use.
type Limiter struct {
	now        func() time.Time
	window     time.Duration
	burst      int
	maxSources int

	mu      sync.Mutex
	kinds   map[string]*kindState
	pending []Summary // windows ended in Allow, returned by the next Flush
}

type kindState struct {
	start      time.Time
	reported   int
	total      uint64
	suppressed uint64
	sources    map[string]struct{}
	capped     bool
}

// New returns a limiter that reports at most burst occurrences of each
// kind per window, each from a source not yet reported in that window,
// and tracks at most maxSources sources per kind. Zero or negative
// arguments take the defaults; now nil is time.Now.
func New(window time.Duration, burst, maxSources int, now func() time.Time) *Limiter {
	if window <= 0 {
		window = DefaultWindow
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	if maxSources <= 0 {
		maxSources = DefaultMaxSources
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, window: window, burst: burst, maxSources: maxSources, kinds: map[string]*kindState{}}
}

// Now is the limiter's clock.
func (l *Limiter) Now() time.Time { return l.now() }

// Window is the limiter's window.
func (l *Limiter) Window() time.Duration { return l.window }

// Allow counts one occurrence of kind from source and says whether to
// report it one by one: true for the first burst occurrences of the
// window that come from sources not yet seen in it.
func (l *Limiter) Allow(kind, source string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.kinds[kind]
	if k != nil && now.Sub(k.start) >= l.window {
		l.endLocked(kind, k, now)
		k = nil
	}
	if k == nil {
		k = &kindState{start: now, sources: map[string]struct{}{}}
		l.kinds[kind] = k
	}
	k.total++
	_, seen := k.sources[source]
	if !seen {
		if len(k.sources) < l.maxSources {
			k.sources[source] = struct{}{}
		} else {
			k.capped = true
		}
	}
	if !seen && k.reported < l.burst {
		k.reported++
		return true
	}
	k.suppressed++
	return false
}

// endLocked closes k's window, keeping its summary if it suppressed
// anything, and forgets the kind.
func (l *Limiter) endLocked(kind string, k *kindState, now time.Time) {
	delete(l.kinds, kind)
	if k.suppressed == 0 {
		return
	}
	end := k.start.Add(l.window)
	if now.Before(end) {
		end = now
	}
	if len(l.pending) >= maxPending { // Flush not called for long: keep the newest
		l.pending = slices.Delete(l.pending, 0, 1)
	}
	l.pending = append(l.pending, Summary{Kind: kind, Total: k.total, Suppressed: k.suppressed,
		Sources: len(k.sources), SourcesCapped: k.capped, Start: k.start, End: end})
}

// Flush ends every window that is over and returns the summaries of the
// ones that suppressed something, oldest first. Call it at least once a
// window (a summary waits for it).
func (l *Limiter) Flush() []Summary {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for kind, k := range l.kinds {
		if now.Sub(k.start) >= l.window {
			l.endLocked(kind, k, now)
		}
	}
	out := l.pending
	l.pending = nil
	slices.SortStableFunc(out, func(a, b Summary) int { return a.Start.Compare(b.Start) })
	return out
}

// Size returns the number of kinds and sources held (for tests: it stays
// bounded).
func (l *Limiter) Size() (kinds, sources int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.kinds {
		sources += len(k.sources)
	}
	return len(l.kinds), sources
}
