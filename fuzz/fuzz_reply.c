
/*
 * fuzz_reply: ngx_http_juki_batch_decode(), the check of the reply of the
 * group commit function (src/ngx_http_juki_batch.c; the reply's shape is
 * in src/ngx_http_juki_function.h and docs/audit.md, "The function and
 * group commit").
 *
 * Input: byte 0 = the number of groups N of the call (0-255; past
 * NGX_HTTP_JUKI_BATCH_MAX the call is refused), then min(ceil(N / 8), 16)
 * bytes of a bitmap, bit i set when group i decides (R) and clear for a
 * record the gateway completed (P for even i, D for odd i; groups past
 * 128 decide), then raw RESP fed to hiredis's reader: every complete reply
 * is decoded for that call, then freed.
 *
 * Asserts, against an independent reference written from the function's
 * contract (not by calling the module):
 *  - NGX_OK exactly when the reference accepts: an array of 1 + 3k
 *    elements; the first a bulk string of exactly N bytes, one decision
 *    per group, 1-3 for an R group and 0 for P and D; then k triplets of
 *    integers (G, CODE, VALUE) with 1 <= G <= N and VALUE >= 0: CODE 1 or
 *    2 is the wait of a rate-limited group (decision 3, VALUE > 0, one
 *    only), CODE 11 .. 10 + NGX_HTTP_JUKI_RULES_MAX an anomaly rule that
 *    fired; every rate-limited group has its wait; N <= 128;
 *  - on NGX_OK, decision[], retry[] and limit[] equal the reference's for
 *    the N groups (retry and limit 0 for a group that was not limited);
 *  - the outputs are written for the N groups only and ops[] is read for
 *    them only (each array is its own allocation of exactly N entries,
 *    so AddressSanitizer sees any access past them);
 *  - a NULL reply (a dropped connection) is NGX_ERROR.
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
 * The reference: the reply of FCALL juki_ID_batch as the function builds
 * it, { DECISIONS, [G, CODE, VALUE]... }.  It checks the triplets first,
 * in a table of its own, then the decisions, the other way round from the
 * module, so that the two share no order of checks.
 */

typedef struct {
    u_char      decision;
    uint64_t    retry;
    ngx_uint_t  limit;
    ngx_uint_t  waits;
} ref_group_t;


static ngx_int_t
ref_decode(redisReply *reply, ngx_uint_t n, const u_char *ops,
    ref_group_t *ref)
{
    size_t        i, k, ntrip;
    long long     g, code, value;
    redisReply   *d, *t;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    if (n > NGX_HTTP_JUKI_BATCH_MAX) {
        return NGX_ERROR;                /* more groups than a call holds */
    }

    if (reply->elements < 1 || (reply->elements - 1) % 3) {
        return NGX_ERROR;
    }

    ntrip = (reply->elements - 1) / 3;

    for (i = 0; i < n; i++) {
        ref[i].decision = 0;
        ref[i].retry = 0;
        ref[i].limit = 0;
        ref[i].waits = 0;
    }

    /* the decisions string */

    d = reply->element[0];

    if (d->type != REDIS_REPLY_STRING || d->len != n) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        ref[i].decision = (u_char) d->str[i];
    }

    /* the triplets */

    for (k = 0; k < ntrip; k++) {
        for (i = 1; i <= 3; i++) {
            t = reply->element[3 * k + i];

            if (t->type != REDIS_REPLY_INTEGER) {
                return NGX_ERROR;
            }
        }

        g = reply->element[3 * k + 1]->integer;
        code = reply->element[3 * k + 2]->integer;
        value = reply->element[3 * k + 3]->integer;

        if (g <= 0 || (unsigned long long) g > n || value < 0) {
            return NGX_ERROR;
        }

        switch (code) {

        case 1:     /* the agency's limit: the wait in us */
        case 2:     /* the purpose's limit */
            if (value == 0 || ops[g - 1] != 'R'
                || ref[g - 1].decision != 3)
            {
                return NGX_ERROR;
            }

            if (++ref[g - 1].waits > 1) {
                return NGX_ERROR;
            }

            ref[g - 1].limit = (ngx_uint_t) code;
            ref[g - 1].retry = (uint64_t) value;
            break;

        default:
            /* rule i fired: 10 + i, i = 1 .. NGX_HTTP_JUKI_RULES_MAX */
            if (code < 11 || code > 10 + NGX_HTTP_JUKI_RULES_MAX) {
                return NGX_ERROR;
            }
        }
    }

    for (i = 0; i < n; i++) {
        switch (ops[i]) {

        case 'R':
            if (ref[i].decision != 1 && ref[i].decision != 2
                && ref[i].decision != 3)
            {
                return NGX_ERROR;
            }

            if (ref[i].decision == 3 && ref[i].waits != 1) {
                return NGX_ERROR;
            }

            break;

        case 'P':
        case 'D':
            if (ref[i].decision != 0) {
                return NGX_ERROR;
            }

            break;

        default:
            abort();
        }
    }

    return NGX_OK;
}


