# One IPv4 and one IPv6 VIP, each with backends of its family; sticky
# per-source balancing with the seed written in hex.
cluster_name = "dual"

vip "198.18.6.100" {
  interface = "eth0"
}
vip "fd00:198:18:6::100" {
  interface = "eth0"
}

node {
  name        = "lb1"
  gossip_bind = "198.18.6.11:7946"
}
peer "lb2" {
  address = "198.18.6.12:7946"
}
peer "lb3" {
  address = "[fd00:198:18:6::13]:7946"
}

gossip {
  key_file           = "../gossip.key"
  heartbeat_interval = "10ms"
  heartbeat_misses   = 6
}

backend "cp1" {
  address = "198.18.6.21"
}
backend "cp1-v6" {
  address = "fd00:198:18:6::21"
}
backend "cp2" {
  address = "198.18.6.22"
}

health {
  kind          = "tcp"
  interval      = "2s"
  fast_interval = "2s"
  timeout       = "1s"
  rise          = 1
  fall          = 3
}

balance {
  mode  = "source"
  seed  = "0x1234"
  slots = 65521
}
