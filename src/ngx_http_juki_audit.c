
/*
 * juki-gateway: audit records, chained per writer (docs/audit.md), and the
 * one Redis command per request that decides and records.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"
#include "ngx_http_juki_crypto.h"


/* values of an audit record in docs/audit.md order, "mac" last */
enum {
    NGX_HTTP_JUKI_F_ID = 0,
    NGX_HTTP_JUKI_F_TS,
    NGX_HTTP_JUKI_F_NODE,
    NGX_HTTP_JUKI_F_WRITER,
    NGX_HTTP_JUKI_F_SEQ,
    NGX_HTTP_JUKI_F_KID,
    NGX_HTTP_JUKI_F_AGENCY,
    NGX_HTTP_JUKI_F_KIND,
    NGX_HTTP_JUKI_F_CERT,
    NGX_HTTP_JUKI_F_OPERATOR,
    NGX_HTTP_JUKI_F_PURPOSE,
    NGX_HTTP_JUKI_F_SUBJECT,
    NGX_HTTP_JUKI_F_METHOD,
    NGX_HTTP_JUKI_F_URI,
    NGX_HTTP_JUKI_F_PREV,
    NGX_HTTP_JUKI_F_MAC,
    NGX_HTTP_JUKI_NFIELDS
};

/* values of a completion record, "mac" last */
enum {
    NGX_HTTP_JUKI_C_ID = 0,
    NGX_HTTP_JUKI_C_PHASE,
    NGX_HTTP_JUKI_C_TS,
    NGX_HTTP_JUKI_C_NODE,
    NGX_HTTP_JUKI_C_WRITER,
    NGX_HTTP_JUKI_C_SEQ,
    NGX_HTTP_JUKI_C_KID,
    NGX_HTTP_JUKI_C_DECISION,
    NGX_HTTP_JUKI_C_STATUS,
    NGX_HTTP_JUKI_C_BYTES,
    NGX_HTTP_JUKI_C_UPSTREAM_MS,
    NGX_HTTP_JUKI_C_PREV,
    NGX_HTTP_JUKI_C_MAC,
    NGX_HTTP_JUKI_NCFIELDS
};

/* values of a summary record of refusals, "mac" last */
enum {
    NGX_HTTP_JUKI_S_ID = 0,
    NGX_HTTP_JUKI_S_PHASE,
    NGX_HTTP_JUKI_S_TS,
    NGX_HTTP_JUKI_S_NODE,
    NGX_HTTP_JUKI_S_WRITER,
    NGX_HTTP_JUKI_S_SEQ,
    NGX_HTTP_JUKI_S_KID,
    NGX_HTTP_JUKI_S_CAUSE,
    NGX_HTTP_JUKI_S_SECOND,
    NGX_HTTP_JUKI_S_RECORDED,
    NGX_HTTP_JUKI_S_SUPPRESSED,
    NGX_HTTP_JUKI_S_PREV,
    NGX_HTTP_JUKI_S_MAC,
    NGX_HTTP_JUKI_NSFIELDS
};


typedef struct {
    u_char                       seq[NGX_INT64_LEN];
    u_char                       ts[NGX_INT64_LEN];
    u_char                       mac[NGX_HTTP_JUKI_HEX_SHA256];
} ngx_http_juki_chain_buf_t;


static ngx_int_t ngx_http_juki_chain(ngx_pool_t *pool,
    ngx_http_juki_redis_conn_t *rc, ngx_http_juki_main_conf_t *jmcf,
    char *tag, ngx_str_t *v, ngx_uint_t n, ngx_str_t *bound,
    ngx_http_juki_chain_buf_t *buf);
static u_char *ngx_http_juki_netstring(u_char *p, ngx_str_t *v);
static void ngx_http_juki_commit(ngx_http_juki_redis_conn_t *rc,
    ngx_http_juki_chain_buf_t *buf);
static ngx_int_t ngx_http_juki_request_reply(ngx_http_juki_cmd_t *cmd,
    redisReply *reply);
static ngx_int_t ngx_http_juki_completion_reply(ngx_http_juki_cmd_t *cmd,
    redisReply *reply);
