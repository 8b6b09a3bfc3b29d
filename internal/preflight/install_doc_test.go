package preflight

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/probes"
)

const installDoc = "../../docs/install.md"

// docFirstAPIServer is the first apiserver of docs/install.md's example
// (the sample config's addresses), replaced by the lab's.
const docFirstAPIServer = "198.18.0.21"

// TestInstallFirewall keeps docs/install.md's firewall snippets true: the
// nftables one is accepted by `nft -c -f` and, loaded in a test network
// namespace, lets the VIP's traffic through by the preflight's judgement
// (the control without its forward rule is judged to drop it); the
// firewalld one is accepted command by command by firewall-offline-cmd on
// a configuration directory of the test's own. In both the ports are
// exactly the config's defaults: gossip TCP and UDP, heartbeat UDP,
// metrics TCP, the VIP's port, and ssh.
func TestInstallFirewall(t *testing.T) {
	doc, err := os.ReadFile(installDoc)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultPorts(t)
	t.Logf("the config's default ports: %v", want)

	t.Run("nftables", func(t *testing.T) {
		script := docBlock(t, string(doc), "nftables")
		if got := nftPorts(script); !slices.Equal(got, want) {
			t.Errorf("the nftables snippet opens %v, the config's defaults are %v", got, want)
		}
		if strings.Contains(script, "flush ruleset") {
			t.Error("the nftables snippet flushes the ruleset: that removes epconsole's own tables too")
		}
		if _, err := exec.LookPath("nft"); err != nil {
			t.Skip("nft CLI not installed (apt-get install nftables)")
		}
		lab := netlab.New(t, netlab.Spec{
			Prefix: "insp",
			IPv4:   netip.MustParsePrefix("198.18.151.0/24"),
			IPv6:   netip.MustParsePrefix("fd00:198:18:151::/64"),
			Hosts:  []netlab.HostSpec{{Name: "lb1", Role: netlab.RoleLB}, {Name: "cp1", Role: netlab.RoleBackend}},
		})
		lb, cp := lab.Host("lb1"), lab.Host("cp1")
		nft := func(args []string, script string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := lb.Command(ctx, append([]string{"nft"}, args...)...)
			cmd.Stdin = strings.NewReader(script)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := nft([]string{"-c", "-f", "-"}, script); err != nil {
			t.Fatalf("nft -c -f rejects the snippet of %s: %v\n%s", installDoc, err, out)
		}
		if out, err := nft([]string{"-c", "-f", "-"}, script+"\ntable inet filter { chain input { tcp dport 99999 accept; } }\n"); err == nil {
			t.Fatalf("control: nft -c -f accepts port 99999, so it checks nothing:\n%s", out)
		}
		o := Options{NetnsPath: lb.NsPath(),
			VIPs:     []VIP{{Address: lab.VIP4(), Interface: netlab.HostLink, Port: 6443}},
			Backends: []netip.AddrPort{netip.AddrPortFrom(cp.IPv4(), 6443)}}
		// The lab's apiserver in place of the example's first one.
		loaded := strings.ReplaceAll(script, docFirstAPIServer, cp.IPv4().String())
		if out, err := nft([]string{"-f", "-"}, loaded); err != nil {
			t.Fatalf("nft -f: %v\n%s", err, out)
		}
		fs := run(t, o)
		mustNotHave(t, fs, CodeFirewallDrops)
		mustNotHave(t, fs, CodeFirewallMayDrop)
		f := mustHave(t, fs, probes.OK, CodeFirewall)
		t.Logf("the snippet loaded: %s", f.Message)

		// The control: without the forward chain's rule for the
		// apiservers, the preflight finds the drop.
		var without []string
		for _, l := range strings.Split(loaded, "\n") {
			if !strings.Contains(l, "ip daddr $apiservers") {
				without = append(without, l)
			}
		}
		if out, err := nft([]string{"-f", "-"}, strings.Join(without, "\n")); err != nil {
			t.Fatalf("nft -f (control): %v\n%s", err, out)
		}
		f = mustHave(t, run(t, o), probes.Critical, CodeFirewallDrops)
		t.Logf("control: %s", f.Message)
	})

	t.Run("firewalld", func(t *testing.T) {
		script := docBlock(t, string(doc), "firewalld")
		if got := firewalldPorts(script); !slices.Equal(got, want) {
			t.Errorf("the firewalld snippet opens %v, the config's defaults are %v (ssh's 22 aside: firewalld's public zone has it)", got, want)
		}
		run := firewallOfflineCmd(t)
		dir := t.TempDir()
		// The package's firewalld.conf (…/usr/lib/firewalld ->
		// …/etc/firewalld), so the tool does not fall back to built-in
		// settings.
		if b, err := os.ReadFile(filepath.Join(os.Getenv("FWDEFAULT"), "../../../etc/firewalld/firewalld.conf")); err == nil {
			if err := os.WriteFile(filepath.Join(dir, "firewalld.conf"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out := shell(t, "set -e\n"+script, dir, run)
		t.Logf("the snippet under firewall-offline-cmd:\n%s", out)
		svc := shell(t, `set -e; firewall-cmd --permanent --info-service=epconsole; firewall-cmd --permanent --zone=public --list-rich-rules; firewall-cmd --permanent --zone=public --query-forward; firewall-cmd --permanent --check-config`, dir, run)
		t.Logf("the result:\n%s", svc)
		for _, p := range []string{"7946/tcp", "7946/udp", "7947/udp"} {
			if !strings.Contains(svc, p) {
				t.Errorf("service epconsole lacks %s", p)
			}
		}
		if !strings.Contains(svc, `port port="9642" protocol="tcp" accept`) {
			t.Error("no rich rule for the metrics port")
		}
		for _, peer := range []string{"198.18.0.11", "198.18.0.12", "198.18.0.13"} {
			if !strings.Contains(svc, `source address="`+peer+`" service name="epconsole" accept`) {
				t.Errorf("no rich rule for peer %s", peer)
			}
		}
		// The control: a port firewalld must refuse.
		if out, err := shellErr(`firewall-cmd --permanent --service=epconsole --add-port=99999/udp`, dir, run); err == nil {
			t.Errorf("control: firewall-offline-cmd accepts port 99999, so it checks nothing:\n%s", out)
		}
	})
}

// defaultPorts are the ports the guide's firewall must open, from the
// defaults of a config that sets none: "tcp/22" (ssh), gossip TCP and
// UDP, heartbeat UDP, metrics TCP and the VIP's port TCP, sorted.
func defaultPorts(t *testing.T) []string {
	t.Helper()
	src := `cluster_name = "c"
vip "198.18.151.100" {
  interface = "eth0"
}
node {
  name        = "lb1"
  gossip_bind = "198.18.151.11"
}
backend "cp1" {
  address = "198.18.151.21"
}
`
	p := filepath.Join(t.TempDir(), "config.hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(p, config.Offline())
	if diags.HasErrors() {
		t.Fatalf("minimal config: %v", diags)
	}
	metrics, err := netip.ParseAddrPort(cfg.Status.MetricsListen)
	if err != nil {
		t.Fatalf("default metrics_listen %q: %v", cfg.Status.MetricsListen, err)
	}
	g := strconv.Itoa(int(cfg.Node.GossipBind.Port()))
	ports := []string{"tcp/22", "tcp/" + g, "udp/" + g, "udp/" + strconv.Itoa(int(cfg.Gossip.HeartbeatPort)),
		"tcp/" + strconv.Itoa(int(metrics.Port())), "tcp/" + strconv.Itoa(int(cfg.VIPs[0].Port))}
	slices.Sort(ports)
	return slices.Compact(ports)
}

var (
	reNftDport  = regexp.MustCompile(`\b(tcp|udp) dport (\{[^}]*\}|\d+)`)
	reFwdPort   = regexp.MustCompile(`--add-port=(\d+)/(tcp|udp)`)
	reFwdRich   = regexp.MustCompile(`port port=(\d+) protocol=(tcp|udp)`)
	reNumber    = regexp.MustCompile(`\d+`)
	reDocMarker = regexp.MustCompile(`^<!-- install-test: ([a-z]+) -->$`)
)

// nftPorts lists the "proto/port"s an nft script opens, sorted.
func nftPorts(script string) []string {
	var out []string
	for _, m := range reNftDport.FindAllStringSubmatch(script, -1) {
		for _, n := range reNumber.FindAllString(m[2], -1) {
			out = append(out, m[1]+"/"+n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// firewalldPorts lists the "proto/port"s a firewall-cmd script opens,
// with the VIP's port (forwarded: --add-forward) and ssh (firewalld's
// public zone has it), sorted.
func firewalldPorts(script string) []string {
	out := []string{"tcp/22"}
	for _, m := range reFwdPort.FindAllStringSubmatch(script, -1) {
		out = append(out, m[2]+"/"+m[1])
	}
	for _, m := range reFwdRich.FindAllStringSubmatch(script, -1) {
		out = append(out, m[2]+"/"+m[1])
	}
	if strings.Contains(script, "--add-forward") {
		out = append(out, "tcp/"+strconv.Itoa(config.DefaultPort))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// docBlock returns the fenced block right after <!-- install-test: name -->.
func docBlock(t *testing.T, doc, name string) string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		m := reDocMarker.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil || m[1] != name {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("%s:%d: the %s marker is not followed by a fenced block", installDoc, i+1, name)
		}
		var b strings.Builder
		for _, s := range lines[i+2:] {
			if strings.HasPrefix(s, "```") {
				return b.String()
			}
			b.WriteString(s + "\n")
		}
		t.Fatalf("%s:%d: the %s block does not end", installDoc, i+1, name)
	}
	t.Fatalf("%s has no <!-- install-test: %s --> block", installDoc, name)
	return ""
}

// firewallOfflineCmd returns the command that runs firewall-offline-cmd
// and sets FWDEFAULT (firewalld's stock configuration): the installed one,
// or Debian's firewalld packages unpacked (not installed: nothing of them
// runs, and no firewalld touches the host) into the user cache directory.
func firewallOfflineCmd(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("firewall-offline-cmd"); err == nil {
		t.Setenv("FWDEFAULT", "/usr/lib/firewalld")
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Skipf("firewall-offline-cmd not installed and no cache directory: %v", err)
	}
	root := filepath.Join(cache, "epconsole-firewalld", "root")
	tool := filepath.Join(root, "usr/bin/firewall-offline-cmd")
	if _, err := os.Stat(tool); err != nil {
		dl := filepath.Dir(root)
		if err := os.MkdirAll(dl, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "apt-get", "download", "firewalld", "python3-firewall", "python3-nftables")
		cmd.Dir = dl
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("firewall-offline-cmd not installed and Debian's firewalld not downloadable (apt-get download): %v\n%s", err, out)
		}
		debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
		for _, d := range debs {
			if out, err := exec.Command("dpkg-deb", "-x", d, root).CombinedOutput(); err != nil {
				t.Fatalf("dpkg-deb -x %s: %v\n%s", d, err, out)
			}
		}
	}
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import gi, dbus").CombinedOutput(); err != nil {
		t.Skipf("firewall-offline-cmd needs python3-gi and python3-dbus: %v\n%s", err, out)
	}
	t.Setenv("PYTHONPATH", filepath.Join(root, "usr/lib/python3/dist-packages"))
	t.Setenv("FWDEFAULT", filepath.Join(root, "usr/lib/firewalld"))
	return py + " " + tool
}

// shell runs a bash script with FWDIR=dir; with run, firewall-cmd in it is
// firewall-offline-cmd on dir: --permanent is what that always does, and
// --reload has nothing to reload.
func shell(t *testing.T, script, dir string, run ...string) string {
	t.Helper()
	out, err := shellErr(script, dir, run...)
	if err != nil {
		t.Fatalf("bash: %v\n%s\n%s", err, script, out)
	}
	return out
}

func shellErr(script, dir string, run ...string) (string, error) {
	if len(run) > 0 {
		script = `firewall-cmd() {
  case "$1" in --reload) return 0;; --permanent) shift;; esac
  ` + run[0] + ` --system-config "$FWDIR" --default-config "$FWDEFAULT" "$@"
}
` + script
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = append(os.Environ(), "FWDIR="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
