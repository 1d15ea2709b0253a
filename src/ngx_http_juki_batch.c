
/*
 * juki-gateway: group commit.  The records of every request a worker
 * handles while its connection's previous call is out go to Redis together,
 * in one FCALL of the function library (src/ngx_http_juki_function.h):
 * a request adds its record to the connection's open call and waits; a
 * posted event sends the call once the turn's other events are done, so
 * batching adds no timer and, at low load, no latency.  One reply carries
 * every record's decision.
 *
 * At most one call per connection is in flight.  Records that arrive
 * meanwhile wait in the next call, which goes out when the reply is in:
 * the busier the gateway, the larger the calls.  It also means a failed
 * call is always the last its writer sent, so the chain never has a hole
 * in the middle: the connection is dropped, the failed call's requests
 * and those waiting behind it get 503, and the next connection is a new
 * writer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_juki_module.h"
#include "ngx_http_juki_function.h"


/* the arguments' bytes of one call, past which a new call is started */
#define NGX_HTTP_JUKI_BATCH_BYTES     65536
#define NGX_HTTP_JUKI_BATCH_KEEP      16384


struct ngx_http_juki_call_s {
    ngx_queue_t                  queue;      /* rc->calls, or the free list */
    ngx_http_juki_redis_conn_t  *rc;
    ngx_msec_t                   first;      /* when its first record came */

    /* the groups' arguments, in RESP, and the lists they append to */
    u_char                      *args;
    size_t                       size;
    size_t                       len;
    ngx_uint_t                   nargs;
    ngx_str_t                   *keys[NGX_HTTP_JUKI_BATCH_MAX];
    ngx_uint_t                   nkeys;

    ngx_uint_t                   ngroups;
    u_char                       ops[NGX_HTTP_JUKI_BATCH_MAX];
    ngx_http_juki_ctx_t         *waiter[NGX_HTTP_JUKI_BATCH_MAX];

    /* the decisions, kept from the reply until the replicas have them */
    u_char                       dec[NGX_HTTP_JUKI_BATCH_MAX];
    uint64_t                     retry[NGX_HTTP_JUKI_BATCH_MAX];
    ngx_uint_t                   limit[NGX_HTTP_JUKI_BATCH_MAX];
    ngx_http_juki_cmd_t         *wait;       /* its WAIT, with replicas= */
};


