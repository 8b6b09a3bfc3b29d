package bench

// One failover run's timeline, from what the epconsole daemons (and their
// heartbeat helpers, whose lines the daemon passes on) logged around the
// fault: the last beat seen, the verdict, the address added, the ARP
// sent. The lines are read as the daemon writes them (JSON, one object a
// line, with "time" and "msg"); a line that is not JSON, or a log with
// none of these lines, gives a shorter timeline, never an error.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// The second loop of connects in every failover run: a new connection
// every slowEvery, with a client's default connect behaviour (slowTimeout;
// the kernel retransmits an unanswered SYN after 1 s), so that the runs
// count the connections whose first SYN landed in the dark window.
const (
	slowEvery          = 20 * time.Millisecond
	slowTimeout        = 3 * time.Second
	synRetransmitAfter = 900 * time.Millisecond
)

// The window of a run's trace around the fault.
const (
	traceBefore = 100 * time.Millisecond
	traceAfter  = 1500 * time.Millisecond
	traceMax    = 40
)

// traceEvent is one line of a run's timeline.
type traceEvent struct {
	// AtMS is the time from the fault.
	AtMS float64 `json:"at_ms"`
	Host string  `json:"host"`
	What string  `json:"what"`
}

// traceWords pick the log lines of the timeline: what the heartbeat
// saw, what was decided, what the claim did.
var traceWords = []string{"beat", "verdict", "claim", "vip", "arp", "announce", "gratuitous", "owner", "lease", "elect", "successor"}

// daemonTrace reads the timeline of a fault at faultAt from the logs of
// the running system's daemons (empty for the keepalived systems, whose
// logs carry no wall-clock times).
func (s *stack) daemonTrace(faultAt time.Time) []traceEvent {
	var out []traceEvent
	read := map[string]bool{}
	for _, p := range s.procs {
		// A daemon restarted (after a power-off or a kill) is a new proc
		// writing on to the same log: read each log once.
		if !strings.HasSuffix(p.name, "-epconsole") || read[p.logPath] {
			continue
		}
		read[p.logPath] = true
		f, err := os.Open(p.logPath)
		if err != nil {
			continue
		}
		out = append(out, parseTrace(f, p.host, faultAt)...)
		f.Close()
	}
	return sortTrace(out)
}

// parseTrace returns the timeline lines of one daemon log.
func parseTrace(f *os.File, host string, faultAt time.Time) []traceEvent {
	var out []traceEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if e, ok := traceLine(sc.Bytes(), host, faultAt); ok {
			out = append(out, e)
		}
	}
	return out
}

// traceLine turns one JSON log line into a timeline event when it falls
// in the window and says something of the timeline.
func traceLine(line []byte, host string, faultAt time.Time) (traceEvent, bool) {
	var m map[string]any
	if json.Unmarshal(line, &m) != nil {
		return traceEvent{}, false
	}
	ts, _ := m["time"].(string)
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return traceEvent{}, false
	}
	off := at.Sub(faultAt)
	if off < -traceBefore || off > traceAfter {
		return traceEvent{}, false
	}
	msg, _ := m["msg"].(string)
	if k, ok := m["kind"].(string); ok && k != "" {
		msg = k + ": " + msg
	}
	low := strings.ToLower(msg)
	if !slices.ContainsFunc(traceWords, func(w string) bool { return strings.Contains(low, w) }) {
		return traceEvent{}, false
	}
	var extra []string
	for _, k := range []string{"missing", "peer", "owner", "epoch", "vip", "took", "gap", "last_beat"} {
		if v, ok := m[k]; ok {
			extra = append(extra, fmt.Sprintf("%s=%v", k, v))
		}
	}
	if len(extra) > 0 {
		msg += " (" + strings.Join(extra, " ") + ")"
	}
	return traceEvent{AtMS: float64(off) / 1e6, Host: host, What: msg}, true
}

// sortTrace orders the events by time and keeps the first traceMax.
func sortTrace(ev []traceEvent) []traceEvent {
	slices.SortStableFunc(ev, func(a, b traceEvent) int {
		switch {
		case a.AtMS < b.AtMS:
			return -1
		case a.AtMS > b.AtMS:
			return 1
		}
		return 0
	})
	if len(ev) > traceMax {
		ev = ev[:traceMax]
	}
	return ev
}

// runTimeline is one run's timeline for the report: the fault, the
// daemons' lines, the address added (netlink) and the first successful
// connect after the dark window.
func runTimeline(fr faultRun) []traceEvent {
	out := []traceEvent{{AtMS: 0, Host: "lb1", What: "fault: " + string(fr.Mode)}}
	out = append(out, fr.Trace...)
	if fr.TakeoverMS > 0 {
		out = append(out, traceEvent{AtMS: fr.TakeoverMS, Host: "kernel", What: "VIP address added on another LB (netlink event)"})
	}
	if first, ok := firstConnectAfterFault(fr); ok {
		out = append(out, traceEvent{AtMS: first, Host: "client", What: "first successful connect after the fault began"})
	}
	return sortTrace(out)
}

// firstConnectAfterFault is when (ms from the fault) the first connect
// that succeeded after the first failed one started, from the 5 ms
// timeline.
func firstConnectAfterFault(fr faultRun) (float64, bool) {
	start := int(timelineBefore / binWidth)
	dark := false
	for i := start; i < len(fr.Timeline); i++ {
		if fr.Timeline[i] == 0 {
			dark = true
			continue
		}
		if dark {
			return float64(i-start) * float64(binWidth) / 1e6, true
		}
	}
	return 0, false
}
