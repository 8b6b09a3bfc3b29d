package netlab

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
)

// StreamOpts opens one long-lived TLS connection and reads
// GET /stream?n=Lines&every=Every from a stand-in.
type StreamOpts struct {
	Target     netip.AddrPort `json:"target"`
	ServerName string         `json:"server_name,omitempty"`
	CAFile     string         `json:"ca_file,omitempty"` // default: the lab CA
	// Lines asked for (default 1000, at most 100000) and the pause between
	// them (default 100 ms).
	Lines int           `json:"lines,omitempty"`
	Every time.Duration `json:"every,omitempty"`
	// KeepAlive, when positive, enables TCP keep-alive probes with this idle
	// time and interval (whole seconds, rounded up; 3 probes), so an
	// otherwise idle client notices a vanished peer (end "error", "timed
	// out") or a reset from a peer that lost the flow (end "reset"); zero
	// leaves keep-alive off.
	KeepAlive time.Duration `json:"keep_alive,omitempty"`
	// Timeout bounds the stream (default 30 s, at most 10 min).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// StreamEnd is how a stream ended.
type StreamEnd string

// How a stream can end.
const (
	StreamComplete StreamEnd = "complete" // every line arrived
	StreamEOF      StreamEnd = "eof"      // closed early by the peer (FIN)
	StreamReset    StreamEnd = "reset"    // reset (RST)
	StreamTimeout  StreamEnd = "timeout"  // Timeout reached while still open
	StreamStopped  StreamEnd = "stopped"  // Stop or Kill from the parent
	StreamError    StreamEnd = "error"    // anything else (see Err)
)

// StreamResult reports a stream. Durations count from the child's start.
type StreamResult struct {
	Backend   string        `json:"backend"`
	Lines     int           `json:"lines"`
	End       StreamEnd     `json:"end"`
	Err       string        `json:"err,omitempty"`
	Connected time.Duration `json:"connected"`
	LastLine  time.Duration `json:"last_line"`
	Ended     time.Duration `json:"ended"`
}

// Stream is a running stream client.
type Stream struct {
	*Job[StreamResult]
	// Backend is the stand-in that answered.
	Backend string
}

func (o *StreamOpts) defaults(l *Lab) error {
	if o.CAFile == "" && l != nil {
		o.CAFile = l.caFile
	}
	if o.Lines == 0 {
		o.Lines = 1000
	}
	if o.Every == 0 {
		o.Every = 100 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	switch {
	case o.Lines < 1 || o.Lines > 100000:
		return fmt.Errorf("stream lines %d: want 1 to 100000", o.Lines)
	case o.Every < 0 || o.KeepAlive < 0 || o.Timeout < 0 || o.Timeout > maxDuration:
		return fmt.Errorf("stream durations %v/%v/%v out of range", o.Every, o.KeepAlive, o.Timeout)
	}
	return checkTarget(o.Target)
}

// StartStream opens a stream from the host and returns once its first line
// has arrived (ctx bounds that wait, 15 s without a deadline). Wait returns
// how it ended.
func (h *Host) StartStream(ctx context.Context, o StreamOpts) (*Stream, error) {
	if err := o.defaults(h.lab); err != nil {
		return nil, err
	}
	j, err := startJob[StreamResult](ctx, h, roleStream, o)
	if err != nil {
		return nil, err
	}
	raw, err := j.p.waitEvent(ctx, evStarted)
	if err != nil {
		res, werr := j.Wait(ctx)
		if werr == nil {
			err = fmt.Errorf("stream from %s to %v ended before its first line: %s %s", h.ns, o.Target, res.End, res.Err)
		}
		return nil, err
	}
	var st struct {
		Backend string `json:"backend"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		_ = j.Kill()
		return nil, fmt.Errorf("decoding stream start: %w", err)
	}
	return &Stream{Job: j, Backend: st.Backend}, nil
}

// runStream is the child side of the stream role.
func runStream(ctx context.Context, o StreamOpts, out *eventWriter) error {
	if err := o.defaults(nil); err != nil {
		return err
	}
	tt := tlsTarget{target: o.Target, serverName: o.ServerName, caFile: o.CAFile}
	cfg, err := tt.config()
	if err != nil {
		return err
	}
	start := time.Now()
	var res StreamResult
	finish := func(end StreamEnd, err error) error {
		res.End = end
		if err != nil {
			res.Err = err.Error()
		}
		res.Ended = time.Since(start)
		return out.emit(evResult, res)
	}
	deadline := start.Add(o.Timeout)
	d := net.Dialer{KeepAlive: -1}
	if o.KeepAlive > 0 {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: o.KeepAlive, Interval: o.KeepAlive, Count: 3}
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	raw, err := d.DialContext(dctx, "tcp", o.Target.String())
	if err != nil {
		return finish(classify(ctx, err), err)
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := conn.HandshakeContext(dctx); err != nil {
		return finish(classify(ctx, err), fmt.Errorf("tls handshake: %w", err))
	}
	if _, err := fmt.Fprintf(conn, "GET /stream?n=%d&every=%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: netlab\r\nConnection: close\r\n\r\n",
		o.Lines, o.Every, tt.hostHeader()); err != nil {
		return finish(classify(ctx, err), err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return finish(classify(ctx, err), err)
	}
	defer resp.Body.Close()
	res.Backend = resp.Header.Get("X-Standin-Backend")
	res.Connected = time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return finish(StreamError, fmt.Errorf("HTTP %d", resp.StatusCode))
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if strings.HasSuffix(line, "\n") {
			res.Lines++
			res.LastLine = time.Since(start)
			if res.Lines == 1 {
				if err := out.emit(evStarted, map[string]string{"backend": res.Backend}); err != nil {
					return err
				}
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) && res.Lines >= o.Lines {
			return finish(StreamComplete, nil)
		}
		return finish(classify(ctx, err), err)
	}
}

// classify names how a connection ended from its error.
func classify(ctx context.Context, err error) StreamEnd {
	switch {
	case ctx.Err() != nil:
		return StreamStopped
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return StreamTimeout
	case isReset(err):
		return StreamReset
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return StreamEOF
	}
	return StreamError
}

// isReset reports whether err is a connection reset.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "connection reset by peer")
}