static ngx_int_t ngx_http_juki_summary_reply(ngx_http_juki_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_juki_anomaly_fired(redisReply *reply);


static ngx_str_t  ngx_http_juki_stop_key = ngx_string("juki:stop");
static ngx_str_t  ngx_http_juki_nobody_stream = ngx_string("juki:{_}:audit");
static ngx_str_t  ngx_http_juki_zero = ngx_string("0");
static ngx_str_t  ngx_http_juki_by_redis = ngx_string("redis");
static ngx_str_t  ngx_http_juki_evalsha = ngx_string("EVALSHA");
static ngx_str_t  ngx_http_juki_xadd = ngx_string("XADD");
static ngx_str_t  ngx_http_juki_auto_id = ngx_string("*");

static ngx_str_t  ngx_http_juki_completion_names[] = {
    ngx_string("id"), ngx_string("phase"), ngx_string("ts"),
    ngx_string("node"), ngx_string("writer"), ngx_string("seq"),
    ngx_string("kid"), ngx_string("decision"), ngx_string("status"),
    ngx_string("bytes"), ngx_string("upstream_ms"), ngx_string("prev"),
    ngx_string("mac")
};

static ngx_str_t  ngx_http_juki_summary_names[] = {
    ngx_string("id"), ngx_string("phase"), ngx_string("ts"),
    ngx_string("node"), ngx_string("writer"), ngx_string("seq"),
    ngx_string("kid"), ngx_string("cause"), ngx_string("second"),
    ngx_string("recorded"), ngx_string("suppressed"), ngx_string("prev"),
    ngx_string("mac")
};


/*
 * NGX_OK: the command is on its way and ctx->cmd waits for the reply;
 * NGX_DECLINED: no Redis to send it to; NGX_ERROR: no memory.
 */

ngx_int_t
ngx_http_juki_audit_request(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_ctx_t *ctx)
{
    int                          argc;
    size_t                       argl[3 + 5 + 5 + NGX_HTTP_JUKI_NFIELDS];
    ngx_str_t                    v[NGX_HTTP_JUKI_NFIELDS], keys[5];
    ngx_str_t                   *decision, *stream, bound;
    ngx_uint_t                   i, nkeys;
    const char                  *argv[3 + 5 + 5 + NGX_HTTP_JUKI_NFIELDS];
    ngx_http_juki_cmd_t         *cmd;
    ngx_http_juki_agency_t      *agency;
    ngx_http_juki_chain_buf_t    buf;
    ngx_http_juki_redis_conn_t  *rc;

    rc = ngx_http_juki_redis_pick();
    if (rc == NULL) {
        return NGX_DECLINED;
    }

    agency = ctx->agency;

    ngx_str_null(&v[NGX_HTTP_JUKI_F_ID]);
    ngx_str_null(&v[NGX_HTTP_JUKI_F_AGENCY]);
    ngx_str_null(&v[NGX_HTTP_JUKI_F_KIND]);

    if (agency) {
        v[NGX_HTTP_JUKI_F_AGENCY] = agency->name;
        v[NGX_HTTP_JUKI_F_KIND] = agency->kind_name;
    }

    v[NGX_HTTP_JUKI_F_CERT] = ctx->cert;
    v[NGX_HTTP_JUKI_F_OPERATOR] = ctx->operator;
    v[NGX_HTTP_JUKI_F_PURPOSE] = ctx->purpose_code;
    v[NGX_HTTP_JUKI_F_SUBJECT] = ctx->subject;
    v[NGX_HTTP_JUKI_F_METHOD] = r->method_name;
    v[NGX_HTTP_JUKI_F_URI] = ctx->uri;

    /*
     * The mac binds the decision the gateway took itself; one left to
     * Redis is bound as "redis" and confirmed by the completion record,
     * made once the reply is in (docs/audit.md): nothing sent here would
     * let a reader of the traffic re-sign another decision.
     */

    if (ctx->reason != NGX_HTTP_JUKI_ALLOW) {
        decision = &ngx_http_juki_reasons[ctx->reason].decision;
        bound = *decision;

    } else {
        decision = NULL;
        bound = ngx_http_juki_by_redis;
    }

    if (ngx_http_juki_chain(r->pool, rc, jmcf, "A2", v, NGX_HTTP_JUKI_NFIELDS,
                            &bound, &buf)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    stream = agency ? &agency->audit_key : &ngx_http_juki_nobody_stream;

    if (decision) {
        nkeys = 1;
        keys[0] = *stream;

    } else {
        nkeys = 5;
        keys[0] = ngx_http_juki_stop_key;
        keys[1] = agency->stop_key;
        keys[2] = ctx->operator_stop_key;
        keys[3] = agency->rate_key;
        keys[4] = *stream;
    }

    argc = 0;

    argv[argc] = (char *) ngx_http_juki_evalsha.data;
    argl[argc++] = ngx_http_juki_evalsha.len;
    argv[argc] = (char *) jmcf->script_sha;
    argl[argc++] = 40;
    argv[argc] = nkeys == 1 ? "1" : "5";
    argl[argc++] = 1;

    for (i = 0; i < nkeys; i++) {
        argv[argc] = (char *) keys[i].data;
        argl[argc++] = keys[i].len;
    }

    argv[argc] = decision ? (char *) decision->data : "";
    argl[argc++] = decision ? decision->len : 0;

    if (decision == NULL && agency->rate.interval_us) {
        argv[argc] = (char *) agency->rate.interval.data;
        argl[argc++] = agency->rate.interval.len;
        argv[argc] = (char *) agency->rate.tolerance.data;
        argl[argc++] = agency->rate.tolerance.len;

    } else {
        argv[argc] = (char *) ngx_http_juki_zero.data;
        argl[argc++] = 1;
        argv[argc] = (char *) ngx_http_juki_zero.data;
        argl[argc++] = 1;
    }

    if (decision == NULL && ctx->purpose->rate.interval_us) {
        argv[argc] = (char *) ctx->purpose->rate.interval.data;
        argl[argc++] = ctx->purpose->rate.interval.len;
        argv[argc] = (char *) ctx->purpose->rate.tolerance.data;
        argl[argc++] = ctx->purpose->rate.tolerance.len;

    } else {
        argv[argc] = (char *) ngx_http_juki_zero.data;
        argl[argc++] = 1;
        argv[argc] = (char *) ngx_http_juki_zero.data;
        argl[argc++] = 1;
    }

    for (i = 0; i < NGX_HTTP_JUKI_NFIELDS; i++) {
        argv[argc] = (char *) v[i].data;
        argl[argc++] = v[i].len;
    }

    cmd = ngx_http_juki_cmd_alloc();
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->handler = ngx_http_juki_request_reply;
    cmd->data = ctx;

    if (ngx_http_juki_redis_send(rc, argc, argv, argl, cmd) != NGX_OK) {
        ngx_http_juki_cmd_free(cmd);
        return NGX_DECLINED;
    }

    ngx_http_juki_commit(rc, &buf);

    ctx->cmd = cmd;
    ctx->audit_id_len = ngx_cpymem(ctx->audit_id,
                                   v[NGX_HTTP_JUKI_F_ID].data,
                                   v[NGX_HTTP_JUKI_F_ID].len)
                        - ctx->audit_id;

    return NGX_OK;
}


/*
 * Fills the chain values of a record (id, ts, node, writer, seq, kid,
 * prev) around the caller's, and computes its mac over all but the last
 * value, then "bound" when given; the writer's state moves on only once
 * the record is sent.  A record that names another (a completion) comes
 * with its id; the others get WRITER-SEQ.
 */

static ngx_int_t
ngx_http_juki_chain(ngx_pool_t *pool, ngx_http_juki_redis_conn_t *rc,
    ngx_http_juki_main_conf_t *jmcf, char *tag, ngx_str_t *v, ngx_uint_t n,
    ngx_str_t *bound, ngx_http_juki_chain_buf_t *buf)
{
    u_char      *id, *p, *m;
    size_t       len;
    uint64_t     seq;
    ngx_uint_t   i, f;
    ngx_time_t  *tp;

    /* completions and summaries have the same values, "phase" after "id" */
    f = (tag[0] == 'A') ? 0 : 1;

    seq = rc->seq + 1;
    tp = ngx_timeofday();

    v[NGX_HTTP_JUKI_F_SEQ + f].data = buf->seq;
    v[NGX_HTTP_JUKI_F_SEQ + f].len = ngx_sprintf(buf->seq, "%uL", seq)
                                     - buf->seq;

    v[NGX_HTTP_JUKI_F_TS + f].data = buf->ts;
    v[NGX_HTTP_JUKI_F_TS + f].len = ngx_sprintf(buf->ts, "%T%03M", tp->sec,
                                                tp->msec)
                                    - buf->ts;

    v[NGX_HTTP_JUKI_F_NODE + f] = jmcf->node;

    v[NGX_HTTP_JUKI_F_WRITER + f].data = rc->writer;
    v[NGX_HTTP_JUKI_F_WRITER + f].len = NGX_HTTP_JUKI_WRITER_LEN;

    v[NGX_HTTP_JUKI_F_KID + f].data = jmcf->kid;
    v[NGX_HTTP_JUKI_F_KID + f].len = NGX_HTTP_JUKI_KID_LEN;

    v[n - 2].data = rc->last_mac;
    v[n - 2].len = rc->has_prev ? NGX_HTTP_JUKI_HEX_SHA256 : 0;

    if (v[NGX_HTTP_JUKI_F_ID].data == NULL) {
        id = ngx_pnalloc(pool, NGX_HTTP_JUKI_AUDIT_ID_MAX);
        if (id == NULL) {
            return NGX_ERROR;
        }

        v[NGX_HTTP_JUKI_F_ID].data = id;
        v[NGX_HTTP_JUKI_F_ID].len = ngx_sprintf(id, "%*s-%uL",
                                                NGX_HTTP_JUKI_WRITER_LEN,
                                                rc->writer, seq)
                                    - id;
    }

    len = 2 + (bound ? NGX_SIZE_T_LEN + 2 + bound->len : 0);

    for (i = 0; i < n - 1; i++) {
        len += NGX_SIZE_T_LEN + 2 + v[i].len;
    }

    m = ngx_pnalloc(pool, len);
    if (m == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(m, tag, 2);

    for (i = 0; i < n - 1; i++) {
        p = ngx_http_juki_netstring(p, &v[i]);
    }

    if (bound) {
        p = ngx_http_juki_netstring(p, bound);
    }

    if (ngx_http_juki_hmac_hex(jmcf->mac_key, m, p - m, buf->mac) != NGX_OK) {
        return NGX_ERROR;
    }

    v[n - 1].data = buf->mac;
    v[n - 1].len = NGX_HTTP_JUKI_HEX_SHA256;

    return NGX_OK;
}


static u_char *
ngx_http_juki_netstring(u_char *p, ngx_str_t *v)
{
    p = ngx_sprintf(p, "%uz:", v->len);

    /* an unset value is { 0, NULL }: no memcpy() from NULL */
    if (v->len) {
        p = ngx_cpymem(p, v->data, v->len);
    }

    *p++ = ',';

    return p;
}


static void
ngx_http_juki_commit(ngx_http_juki_redis_conn_t *rc,
    ngx_http_juki_chain_buf_t *buf)
{
    rc->seq++;
    ngx_memcpy(rc->last_mac, buf->mac, NGX_HTTP_JUKI_HEX_SHA256);
    rc->has_prev = 1;
}


/*
 * The script's reply, checked strictly: anything but the shapes the script
 * returns means the decision is unknown.  decided: the gateway decided
 * before Redis.  NGX_OK: *outcome (and for a rate limit *retry_us and
 * *limit) are set; NGX_DONE: recorded as the gateway decided.  A fired
 * anomaly rule adds two integers, see ngx_http_juki_decode_anomaly().
 */

ngx_int_t
ngx_http_juki_decode_reply(redisReply *reply, ngx_uint_t decided,
    ngx_http_juki_reason_e *outcome, uint64_t *retry_us, ngx_uint_t *limit)
{
    size_t        i, base;
    redisReply  **e;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0 || reply->elements > 5
        || reply->element == NULL)
    {
        return NGX_ERROR;
    }

    e = reply->element;

    for (i = 0; i < reply->elements; i++) {
        if (e[i] == NULL || e[i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    base = (e[0]->integer == 2) ? 3 : 1;

    if (reply->elements != base && reply->elements != base + 2) {
        return NGX_ERROR;
    }

    if (reply->elements == base + 2
        && (e[base]->integer <= 0 || e[base + 1]->integer < 0))
    {
        return NGX_ERROR;
    }

    switch (e[0]->integer) {

    case 0:
    case 1:
        if (decided) {
            return NGX_ERROR;
        }

        *outcome = e[0]->integer ? NGX_HTTP_JUKI_STOPPED
                                 : NGX_HTTP_JUKI_ALLOW;
        return NGX_OK;

    case 2:
        if (decided || e[1]->integer <= 0
            || (e[2]->integer != 1 && e[2]->integer != 2))
        {
            return NGX_ERROR;
        }

        *outcome = NGX_HTTP_JUKI_RATE_LIMITED;
        *retry_us = (uint64_t) e[1]->integer;
        *limit = (ngx_uint_t) e[2]->integer;
        return NGX_OK;

    case 3:
        if (!decided) {
            return NGX_ERROR;
        }

        return NGX_DONE;

    default:
        return NGX_ERROR;
    }
}


/* the rule (1-based) that fired and its count, of a reply decoded above */

ngx_uint_t
ngx_http_juki_decode_anomaly(redisReply *reply, uint64_t *count)
{
    size_t  base;

    base = (reply->element[0]->integer == 2) ? 3 : 1;

    if (reply->elements != base + 2) {
        return 0;
    }

    *count = (uint64_t) reply->element[base + 1]->integer;

    return (ngx_uint_t) reply->element[base]->integer;
}


static ngx_int_t
ngx_http_juki_request_reply(ngx_http_juki_cmd_t *cmd, redisReply *reply)
{
    ngx_http_juki_ctx_t *ctx = cmd->data;

    ngx_int_t                rc;
    uint64_t                 retry_us;
    ngx_uint_t               limit, decided;
    ngx_http_juki_reason_e   outcome;

    if (reply == NULL) {
        /* the connection is gone; its drop was logged */
        rc = NGX_DECLINED;

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_REPLY,
                                "redis refused an audit record: %*s",
                                (size_t) ngx_min(reply->len, 200),
                                reply->str);
        rc = NGX_ERROR;

    } else {
        decided = (ctx == NULL || ctx->reason != NGX_HTTP_JUKI_ALLOW);
        retry_us = 0;
        limit = 0;
        outcome = NGX_HTTP_JUKI_AUDIT_UNAVAILABLE;

        rc = ngx_http_juki_decode_reply(reply, decided, &outcome, &retry_us,
                                        &limit);

        if (rc == NGX_ERROR) {
            ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_REPLY,
                                    "unexpected reply from the redis script");

        } else {
            ngx_http_juki_anomaly_fired(reply);
        }

        if (rc != NGX_ERROR && ctx) {
            ctx->outcome = (rc == NGX_DONE) ? ctx->reason : outcome;
            ctx->retry_us = retry_us;
            ctx->limit = limit;
        }
    }

    if (ctx) {
        if (rc != NGX_OK && rc != NGX_DONE) {
            ctx->outcome = NGX_HTTP_JUKI_AUDIT_UNAVAILABLE;
        }

        ctx->cmd = NULL;
        ngx_http_juki_resume(ctx, ctx->request);
    }

    /*
     * an error reply means the record was not written, an unexpected one
     * that it is unknown whether it was: either way this writer's chain may
     * have a gap, and the connection is dropped for a new writer
     */

    return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/*
 * The script says which rule fired; which agency and operator it names
 * is in the alert on juki:alerts: the log line tells ops where to look
 */

static void
ngx_http_juki_anomaly_fired(redisReply *reply)
{
    uint64_t                    count;
    ngx_uint_t                  i;
    ngx_http_juki_anomaly_t    *rule;
    ngx_http_juki_main_conf_t  *jmcf;

    i = ngx_http_juki_decode_anomaly(reply, &count);
    if (i == 0) {
        return;
    }

    jmcf = ngx_http_juki_redis_main_conf();

    if (jmcf == NULL || i > jmcf->anomalies.nelts) {
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
                  rule->action == NGX_HTTP_JUKI_ACTION_STOP_OPERATOR
                  ? "stop_operator"
                  : rule->action == NGX_HTTP_JUKI_ACTION_STOP_AGENCY
                    ? "stop_agency" : "alert",
                  rule->dry_run ? " (dry run: nothing stopped)" : "");

    ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_ANOMALIES, 1);
}


void
ngx_http_juki_audit_completion(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_ctx_t *ctx)
{
    u_char                       status[NGX_INT_T_LEN], bytes[NGX_OFF_T_LEN];
    u_char                       ms[NGX_INT_T_LEN];
    size_t                       argl[3 + 2 * NGX_HTTP_JUKI_NCFIELDS];
    ngx_str_t                    v[NGX_HTTP_JUKI_NCFIELDS];
    ngx_uint_t                   i, code;
    ngx_msec_t                   upstream;
    const char                  *argv[3 + 2 * NGX_HTTP_JUKI_NCFIELDS];
    ngx_http_juki_cmd_t         *cmd;
    ngx_http_juki_chain_buf_t    buf;
    ngx_http_juki_redis_conn_t  *rc;
    ngx_http_upstream_state_t   *state;

    rc = ngx_http_juki_redis_pick();
    if (rc == NULL) {
        goto failed;
    }

    v[NGX_HTTP_JUKI_C_ID].data = ctx->audit_id;
    v[NGX_HTTP_JUKI_C_ID].len = ctx->audit_id_len;
    ngx_str_set(&v[NGX_HTTP_JUKI_C_PHASE], "done");

    /* what Redis decided, as its reply said: this is what binds it */
    v[NGX_HTTP_JUKI_C_DECISION] = ngx_http_juki_reasons[ctx->outcome].decision;

    code = r->err_status ? r->err_status : r->headers_out.status;

    v[NGX_HTTP_JUKI_C_STATUS].data = status;
    v[NGX_HTTP_JUKI_C_STATUS].len = ngx_sprintf(status, "%ui", code)
                                    - status;

    v[NGX_HTTP_JUKI_C_BYTES].data = bytes;
    v[NGX_HTTP_JUKI_C_BYTES].len = ngx_sprintf(bytes, "%O",
                                               r->connection->sent)
                                   - bytes;

    ngx_str_null(&v[NGX_HTTP_JUKI_C_UPSTREAM_MS]);

    if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;
        upstream = 0;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].status && state[i].response_time != (ngx_msec_t) -1)
            {
                upstream += state[i].response_time;
            }
        }

        v[NGX_HTTP_JUKI_C_UPSTREAM_MS].data = ms;
        v[NGX_HTTP_JUKI_C_UPSTREAM_MS].len = ngx_sprintf(ms, "%M", upstream)
                                             - ms;
    }

    if (ngx_http_juki_chain(r->pool, rc, jmcf, "C2", v,
                            NGX_HTTP_JUKI_NCFIELDS, NULL, &buf)
        != NGX_OK)
    {
        goto failed;
    }

    argv[0] = (char *) ngx_http_juki_xadd.data;
    argl[0] = ngx_http_juki_xadd.len;
    argv[1] = (char *) ctx->agency->audit_key.data;
    argl[1] = ctx->agency->audit_key.len;
    argv[2] = (char *) ngx_http_juki_auto_id.data;
    argl[2] = ngx_http_juki_auto_id.len;

    for (i = 0; i < NGX_HTTP_JUKI_NCFIELDS; i++) {
        argv[3 + 2 * i] = (char *) ngx_http_juki_completion_names[i].data;
        argl[3 + 2 * i] = ngx_http_juki_completion_names[i].len;
        argv[4 + 2 * i] = (char *) v[i].data;
        argl[4 + 2 * i] = v[i].len;
    }

    cmd = ngx_http_juki_cmd_alloc();
    if (cmd == NULL) {
        goto failed;
    }

    cmd->handler = ngx_http_juki_completion_reply;

    if (ngx_http_juki_redis_send(rc, 3 + 2 * NGX_HTTP_JUKI_NCFIELDS, argv,
                                 argl, cmd)
        != NGX_OK)
    {
        ngx_http_juki_cmd_free(cmd);
        goto failed;
    }

    ngx_http_juki_commit(rc, &buf);

    return;

