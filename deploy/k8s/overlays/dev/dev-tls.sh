#!/usr/bin/env bash
# Prints the dev overlay's two TLS Secrets as YAML, from a throwaway CA made on the spot, in
# the shape cert-manager gives them in prod (type kubernetes.io/tls: tls.crt, tls.key, ca.crt):
#   vault-tls     vault-svc's server certificate (the names of its three Services)
#   payments-tls  payments-svc's client certificate (CN and DNS name payments-svc: the vault's
#                 allow-list)
# Dev-only: the keys live in a temporary directory and in the cluster, never in the repository.
# Run it again to replace all of them at once.
#   deploy/k8s/overlays/dev/dev-tls.sh | kubectl apply -f -
# NAMESPACE (default payvault) sets the namespace, and the host names on the server certificate.
set -euo pipefail

ns=${NAMESPACE:-payvault}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# issue NAME CN EXTENDED_KEY_USAGE SUBJECT_ALT_NAMES
issue() {
  newkey "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  cat >"$1.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $3
subjectAltName = $4
EXT
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -sha256 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}

newkey ca.key
openssl req -x509 -new -key ca.key -sha256 -days 730 -subj "/CN=payvault dev CA" \
  -addext "basicConstraints = critical, CA:TRUE" \
  -addext "keyUsage = critical, keyCertSign, cRLSign" -out ca.pem 2>/dev/null

names=""
for svc in vault-svc vault-svc-internal vault-svc-headless; do
  for suffix in "" ".$ns" ".$ns.svc" ".$ns.svc.cluster.local"; do
    names="$names${names:+,}DNS:$svc$suffix"
  done
done
issue server vault-svc serverAuth "$names,DNS:localhost,IP:127.0.0.1"
issue client payments-svc clientAuth "DNS:payments-svc"
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null

b64() { base64 <"$1" | tr -d '\n'; }

# secret NAME KEY=FILE...
secret() {
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' "$1" "$ns"
  printf '  labels:\n    app.kubernetes.io/part-of: payvault\n    payvault.io/dev-only: "true"\n'
  printf 'type: kubernetes.io/tls\ndata:\n'
  local pair
  shift
  for pair in "$@"; do
    printf '  %s: %s\n' "${pair%%=*}" "$(b64 "${pair#*=}")"
  done
}

secret vault-tls ca.crt=ca.pem tls.crt=server.pem tls.key=server.key
secret payments-tls ca.crt=ca.pem tls.crt=client.pem tls.key=client.key
