
/*
 * juki-gateway: the audit records (A3, docs/audit.md), packed and chained
 * per writer, and how each joins its connection's call.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"
#include "ngx_http_juki_crypto.h"


#define NGX_HTTP_JUKI_VARINT_LEN   10
#define NGX_HTTP_JUKI_U48_LEN      6


static u_char *ngx_http_juki_head(u_char *p, u_char type,
    ngx_http_juki_redis_conn_t *rc, uint64_t seq);
static u_char *ngx_http_juki_varint(u_char *p, uint64_t v);
static u_char *ngx_http_juki_u48(u_char *p, uint64_t v);
static u_char *ngx_http_juki_str(u_char *p, ngx_str_t *s);
static u_char *ngx_http_juki_str16(u_char *p, ngx_str_t *hex);
static ngx_int_t ngx_http_juki_seal(ngx_http_juki_redis_conn_t *rc,
    ngx_http_juki_main_conf_t *jmcf, ngx_str_t *agency, u_char *body,
    u_char *end);
static ngx_int_t ngx_http_juki_append(ngx_http_juki_redis_conn_t *rc,
    ngx_str_t *list, u_char *e, u_char *last, uint64_t seq);
static void ngx_http_juki_unhex(u_char *dst, u_char *hex, size_t n);


static ngx_str_t  ngx_http_juki_nobody_list = ngx_string("juki:{_}:audit");
static ngx_str_t  ngx_http_juki_nobody = ngx_string("_");
static ngx_str_t  ngx_http_juki_zero = ngx_string("0");
static ngx_str_t  ngx_http_juki_tag = ngx_string("juki-v3");


/* the decision codes of docs/audit.md, by reason */

static u_char  ngx_http_juki_codes[] = {
    1,      /* allow */
    16,     /* unverified_certificate */
    17,     /* unknown_agency */
    19,     /* bad_purpose */
    20,     /* bad_operator */
    21,     /* purpose_not_permitted */
    22,     /* resident_code_forbidden */
    18,     /* bad_request */
    2,      /* stopped */
    3,      /* rate_limited */
    0       /* audit_unavailable: never recorded */
};


ngx_uint_t
ngx_http_juki_decision_code(ngx_http_juki_reason_e reason)
{
    return ngx_http_juki_codes[reason];
}


/*
 * The audit record of a request (A3), added to the connection's open
 * call.  A decision the gateway took is in the record, under its mac; one
 * left to Redis is a byte the function appends after the mac, bound by
 * the completion record the gateway writes once it has read the reply
 * (docs/audit.md): nothing sent here would let a reader of the traffic
 * sign another decision.
 *
 * NGX_OK: the record is in the call and ctx waits for the reply;
 * NGX_DECLINED: no Redis to send it to; NGX_ERROR: no memory.
 */

