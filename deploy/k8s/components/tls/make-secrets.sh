#!/usr/bin/env bash
# Writes the Secrets components/tls needs, as YAML on stdout, from a new private CA:
#
#   deploy/k8s/components/tls/make-secrets.sh --namespace ringserve \
#       --router-name ringserve.example.com | kubectl apply -f -
#
# ringserve-tls       the routers' certificate for clients: names "ringserve",
#                     "ringserve.NS.svc" and every --router-name (what clients dial).
# ringserve-internal  the certificate workers serve and routers present to them: name
#                     "ringserve-worker", server and client authentication.
# ringserve-auth      one random bearer token per --client (default: one client, "default"),
#                     as "tokens"; each is printed to stderr once, for handing out.
# Clients verify the routers with ca.crt of ringserve-tls (--tls-ca). Certificates last
# --days (365). For a CA you already run (cert-manager, Vault), make the same keys there.
set -euo pipefail
namespace=ringserve
days=365
router_names=()
clients=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --namespace) namespace=$2; shift 2 ;;
    --router-name) router_names+=("$2"); shift 2 ;;
    --client) clients+=("$2"); shift 2 ;;
    --days) days=$2; shift 2 ;;
    *) echo "usage: $0 [--namespace NS] [--router-name DNS]... [--client NAME]... [--days N]" >&2
       exit 2 ;;
  esac
done
[[ ${#clients[@]} -gt 0 ]] || clients=(default)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
umask 077

openssl req -x509 -newkey rsa:3072 -nodes -keyout ca.key -out ca.crt -days "$days" \
  -subj "/CN=ringserve-ca-$namespace" 2>/dev/null
issue() {  # name, subjectAltName
  openssl req -newkey rsa:3072 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' \
    "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
    -days "$days" -extfile "$1.ext" 2>/dev/null
}
sans="DNS:ringserve,DNS:ringserve.$namespace,DNS:ringserve.$namespace.svc"
for name in "${router_names[@]}"; do sans+=",DNS:$name"; done
issue router "$sans"
issue internal "DNS:ringserve-worker"

: > tokens
for client in "${clients[@]}"; do
  token=$(openssl rand -hex 32)
  printf '# %s\n%s\n' "$client" "$token" >> tokens
  echo "token for $client: $token" >&2
done

secret() {  # name, then key=file pairs
  local name=$1; shift
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' \
    "$name" "$namespace"
  printf 'type: Opaque\ndata:\n'
  for pair in "$@"; do
    printf '  %s: %s\n' "${pair%%=*}" "$(base64 -w0 < "${pair#*=}")"
  done
}
secret ringserve-tls tls.crt=router.crt tls.key=router.key ca.crt=ca.crt
secret ringserve-internal tls.crt=internal.crt tls.key=internal.key ca.crt=ca.crt
secret ringserve-auth tokens=tokens