static ngx_http_juki_call_t *ngx_http_juki_call_get(
    ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_call_put(ngx_http_juki_call_t *call);
static ngx_int_t ngx_http_juki_call_grow(ngx_http_juki_call_t *call,
    size_t len);
static void ngx_http_juki_call_fail(ngx_http_juki_call_t *call);
static void ngx_http_juki_batch_send(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_batch_flush(ngx_event_t *ev);
static ngx_int_t ngx_http_juki_batch_reply(ngx_http_juki_cmd_t *cmd,
    redisReply *reply);
static ngx_int_t ngx_http_juki_batch_waited(ngx_http_juki_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_juki_batch_done(ngx_http_juki_call_t *call);
static void ngx_http_juki_batch_fired(ngx_uint_t rule, uint64_t count);


static ngx_queue_t  ngx_http_juki_free_calls;
static ngx_uint_t   ngx_http_juki_free_calls_init;

static char *ngx_http_juki_rule_names[] = {
    "", "distinct_subjects", "denials"
};

static char *ngx_http_juki_action_names[] = {
    "", "stop_operator", "stop_agency", "alert"
};

static char *ngx_http_juki_per_names[] = {
    "", "operator", "agency"
};


/*
 * At configuration time: the library's id, the SHA-256 of its text, names
 * the function this configuration calls; the anomaly rules become the
 * one argument every call repeats (a few dozen bytes).
 */

ngx_int_t
ngx_http_juki_batch_conf(ngx_conf_t *cf, ngx_http_juki_main_conf_t *jmcf)
{
    u_char                   *p, raw[EVP_MAX_MD_SIZE];
    size_t                    len;
    ngx_uint_t                i;
    unsigned int              n;
    ngx_http_juki_anomaly_t  *rule;

    static u_char  library[] = NGX_HTTP_JUKI_FUNCTION_LIBRARY;

    if (EVP_Digest(library, sizeof(library) - 1, raw, &n, EVP_sha256(), NULL)
        != 1)
    {
        return NGX_ERROR;
    }

    len = sizeof("juki__batch") - 1 + NGX_HTTP_JUKI_FUNCTION_ID_LEN;

    jmcf->function.data = ngx_pnalloc(cf->pool, len);
    if (jmcf->function.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(jmcf->function.data, "juki_", 5);
    p = ngx_hex_dump(p, raw, NGX_HTTP_JUKI_FUNCTION_ID_LEN / 2);
    p = ngx_cpymem(p, "_batch", 6);
    jmcf->function.len = p - jmcf->function.data;

    rule = jmcf->anomalies.elts;

    len = jmcf->anomalies.nelts * (sizeof("distinct_subjects,,,stop_operator"
                                          ",0,operator;") - 1
                                   + 2 * NGX_INT_T_LEN);

    ngx_str_null(&jmcf->rules);

    if (len == 0) {
        return NGX_OK;
    }

    jmcf->rules.data = ngx_pnalloc(cf->pool, len);
    if (jmcf->rules.data == NULL) {
        return NGX_ERROR;
    }

    p = jmcf->rules.data;

    for (i = 0; i < jmcf->anomalies.nelts; i++) {
        p = ngx_sprintf(p, "%s%s,%ui,%M,%s,%d,%s", i ? ";" : "",
                        ngx_http_juki_rule_names[rule[i].type],
                        rule[i].threshold, rule[i].window,
                        ngx_http_juki_action_names[rule[i].action],
                        rule[i].dry_run ? 1 : 0,
                        ngx_http_juki_per_names[rule[i].per]);
    }

    jmcf->rules.len = p - jmcf->rules.data;

    return NGX_OK;
}


void
ngx_http_juki_batch_init(ngx_http_juki_redis_conn_t *rc, ngx_log_t *log)
{
    if (!ngx_http_juki_free_calls_init) {
        ngx_queue_init(&ngx_http_juki_free_calls);
        ngx_http_juki_free_calls_init = 1;
    }

    ngx_queue_init(&rc->calls);
    rc->inflight = NULL;

    rc->flush.handler = ngx_http_juki_batch_flush;
    rc->flush.data = rc;
    rc->flush.log = log;
}


/*
 * Adds one record to the connection's open call: ELEMENT for the list
 * LIST (a key of configuration lifetime), with NEXTRA more arguments of
 * its group; CTX waits for the reply, or NULL.  NGX_OK: the record is in
 * the call; NGX_ERROR: no memory, nothing was added.
 */

ngx_int_t
ngx_http_juki_batch_add(ngx_http_juki_redis_conn_t *rc, u_char op,
    ngx_str_t *list, ngx_str_t *element, ngx_str_t *extra, ngx_uint_t nextra,
    ngx_http_juki_ctx_t *ctx)
{
    u_char                *p;
    size_t                 len;
    ngx_uint_t             i, ki;
    ngx_queue_t           *q;
    ngx_http_juki_call_t  *call;

    len = 3 * (sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN) + 1 + NGX_INT_T_LEN
          + element->len;

    for (i = 0; i < nextra; i++) {
        len += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + extra[i].len;
    }

    call = NULL;

    if (!ngx_queue_empty(&rc->calls)) {
        q = ngx_queue_last(&rc->calls);
        call = ngx_queue_data(q, ngx_http_juki_call_t, queue);
    }

    ki = 0;

    if (call) {
        for (ki = 0; ki < call->nkeys; ki++) {
            if (call->keys[ki] == list
                || (call->keys[ki]->len == list->len
                    && ngx_memcmp(call->keys[ki]->data, list->data,
                                  list->len)
                       == 0))
            {
                break;
            }
        }

        /* a full call is closed: the record starts the next one */

        if (call->ngroups == NGX_HTTP_JUKI_BATCH_MAX
            || (ki == call->nkeys && call->nkeys == NGX_HTTP_JUKI_BATCH_MAX)
            || (call->len && call->len + len > NGX_HTTP_JUKI_BATCH_BYTES))
        {
            call = NULL;
            ki = 0;
        }
    }

    if (call == NULL) {
        call = ngx_http_juki_call_get(rc);
        if (call == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_insert_tail(&rc->calls, &call->queue);
    }

    if (call->size - call->len < len
        && ngx_http_juki_call_grow(call, len) != NGX_OK)
    {
        if (call->ngroups == 0) {
            ngx_queue_remove(&call->queue);
            ngx_http_juki_call_put(call);
        }

        return NGX_ERROR;
    }

    if (ki == call->nkeys) {
        call->keys[call->nkeys++] = list;
    }

    p = call->args + call->len;
    p = ngx_sprintf(p, "$1\r\n%c\r\n", op);
    p = ngx_sprintf(p, "$%uz\r\n%ui\r\n", ki < 9 ? 1 : ki < 99 ? 2 : 3,
                    ki + 1);
    p = ngx_sprintf(p, "$%uz\r\n", element->len);
    p = ngx_cpymem(p, element->data, element->len);
    *p++ = '\r'; *p++ = '\n';

    for (i = 0; i < nextra; i++) {
        p = ngx_sprintf(p, "$%uz\r\n", extra[i].len);

        if (extra[i].len) {
            p = ngx_cpymem(p, extra[i].data, extra[i].len);
        }

        *p++ = '\r'; *p++ = '\n';
    }

    call->len = p - call->args;
    call->nargs += 3 + nextra;

    if (call->ngroups == 0) {
        call->first = ngx_current_msec;
    }

    call->ops[call->ngroups] = op;
    call->waiter[call->ngroups] = ctx;

    if (ctx) {
        ctx->slot = &call->waiter[call->ngroups];
    }

    call->ngroups++;

    if (rc->inflight == NULL && !rc->flush.posted) {
        ngx_post_event(&rc->flush, &ngx_posted_events);
    }

    return NGX_OK;
}


/* the end of the turn: the open call goes out unless one is in flight */

static void
ngx_http_juki_batch_flush(ngx_event_t *ev)
{
    ngx_http_juki_batch_send(ev->data);
}


static void
ngx_http_juki_batch_send(ngx_http_juki_redis_conn_t *rc)
{
    int                          argc;
    u_char                       nkeys[NGX_INT_T_LEN], ms[NGX_INT_T_LEN];
    size_t                       argl[6 + NGX_HTTP_JUKI_BATCH_MAX];
    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    const char                  *argv[6 + NGX_HTTP_JUKI_BATCH_MAX];
    ngx_msec_int_t               left;
    ngx_http_juki_cmd_t         *cmd, *wait;
    ngx_http_juki_call_t        *call;
    ngx_http_juki_main_conf_t   *jmcf;

    if (rc->inflight || ngx_queue_empty(&rc->calls)
        || rc->peer.connection == NULL)
    {
        return;
    }

    jmcf = ngx_http_juki_redis_main_conf();

    q = ngx_queue_head(&rc->calls);
    call = ngx_queue_data(q, ngx_http_juki_call_t, queue);

    argc = 0;
    argv[argc] = "FCALL";
    argl[argc++] = 5;
    argv[argc] = (char *) jmcf->function.data;
    argl[argc++] = jmcf->function.len;
    argv[argc] = (char *) nkeys;
    argl[argc++] = ngx_sprintf(nkeys, "%ui", call->nkeys) - nkeys;

    for (i = 0; i < call->nkeys; i++) {
        argv[argc] = (char *) call->keys[i]->data;
        argl[argc++] = call->keys[i]->len;
    }

    argv[argc] = (char *) jmcf->node.data;
    argl[argc++] = jmcf->node.len;
    argv[argc] = (char *) jmcf->rules.data;
    argl[argc++] = jmcf->rules.len;
    argv[argc] = "";
    argl[argc++] = 0;

    cmd = ngx_http_juki_cmd_alloc();

    if (cmd == NULL
        || ngx_http_juki_redis_send_tail(rc, argc, argv, argl, call->nargs,
                                         call->args, call->len, cmd)
           != NGX_OK)
    {
        if (cmd) {
            ngx_http_juki_cmd_free(cmd);
        }

        /* its records are chained: the writer cannot go on without them */
        ngx_http_juki_redis_lost(rc, "connection dropped: out of memory");
        return;
    }

    /* its deadline runs from its first record on, not from now */
    cmd->deadline = call->first + jmcf->redis->timeout;
    cmd->handler = ngx_http_juki_batch_reply;
    cmd->data = call;

    ngx_queue_remove(q);
    rc->inflight = call;
    call->wait = NULL;

    if (jmcf->redis->replicas == 0) {
        return;
    }

    /*
     * replicas=K: WAIT, which Redis refuses inside a function, goes right
     * behind the call on the same connection, so it counts the replicas
     * that have the call's effects; its own timeout ends before the call's
     * deadline, so that a missing replica is told apart from a slow Redis
     */

    left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);
    left = left > 4 ? left * 3 / 4 : 1;

    argv[0] = "WAIT";
    argl[0] = 4;
    argv[1] = (char *) nkeys;
    argl[1] = ngx_sprintf(nkeys, "%ui", jmcf->redis->replicas) - nkeys;
    argv[2] = (char *) ms;
    argl[2] = ngx_sprintf(ms, "%M", (ngx_msec_t) left) - ms;

    wait = ngx_http_juki_cmd_alloc();

    if (wait == NULL) {
        ngx_http_juki_redis_lost(rc, "connection dropped: out of memory");
        return;
    }

    wait->deadline = cmd->deadline;
    wait->handler = ngx_http_juki_batch_waited;
    wait->data = call;

    if (ngx_http_juki_redis_send(rc, 3, argv, argl, wait) != NGX_OK) {
        ngx_http_juki_cmd_free(wait);
        ngx_http_juki_redis_lost(rc, "connection dropped: out of memory");
        return;
    }

    call->wait = wait;
}


/*
 * The function's reply, checked strictly: { DECISIONS, [G, CODE, VALUE]... }
 * with one decision byte per group, valid for its kind (ops), and exactly
 * one wait for each rate-limited group.  NGX_OK: decision[], retry[] and
 * limit[] are set for the NGROUPS groups; NGX_ERROR: the decisions are
 * unknown.  Pure, for the fuzzer (fuzz/fuzz_reply.c).
 */

ngx_int_t
ngx_http_juki_batch_decode(redisReply *reply, ngx_uint_t ngroups,
    u_char *ops, u_char *decision, uint64_t *retry, ngx_uint_t *limit)
{
    u_char        d;
    int64_t       g, code, value;
    ngx_uint_t    i;
    redisReply  **e;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0 || (reply->elements - 1) % 3 != 0
        || reply->element == NULL || ngroups > NGX_HTTP_JUKI_BATCH_MAX)
    {
        return NGX_ERROR;
    }

    e = reply->element;

    if (e[0] == NULL || e[0]->type != REDIS_REPLY_STRING
        || e[0]->len != (size_t) ngroups)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < ngroups; i++) {
        d = (u_char) e[0]->str[i];

        if (ops[i] == NGX_HTTP_JUKI_OP_DECIDE ? (d < 1 || d > 3) : d != 0) {
            return NGX_ERROR;
        }

        decision[i] = d;
        retry[i] = 0;
        limit[i] = 0;
    }

    for (i = 1; i < reply->elements; i += 3) {
        if (e[i] == NULL || e[i + 1] == NULL || e[i + 2] == NULL
            || e[i]->type != REDIS_REPLY_INTEGER
            || e[i + 1]->type != REDIS_REPLY_INTEGER
            || e[i + 2]->type != REDIS_REPLY_INTEGER)
        {
            return NGX_ERROR;
        }

        g = e[i]->integer;
        code = e[i + 1]->integer;
        value = e[i + 2]->integer;

        if (g < 1 || g > (int64_t) ngroups || value < 0) {
            return NGX_ERROR;
        }

        if (code == 1 || code == 2) {
            if (decision[g - 1] != 3 || limit[g - 1] || value == 0) {
                return NGX_ERROR;
            }

            limit[g - 1] = (ngx_uint_t) code;
            retry[g - 1] = (uint64_t) value;
            continue;
        }

        /* an anomaly rule fired: 10 + its number */

        if (code <= 10 || code > 10 + NGX_HTTP_JUKI_RULES_MAX) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < ngroups; i++) {
        if (decision[i] == 3 && limit[i] == 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The reply of a call.  Anything but the shapes the function returns means
 * the decisions are unknown: every request of the call gets 503 and the
 * connection is dropped.
 */

static ngx_int_t
ngx_http_juki_batch_reply(ngx_http_juki_cmd_t *cmd, redisReply *reply)
{
    ngx_http_juki_call_t *call = cmd->data;

    ngx_uint_t    i;
    redisReply  **e;

    if (reply == NULL) {
        /* the connection is gone; its drop was logged */
        goto gone;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (reply->len >= sizeof("ERR Function not found") - 1
            && ngx_strncmp(reply->str, "ERR Function not found",
                           sizeof("ERR Function not found") - 1)
               == 0)
        {
            ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_REPLY,
                                    "redis has no function %V: load the "
                                    "library with \"jukictl function "
                                    "load\"",
                                    &ngx_http_juki_redis_main_conf()
                                     ->function);

        } else {
            ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_REPLY,
                                    "redis refused %ui audit records: %*s",
                                    call->ngroups,
                                    (size_t) ngx_min(reply->len, 200),
                                    reply->str);
        }

        goto failed;
    }

    if (ngx_http_juki_batch_decode(reply, call->ngroups, call->ops,
                                   call->dec, call->retry, call->limit)
        != NGX_OK)
    {
        ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_REPLY,
                                "unexpected reply from the redis function");
        goto failed;
    }

    e = reply->element;

    for (i = 1; i < reply->elements; i += 3) {
        if (e[i + 1]->integer > 10) {
            ngx_http_juki_batch_fired((ngx_uint_t) (e[i + 1]->integer - 10),
                                      (uint64_t) e[i + 2]->integer);
        }
    }

    /* with replicas=, the decisions wait for the WAIT behind the call */

    if (call->wait == NULL) {
        ngx_http_juki_batch_done(call);
    }

    return NGX_OK;

failed:

    /*
     * an error reply means the records were not written, an unexpected
     * one that it is unknown whether they were: the call was its writer's
     * last, the connection is dropped for a new writer
     */

    if (call->wait) {
        call->wait->data = NULL;
        call->wait = NULL;
    }

    call->rc->inflight = NULL;
    ngx_http_juki_call_fail(call);

    return NGX_ERROR;

gone:

    if (call->wait) {
        call->wait->data = NULL;
        call->wait = NULL;
    }

    call->rc->inflight = NULL;
    ngx_http_juki_call_fail(call);

    return NGX_OK;
}


/*
 * The WAIT behind a call (replicas=K): fewer than K replicas within its
 * timeout fail the call's requests, whose records the master has; the
 * connection stays, since the chain goes on there without a gap
 */

static ngx_int_t
ngx_http_juki_batch_waited(ngx_http_juki_cmd_t *cmd, redisReply *reply)
{
    ngx_http_juki_call_t *call = cmd->data;

    ngx_uint_t                   k;
    ngx_http_juki_redis_conn_t  *rc;

    if (call == NULL) {
        /* its call failed before */
        return NGX_OK;
    }

    call->wait = NULL;
    rc = call->rc;
    rc->inflight = NULL;

    if (reply == NULL) {
        ngx_http_juki_call_fail(call);
        return NGX_OK;
    }

    k = ngx_http_juki_redis_main_conf()->redis->replicas;

    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_REPLY,
                                "unexpected reply to WAIT: %*s",
                                reply->type == REDIS_REPLY_ERROR
                                ? (size_t) ngx_min(reply->len, 200) : 0,
                                reply->str);
        ngx_http_juki_call_fail(call);
        return NGX_ERROR;
    }

    if (reply->integer < 0 || (ngx_uint_t) reply->integer < k) {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_REPLY,
                                "%ui audit records acknowledged by %i of "
                                "the %ui replicas required",
                                call->ngroups, (ngx_int_t) reply->integer,
                                k);
        ngx_http_juki_call_fail(call);
        ngx_http_juki_batch_send(rc);
        return NGX_OK;
    }

    ngx_http_juki_batch_done(call);

    return NGX_OK;
}


