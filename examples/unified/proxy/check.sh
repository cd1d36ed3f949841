#!/usr/bin/env bash
# Checks nginx.conf and Caddyfile by serving them: each in turn runs in front of the homeserver on
# 127.0.0.1:8008 (start the stack first: examples/unified/run.sh), on port 8443 (nginx, with a
# self-signed certificate in place of Let's Encrypt's) or 9443 (Caddy, with its own local CA in
# place of ACME), and these must come through, with the Host header deciding the site:
#   matrix.example.org  /_matrix/client/versions, /_matrix/media/*, /_irc/media/* (the IRC bridge on
#                       127.0.0.1:29318, which refuses a made-up link with 403); with TOKEN=<an access
#                       token>, a 20 MB upload (no proxy body limit below max_upload_size) and its
#                       download on the authenticated route the IRC bridge fetches files from
#   example.org         /.well-known/matrix/client and /server: JSON, with CORS on the client one
# Needs nginx (apt-get install nginx-light), caddy (apt-get install caddy), openssl, curl, jq.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)  # KEEP=1 keeps it (configs, logs)
head -c 20000000 /dev/zero > "$WORK/big"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "check.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
if ! curl -sf http://127.0.0.1:8008/_matrix/client/versions >/dev/null; then
    echo "check.sh: no homeserver on 127.0.0.1:8008; start examples/unified/run.sh first" >&2
    exit 2
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/29318) 2>/dev/null; then
    echo "check.sh: no irc-bridge on 127.0.0.1:29318; start examples/unified/run.sh first" >&2
    exit 2
fi

failed=0
expect() {  # expect WHAT ACTUAL WANTED
    if [ "$2" = "$3" ]; then echo "  ok   $1"; else echo "  FAIL $1: got '$2', want '$3'"; failed=1; fi
}

probe() {  # probe PORT: the requests above, through whatever listens on PORT
    local port=$1
    local c=(curl -sk --max-time 60 --resolve "matrix.example.org:$port:127.0.0.1" --resolve "example.org:$port:127.0.0.1")
    local hs=https://matrix.example.org:$port site=https://example.org:$port
    expect "versions" "$("${c[@]}" "$hs/_matrix/client/versions" | jq -r 'has("versions")')" true
    expect "media route" "$("${c[@]}" "$hs/_matrix/media/v3/download/localhost/nothere" | jq -r .errcode)" M_NOT_FOUND
    expect "IRC bridge media route" "$("${c[@]}" -o /dev/null -w '%{http_code}' "$hs/_irc/media/AQAAAAA/made-up.png")" 403
    expect "IRC bridge media CSP" "$("${c[@]}" -D - -o /dev/null "$hs/_irc/media/AQAAAAA/made-up.png" \
        | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ss]ecurity-[Pp]olicy: \(sandbox\);.*/\1/p')" sandbox
    if [ -n "${TOKEN:-}" ]; then
        local mxc
        mxc=$("${c[@]}" -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
            --data-binary @"$WORK/big" "$hs/_matrix/media/v3/upload?filename=big.bin" | jq -r .content_uri 2>&1 || true)
        expect "20 MB upload" "${mxc%%/*}" "mxc:"
        expect "20 MB download on the route the IRC bridge fetches from" "$("${c[@]}" -o /dev/null \
            -w '%{size_download}' -H "Authorization: Bearer $TOKEN" \
            "$hs/_matrix/client/v1/media/download/${mxc#mxc://}")" 20000000
    else
        echo "  skip 20 MB upload and download (set TOKEN to a user's access token)"
    fi
    expect "well-known client" "$("${c[@]}" "$site/.well-known/matrix/client" | jq -r '."m.homeserver".base_url')" \
        https://matrix.example.org
    expect "well-known client CORS" "$("${c[@]}" -D - -o /dev/null "$site/.well-known/matrix/client" \
        | tr -d '\r' | sed -n 's/^[Aa]ccess-[Cc]ontrol-[Aa]llow-[Oo]rigin: //p')" '*'
    expect "well-known client type" "$("${c[@]}" -o /dev/null -w '%{content_type}' "$site/.well-known/matrix/client")" \
        application/json
    expect "well-known server" "$("${c[@]}" "$site/.well-known/matrix/server" | jq -r '."m.server"')" \
        matrix.example.org:443
}

wait_port() {
    for _ in $(seq 1 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    echo "check.sh: nothing listens on $1" >&2
    exit 1
}

echo "nginx ($(nginx -v 2>&1 | cut -d/ -f2)), nginx.conf on port 8443:"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=example.org \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
sed -e "s|/etc/letsencrypt/live/[^/]*/fullchain.pem|$WORK/cert.pem|" \
    -e "s|/etc/letsencrypt/live/[^/]*/privkey.pem|$WORK/key.pem|" \
    -e 's/listen \(.*\)443 /listen \18443 /' "$HERE/nginx.conf" > "$WORK/site.conf"
cat > "$WORK/nginx.conf" <<EOF
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events {}
http {
    access_log off;
    include $WORK/site.conf;
}
EOF
nginx -t -q -c "$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_port 8443
probe 8443

echo "Caddy ($(caddy version | cut -d' ' -f1)), Caddyfile on port 9443:"
{
    printf '{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port 9080\n\thttps_port 9443\n}\n\n'
    cat "$HERE/Caddyfile"
} > "$WORK/Caddyfile"
export XDG_DATA_HOME=$WORK/caddy-data XDG_CONFIG_HOME=$WORK/caddy-config
caddy validate --adapter caddyfile --config "$HERE/Caddyfile" >"$WORK/caddy-validate.log" 2>&1 \
    || { cat "$WORK/caddy-validate.log" >&2; exit 1; }
caddy run --adapter caddyfile --config "$WORK/Caddyfile" >"$WORK/caddy.log" 2>&1 &
pids+=($!)
wait_port 9443
probe 9443

if [ "$failed" = 0 ]; then echo "check.sh: both pass"; else echo "check.sh: FAILED" >&2; exit 1; fi
