package keepalived

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// Config is what an import needs from one keepalived.conf.
type Config struct {
	File      string
	Scripts   map[string]*Script
	Instances []*Instance
}

// Script is a vrrp_script block.
type Script struct {
	Name     string
	Line     int
	Command  string
	Interval float64 // seconds; 0 = not set
	Weight   int
	Fall     int
	Rise     int
}

// Addr is an address with the line it was read from.
type Addr struct {
	Addr netip.Addr
	Line int
}

// VIP is one virtual_ipaddress entry.
type VIP struct {
	Addr   netip.Addr
	Prefix int // -1 when none was written
	Dev    string
	Label  string
	Line   int
}

// Instance is a vrrp_instance block. Zero values mean "not set".
type Instance struct {
	Name            string
	Line            int
	State           string
	StateLine       int
	Interface       string
	InterfaceLine   int
	VirtualRouterID int
	Priority        int
	PriorityLine    int
	AdvertInt       float64 // seconds
	AdvertIntLine   int
	NoPreempt       bool
	NoPreemptLine   int
	AuthType        string
	AuthPass        string
	AuthLine        int
	UnicastSrc      Addr
	UnicastPeers    []Addr
	VIPs            []VIP
	VIPLine         int // the virtual_ipaddress keyword; 0 = missing
	TrackScripts    []string
	TrackScriptLine int
}

// Read parses src (named file in diagnostics) and interprets it. Keywords
// without an epconsole equivalent become notes, unknown keywords warnings,
// and malformed values errors, each at its line.
func Read(file string, src []byte) (*Config, []diag.Diagnostic) {
	dl := &diag.List{File: file}
	stmts := Parse(src, dl)
	c := &Config{File: file, Scripts: map[string]*Script{}}
	for _, s := range stmts {
		switch s.Keyword {
		case "global_defs":
			for _, g := range s.Block {
				dl.Notef(g.Line, "global_defs %s: no equivalent in epconsole (not carried over)", g.Keyword)
			}
		case "vrrp_script":
			c.readScript(s, dl)
		case "vrrp_instance":
			c.readInstance(s, dl)
		case "static_ipaddress":
			dl.Warnf(s.Line, "static_ipaddress: not carried over; it puts the addresses on this node at every boot, but epconsole adds the VIP only on the node that owns it (a VIP configured statically on every node would answer on all of them)")
		case "vrrp_sync_group", "virtual_server", "virtual_server_group", "static_routes", "static_rules", "include", "linkbeat_interfaces", "vrrp_track_file", "track_file", "track_process", "vrrp_track_process", "garp_group", "net_namespace", "instance":
			dl.Warnf(s.Line, "%s: not carried over; epconsole has no equivalent", s.Keyword)
		default:
			dl.Errorf(s.Line, "unknown section %q: expected global_defs, vrrp_script or vrrp_instance", s.Keyword)
		}
	}
	if len(c.Instances) == 0 && !diag.HasErrors(dl.Diags) {
		dl.Errorf(1, "no vrrp_instance: the file defines no VIP to import")
	}
	return c, dl.Diags
}

func (c *Config) readScript(s *Stmt, dl *diag.List) {
	sc := &Script{Line: s.Line}
	if len(s.Args) > 0 {
		sc.Name = s.Args[0]
	} else {
		dl.Errorf(s.Line, "vrrp_script without a name")
	}
	if !s.HasBlock {
		dl.Errorf(s.Line, "vrrp_script %s has no { } block", sc.Name)
	}
	for _, k := range s.Block {
		switch k.Keyword {
		case "script":
			sc.Command = strings.Join(k.Args, " ")
		case "interval":
			sc.Interval = number(k, dl)
		case "weight":
			sc.Weight = int(signed(k, dl))
		case "fall":
			sc.Fall = int(number(k, dl))
		case "rise":
			sc.Rise = int(number(k, dl))
		case "timeout", "user", "init_fail":
			dl.Notef(k.Line, "vrrp_script %s %s: no equivalent (epconsole runs no scripts)", sc.Name, k.Keyword)
		default:
			dl.Warnf(k.Line, "unknown keyword %q in vrrp_script %s: not carried over", k.Keyword, sc.Name)
		}
	}
	c.Scripts[sc.Name] = sc
}

