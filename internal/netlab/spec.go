package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
)

// Role says what a host is for; it decides the host's default address.
type Role string

// The host roles.
const (
	RoleClient  Role = "client"
	RoleLB      Role = "lb"
	RoleBackend Role = "backend"
)

// HostLink is the name of every host's interface to the switch.
const HostLink = "eth0"

// VIPIndex is the host part of the lab's VIP (.100 and ::100); no host gets it.
const VIPIndex = 100

// Spec describes a topology.
type Spec struct {
	// Prefix starts every namespace name ("<prefix>-<host>", "<prefix>-sw"):
	// 1 to 4 characters, a lower-case letter then letters or digits.
	Prefix string
	// IPv4 is a /24 inside 198.18.0.0/15; IPv6 a /64 inside fd00:198:18::/48.
	IPv4 netip.Prefix
	IPv6 netip.Prefix
	// Hosts are the namespaces attached to the switch.
	Hosts []HostSpec
	// DNSName is the endpoint name put into default certificates
	// (default "api.<prefix>.epconsole.test").
	DNSName string
	// Dir holds certificates, control sockets and child logs. When empty a
	// fresh directory named netlab-<prefix>-* is made under os.TempDir and
	// removed by Close; a given Dir is created if needed and left in place.
	Dir string
}

// HostSpec describes one host.
type HostSpec struct {
	// Name: 1 to 10 characters, a lower-case letter then letters or digits;
	// "sw" is taken by the switch.
	Name string
	Role Role
	// Index is the last byte of the IPv4 address; the IPv6 address ends in
	// the same digits (index 21 is .21 and ::21). Zero picks the first free
	// index of the role: client .10 then .31-.39, lb .11-.19, backend .21-.29.
	Index int
}

var (
	allowed4     = netip.MustParsePrefix("198.18.0.0/15")
	allowed6     = netip.MustParsePrefix("fd00:198:18::/48")
	loopback4    = netip.MustParsePrefix("127.0.0.0/8")
	prefixRE     = regexp.MustCompile(`^[a-z][a-z0-9]{0,3}$`)
	hostNameRE   = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)
	switchSuffix = "sw"
)

// roleIndexes lists the indexes a role takes by default, in order.
func roleIndexes(r Role) []int {
	var out []int
	switch r {
	case RoleClient:
		out = append(out, 10)
		for i := 31; i <= 39; i++ {
			out = append(out, i)
		}
	case RoleLB:
		for i := 11; i <= 19; i++ {
			out = append(out, i)
		}
	case RoleBackend:
		for i := 21; i <= 29; i++ {
			out = append(out, i)
		}
	}
	return out
}

// AllowedAddr reports whether a may be used or targeted by a lab:
// 198.18.0.0/15, fd00:198:18::/48 or 127.0.0.0/8.
func AllowedAddr(a netip.Addr) bool {
	a = a.Unmap()
	return allowed4.Contains(a) || allowed6.Contains(a) || loopback4.Contains(a)
}

// ValidPrefix checks a namespace name prefix.
func ValidPrefix(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("prefix %q: want 1 to 4 characters, a lower-case letter then letters or digits", prefix)
	}
	return nil
}

// plannedHost is a host with its addresses decided.
type plannedHost struct {
	HostSpec
	Addr4, Addr6 netip.Addr
}

