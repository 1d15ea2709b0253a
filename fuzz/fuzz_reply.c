
/*
 * fuzz_reply: ngx_http_juki_decode_reply(), the check of the Redis script's
 * answer.  The input is raw RESP fed to hiredis's reader, so any reply
 * shape Redis (or something pretending to be it) could send is decoded;
 * every complete reply is decoded as undecided (decided = 0) and decided
 * (decided = 1), then freed.
 *
 * Asserts, against an independent reference:
 *  - decided = 0: NGX_OK only for [0] (allow), [1] (stopped) and
 *    [2, w > 0, 1 | 2] (rate limited, retry w us, limit 1 or 2), with the
 *    outputs set accordingly; NGX_ERROR for everything else;
 *  - decided = 1: NGX_DONE only for [3]; NGX_ERROR for everything else;
 *  - each shape may end with an anomaly rule that fired, [..., rule > 0,
 *    count >= 0], and nothing else; all elements are integers;
 *  - outputs are untouched on NGX_ERROR and NGX_DONE;
 *  - ngx_http_juki_decode_anomaly() on an accepted reply gives the rule
 *    and count of the trailer, or 0 (count untouched) without one.
 *
 * hiredis 0.14 allocates an array's element vector as soon as it reads
 * "*<n>", so inputs announcing arrays of more than 4096 elements are
 * skipped (they test the allocator, not the module).
 */


#include "ngx_shim.h"
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


#define MAX_ARRAY  4096


static int
too_large(const uint8_t *data, size_t size)
{
    size_t    i;
    uint64_t  n;

    for (i = 0; i < size; i++) {
        if (data[i] != '*') {
            continue;
        }

        n = 0;

        while (i + 1 < size && data[i + 1] >= '0' && data[i + 1] <= '9') {
            n = n * 10 + (data[++i] - '0');
            if (n > MAX_ARRAY) {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * The reference: the shapes the script returns (src/ngx_http_juki_redis.c,
 * docs/audit.md), all elements integers:
 *   [0] allow, [1] stopped, [2, w > 0, 1 | 2] rate limited  (undecided)
 *   [3] recorded as decided                                  (decided)
 * each optionally followed by an anomaly rule that fired: rule > 0, and
 * its count >= 0.
 */

static ngx_int_t
ref_decode(redisReply *reply, ngx_uint_t decided,
    ngx_http_juki_reason_e *outcome, ngx_uint_t *rule)
{
    size_t       i, n, base;
    long long    code;
    redisReply **e;

    *rule = 0;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    n = reply->elements;
    e = reply->element;

    if (n < 1 || n > 5) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (e[i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    code = e[0]->integer;
    base = (code == 2) ? 3 : 1;

    if (n == base + 2) {
        if (e[base]->integer <= 0 || e[base + 1]->integer < 0) {
            return NGX_ERROR;
        }

        *rule = (ngx_uint_t) e[base]->integer;

    } else if (n != base) {
        return NGX_ERROR;
    }

    if (code == 0 && !decided) {
        *outcome = NGX_HTTP_JUKI_ALLOW;
        return NGX_OK;
    }

    if (code == 1 && !decided) {
        *outcome = NGX_HTTP_JUKI_STOPPED;
        return NGX_OK;
    }

    if (code == 2 && !decided && e[1]->integer > 0
        && (e[2]->integer == 1 || e[2]->integer == 2))
    {
        *outcome = NGX_HTTP_JUKI_RATE_LIMITED;
        return NGX_OK;
    }

    if (code == 3 && decided) {
        return NGX_DONE;
    }

    *rule = 0;

    return NGX_ERROR;
}


static void
check(redisReply *reply)
{
    uint64_t                 retry_us, count;
    ngx_int_t                rc, want;
    ngx_uint_t               decided, limit, rule, want_rule;
    ngx_http_juki_reason_e   outcome, want_outcome;

    for (decided = 0; decided < 2; decided++) {
        outcome = (ngx_http_juki_reason_e) 77;
        retry_us = 7777;
        limit = 777;

        rc = ngx_http_juki_decode_reply(reply, decided, &outcome, &retry_us,
                                        &limit);

        want_outcome = (ngx_http_juki_reason_e) 77;
        want = ref_decode(reply, decided, &want_outcome, &want_rule);

        ngx_shim_check(rc == want,
                       "decode_reply(decided=%lu) = %ld, reference %ld "
                       "(type %d, %zu elements)", (unsigned long) decided,
                       (long) rc, (long) want, reply->type,
                       reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0);

        ngx_shim_check(outcome == want_outcome, "outcome %d, want %d",
                       (int) outcome, (int) want_outcome);

        if (want_outcome == NGX_HTTP_JUKI_RATE_LIMITED) {
            ngx_shim_check(retry_us == (uint64_t) reply->element[1]->integer
                           && retry_us > 0
                           && limit == (ngx_uint_t) reply->element[2]->integer,
                           "rate limit outputs %llu %lu",
                           (unsigned long long) retry_us,
                           (unsigned long) limit);

        } else {
            ngx_shim_check(retry_us == 7777 && limit == 777,
                           "outputs written on rc %ld", (long) rc);
        }

        if (rc != NGX_OK && rc != NGX_DONE) {
            continue;
        }

        /* only on a reply decode_reply accepted, as the module calls it */

        count = 7777;
        rule = ngx_http_juki_decode_anomaly(reply, &count);

        ngx_shim_check(rule == want_rule, "anomaly rule %lu, want %lu",
                       (unsigned long) rule, (unsigned long) want_rule);

        if (want_rule) {
            ngx_shim_check(count == (uint64_t) reply->element[
                               reply->elements - 1]->integer,
                           "anomaly count %llu", (unsigned long long) count);

        } else {
            ngx_shim_check(count == 7777, "anomaly count written");
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void         *reply;
    ngx_uint_t    n;
    redisReader  *reader;

    if (too_large(data, size)) {
        return -1;   /* not added to the corpus */
    }

    reader = redisReaderCreate();
    if (reader == NULL) {
        abort();
    }

    if (redisReaderFeed(reader, (const char *) data, size) != REDIS_OK) {
        redisReaderFree(reader);
        return 0;
    }

    /* the reader never hands out NULL replies or NULL elements */

    for (n = 0; n < 64; n++) {
        reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK
            || reply == NULL)
        {
            break;
        }

        check(reply);
        freeReplyObject(reply);
    }

    /* and the NULL reply of a dropped connection */

    if (size == 0) {
        uint64_t                retry_us = 0;
        ngx_uint_t              limit = 0;
        ngx_http_juki_reason_e  outcome = NGX_HTTP_JUKI_ALLOW;

        ngx_shim_check(ngx_http_juki_decode_reply(NULL, 0, &outcome,
                                                  &retry_us, &limit)
                       == NGX_ERROR, "NULL reply");
    }

    redisReaderFree(reader);

    return 0;
}
