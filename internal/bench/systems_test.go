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

// system is one contender of the suite: what it runs on every LB.
type system struct {
	// Name is the key in results.json, Label the name in the tables.
	Name, Label string
	// Prefix names the lab's namespaces.
	Prefix string
	// VIP: the system has a VIP and an owner (all but direct).
	VIP bool
	// Proxy: HAProxy forwards, connecting to the backends from the LB's
	// own address.
	Proxy bool
	// Loop is how long a failover run's connect loop lasts (the fault
	// comes one second in).
	Loop time.Duration
	// setup runs once per lab before the LBs start (configs, datapath).
	setup func(s *stack) error
	// procs lists what runs on LB i; the ones marked daemon are what a
	// kill -9 or a graceful stop hits.
	procs func(s *stack, i int) []procSpec
	// desc describes the system as it ran.
	desc func(s *stack) []string
}

// procSpec is one process of a system on one LB.
type procSpec struct {
	name   string
	argv   []string
	daemon bool
	// before runs first (every start, also after a restart).
	before func() error
}

// fastLoop is the connect loop of a failover run for the systems that
// fail over in milliseconds: the fault a second in, then 1.5 s (a SYN
// lost in the dark window is answered 1 s later; the runbook's VRRPv2
// takes over 3 s and gets 5 s).
const fastLoop = 2500 * time.Millisecond