/* the decisions are known and acknowledged: every waiting request goes on */

static void
ngx_http_juki_batch_done(ngx_http_juki_call_t *call)
{
    ngx_uint_t                   i;
    ngx_http_juki_ctx_t         *ctx;
    ngx_http_juki_redis_conn_t  *rc;

    rc = call->rc;
    rc->inflight = NULL;

    for (i = 0; i < call->ngroups; i++) {
        ctx = call->waiter[i];

        if (ctx == NULL) {
            continue;
        }

        switch (call->dec[i]) {

        case 0:
            ctx->outcome = ctx->reason;
            break;

        case 1:
            ctx->outcome = NGX_HTTP_JUKI_ALLOW;
            break;

        case 2:
            ctx->outcome = NGX_HTTP_JUKI_STOPPED;
            break;

        default:
            ctx->outcome = NGX_HTTP_JUKI_RATE_LIMITED;
            ctx->retry_us = call->retry[i];
            ctx->limit = call->limit[i];
        }

        ctx->slot = NULL;
        call->waiter[i] = NULL;
        ngx_http_juki_resume(ctx, ctx->request);
    }

    ngx_http_juki_call_put(call);

    ngx_http_juki_redis_up(rc);

    /* what came meanwhile goes out now */
    ngx_http_juki_batch_send(rc);
}


