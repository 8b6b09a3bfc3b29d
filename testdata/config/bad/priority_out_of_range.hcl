# Mistake: priority above 255.
cluster_name = "bad"

vip "198.18.6.100" {
  interface = "eth0"
}

node {
  name        = "lb1"
  gossip_bind = "198.18.6.11:7946"
  priority    = 300
}

peer "lb2" {
  address = "198.18.6.12:7946"
}

gossip {
  key_file = "../gossip.key"
}

backend "cp1" {
  address = "198.18.6.21"
}
backend "cp2" {
  address = "198.18.6.22"
}
