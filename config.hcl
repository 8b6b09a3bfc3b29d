# epconsole sample configuration: one file per LB node, checked by
#   epconsole validate -c config.hcl
# Every option is shown; the comment after it gives its default ("required"
# when there is none). docs/config.md is the full reference.
#
# Syntax: HCL (https://github.com/hashicorp/hcl). Strings in double quotes,
# numbers and true/false without. Durations are strings with a unit: "5ms",
# "500ms", "1s", "1m30s". A block's arguments go on separate lines.
# Relative file paths are relative to this file's directory.
#
# The parts marked [cluster-wide] must be identical on every peer (the config
# digest compares them; a mismatch is shown in status and check). Everything
# else is this node's own business.

cluster_name       = "prod-cp"                    # required [cluster-wide]; letters, digits, . _ -
endpoint_dns_names = ["k8s-api.example.internal"] # default []; every apiserver certificate must carry these SANs
state_dir          = "/var/lib/epconsole"         # default "/var/lib/epconsole"; survives restarts (drained backends)

# The virtual address(es) clients use: https://VIP:port. At most one IPv4 and
# one IPv6 VIP; each needs backends of its own family. [cluster-wide, except
# interface]
vip "198.18.0.100" {
  interface = "eth0" # required; the link the VIP is added to on the owner
  port      = 6443   # default 6443; the only port open on the VIP
}
# vip "fd00:198:18::100" {
#   interface = "eth0"
# }

# This node.
node {
  name             = "lb1"              # required; unique among the peers
  gossip_bind      = "198.18.0.11:7946" # required; "ip:port" (port default 7946); "0.0.0.0:7946" needs gossip_advertise
  gossip_advertise = "198.18.0.11:7946" # default: gossip_bind; the address peers reach this node on
  priority         = 150                # default 100; 1..255, the highest eligible node owns the VIP
  preempt          = false              # default false; true: a higher priority node takes the VIP back
}

# The other LB nodes (not this one), by node name and gossip address.
# Default: none (a single node). With 3 or more nodes in all, a node holds
# the VIP only while it hears from a majority.
peer "lb2" {
  address = "198.18.0.12:7946" # required; port default 7946
}
peer "lb3" {
  address = "198.18.0.13:7946"
}

gossip {
  # Gossip and heartbeats are encrypted and authenticated with these keys.
  # One base64 key (16, 24 or 32 bytes; 32 = AES-256) per line, the primary
  # first; further lines are still accepted (key rotation); # comments allowed.
  # The same file on every peer. Make one with:
  #   head -c 32 /dev/urandom | base64 > /etc/epconsole/gossip.key; chmod 600 /etc/epconsole/gossip.key
  # A key file group or others may read or write is refused (as ssh does).
  key_file = "/etc/epconsole/gossip.key" # default "/etc/epconsole/gossip.key"

  # Every peer beats to every peer this often; a peer that misses
  # heartbeat_misses beats in a row is declared gone (3ms x 5 = 15 ms).
  heartbeat_interval = "3ms" # default "3ms"; 1ms..1s
  heartbeat_misses   = 5     # default 5; 2..100 (fewer makes false failovers likely at 1 % loss)

  # The heartbeat's UDP port, on the gossip addresses' IPs (memberlist uses
  # TCP and UDP on the gossip port itself). The same on every peer: beats go
  # to each peer's gossip IP on this port.
  heartbeat_port = 7947 # default: the gossip_bind port + 1; 1..65535

  # The daemon's nftables table drops heartbeat and gossip packets whose
  # source is not a peer's address (a flood from elsewhere never reaches
  # the heartbeat). false removes it.
  peer_filter = true # default true
}

# The apiservers, in this order on every peer: the order feeds the slot map
# that maps a flow to a backend. [cluster-wide] At least one.
backend "cp1" {
  address = "198.18.0.21" # required; an IP address (no host names)
  port    = 6443          # default 6443
}
backend "cp2" {
  address = "198.18.0.22"
}
backend "cp3" {
  address = "198.18.0.23"
}

