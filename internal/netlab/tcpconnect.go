package netlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// TCPConnectOpts is a loop of plain TCP connects, to measure how long a
// target stays unreachable during a failover.
type TCPConnectOpts struct {
	Target netip.AddrPort `json:"target"`
	// Every is the pace of attempts (default 5 ms); an attempt that takes
	// longer delays the next one instead of piling up.
	Every time.Duration `json:"every,omitempty"`
	// Timeout bounds each connect (default 20 ms).
	Timeout time.Duration `json:"timeout,omitempty"`
	// Duration is how long the loop runs (required, at most 10 min).
	Duration time.Duration `json:"duration"`
	// Overlap starts an attempt every Every on schedule even while earlier
	// ones are still waiting (at most Timeout/Every+2 in flight), so a
	// failing connect does not hide the attempts behind it: the longest
	// gap then has the resolution of Every instead of Timeout.
	Overlap bool `json:"overlap,omitempty"`
}

// TCPConnectResult reports a connect loop. Durations count from its start.
type TCPConnectResult struct {
	Attempts int `json:"attempts"`
	Failures int `json:"failures"`
	// LongestGap is the longest time without a successful connect: between
	// two successes (completion to completion), or from the start to the
	// first success, or from the last success to the end. With no failure
	// it is about Every plus one connect.
	LongestGap time.Duration `json:"longest_gap"`
	// GapStart is when that gap began.
	GapStart time.Duration `json:"gap_start"`
	// LastSuccess is when the last successful connect completed and
	// LastFailure when the last failed one started (zero: none); a success
	// after the last failure means the target was reachable again.
	LastSuccess time.Duration `json:"last_success"`
	LastFailure time.Duration `json:"last_failure"`
	// Errors holds the first failures.
	Errors  []TimedError  `json:"errors,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
}

func (o *TCPConnectOpts) defaults() error {
	if o.Every == 0 {
		o.Every = 5 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Millisecond
	}
	if o.Every < time.Millisecond || o.Timeout < 0 || o.Timeout > time.Minute || o.Duration <= 0 || o.Duration > maxDuration {
		return fmt.Errorf("tcpconnect every %v, timeout %v, duration %v: want every >= 1ms, timeout <= 1m, 0 < duration <= %v",
			o.Every, o.Timeout, o.Duration, maxDuration)
	}
	return checkTarget(o.Target)
}

// StartTCPConnect starts a connect loop in the host and returns once its
// first attempt has finished (ctx bounds that wait, 15 s without a
// deadline).
func (h *Host) StartTCPConnect(ctx context.Context, o TCPConnectOpts) (*Job[TCPConnectResult], error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	return startJob[TCPConnectResult](ctx, h, roleTCPConnect, o)
}

// RunTCPConnect runs a connect loop in the host for o.Duration and returns
// its result.
func (h *Host) RunTCPConnect(ctx context.Context, o TCPConnectOpts) (TCPConnectResult, error) {
	j, err := h.StartTCPConnect(ctx, o)
	if err != nil {
		return TCPConnectResult{}, err
	}
	return j.Wait(ctx)
}

// runTCPConnect is the child side of the tcpconnect role.
func runTCPConnect(ctx context.Context, o TCPConnectOpts, out *eventWriter) error {
	if err := o.defaults(); err != nil {
		return err
	}
	if o.Overlap {
		return runTCPConnectOverlap(ctx, o, out)
	}
	start := time.Now()
	end := start.Add(o.Duration)
	var res TCPConnectResult
	lastOK := start
	next := start
	d := net.Dialer{Timeout: o.Timeout, KeepAlive: -1}
	for ctx.Err() == nil && next.Before(end) {
		if err := sleepUntil(ctx, next); err != nil {
			break
		}
		t0 := time.Now()
		err := connectOnce(&d, o.Target)
		t1 := time.Now()
		res.Attempts++
		if err != nil {
			res.Failures++
			res.LastFailure = t0.Sub(start)
			if len(res.Errors) < maxErrors {
				res.Errors = append(res.Errors, TimedError{At: t0.Sub(start), Err: err.Error()})
			}
		} else {
			if gap := t1.Sub(lastOK); gap > res.LongestGap {
				res.LongestGap, res.GapStart = gap, lastOK.Sub(start)
			}
			lastOK = t1
			res.LastSuccess = t1.Sub(start)
		}
		if res.Attempts == 1 {
			if err := out.emit(evStarted, struct{}{}); err != nil {
				return err
			}
		}
		next = next.Add(o.Every)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
	stop := time.Now()
	if gap := stop.Sub(lastOK); gap > res.LongestGap {
		res.LongestGap, res.GapStart = gap, lastOK.Sub(start)
	}
	res.Elapsed = stop.Sub(start)
	return out.emit(evResult, res)
}

// connectOnce makes one connect and closes it with a RST (no TIME_WAIT
// pile-up); Stop never fails an attempt, the dialer's timeout bounds it.
func connectOnce(d *net.Dialer, target netip.AddrPort) error {
	conn, err := d.DialContext(context.Background(), "tcp", target.String())
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close() // the connect succeeded; how it closes is not measured
	return nil
}

// runTCPConnectOverlap is the Overlap variant: attempts start on a fixed
// schedule, each on its own goroutine; the gaps are taken between the
// completions of successful attempts, in completion order.
func runTCPConnectOverlap(ctx context.Context, o TCPConnectOpts, out *eventWriter) error {
	type attempt struct {
		t0, t1 time.Time
		err    error
	}
	start := time.Now()
	end := start.Add(o.Duration)
	d := net.Dialer{Timeout: o.Timeout, KeepAlive: -1}
	maxInFlight := int(o.Timeout/o.Every) + 2
	results := make(chan attempt, maxInFlight)
	var done []attempt
	inFlight := 0
	collect := func(a attempt) {
		inFlight--
		done = append(done, a)
	}
	emitted := false
	for next := start; ctx.Err() == nil && next.Before(end); next = next.Add(o.Every) {
		if err := sleepUntil(ctx, next); err != nil {
			break
		}
		for drained := false; !drained; {
			select {
			case a := <-results:
				collect(a)
			default:
				drained = true
			}
		}
		if !emitted && len(done) > 0 {
			if err := out.emit(evStarted, struct{}{}); err != nil {
				return err
			}
			emitted = true
		}
		if inFlight >= maxInFlight {
			continue // every slot waits on a connect: this tick is skipped
		}
		inFlight++
		go func(t0 time.Time) {
			err := connectOnce(&d, o.Target)
			results <- attempt{t0: t0, t1: time.Now(), err: err}
		}(time.Now())
	}
	for inFlight > 0 {
		collect(<-results)
	}
	if !emitted {
		if err := out.emit(evStarted, struct{}{}); err != nil {
			return err
		}
	}
	stop := time.Now()
	slices.SortFunc(done, func(a, b attempt) int { return a.t1.Compare(b.t1) })
	var res TCPConnectResult
	lastOK := start
	for _, a := range done {
		res.Attempts++
		if a.err != nil {
			res.Failures++
			if at := a.t0.Sub(start); at > res.LastFailure {
				res.LastFailure = at
			}
			if len(res.Errors) < maxErrors {
				res.Errors = append(res.Errors, TimedError{At: a.t0.Sub(start), Err: a.err.Error()})
			}
			continue
		}
		if gap := a.t1.Sub(lastOK); gap > res.LongestGap {
			res.LongestGap, res.GapStart = gap, lastOK.Sub(start)
		}
		lastOK = a.t1
		res.LastSuccess = a.t1.Sub(start)
	}
	if gap := stop.Sub(lastOK); gap > res.LongestGap {
		res.LongestGap, res.GapStart = gap, lastOK.Sub(start)
	}
	res.Elapsed = stop.Sub(start)
	return out.emit(evResult, res)
}
