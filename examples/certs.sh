#!/usr/bin/env bash
# Test certificates for the examples (ECDSA P-256, made with openssl):
#   ca.pem, ca.key                 a CA that signs the server certificates
#   site.pem, site.key             example.com, www.example.com (the default certificate)
#   api.pem, api.key               api.example.com (served by SNI)
#   client-ca.pem, client-ca.key   the CA that client certificates must chain to (mTLS)
#   alice.pem, alice.key           a client certificate (CN=alice) for curl --cert
#
# Usage: examples/certs.sh [DIR]   (DIR defaults to examples/certs, which git ignores)
# Idempotent: when every file is already there it does nothing; otherwise it makes
# them all anew. For trying things out only: never use these keys for real traffic.
set -euo pipefail
dir="${1:-$(cd "$(dirname "$0")" && pwd)/certs}"
files=(ca.pem ca.key site.pem site.key api.pem api.key client-ca.pem client-ca.key alice.pem alice.key)
mkdir -p "$dir"
cd "$dir"
all=1
for f in "${files[@]}"; do [ -s "$f" ] || all=0; done
if [ "$all" = 1 ]; then
    echo "certs.sh: certificates already in $dir"
    exit 0
fi
umask 077
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
ca() { # NAME CN
    openssl req -x509 "${ec[@]}" -days 365 -subj "/CN=$2" -keyout "$1.key" -out "$1.pem" 2>/dev/null
}
leaf() { # NAME CN SIGNER EXTENSIONS DAYS
    openssl req "${ec[@]}" -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
        -days "$5" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "Ballast Example CA"
leaf site example.com ca "subjectAltName=DNS:example.com,DNS:www.example.com" 90
leaf api api.example.com ca "subjectAltName=DNS:api.example.com" 90
ca client-ca "Ballast Example Client CA"
leaf alice alice client-ca "extendedKeyUsage=clientAuth" 30
rm -f ./*.srl
chmod 644 ./*.pem
echo "certs.sh: made ${#files[@]} files in $dir"
