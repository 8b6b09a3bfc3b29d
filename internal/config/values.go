package config

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// decoder turns the raw schema into a Config, collecting every problem as a
// diagnostic that points at the offending expression.
type decoder struct {
	file     string // config file name as given (used in messages)
	dir      string // its directory: relative paths resolve against it
	readFile func(path string) ([]byte, error)
	statFile func(path string) (os.FileInfo, error)
	// noSecrets: the gossip key file is not read; offline: neither are
	// certificate, key and CA files (only their paths are checked).
	noSecrets, offline bool
	// partial is set when HCL already reported a structural error, which
	// drops the broken block or argument: "missing" checks are skipped then.
	partial bool
	diags   hcl.Diagnostics
}

func (d *decoder) errf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

// missing reports a required item that is absent, unless HCL already
// reported a structural error (which may be why it is absent).
func (d *decoder) missing(rng hcl.Range, summary, format string, args ...any) {
	if d.partial {
		return
	}
	d.errf(rng, summary, format, args...)
}

// top is the range used for problems of the file as a whole.
func (d *decoder) top() hcl.Range {
	return hcl.Range{Filename: d.file, Start: hcl.InitialPos, End: hcl.InitialPos}
}

// or returns r, or the file's start when r is the zero range of an absent block.
func (d *decoder) or(r hcl.Range) hcl.Range {
	if r.Filename == "" {
		return d.top()
	}
	return r
}

// where is the range to blame for a value: the attribute's expression when
// it is set, else fallback (the enclosing block).
func (d *decoder) where(a *hcl.Attribute, fallback hcl.Range) hcl.Range {
	if a != nil {
		return a.Expr.Range()
	}
	return d.or(fallback)
}

// eval evaluates a constant expression. ok is false when it failed (and the
// failure was reported).
func (d *decoder) eval(a *hcl.Attribute, path string) (cty.Value, bool) {
	v, diags := a.Expr.Value(nil)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	if v.IsNull() {
		d.errf(a.Expr.Range(), "Null value", "%s = null is not allowed. Set a value, or remove the line to use the default.", path)
		return cty.NilVal, false
	}
	if !v.IsWhollyKnown() {
		d.errf(a.Expr.Range(), "Value not known", "%s must be a constant. Write the value itself.", path)
		return cty.NilVal, false
	}
	return v, true
}

func (d *decoder) wrongType(rng hcl.Range, path string, v cty.Value, want, example string) {
	d.errf(rng, "Wrong type", "%s must be %s, not %s. Write it like %s = %s.", path, want, v.Type().FriendlyName(), lastName(path), example)
}

// lastName is the attribute name at the end of a dotted path.
func lastName(path string) string {
	if i := strings.LastIndexAny(path, ". "); i >= 0 {
		return path[i+1:]
	}
	return path
}

// typed evaluates attribute a (not nil) and checks that its value is of
// type typ; false when it is not (reported with want and example, as
// wrongType does) or could not be evaluated.
func (d *decoder) typed(a *hcl.Attribute, path string, typ cty.Type, want, example string) (cty.Value, bool) {
	v, ok := d.eval(a, path)
	if !ok {
		return v, false
	}
	if v.Type() != typ {
		d.wrongType(a.Expr.Range(), path, v, want, example)
		return v, false
	}
	return v, true
}

// str decodes a string attribute; def when a is nil.
func (d *decoder) str(a *hcl.Attribute, path, def, example string) (string, bool) {
	if a == nil {
		return def, true
	}
	v, ok := d.typed(a, path, cty.String, "a string in double quotes", example)
	if !ok {
		return def, false
	}
	return v.AsString(), true
}

// strList decodes a list of strings with the range of each element.
func (d *decoder) strList(a *hcl.Attribute, path, example string) ([]string, []hcl.Range, bool) {
	if a == nil {
		return nil, nil, true
	}
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		v, ok := d.eval(a, path)
		if ok {
			d.wrongType(a.Expr.Range(), path, v, "a list of strings", example)
		}
		return nil, nil, false
	}
	var (
		out  []string
		rngs []hcl.Range
		good = true
	)
	for i, e := range exprs {
		v, diags := e.Value(nil)
		d.diags = append(d.diags, diags...)
		if diags.HasErrors() {
			good = false
			continue
		}
		if v.IsNull() || !v.IsWhollyKnown() || v.Type() != cty.String {
			d.errf(e.Range(), "Wrong type", "%s[%d] must be a string in double quotes. Write the list like %s = %s.", path, i, lastName(path), example)
			good = false
			continue
		}
		out = append(out, v.AsString())
		rngs = append(rngs, e.Range())
	}
	return out, rngs, good
}

// boolean decodes a bool attribute.
func (d *decoder) boolean(a *hcl.Attribute, path string, def bool) bool {
	if a == nil {
		return def
	}
	v, ok := d.typed(a, path, cty.Bool, "true or false (without quotes)", "true")
	if !ok {
		return def
	}
	return v.True()
}

// intIn decodes a whole number in lo..hi; why says what the bounds protect.
func (d *decoder) intIn(a *hcl.Attribute, path string, def, lo, hi int, why string) (int, bool) {
	if a == nil {
		return def, true
	}
	v, ok := d.typed(a, path, cty.Number, "a whole number (without quotes)", strconv.Itoa(def))
	if !ok {
		return def, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		d.errf(a.Expr.Range(), "Not a whole number", "%s = %s must be a whole number from %d to %d.", path, numText(bf), lo, hi)
		return def, false
	}
	n, acc := bf.Int64()
	if acc != big.Exact || n < int64(lo) || n > int64(hi) {
		d.errf(a.Expr.Range(), "Value out of range", "%s = %s must be from %d to %d (%s). Set a value in that range, or remove the line for the default %d.",
			path, numText(bf), lo, hi, why, def)
		return def, false
	}
	return int(n), true
}

