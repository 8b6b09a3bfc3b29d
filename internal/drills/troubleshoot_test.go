package drills

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/pki"
	"github.com/epconsole/epconsole/internal/standin"
)

// The troubleshooting drill's own address slice and namespace prefix.
var (
	insNet4 = netip.MustParsePrefix("198.18.150.0/24")
	insNet6 = netip.MustParsePrefix("fd00:198:18:150::/64")
)

const installDoc = "../../docs/install.md"

// TestTroubleshootGuide causes the five problems of docs/install.md's
// troubleshooting section in a lab of three LB peers running the real
// daemon and three stand-in apiservers, and checks that what epconsole
// prints (check, status, the daemon's log) holds every symptom line the
// guide quotes for it (read from the guide, so the two cannot drift).
// Each problem has its control: the same command before the problem or
// after the guide's fix does not print the symptom.
func TestTroubleshootGuide(t *testing.T) {
	doc, err := os.ReadFile(installDoc)
	if err != nil {
		t.Fatal(err)
	}
	symptoms := docSymptoms(t, string(doc))
	for _, name := range []string{"key-mismatch", "port-blocked", "vip-interface", "san-missing", "backend-401-403", "all-ok"} {
		if len(symptoms[name]) == 0 {
			t.Fatalf("%s quotes no symptom for %s (<!-- symptom: %s --> before a fenced block)", installDoc, name, name)
		}
	}
	c, owner := newInsCluster(t, []string{"lb3"})
	if owner == "lb3" {
		t.Fatalf("lb3, with a foreign gossip key, owns the VIP")
	}
	lb1, lb3 := c.lab.Host("lb1"), c.lab.Host("lb3")

	t.Run("key-mismatch", func(t *testing.T) {
		c.waitLog(c.daemons["lb1"], 15*time.Second, `"kind":"gossip-key-mismatch"`, `"subject":"lb3"`)
		out := c.epconsole(lb1, "check", "-c", c.daemons["lb1"].cfgPath) + c.epconsole(lb1, "status", "--socket", c.sock("lb1"))
		out += strings.Join(logLines(c.daemons["lb1"]), "\n")
		expectSymptoms(t, "key-mismatch", symptoms["key-mismatch"], out)
		// The control, and the guide's fix: the same key file on lb3,
		// a reload, and lb3 is live for lb1.
		key, err := os.ReadFile(filepath.Join(c.dir, "gossip.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFile(filepath.Join(c.dir, "lb3.key"), string(key)); err != nil {
			t.Fatal(err)
		}
		c.signal("lb3", syscall.SIGHUP)
		after := c.waitCheck(lb1, 20*time.Second, func(out string) bool { return !strings.Contains(out, "peer lb3 is not live") },
			"check", "-c", c.daemons["lb1"].cfgPath)
		expectNoSymptoms(t, "key-mismatch (fixed)", symptoms["key-mismatch"], after)
	})

	t.Run("port-blocked", func(t *testing.T) {
		cfg := filepath.Join(c.dir, "lb3.hcl")
		before := c.epconsole(lb3, "check", "-c", cfg)
		expectNoSymptoms(t, "port-blocked (control, before)", symptoms["port-blocked"], before)
		// The firewall of lb3 drops the heartbeat port (UDP 7947, the
		// gossip port + 1) and lets gossip through.
		c.nft(lb3, "table inet insblock {\n chain input {\n  type filter hook input priority 0; policy accept;\n  udp dport 7947 drop\n }\n}\n")
		// Both peers' beats stop at once, but lb3 may count one of them
		// gone a status round before the other: wait for the whole
		// symptom (both peers without beats, so no majority), not its
		// first half.
		out := c.waitCheck(lb3, 15*time.Second, func(out string) bool {
			return strings.Count(out, "heartbeats do not arrive") >= 2 && strings.Contains(out, "hears 1 of 3 peers")
		}, "check", "-c", cfg)
		out += c.epconsole(lb3, "status", "--socket", c.sock("lb3"))
		expectSymptoms(t, "port-blocked", symptoms["port-blocked"], out)
		c.nft(lb3, "delete table inet insblock\n")
		after := c.waitCheck(lb3, 15*time.Second, func(out string) bool { return !strings.Contains(out, "heartbeats do not arrive") },
			"check", "-c", cfg)
		expectNoSymptoms(t, "port-blocked (fixed)", symptoms["port-blocked"], after)
	})

	t.Run("vip-interface", func(t *testing.T) {
		good := c.daemons["lb1"].cfgPath
		src, err := readFile(good)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(c.dir, "lb1-wrong-interface.hcl")
		wrong := strings.Replace(src, fmt.Sprintf("interface = %q", netlab.HostLink), `interface = "ens3"`, 1)
		if wrong == src {
			t.Fatalf("no interface line in %s", good)
		}
		if err := os.WriteFile(bad, []byte(wrong), 0o600); err != nil {
			t.Fatal(err)
		}
		out := c.epconsole(lb1, "check", "preflight", "-c", bad)
		expectSymptoms(t, "vip-interface", symptoms["vip-interface"], out)
		expectNoSymptoms(t, "vip-interface (control, the right interface)", symptoms["vip-interface"], c.epconsole(lb1, "check", "preflight", "-c", good))
	})

	t.Run("san-missing", func(t *testing.T) {
		cfg := c.daemons["lb1"].cfgPath
		expectNoSymptoms(t, "san-missing (control, the VIP in the SANs)", symptoms["san-missing"], c.epconsole(lb1, "check", "tls", "-c", cfg))
		cp3 := c.lab.Host("cp3")
		o := c.lab.ServerCertOptions(cp3)
		o.IPs = []netip.Addr{cp3.IPv4(), cp3.IPv6()} // kubeadm's default: the node's own addresses, no VIP
		c.reissue(cp3, o)
		out := c.epconsole(lb1, "check", "tls", "-c", cfg)
		expectSymptoms(t, "san-missing", symptoms["san-missing"], out)
		c.reissue(cp3, c.lab.ServerCertOptions(cp3)) // the fix: the VIP back in the SANs
		expectNoSymptoms(t, "san-missing (fixed)", symptoms["san-missing"], c.epconsole(lb1, "check", "tls", "-c", cfg))
	})

	t.Run("backend-401-403", func(t *testing.T) {
		cfg := c.daemons["lb1"].cfgPath
		expectNoSymptoms(t, "backend-401-403 (control, anonymous /readyz allowed)", symptoms["backend-401-403"], c.epconsole(lb1, "check", "backends", "-c", cfg))
		cp2 := c.standins["cp2"]
		var out string
		for _, code := range []int{403, 401} {
			if err := cp2.SetBehavior(c.ctx, standin.Behavior{AnonymousStatus: code}); err != nil {
				t.Fatal(err)
			}
			out += c.epconsole(lb1, "check", "backends", "-c", cfg)
		}
		expectSymptoms(t, "backend-401-403", symptoms["backend-401-403"], out)
		if err := cp2.SetBehavior(c.ctx, standin.Behavior{}); err != nil {
			t.Fatal(err)
		}
	})

	// With every problem fixed, check all is the guide's OK line (the
	// cluster's name and the owner aside: the lab's cluster is "drill",
	// and the VIP may have moved on the way).
	t.Run("all-ok", func(t *testing.T) {
		out := c.waitCheck(lb1, 20*time.Second, func(out string) bool { return strings.HasPrefix(out, "EPCONSOLE OK") },
			"check", "all", "-c", c.daemons["lb1"].cfgPath)
		var quotes []string
		for _, q := range symptoms["all-ok"] {
			quotes = append(quotes, reOwner.ReplaceAllString(strings.Replace(q, "EPCONSOLE OK - prod-cp:", "EPCONSOLE OK - drill:", 1), "owns"))
		}
		expectSymptoms(t, "all-ok", quotes, reOwner.ReplaceAllString(out, "owns"))
	})
}

// reOwner is the VIP owner's name in check's cluster summary.
var reOwner = regexp.MustCompile(`lb\d owns`)

// newInsCluster is newClusterWith on this drill's own addresses: three
// LB peers (those in ownKey with a gossip key of their own) and three
// stand-ins; it returns the VIP owner.
func newInsCluster(t *testing.T, ownKey []string) (*cluster, string) {
	t.Helper()
	return newClusterWith(t, "ins", 3*time.Minute, clusterOpts{ownKey: ownKey, net4: insNet4, net6: insNet6, ownerWait: 20 * time.Second})
}

// sock is the status socket of LB name (cluster.config puts it there).
func (c *cluster) sock(name string) string { return filepath.Join(c.dir, name+".sock") }

// epconsole runs an epconsole command in h's namespace, as an operator
// on that host would, and returns its output (whatever its exit code: a
// check that finds a problem exits non-zero).
func (c *cluster) epconsole(h *netlab.Host, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	cmd := h.Command(ctx, append([]string{epconsoleBin}, args...)...)
	// No kubeconfig: check all reports it skipped.
	cmd.Env = append(os.Environ(), "HOME="+c.dir, "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	c.t.Logf("%s: epconsole %s (%v):\n%s", h.Name(), strings.Join(args, " "), err, out)
	return string(out)
}

// waitCheck repeats an epconsole command on h until done accepts its
// output, at most for timeout, and returns the last output.
func (c *cluster) waitCheck(h *netlab.Host, timeout time.Duration, done func(string) bool, args ...string) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := c.epconsole(h, args...)
		if done(out) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(time.Second)
	}
}

