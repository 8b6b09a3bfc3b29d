package config

import "github.com/hashicorp/hcl/v2"

// WithoutSecrets makes Load and Parse leave the gossip key file alone: not
// opened, its mode not checked, Config.Gossip.Keys empty (KeyFile is still
// set). For commands that never gossip, such as check and the console, so
// a monitoring user needs no access to the key.
func WithoutSecrets() Option {
	return func(o *options) { o.noSecrets = true }
}

// Offline makes Load and Parse check syntax and values without reading any
// file the config names: not the gossip key (as WithoutSecrets), nor
// certificates, private keys or CA bundles; their paths are still checked
// (set, given in pairs). For `validate --offline` on a host that does not
// have those files, such as CI.
func Offline() Option {
	return func(o *options) { o.offline = true }
}

// keyPrivate refuses a gossip key file that group or others may read or
// write, as ssh refuses such a private key: whoever reads the key can join
// the gossip and forge heartbeats. It reports the problem at rng with the
// chmod that fixes it and returns false.
// The fix names the absolute path, right whatever directory it is run in.
func (d *decoder) keyPrivate(rng hcl.Range, shown, abs string) bool {
	if d.statFile == nil {
		return true
	}
	fi, err := d.statFile(shown)
	if err != nil {
		d.errf(rng, "Cannot read gossip key file", "%v. Check the path and that the file exists.", unwrapPath(err))
		return false
	}
	mode := fi.Mode().Perm()
	if mode&0o077 == 0 {
		return true
	}
	who := "group and others"
	switch {
	case mode&0o070 == 0:
		who = "others"
	case mode&0o007 == 0:
		who = "the group"
	}
	d.errf(rng, "Gossip key file open to others", "%s has mode %04o: %s may read or change it, and whoever has the key can join the cluster and forge heartbeats. Make it private to its owner: chmod 600 %s",
		shown, mode, who, abs)
	return false
}
