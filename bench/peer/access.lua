-- bench/peer/access.lua: the access phase of bench/run.sh's variant (c), an
-- OpenResty-style peer of the module, run by Debian's libnginx-mod-http-lua with
-- lua-nginx-redis (resty.redis, installed as "nginx.redis").
--
-- Per request, ONE EVAL on a pooled (keep-alive) Redis connection does what a few
-- lines of Lua can: the agency's purpose check, a fixed-window rate limit and a
-- 4-field XADD.  It is a yardstick for the module, not a product: no stop switches,
-- no HMAC chain, no completion record.  Fails closed: no Redis reply, no forward.

local redis = require "nginx.redis"
local conf = require "peer_conf"   -- set by init_by_lua_block (bench/peer/peer.sh)

-- KEYS: purposes set of the agency, limit window counter, audit stream
-- ARGV: purpose, limit per window, agency, subject
local SCRIPT = [[
local d = "allow"
if redis.call("SISMEMBER", KEYS[1], ARGV[1]) == 0 then
    d = "purpose"
else
    local n = redis.call("INCR", KEYS[2])
    if n == 1 then redis.call("EXPIRE", KEYS[2], 2) end
    if n > tonumber(ARGV[2]) then d = "rate" end
end
redis.call("XADD", KEYS[3], "*", "agency", ARGV[3], "purpose", ARGV[1],
           "subject", ARGV[4], "decision", d)
return d
]]

local agency = conf.agencies[ngx.var.ssl_client_fingerprint or ""]
if not agency then
    return ngx.exit(ngx.HTTP_FORBIDDEN)
end
local purpose = ngx.var.http_juki_purpose
if not purpose then
    return ngx.exit(ngx.HTTP_FORBIDDEN)
end

local red = redis:new()
red:set_timeout(conf.timeout_ms)
local ok, err = red:connect("127.0.0.1", conf.redis_port)
if not ok then
    ngx.log(ngx.ALERT, "peer: redis connect failed: ", err)
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
end
-- the bench Redis runs under the ACL: a new connection authenticates once
if red:get_reused_times() == 0 then
    ok, err = red:auth(conf.redis_user, conf.redis_password)
    if not ok then
        ngx.log(ngx.ALERT, "peer: redis auth failed: ", err)
        red:close()
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
end

local window = ngx.time()
local res
res, err = red:eval(SCRIPT, 3,
                    "peer:purposes:" .. agency,
                    "peer:rl:" .. agency .. ":" .. window,
                    "peer:audit",
                    purpose, conf.limit, agency, ngx.var.arg_code or "")
if not res then
    ngx.log(ngx.ALERT, "peer: redis eval failed: ", err)
    red:close()
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
end
red:set_keepalive(60000, 64)

if res == "purpose" then
    return ngx.exit(ngx.HTTP_FORBIDDEN)
elseif res == "rate" then
    return ngx.exit(429)
elseif res ~= "allow" then
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
end
