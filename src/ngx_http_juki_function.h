
/*
 * juki-gateway: the Redis Function library of group commit (docs/audit.md,
 * "The function").  One text, shared by the module, which calls it, and
 * jukictl, which loads it (`jukictl function load`): the gateway's Redis
 * credential can call it and cannot load or replace it.
 *
 * The text is a template: every "@V@" is replaced by the library's id, the
 * first 12 lower-hex digits of the SHA-256 of this template, so the library
 * is named juki_ID and its function juki_ID_batch.  A changed library is a
 * new name: versions coexist in Redis during a rolling upgrade, and a
 * gateway never calls a library other than its own.
 *
 * FCALL juki_ID_batch NUMKEYS KEY... NODE RULES GSTOP GROUP...
 *
 * KEY:   the audit lists the call appends to, each once: juki:{A}:audit,
 *        juki:{_}:audit for records of no agency.  Every other key a
 *        group touches is derived from its list's hash tag.
 * NODE:  the gateway's node name, for alerts.
 * RULES: the juki_anomaly rules, "" for none, else ";"-separated
 *        "name,threshold,window_ms,action,dry_run(0|1),per".
 * GSTOP: "" reads juki:stop; "0" or "1" is the global stop the caller
 *        read itself (Redis Cluster, where juki:stop is in another slot).
 * GROUP: one of
 *        P KI ELEMENT          append ELEMENT to KEY[KI]
 *        D KI ELEMENT OPERATOR append, and count a denial of the agency
 *        R KI BODY OPERATOR PURPOSE LIMITS SUBJECT
 *                              decide (stop switches, rate limits), append
 *                              BODY with the decision byte, then the
 *                              anomaly rules.  LIMITS: "" or "Ta tau Tp tp"
 *                              (GCRA interval and tolerance in us of the
 *                              agency and the agency+purpose limit, 0 for
 *                              none); SUBJECT: the pseudonym or "".
 *
 * Reply: { DECISIONS, [G, CODE, VALUE]... }: DECISIONS has one byte per
 * group, 0 for P and D, 1 allow, 2 stopped, 3 rate limited for R; then a
 * triplet for each rate-limited group (CODE 1: the agency's limit, 2: the
 * purpose's, VALUE the wait in us) and each anomaly rule fired (CODE 10+i
 * for rule i, VALUE the count).  A malformed call is refused before it
 * writes anything.
 *
 * A rule that stops uses SETNX: the gateway's credential may set a stop
 * switch but never overwrite one (a SET ... PX 1 would lift it).
 *
 * Cost: the groups of one call share TIME, one MGET of every stop switch
 * they need, the rate limit state (one HMGET and one HSET per agency) and
 * one RPUSH per list, and the parsed LIMITS and RULES strings are kept
 * between calls, so what a request pays in Redis is its arguments and a
 * few table operations (docs/performance.md).
 */


#ifndef _NGX_HTTP_JUKI_FUNCTION_H_INCLUDED_
#define _NGX_HTTP_JUKI_FUNCTION_H_INCLUDED_


#define NGX_HTTP_JUKI_FUNCTION_ID_LEN  12