static void
check(redisReply *reply, ngx_uint_t n, u_char *ops)
{
    u_char       *dec;
    uint64_t     *retry;
    ngx_int_t     rc, want;
    ngx_uint_t    i, *limit;
    ref_group_t  *ref;

    /* exactly n entries each, so that ASan sees any access past them */

    dec = malloc(n ? n : 1);
    retry = malloc((n ? n : 1) * sizeof(uint64_t));
    limit = malloc((n ? n : 1) * sizeof(ngx_uint_t));
    ref = malloc((n ? n : 1) * sizeof(ref_group_t));

    if (dec == NULL || retry == NULL || limit == NULL || ref == NULL) {
        abort();
    }

    for (i = 0; i < n; i++) {
        dec[i] = 0x77;
        retry[i] = 7777;
        limit[i] = 777;
    }

    rc = ngx_http_juki_batch_decode(reply, n, ops, dec, retry, limit);
    want = ref_decode(reply, n, ops, ref);

    ngx_shim_check(rc == NGX_OK || rc == NGX_ERROR, "rc %ld", (long) rc);

#ifdef JUKI_TRACE
    fprintf(stderr, "fuzz_reply: %lu groups: rc %ld, reference %ld\n",
            (unsigned long) n, (long) rc, (long) want);
#endif

    ngx_shim_check(rc == want,
                   "batch_decode(%lu groups) = %ld, reference %ld (type %d, "
                   "%zu elements)", (unsigned long) n, (long) rc, (long) want,
                   reply->type,
                   reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0);

    if (rc == NGX_OK) {
        for (i = 0; i < n; i++) {
            ngx_shim_check(dec[i] == ref[i].decision
                           && retry[i] == ref[i].retry
                           && limit[i] == ref[i].limit,
                           "group %lu (%c): decision %u retry %llu limit "
                           "%lu, reference %u %llu %lu", (unsigned long) i,
                           ops[i], dec[i], (unsigned long long) retry[i],
                           (unsigned long) limit[i], ref[i].decision,
                           (unsigned long long) ref[i].retry,
                           (unsigned long) ref[i].limit);
        }
    }

    free(ref);
    free(limit);
    free(retry);
    free(dec);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void           *reply;
    u_char         *ops;
    size_t          nmap;
    const uint8_t  *map;
    ngx_uint_t    i, n, k;
    redisReader  *reader;

    if (size == 0) {
        /* the NULL reply of a dropped connection */
        u_char      op = 'R', dec;
        uint64_t    retry;
        ngx_uint_t  limit;

        ngx_shim_check(ngx_http_juki_batch_decode(NULL, 1, &op, &dec, &retry,
                                                  &limit)
                       == NGX_ERROR, "NULL reply");
        return 0;
    }

    n = data[0];
    nmap = ngx_min((n + 7) / 8, 16);

    if (size < 1 + nmap) {
        return 0;
    }

    map = data + 1;
    data += 1 + nmap;
    size -= 1 + nmap;

    if (too_large(data, size)) {
        return -1;   /* not added to the corpus */
    }

    ops = malloc(n ? n : 1);
    if (ops == NULL) {
        abort();
    }

    for (i = 0; i < n; i++) {
        if (i >= 8 * 16) {
            ops[i] = NGX_HTTP_JUKI_OP_DECIDE;
            continue;
        }

        k = map[i / 8] >> (i % 8) & 1;
        ops[i] = k ? NGX_HTTP_JUKI_OP_DECIDE
                   : (i & 1) ? NGX_HTTP_JUKI_OP_DENIAL
                             : NGX_HTTP_JUKI_OP_APPEND;
    }

    reader = redisReaderCreate();
    if (reader == NULL) {
        abort();
    }

    if (redisReaderFeed(reader, (const char *) data, size) != REDIS_OK) {
        goto done;
    }

    /* the reader never hands out NULL replies or NULL elements */

    for (k = 0; k < 64; k++) {
        reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK
            || reply == NULL)
        {
            break;
        }

        check(reply, n, ops);
        freeReplyObject(reply);
    }

done:

    redisReaderFree(reader);
    free(ops);

    return 0;
}