// plan validates a spec and assigns every host its addresses. It is pure.
func plan(s Spec) ([]plannedHost, error) {
	var errs []error
	if err := ValidPrefix(s.Prefix); err != nil {
		errs = append(errs, err)
	}
	switch {
	case !s.IPv4.IsValid() || !s.IPv4.Addr().Is4():
		errs = append(errs, fmt.Errorf("IPv4 prefix %v: want an IPv4 /24 inside %v", s.IPv4, allowed4))
	case s.IPv4.Bits() != 24 || s.IPv4 != s.IPv4.Masked() || !allowed4.Contains(s.IPv4.Addr()):
		errs = append(errs, fmt.Errorf("IPv4 prefix %v: want a /24 network inside %v", s.IPv4, allowed4))
	}
	switch {
	case !s.IPv6.IsValid() || !s.IPv6.Addr().Is6() || s.IPv6.Addr().Is4In6():
		errs = append(errs, fmt.Errorf("IPv6 prefix %v: want an IPv6 /64 inside %v", s.IPv6, allowed6))
	case s.IPv6.Bits() != 64 || s.IPv6 != s.IPv6.Masked() || !allowed6.Contains(s.IPv6.Addr()):
		errs = append(errs, fmt.Errorf("IPv6 prefix %v: want a /64 network inside %v", s.IPv6, allowed6))
	}
	if len(s.Hosts) == 0 {
		errs = append(errs, errors.New("no hosts"))
	}
	names := map[string]bool{}
	used := map[int]string{VIPIndex: "the VIP"}
	for _, h := range s.Hosts {
		switch {
		case !hostNameRE.MatchString(h.Name):
			errs = append(errs, fmt.Errorf("host %q: want 1 to 10 characters, a lower-case letter then letters or digits", h.Name))
		case h.Name == switchSuffix:
			errs = append(errs, fmt.Errorf("host %q: the name is taken by the switch", h.Name))
		case names[h.Name]:
			errs = append(errs, fmt.Errorf("host %q: duplicate name", h.Name))
		}
		names[h.Name] = true
		if h.Role != RoleClient && h.Role != RoleLB && h.Role != RoleBackend {
			errs = append(errs, fmt.Errorf("host %q: unknown role %q (want client, lb or backend)", h.Name, h.Role))
		}
		if h.Index == 0 {
			continue
		}
		if h.Index < 1 || h.Index > 254 {
			errs = append(errs, fmt.Errorf("host %q: index %d outside 1-254", h.Name, h.Index))
			continue
		}
		if other, ok := used[h.Index]; ok {
			errs = append(errs, fmt.Errorf("host %q: index %d already taken by %s", h.Name, h.Index, other))
			continue
		}
		used[h.Index] = fmt.Sprintf("host %q", h.Name)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]plannedHost, 0, len(s.Hosts))
	for _, h := range s.Hosts {
		if h.Index == 0 {
			for _, i := range roleIndexes(h.Role) {
				if _, ok := used[i]; !ok {
					h.Index = i
					used[i] = h.Name
					break
				}
			}
			if h.Index == 0 {
				errs = append(errs, fmt.Errorf("host %q: no free index left for role %s; give one", h.Name, h.Role))
				continue
			}
		}
		out = append(out, plannedHost{HostSpec: h, Addr4: hostAddr4(s.IPv4, h.Index), Addr6: hostAddr6(s.IPv6, h.Index)})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func hostAddr4(p netip.Prefix, index int) netip.Addr {
	b := p.Addr().As4()
	b[3] = byte(index)
	return netip.AddrFrom4(b)
}

// hostAddr6 writes the index's decimal digits as the last hex group, so
// index 21 becomes ::21 and reads like .21.
func hostAddr6(p netip.Prefix, index int) netip.Addr {
	v, _ := strconv.ParseUint(strconv.Itoa(index), 16, 16)
	b := p.Addr().As16()
	b[14] = byte(v >> 8)
	b[15] = byte(v)
	return netip.AddrFrom16(b)
}

// checkTarget refuses a target outside the lab's address ranges.
func checkTarget(t netip.AddrPort) error {
	if !t.IsValid() || t.Port() == 0 {
		return fmt.Errorf("target %v: want address:port", t)
	}
	if !AllowedAddr(t.Addr()) {
		return fmt.Errorf("target %v: outside 198.18.0.0/15, fd00:198:18::/48 and 127.0.0.0/8", t)
	}
	return nil
}