#define NGX_HTTP_JUKI_FUNCTION_LIBRARY                                        \
    "#!lua name=juki_@V@\n"                                                   \
    "local D = {'\\1', '\\2', '\\3'}\n"                                       \
    /* the parsed LIMITS and RULES strings, kept between calls (a cache:      \
     * bounded, and only of what the arguments say) */                        \
    "local LIMS, NLIMS, RULES = {}, 0, {}\n"                                  \
    "local function limits(s)\n"                                              \
    "  local L = LIMS[s]\n"                                                   \
    "  if L == nil then\n"                                                    \
    "    local t1, u1, t2, u2 = string.match(s,\n"                            \
    "      '^(%d+) (%d+) (%d+) (%d+)$')\n"                                    \
    "    if not t1 then return nil end\n"                                     \
    "    if NLIMS >= 64 then LIMS, NLIMS = {}, 0 end\n"                       \
    "    L = {tonumber(t1), tonumber(u1), tonumber(t2), tonumber(u2)}\n"      \
    "    LIMS[s], NLIMS = L, NLIMS + 1\n"                                     \
    "  end\n"                                                                 \
    "  return L\n"                                                            \
    "end\n"                                                                   \
    "local function parse_rules(rules)\n"                                     \
    "  local P = RULES[rules]\n"                                              \
    "  if P then return P end\n"                                              \
    "  local R, WMAX, denials, per_op, per_ag = {}, 0, false, false,\n"       \
    "    false\n"                                                             \
    "  for nm, th, w, act, dry, per in string.gmatch(rules,\n"                \
    "      '([%a_]+),(%d+),(%d+),([%a_]+),([01]),(%a+)') do\n"                \
    "    w = tonumber(w)\n"                                                   \
    "    R[#R + 1] = {nm, tonumber(th), w, act, dry == '1', per}\n"           \
    "    if nm == 'denials' then denials = true\n"                            \
    "    else\n"                                                              \
    "      if w > WMAX then WMAX = w end\n"                                   \
    "      if per == 'agency' then per_ag = true else per_op = true end\n"    \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  P = {R, WMAX, denials, per_op, per_ag}\n"                              \
    "  RULES = {[rules] = P}\n"                                               \
    "  return P\n"                                                            \
    "end\n"                                                                   \
    "local function batch(keys, argv)\n"                                      \
    "  local node, rules, gstop, n = argv[1], argv[2], argv[3], #argv\n"      \
    "  --C one state per list: its agency, key prefix, stop keys, records\n"  \
    "  --C and the rate limit state read once and written once\n"             \
    "  local K, byk = {}, {}\n"                                               \
    "  for ki, k in ipairs(keys) do\n"                                        \
    "    local A = string.match(k, '^juki:{([^{}]+)}:audit$')\n"              \
    "    if not A or byk[k] then\n"                                           \
    "      return redis.error_reply('ERR juki: bad key')\n"                   \
    "    end\n"                                                               \
    "    local pre = 'juki:{' .. A .. '}:'\n"                                 \
    "    byk[k] = true\n"                                                     \
    "    K[ki] = {A = A, pre = pre, stop = pre .. 'stop', ops = {}, l = {},\n"\
    "      f = {}, tat = {}, w = {}}\n"                                       \
    "  end\n"                                                                 \
    "  --C the whole call is checked before anything is written, and the\n"   \
    "  --C stop switches it needs are collected for one MGET\n"               \
    "  local sk, want = {}, {}\n"                                             \
    "  local i, rl = 4, false\n"                                              \
    "  while i <= n do\n"                                                     \
    "    local op, c = argv[i], K[tonumber(argv[i + 1] or '')]\n"             \
    "    if not c then\n"                                                     \
    "      return redis.error_reply('ERR juki: bad key index')\n"             \
    "    end\n"                                                               \
    "    if op == 'P' and i + 2 <= n then i = i + 3\n"                        \
    "    elseif op == 'D' and i + 3 <= n then i = i + 4\n"                    \
    "    elseif op == 'R' and c.A ~= '_' and i + 6 <= n then\n"               \
    "      local O, f, lim = argv[i + 3], argv[i + 4], argv[i + 5]\n"         \
    "      if lim ~= '' then\n"                                               \
    "        local L = limits(lim)\n"                                         \
    "        if not L then\n"                                                 \
    "          return redis.error_reply('ERR juki: bad limits')\n"            \
    "        end\n"                                                           \
    "        if L[1] > 0 or L[3] > 0 then c.f[f] = true rl = true end\n"      \
    "      end\n"                                                             \
    "      local ok = c.ops[O]\n"                                             \
    "      if not ok then\n"                                                  \
    "        ok = c.pre .. 'stop:op:' .. string.lower(O)\n"                   \
    "        c.ops[O] = ok\n"                                                 \
    "      end\n"                                                             \
    "      if not want[ok] then want[ok] = true sk[#sk + 1] = ok end\n"       \
    "      ok = c.stop\n"                                                     \
    "      if not want[ok] then want[ok] = true sk[#sk + 1] = ok end\n"       \
    "      i = i + 7\n"                                                       \
    "    else return redis.error_reply('ERR juki: bad group') end\n"          \
    "  end\n"                                                                 \
    "  local P = parse_rules(rules)\n"                                        \
    "  local R, WMAX, denials, per_op, per_ag = P[1], P[2], P[3], P[4],\n"    \
    "    P[5]\n"                                                              \
    "  local RES = math.max(math.floor(WMAX / 60), 1)\n"                      \
    "  local now\n"                                                           \
    "  local function clock()\n"                                              \
    "    if not now then\n"                                                   \
    "      local t = redis.call('TIME')\n"                                    \
    "      now = t[1] * 1000000 + t[2]\n"                                     \
    "    end\n"                                                               \
    "    return now\n"                                                        \
    "  end\n"                                                                 \
    "  local global, stops = gstop == '1', {}\n"                              \
    "  if #sk > 0 then\n"                                                     \
    "    if gstop == '' then sk[#sk + 1] = 'juki:stop' end\n"                 \
    "    local v = redis.call('MGET', unpack(sk))\n"                          \
    "    for j = 1, #sk do stops[sk[j]] = v[j] ~= false end\n"                \
    "    if gstop == '' then global = stops['juki:stop'] end\n"               \
    "  end\n"                                                                 \
    "  --C the limits' theoretical arrival times: one HMGET per agency\n"     \
    "  if rl then\n"                                                          \
    "    for _, c in ipairs(K) do\n"                                          \
    "      local fl = {'_'}\n"                                                \
    "      for f in pairs(c.f) do fl[#fl + 1] = f end\n"                      \
    "      if #fl > 1 then\n"                                                 \
    "        local v = redis.call('HMGET', c.pre .. 'rl', unpack(fl))\n"      \
    "        for j = 1, #fl do c.tat[fl[j]] = tonumber(v[j]) or 0 end\n"      \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  local dec, extra, g = {}, {}, 0\n"                                     \
    "  local function fire(ri, r, c, A, pre, O)\n"                            \
    "    local w = r[3] / 1000\n"                                             \
    "    local a = {time = math.floor(clock() / 1000), node = node,\n"        \
    "      agency = A, rule = r[1], per = r[6], count = c, threshold = r[2],\n"\
    "      window_s = w, action = r[4], dry_run = r[5]}\n"                    \
    "    if r[6] == 'operator' then a.operator = O end\n"                     \
    "    if not r[5] then\n"                                                  \
    "      local why = 'anomaly ' .. r[1] .. ': ' .. c .. ' > ' .. r[2]\n"    \
    "        .. ' in ' .. w .. 's'\n"                                         \
    "      local k\n"                                                         \
    "      if r[4] == 'stop_operator' then\n"                                 \
    "        k = pre .. 'stop:op:' .. string.lower(O)\n"                      \
    "      elseif r[4] == 'stop_agency' then\n"                               \
    "        k = pre .. 'stop'\n"                                             \
    "      end\n"                                                             \
    "      if k then redis.call('SETNX', k, why) stops[k] = true end\n"       \
    "    end\n"                                                               \
    "    redis.call('PUBLISH', 'juki:alerts', cjson.encode(a))\n"             \
    "    extra[#extra + 1] = g\n"                                             \
    "    extra[#extra + 1] = 10 + ri\n"                                       \
    "    extra[#extra + 1] = c\n"                                             \
    "  end\n"                                                                 \
    "  local function once(ri, r, pre, O)\n"                                  \
    "    local k = pre .. 'fired:' .. ri\n"                                   \
    "    if r[6] == 'operator' then k = k .. ':' .. string.lower(O) end\n"    \
    "    return redis.call('SET', k, 1, 'NX', 'PX', r[3])\n"                  \
    "  end\n"                                                                 \
    /* denials per agency: two fixed buckets, the older one weighted */       \
    "  local function denied(A, pre, O)\n"                                    \
    "    for ri, r in ipairs(R) do\n"                                         \
    "      if r[1] == 'denials' then\n"                                       \
    "        local t = math.floor(clock() / 1000)\n"                          \
    "        local b = math.floor(t / r[3])\n"                                \
    "        local k = pre .. 'denials:' .. ri .. ':'\n"                      \
    "        local cur = redis.call('INCR', k .. b)\n"                        \
    "        if cur == 1 then redis.call('PEXPIRE', k .. b, 2 * r[3]) end\n"  \
    "        local p = tonumber(redis.call('GET', k .. (b - 1)) or 0)\n"      \
    "        local c = cur + math.floor(p * (1 - (t % r[3]) / r[3]))\n"       \
    "        if c > r[2] and once(ri, r, pre, O) then\n"                      \
    "          fire(ri, r, c, A, pre, O)\n"                                   \
    "        end\n"                                                           \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    /* distinct residents: pseudonyms scored by when last looked up */        \
    "  local function looked_up(z, per, S, A, pre, O)\n"                      \
    "    local t = math.floor(clock() / 1000)\n"                              \
    "    local last = redis.call('ZSCORE', z, S)\n"                           \
    "    if last then\n"                                                      \
    "      if t - tonumber(last) >= RES then\n"                               \
    "        redis.call('ZADD', z, t, S)\n"                                   \
    "        redis.call('PEXPIRE', z, WMAX)\n"                                \
    "      end\n"                                                             \
    "      return\n"                                                          \
    "    end\n"                                                               \
    "    redis.call('ZADD', z, t, S)\n"                                       \
    "    redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. (t - WMAX))\n"      \
    "    redis.call('PEXPIRE', z, WMAX)\n"                                    \
    "    for ri, r in ipairs(R) do\n"                                         \
    "      if r[1] == 'distinct_subjects' and r[6] == per then\n"             \
    "        local c = redis.call('ZCOUNT', z, '(' .. (t - r[3]), '+inf')\n"  \
    "        if c > r[2] and once(ri, r, pre, O) then\n"                      \
    "          fire(ri, r, c, A, pre, O)\n"                                   \
    "        end\n"                                                           \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  i = 4\n"                                                               \
    "  while i <= n do\n"                                                     \
    "    local op, c, e = argv[i], K[tonumber(argv[i + 1])], argv[i + 2]\n"   \
    "    local l = c.l\n"                                                     \
    "    g = g + 1\n"                                                         \
    "    if op == 'P' then\n"                                                 \
    "      l[#l + 1] = e dec[g] = '\\0' i = i + 3\n"                          \
    "    elseif op == 'D' then\n"                                             \
    "      l[#l + 1] = e dec[g] = '\\0'\n"                                    \
    "      if denials and c.A ~= '_' then\n"                                  \
    "        denied(c.A, c.pre, argv[i + 3])\n"                               \
    "      end\n"                                                             \
    "      i = i + 4\n"                                                       \
    "    else\n"                                                              \
    "      local O, f, lim, S = argv[i + 3], argv[i + 4], argv[i + 5],\n"     \
    "        argv[i + 6]\n"                                                   \
    "      i = i + 7\n"                                                       \
    "      local d = 1\n"                                                     \
    "      if global or stops[c.stop] or stops[c.ops[O]] then\n"              \
    "        d = 2\n"                                                         \
    "      elseif lim ~= '' then\n"                                           \
    "        local L = LIMS[lim] or limits(lim)\n"                            \
    "        local t1, u1, t2, u2 = L[1], L[2], L[3], L[4]\n"                 \
    "        if t1 > 0 or t2 > 0 then\n"                                      \
    "          local now, T = clock(), c.tat\n"                               \
    "          local a, p = math.max(T['_'], now), math.max(T[f], now)\n"     \
    "          local w1, w2 = 0, 0\n"                                         \
    "          if t1 > 0 then w1 = a - u1 - now end\n"                        \
    "          if t2 > 0 then w2 = p - u2 - now end\n"                        \
    "          if w1 > 0 or w2 > 0 then\n"                                    \
    "            d = 3\n"                                                     \
    "            extra[#extra + 1] = g\n"                                     \
    "            if w1 >= w2 then\n"                                          \
    "              extra[#extra + 1] = 1 extra[#extra + 1] = w1\n"            \
    "            else\n"                                                      \
    "              extra[#extra + 1] = 2 extra[#extra + 1] = w2\n"            \
    "            end\n"                                                       \
    "          else\n"                                                        \
    "            if t1 > 0 then T['_'] = a + t1 c.w['_'] = true end\n"        \
    "            if t2 > 0 then T[f] = p + t2 c.w[f] = true end\n"            \
    "          end\n"                                                         \
    "        end\n"                                                           \
    "      end\n"                                                             \
    "      l[#l + 1] = e .. D[d] dec[g] = D[d]\n"                             \
    "      if d == 1 then\n"                                                  \
    "        if S ~= '' then\n"                                               \
    "          if per_op then\n"                                              \
    "            looked_up(c.pre .. 'seen:' .. string.lower(O),\n"            \
    "              'operator', S, c.A, c.pre, O)\n"                           \
    "          end\n"                                                         \
    "          if per_ag then\n"                                              \
    "            looked_up(c.pre .. 'seen', 'agency', S, c.A, c.pre, O)\n"    \
    "          end\n"                                                         \
    "        end\n"                                                           \
    "      elseif denials then\n"                                             \
    "        denied(c.A, c.pre, O)\n"                                         \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  for ki, c in ipairs(K) do\n"                                           \
    "    if next(c.w) then\n"                                                 \
    "      local a = {}\n"                                                    \
    "      for f in pairs(c.w) do a[#a + 1] = f a[#a + 1] = c.tat[f] end\n"   \
    "      redis.call('HSET', c.pre .. 'rl', unpack(a))\n"                    \
    "    end\n"                                                               \
    "    local l = c.l\n"                                                     \
    "    for j = 1, #l, 1000 do\n"                                            \
    "      local last = math.min(j + 999, #l)\n"                              \
    "      redis.call('RPUSH', keys[ki], unpack(l, j, last))\n"               \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  local r = {table.concat(dec)}\n"                                       \
    "  for j = 1, #extra do r[j + 1] = extra[j] end\n"                        \
    "  return r\n"                                                            \
    "end\n"                                                                   \
    "redis.register_function('juki_@V@_batch', batch)\n"


#endif /* _NGX_HTTP_JUKI_FUNCTION_H_INCLUDED_ */
