# OpenBao in server mode for docker-compose.yml: integrated (raft) storage on a volume, an audit
# device declared here (OpenBao 2.x accepts audit devices only from configuration), plain HTTP on
# the compose network. First start: `openbao-init` (python -m jitaccess.ops.openbao_init)
# initialises and unseals it, keeping ONE unseal key beside it: NOT production key handling
# (docs/operations.md: auto-unseal, TLS, no stored keys).
storage "raft" {
  path    = "/openbao/file"
  node_id = "openbao-1"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_disable     = true   # compose network only; terminate TLS here in production
}

api_addr     = "http://openbao:8200"
cluster_addr = "http://openbao:8201"
ui           = false

audit "file" "file" {
  description = "every request and response (secrets HMAC'd)"
  options {
    file_path = "/openbao/logs/audit.log"
  }
}
