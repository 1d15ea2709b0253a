
/*
 * juki-gateway: the Lua script of the one Redis round trip.  It is built
 * at configuration time: the anomaly rules are constants in its text, so a
 * request sends no argument for them.
 *
 * KEYS: juki:stop, juki:{A}:stop, juki:{A}:stop:op:o (the operator id in
 *       lower case), juki:{A}:rl, juki:{A}:audit -- or the audit stream
 *       alone when the gateway decided already.
 * ARGV: 1 the gateway's decision or "", 2-5 GCRA interval and tolerance
 *       (us) of the agency and the purpose limit, 0 for none, 6-21 the
 *       record (docs/audit.md) but the decision.  No MAC of a decision
 *       travels: the record's mac binds "redis" when Redis decides, and
 *       the completion record the gateway writes after the reply binds
 *       what it decided.
 * juki:{A}:rl is a hash of theoretical arrival times (us): field "_" for
 * the agency, the purpose code for agency and purpose (a purpose code
 * starts with a letter or digit, so none is "_").  Redis's clock is the
 * one clock every gateway shares.  Each call from Lua costs more than the
 * arithmetic around it, so the common path makes four.
 * Reply: {0} allow, {1} stopped, {2, wait_us, limit} rate limited,
 *        {3} recorded as decided; followed by {rule, count} when an
 *        anomaly rule fired.  All keys an agency's request touches share
 *        the hash tag {A}.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_juki_module.h"


/* the parts of the script; those of the anomaly rules only when used */

static char  ngx_http_juki_script_top[] =
    "local A, O, S = ARGV[12], ARGV[15], ARGV[17]\n"
    "local now\n"
    "local fired\n"
    "local function clock()\n"
    "  if not now then\n"
    "    local t = redis.call('TIME')\n"
    "    now = t[1] * 1000000 + t[2]\n"
    "  end\n"
    "  return now\n"
    "end\n";

/*
 * an operator's sets, stops and fired marks use its id in lower case, as
 * the gateway's stop key does: "Insider" and "insider" are one operator
 */

static char  ngx_http_juki_script_fire[] =
    "local function fire(i, r, c)\n"
    "  local w = r[3] / 1000\n"
    "  local a = {time = math.floor(clock() / 1000), node = ARGV[8],\n"
    "    agency = A, rule = r[1], per = r[6], count = c, threshold = r[2],\n"
    "    window_s = w, action = r[4], dry_run = r[5]}\n"
    "  if r[6] == 'operator' then a.operator = O end\n"
    "  if not r[5] then\n"
    "    local why = 'anomaly ' .. r[1] .. ': ' .. c .. ' > ' .. r[2]\n"
    "      .. ' in ' .. w .. 's'\n"
    "    if r[4] == 'stop_operator' then\n"
    "      local k = 'juki:{' .. A .. '}:stop:op:' .. string.lower(O)\n"
    "      redis.call('SET', k, why)\n"
    "    elseif r[4] == 'stop_agency' then\n"
    "      redis.call('SET', 'juki:{' .. A .. '}:stop', why)\n"
    "    end\n"
    "  end\n"
    "  redis.call('PUBLISH', 'juki:alerts', cjson.encode(a))\n"
    "  fired = {i, c}\n"
    "end\n"
    "local function once(i, r)\n"
    "  local k = 'juki:{' .. A .. '}:fired:' .. i\n"
    "  if r[6] == 'operator' then k = k .. ':' .. string.lower(O) end\n"
    "  return redis.call('SET', k, 1, 'NX', 'PX', r[3])\n"
    "end\n";

/*
 * denials per agency: a sliding window counter of two fixed buckets, the
 * previous one weighted by how much of it the window still covers
 */

static char  ngx_http_juki_script_denied[] =
    "local function denied()\n"
    "  for i, r in ipairs(R) do\n"
    "    if r[1] == 'denials' then\n"
    "      local t = math.floor(clock() / 1000)\n"
    "      local b = math.floor(t / r[3])\n"
    "      local k = 'juki:{' .. A .. '}:denials:' .. i .. ':'\n"
    "      local cur = redis.call('INCR', k .. b)\n"
    "      if cur == 1 then redis.call('PEXPIRE', k .. b, 2 * r[3]) end\n"
    "      local prev = tonumber(redis.call('GET', k .. (b - 1)) or 0)\n"
    "      local c = cur + math.floor(prev * (1 - (t % r[3]) / r[3]))\n"
    "      if c > r[2] and once(i, r) then fire(i, r, c) end\n"
    "    end\n"
    "  end\n"
    "end\n";

/*
 * distinct residents per operator (juki:{A}:seen:o) or per agency
 * (juki:{A}:seen), exact: a sorted set of pseudonym prefixes scored by
 * when they were last looked up.  A resident looked up again is only
 * re-scored once RES ms have passed, so repeated lookups cost a read and
 * write nothing to the AOF.
 */

