package cluster

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
)

// memberlist logs through a *log.Logger with "[LEVEL] memberlist: ..."
// lines. logBridge turns each line into a slog record at that level, and
// is also where a peer with the wrong gossip key shows: memberlist drops
// such packets and streams and only logs it (it has no callback for it).
// The markers below are memberlist v0.7.0's messages; the wrong-key test
// fails if they change.
type logBridge struct{ c *Cluster }

func (b *logBridge) Write(p []byte) (int, error) {
	b.c.handleMemberlistLog(string(p))
	return len(p), nil
}

var logLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
}

// parseMemberlistLog splits a memberlist log line into level and message.
func parseMemberlistLog(line string) (slog.Level, string) {
	line = strings.TrimSpace(line)
	level := slog.LevelInfo
	for _, l := range logLevels {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			level, line = l.level, strings.TrimSpace(rest)
			break
		}
	}
	return level, strings.TrimPrefix(line, "memberlist: ")
}

// keyMismatchMarkers are the errors memberlist logs for gossip that does
// not authenticate with any key of the keyring (lower case).
var keyMismatchMarkers = []string{
	"no installed keys could decrypt the message",
	"encryption is configured but remote state is not encrypted",
	"remote state is encrypted and encryption is not configured",
}

// keyMismatchAddr reports whether msg is a key mismatch and the remote
// address it names ("from=ADDR", or the target of "failed to join ADDR:").
func keyMismatchAddr(msg string) (string, bool) {
	lower := strings.ToLower(msg)
	found := false
	for _, m := range keyMismatchMarkers {
		if strings.Contains(lower, m) {
			found = true
			break
		}
	}
	if !found {
		return "", false
	}
	if _, rest, ok := strings.Cut(msg, "from="); ok {
		addr, _, _ := strings.Cut(rest, " ")
		return addr, true
	}
	if _, rest, ok := strings.Cut(msg, "failed to join "); ok {
		addr, _, _ := strings.Cut(rest, ": ")
		return addr, true
	}
	return "", true
}

// refusalMarkers are memberlist's lines about alive messages the alive
// delegate refused; rejectMember reports those, limited.
var refusalMarkers = []string{"ignoring alive message for", "merge refused"}

func (c *Cluster) handleMemberlistLog(line string) {
	level, msg := parseMemberlistLog(line)
	if addr, ok := keyMismatchAddr(msg); ok {
		c.reportKeyMismatch(addr, msg)
		level = slog.LevelDebug // reportKeyMismatch says it, limited
	}
	for _, m := range refusalMarkers {
		if strings.Contains(msg, m) {
			level = slog.LevelDebug
		}
	}
	if level >= slog.LevelWarn && !c.logLimiter.Allow(limitLog, logSource(msg)) {
		level = slog.LevelDebug // counted; summarised once a window
	}
	c.log.Log(context.Background(), level, msg, "source", "memberlist")
}

// logSource is what a memberlist line is about, for the log limiter: the
// remote address it names, else the line itself.
func logSource(msg string) string {
	if _, rest, ok := strings.Cut(msg, "from="); ok {
		addr, _, _ := strings.Cut(rest, " ")
		return addr
	}
	return msg
}

// reportKeyMismatch counts a key mismatch and reports it through the
// limiter: a configured peer's mismatches have a kind of their own (a
// flood from elsewhere does not hide them), the others share one; each
// kind reports a few sources per window and a summary of the rest.
func (c *Cluster) reportKeyMismatch(addr, msg string) {
	c.keyMismatches.Add(1)
	ap, _ := netip.ParseAddrPort(addr)
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		ip, _ = netip.ParseAddr(addr)
	}
	c.mu.Lock()
	name := c.peerByAddrLocked(ap, ip)
	c.mu.Unlock()
	kind := limitKeyMismatch
	if name != "" {
		kind += ":" + name
	}
	if !c.limiter.Allow(kind, ip.String()) {
		return
	}
	who := "an unknown node"
	if name != "" {
		who = "peer " + name
	}
	c.report([]Event{{
		Type: EventKeyMismatch, Time: c.limiter.Now(), Member: name, Addr: ap,
		Detail: "gossip with " + who + " at " + addr + " rejected: it is not encrypted with a key of this node's keyring " +
			"(compare gossip key_file on both nodes): " + msg,
	}})
}

// peerByAddrLocked names the configured peer or member at ap, or the only
// one at ip (incoming streams come from ephemeral ports).
func (c *Cluster) peerByAddrLocked(ap netip.AddrPort, ip netip.Addr) string {
	var byIP []string
	check := func(name string, a netip.AddrPort) bool {
		if ap.IsValid() && a == ap {
			return true
		}
		if a.Addr().Unmap() == ip && name != "" {
			byIP = append(byIP, name)
		}
		return false
	}
	for _, p := range c.peers {
		if check(p.Name, p.Addr) {
			return p.Name
		}
	}
	for _, r := range c.members {
		if check(r.name, r.addr) {
			return r.name
		}
	}
	if len(byIP) > 0 {
		first := byIP[0]
		for _, n := range byIP[1:] {
			if n != first {
				return ""
			}
		}
		return first
	}
	return ""
}
