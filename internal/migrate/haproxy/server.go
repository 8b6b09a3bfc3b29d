package haproxy

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// serverFlags take no argument; serverArgs take one. Both lists hold the
// parameters the import knows but does not map (the mapped ones are
// handled in serverOpts).
var (
	serverFlags = map[string]bool{"enabled": true, "send-proxy": true, "send-proxy-v2": true, "check-send-proxy": true,
		"no-check-ssl": true, "no-ssl": true, "no-verifyhost": true, "tfo": true, "allow-0rtt": true, "agent-check": true,
		"no-backup": true, "non-stick": true, "no-agent-check": true, "no-check": true, "force-tlsv12": true,
		"force-tlsv13": true, "no-tlsv10": true, "no-tlsv11": true, "no-sslv3": true, "send-proxy-v2-ssl": true}
	serverArgs = map[string]bool{"downinter": true, "addr": true, "crt": true, "sni": true, "maxconn": true, "minconn": true,
		"maxqueue": true, "weight": true, "slowstart": true, "observe": true, "on-error": true, "on-marked-down": true,
		"on-marked-up": true, "error-limit": true, "cookie": true, "id": true, "resolvers": true, "resolve-prefer": true,
		"init-addr": true, "check-sni": true, "alpn": true, "check-alpn": true, "ciphers": true, "ciphersuites": true,
		"crl-file": true, "ssl-min-ver": true, "ssl-max-ver": true, "agent-port": true, "agent-inter": true,
		"agent-addr": true, "agent-send": true, "source": true, "namespace": true, "proto": true, "pool-max-conn": true,
		"pool-purge-delay": true, "max-reuse": true, "verifyhost": true, "track": true, "redir": true, "ws": true,
		"check-proto": true, "log-proto": true, "resolve-opts": true, "pool-low-conn": true, "tcp-ut": true}
)

// serverOpts applies server parameters to base and returns the result.
func serverOpts(base ServerOpts, args []string, line int, dl *diag.List) ServerOpts {
	o := base
	o.Line = line
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := ""
		if i+1 < len(args) {
			val = args[i+1]
		}
		needVal := func() bool {
			i++
			if val == "" {
				dl.Errorf(line, "%s needs a value", a)
				return false
			}
			return true
		}
		switch a {
		case "check":
			o.Check = true
		case "check-ssl":
			o.CheckSSL = true
		case "ssl":
			o.SSL = true
		case "backup":
			o.Backup = true
		case "disabled":
			o.Disabled = true
		case "verify":
			if needVal() {
				o.Verify = val
			}
		case "ca-file":
			if needVal() {
				o.CAFile = val
			}
		case "inter", "fastinter":
			if !needVal() {
				continue
			}
			d, ok := Duration(val)
			if !ok || d == 0 {
				dl.Errorf(line, "%s %q is not a duration", a, val)
				continue
			}
			if a == "inter" {
				o.Inter = d
			} else {
				o.FastInter = d
			}
		case "rise", "fall":
			if !needVal() {
				continue
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				dl.Errorf(line, "%s %q is not a positive count", a, val)
				continue
			}
			if a == "rise" {
				o.Rise = n
			} else {
				o.Fall = n
			}
		case "port":
			if !needVal() {
				continue
			}
			n, err := strconv.ParseUint(val, 10, 16)
			if err != nil || n == 0 {
				dl.Errorf(line, "port %q is not a port", val)
				continue
			}
			o.CheckPort = uint16(n)
		default:
			switch {
			case serverFlags[a]:
				dl.Notef(line, "server option %s: no equivalent (not carried over)", a)
			case serverArgs[a]:
				dl.Notef(line, "server option %s %s: no equivalent (not carried over)", a, val)
				i++
			default:
				dl.Warnf(line, "unknown server option %q: not carried over", a)
			}
		}
	}
	return o
}

// server reads "server NAME ADDRESS[:PORT] [options]".
func (p *Proxy) server(l Line, dl *diag.List) {
	w := l.Words
	if len(w) < 2 {
		dl.Errorf(l.Num, "server without a name and address")
		return
	}
	if len(w) < 3 {
		dl.Errorf(l.Num, "server %s without an address: write it as \"server %s 10.0.0.1:6443 check\"", w[1], w[1])
		return
	}
	s := Server{Name: w[1], Line: l.Num}
	addr, port, ok := serverAddr(w[2], l.Num, dl)
	if !ok {
		return
	}
	s.Addr, s.Port = addr, port
	s.ServerOpts = serverOpts(p.DefaultServer, w[3:], l.Num, dl)
	p.Servers = append(p.Servers, s)
}

// serverAddr parses "IP", "IP:PORT", "[IPv6]:PORT" or "ipv6@ADDR".
func serverAddr(a string, line int, dl *diag.List) (netip.Addr, uint16, bool) {
	a = strings.TrimPrefix(strings.TrimPrefix(a, "ipv4@"), "ipv6@")
	if addr, err := netip.ParseAddr(a); err == nil {
		return addr, 0, true
	}
	host, portText := a, ""
	if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, portText = strings.Trim(a[:i], "[]"), a[i+1:]
	}
	var port uint16
	if portText != "" {
		n, err := strconv.ParseUint(portText, 10, 16)
		if err != nil || n == 0 {
			dl.Errorf(line, "server address %q: %q is not a port", a, portText)
			return netip.Addr{}, 0, false
		}
		port = uint16(n)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		if strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":") {
			dl.Errorf(line, "server address %q: %q is not a valid IP address", a, host)
		} else {
			dl.Errorf(line, "server address %q is a host name: epconsole needs the apiserver's IP address (it resolves no names)", a)
		}
		return netip.Addr{}, 0, false
	}
	return addr, port, true
}
