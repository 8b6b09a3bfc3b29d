# An IPv6-only endpoint.
cluster_name       = "v6-cp"
endpoint_dns_names = ["k8s-api.v6.example.internal"]

vip "fd00:198:18:6::100" {
  interface = "lb0"
  port      = 443
}

node {
  name             = "lb-a"
  gossip_bind      = "[::]:7946"
  gossip_advertise = "[fd00:198:18:6::11]:7946"
  priority         = 200
  preempt          = true
}

peer "lb-b" {
  address = "fd00:198:18:6::12" # port 7946 by default
}

gossip {
  key_file = "../gossip.key"
}

backend "cp1" {
  address = "fd00:198:18:6::21"
}
backend "cp2" {
  address = "fd00:198:18:6::22"
  port    = 8443
}

health {
  kind = "tls"
}