failed:

    ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_COMPLETION_FAILURES, 1);

    ngx_http_juki_redis_log(r->connection->log, NGX_HTTP_JUKI_LOG_COMPLETION,
                            "completion record of %*s not written",
                            ctx->audit_id_len, ctx->audit_id);
}


static ngx_int_t
ngx_http_juki_completion_reply(ngx_http_juki_cmd_t *cmd, redisReply *reply)
{
    if (reply && reply->type == REDIS_REPLY_STRING) {
        return NGX_OK;
    }

    ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_COMPLETION_FAILURES, 1);

    ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_COMPLETION,
                            "a completion record was not written: %*s",
                            reply && reply->type == REDIS_REPLY_ERROR
                            ? (size_t) ngx_min(reply->len, 200)
                            : sizeof("no reply") - 1,
                            reply && reply->type == REDIS_REPLY_ERROR
                            ? reply->str : "no reply");

    return reply ? NGX_ERROR : NGX_OK;
}


/*
 * The summary of the refusals of one cause in one second that were only
 * counted (ngx_http_juki_refusal.c): an XADD of its own to the stream of
 * records with no agency, chained like any record, not waited for.
 * NGX_OK: sent, *id is its id (in a buffer of NGX_HTTP_JUKI_AUDIT_ID_MAX).
 */