/*
 * The function says which rule fired; which agency and operator it names
 * is in the alert on juki:alerts: the log line tells ops where to look
 */

static void
ngx_http_juki_batch_fired(ngx_uint_t i, uint64_t count)
{
    ngx_http_juki_anomaly_t    *rule;
    ngx_http_juki_main_conf_t  *jmcf;

    jmcf = ngx_http_juki_redis_main_conf();

    if (jmcf == NULL || i == 0 || i > jmcf->anomalies.nelts) {
        return;
    }

    rule = &((ngx_http_juki_anomaly_t *) jmcf->anomalies.elts)[i - 1];

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "juki: anomaly rule %ui fired: %s %uL > %ui in %M s, "
                  "action %s%s, alert published on juki:alerts", i,
                  rule->type == NGX_HTTP_JUKI_RULE_DENIALS ? "denials"
                  : rule->per == NGX_HTTP_JUKI_PER_AGENCY
                    ? "distinct residents of the agency"
                    : "distinct residents",
                  count, rule->threshold, rule->window / 1000,
                  ngx_http_juki_action_names[rule->action],
                  rule->dry_run ? " (dry run: nothing stopped)" : "");

    ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_ANOMALIES, 1);
}


/* every request of a call that will not be answered gets 503 */

static void
ngx_http_juki_call_fail(ngx_http_juki_call_t *call)
{
    ngx_uint_t            i;
    ngx_http_juki_ctx_t  *ctx;

    for (i = 0; i < call->ngroups; i++) {
        ctx = call->waiter[i];

        if (ctx == NULL) {
            continue;
        }

        call->waiter[i] = NULL;
        ctx->slot = NULL;
        ctx->outcome = NGX_HTTP_JUKI_AUDIT_UNAVAILABLE;

        if (!ngx_http_juki_exiting) {
            ngx_http_juki_resume(ctx, ctx->request);
        }
    }

    ngx_http_juki_call_put(call);
}


