package cluster

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"time"
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

func (c *Cluster) handleMemberlistLog(line string) {
	level, msg := parseMemberlistLog(line)
	if addr, ok := keyMismatchAddr(msg); ok {
		c.reportKeyMismatch(addr, msg)
		level = slog.LevelDebug // reportKeyMismatch says it once, clearly
	}
	c.log.Log(context.Background(), level, msg, "source", "memberlist")
}

// reportKeyMismatch counts a key mismatch and, at most once per address per
// keyMismatchReportEvery, logs it and emits EventKeyMismatch.
func (c *Cluster) reportKeyMismatch(addr, msg string) {
	c.keyMismatches.Add(1)
	ap, _ := netip.ParseAddrPort(addr)
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		ip, _ = netip.ParseAddr(addr)
	}
	now := time.Now()
	c.mu.Lock()
	key := ip.String()
	if last, ok := c.keyReported[key]; ok && now.Sub(last) < keyMismatchReportEvery {
		c.mu.Unlock()
		return
	}
	c.keyReported[key] = now
	name := c.peerByAddrLocked(ap, ip)
	c.mu.Unlock()
	who := "an unknown node"
	if name != "" {
		who = "peer " + name
	}
	c.report([]Event{{
		Type: EventKeyMismatch, Time: now, Member: name, Addr: ap,
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