// systems returns the contenders in the order they run.
func systems(bin string) []system {
	kaProcs := func(v2 bool, extra func(s *stack, i int) ([]string, []string, []string)) func(s *stack, i int) []procSpec {
		return func(s *stack, i int) []procSpec {
			nodes := s.nodes()
			h := s.lbs[i]
			p := vrrpParams{Self: nodes[i], Peers: peersOf(nodes, i), Interface: netlab.HostLink, VIP: s.vip, RouterID: 18, AdvertInt: "0.01", Master: i == 0}
			if v2 {
				p.VRRPv2, p.AdvertInt = true, "1"
			}
			if extra != nil {
				p.Global, p.Blocks, p.Extra = extra(s, i)
			}
			conf := s.writeFile(h.Name()+"-keepalived.conf", keepalivedConf(p))
			pid := func(kind string) string { return filepath.Join(s.dir, h.Name()+"-"+kind+".pid") }
			return []procSpec{{name: h.Name() + "-keepalived", daemon: true, argv: []string{"keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
				"-f", conf, "--pid", pid("keepalived"), "--vrrp_pid", pid("vrrp"), "--checkers_pid", pid("checkers")}}}
		}
	}
	haproxy := func(s *stack, i int) procSpec {
		return procSpec{name: s.lbs[i].Name() + "-haproxy", argv: []string{"haproxy", "-db", "-f", filepath.Join(s.dir, "haproxy.cfg")}}
	}
	haSetup := func(s *stack) error {
		backends := map[string]netip.AddrPort{}
		for _, h := range s.lab.HostsByRole(netlab.RoleBackend) {
			backends[h.Name()] = netip.AddrPortFrom(h.IPv4(), servicePort)
		}
		s.writeFile("haproxy.cfg", haproxyConf(s.vip, servicePort, backends))
		for _, h := range s.lbs {
			if err := h.WriteSysctl("net/ipv4/ip_nonlocal_bind", "1"); err != nil {
				return err
			}
		}
		return nil
	}
	haDesc := version("haproxy", "-v") + " (`mode tcp`, roundrobin, `default-server inter 3s fall 3 rise 2`)"
	scriptSec := []string{"script_user root"}
	return []system{
		{
			Name: "direct", Label: "direct", Prefix: "bnd",
			setup: func(*stack) error { return nil },
			procs: func(*stack, int) []procSpec { return nil },
			desc: func(*stack) []string {
				return []string{"direct: the client talks to cp1 itself (no VIP, no LB): the limit"}
			},
		},
		{
			Name: "seeds", Label: "HAProxy + keepalived (runbook)", Prefix: "bns", VIP: true, Proxy: true, Loop: 5 * time.Second,
			setup: haSetup,
			procs: func(s *stack, i int) []procSpec {
				ka := kaProcs(true, func(s *stack, i int) ([]string, []string, []string) {
					chk := filepath.Join(s.dir, "chk-haproxy.sh")
					if _, err := os.Stat(chk); err != nil {
						_ = os.WriteFile(chk, fmt.Appendf(nil, "#!/bin/bash\nexec timeout 1 bash -c '</dev/tcp/127.0.0.1/%d'\n", haproxyMonitorPort), 0o700)
					}
					return scriptSec, []string{fmt.Sprintf("vrrp_script chk_haproxy {\n  script %q\n  interval 1\n  fall 2\n  rise 2\n  weight -60\n}", chk)},
						[]string{"track_script {\n    chk_haproxy\n  }"}
				})(s, i)
				return append([]procSpec{haproxy(s, i)}, ka...)
			},
			desc: func(s *stack) []string {
				return []string{"HAProxy + keepalived as the classic runbook: " + version("keepalived", "--version") + " (VRRPv2, `advert_int 1`, PASS authentication, unicast peers, priorities 150/100/50, preempt, `track_script` on HAProxy's monitor URI every 1 s, fall 2, weight -60) with " + haDesc}
			},
		},
		{
			Name: "keepalived-tuned", Label: "keepalived 10 ms + HAProxy", Prefix: "bnk", VIP: true, Proxy: true, Loop: fastLoop,
			setup: haSetup,
			procs: func(s *stack, i int) []procSpec {
				return append([]procSpec{haproxy(s, i)}, kaProcs(false, nil)(s, i)...)
			},
			desc: func(s *stack) []string {
				return []string{"tuned keepalived: " + version("keepalived", "--version") + " (VRRP only, VRRPv3, `advert_int 0.01`, unicast peers, priorities 150/100/50, preempt, no track script) with " + haDesc,
					"keepalived scheduling (" + s.lab.Prefix() + "): " + strings.Join(s.keepalivedSched(), ", ")}
			},
		},
		{
			Name: "keepalived-nft-conntrackd", Label: "keepalived 10 ms + nft DNAT + conntrackd", Prefix: "bnt", VIP: true, Loop: fastLoop,
			setup: nftSetup,
			procs: func(s *stack, i int) []procSpec {
				h := s.lbs[i]
				conf := s.writeFile(h.Name()+"-conntrackd.conf", conntrackdConf(s.nodes()[i], netlab.HostLink, s.dir))
				notify := filepath.Join(s.dir, h.Name()+"-notify.sh")
				ctd := procSpec{name: h.Name() + "-conntrackd", argv: []string{"conntrackd", "-C", conf}, before: func() error {
					_ = os.Remove(filepath.Join(s.dir, h.Name()+"-conntrackd.lock"))
					_ = os.Remove(filepath.Join(s.dir, h.Name()+"-conntrackd.ctl"))
					return os.WriteFile(notify, []byte(conntrackdNotify(conf)), 0o700)
				}}
				ka := kaProcs(false, func(*stack, int) ([]string, []string, []string) {
					return scriptSec, nil, []string{
						fmt.Sprintf("notify_master %q", notify+" primary"), fmt.Sprintf("notify_backup %q", notify+" backup"), fmt.Sprintf("notify_fault %q", notify+" backup")}
				})(s, i)
				return append([]procSpec{ctd}, ka...)
			},
			desc: func(s *stack) []string {
				return []string{"strongest hand-built rival: the tuned keepalived with epconsole's nft DNAT tables (same flow hash, SNAT to the VIP; package dataplane, installed once, no daemon) and " +
					version("conntrackd", "-v") + " (FTFW over multicast on the LB link; keepalived's notify scripts run conntrack-tools' primary-backup steps: -c, -f, -R, -B on becoming primary, -t, -n on becoming backup)"}
			},
		},
		{
			Name: "epconsole", Label: "epconsole", Prefix: "bne", VIP: true, Loop: fastLoop,
			setup: func(s *stack) error {
				key := make([]byte, 32)
				_, _ = rand.Read(key)
				s.writeFile("gossip.key", base64.StdEncoding.EncodeToString(key)+"\n")
				return nil
			},
			procs: func(s *stack, i int) []procSpec {
				backends := map[string]netip.Addr{}
				for _, h := range s.lab.HostsByRole(netlab.RoleBackend) {
					backends[h.Name()] = h.IPv4()
				}
				nodes := s.nodes()
				h := s.lbs[i]
				cfg := s.writeFile(h.Name()+".hcl", epconsoleConf(epconsoleParams{
					Self: nodes[i], Peers: peersOf(nodes, i), Interface: netlab.HostLink, VIP: s.vip, Port: servicePort,
					Backends: backends, KeyFile: filepath.Join(s.dir, "gossip.key"), CAFile: s.lab.CAFile(),
					StateDir: filepath.Join(s.dir, h.Name()+"-state"), Socket: filepath.Join(s.dir, h.Name()+".sock"),
				}))
				return []procSpec{{name: h.Name() + "-epconsole", daemon: true, argv: []string{bin, "--daemon", "-c", cfg, "--log-level", "info"}}}
			},
			desc: func(s *stack) []string {
				return []string{"epconsole: " + binDesc() + " (its default config but for preempt on and the priorities 150/100/50; heartbeat at its defaults; nft DNAT datapath)",
					"epconsole heartbeat: " + strings.Join(s.epconsoleHeartbeat(), "; ")}
			},
		},
	}
}

