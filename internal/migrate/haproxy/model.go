package haproxy

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

// Config is what an import needs from one haproxy.cfg.
type Config struct {
	File string
	// Proxies are the frontend, backend and listen sections in file order.
	Proxies []*Proxy
}

// Proxy finds a proxy by name among kinds ("backend", "listen", ...).
func (c *Config) Proxy(name string, kinds ...string) *Proxy {
	for _, p := range c.Proxies {
		for _, k := range kinds {
			if p.Name == name && p.Kind == k {
				return p
			}
		}
	}
	return nil
}

// Check is the health-check kind a proxy sets with option tcp-check,
// option httpchk or option ssl-hello-chk ("" when none: a plain connect).
type Check struct {
	Kind   string // "", "tcp-check", "httpchk", "ssl-hello-chk"
	Method string
	Path   string
	SSL    bool // tcp-check connect ssl
	Line   int
}

// ServerOpts are the check settings of a server or default-server line.
// Zero values mean "not set".
type ServerOpts struct {
	Check     bool
	CheckSSL  bool
	SSL       bool
	Verify    string
	CAFile    string
	Inter     time.Duration
	FastInter time.Duration
	Rise      int
	Fall      int
	CheckPort uint16
	Backup    bool
	Disabled  bool
	Line      int // the last line that set any of these
}

// Server is a server line.
type Server struct {
	ServerOpts
	Name string
	Addr netip.Addr
	Port uint16 // 0 when the line gives none
	Line int
}

// Bind is one address of a bind line.
type Bind struct {
	Addr netip.Addr // invalid for "*" or an empty address: every address
	Port uint16
	SSL  bool
	Line int
}

// Proxy is a frontend, backend, listen or defaults section with what it
// inherited from the defaults section before it.
type Proxy struct {
	Kind, Name         string
	Line               int
	Mode               string
	ModeLine           int
	Binds              []Bind
	DefaultBackend     string
	DefaultBackendLine int
	Balance            string
	BalanceLine        int
	Check              Check
	HTTPExpect         string
	HTTPExpectLine     int
	DefaultServer      ServerOpts
	Servers            []Server
	TimeoutCheck       time.Duration
}

// Read parses src (named file in diagnostics) and interprets it.
func Read(file string, src []byte) (*Config, []diag.Diagnostic) {
	dl := &diag.List{File: file}
	c := &Config{File: file}
	defaults := &Proxy{Kind: "defaults"}
	for _, s := range Split(src, dl) {
		switch s.Kind {
		case "global":
			for _, l := range s.Lines {
				dl.Notef(l.Num, "global %s: no equivalent in epconsole (not carried over)", l.Words[0])
			}
		case "defaults":
			defaults = &Proxy{Kind: "defaults", Name: s.Name, Line: s.Line}
			for _, l := range s.Lines {
				defaults.line(l, dl)
			}
		case "frontend", "backend", "listen":
			p := &Proxy{Kind: s.Kind, Name: s.Name, Line: s.Line, Mode: defaults.Mode, ModeLine: defaults.ModeLine,
				Balance: defaults.Balance, BalanceLine: defaults.BalanceLine, Check: defaults.Check,
				HTTPExpect: defaults.HTTPExpect, HTTPExpectLine: defaults.HTTPExpectLine,
				DefaultServer: defaults.DefaultServer, TimeoutCheck: defaults.TimeoutCheck}
			if s.Kind != "backend" {
				p.DefaultBackend, p.DefaultBackendLine = defaults.DefaultBackend, defaults.DefaultBackendLine
			}
			for _, l := range s.Lines {
				p.line(l, dl)
			}
			c.Proxies = append(c.Proxies, p)
		}
	}
	return c, dl.Diags
}

// noEquivalent are proxy keywords the import knows and does not map.
var noEquivalent = map[string]string{
	"log": "epconsole logs with its own logger", "maxconn": "the kernel forwards, there is no proxy connection limit",
	"retries": "no proxy retries: the client reconnects", "acl": "no ACLs", "tcp-request": "no request rules",
	"tcp-response": "no response rules", "http-request": "no HTTP layer", "http-response": "no HTTP layer",
	"stick-table": "no stick tables (balance.mode = \"source\" keeps a client on one backend)", "stick": "no stick tables",
	"hash-type": "the slot map is always a consistent hash", "fullconn": "no connection limits",
	"errorfile": "no HTTP layer", "stats": "status, check and /metrics replace the stats page",
	"monitor-uri": "epconsole serves /metrics", "description": "not kept", "id": "not kept", "backlog": "no listener",
	"source": "the kernel picks the source address", "email-alert": "no e-mail alerts", "log-format": "no proxy logs",
	"capture": "no HTTP layer", "cookie": "no HTTP layer", "compression": "no HTTP layer", "rate-limit": "no rate limits",
	"http-reuse": "no HTTP layer", "filter": "no filters", "unique-id-format": "no HTTP layer", "redirect": "no HTTP layer",
	"external-check": "epconsole probes backends itself", "enabled": "always enabled", "disabled": "not kept",
}

