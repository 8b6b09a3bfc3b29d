package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const unitPath = "systemd/epconsole.service"

// unitDirectives are the unit's Key=value lines, by key (a key given
// twice has both values).
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not Key=value: %q", path, line)
		}
		out[k] = append(out[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnitDirectives: the unit is Type=notify with a watchdog, reloads on
// SIGHUP, runs as the user epconsole with exactly the three capabilities,
// and leaves unset what the daemon needs (RestrictRealtime: the heartbeat's
// SCHED_FIFO; ProtectKernelTunables: arp_announce under /proc/sys).
func TestUnitDirectives(t *testing.T) {
	d := unitDirectives(t, unitPath)
	want := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "5s",
		"ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
		"User": "epconsole", "Group": "epconsole",
		"AmbientCapabilities":   "CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_NICE",
		"CapabilityBoundingSet": "CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_NICE",
		"NoNewPrivileges":       "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"RuntimeDirectory": "epconsole", "StateDirectory": "epconsole", "ConfigurationDirectory": "epconsole",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET",
		"ExecStart":               "/usr/bin/epconsole daemon -c /etc/epconsole/config.hcl",
	}
	for k, v := range want {
		if got := d[k]; !slices.Equal(got, []string{v}) {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"LimitRTPRIO", "PrivateDevices", "ProtectClock", "ProtectKernelModules", "ProtectControlGroups", "RestrictNamespaces", "MemoryDenyWriteExecute", "LockPersonality", "RestrictSUIDSGID", "SystemCallArchitectures"} {
		if len(d[k]) == 0 {
			t.Errorf("%s not set", k)
		}
	}
	for _, k := range []string{"RestrictRealtime", "ProtectKernelTunables", "ProcSubset", "PrivateNetwork", "PrivateUsers"} {
		if len(d[k]) != 0 {
			t.Errorf("%s=%v set: the daemon needs it off (see the unit's comment)", k, d[k])
		}
	}
}

// verifiableUnit copies the unit with its /usr/bin/epconsole pointed at
// an executable that exists here (this test binary): verify checks that
// the ExecStart= binaries exist and are executable.
func verifiableUnit(t *testing.T, edit func(string) string) string {
	t.Helper()
	src, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(src), "/usr/bin/epconsole", exe)
	if edit != nil {
		text = edit(text)
	}
	p := filepath.Join(t.TempDir(), "epconsole.service")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitVerify: `systemd-analyze verify` (offline, no running systemd
// needed) accepts the unit, and rejects it (the control) when the
// ExecStart binary is missing.
func TestUnitVerify(t *testing.T) {
	sa := need(t, "systemd-analyze", "systemd")
	p := verifiableUnit(t, nil)
	out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", p, err, out)
	}
	bad := verifiableUnit(t, func(s string) string {
		return strings.Replace(s, "ExecStart=/", "ExecStart=/nonexistent/", 1)
	})
	if out, err := exec.Command(sa, "verify", "--man=no", bad).CombinedOutput(); err == nil {
		t.Errorf("control: systemd-analyze verify accepted a unit whose ExecStart binary is missing:\n%s", out)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure is `systemd-analyze security --offline=true`'s overall
// exposure of the unit file at path (0 safest, 10 least safe).
func exposure(t *testing.T, sa, path string) float64 {
	t.Helper()
	out, err := exec.Command(sa, "security", "--offline=true", path).CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security --offline=true %s: %v\n%s", path, err, out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestUnitSecurityExposure: the unit's exposure stays at most 3.0
// (docs/install.md gives the figure), and below keepalived's shipped unit
// when keepalived is installed (CI installs it for the benchmarks).
func TestUnitSecurityExposure(t *testing.T) {
	sa := need(t, "systemd-analyze", "systemd")
	ours := exposure(t, sa, verifiableUnit(t, nil))
	t.Logf("epconsole.service exposure %.1f", ours)
	if ours > 3.0 {
		t.Errorf("epconsole.service exposure %.1f, want at most 3.0 (docs/install.md)", ours)
	}
	for _, k := range []string{"/lib/systemd/system/keepalived.service", "/usr/lib/systemd/system/keepalived.service"} {
		if _, err := os.Stat(k); err != nil {
			continue
		}
		theirs := exposure(t, sa, k)
		t.Logf("keepalived.service exposure %.1f", theirs)
		if ours >= theirs {
			t.Errorf("epconsole.service exposure %.1f not below keepalived's %.1f", ours, theirs)
		}
		return
	}
	t.Log("keepalived not installed: no comparison")
}
