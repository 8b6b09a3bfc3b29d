package bench

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/netlab"
)

// rivalDatapath is what forwards VIP:6443 behind keepalived.
type rivalDatapath int

const (
	// viaHAProxy: HAProxy in `mode tcp` on every LB, bound to VIP:6443
	// (ip_nonlocal_bind=1 in the namespace, as the classic runbook sets it).
	viaHAProxy rivalDatapath = iota
	// viaNftDNAT: epconsole's dataplane tables (nft DNAT to the backends,
	// SNAT to the VIP) installed on every LB once, with no daemon.
	viaNftDNAT
)

// startKeepalived starts the rival on every LB: its datapath, and
// keepalived, VRRP only, VRRPv3 with advert_int 0.01, unicast peers (seed
// 001); it waits until lb1 owns the VIP.
func (s *stack) startKeepalived(dp rivalDatapath) error {
	for _, bin := range []string{"keepalived", "haproxy"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed: apt-get update && apt-get install -y keepalived haproxy (`just bench` does it)", bin)
		}
	}
	backends := map[string]netip.AddrPort{}
	var dpBackends []dataplane.Backend
	healthy := map[string]bool{}
	for _, h := range s.lab.HostsByRole(netlab.RoleBackend) {
		backends[h.Name()] = netip.AddrPortFrom(h.IPv4(), servicePort)
		dpBackends = append(dpBackends, dataplane.Backend{Name: h.Name(), Addr: netip.AddrPortFrom(h.IPv4(), servicePort)})
		healthy[h.Name()] = true
	}
	haCfg := s.writeFile("haproxy.cfg", haproxyConf(s.vip, servicePort, backends))
	nodes := s.nodes()
	for i, h := range s.lbs {
		switch dp {
		case viaHAProxy:
			if err := h.WriteSysctl("net/ipv4/ip_nonlocal_bind", "1"); err != nil {
				return err
			}
			s.start(h, h.Name()+"-haproxy", "haproxy", "-db", "-f", haCfg)
		case viaNftDNAT:
			d, err := dataplane.New(dataplane.WithNetNS(h.Namespace()))
			if err != nil {
				return fmt.Errorf("dataplane on %s: %w", h.Name(), err)
			}
			_, err = d.Reconcile(s.ctx, dataplane.Desired{VIPs: []dataplane.ServiceVIP{{Addr: s.vip, Port: servicePort}}, Backends: dpBackends, Healthy: healthy})
			d.Close()
			if err != nil {
				return fmt.Errorf("nft DNAT on %s: %w", h.Name(), err)
			}
		}
		conf := s.writeFile(h.Name()+"-keepalived.conf", keepalivedConf(vrrpParams{
			Self: nodes[i], Peers: peersOf(nodes, i), Interface: netlab.HostLink, VIP: s.vip,
			RouterID: 18, AdvertInt: "0.01", Master: i == 0,
		}))
		pid := func(kind string) string { return filepath.Join(s.dir, h.Name()+"-"+kind+".pid") }
		s.start(h, h.Name()+"-keepalived", "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
			"-f", conf, "--pid", pid("keepalived"), "--vrrp_pid", pid("vrrp"), "--checkers_pid", pid("checkers"))
	}
	return s.waitOwner(firstOwner, time.Second, 30*time.Second)
}

// keepalivedSched lists the scheduling policy of every keepalived process.
func (s *stack) keepalivedSched() []string {
	var out []string
	for _, p := range s.procs {
		if strings.HasSuffix(p.name, "-keepalived") {
			out = append(out, schedPolicies(p.cmd.Process.Pid)...)
		}
	}
	return out
}

// startEpconsole starts `epconsole --daemon` on every LB (heartbeat at its
// defaults, preempt on) and waits until lb1 owns the VIP.
func (s *stack) startEpconsole(bin string) error {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := s.writeFile("gossip.key", base64.StdEncoding.EncodeToString(key)+"\n")
	backends := map[string]netip.Addr{}
	for _, h := range s.lab.HostsByRole(netlab.RoleBackend) {
		backends[h.Name()] = h.IPv4()
	}
	nodes := s.nodes()
	for i, h := range s.lbs {
		cfg := s.writeFile(h.Name()+".hcl", epconsoleConf(epconsoleParams{
			Self: nodes[i], Peers: peersOf(nodes, i), Interface: netlab.HostLink, VIP: s.vip, Port: servicePort,
			Backends: backends, KeyFile: keyFile, CAFile: s.lab.CAFile(),
			StateDir: filepath.Join(s.dir, h.Name()+"-state"), Socket: filepath.Join(s.dir, h.Name()+".sock"),
		}))
		s.start(h, h.Name()+"-epconsole", bin, "--daemon", "-c", cfg, "--log-level", "info")
	}
	return s.waitOwner(firstOwner, time.Second, 60*time.Second)
}

// epconsoleHeartbeat reports, from each daemon's log, the heartbeat line
// (interval, misses, whether real-time priority is in effect).
func (s *stack) epconsoleHeartbeat() []string {
	var out []string
	for _, p := range s.procs {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "heartbeat running") || strings.Contains(l, "heartbeat not running") {
				out = append(out, p.name+": "+summarizeBeatLine(l))
				break
			}
		}
	}
	return out
}

// summarizeBeatLine keeps the interesting fields of the daemon's heartbeat
// log line.
func summarizeBeatLine(l string) string {
	var keep []string
	for _, k := range []string{`"interval"`, `"misses"`, `"realtime"`, `"priority"`, `"reason"`, `"err"`} {
		if i := strings.Index(l, k+":"); i >= 0 {
			v := l[i:]
			if j := strings.IndexAny(v, ",}"); j >= 0 {
				v = v[:j]
			}
			keep = append(keep, v)
		}
	}
	return strings.Join(keep, " ")
}