// nft loads an nft script in h's namespace.
func (c *cluster) nft(h *netlab.Host, script string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("nft -f in %s: %v\n%s\n%s", h.Name(), err, out, script)
	}
}

// reissue gives the stand-in on h a new certificate with o's SANs.
func (c *cluster) reissue(h *netlab.Host, o pki.LeafOptions) {
	c.t.Helper()
	if _, _, err := c.lab.IssueCert(h.Name(), o); err != nil {
		c.t.Fatal(err)
	}
	if err := c.standins[h.Name()].Reload(c.ctx); err != nil {
		c.t.Fatalf("reloading the stand-in on %s: %v", h.Name(), err)
	}
}

// docSymptoms reads the guide's quoted symptoms: each fenced block right
// after a line <!-- symptom: NAME --> (or <!-- output: NAME -->) gives
// NAME's lines; lines starting "$ " are the commands, not output.
func docSymptoms(t *testing.T, doc string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		name, ok := strings.CutPrefix(l, "<!-- symptom:")
		if !ok {
			name, ok = strings.CutPrefix(l, "<!-- output:")
		}
		if !ok {
			continue
		}
		name = strings.TrimSpace(strings.TrimSuffix(name, "-->"))
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[j]), "```") {
			t.Fatalf("%s:%d: symptom %s is not followed by a fenced block", installDoc, i+1, name)
		}
		for j++; j < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[j]), "```"); j++ {
			if s := strings.TrimSpace(lines[j]); s != "" && !strings.HasPrefix(s, "$ ") {
				out[name] = append(out[name], s)
			}
		}
		i = j
	}
	return out
}

