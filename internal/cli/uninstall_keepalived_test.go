package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// TestUninstallKeepalivedClaimsVIP: a host that ran epconsole goes back to
// keepalived (Debian's). What the daemon can leave in the kernel (here:
// its ip table and the arp table of the owner lease, with no lease
// element, as a daemon that died leaves them) keeps the host from
// speaking ARP for the VIP. A neighbour watches the link with a packet
// socket and asks for the VIP's MAC (an ARP request, as any host whose
// cache entry expired):
//
//   - control, before uninstall: keepalived takes the VIP but the host
//     does not answer the neighbour's ARP request (the lease table drops
//     it). keepalived's gratuitous ARPs leave on a packet socket, which
//     the arp hook does not see: they are counted and logged, not
//     asserted;
//   - after `epconsole uninstall`: keepalived's gratuitous ARPs reach the
//     neighbour and the host answers its ARP request for the VIP.
func TestUninstallKeepalivedClaimsVIP(t *testing.T) {
	testenv.NeedNetns(t)
	needKeepalived(t)
	l := netlab.New(t, netlab.Spec{
		Prefix: "colu",
		IPv4:   netip.MustParsePrefix("198.18.140.0/24"),
		IPv6:   netip.MustParsePrefix("fd00:198:18:140::/64"),
		Hosts:  []netlab.HostSpec{{Name: "lb1", Role: netlab.RoleLB}, {Name: "nb", Role: netlab.RoleClient}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	host, nb := l.Host("lb1"), l.Host("nb")
	vip := l.VIP4()

	// The daemon's leftovers on lb1.
	hostNS, err := host.OpenNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer hostNS.Close()
	inNS := dataplane.WithNetNSFd(int(hostNS))
	d, err := dataplane.New(inNS)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Reconcile(ctx, dataplane.Desired{
		VIPs:     []dataplane.ServiceVIP{{Addr: vip, Port: 6443, Interface: netlab.HostLink}},
		Backends: []dataplane.Backend{{Name: "cp1", Addr: netip.MustParseAddrPort("198.18.140.21:6443")}},
		Healthy:  map[string]bool{"cp1": true},
	}); err != nil {
		t.Fatal(err)
	}
	lease, err := dataplane.NewLease(inNS)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close()
	if err := lease.Install(ctx, []netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}

	v, err := dataplane.NewVIP(inNS)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	obs, err := newARPObserver(nb, vip)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()

	dir := t.TempDir()
	control := keepalivedRound(ctx, t, host, v, obs, vip, dir, "before")
	t.Logf("control, before uninstall: gratuitous ARPs from %s seen by the neighbour: %d; answers to its ARP request: %d", vip, control.garps, control.replies)
	if control.replies != 0 {
		t.Errorf("control: with the lease table in place the host answered the neighbour's ARP request for %s (%d answers): the table no longer drops ARP from the VIP", vip, control.replies)
	}

	// uninstall, with a config naming the VIP and no daemon running.
	key, err := filepath.Abs("../../testdata/config/gossip.key")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`cluster_name = "uninstall"
vip %q {
  interface = %q
}
node {
  name        = "lb1"
  gossip_bind = %q
}
gossip {
  key_file = %q
}
backend "cp1" {
  address = "198.18.140.21"
}
status {
  socket = %q
}
`, vip, netlab.HostLink, host.IPv4(), key, filepath.Join(dir, "status.sock"))), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := runUninstall(ctx, uninstallOptions{configPath: cfg, netns: host.NsPath(), proc: t.TempDir()},
		IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	t.Logf("uninstall: exit %d\n%s%s", code, out.String(), errb.String())
	if code != 0 || !strings.Contains(out.String(), "removed nftables table arp epconsole") {
		t.Fatalf("uninstall: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}

	after := keepalivedRound(ctx, t, host, v, obs, vip, dir, "after")
	t.Logf("after uninstall: gratuitous ARPs from %s seen by the neighbour: %d; answers to its ARP request: %d", vip, after.garps, after.replies)
	if after.garps == 0 {
		t.Errorf("after uninstall: keepalived claimed %s but no gratuitous ARP reached the neighbour", vip)
	}
	if after.replies == 0 {
		t.Errorf("after uninstall: the host did not answer the neighbour's ARP request for %s", vip)
	}
}

// needKeepalived skips the test without keepalived, or installs it from
// Debian's packages where the namespace tests are required (CI).
func needKeepalived(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err == nil {
		return
	}
	if !testenv.NetnsRequired() {
		t.Skip("keepalived not installed: apt-get update && apt-get install -y keepalived")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends keepalived")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing keepalived from Debian's packages: %v\n%s", err, out)
	}
}

// arpCounts is what the neighbour saw in one round.
type arpCounts struct{ garps, replies int }

// keepalivedRound starts keepalived on host (a lone MASTER holding vip),
// waits until the VIP is on its link, lets the neighbour ask for the VIP
// three times, counts what reached the neighbour, and stops keepalived
// (SIGTERM: it removes the VIP).
func keepalivedRound(ctx context.Context, t *testing.T, host *netlab.Host, v *dataplane.VIP, obs *arpObserver, vip netip.Addr, dir, name string) arpCounts {
	t.Helper()
	conf := filepath.Join(dir, name+"-keepalived.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global_defs {
  router_id colu-%s
  vrrp_version 3
}
vrrp_instance uninstall {
  state MASTER
  interface %s
  virtual_router_id 61
  priority 150
  advert_int 0.1
  virtual_ipaddress {
    %s/32 dev %s
  }
}
`, name, netlab.HostLink, vip, netlab.HostLink)), 0o600); err != nil {
		t.Fatal(err)
	}
	pid := func(kind string) string { return filepath.Join(dir, name+"-"+kind+".pid") }
	logPath := filepath.Join(dir, name+"-keepalived.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	obs.Reset()
	cmd := host.Command(ctx, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"-f", conf, "--pid", pid("keepalived"), "--vrrp_pid", pid("vrrp"), "--checkers_pid", pid("checkers"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting keepalived: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	defer stop()

	deadline := time.Now().Add(10 * time.Second)
	for {
		has, err := v.Has(ctx, netlab.HostLink, vip)
		if err != nil {
			t.Fatal(err)
		}
		if has {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s: keepalived did not add %s within 10 s; log:\n%s", name, vip, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// keepalived sends its first gratuitous ARPs as it becomes MASTER;
	// ask for the VIP three times meanwhile.
	for range 3 {
		if err := obs.Ask(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	garps, replies := obs.Counts()
	return arpCounts{garps: garps, replies: replies}
}

// arpObserver is a packet socket on the neighbour's link that counts the
// ARP packets with the VIP as sender: gratuitous ARPs (target = sender)
// and answers to the neighbour's own requests (Ask).
type arpObserver struct {
	fd      int
	ifindex int
	mac     net.HardwareAddr
	self    netip.Addr
	vip     netip.Addr
	counts  chan [2]int
	reset   chan struct{}
	closed  chan struct{}
}

func newARPObserver(h *netlab.Host, vip netip.Addr) (*arpObserver, error) {
	ns, err := h.OpenNetNS()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	link, err := nh.LinkByName(netlab.HostLink)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", netlab.HostLink, h.Name(), err)
	}
	fd, err := packetSocketIn(ns, link.Attrs().Index)
	if err != nil {
		return nil, err
	}
	o := &arpObserver{fd: fd, ifindex: link.Attrs().Index, mac: link.Attrs().HardwareAddr, self: h.IPv4(), vip: vip,
		counts: make(chan [2]int), reset: make(chan struct{}), closed: make(chan struct{})}
	go o.run()
	return o, nil
}

// packetSocketIn opens an ARP packet socket bound to ifindex inside ns.
func packetSocketIn(ns netns.NsHandle, ifindex int) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: Go retires the thread
		if err := netns.Set(ns); err != nil {
			ch <- result{-1, fmt.Errorf("entering the neighbour's namespace: %w", err)}
			return
		}
		proto := int(htons(unix.ETH_P_ARP))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			ch <- result{-1, fmt.Errorf("packet socket: %w", err)}
			return
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifindex}); err != nil {
			unix.Close(fd)
			ch <- result{-1, fmt.Errorf("binding the packet socket: %w", err)}
			return
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			ch <- result{-1, err}
			return
		}
		ch <- result{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// run reads ARP packets until Close.
func (o *arpObserver) run() {
	var garps, replies int
	buf := make([]byte, 1500)
	for {
		select {
		case <-o.closed:
			return
		case o.counts <- [2]int{garps, replies}:
			continue
		case <-o.reset:
			garps, replies = 0, 0
			continue
		default:
		}
		n, _, err := unix.Recvfrom(o.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		// Ethernet/IPv4 ARP without the Ethernet header (SOCK_RAW keeps it).
		p := buf[:n]
		if len(p) < 14+28 {
			continue
		}
		arp := p[14:]
		op := binary.BigEndian.Uint16(arp[6:8])
		spa, _ := netip.AddrFromSlice(arp[14:18])
		tpa, _ := netip.AddrFromSlice(arp[24:28])
		switch {
		case spa != o.vip:
		case tpa == o.vip:
			garps++
		case op == 2 && tpa == o.self:
			replies++
		}
	}
}

// Reset zeroes the counts.
func (o *arpObserver) Reset() { o.reset <- struct{}{} }

// Counts returns the gratuitous ARPs and the answers seen since Reset.
func (o *arpObserver) Counts() (garps, replies int) {
	c := <-o.counts
	return c[0], c[1]
}

// Ask broadcasts an ARP request for the VIP from the neighbour.
func (o *arpObserver) Ask() error {
	frame := make([]byte, 0, 42)
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	frame = append(frame, o.mac...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_ARP)
	frame = binary.BigEndian.AppendUint16(frame, 1)             // Ethernet
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_IP) // IPv4
	frame = append(frame, 6, 4)
	frame = binary.BigEndian.AppendUint16(frame, 1) // request
	frame = append(frame, o.mac...)
	self := o.self.As4()
	frame = append(frame, self[:]...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	vip := o.vip.As4()
	frame = append(frame, vip[:]...)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: o.ifindex, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(o.fd, frame, 0, sa); err != nil {
		return fmt.Errorf("sending the ARP request: %w", err)
	}
	return nil
}

// Close stops the observer.
func (o *arpObserver) Close() {
	close(o.closed)
	unix.Close(o.fd)
}
