# Every file-backed option set, with paths relative to this file.
cluster_name = "files"

vip "198.18.6.100" {
  interface = "eth0"
}

node {
  name        = "lb1"
  gossip_bind = "198.18.6.11:7946"
}

gossip {
  key_file = "../gossip.key"
}

backend "cp1" {
  address = "198.18.6.21"
}

health {
  client_cert_file = "../client.crt"
  client_key_file  = "../client.key"
}

tls {
  ca_file          = "../ca.crt"
  extra_sans       = ["10.96.0.1", "kubernetes.default.svc"]
  expiry_warn_days = 60
  expiry_crit_days = 14
}

etcd {
  endpoints = ["https://198.18.6.21:2379"]
  ca_file   = "../ca.crt"
  cert_file = "../client.crt"
  key_file  = "../client.key"
}

status {
  socket         = "status.sock"
  metrics_listen = ""
}
