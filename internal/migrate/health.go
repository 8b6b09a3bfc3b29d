package migrate

import (
	"fmt"
	"time"

	"github.com/epconsole/epconsole/internal/migrate/diag"
	"github.com/epconsole/epconsole/internal/migrate/haproxy"
)

// epconsole's health defaults (internal/config documents them).
const (
	defInterval     = time.Second
	defFastInterval = 200 * time.Millisecond
	defTimeout      = 500 * time.Millisecond
	defRise         = 2
	defFall         = 2
)

// health maps the backend's check options and the servers' check timing
// to the health block, and the check's TLS verification to tls.ca_file.
func (s *service) health(file string, dl *diag.List) (healthPlan, string, []string) {
	p := s.back
	h := healthPlan{Path: "/readyz", Interval: defInterval, FastInterval: defFastInterval, Timeout: defTimeout, Rise: defRise, Fall: defFall}
	var first *haproxy.Server
	checked := 0
	anySSL := false
	for i := range p.Servers {
		sv := &p.Servers[i]
		if !sv.Check {
			continue
		}
		checked++
		anySSL = anySSL || sv.CheckSSL || p.Check.SSL
		if first == nil {
			first = sv
			continue
		}
		if sv.Inter != first.Inter || sv.FastInter != first.FastInter || sv.Rise != first.Rise || sv.Fall != first.Fall {
			dl.Warnf(sv.Line, "server %s: its check timing differs from server %s's (line %d); epconsole has one health block, which takes %s's", sv.Name, first.Name, first.Line, first.Name)
		}
	}
	where := fmt.Sprintf("%s:%d", file, p.Check.Line)
	var kindNote string
	switch {
	case p.Check.Kind == "httpchk":
		h.Kind, h.Path = "https", p.Check.Path
		kindNote = fmt.Sprintf("From option httpchk %s %s (%s): kind \"https\" sends GET %s over TLS; 2xx is up, and 401/403 count as reachable, never as down.", p.Check.Method, p.Check.Path, where, h.Path)
		if p.Check.Method != "GET" {
			dl.Notef(p.Check.Line, "option httpchk %s: epconsole always sends GET", p.Check.Method)
		}
		if !anySSL {
			dl.Warnf(p.Check.Line, "option httpchk without check-ssl sends plain HTTP, which an apiserver port refuses; epconsole's https check uses TLS")
		}
		if len(h.Path) == 0 || h.Path[0] != '/' {
			dl.Warnf(p.Check.Line, "option httpchk path %q does not start with '/': /readyz is used", h.Path)
			h.Path = "/readyz"
		}
		if p.HTTPExpect != "" {
			dl.Notef(p.HTTPExpectLine, "http-check expect %s: epconsole counts 2xx as up and 401/403 as reachable (not carried over)", p.HTTPExpect)
		}
	case p.Check.Kind == "ssl-hello-chk" || anySSL:
		h.Kind = "tls"
		kindNote = "From option ssl-hello-chk / check-ssl: kind \"tls\" completes a TLS handshake with each backend."
	case p.Check.Kind == "tcp-check":
		h.Kind = "tcp"
		kindNote = fmt.Sprintf("From option tcp-check (%s): kind \"tcp\" only connects. \"https\" (GET /readyz) would also notice an apiserver that accepts connections but is not ready.", where)
	default:
		h.Kind = "tcp"
		kindNote = "From check on the server lines (a plain connect in HAProxy): kind \"tcp\" only connects. \"https\" (GET /readyz) would also notice an apiserver that accepts connections but is not ready."
	}
	if checked == 0 {
		dl.Warnf(p.Line, "no server of %s %s has check: HAProxy did not probe them; epconsole always probes every backend", p.Kind, p.Name)
		kindNote = "No server had check (HAProxy did not probe); epconsole always probes: kind \"tcp\" connects."
		h.Kind = "tcp"
	}
	notes := []string{"How each node probes every backend (HAProxy's check). epconsole probes the apiservers itself; keepalived's track_script, which watched the local haproxy process, is not needed.", kindNote}

	ca := ""
	tlsNotes := []string{"What the certificate check expects of the apiservers' certificates; ca_file is also the chain the tls and https probes verify (never the host name)."}
	if first != nil {
		notes = append(notes, s.timing(first, &h, file, dl)...)
		switch {
		case first.Verify == "none":
			tlsNotes = append(tlsNotes, fmt.Sprintf("From verify none (%s:%d): no ca_file, the chain is not checked. Set ca_file = \"/etc/kubernetes/pki/ca.crt\" to check it.", file, first.Line))
		case first.CAFile != "":
			ca = first.CAFile
			tlsNotes = append(tlsNotes, fmt.Sprintf("From ca-file %s (%s:%d).", first.CAFile, file, first.Line))
		case first.CheckSSL:
			tlsNotes = append(tlsNotes, "check-ssl without ca-file: no ca_file, the chain is not checked. Set ca_file = \"/etc/kubernetes/pki/ca.crt\" to check it.")
		default:
			tlsNotes = append(tlsNotes, "Empty: the chain is not checked. Set ca_file = \"/etc/kubernetes/pki/ca.crt\" to check it.")
		}
	}
	h.Note = notes
	return h, ca, tlsNotes
}

// timing maps inter, fastinter, rise, fall and timeout check.
func (s *service) timing(sv *haproxy.Server, h *healthPlan, file string, dl *diag.List) []string {
	var mapped []string
	if sv.Inter > 0 {
		if sv.Inter < 10*time.Millisecond {
			dl.Warnf(sv.Line, "inter %s: epconsole's shortest interval is 10ms", sv.Inter)
			sv.Inter = 10 * time.Millisecond
		}
		h.Interval = sv.Inter
		mapped = append(mapped, "inter "+duration(sv.Inter)+" -> interval")
	}
	if sv.FastInter > 0 {
		h.FastInterval = min(max(sv.FastInter, 10*time.Millisecond), h.Interval)
		mapped = append(mapped, "fastinter "+duration(sv.FastInter)+" -> fast_interval")
	} else {
		h.FastInterval = min(h.FastInterval, h.Interval)
	}
	if sv.Rise > 0 {
		h.Rise = min(sv.Rise, 100)
		mapped = append(mapped, fmt.Sprintf("rise %d -> rise", sv.Rise))
	}
	if sv.Fall > 0 {
		h.Fall = min(sv.Fall, 100)
		mapped = append(mapped, fmt.Sprintf("fall %d -> fall", sv.Fall))
	}
	if t := s.back.TimeoutCheck; t > 0 && t < h.Interval {
		h.Timeout = t
		mapped = append(mapped, "timeout check "+duration(t)+" -> timeout")
	} else if h.Timeout >= h.Interval {
		h.Timeout = h.Interval / 2
	}
	worst := h.Interval + h.Timeout + time.Duration(h.Fall-1)*(h.FastInterval+h.Timeout)
	var notes []string
	if len(mapped) > 0 {
		notes = append(notes, fmt.Sprintf("Timing from %s:%d: %s. Unset ones take epconsole's defaults (interval 1s, fast_interval 200ms, timeout 500ms, rise 2, fall 2), not HAProxy's (inter 2s, rise 2, fall 3).", file, sv.Line, join(mapped)))
	} else {
		notes = append(notes, "HAProxy's default timing (inter 2s, rise 2, fall 3: a dead backend is out after 4 to 6 s) is not carried over; these are epconsole's defaults.")
	}
	notes = append(notes, fmt.Sprintf("A dead backend is out after at most interval + timeout + (fall-1) x (fast_interval + timeout) = %s; epconsole's defaults take 2.2s.", worst))
	return notes
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
