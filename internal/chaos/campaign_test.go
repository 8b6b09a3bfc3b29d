package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/lab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// The tests' namespace prefixes and address slices.
var (
	campaignIPv4 = netip.MustParsePrefix("198.18.120.0/24")
	campaignIPv6 = netip.MustParsePrefix("fd00:198:18:120::/64")
	pauseIPv4    = netip.MustParsePrefix("198.18.121.0/24")
	pauseIPv6    = netip.MustParsePrefix("fd00:198:18:121::/64")
)

// The campaign's settings from the environment (docs/chaos.md).
const (
	envSeed   = "EPCONSOLE_CHAOS_SEED"
	envCount  = "EPCONSOLE_CHAOS_COUNT"
	envPeers  = "EPCONSOLE_CHAOS_PEERS"
	envFaults = "EPCONSOLE_CHAOS_FAULTS"
	envTwoMAC = "EPCONSOLE_CHAOS_TWO_MAC_BOUND"
	// envKeepLogs: keep the daemons' logs of a passing run too.
	envKeepLogs = "EPCONSOLE_CHAOS_KEEP_LOGS"
	// The CI version: 20 faults with a fixed seed, one whose 20 faults
	// include every kind (TestCIPlanCoversEveryFault).
	defaultSeed  = 16
	defaultCount = 20
)

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// upLab builds a lab with an observer host for a chaos test.
func upLab(t *testing.T, prefix string, v4, v6 netip.Prefix, peers int) *lab.Lab {
	t.Helper()
	return upLabWith(t, lab.Options{Prefix: prefix, IPv4: v4, IPv6: v6, Peers: peers, Backends: 3})
}

// upLabWith builds the lab o describes, with an observer host, for a chaos
// test (o.Prefix, o.IPv4 and o.IPv6 are the test's own).
func upLabWith(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	prefix := o.Prefix
	testenv.NeedNetns(t)
	_ = lab.Down(prefix) // what a crashed run left behind
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o.Observer, o.Binary = true, epconsoleBin
	o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
		testenv.NoNamespacesLeft(t, prefix)
	})
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// TestCampaign runs a fault campaign (EPCONSOLE_CHAOS_COUNT faults drawn
// from EPCONSOLE_CHAOS_SEED; 20 from seed 16 by default, as CI runs it)
// against a 3-peer lab (EPCONSOLE_CHAOS_PEERS=5 for five) under a
// client's connect loop and streams, and fails on any invariant
// violation, printing the seed, the fault log and the observer's
// timeline.
func TestCampaign(t *testing.T) {
	seed := envInt(t, envSeed, defaultSeed)
	count := envInt(t, envCount, defaultCount)
	peers := envInt(t, envPeers, 3)
	kinds, err := ParseKinds(os.Getenv(envFaults))
	if err != nil {
		t.Fatal(err)
	}
	var twoMAC time.Duration
	if v := os.Getenv(envTwoMAC); v != "" {
		if twoMAC, err = time.ParseDuration(v); err != nil || twoMAC <= 0 {
			t.Fatalf("%s=%q: want a positive duration such as 30ms", envTwoMAC, v)
		}
	}
	l := upLab(t, "cha", campaignIPv4, campaignIPv6, peers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count)*20*time.Second+time.Minute)
	defer cancel()
	start := time.Now()
	obs, err := StartObserver(ctx, l, start)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Stop()
	time.Sleep(300 * time.Millisecond) // the observer's first probes and connects
	rep, err := Run(ctx, l, obs, Options{Seed: uint64(seed), Count: count, Kinds: kinds, TwoMACBound: twoMAC, Logf: t.Logf})
	obs.Stop()
	rep.Finish(obs)
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%s\nload average at the end: %s", rep.Summary(), load)
	if testing.Verbose() {
		t.Logf("timeline:\n%s", rep.Timeline())
	}
	if oerr := obs.Err(); oerr != nil {
		t.Errorf("observer: %v", oerr)
	}
	if os.Getenv(envKeepLogs) != "" && err == nil && len(rep.Violations) == 0 {
		t.Logf("the daemons' logs: %s", keepLogs(l))
	}
	if err != nil || len(rep.Violations) > 0 {
		t.Errorf("campaign failed (rerun: just chaos %d %d)%s; the daemons' logs: %s\n%s", seed, count, errText(err), keepLogs(l), rep)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf(": %v", err)
}

// keepLogs copies the daemons' logs out of the lab's directory (removed
// at the end) into a directory of their own and returns its path.
func keepLogs(l *lab.Lab) string {
	dir, err := os.MkdirTemp("", "epconsole-chaos-logs-")
	if err != nil {
		return "not kept: " + err.Error()
	}
	for _, p := range l.Peers() {
		b, err := os.ReadFile(l.LogPath(p))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, p+"-daemon.log"), b, 0o644)
		}
		if err != nil {
			return fmt.Sprintf("%s (incomplete: %v)", dir, err)
		}
	}
	return dir
}