ngx_int_t
ngx_http_juki_audit_request(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_ctx_t *ctx)
{
    u_char                       op, gd, *e, *p, *mac;
    u_char                       limits[4 * NGX_INT_T_LEN + 4];
    u_char                       subject[NGX_HTTP_JUKI_MAC16];
    size_t                       len;
    uint64_t                     seq;
    ngx_str_t                    extra[4], *list, *aname, element;
    ngx_uint_t                   nextra;
    ngx_http_juki_rate_t        *ar, *pr;
    ngx_http_juki_agency_t      *agency;
    ngx_http_juki_redis_conn_t  *rc;

    /*
     * Only an allowed request is left for Redis to decide; every other
     * reason is the gateway's own and has a code of its own (>= 16).  An
     * outcome that is never recorded must not reach here with a code of
     * 0, nor one only Redis decides (stopped, rate_limited: codes 2, 3,
     * which no reader accepts as a gdecision).
     */
    if (ctx->reason >= NGX_HTTP_JUKI_STOPPED
        || (ctx->reason == NGX_HTTP_JUKI_ALLOW
            && (ctx->agency == NULL || ctx->purpose == NULL)))
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "juki: no record for reason %ui",
                      (ngx_uint_t) ctx->reason);
        return NGX_ERROR;
    }

    rc = ngx_http_juki_redis_pick();
    if (rc == NULL) {
        return NGX_DECLINED;
    }

    agency = ctx->agency;

    list = agency ? &agency->audit_key : &ngx_http_juki_nobody_list;
    aname = agency ? &agency->name : &ngx_http_juki_nobody;

    len = 1 + NGX_HTTP_JUKI_WRITER_RAW + NGX_HTTP_JUKI_VARINT_LEN
          + NGX_HTTP_JUKI_U48_LEN + 1
          + 2 * (1 + NGX_HTTP_JUKI_MAC16)
          + 4 * NGX_HTTP_JUKI_VARINT_LEN + ctx->operator.len
          + ctx->purpose_code.len + r->method_name.len + ctx->uri.len
          + 1 + NGX_HTTP_JUKI_MAC16 + 1;

    e = ngx_pnalloc(r->pool, len);
    if (e == NULL) {
        return NGX_ERROR;
    }

    seq = rc->seq + 1;
    gd = (ctx->reason == NGX_HTTP_JUKI_ALLOW)
         ? 0 : ngx_http_juki_codes[ctx->reason];  /* non-zero: checked above */

    p = ngx_http_juki_head(e, 'A', rc, seq);
    *p++ = (u_char) (agency ? agency->kind : 0);
    p = ngx_http_juki_str16(p, &ctx->cert);
    p = ngx_http_juki_str16(p, &ctx->subject);
    p = ngx_http_juki_str(p, &ctx->operator);
    p = ngx_http_juki_str(p, &ctx->purpose_code);
    p = ngx_http_juki_str(p, &r->method_name);
    p = ngx_http_juki_str(p, &ctx->uri);
    *p++ = gd;

    if (ngx_http_juki_seal(rc, jmcf, aname, e, p) != NGX_OK) {
        return NGX_ERROR;
    }

    mac = p;
    p += NGX_HTTP_JUKI_MAC16;

    nextra = 0;

    if (gd) {
        /* the decision byte of a record the gateway decided is its own */
        *p++ = gd;
        op = agency ? NGX_HTTP_JUKI_OP_DENIAL : NGX_HTTP_JUKI_OP_APPEND;

        if (agency) {
            extra[nextra++] = ctx->operator;
        }

    } else {
        op = NGX_HTTP_JUKI_OP_DECIDE;

        extra[nextra++] = ctx->operator;
        extra[nextra++] = ctx->purpose_code;

        ar = &agency->rate;
        pr = &ctx->purpose->rate;

        extra[2].data = limits;
        extra[2].len = 0;

        if (ar->interval_us || pr->interval_us) {
            extra[2].len = ngx_sprintf(limits, "%V %V %V %V",
                                 ar->interval_us ? &ar->interval
                                                 : &ngx_http_juki_zero,
                                 ar->interval_us ? &ar->tolerance
                                                 : &ngx_http_juki_zero,
                                 pr->interval_us ? &pr->interval
                                                 : &ngx_http_juki_zero,
                                 pr->interval_us ? &pr->tolerance
                                                 : &ngx_http_juki_zero)
                           - limits;
        }

        nextra++;

        extra[nextra].data = subject;
        extra[nextra].len = 0;

        if (ctx->subject.len >= 2 * NGX_HTTP_JUKI_MAC16) {
            ngx_http_juki_unhex(subject, ctx->subject.data,
                                NGX_HTTP_JUKI_MAC16);
            extra[nextra].len = NGX_HTTP_JUKI_MAC16;
        }

        nextra++;
    }

    element.data = e;
    element.len = p - e;

    if (ngx_http_juki_batch_add(rc, op, list, &element, extra, nextra, ctx)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc->seq = seq;
    ngx_memcpy(rc->last_mac, mac, NGX_HTTP_JUKI_MAC16);

    ngx_memcpy(ctx->awriter, rc->writer_raw, NGX_HTTP_JUKI_WRITER_RAW);
    ctx->aseq = seq;
    ctx->audit_id_len = ngx_sprintf(ctx->audit_id, "%*s-%uL",
                                    (size_t) NGX_HTTP_JUKI_WRITER_LEN,
                                    rc->writer, seq)
                        - ctx->audit_id;

    return NGX_OK;
}


/*
 * The writer record (W), seq 0 of every writer: who it is, under which
 * key, on which node.  It opens the first call of a connection.
 */

