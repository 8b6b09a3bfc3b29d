package status

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// History is the daemon's event history (VIP moves, backend changes,
// reloads, peers), kept across restarts; the server serves it on
// GET /v1/events and GET /v1/events/stream.
type History interface {
	// EventsAfter returns the kept events numbered above seq (0: all
	// kept), oldest first; the number of the newest kept event; and a
	// channel closed when a newer event is added.
	EventsAfter(seq uint64) (events []Event, last uint64, changed <-chan struct{})
}

// EventList is the answer of GET /v1/events.
type EventList struct {
	Events []Event `json:"events"`
}

// sinceParam reads the since query parameter (RFC 3339; absent: zero).
func sinceParam(r *http.Request) (time.Time, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("since=%q: use an RFC 3339 time such as 2026-01-02T03:04:05Z", v)
	}
	return t, nil
}

// from keeps the events at or after since.
func from(evs []Event, since time.Time) []Event {
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		if !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

// historyRequest reads an events request: the history and the since
// parameter; false when it has answered the request with an error (400
// for a bad since, 501 when the daemon keeps no history).
func (s *Server) historyRequest(w http.ResponseWriter, r *http.Request) (History, time.Time, bool) {
	since, err := sinceParam(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, time.Time{}, false
	}
	if s.opts.History == nil {
		writeError(w, http.StatusNotImplemented, "this epconsole daemon keeps no event history")
		return nil, time.Time{}, false
	}
	return s.opts.History, since, true
}

// handleEvents answers the kept events since the since parameter.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	h, since, ok := s.historyRequest(w, r)
	if !ok {
		return
	}
	evs, _, _ := h.EventsAfter(0)
	writeJSON(w, http.StatusOK, EventList{Events: from(evs, since)})
}

// handleEventStream sends the kept events since the since parameter, then
// every new one as it is added, as server-sent events named "event"; a
// keep-alive comment every KeepAlive and "stopping" as the stream
// endpoint does.
func (s *Server) handleEventStream(w http.ResponseWriter, r *http.Request) {
	h, since, ok := s.historyRequest(w, r)
	if !ok {
		return
	}
	write := startSSE(w)
	send := func(evs []Event) error {
		var b []byte
		for _, e := range evs {
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			b = append(b, sseEvent("event", data)...)
		}
		if len(b) == 0 {
			return nil
		}
		return write(b)
	}
	evs, seq, changed := h.EventsAfter(0)
	if err := send(from(evs, since)); err != nil {
		return
	}
	if err := write([]byte(": history sent\n\n")); err != nil {
		return
	}
	keep := time.NewTicker(s.opts.KeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.stopping:
			s.sendStopping(write)
			return
		case <-keep.C:
			if err := write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
		case <-changed:
			evs, seq, changed = h.EventsAfter(seq)
			if err := send(evs); err != nil {
				s.log.Debug("status event stream: write failed", "err", err)
				return
			}
		}
	}
}

// eventsPath is the path and query of an events request.
func eventsPath(path string, since time.Time) string {
	if since.IsZero() {
		return path
	}
	return path + "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
}

// Events returns the daemon's kept events at or after since (zero: all),
// oldest first. A daemon without an event history answers ErrUnsupported
// (an older daemon: ErrNotFound).
func (c *Client) Events(ctx context.Context, since time.Time) ([]Event, error) {
	var l EventList
	err := c.do(ctx, http.MethodGet, eventsPath("/v1/events", since), &l)
	return l.Events, err
}

// FollowEvents calls fn with each kept event at or after since, then with
// every new event as the daemon records it, until ctx ends (nil), fn
// fails (its error) or the stream ends (why: ErrDaemonStopping when the
// daemon stops; the caller may follow again from the last event's time).
func (c *Client) FollowEvents(ctx context.Context, since time.Time, fn func(Event) error) error {
	s, err := c.openSSE(ctx, eventsPath("/v1/events/stream", since), func(idle time.Duration) error {
		return fmt.Errorf("epconsole daemon at %s sent nothing for %v", c.socket, idle)
	})
	if err != nil {
		return c.endOfStream(ctx, nil, err, "")
	}
	defer s.Close()
	err = s.each(func(name string, payload []byte) error {
		switch name {
		case "event":
			var e Event
			if err := json.Unmarshal(payload, &e); err != nil {
				return fmt.Errorf("epconsole daemon at %s: bad event: %w", c.socket, err)
			}
			return fn(e)
		case "stopping":
			return &kindError{kind: ErrDaemonStopping,
				msg: fmt.Sprintf("the epconsole daemon at %s is stopping", c.socket)}
		}
		return nil
	})
	return c.endOfStream(ctx, s, err, fmt.Sprintf("epconsole daemon at %s closed the event stream", c.socket))
}