// nftSetup installs epconsole's dataplane tables on every LB, once.
func nftSetup(s *stack) error { return s.nftTables(nil) }

// nftTables writes the nft rival's tables on every LB with the backends
// named in healthy healthy (nil: all of them); the rival has no health
// checks of its own.
func (s *stack) nftTables(healthy map[string]bool) error {
	var backends []dataplane.Backend
	all := healthy == nil
	if all {
		healthy = map[string]bool{}
	}
	for _, h := range s.lab.HostsByRole(netlab.RoleBackend) {
		backends = append(backends, dataplane.Backend{Name: h.Name(), Addr: netip.AddrPortFrom(h.IPv4(), servicePort)})
		if all {
			healthy[h.Name()] = true
		}
	}
	for _, h := range s.lbs {
		d, err := dataplane.New(dataplane.WithNetNS(h.Namespace()))
		if err != nil {
			return fmt.Errorf("dataplane on %s: %w", h.Name(), err)
		}
		_, err = d.Reconcile(s.ctx, dataplane.Desired{VIPs: []dataplane.ServiceVIP{{Addr: s.vip, Port: servicePort}}, Backends: backends, Healthy: healthy})
		d.Close()
		if err != nil {
			return fmt.Errorf("nft DNAT on %s: %w", h.Name(), err)
		}
	}
	return nil
}

// startSystem runs sys's setup and starts it on every LB, then waits
// until lb1 owns the VIP.
func (s *stack) startSystem(sys system) error {
	for _, bin := range []string{"keepalived", "haproxy", "conntrackd"} {
		if _, err := exec.LookPath(bin); err != nil && sys.VIP && sys.Name != "epconsole" {
			return fmt.Errorf("%s is not installed: apt-get update && apt-get install -y keepalived haproxy conntrackd (scripts/bench does it)", bin)
		}
	}
	s.sys = sys
	if err := sys.setup(s); err != nil {
		return err
	}
	for i := range s.lbs {
		if err := s.startHost(i, false); err != nil {
			return err
		}
	}
	if !sys.VIP {
		return nil
	}
	return s.waitOwner(firstOwner, time.Second, 60*time.Second)
}

// startHost starts the system's processes on LB i (only the daemon when
// daemonOnly).
func (s *stack) startHost(i int, daemonOnly bool) error {
	for _, p := range s.sys.procs(s, i) {
		if daemonOnly && !p.daemon {
			continue
		}
		if p.before != nil {
			if err := p.before(); err != nil {
				return err
			}
		}
		s.start(s.lbs[i], p.name, p.argv...)
	}
	return nil
}