ngx_int_t
ngx_http_juki_audit_summary(ngx_str_t *cause, time_t second,
    ngx_uint_t recorded, ngx_uint_t suppressed, ngx_str_t *id)
{
    u_char                       sec[NGX_TIME_T_LEN], rec[NGX_INT_T_LEN];
    u_char                       sup[NGX_INT_T_LEN];
    size_t                       argl[3 + 2 * NGX_HTTP_JUKI_NSFIELDS];
    ngx_int_t                    rv;
    ngx_str_t                    v[NGX_HTTP_JUKI_NSFIELDS];
    ngx_uint_t                   i;
    ngx_pool_t                  *pool;
    const char                  *argv[3 + 2 * NGX_HTTP_JUKI_NSFIELDS];
    ngx_http_juki_cmd_t         *cmd;
    ngx_http_juki_chain_buf_t    buf;
    ngx_http_juki_redis_conn_t  *rc;
    ngx_http_juki_main_conf_t   *jmcf;

    jmcf = ngx_http_juki_redis_main_conf();
    rc = ngx_http_juki_redis_pick();

    if (jmcf == NULL || rc == NULL) {
        return NGX_DECLINED;
    }

    /* hiredis copies the command: what it is built from can go at once */

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rv = NGX_ERROR;

    ngx_str_null(&v[NGX_HTTP_JUKI_S_ID]);
    ngx_str_set(&v[NGX_HTTP_JUKI_S_PHASE], "summary");
    v[NGX_HTTP_JUKI_S_CAUSE] = *cause;

    v[NGX_HTTP_JUKI_S_SECOND].data = sec;
    v[NGX_HTTP_JUKI_S_SECOND].len = ngx_sprintf(sec, "%T", second) - sec;
    v[NGX_HTTP_JUKI_S_RECORDED].data = rec;
    v[NGX_HTTP_JUKI_S_RECORDED].len = ngx_sprintf(rec, "%ui", recorded)
                                      - rec;
    v[NGX_HTTP_JUKI_S_SUPPRESSED].data = sup;
    v[NGX_HTTP_JUKI_S_SUPPRESSED].len = ngx_sprintf(sup, "%ui", suppressed)
                                        - sup;

    if (ngx_http_juki_chain(pool, rc, jmcf, "S1", v, NGX_HTTP_JUKI_NSFIELDS,
                            NULL, &buf)
        != NGX_OK)
    {
        goto done;
    }

    argv[0] = (char *) ngx_http_juki_xadd.data;
    argl[0] = ngx_http_juki_xadd.len;
    argv[1] = (char *) ngx_http_juki_nobody_stream.data;
    argl[1] = ngx_http_juki_nobody_stream.len;
    argv[2] = (char *) ngx_http_juki_auto_id.data;
    argl[2] = ngx_http_juki_auto_id.len;

    for (i = 0; i < NGX_HTTP_JUKI_NSFIELDS; i++) {
        argv[3 + 2 * i] = (char *) ngx_http_juki_summary_names[i].data;
        argl[3 + 2 * i] = ngx_http_juki_summary_names[i].len;
        argv[4 + 2 * i] = (char *) v[i].data;
        argl[4 + 2 * i] = v[i].len;
    }

    cmd = ngx_http_juki_cmd_alloc();
    if (cmd == NULL) {
        goto done;
    }

    cmd->handler = ngx_http_juki_summary_reply;

    if (ngx_http_juki_redis_send(rc, 3 + 2 * NGX_HTTP_JUKI_NSFIELDS, argv,
                                 argl, cmd)
        != NGX_OK)
    {
        ngx_http_juki_cmd_free(cmd);
        rv = NGX_DECLINED;
        goto done;
    }

    ngx_http_juki_commit(rc, &buf);

    id->len = ngx_cpymem(id->data, v[NGX_HTTP_JUKI_S_ID].data,
                         v[NGX_HTTP_JUKI_S_ID].len)
              - id->data;

    rv = NGX_OK;

done:

    ngx_destroy_pool(pool);

    return rv;
}