func (p *Proxy) line(l Line, dl *diag.List) {
	w := l.Words
	kw, args := w[0], w[1:]
	switch kw {
	case "mode":
		if len(args) == 0 {
			dl.Errorf(l.Num, "mode needs a value")
			return
		}
		p.Mode, p.ModeLine = args[0], l.Num
	case "bind":
		p.bind(l, dl)
	case "default_backend":
		if len(args) == 0 {
			dl.Errorf(l.Num, "default_backend needs a backend name")
			return
		}
		p.DefaultBackend, p.DefaultBackendLine = args[0], l.Num
	case "use_backend":
		dl.Warnf(l.Num, "use_backend: conditional routing has no equivalent; only default_backend is imported")
	case "balance":
		if len(args) == 0 {
			dl.Errorf(l.Num, "balance needs an algorithm")
			return
		}
		p.Balance, p.BalanceLine = args[0], l.Num
	case "option", "no":
		p.option(l, dl)
	case "http-check":
		p.httpCheck(l, dl)
	case "tcp-check":
		if len(args) > 0 && args[0] == "connect" {
			for _, a := range args[1:] {
				if a == "ssl" {
					p.Check.SSL = true
				}
			}
			dl.Notef(l.Num, "tcp-check connect: mapped to the health check kind")
			return
		}
		dl.Notef(l.Num, "tcp-check %s: no equivalent (epconsole's checks are connect, TLS handshake or HTTPS GET)", strings.Join(args, " "))
	case "default-server":
		p.DefaultServer = serverOpts(p.DefaultServer, args, l.Num, dl)
	case "server":
		p.server(l, dl)
	case "server-template":
		dl.Errorf(l.Num, "server-template: list each apiserver with its IP address (epconsole resolves no names)")
	case "timeout":
		if len(args) >= 2 && args[0] == "check" {
			d, ok := Duration(args[1])
			if !ok {
				dl.Errorf(l.Num, "timeout check %q is not a duration", args[1])
				return
			}
			p.TimeoutCheck = d
			return
		}
		what := ""
		if len(args) > 0 {
			what = args[0]
		}
		dl.Notef(l.Num, "timeout %s: no equivalent (epconsole does not proxy connections; the kernel forwards them)", what)
	default:
		if why, ok := noEquivalent[kw]; ok {
			dl.Notef(l.Num, "%s: no equivalent (%s)", kw, why)
			return
		}
		dl.Warnf(l.Num, "unknown keyword %q in %s %s: not carried over", kw, p.Kind, p.Name)
	}
}

func (p *Proxy) option(l Line, dl *diag.List) {
	w := l.Words
	if w[0] == "no" {
		dl.Notef(l.Num, "%s: no equivalent (not carried over)", strings.Join(w, " "))
		return
	}
	if len(w) < 2 {
		dl.Errorf(l.Num, "option needs a name")
		return
	}
	switch w[1] {
	case "tcp-check", "ssl-hello-chk":
		p.Check = Check{Kind: w[1], Line: l.Num}
	case "httpchk":
		c := Check{Kind: "httpchk", Method: "OPTIONS", Path: "/", Line: l.Num}
		rest := w[2:]
		if len(rest) == 1 {
			c.Path = rest[0]
		} else if len(rest) >= 2 {
			c.Method, c.Path = rest[0], rest[1]
		}
		p.Check = c
	case "tcplog", "httplog", "dontlognull", "log-health-checks", "redispatch", "forwardfor", "http-server-close",
		"tcpka", "clitcpka", "srvtcpka", "splice-auto", "splice-request", "splice-response", "abortonclose",
		"allbackups", "persist", "log-separate-errors", "logasap", "http-keep-alive", "httpclose", "dontlog-normal":
		dl.Notef(l.Num, "option %s: no equivalent (not carried over)", w[1])
	case "external-check", "mysql-check", "pgsql-check", "redis-check", "smtpchk", "ldap-check", "spop-check":
		dl.Warnf(l.Num, "option %s: no equivalent; epconsole's checks are tcp, tls or https", w[1])
	default:
		dl.Warnf(l.Num, "unknown option %q: not carried over", w[1])
	}
}

func (p *Proxy) httpCheck(l Line, dl *diag.List) {
	args := l.Words[1:]
	if len(args) == 0 {
		dl.Errorf(l.Num, "http-check needs an action")
		return
	}
	switch args[0] {
	case "send":
		for i := 1; i+1 < len(args); i++ {
			switch args[i] {
			case "meth":
				p.Check.Method = args[i+1]
			case "uri":
				p.Check.Path = args[i+1]
			}
		}
		dl.Notef(l.Num, "http-check send: its method and uri are mapped to the health check")
	case "expect":
		p.HTTPExpect, p.HTTPExpectLine = strings.Join(args[1:], " "), l.Num
	case "connect":
		for _, a := range args[1:] {
			if a == "ssl" {
				p.Check.SSL = true
			}
		}
	default:
		dl.Notef(l.Num, "http-check %s: no equivalent (not carried over)", args[0])
	}
}

func (p *Proxy) bind(l Line, dl *diag.List) {
	if len(l.Words) < 2 {
		dl.Errorf(l.Num, "bind needs an address")
		return
	}
	ssl := false
	for _, o := range l.Words[2:] {
		if o == "ssl" {
			ssl = true
		}
	}
	for _, a := range strings.Split(l.Words[1], ",") {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "ipv4@"), "ipv6@")
		i := strings.LastIndexByte(a, ':')
		if i < 0 {
			dl.Errorf(l.Num, "bind %q has no port", a)
			continue
		}
		host, portText := strings.Trim(a[:i], "[]"), a[i+1:]
		port, err := strconv.ParseUint(portText, 10, 16)
		if err != nil || port == 0 {
			dl.Errorf(l.Num, "bind %q: %q is not a port (port ranges are not supported)", a, portText)
			continue
		}
		b := Bind{Port: uint16(port), SSL: ssl, Line: l.Num}
		if host != "" && host != "*" && host != "0.0.0.0" && host != "::" {
			addr, err := netip.ParseAddr(host)
			if err != nil {
				dl.Errorf(l.Num, "bind %q: %q is not an IP address", a, host)
				continue
			}
			b.Addr = addr
		}
		p.Binds = append(p.Binds, b)
	}
}

// Duration parses an HAProxy time: a number with an optional unit (us,
// ms, s, m, h, d); no unit means milliseconds.
func Duration(s string) (time.Duration, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[s[i:]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}