static char  ngx_http_juki_script_looked_up[] =
    "local function looked_up(z, per)\n"
    "  local m = string.sub(S, 1, 16)\n"
    "  local t = math.floor(clock() / 1000)\n"
    "  local last = redis.call('ZSCORE', z, m)\n"
    "  if last then\n"
    "    if t - tonumber(last) >= RES then\n"
    "      redis.call('ZADD', z, t, m)\n"
    "      redis.call('PEXPIRE', z, WMAX)\n"
    "    end\n"
    "    return\n"
    "  end\n"
    "  redis.call('ZADD', z, t, m)\n"
    "  redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. (t - WMAX))\n"
    "  redis.call('PEXPIRE', z, WMAX)\n"
    "  for i, r in ipairs(R) do\n"
    "    if r[1] == 'distinct_subjects' and r[6] == per then\n"
    "      local c = redis.call('ZCOUNT', z, '(' .. (t - r[3]), '+inf')\n"
    "      if c > r[2] and once(i, r) then fire(i, r, c) end\n"
    "    end\n"
    "  end\n"
    "end\n";

static char  ngx_http_juki_script_rec[] =
    "local function rec(d)\n"
    "  redis.call('XADD', KEYS[#KEYS], '*', 'id', ARGV[6], 'ts', ARGV[7],\n"
    "    'node', ARGV[8], 'writer', ARGV[9], 'seq', ARGV[10],\n"
    "    'kid', ARGV[11], 'agency', A, 'kind', ARGV[13],\n"
    "    'cert', ARGV[14], 'operator', O, 'purpose', ARGV[16],\n"
    "    'subject', S, 'method', ARGV[18], 'uri', ARGV[19],\n"
    "    'decision', d, 'prev', ARGV[20], 'mac', ARGV[21])\n";

static char  ngx_http_juki_script_rec_denied[] =
    "  if d ~= 'allow' and A ~= '' then denied() end\n";

static char  ngx_http_juki_script_main[] =
    "end\n"
    "local function out(t)\n"
    "  if fired then t[#t + 1] = fired[1] t[#t + 1] = fired[2] end\n"
    "  return t\n"
    "end\n"
    "if ARGV[1] ~= '' then rec(ARGV[1]) return out({3}) end\n"
    "if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) > 0 then\n"
    "  rec('deny:stopped') return out({1})\n"
    "end\n"
    "local t1, t2 = tonumber(ARGV[2]), tonumber(ARGV[4])\n"
    "if t1 > 0 or t2 > 0 then\n"
    "  local n = clock()\n"
    "  local tat = redis.call('HMGET', KEYS[4], '_', ARGV[16])\n"
    "  local a = math.max(tonumber(tat[1]) or 0, n)\n"
    "  local p = math.max(tonumber(tat[2]) or 0, n)\n"
    "  local w1, w2 = 0, 0\n"
    "  if t1 > 0 then w1 = a - tonumber(ARGV[3]) - n end\n"
    "  if t2 > 0 then w2 = p - tonumber(ARGV[5]) - n end\n"
    "  if w1 > 0 or w2 > 0 then\n"
    "    rec('deny:rate_limited')\n"
    "    if w1 >= w2 then return out({2, w1, 1}) end\n"
    "    return out({2, w2, 2})\n"
    "  end\n"
    "  if t1 == 0 then\n"
    "    redis.call('HSET', KEYS[4], ARGV[16], p + t2)\n"
    "  elseif t2 == 0 then\n"
    "    redis.call('HSET', KEYS[4], '_', a + t1)\n"
    "  else\n"
    "    redis.call('HSET', KEYS[4], '_', a + t1, ARGV[16], p + t2)\n"
    "  end\n"
    "end\n"
    "rec('allow')\n";

static char  ngx_http_juki_script_main_per_operator[] =
    "if S ~= '' then\n"
    "  looked_up('juki:{' .. A .. '}:seen:' .. string.lower(O), 'operator')\n"
    "end\n";

static char  ngx_http_juki_script_main_per_agency[] =
    "if S ~= '' then looked_up('juki:{' .. A .. '}:seen', 'agency') end\n";

static char  ngx_http_juki_script_end[] =
    "return out({0})\n";


static char *ngx_http_juki_rule_names[] = {
    "", "distinct_subjects", "denials"
};

static char *ngx_http_juki_action_names[] = {
    "", "stop_operator", "stop_agency", "alert"
};

static char *ngx_http_juki_per_names[] = {
    "", "operator", "agency"
};


/* the rules as Lua constants, the parts they need, then its SHA-1 */