static ngx_int_t
ngx_http_juki_summary_reply(ngx_http_juki_cmd_t *cmd, redisReply *reply)
{
    if (reply && reply->type == REDIS_REPLY_STRING) {
        return NGX_OK;
    }

    ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_REPLY,
                            "a summary record of refusals was not "
                            "written: %*s",
                            reply && reply->type == REDIS_REPLY_ERROR
                            ? (size_t) ngx_min(reply->len, 200)
                            : sizeof("no reply") - 1,
                            reply && reply->type == REDIS_REPLY_ERROR
                            ? reply->str : "no reply");

    return reply ? NGX_ERROR : NGX_OK;
}


/* the record keeps the path printable: "%" and bytes outside "!".."~" */

ngx_int_t
ngx_http_juki_record_uri(ngx_pool_t *pool, ngx_str_t *uri, ngx_str_t *dst)
{
    u_char      *p, *s, *last;
    ngx_uint_t   n;

    static u_char  hex[] = "0123456789ABCDEF";

    last = uri->data + uri->len;
    n = 0;

    for (s = uri->data; s < last; s++) {
        if (*s <= 0x20 || *s >= 0x7f || *s == '%') {
            n++;
        }
    }

    if (n == 0) {
        *dst = *uri;
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, uri->len + 2 * n);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    p = dst->data;

    for (s = uri->data; s < last; s++) {
        if (*s <= 0x20 || *s >= 0x7f || *s == '%') {
            *p++ = '%';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 0xf];
            continue;
        }

        *p++ = *s;
    }

    dst->len = p - dst->data;

    return NGX_OK;
}


