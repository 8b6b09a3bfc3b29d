package migrate

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/migrate/diag"
	"github.com/epconsole/epconsole/internal/migrate/haproxy"
)

// service is what the import takes from haproxy.cfg: the frontend clients
// reach and the backend it forwards to.
type service struct {
	front   *haproxy.Proxy // nil when the file has no frontend or listen section
	back    *haproxy.Proxy
	port    uint16
	bindIPs []haproxy.Bind // binds on a specific address
}

// pickService chooses the frontend serving the apiservers (the one bound
// to port 6443 when there are several) and its backend.
func pickService(hp *haproxy.Config, dl *diag.List) *service {
	var fronts, backs []*haproxy.Proxy
	for _, p := range hp.Proxies {
		if p.Kind == "backend" {
			backs = append(backs, p)
		} else {
			fronts = append(fronts, p)
		}
	}
	s := &service{port: 6443}
	switch {
	case len(fronts) == 1:
		s.front = fronts[0]
	case len(fronts) > 1:
		s.front = fronts[0]
		for _, f := range fronts {
			if bindsPort(f, 6443) {
				s.front = f
				break
			}
		}
		for _, f := range fronts {
			if f != s.front {
				dl.Warnf(f.Line, "%s %s: not carried over; epconsole serves one endpoint (the import uses %s %s, line %d)", f.Kind, f.Name, s.front.Kind, s.front.Name, s.front.Line)
			}
		}
	}
	if s.front != nil {
		s.useFrontend(hp, backs, dl)
	} else if len(backs) == 1 {
		s.back = backs[0]
		dl.Warnf(1, "no frontend or listen section: backend %s is imported with port 6443", backs[0].Name)
	} else {
		dl.Errorf(1, "no frontend or listen section that says which backend serves the apiservers")
		return nil
	}
	if s.back == nil {
		return nil
	}
	for _, b := range backs {
		if b != s.back {
			dl.Warnf(b.Line, "backend %s: not used by the imported frontend, not carried over", b.Name)
		}
	}
	for _, p := range []*haproxy.Proxy{s.front, s.back} {
		if p != nil && p.Mode == "http" {
			dl.Warnf(p.ModeLine, "mode http: epconsole forwards TCP and never looks inside TLS (like mode tcp); HTTP rules do not carry over")
		}
	}
	if len(s.back.Servers) == 0 {
		dl.Errorf(s.back.Line, "%s %s has no server lines: there are no apiservers to import", s.back.Kind, s.back.Name)
		return nil
	}
	return s
}

func bindsPort(p *haproxy.Proxy, port uint16) bool {
	for _, b := range p.Binds {
		if b.Port == port {
			return true
		}
	}
	return false
}

func (s *service) useFrontend(hp *haproxy.Config, backs []*haproxy.Proxy, dl *diag.List) {
	f := s.front
	if len(f.Binds) == 0 {
		dl.Warnf(f.Line, "%s %s has no bind line: port 6443 assumed", f.Kind, f.Name)
	} else {
		s.port = f.Binds[0].Port
		if bindsPort(f, 6443) {
			s.port = 6443
		}
		for _, b := range f.Binds {
			if b.Port != s.port {
				dl.Warnf(b.Line, "bind port %d: not carried over; a VIP serves one port (%d)", b.Port, s.port)
			}
			if b.SSL {
				dl.Warnf(b.Line, "bind ... ssl: HAProxy terminates TLS here; epconsole passes TLS through, so clients see the apiservers' own certificates (they must carry the VIP and DNS names as SANs)")
			}
			if b.Addr.IsValid() {
				s.bindIPs = append(s.bindIPs, b)
			}
		}
	}
	switch {
	case f.Kind == "listen" && len(f.Servers) > 0:
		s.back = f
	case f.DefaultBackend != "":
		s.back = hp.Proxy(f.DefaultBackend, "backend", "listen")
		if s.back == nil {
			dl.Errorf(f.DefaultBackendLine, "default_backend %s: no backend section of that name", f.DefaultBackend)
		}
	case len(backs) == 1:
		s.back = backs[0]
		dl.Warnf(f.Line, "%s %s has no default_backend: backend %s, the only one, is imported", f.Kind, f.Name, backs[0].Name)
	default:
		dl.Errorf(f.Line, "%s %s has no default_backend: the import cannot tell which backend serves the apiservers", f.Kind, f.Name)
	}
}