ngx_int_t
ngx_http_juki_audit_writer(ngx_http_juki_redis_conn_t *rc)
{
    u_char                      *p;
    u_char                       e[1 + NGX_HTTP_JUKI_WRITER_RAW
                                   + NGX_HTTP_JUKI_U48_LEN
                                   + NGX_HTTP_JUKI_KID_LEN / 2
                                   + NGX_HTTP_JUKI_VARINT_LEN
                                   + NGX_HTTP_JUKI_NAME_MAX + 1
                                   + NGX_HTTP_JUKI_MAC16];
    ngx_time_t                  *tp;
    ngx_http_juki_main_conf_t   *jmcf;

    jmcf = ngx_http_juki_redis_main_conf();

    if (jmcf == NULL || jmcf->node.len > NGX_HTTP_JUKI_NAME_MAX) {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();

    p = e;
    *p++ = 'W';
    p = ngx_cpymem(p, rc->writer_raw, NGX_HTTP_JUKI_WRITER_RAW);
    p = ngx_http_juki_u48(p, (uint64_t) tp->sec * 1000 + tp->msec);
    ngx_http_juki_unhex(p, jmcf->kid, NGX_HTTP_JUKI_KID_LEN / 2);
    p += NGX_HTTP_JUKI_KID_LEN / 2;
    p = ngx_http_juki_str(p, &jmcf->node);
    *p++ = 1;

    if (ngx_http_juki_seal(rc, jmcf, &ngx_http_juki_nobody, e, p) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_juki_append(rc, &ngx_http_juki_nobody_list, e,
                                p + NGX_HTTP_JUKI_MAC16, 0);
}


/*
 * The completion record (C) of a request Redis decided: it names the
 * audit record it completes and binds the decision the gateway read in
 * the reply.  It rides the next call; nobody waits for it.
 */

void
ngx_http_juki_audit_completion(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_ctx_t *ctx)
{
    u_char                      *p;
    u_char                       e[1 + NGX_HTTP_JUKI_WRITER_RAW
                                   + NGX_HTTP_JUKI_VARINT_LEN
                                   + NGX_HTTP_JUKI_U48_LEN
                                   + NGX_HTTP_JUKI_WRITER_RAW
                                   + NGX_HTTP_JUKI_VARINT_LEN + 1
                                   + 3 * NGX_HTTP_JUKI_VARINT_LEN
                                   + NGX_HTTP_JUKI_MAC16];
    uint64_t                     seq, upstream;
    ngx_uint_t                   i, code;
    ngx_http_juki_redis_conn_t  *rc;
    ngx_http_upstream_state_t   *state;

    rc = ngx_http_juki_redis_pick();
    if (rc == NULL) {
        goto failed;
    }

    code = r->err_status ? r->err_status : r->headers_out.status;

    /* milliseconds + 1; 0: no upstream */
    upstream = 0;

    if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;
        upstream = 1;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].status && state[i].response_time != (ngx_msec_t) -1)
            {
                upstream += state[i].response_time;
            }
        }
    }

    seq = rc->seq + 1;

    p = ngx_http_juki_head(e, 'C', rc, seq);
    p = ngx_cpymem(p, ctx->awriter, NGX_HTTP_JUKI_WRITER_RAW);
    p = ngx_http_juki_varint(p, ctx->aseq);

    /* what Redis decided, as its reply said: this is what binds it */
    *p++ = ngx_http_juki_codes[ctx->outcome];

    p = ngx_http_juki_varint(p, code);
    p = ngx_http_juki_varint(p, r->connection->sent > 0
                                ? (uint64_t) r->connection->sent : 0);
    p = ngx_http_juki_varint(p, upstream);

    if (ngx_http_juki_seal(rc, jmcf, &ctx->agency->name, e, p) != NGX_OK
        || ngx_http_juki_append(rc, &ctx->agency->audit_key, e,
                                p + NGX_HTTP_JUKI_MAC16, seq)
           != NGX_OK)
    {
        goto failed;
    }

    return;

failed:

    ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_COMPLETION_FAILURES, 1);

    ngx_http_juki_redis_log(r->connection->log, NGX_HTTP_JUKI_LOG_COMPLETION,
                            "completion record of %*s not written",
                            ctx->audit_id_len, ctx->audit_id);
}


/*
 * The summary (S) of the refusals of one cause in one second that were
 * only counted (ngx_http_juki_refusal.c), in the list of records with no
 * agency, not waited for.  NGX_OK: added, *id is its id (in a buffer of
 * NGX_HTTP_JUKI_AUDIT_ID_MAX).
 */

ngx_int_t
ngx_http_juki_audit_summary(ngx_http_juki_reason_e cause, time_t second,
    ngx_uint_t recorded, ngx_uint_t suppressed, ngx_str_t *id)
{
    u_char                      *p;
    u_char                       e[1 + NGX_HTTP_JUKI_WRITER_RAW
                                   + NGX_HTTP_JUKI_VARINT_LEN
                                   + NGX_HTTP_JUKI_U48_LEN + 1
                                   + 3 * NGX_HTTP_JUKI_VARINT_LEN
                                   + NGX_HTTP_JUKI_MAC16];
    uint64_t                     seq;
    ngx_http_juki_redis_conn_t  *rc;
    ngx_http_juki_main_conf_t   *jmcf;

    jmcf = ngx_http_juki_redis_main_conf();
    rc = ngx_http_juki_redis_pick();

    if (jmcf == NULL || rc == NULL) {
        return NGX_DECLINED;
    }

    seq = rc->seq + 1;

    p = ngx_http_juki_head(e, 'S', rc, seq);
    *p++ = ngx_http_juki_codes[cause];
    p = ngx_http_juki_varint(p, (uint64_t) second);
    p = ngx_http_juki_varint(p, recorded);
    p = ngx_http_juki_varint(p, suppressed);

    if (ngx_http_juki_seal(rc, jmcf, &ngx_http_juki_nobody, e, p) != NGX_OK
        || ngx_http_juki_append(rc, &ngx_http_juki_nobody_list, e,
                                p + NGX_HTTP_JUKI_MAC16, seq)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    id->len = ngx_sprintf(id->data, "%*s-%uL",
                          (size_t) NGX_HTTP_JUKI_WRITER_LEN, rc->writer, seq)
              - id->data;

    return NGX_OK;
}


/* type, writer, seq (none for the writer record) and the time */

static u_char *
ngx_http_juki_head(u_char *p, u_char type, ngx_http_juki_redis_conn_t *rc,
    uint64_t seq)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    *p++ = type;
    p = ngx_cpymem(p, rc->writer_raw, NGX_HTTP_JUKI_WRITER_RAW);
    p = ngx_http_juki_varint(p, seq);

    return ngx_http_juki_u48(p, (uint64_t) tp->sec * 1000 + tp->msec);
}