/*
 * Every occurrence of the resident code becomes "{code}", or, for a code
 * with one of those characters, a single character the code lacks: a
 * replacement made of characters foreign to the code can neither contain
 * it nor form it with its neighbours.
 */

ngx_int_t
ngx_http_juki_mask(ngx_pool_t *pool, ngx_str_t *s, ngx_str_t *code)
{
    u_char      *p, *q, *last, *start, *dst, *repl, c;
    size_t       rlen;
    ngx_uint_t   n;

    if (code->len == 0 || s->len < code->len) {
        return NGX_OK;
    }

    repl = ngx_http_juki_mask_repl(code, &c);
    if (repl == NULL) {
        return NGX_ERROR;
    }

    rlen = (repl == &c) ? 1 : sizeof("{code}") - 1;

    last = s->data + s->len - code->len;
    n = 0;

    for (p = s->data; p <= last; p++) {
        if (ngx_memcmp(p, code->data, code->len) == 0) {
            n++;
            p += code->len - 1;
        }
    }

    if (n == 0) {
        return NGX_OK;
    }

    dst = ngx_pnalloc(pool, s->len + n * rlen);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    q = dst;
    start = s->data;

    for (p = s->data; p <= last; p++) {
        if (ngx_memcmp(p, code->data, code->len) == 0) {
            q = ngx_cpymem(q, start, p - start);
            q = ngx_cpymem(q, repl, rlen);
            p += code->len - 1;
            start = p + 1;
        }
    }

    q = ngx_cpymem(q, start, s->data + s->len - start);

    s->data = dst;
    s->len = q - dst;

    return NGX_OK;
}


/* "{code}", or *c set to a printable character the code lacks */

u_char *
ngx_http_juki_mask_repl(ngx_str_t *code, u_char *c)
{
    u_char  *p;

    static u_char  braces[] = "{code}";

    for (p = braces; *p; p++) {
        if (ngx_strlchr(code->data, code->data + code->len, *p)) {
            break;
        }
    }

    if (*p == '\0') {
        return braces;
    }

    return (ngx_http_juki_foreign_char(code, c) == NGX_OK) ? c : NULL;
}


ngx_int_t
ngx_http_juki_foreign_char(ngx_str_t *code, u_char *c)
{
    for (*c = '*'; *c <= '~'; (*c)++) {
        if (ngx_strlchr(code->data, code->data + code->len, *c) == NULL) {
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}
