package cli

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestIsDaemonCmdline: only epconsole with daemon, --daemon or -daemon as
// its first argument is the daemon.
func TestIsDaemonCmdline(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"epconsole\x00--daemon\x00-c\x00/etc/epconsole/config.hcl\x00": true,
		"/usr/local/bin/epconsole\x00daemon\x00":                       true,
		"epconsole\x00-daemon":                                         true,
		"epconsole\x00uninstall\x00--force\x00":                        false,
		"epconsole\x00":                                                false,
		"/usr/bin/vim\x00--daemon\x00":                                 false,
		"epconsole-lab\x00daemon\x00":                                  false,
		"":                                                             false,
	} {
		if got := isDaemonCmdline([]byte(cmdline)); got != want {
			t.Errorf("isDaemonCmdline(%q) = %v, want %v", cmdline, got, want)
		}
	}
}

// TestDaemonRunningByProcess: a fake /proc with daemons in this and another
// network namespace and other epconsole commands: only the daemon in the
// namespace uninstall works on counts.
func TestDaemonRunningByProcess(t *testing.T) {
	dir := t.TempDir()
	nsFile := filepath.Join(dir, "netns")
	if err := os.WriteFile(nsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ino, err := inode(nsFile)
	if err != nil {
		t.Fatal(err)
	}
	proc := filepath.Join(dir, "proc")
	here := "net:[" + strconv.FormatUint(ino, 10) + "]"
	for pid, p := range map[string]struct{ cmdline, ns string }{
		"101":  {"/usr/bin/epconsole\x00--daemon\x00-c\x00x.hcl\x00", here},
		"102":  {"epconsole\x00daemon\x00", "net:[1]"}, // another namespace (a lab node)
		"103":  {"epconsole\x00uninstall\x00", here},   // not the daemon
		"104":  {"epconsole\x00daemon\x00", here},      // a second one
		"self": {"epconsole\x00--daemon\x00", here},    // not a PID
	} {
		if err := os.MkdirAll(filepath.Join(proc, pid, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cmdline"), []byte(p.cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p.ns, filepath.Join(proc, pid, "ns", "net")); err != nil {
			t.Fatal(err)
		}
	}
	got := daemonRunning(context.Background(), filepath.Join(dir, "no.sock"), uninstallOptions{netns: nsFile, proc: proc})
	want := []string{"epconsole daemon process 101", "epconsole daemon process 104"}
	if !slices.Equal(got, want) {
		t.Errorf("daemonRunning = %q, want %q", got, want)
	}
	if got := daemonRunning(context.Background(), "", uninstallOptions{netns: nsFile, proc: t.TempDir()}); len(got) != 0 {
		t.Errorf("daemonRunning with no process and no socket = %q", got)
	}
}

// TestUninstallBadConfig: without a readable config uninstall removes
// nothing and exits 1, saying why.
func TestUninstallBadConfig(t *testing.T) {
	code, out, errs := runCLI(t, "uninstall", "-c", filepath.Join(t.TempDir(), "none.hcl"))
	if code != 1 || out != "" || !strings.Contains(errs, "Cannot read config file") || !strings.Contains(errs, "names the VIPs to remove") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestKeygenUninstallHelp: keygen's and uninstall's -h print usage lines
// naming their flags, and the root's help lists both commands.
func TestKeygenUninstallHelp(t *testing.T) {
	for cmd, flags := range map[string][]string{"keygen": {"-o", "--add"}, "uninstall": {"-c", "--force"}} {
		code, out, errs := runCLI(t, cmd, "-h")
		if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: epconsole "+cmd) {
			t.Errorf("%s -h: exit %d, stderr %q, stdout:\n%s", cmd, code, errs, out)
			continue
		}
		usage := out[:strings.Index(out, "\n")]
		for _, f := range flags {
			if !strings.Contains(usage, f) {
				t.Errorf("%s usage %q does not name %s", cmd, usage, f)
			}
		}
	}
	_, out, _ := runCLI(t, "-h")
	for _, cmd := range []string{"keygen", "uninstall"} {
		if !strings.Contains(out, "\n  "+cmd+" ") {
			t.Errorf("epconsole -h does not list %s:\n%s", cmd, out)
		}
	}
}

// uninstallNS makes a network namespace for one test and returns a path
// that opens it. The thread that made it is never unlocked, so Go retires
// it.
func uninstallNS(t *testing.T) (netns.NsHandle, string) {
	t.Helper()
	testenv.NeedNetns(t)
	h := testenv.NewNetNS(t)
	return h, "/proc/self/fd/" + strconv.Itoa(int(h))
}

// TestUninstallCommand runs uninstall against a namespace holding a VIP,
// the DNAT table and the owner-lease table, with the config's status
// socket answering: it refuses without --force and changes nothing;
// with --force it removes the VIP and the tables, names each, and leaves
// the host's own address; a second run finds nothing to remove.
func TestUninstallCommand(t *testing.T) {
	ns, nsPath := uninstallNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpun0"}, PeerName: "dpun0p"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dpun0p", "dpun0"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	link, _ := h.LinkByName("dpun0")
	host, _ := netlink.ParseAddr("198.18.78.1/24")
	if err := h.AddrAdd(link, host); err != nil {
		t.Fatal(err)
	}
	vip := dataplane.ServiceVIP{Addr: netip.MustParseAddr("198.18.78.100"), Port: 6443, Interface: "dpun0"}
	inNS := dataplane.WithNetNSFd(int(ns))
	v, err := dataplane.NewVIP(inNS)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Add(ctx, vip.Interface, vip.Addr); err != nil {
		t.Fatal(err)
	}
	d, err := dataplane.New(inNS)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Reconcile(ctx, dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{vip},
		Backends: []dataplane.Backend{{Name: "cp1", Addr: netip.MustParseAddrPort("198.18.78.21:6443")}},
		Healthy:  map[string]bool{"cp1": true},
	}); err != nil {
		t.Fatal(err)
	}
	l, err := dataplane.NewLease(inNS)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Install(ctx, []netip.Addr{vip.Addr}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	key, err := filepath.Abs("../../testdata/config/gossip.key")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "status.sock")
	cfg := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(cfg, []byte(`cluster_name = "uninstall"
vip "198.18.78.100" {
  interface = "dpun0"
}
node {
  name        = "lb1"
  gossip_bind = "198.18.78.1"
}
gossip {
  key_file = "`+key+`"
}
backend "cp1" {
  address = "198.18.78.21"
}
status {
  socket = "`+socket+`"
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	run := func(force bool) (int, string, string) {
		var out, errb bytes.Buffer
		o := uninstallOptions{configPath: cfg, force: force, netns: nsPath, proc: t.TempDir()}
		code := runUninstall(ctx, o, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
		return code, out.String(), errb.String()
	}
	has := func(addr string) bool {
		got, err := v.Has(ctx, "dpun0", netip.MustParseAddr(addr))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	code, out, errs := run(false)
	if code != 1 || out != "" || !strings.Contains(errs, "status socket "+socket+" answers") || !strings.Contains(errs, "--force") {
		t.Errorf("while the daemon runs: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if !has("198.18.78.100") {
		t.Fatal("the refused uninstall removed the VIP")
	}

	code, out, errs = run(true)
	want := "removed VIP 198.18.78.100 from dpun0\n" +
		"removed nftables table arp epconsole\n" +
		"removed nftables table ip epconsole\n"
	if code != 0 || out != want || !strings.Contains(errs, "--force") {
		t.Errorf("--force: exit %d, stdout:\n%s\nwant:\n%s\nstderr %q", code, out, want, errs)
	}
	if has("198.18.78.100") || !has("198.18.78.1") {
		t.Error("after uninstall the VIP is still there or the host's address is gone")
	}

	ln.Close()
	if code, out, errs := run(false); code != 0 || out != "nothing to remove\n" || errs != "" {
		t.Errorf("second run: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