/*
 * The connection is dropped: the calls not sent yet belong to its
 * writer, whose chain ends here, so their requests fail too
 */

void
ngx_http_juki_batch_abort(ngx_http_juki_redis_conn_t *rc)
{
    ngx_queue_t           *q;
    ngx_http_juki_call_t  *call;

    if (rc->flush.posted) {
        ngx_delete_posted_event(&rc->flush);
    }

    /* only when the worker exits is a call in flight not answered */

    if (rc->inflight) {
        call = rc->inflight;
        rc->inflight = NULL;
        ngx_http_juki_call_fail(call);
    }

    while (!ngx_queue_empty(&rc->calls)) {
        q = ngx_queue_head(&rc->calls);
        ngx_queue_remove(q);

        call = ngx_queue_data(q, ngx_http_juki_call_t, queue);
        ngx_http_juki_call_fail(call);
    }
}


static ngx_http_juki_call_t *
ngx_http_juki_call_get(ngx_http_juki_redis_conn_t *rc)
{
    ngx_queue_t           *q;
    ngx_http_juki_call_t  *call;

    if (!ngx_queue_empty(&ngx_http_juki_free_calls)) {
        q = ngx_queue_head(&ngx_http_juki_free_calls);
        ngx_queue_remove(q);
        call = ngx_queue_data(q, ngx_http_juki_call_t, queue);

    } else {
        call = ngx_alloc(sizeof(ngx_http_juki_call_t), ngx_cycle->log);
        if (call == NULL) {
            return NULL;
        }

        call->args = NULL;
        call->size = 0;
    }

    call->rc = rc;
    call->len = 0;
    call->nargs = 0;
    call->nkeys = 0;
    call->ngroups = 0;

    return call;
}


