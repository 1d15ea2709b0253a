
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
 * Cost: the groups of one call share TIME, the stop switches and the rate
 * limit state (read once, written once per agency), and every list gets
 * one RPUSH, so what a request pays in Redis is a few table operations.
 */


#ifndef _NGX_HTTP_JUKI_FUNCTION_H_INCLUDED_
#define _NGX_HTTP_JUKI_FUNCTION_H_INCLUDED_


#define NGX_HTTP_JUKI_FUNCTION_ID_LEN  12

#define NGX_HTTP_JUKI_FUNCTION_LIBRARY                                        \
    "#!lua name=juki_@V@\n"                                                   \
    "local function batch(keys, argv)\n"                                      \
    "  local node, rules, gstop, n = argv[1], argv[2], argv[3], #argv\n"      \
    /* the whole call is checked before anything is written */                \
    "  for _, k in ipairs(keys) do\n"                                        \
    "    if not string.match(k, '^juki:{[^{}]+}:audit$') then\n"             \
    "      return redis.error_reply('ERR juki: bad key')\n"                   \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  local i = 4\n"                                                         \
    "  while i <= n do\n"                                                     \
    "    local op, ki = argv[i], tonumber(argv[i + 1] or '')\n"               \
    "    if not ki or not keys[ki] then\n"                                    \
    "      return redis.error_reply('ERR juki: bad key index')\n"             \
    "    end\n"                                                               \
    "    if op == 'P' then i = i + 3\n"                                       \
    "    elseif op == 'D' then i = i + 4\n"                                   \
    "    elseif op == 'R' and keys[ki] ~= 'juki:{_}:audit' then i = i + 7\n"  \
    "    else return redis.error_reply('ERR juki: bad group') end\n"          \
    "  end\n"                                                                 \
    "  if i ~= n + 1 then\n"                                                  \
    "    return redis.error_reply('ERR juki: bad group')\n"                   \
    "  end\n"                                                                 \
    "  local R, WMAX, denials, per_op, per_ag = {}, 0, false, false, false\n" \
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
    "  local RES = math.max(math.floor(WMAX / 60), 1)\n"                      \
    "  local now\n"                                                           \
    "  local function clock()\n"                                              \
    "    if not now then\n"                                                   \
    "      local t = redis.call('TIME')\n"                                    \
    "      now = t[1] * 1000000 + t[2]\n"                                     \
    "    end\n"                                                               \
    "    return now\n"                                                        \
    "  end\n"                                                                 \
    "  local dec, extra, out, stops, tats, dirty = {}, {}, {}, {}, {}, {}\n"  \
    "  local g, global = 0, nil\n"                                            \
    "  local function stopped(k)\n"                                           \
    "    local s = stops[k]\n"                                                \
    "    if s == nil then\n"                                                  \
    "      s = redis.call('EXISTS', k) == 1\n"                                \
    "      stops[k] = s\n"                                                    \
    "    end\n"                                                               \
    "    return s\n"                                                          \
    "  end\n"                                                                 \
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
    "  local function append(ki, e)\n"                                        \
    "    local l = out[ki]\n"                                                 \
    "    if not l then l = {} out[ki] = l end\n"                              \
    "    l[#l + 1] = e\n"                                                     \
    "  end\n"                                                                 \
    /* the limits' theoretical arrival times, read once, written once */      \
    "  local function tat(pre, f)\n"                                          \
    "    local c = tats[pre]\n"                                               \
    "    if not c then c = {} tats[pre] = c end\n"                            \
    "    if c['_'] == nil or c[f] == nil then\n"                              \
    "      local v = redis.call('HMGET', pre .. 'rl', '_', f)\n"              \
    "      if c['_'] == nil then c['_'] = tonumber(v[1]) or 0 end\n"          \
    "      if c[f] == nil then c[f] = tonumber(v[2]) or 0 end\n"              \
    "    end\n"                                                               \
    "    return c\n"                                                          \
    "  end\n"                                                                 \
    "  local function set(pre, f, v)\n"                                       \
    "    tats[pre][f] = v\n"                                                  \
    "    local d = dirty[pre]\n"                                              \
    "    if not d then d = {} dirty[pre] = d end\n"                           \
    "    d[f] = true\n"                                                       \
    "  end\n"                                                                 \
    "  i = 4\n"                                                               \
    "  while i <= n do\n"                                                     \
    "    local op, ki, e = argv[i], tonumber(argv[i + 1]), argv[i + 2]\n"     \
    "    local k = keys[ki]\n"                                                \
    "    local A, pre = string.sub(k, 7, -8), string.sub(k, 1, -6)\n"         \
    "    g = g + 1\n"                                                         \
    "    if op == 'P' then\n"                                                 \
    "      append(ki, e) dec[g] = '\\0' i = i + 3\n"                          \
    "    elseif op == 'D' then\n"                                             \
    "      append(ki, e) dec[g] = '\\0'\n"                                    \
    "      if denials and A ~= '_' then denied(A, pre, argv[i + 3]) end\n"    \
    "      i = i + 4\n"                                                       \
    "    else\n"                                                              \
    "      local O, f, lim, S = argv[i + 3], argv[i + 4], argv[i + 5],\n"     \
    "        argv[i + 6]\n"                                                   \
    "      i = i + 7\n"                                                       \
    "      if global == nil then\n"                                           \
    "        if gstop == '' then global = stopped('juki:stop')\n"             \
    "        else global = gstop == '1' end\n"                                \
    "      end\n"                                                             \
    "      local d = 1\n"                                                     \
    "      if global or stopped(pre .. 'stop')\n"                             \
    "         or stopped(pre .. 'stop:op:' .. string.lower(O)) then\n"        \
    "        d = 2\n"                                                         \
    "      elseif lim ~= '' then\n"                                           \
    "        local t1, u1, t2, u2 = string.match(lim,\n"                      \
    "          '^(%d+) (%d+) (%d+) (%d+)$')\n"                                \
    "        if not t1 then\n"                                                \
    "          return redis.error_reply('ERR juki: bad limits')\n"            \
    "        end\n"                                                           \
    "        t1, u1, t2, u2 = tonumber(t1), tonumber(u1), tonumber(t2),\n"    \
    "          tonumber(u2)\n"                                                \
    "        if t1 > 0 or t2 > 0 then\n"                                      \
    "          local now = clock()\n"                                         \
    "          local c = tat(pre, f)\n"                                       \
    "          local a, p = math.max(c['_'], now), math.max(c[f], now)\n"     \
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
    "            if t1 > 0 then set(pre, '_', a + t1) end\n"                  \
    "            if t2 > 0 then set(pre, f, p + t2) end\n"                    \
    "          end\n"                                                         \
    "        end\n"                                                           \
    "      end\n"                                                             \
    "      append(ki, e .. string.char(d)) dec[g] = string.char(d)\n"         \
    "      if d == 1 then\n"                                                  \
    "        if S ~= '' then\n"                                               \
    "          if per_op then\n"                                              \
    "            looked_up(pre .. 'seen:' .. string.lower(O), 'operator',\n"  \
    "              S, A, pre, O)\n"                                           \
    "          end\n"                                                         \
    "          if per_ag then\n"                                              \
    "            looked_up(pre .. 'seen', 'agency', S, A, pre, O)\n"          \
    "          end\n"                                                         \
    "        end\n"                                                           \
    "      elseif denials then\n"                                             \
    "        denied(A, pre, O)\n"                                             \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  for pre, d in pairs(dirty) do\n"                                       \
    "    local a = {}\n"                                                      \
    "    for f in pairs(d) do\n"                                              \
    "      a[#a + 1] = f a[#a + 1] = tats[pre][f]\n"                          \
    "    end\n"                                                               \
    "    redis.call('HSET', pre .. 'rl', unpack(a))\n"                        \
    "  end\n"                                                                 \
    "  for ki, l in pairs(out) do\n"                                          \
    "    for j = 1, #l, 1000 do\n"                                            \
    "      local last = math.min(j + 999, #l)\n"                             \
    "      redis.call('RPUSH', keys[ki], unpack(l, j, last))\n"               \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  local r = {table.concat(dec)}\n"                                       \
    "  for j = 1, #extra do r[j + 1] = extra[j] end\n"                        \
    "  return r\n"                                                            \
    "end\n"                                                                   \
    "redis.register_function('juki_@V@_batch', batch)\n"


#endif /* _NGX_HTTP_JUKI_FUNCTION_H_INCLUDED_ */
