package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
)

// Digest returns the SHA-256 (hex) of the cluster-wide part of the config:
// what must be the same on every peer for them to forward a flow the same
// way. It covers the cluster name, the VIP addresses and ports (not the
// interface, which may differ per node; in address order, so the order of
// vip blocks does not matter), the backends (name, address, port) in config
// order, the balance mode, seed and slot count, and
// whether panic routing is off. Node identity, peers,
// probe timings, TLS, etcd and status settings are node-local and left out.
// The result is deterministic: equal inputs give equal digests on any host.
func (c *Config) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "epconsole-config-digest v1\n")
	fmt.Fprintf(h, "cluster %q\n", c.ClusterName)
	vips := slices.Clone(c.VIPs)
	slices.SortFunc(vips, func(a, b VIP) int { return a.Address.Compare(b.Address) })
	for _, v := range vips {
		fmt.Fprintf(h, "vip %s %d\n", v.Address, v.Port)
	}
	for _, b := range c.Backends {
		fmt.Fprintf(h, "backend %q %s %d\n", b.Name, b.Address, b.Port)
	}
	fmt.Fprintf(h, "balance %q %d %d\n", c.Balance.Mode, c.Balance.Seed, c.Balance.Slots)
	if !c.Balance.PanicRouting {
		// Only when off: the digests of configs with the default stay
		// what they were before the setting existed.
		fmt.Fprintf(h, "panic_routing false\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}
