package status

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// sseStream is one open server-sent-events stream from the daemon, watched
// by an idle timer: a stream silent for longer than the idle timeout is
// cancelled with the cause given to openSSE.
type sseStream struct {
	ctx    context.Context // the stream's own context; its cause says why it ended
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
	body   io.ReadCloser
}

// openSSE opens GET path as an event stream. A failed request comes back as
// a *transportError; a status other than 200 as the daemon's error. idleCause is the error the stream ends with when it
// stays silent.
func (c *Client) openSSE(ctx context.Context, path string, idleCause func(time.Duration) error) (*sseStream, error) {
	idle := c.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	sctx, cancel := context.WithCancelCause(ctx)
	errIdle := idleCause(idle)
	s := &sseStream{ctx: sctx, cancel: cancel, idle: idle}
	s.timer = time.AfterFunc(idle, func() { cancel(errIdle) })
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, "http://epconsole"+path, nil)
	if err != nil {
		s.Close()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		s.Close()
		return nil, &transportError{err}
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		s.Close()
		return nil, c.statusError(resp.StatusCode, body)
	}
	s.body = resp.Body
	return s, nil
}

// Close ends the stream.
func (s *sseStream) Close() {
	s.timer.Stop()
	s.cancel(nil)
	if s.body != nil {
		s.body.Close()
	}
}

// cause is why the stream's context ended, nil while it runs.
func (s *sseStream) cause() error { return context.Cause(s.ctx) }

// each calls fn with the name and data of every complete event until fn
// fails (its error, as it is) or reading fails (a *transportError).
// Comments (keep-alives) only reset the idle timer.
func (s *sseStream) each(fn func(name string, data []byte) error) error {
	r := bufio.NewReader(s.body)
	var event string
	var data bytes.Buffer
	for {
		line, err := readLine(r)
		if err != nil {
			return &transportError{err}
		}
		s.timer.Reset(s.idle)
		switch {
		case len(line) == 0: // end of an event
			name := event
			event = ""
			payload := bytes.Clone(data.Bytes())
			data.Reset()
			if name == "" {
				continue
			}
			if err := fn(name, payload); err != nil {
				return err
			}
		case line[0] == ':': // comment: keep-alive
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				event = string(value)
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.Write(value)
			}
		}
	}
}

// readLine reads one line without its line ending.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxEventSize {
			return nil, fmt.Errorf("stream line longer than %d bytes", maxEventSize)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, err
		}
		return bytes.TrimRight(line, "\r\n"), nil
	}
}

// transportError is a failure to reach or read the stream (as opposed to
// the daemon's answer or the caller's own error); callers map it with
// endOfStream.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// endOfStream says why a stream ended: nil when ctx ended, the stream's
// cause (idle) when it has one, "closed" for an end of file, else the
// connection error; what is not a transportError is returned as it is.
func (c *Client) endOfStream(ctx context.Context, s *sseStream, err error, closed string) error {
	var te *transportError
	if !errors.As(err, &te) {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	if s != nil {
		if cause := s.cause(); cause != nil {
			return cause
		}
	}
	if errors.Is(te.err, io.EOF) || errors.Is(te.err, io.ErrUnexpectedEOF) {
		return errors.New(closed)
	}
	return c.connError(ctx, te.err)
}