ngx_int_t
ngx_http_juki_script_build(ngx_conf_t *cf, ngx_http_juki_main_conf_t *jmcf)
{
    u_char                   *p, raw[EVP_MAX_MD_SIZE];
    size_t                    len;
    ngx_uint_t                i, per_operator, per_agency, denials;
    ngx_msec_t                wmax;
    unsigned int              n;
    ngx_http_juki_anomaly_t  *rule;

    rule = jmcf->anomalies.elts;
    per_operator = 0;
    per_agency = 0;
    denials = 0;
    wmax = 0;

    for (i = 0; i < jmcf->anomalies.nelts; i++) {
        if (rule[i].type == NGX_HTTP_JUKI_RULE_DISTINCT) {
            if (rule[i].per == NGX_HTTP_JUKI_PER_AGENCY) {
                per_agency = 1;

            } else {
                per_operator = 1;
            }

            wmax = ngx_max(wmax, rule[i].window);

        } else {
            denials = 1;
        }
    }

    len = sizeof("local R = {\n}\nlocal WMAX, RES = , \n") + 2 * NGX_INT_T_LEN
          + jmcf->anomalies.nelts * (sizeof("  {'', , , '', false, ''},\n")
                                     + 2 * NGX_INT_T_LEN + 40)
          + sizeof(ngx_http_juki_script_top)
          + sizeof(ngx_http_juki_script_fire)
          + sizeof(ngx_http_juki_script_denied)
          + sizeof(ngx_http_juki_script_looked_up)
          + sizeof(ngx_http_juki_script_rec)
          + sizeof(ngx_http_juki_script_rec_denied)
          + sizeof(ngx_http_juki_script_main)
          + sizeof(ngx_http_juki_script_main_per_operator)
          + sizeof(ngx_http_juki_script_main_per_agency)
          + sizeof(ngx_http_juki_script_end);

    jmcf->script.data = ngx_pnalloc(cf->pool, len);
    if (jmcf->script.data == NULL) {
        return NGX_ERROR;
    }

    p = jmcf->script.data;

    if (jmcf->anomalies.nelts) {
        p = ngx_cpymem(p, "local R = {\n", 12);

        for (i = 0; i < jmcf->anomalies.nelts; i++) {
            p = ngx_sprintf(p, "  {'%s', %ui, %M, '%s', %s, '%s'},\n",
                            ngx_http_juki_rule_names[rule[i].type],
                            rule[i].threshold, rule[i].window,
                            ngx_http_juki_action_names[rule[i].action],
                            rule[i].dry_run ? "true" : "false",
                            ngx_http_juki_per_names[rule[i].per]);
        }

        /* a repeated lookup re-scores its resident at 1/60 window steps */

        p = ngx_sprintf(p, "}\nlocal WMAX, RES = %M, %M\n", wmax,
                        ngx_max(wmax / 60, 1));
    }

    p = ngx_cpymem(p, ngx_http_juki_script_top,
                   sizeof(ngx_http_juki_script_top) - 1);

    if (jmcf->anomalies.nelts) {
        p = ngx_cpymem(p, ngx_http_juki_script_fire,
                       sizeof(ngx_http_juki_script_fire) - 1);
    }

    if (denials) {
        p = ngx_cpymem(p, ngx_http_juki_script_denied,
                       sizeof(ngx_http_juki_script_denied) - 1);
    }

    if (per_operator || per_agency) {
        p = ngx_cpymem(p, ngx_http_juki_script_looked_up,
                       sizeof(ngx_http_juki_script_looked_up) - 1);
    }

    p = ngx_cpymem(p, ngx_http_juki_script_rec,
                   sizeof(ngx_http_juki_script_rec) - 1);

    if (denials) {
        p = ngx_cpymem(p, ngx_http_juki_script_rec_denied,
                       sizeof(ngx_http_juki_script_rec_denied) - 1);
    }

    p = ngx_cpymem(p, ngx_http_juki_script_main,
                   sizeof(ngx_http_juki_script_main) - 1);

    if (per_operator) {
        p = ngx_cpymem(p, ngx_http_juki_script_main_per_operator,
                       sizeof(ngx_http_juki_script_main_per_operator) - 1);
    }

    if (per_agency) {
        p = ngx_cpymem(p, ngx_http_juki_script_main_per_agency,
                       sizeof(ngx_http_juki_script_main_per_agency) - 1);
    }

    p = ngx_cpymem(p, ngx_http_juki_script_end,
                   sizeof(ngx_http_juki_script_end));

    jmcf->script.len = p - jmcf->script.data - 1;

    if (EVP_Digest(jmcf->script.data, jmcf->script.len, raw, &n, EVP_sha1(),
                   NULL)
        != 1)
    {
        return NGX_ERROR;
    }

    ngx_hex_dump(jmcf->script_sha, raw, 20);

    return NGX_OK;
}