// numText formats a number for a message: exact when it is an int64, else
// as a float64. (Never big.Float's Text: formatting a literal like
// 1e99999999 in decimal takes minutes.)
func numText(bf *big.Float) string {
	if n, acc := bf.Int64(); acc == big.Exact && bf.IsInt() {
		return strconv.FormatInt(n, 10)
	}
	f, _ := bf.Float64()
	switch {
	case math.IsInf(f, 0):
		return "(a number too large)"
	case f == 0 && bf.Sign() != 0:
		return "(a number too small)"
	}
	return strconv.FormatFloat(f, 'g', 10, 64)
}

// port decodes a TCP port.
func (d *decoder) port(a *hcl.Attribute, path string, def uint16) (uint16, bool) {
	if a == nil {
		return def, true
	}
	v, ok := d.typed(a, path, cty.Number, "a port number (without quotes)", strconv.Itoa(int(def)))
	if !ok {
		return def, false
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != big.Exact || n < 1 || n > 65535 {
		d.errf(a.Expr.Range(), "Port out of range", "%s = %s is not a TCP port: use a whole number from 1 to 65535 (the default is %d).", path, numText(bf), def)
		return def, false
	}
	return uint16(n), true
}

// duration decodes a duration string such as "500ms" in lo..hi.
func (d *decoder) duration(a *hcl.Attribute, path string, def, lo, hi time.Duration) (time.Duration, bool) {
	if a == nil {
		return def, true
	}
	v, ok := d.typed(a, path, cty.String, "a duration string with a unit", strconv.Quote(def.String()))
	if !ok {
		return def, false
	}
	s := v.AsString()
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.errf(a.Expr.Range(), "Invalid duration", "%s = %q is not a duration: write a number with a unit (ns, us, ms, s, m, h), like \"500ms\" or \"2s\".", path, s)
		return def, false
	}
	if dur < lo || dur > hi {
		d.errf(a.Expr.Range(), "Duration out of range", "%s = %q must be from %s to %s. Set a value in that range, or remove the line for the default %q.", path, s, lo, hi, def.String())
		return def, false
	}
	return dur, true
}

// path resolves a file path written in the config: relative paths are
// relative to the config file's directory. shown is for messages
// (deterministic, as the user would type it from where the config was
// named); abs is what the Config keeps.
func (d *decoder) path(p string) (shown, abs string) {
	if p == "" {
		return "", ""
	}
	shown = p
	if !filepath.IsAbs(p) {
		shown = filepath.Join(d.dir, p)
	}
	abs, err := filepath.Abs(shown)
	if err != nil {
		abs = shown
	}
	return shown, abs
}

// ip parses a unicast IP address for a VIP or a backend.
func (d *decoder) ip(rng hcl.Range, what, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		hint := ""
		if strings.Contains(s, "/") {
			hint = " (no prefix length)"
		}
		d.errf(rng, "Invalid IP address", "%s %q is not an IP address%s: write a literal IPv4 or IPv6 address like 198.18.0.100 or fd00:198:18::100, not a host name.", what, s, hint)
		return netip.Addr{}, false
	}
	if msg := unusable(a, false); msg != "" {
		d.errf(rng, "Unusable IP address", "%s %s %s.", what, s, msg)
		return netip.Addr{}, false
	}
	return a, true
}

// unusable says why a is not an address a node, VIP or backend can have
// ("" when it is fine). allowUnspecified admits 0.0.0.0 / :: (bind addresses).
func unusable(a netip.Addr, allowUnspecified bool) string {
	switch {
	case a.Zone() != "":
		return "has a zone (%" + a.Zone() + "): write the address without it"
	case a.Is4In6():
		return "is an IPv4-mapped IPv6 address: write it as the plain IPv4 address " + a.Unmap().String()
	case a.IsUnspecified() && !allowUnspecified:
		return "is the unspecified address: use the node's real unicast address"
	case a.IsMulticast():
		return "is a multicast address: use a unicast address"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "is link-local: use a global or unique-local address on the nodes' network"
	}
	return ""
}

// validName reports whether s is a usable cluster/node/backend name.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case (r == '-' || r == '_' || r == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

// validDNSName reports whether s is a DNS host name (letters, digits,
// hyphens; labels of 1..63; 253 in all; an optional final dot).
func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validInterface reports whether s can be a Linux interface name.
func validInterface(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '/' || r == ':' || r >= 0x7f {
			return false
		}
	}
	return true
}

// isPrime reports whether n is prime (n is small: trial division).
func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for i := 2; i*i <= n; i++ {
		if n%i == 0 {
			return false
		}
	}
	return true
}

// primesAround returns the nearest primes below and above n (for hints).
func primesAround(n int) (below, above int) {
	for below = n - 1; below > 2 && !isPrime(below); below-- {
	}
	for above = n + 1; !isPrime(above); above++ {
	}
	return below, above
}

// lineOf formats a range's position for cross-references in messages.
func lineOf(r hcl.Range) string { return fmt.Sprintf("line %d", r.Start.Line) }
