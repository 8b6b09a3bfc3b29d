package cluster

import (
	"strings"
	"time"
)

// Report limits: per kind of report (key mismatches, refused members,
// ignored state, memberlist's warnings) a few per window one by one, then
// one summary per window, whatever the traffic.
const (
	reportWindow   = time.Minute
	reportBurst    = 5
	logReportBurst = 30
)

// summaryLoop reports, once per window, what the report limiters
// suppressed.
func (c *Cluster) summaryLoop() {
	defer c.wg.Done()
	t := time.NewTicker(reportWindow / 6)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.flushReports()
		}
	}
}

// flushReports turns the limiters' summaries into events and log lines.
func (c *Cluster) flushReports() {
	var evs []Event
	for _, s := range c.limiter.Flush() {
		switch {
		case s.Kind == limitRejected:
			evs = append(evs, Event{Type: EventMemberRejected, Time: s.End,
				Detail: s.Describe("refused member announcements") + ": only configured peers at their configured addresses may join"})
		case s.Kind == limitIgnored:
			evs = append(evs, Event{Type: EventMemberRejected, Time: s.End,
				Detail: s.Describe("gossip messages from unconfigured members ignored")})
		case strings.HasPrefix(s.Kind, limitKeyMismatch):
			evs = append(evs, Event{Type: EventKeyMismatch, Time: s.End, Member: strings.TrimPrefix(strings.TrimPrefix(s.Kind, limitKeyMismatch), ":"),
				Detail: s.Describe("gossip packets and streams rejected for a key mismatch") + " (compare gossip key_file on the nodes that should talk)"})
		}
	}
	c.report(evs)
	for _, s := range c.logLimiter.Flush() {
		c.log.Warn("memberlist warnings suppressed", "summary", s.Describe("memberlist warnings"))
	}
}