static void
ngx_http_juki_call_put(ngx_http_juki_call_t *call)
{
    /* a burst's buffer is not kept for ever */

    if (call->size > NGX_HTTP_JUKI_BATCH_KEEP) {
        ngx_free(call->args);
        call->args = NULL;
        call->size = 0;
    }

    ngx_queue_insert_head(&ngx_http_juki_free_calls, &call->queue);
}


static ngx_int_t
ngx_http_juki_call_grow(ngx_http_juki_call_t *call, size_t len)
{
    u_char  *args;
    size_t   size;

    size = ngx_max(call->size * 2, 4096);

    while (size - call->len < len) {
        size *= 2;
    }

    args = ngx_alloc(size, ngx_cycle->log);
    if (args == NULL) {
        return NGX_ERROR;
    }

    if (call->len) {
        ngx_memcpy(args, call->args, call->len);
    }

    ngx_free(call->args);

    call->args = args;
    call->size = size;

    return NGX_OK;
}


/* worker exit: the calls kept for reuse go */

void
ngx_http_juki_batch_exit(void)
{
    ngx_queue_t           *q;
    ngx_http_juki_call_t  *call;

    if (!ngx_http_juki_free_calls_init) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_juki_free_calls)) {
        q = ngx_queue_head(&ngx_http_juki_free_calls);
        ngx_queue_remove(q);

        call = ngx_queue_data(q, ngx_http_juki_call_t, queue);
        ngx_free(call->args);
        ngx_free(call);
    }
}