/* unsigned LEB128, the minimal encoding */

static u_char *
ngx_http_juki_varint(u_char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (u_char) (v | 0x80);
        v >>= 7;
    }

    *p++ = (u_char) v;

    return p;
}


static u_char *
ngx_http_juki_u48(u_char *p, uint64_t v)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_JUKI_U48_LEN; i++) {
        p[i] = (u_char) (v >> (8 * (NGX_HTTP_JUKI_U48_LEN - 1 - i)));
    }

    return p + NGX_HTTP_JUKI_U48_LEN;
}


static u_char *
ngx_http_juki_str(u_char *p, ngx_str_t *s)
{
    p = ngx_http_juki_varint(p, s->len);

    /* an unset value is { 0, NULL }: no memcpy() from NULL */
    if (s->len) {
        p = ngx_cpymem(p, s->data, s->len);
    }

    return p;
}


/* a hex SHA-256 or HMAC kept as its first 16 bytes; none: empty */

static u_char *
ngx_http_juki_str16(u_char *p, ngx_str_t *hex)
{
    if (hex->len < 2 * NGX_HTTP_JUKI_MAC16) {
        *p++ = 0;
        return p;
    }

    *p++ = NGX_HTTP_JUKI_MAC16;
    ngx_http_juki_unhex(p, hex->data, NGX_HTTP_JUKI_MAC16);

    return p + NGX_HTTP_JUKI_MAC16;
}


/* lower or upper case hex digits the module itself made */

static void
ngx_http_juki_unhex(u_char *dst, u_char *hex, size_t n)
{
    u_char      c, d;
    ngx_uint_t  i, j;

    for (i = 0; i < n; i++) {
        d = 0;

        for (j = 0; j < 2; j++) {
            c = hex[2 * i + j] | 0x20;
            d = (u_char) (d << 4) | (u_char) (c >= 'a' ? c - 'a' + 10
                                                       : c - '0');
        }

        dst[i] = d;
    }
}


/*
 * mac16 = the first 16 bytes of HMAC-SHA256(k_mac, "juki-v3" ||
 * str(agency) || prev16 || body), written at end
 */

static ngx_int_t
ngx_http_juki_seal(ngx_http_juki_redis_conn_t *rc,
    ngx_http_juki_main_conf_t *jmcf, ngx_str_t *agency, u_char *body,
    u_char *end)
{
    u_char     alen[NGX_HTTP_JUKI_VARINT_LEN], mac[32];
    ngx_str_t  parts[5];

    parts[0] = ngx_http_juki_tag;
    parts[1].data = alen;
    parts[1].len = ngx_http_juki_varint(alen, agency->len) - alen;
    parts[2] = *agency;
    parts[3].data = rc->last_mac;
    parts[3].len = NGX_HTTP_JUKI_MAC16;
    parts[4].data = body;
    parts[4].len = end - body;

    if (ngx_http_juki_hmac_parts(jmcf->mac_key, parts, 5, mac) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memcpy(end, mac, NGX_HTTP_JUKI_MAC16);

    return NGX_OK;
}


/* a record nobody waits for joins the call; the chain moves on */

static ngx_int_t
ngx_http_juki_append(ngx_http_juki_redis_conn_t *rc, ngx_str_t *list,
    u_char *e, u_char *last, uint64_t seq)
{
    ngx_str_t  element;

    element.data = e;
    element.len = last - e;

    if (ngx_http_juki_batch_add(rc, NGX_HTTP_JUKI_OP_APPEND, list, &element,
                                NULL, 0, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc->seq = seq;
    ngx_memcpy(rc->last_mac, last - NGX_HTTP_JUKI_MAC16, NGX_HTTP_JUKI_MAC16);

    return NGX_OK;
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
