# The least a node needs; everything else takes its default.
# (key_file is set only because the default /etc/epconsole/gossip.key is not
# part of the test data.)
cluster_name = "minimal"

vip "198.18.6.100" {
  interface = "eth0"
}

node {
  name        = "lb1"
  gossip_bind = "198.18.6.11"
}

gossip {
  key_file = "../gossip.key"
}

backend "cp1" {
  address = "198.18.6.21"
}
