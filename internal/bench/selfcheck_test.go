package bench

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	testVIP   = netip.MustParseAddr("198.18.8.100")
	testNodes = []lbNode{
		{Name: "lb1", Addr: netip.MustParseAddr("198.18.8.11"), Priority: 150},
		{Name: "lb2", Addr: netip.MustParseAddr("198.18.8.12"), Priority: 100},
		{Name: "lb3", Addr: netip.MustParseAddr("198.18.8.13"), Priority: 50},
	}
	testBackends = map[string]netip.AddrPort{
		"cp1": netip.MustParseAddrPort("198.18.8.21:6443"),
		"cp2": netip.MustParseAddrPort("198.18.8.22:6443"),
		"cp3": netip.MustParseAddrPort("198.18.8.23:6443"),
	}
)

func testVRRP(i int) vrrpParams {
	var peers []lbNode
	for j, n := range testNodes {
		if j != i {
			peers = append(peers, n)
		}
	}
	return vrrpParams{Self: testNodes[i], Peers: peers, Interface: "eth0", VIP: testVIP, RouterID: 18, AdvertInt: "0.01", Master: i == 0}
}

func TestKeepalivedConf(t *testing.T) {
	for i, tc := range []struct {
		want, notWant []string
	}{
		{
			want:    []string{"vrrp_version 3", "advert_int 0.01", "state MASTER", "priority 150", "unicast_src_ip 198.18.8.11", "    198.18.8.12\n", "    198.18.8.13\n", "198.18.8.100/32 dev eth0"},
			notWant: []string{"    198.18.8.11\n", "authentication"},
		},
		{
			want:    []string{"vrrp_version 3", "state BACKUP", "priority 100", "unicast_src_ip 198.18.8.12", "    198.18.8.11\n", "    198.18.8.13\n"},
			notWant: []string{"    198.18.8.12\n", "state MASTER"},
		},
		{
			want:    []string{"state BACKUP", "priority 50", "    198.18.8.11\n", "    198.18.8.12\n"},
			notWant: []string{"    198.18.8.13\n"},
		},
	} {
		t.Run(testNodes[i].Name, func(t *testing.T) {
			conf := keepalivedConf(testVRRP(i))
			for _, w := range tc.want {
				if !strings.Contains(conf, w) {
					t.Errorf("config lacks %q:\n%s", w, conf)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(conf, w) {
					t.Errorf("config has %q:\n%s", w, conf)
				}
			}
		})
	}
}

func TestHAProxyConf(t *testing.T) {
	conf := haproxyConf(testVIP, 6443, testBackends)
	for _, w := range []string{"bind 198.18.8.100:6443", "mode tcp", "balance roundrobin",
		"server cp1 198.18.8.21:6443 check\n  server cp2 198.18.8.22:6443 check\n  server cp3 198.18.8.23:6443 check"} {
		if !strings.Contains(conf, w) {
			t.Errorf("config lacks %q:\n%s", w, conf)
		}
	}
}

// TestConfigsAccepted runs the generated configs through the real
// programs' config checks (keepalived -t, haproxy -c) when they are
// installed; the benchmark's install step puts them there.
func TestConfigsAccepted(t *testing.T) {
	dir := t.TempDir()
	t.Run("keepalived", func(t *testing.T) {
		bin, err := exec.LookPath("keepalived")
		if err != nil {
			t.Skip("keepalived is not installed (apt-get install keepalived; `just bench` does it)")
		}
		for i := range testNodes {
			p := filepath.Join(dir, testNodes[i].Name+".conf")
			if err := os.WriteFile(p, []byte(keepalivedConf(testVRRP(i))), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "-t", "-f", p).CombinedOutput()
			if err != nil {
				t.Errorf("keepalived -t rejected the config of %s: %v\n%s", testNodes[i].Name, err, out)
			}
		}
	})
	t.Run("haproxy", func(t *testing.T) {
		bin, err := exec.LookPath("haproxy")
		if err != nil {
			t.Skip("haproxy is not installed (apt-get install haproxy; `just bench` does it)")
		}
		p := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(p, []byte(haproxyConf(testVIP, 6443, testBackends)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-c", "-f", p).CombinedOutput()
		if err != nil {
			t.Errorf("haproxy -c rejected the config: %v\n%s", err, out)
		}
	})
}

func TestSummarize(t *testing.T) {
	d := func(msec ...int) []runResult {
		var out []runResult
		for i, m := range msec {
			out = append(out, runResult{Dark: time.Duration(m) * time.Millisecond, Takeover: time.Duration(m) * time.Millisecond / 2, Failures: i, Recovered: m < 1000})
		}
		return out
	}
	for _, tc := range []struct {
		name                string
		runs                []runResult
		median, worst, best time.Duration
		unrecovered         int
	}{
		{"none", nil, 0, 0, 0, 0},
		{"one", d(40), 40 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond, 0},
		{"odd", d(45, 35, 40), 40 * time.Millisecond, 45 * time.Millisecond, 35 * time.Millisecond, 0},
		{"even", d(30, 50, 40, 20), 35 * time.Millisecond, 50 * time.Millisecond, 20 * time.Millisecond, 0},
		{"unrecovered", d(3000, 40, 41), 41 * time.Millisecond, 3 * time.Second, 40 * time.Millisecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := summarize(tc.runs)
			if s.Runs != len(tc.runs) || s.Median != tc.median || s.Worst != tc.worst || s.Best != tc.best || s.Unrecovered != tc.unrecovered ||
				s.TakeoverMedian != tc.median/2 || s.TakeoverWorst != tc.worst/2 {
				t.Errorf("summarize = %+v, want median %v worst %v best %v unrecovered %d", s, tc.median, tc.worst, tc.best, tc.unrecovered)
			}
		})
	}
}

func TestSummarizeStalls(t *testing.T) {
	runs := []runResult{
		{Dark: 45 * time.Millisecond, Failures: 2, Recovered: true},
		{Dark: 714 * time.Millisecond, Recovered: true, Stalled: true},
		{Dark: 51 * time.Millisecond, Failures: 2, Recovered: true},
	}
	s := summarize(runs)
	if s.Stalls != 1 || s.WorstUnstalled != 51*time.Millisecond || s.Worst != 714*time.Millisecond || s.Median != 51*time.Millisecond {
		t.Errorf("summarize = %+v, want 1 stall, worst 714ms, worst without stalls 51ms, median 51ms", s)
	}
}

func TestReplaceSection(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
		wantErr         bool
	}{
		{"replace", "head\n" + sectionBegin + "\nold\n" + sectionEnd + "\ntail\n", "head\n" + sectionBegin + "\nnew\n" + sectionEnd + "\ntail\n", false},
		{"empty", sectionBegin + sectionEnd, sectionBegin + "\nnew\n" + sectionEnd, false},
		{"no markers", "head\n", "", true},
		{"reversed", sectionEnd + sectionBegin, "", true},
		{"twice", sectionBegin + sectionEnd + sectionBegin + sectionEnd, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := replaceSection(tc.doc, "\nnew\n")
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("replaceSection = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	r := report{
		Date: time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC), Machine: "2 cores",
		Sides: []side{{Name: "a", Runs: []runResult{{Dark: 40 * time.Millisecond, Recovered: true}, {Dark: 2 * time.Second}, {Dark: 700 * time.Millisecond, Recovered: true, Stalled: true}}}},
	}
	md := r.markdown()
	for _, w := range []string{"2026-11-24 22:00 UTC", "| a | 3 | 700.0 ms | 2000.0 ms | 40.0 ms | 0 | 1 | 1 | 2000.0 ms | 0.0 / 0.0 ms |",
		"- a: 40.0, 2000.0 (not recovered), 700.0 (client stalled: no connect failed in a long gap)"} {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}
}