# How each node probes every backend (like HAProxy's check inter/fastinter/
# rise/fall). The defaults notice a dead backend in at most
#   interval + timeout + (fall-1) x (fast_interval + timeout) = 1s + 0.5s + 0.7s = 2.2 s
# (about 1.2 s when the port refuses at once), where HAProxy's
# "default-server inter 3s fall 3 rise 2" (the classic runbook) takes 6 to 12 s.
health {
  kind          = "https"   # default "https": GET path over TLS; "tls": handshake only; "tcp": connect only
  path          = "/readyz" # default "/readyz" (kind https); 401/403 count as reachable, never as down
  interval      = "1s"      # default "1s"; time between probes of a steady backend
  fast_interval = "200ms"   # default "200ms"; time between probes while a backend changes state; <= interval
  timeout       = "500ms"   # default "500ms"; a probe slower than this fails; < interval
  rise          = 2         # default 2; successes in a row before a backend is up (1..100)
  fall          = 2         # default 2; failures in a row before a backend is down (1..100)

  # Optional client certificate for the probes, for clusters where anonymous
  # /readyz is forbidden. Both or neither.
  client_cert_file = "" # default "" (none)
  client_key_file  = "" # default "" (none)
}

# What the certificate check expects of every apiserver's certificate:
# SANs for each VIP, each endpoint_dns_names entry and extra_sans; a chain to
# ca_file; and days left before expiry.
tls {
  ca_file          = "/etc/kubernetes/pki/ca.crt" # default "" (chain not checked); PEM
  extra_sans       = []                           # default []; more DNS names or IPs the certificates must carry
  expiry_warn_days = 30                           # default 30; WARNING this many days before expiry
  expiry_crit_days = 7                            # default 7; CRITICAL this many days before; < expiry_warn_days
}

# The etcd quorum check (members, leader, alarms, how many may still fail).
# No endpoints: the check is off.
etcd {
  endpoints = [                                           # default [] (check off); "https://ip:port" URLs
    "https://198.18.0.21:2379",
    "https://198.18.0.22:2379",
    "https://198.18.0.23:2379",
  ]
  ca_file   = "/etc/kubernetes/pki/etcd/ca.crt"                # default ""; PEM
  cert_file = "/etc/kubernetes/pki/apiserver-etcd-client.crt" # default ""; client certificate; needs key_file
  key_file  = "/etc/kubernetes/pki/apiserver-etcd-client.key" # default ""; its private key; needs cert_file
}

# Where the daemon serves its status (tui and check read it).
status {
  socket         = "/run/epconsole/status.sock" # default "/run/epconsole/status.sock"; mode 0600 (0660 with a group below)
  metrics_listen = "127.0.0.1:9642"             # default "127.0.0.1:9642"; Prometheus /metrics; "" = off; every address: "0.0.0.0:9642" written out
  socket_group   = ""                           # default "" (root only); a group (name or gid) whose members may read status and events
  operator_group = ""                           # default "" (root only); a group whose members may also drain, undrain and hand off
}

# How flows are spread over backends: a hash of each flow picks one of
# `slots` slots, filled Maglev-style from the healthy backends, so losing a
# backend moves only its own flows and every peer picks the same backend for
# the same flow. [cluster-wide]
balance {
  mode  = "connection" # default "connection": hash source address and port; "source": source address only (a client sticks to one backend)
  seed  = 24301        # default 24301 (0x5eed); 0..4294967295; also as a string: "0x5eed"
  slots = 1021         # default 1021; a prime from 17 to 65521, well above the number of backends
  # default true: when this node's probes see no healthy backend at all, new
  # connections go to every backend rather than none (and the owner keeps the
  # VIP), reported as CRITICAL; false: the VIP refuses new connections then
  panic_routing = true
}

# The load through the VIP that every LB's conntrack table must hold: the
# daemon's preflight at start (and `epconsole check preflight`) judges
# net.netfilter.nf_conntrack_max against it. The owner keeps every flow and,
# through the connection sync, so does every peer. [this node's own]
conntrack {
  expected_flows       = 0 # default 0: 50000, a 5,000-node cluster (10 long-lived connections a node)
  new_flows_per_second = 0 # default 0: not counted; the peak of new (and as many closed) flows, e.g. a rolling restart; each closed flow keeps its entry 120 s
}