func (c *Config) readInstance(s *Stmt, dl *diag.List) {
	in := &Instance{Line: s.Line}
	if len(s.Args) > 0 {
		in.Name = s.Args[0]
	}
	if !s.HasBlock {
		dl.Errorf(s.Line, "vrrp_instance %s has no { } block", in.Name)
	}
	for _, k := range s.Block {
		switch k.Keyword {
		case "state":
			in.State, in.StateLine = strings.ToUpper(arg(k, dl)), k.Line
			if in.State != "MASTER" && in.State != "BACKUP" {
				dl.Errorf(k.Line, "state %q: expected MASTER or BACKUP", in.State)
			}
		case "interface":
			in.Interface, in.InterfaceLine = arg(k, dl), k.Line
		case "virtual_router_id":
			in.VirtualRouterID = int(number(k, dl))
		case "priority":
			in.Priority, in.PriorityLine = int(number(k, dl)), k.Line
			if in.Priority < 1 || in.Priority > 255 {
				dl.Errorf(k.Line, "priority %d: expected 1 to 255", in.Priority)
			}
		case "advert_int":
			in.AdvertInt, in.AdvertIntLine = number(k, dl), k.Line
		case "nopreempt":
			in.NoPreempt, in.NoPreemptLine = true, k.Line
		case "authentication":
			in.AuthLine = k.Line
			for _, a := range k.Block {
				switch a.Keyword {
				case "auth_type":
					in.AuthType = arg(a, dl)
				case "auth_pass":
					in.AuthPass = arg(a, dl)
				default:
					dl.Warnf(a.Line, "unknown keyword %q in authentication: not carried over", a.Keyword)
				}
			}
		case "unicast_src_ip":
			in.UnicastSrc = addr(k, arg(k, dl), dl)
		case "unicast_peer":
			for _, p := range k.Block {
				in.UnicastPeers = append(in.UnicastPeers, addr(p, p.Keyword, dl))
				if len(p.Args) > 0 {
					dl.Notef(p.Line, "unicast_peer %s %s: the options after the address are not carried over", p.Keyword, strings.Join(p.Args, " "))
				}
			}
		case "virtual_ipaddress":
			in.VIPLine = k.Line
			for _, v := range k.Block {
				in.VIPs = append(in.VIPs, vip(v, dl))
			}
		case "track_script":
			in.TrackScriptLine = k.Line
			for _, t := range k.Block {
				in.TrackScripts = append(in.TrackScripts, t.Keyword)
			}
		case "preempt_delay", "garp_master_delay", "garp_master_refresh", "garp_master_repeat", "garp_lower_prio_repeat",
			"track_interface", "notify", "notify_master", "notify_backup", "notify_fault", "notify_stop", "smtp_alert",
			"dont_track_primary", "use_vmac", "vmac_xmit_base", "mcast_src_ip", "virtual_ipaddress_excluded", "virtual_routes",
			"virtual_rules", "lvs_sync_daemon_interface", "debug", "version", "accept", "no_accept", "skip_check_adv_addr",
			"strict_mode", "track_process", "track_file", "native_ipv6", "preempt":
			dl.Notef(k.Line, "vrrp_instance %s %s: no equivalent in epconsole (not carried over)", in.Name, k.Keyword)
		default:
			dl.Warnf(k.Line, "unknown keyword %q in vrrp_instance %s: not carried over", k.Keyword, in.Name)
		}
	}
	if in.VIPLine == 0 {
		dl.Errorf(s.Line, "vrrp_instance %s has no virtual_ipaddress block: there is no VIP to import", in.Name)
	} else if len(in.VIPs) == 0 {
		dl.Errorf(in.VIPLine, "virtual_ipaddress of vrrp_instance %s is empty", in.Name)
	}
	c.Instances = append(c.Instances, in)
}

// arg returns the statement's single argument.
func arg(k *Stmt, dl *diag.List) string {
	if len(k.Args) == 0 {
		dl.Errorf(k.Line, "%s needs a value", k.Keyword)
		return ""
	}
	if len(k.Args) > 1 {
		dl.Warnf(k.Line, "%s: extra words %q ignored", k.Keyword, strings.Join(k.Args[1:], " "))
	}
	return k.Args[0]
}

// number reads the statement's argument as a number of at least 0.
func number(k *Stmt, dl *diag.List) float64 {
	f := signed(k, dl)
	if f < 0 {
		dl.Errorf(k.Line, "%s %g: expected a number of at least 0", k.Keyword, f)
		return 0
	}
	return f
}

// signed reads the statement's argument as a number.
func signed(k *Stmt, dl *diag.List) float64 {
	s := arg(k, dl)
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		dl.Errorf(k.Line, "%s %q: expected a number", k.Keyword, s)
		return 0
	}
	return f
}

func addr(k *Stmt, s string, dl *diag.List) Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if s != "" {
			dl.Errorf(k.Line, "%q is not an IP address", s)
		}
		return Addr{Line: k.Line}
	}
	return Addr{Addr: a, Line: k.Line}
}

// vip reads "ADDR[/PREFIX] [dev IF] [label L] [scope S] ...".
func vip(k *Stmt, dl *diag.List) VIP {
	v := VIP{Prefix: -1, Line: k.Line}
	if p, err := netip.ParsePrefix(k.Keyword); err == nil {
		v.Addr, v.Prefix = p.Addr(), p.Bits()
	} else if a, err := netip.ParseAddr(k.Keyword); err == nil {
		v.Addr = a
	} else {
		dl.Errorf(k.Line, "virtual_ipaddress entry %q is not an IP address", k.Keyword)
	}
	for i := 0; i < len(k.Args); i++ {
		opt := k.Args[i]
		val := ""
		if i+1 < len(k.Args) {
			val = k.Args[i+1]
		}
		switch opt {
		case "dev":
			v.Dev = val
			i++
		case "label":
			v.Label = val
			dl.Notef(k.Line, "virtual_ipaddress label %s: no equivalent (epconsole adds the VIP without a label)", val)
			i++
		case "scope", "brd", "broadcast", "metric", "preferred_lft":
			dl.Notef(k.Line, "virtual_ipaddress %s %s: no equivalent (not carried over)", opt, val)
			i++
		case "no_track", "home", "nodad", "noprefixroute", "autojoin":
			dl.Notef(k.Line, "virtual_ipaddress %s: no equivalent (not carried over)", opt)
		default:
			dl.Warnf(k.Line, "unknown virtual_ipaddress option %q: not carried over", opt)
		}
	}
	return v
}