// backends maps the server lines to backend blocks.
func (s *service) backends(file string, dl *diag.List) ([]backendPlan, []string) {
	var out []backendPlan
	var notes []string
	seen := map[string]bool{}
	noPort := false
	for _, sv := range s.back.Servers {
		name := sv.Name
		if !config.ValidName(name) {
			name = sanitizeName(name)
			dl.Notef(sv.Line, "server %s: named %q in epconsole (names are letters, digits, '.', '_' and '-')", sv.Name, name)
		}
		for seen[name] {
			name += "-x"
		}
		seen[name] = true
		port := sv.Port
		if port == 0 {
			port, noPort = s.port, true
		}
		if sv.Backup {
			dl.Warnf(sv.Line, "server %s backup: epconsole has no backup servers; it is imported as a regular backend", sv.Name)
		}
		if sv.Disabled {
			dl.Warnf(sv.Line, "server %s disabled: imported as a regular backend; drain it with the console after the switch", sv.Name)
		}
		if sv.CheckPort != 0 && sv.CheckPort != port {
			dl.Warnf(sv.Line, "server %s port %d: epconsole probes the backend's own port %d", sv.Name, sv.CheckPort, port)
		}
		if sv.SSL && !sv.CheckSSL {
			dl.Warnf(sv.Line, "server %s ssl: HAProxy re-encrypts traffic to this server; epconsole forwards the client's own TLS unchanged", sv.Name)
		}
		out = append(out, backendPlan{Name: name, Addr: sv.Addr, Port: port})
	}
	notes = append(notes, fmt.Sprintf("The apiservers, from the server lines of %s %s (%s:%d), in the same order on every node: the order feeds the slot map. [cluster-wide]", s.back.Kind, s.back.Name, file, s.back.Line))
	if noPort {
		notes = append(notes, fmt.Sprintf("Servers written without a port take the frontend's port %d, as HAProxy does.", s.port))
	}
	return out, notes
}

// balance maps HAProxy's balance algorithm to the slot map's mode.
func (s *service) balance(file string, dl *diag.List) (string, []string) {
	p := s.back
	intro := "epconsole has one way to spread flows: a consistent (Maglev) hash of each new flow over the healthy backends, the same on every node, so a VIP move or a lost backend moves only the flows it must."
	switch {
	case p.Balance == "":
		return "connection", []string{intro, "HAProxy's default balance roundrobin has no equivalent; mode \"connection\" hashes source address and port, which spreads connections about as evenly. [cluster-wide]"}
	case p.Balance == "source":
		return "source", []string{intro, fmt.Sprintf("From balance source (%s:%d): mode \"source\" hashes the client address only, so a client sticks to one backend. [cluster-wide]", file, p.BalanceLine)}
	case p.Balance == "roundrobin" || p.Balance == "static-rr" || p.Balance == "leastconn" || p.Balance == "first" || p.Balance == "random" || strings.HasPrefix(p.Balance, "random("):
		dl.Notef(p.BalanceLine, "balance %s: no equivalent; the slot map hashes each connection instead", p.Balance)
		return "connection", []string{intro, fmt.Sprintf("balance %s (%s:%d) has no equivalent: there is no rotation or connection count; mode \"connection\" hashes source address and port, which spreads connections about as evenly. [cluster-wide]", p.Balance, file, p.BalanceLine)}
	default:
		dl.Warnf(p.BalanceLine, "balance %s: no equivalent (epconsole does not look inside the connection); the slot map hashes each connection instead", p.Balance)
		return "connection", []string{intro, fmt.Sprintf("balance %s (%s:%d) has no equivalent; mode \"connection\" hashes source address and port. [cluster-wide]", p.Balance, file, p.BalanceLine)}
	}
}

// sanitizeName turns s into a valid name.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (b.Len() > 0 && (r == '-' || r == '_' || r == '.')) {
			b.WriteRune(r)
		} else if b.Len() > 0 {
			b.WriteByte('-')
		}
		if b.Len() == 63 {
			break
		}
	}
	if b.Len() == 0 {
		return "backend"
	}
	return b.String()
}

// derivedName names a node by its address: "lb-<last octet>" when that is
// unique among all, else "lb-" and the whole address.
func derivedName(a netip.Addr, all []netip.Addr) string {
	short := func(x netip.Addr) string {
		if x.Is4() {
			return fmt.Sprintf("lb-%d", x.As4()[3])
		}
		b := x.As16()
		return fmt.Sprintf("lb-%x", uint16(b[14])<<8|uint16(b[15]))
	}
	for _, o := range all {
		if o != a && short(o) == short(a) {
			return sanitizeName("lb-" + strings.NewReplacer(".", "-", ":", "-").Replace(a.String()))
		}
	}
	return short(a)
}
