package config

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/hashicorp/hcl/v2"
)

// vipUsable refuses a loopback VIP: the kernel never sends traffic for a
// loopback address out of the host, so no client could reach it.
func (d *decoder) vipUsable(rng hcl.Range, a netip.Addr) bool {
	if a.IsLoopback() {
		d.errf(rng, "Loopback VIP", "VIP %s is a loopback address, which never leaves this host, so clients cannot reach it: pick a spare address on the nodes' network, like 198.18.0.100.", a)
		return false
	}
	return true
}

// metricsHostWritten refuses a metrics_listen without a host (":9642"),
// which listens on every address of the host: serving metrics beyond this
// host must be written out as "0.0.0.0:port" or "[::]:port".
func (d *decoder) metricsHostWritten(rng hcl.Range, listen string) bool {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host != "" {
		return true
	}
	d.errf(rng, "metrics_listen without an address", `status.metrics_listen = %q names no address, so metrics would be served on every address of this host, to anyone who reaches it (they show the cluster's layout). Write "127.0.0.1:%s" for this host only (the default), or "0.0.0.0:%s" or "[::]:%s" to serve every address on purpose.`,
		listen, port, port, port)
	return false
}

// VIPsOnHost warns about each VIP that is already an address of this host.
// onHost maps the host's addresses to the interface that has each. Only
// the node that owns the VIP while epconsole runs should have it; anywhere
// else it is held by something that will fight epconsole for it
// (keepalived, a static network config, a forgotten `ip addr add`).
func (c *Config) VIPsOnHost(onHost map[netip.Addr]string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, v := range c.VIPs {
		iface, ok := onHost[v.Address]
		if !ok {
			continue
		}
		at := fileStart(c.File)
		if r, ok := c.Where(vipKey(v.Address) + ".address"); ok {
			at = r
		}
		bits := 32
		if v.Address.Is6() {
			bits = 128
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "VIP already on this host",
			Detail: fmt.Sprintf("VIP %s is already an address of this host (on %s). That is right only on the node that owns the VIP while epconsole runs; otherwise something else holds it (keepalived, the network config, a manual ip addr add) and will answer for it too: remove it there, e.g. ip addr del %s/%d dev %s.",
				v.Address, iface, v.Address, bits, iface),
			Subject: &at,
		})
	}
	return diags
}
