# bench/peer/peer.sh — variant (c) of bench/run.sh.  Sourced after bench/lib.sh, not run.
# shellcheck shell=bash
#
# An OpenResty-style peer of the module: Debian's libnginx-mod-http-lua (with
# libnginx-mod-http-ndk) loaded into the same nginx binary as the gateway, its own
# instance ("peer", prefix $B_DIR/peer), the gateway's certificates and TLS settings,
# a keep-alive upstream to its own server of the same backend NGINX, and the same
# Redis.  bench/peer/access.lua does one EVAL per request (purpose check, fixed-window
# limit, 4-field XADD to peer:audit) over resty.redis's keep-alive pool.
#
#   wrk ──▶ client :CC ──mTLS──▶ peer :GC ──▶ backend :BC
#                                    └─ EVAL ─▶ redis :R (the same one as (b))

P_LUA_MOD=${BENCH_LUA_MODULE_DIR:-/usr/lib/nginx/modules}
P_RESTY_REDIS=/usr/share/lua/5.1/nginx/redis.lua

p_need() {
    local f
    for f in "$P_LUA_MOD/ndk_http_module.so" "$P_LUA_MOD/ngx_http_lua_module.so" "$P_RESTY_REDIS"; do
        [[ -f $f ]] || die "$f not found (scripts/deps.sh bench: libnginx-mod-http-lua lua-nginx-redis)"
    done
}

# the client's extra upstream + server for (c); set before b_prepare writes the client
p_client_extra() {
    cat <<EOF
upstream gw_c { server 127.0.0.1:$P_GC; keepalive 64; keepalive_requests 1000000; }
    server { listen 127.0.0.1:$P_CC; location / { proxy_pass https://gw_c; } }
EOF
}

# p_write_configs: the peer's nginx.conf and its server in the backend's (after b_prepare)
p_write_configs() {
    local pki=$B_DIR/pki d=$B_DIR/peer fp tmo
    mkdir -p "$d"/{logs,temp}
    cp "$B_ROOT/bench/peer/access.lua" "$d/access.lua"
    fp=$(openssl x509 -in "$pki/national.pem" -noout -fingerprint -sha1 |
        sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
    [[ $fp =~ ^[0-9a-f]{40}$ ]] || die "no SHA-1 fingerprint for the national certificate"
    tmo=50
    [[ $B_REDIS_TIMEOUT =~ ^([0-9]+)ms$ ]] && tmo=${BASH_REMATCH[1]}
    [[ $B_REDIS_TIMEOUT =~ ^([0-9]+)s$ ]] && tmo=$((BASH_REMATCH[1] * 1000))
    {
        printf 'load_module %s;\nload_module %s;\n' "$P_LUA_MOD/ndk_http_module.so" \
            "$P_LUA_MOD/ngx_http_lua_module.so"
        b_common_top peer
        cat <<EOF
http {
$(b_temp_paths peer)
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    lua_package_path "$d/?.lua;/usr/share/lua/5.1/?.lua;;";
    init_by_lua_block {
        package.loaded.peer_conf = {
            agencies   = { ["$fp"] = "$B_AGENCY" },
            redis_port = $P_R,
            redis_user = "juki-admin",
            redis_password = "$(b_secret juki-admin)",
            timeout_ms = $tmo,
            limit      = 100000,
        }
        require "nginx.redis"
    }

    upstream be_c { server 127.0.0.1:$P_BC; keepalive 64; keepalive_requests 1000000; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";

$(b_tls_server_conf "$pki" bench_peer_ssl)

    server {
        listen 127.0.0.1:$P_GC ssl;
        location /v1/ {
            access_by_lua_file $d/access.lua;
            proxy_pass http://be_c;
        }
    }
}
EOF
    } >"$d/nginx.conf"

    # the backend's third server: same answer, its own count
    local be=$B_DIR/backend/nginx.conf
    [[ $(tail -1 "$be") == "}" ]] || die "unexpected end of $be"
    sed -i '$d' "$be"
    cat >>"$be" <<EOF
    server {
        listen 127.0.0.1:$P_BC;
        access_log $B_DIR/logs/backend-c.log count;
        location / { default_type application/json; return 200 '{"resident":{"name":"Bench Taro","born":"1970-01-01"}}\n'; }
    }
}
EOF
    : >"$B_DIR/logs/backend-c.log"
}

# p_start: the agency's purposes in Redis, then the peer NGINX (after b_start_all)
p_start() {
    b_redis DEL peer:audit "peer:purposes:$B_AGENCY" >/dev/null
    b_redis SADD "peer:purposes:$B_AGENCY" "$B_PURPOSE" >/dev/null
    b_start_nginx peer
    if [[ $B_PIN == 1 ]]; then
        local p
        for p in $(b_master peer) $(b_worker peer); do taskset -p -c 1 "$p" >/dev/null; done
    fi
}

# EXIT trap: the peer first, then bench/lib.sh's teardown with the original status
p_teardown() {
    local rc=$?
    set +e
    [[ -n $B_DIR && -d $B_DIR/peer ]] && b_stop_nginx peer
    (exit $rc)
    b_teardown
}