// The parts of a line that differ between the guide's example cluster
// and the lab: addresses (with a port or prefix), times, durations.
var (
	reTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)`)
	reIP4  = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+|/\d+)?\b`)
	reDur  = regexp.MustCompile(`\b\d+(\.\d+)?(ms|s|µs)\b`)
)

func normalizeSymptom(s string) string {
	s = reTime.ReplaceAllString(s, "TIME")
	s = reIP4.ReplaceAllString(s, "ADDR")
	return reDur.ReplaceAllString(s, "DUR")
}

// symptomIn reports whether the quoted line occurs in out, addresses,
// times and durations aside; " ... " in the quote stands for any text.
func symptomIn(quote, out string) bool {
	q := normalizeSymptom(quote)
	q = strings.TrimSuffix(strings.TrimPrefix(q, "... "), " ...")
	parts := strings.Split(q, " ... ")
	for _, l := range strings.Split(normalizeSymptom(out), "\n") {
		rest, ok := l, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

func expectSymptoms(t *testing.T, name string, quotes []string, out string) {
	t.Helper()
	for _, q := range quotes {
		if !symptomIn(q, out) {
			t.Errorf("%s: the guide quotes\n  %s\nbut epconsole printed no such line:\n%s", name, q, out)
		}
	}
}

func expectNoSymptoms(t *testing.T, name string, quotes []string, out string) {
	t.Helper()
	for _, q := range quotes {
		if symptomIn(q, out) {
			t.Errorf("%s: the guide's symptom\n  %s\nis printed without the problem:\n%s", name, q, out)
		}
	}
}
