
/*
 * juki-gateway: the request path.  The access-phase handler decides what
 * it can alone, sends the one Redis command that decides the rest and
 * records the request, suspends the request, and lets it go on only once
 * Redis has acknowledged the record.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"
#include "ngx_http_juki_crypto.h"


static ngx_http_juki_ctx_t *ngx_http_juki_get_ctx(ngx_http_request_t *r);
static ngx_int_t ngx_http_juki_decide(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_loc_conf_t *jlcf,
    ngx_http_juki_ctx_t *ctx);
static ngx_int_t ngx_http_juki_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value);
static ngx_int_t ngx_http_juki_ambiguous(ngx_http_request_t *r,
    ngx_http_juki_loc_conf_t *jlcf, ngx_http_juki_ctx_t *ctx,
    ngx_array_t *values);
static ngx_int_t ngx_http_juki_subject(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_loc_conf_t *jlcf,
    ngx_http_juki_ctx_t *ctx);
static ngx_int_t ngx_http_juki_mask_values(ngx_http_request_t *r,
    ngx_http_juki_ctx_t *ctx, ngx_array_t *values);
static ngx_uint_t ngx_http_juki_raw_path_ok(ngx_http_request_t *r);
static ngx_int_t ngx_http_juki_log_request_line(ngx_http_request_t *r,
    ngx_str_t *uri, ngx_uint_t more);
static ngx_int_t ngx_http_juki_finish(ngx_http_request_t *r,
    ngx_http_juki_ctx_t *ctx);
static ngx_int_t ngx_http_juki_send_denial(ngx_http_request_t *r,
    ngx_http_juki_ctx_t *ctx);
static ngx_int_t ngx_http_juki_add_response_header(ngx_http_request_t *r,
    char *name, u_char *value, size_t len);
static ngx_int_t ngx_http_juki_set_headers(ngx_http_request_t *r,
    ngx_http_juki_ctx_t *ctx);
static ngx_int_t ngx_http_juki_redact_request_line(ngx_http_request_t *r);
static ngx_int_t ngx_http_juki_key(ngx_pool_t *pool, ngx_str_t *dst,
    ngx_str_t *prefix, char *sep, ngx_str_t *name);
static void ngx_http_juki_wake(ngx_http_request_t *r);
static u_char *ngx_http_juki_log_error(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);
static void ngx_http_juki_blank(u_char *start, u_char *end, ngx_str_t *code);
static u_char *ngx_http_juki_cut(u_char *start, u_char *end, ngx_str_t *s);
static void ngx_http_juki_cleanup(void *data);
static void ngx_http_juki_log_refusal(ngx_http_request_t *r);


ngx_http_juki_reason_t  ngx_http_juki_reasons[] = {
    { ngx_string("allow"), ngx_string("allow"), NGX_HTTP_OK },
    { ngx_string("unverified_certificate"),
      ngx_string("deny:unverified_certificate"), NGX_HTTP_FORBIDDEN },
    { ngx_string("unknown_agency"),
      ngx_string("deny:unknown_agency"), NGX_HTTP_FORBIDDEN },
    { ngx_string("bad_purpose"),
      ngx_string("deny:bad_purpose"), NGX_HTTP_BAD_REQUEST },
    { ngx_string("bad_operator"),
      ngx_string("deny:bad_operator"), NGX_HTTP_BAD_REQUEST },
    { ngx_string("purpose_not_permitted"),
      ngx_string("deny:purpose_not_permitted"), NGX_HTTP_FORBIDDEN },
    { ngx_string("resident_code_forbidden"),
      ngx_string("deny:resident_code_forbidden"), NGX_HTTP_FORBIDDEN },
    { ngx_string("bad_request"),
      ngx_string("deny:bad_request"), NGX_HTTP_BAD_REQUEST },
    { ngx_string("stopped"),
      ngx_string("deny:stopped"), NGX_HTTP_SERVICE_UNAVAILABLE },
    { ngx_string("rate_limited"),
      ngx_string("deny:rate_limited"), NGX_HTTP_TOO_MANY_REQUESTS },
    { ngx_string("audit_unavailable"),
      ngx_string("deny:audit_unavailable"), NGX_HTTP_SERVICE_UNAVAILABLE }
};


static ngx_http_log_handler_pt  ngx_http_juki_log_handler_core;

static ngx_str_t  ngx_http_juki_purpose_header = ngx_string("Juki-Purpose");
static ngx_str_t  ngx_http_juki_operator_header = ngx_string("Juki-Operator");
static ngx_str_t  ngx_http_juki_unknown_path = ngx_string("...");


ngx_int_t
ngx_http_juki_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_pool_cleanup_t         *cln;
    ngx_http_juki_ctx_t        *ctx;
    ngx_http_juki_loc_conf_t   *jlcf;
    ngx_http_juki_main_conf_t  *jmcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_juki_get_ctx(r);

    if (ctx) {

        /*
         * a request that failed before its decision (a 500, which an
         * error_page may lead back here) is refused: nothing would ever
         * resume it
         */

        if (!ctx->done) {
            if (ctx->waiting) {
                return NGX_AGAIN;
            }

            ctx->outcome = NGX_HTTP_JUKI_AUDIT_UNAVAILABLE;
            ctx->done = 1;
        }

        /* once decided, a request keeps its decision across redirects */

        if (ctx->forwarded) {
            return NGX_DECLINED;
        }

        return ngx_http_juki_finish(r, ctx);
    }

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_juki_module);

    if (!jlcf->enable) {
        return NGX_DECLINED;
    }

    jmcf = ngx_http_get_module_main_conf(r, ngx_http_juki_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_juki_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_juki_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_juki_module);

    /*
     * from here on every failure leaves the request decided, refused: a
     * redirect back into a juki location finds it so
     */

    ctx->outcome = NGX_HTTP_JUKI_AUDIT_UNAVAILABLE;

    if (ngx_http_juki_decide(r, jmcf, jlcf, ctx) != NGX_OK) {

        /* what the request line still shows may carry the code */

        if (ngx_http_juki_log_request_line(r, &ngx_http_juki_unknown_path, 0)
            != NGX_OK)
        {
            r->request_line.len = 0;
        }

        ctx->done = 1;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * error log lines carry the request's context (the request line, the
     * upstream URI with its query): the query and the resident code are
     * blanked there
     */

    if (r->log_handler != ngx_http_juki_log_error) {
        ngx_http_juki_log_handler_core = r->log_handler;
        r->log_handler = ngx_http_juki_log_error;
    }

    /*
     * a refusal before an agency is known has no limiter of its own:
     * past the client's budget it is counted in a summary record instead
     */

    if (ctx->agency == NULL
        && !ngx_http_juki_refusal_admit(r, jmcf, ctx->reason,
                                        jlcf->deny_log_level))
    {
        ctx->outcome = ctx->reason;
        ctx->counted = 1;
        ctx->done = 1;

        return ngx_http_juki_finish(r, ctx);
    }

    rc = ngx_http_juki_audit_request(r, jmcf, ctx);

    if (rc == NGX_ERROR) {
        ctx->done = 1;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK && ctx->agency == NULL) {
        ngx_http_juki_refusal_recorded(ctx->reason);
    }

    if (rc == NGX_DECLINED) {
        ngx_http_juki_redis_log(r->connection->log,
                                NGX_HTTP_JUKI_LOG_UNAVAILABLE,
                                "no redis connection for the audit record, "
                                "request refused");
        ctx->done = 1;

        return ngx_http_juki_finish(r, ctx);
    }

    /* wait for the acknowledgement; ngx_http_juki_wake() goes on */

    ctx->waiting = 1;
    ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_WAITING, 1);
    r->main->count++;

    return NGX_DONE;
}


/* after an internal redirect the module ctx is gone, the cleanup is not */

static ngx_http_juki_ctx_t *
ngx_http_juki_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_juki_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_juki_module);

    if (ctx || !r->internal) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_juki_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_juki_module);
            return ctx;
        }
    }

    return NULL;
}


/*
 * The checks that need no Redis, in the order of the spec's table but for
 * bad_request, made as soon as the agency is known (so that its record
 * names the agency); the first that fails is the decision,
 * NGX_HTTP_JUKI_ALLOW leaves it to Redis.
 */

static ngx_int_t
ngx_http_juki_decide(ngx_http_request_t *r, ngx_http_juki_main_conf_t *jmcf,
    ngx_http_juki_loc_conf_t *jlcf, ngx_http_juki_ctx_t *ctx)
{
    u_char                   *p;
    ngx_int_t                 rc;
    ngx_str_t                 uri;
    ngx_uint_t                more;
    ngx_array_t               values;
    ngx_http_juki_agency_t   *agency;
    ngx_http_juki_purpose_t  *purpose;

    /* the query leaves the logged request line before anything can fail */

    if (ngx_http_juki_redact_request_line(r) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the record's uri: $uri, the code masked, then escaped (below) */
    ctx->uri = r->uri;

    if (ngx_array_init(&values, r->pool, 2, sizeof(ngx_str_t)) != NGX_OK
        || ngx_http_juki_ambiguous(r, jlcf, ctx, &values) != NGX_OK)
    {
        return NGX_ERROR;
    }

    more = (r->args.len != 0);

    if (ctx->ambiguous) {

        /*
         * which code an ambiguous request is about is not known: none is
         * recorded, every candidate is masked, and the recorded path ends
         * where a backend could see a query begin
         */

        for (p = ctx->uri.data; p < ctx->uri.data + ctx->uri.len; p++) {
            if (*p == '?' || *p == '#' || *p == '%') {
                ctx->uri.len = p - ctx->uri.data;
                more = 1;
                break;
            }
        }

        if (ngx_strlchr(r->unparsed_uri.data,
                        r->unparsed_uri.data + r->unparsed_uri.len, '#'))
        {
            more = 1;
        }

        if (ngx_http_juki_mask_values(r, ctx, &values) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (ngx_http_juki_subject(r, jmcf, jlcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    agency = NULL;

    uri = ctx->uri;

    if (ngx_http_juki_record_uri(r->pool, &uri, &ctx->uri) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * the client's own spelling of the path may hide the code (percent-
     * encoded, or after a "#" or an encoded "?"): with a code, or when the
     * request is ambiguous, the logged request line becomes the recorded
     * path
     */

    if (ctx->code.len || ctx->ambiguous) {
        if (ngx_http_juki_log_request_line(r, &ctx->uri, more) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx->ambiguous) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "juki: ambiguous request: %s",
                      ngx_http_juki_args_cause(ctx->ambiguous));
    }

    rc = ngx_http_juki_cert_agency(r, jmcf, &ctx->cert, &agency);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->reason = NGX_HTTP_JUKI_UNVERIFIED_CERTIFICATE;
        return NGX_OK;
    }

    if (agency == NULL) {
        ctx->reason = NGX_HTTP_JUKI_UNKNOWN_AGENCY;
        return NGX_OK;
    }

    ctx->agency = agency;

    if (ctx->ambiguous) {
        ctx->reason = NGX_HTTP_JUKI_BAD_REQUEST;
        return NGX_OK;
    }

    rc = ngx_http_juki_header(r, &ngx_http_juki_purpose_header,
                              &ctx->purpose_code);

    if (rc != NGX_OK || ngx_http_juki_valid_name(&ctx->purpose_code, 0)
                        != NGX_OK)
    {
        ngx_str_null(&ctx->purpose_code);
        ctx->reason = NGX_HTTP_JUKI_BAD_PURPOSE;
        return NGX_OK;
    }

    rc = ngx_http_juki_header(r, &ngx_http_juki_operator_header,
                              &ctx->operator);

    if (rc != NGX_OK || ngx_http_juki_valid_name(&ctx->operator, 0)
                        != NGX_OK)
    {
        ngx_str_null(&ctx->operator);
        ctx->reason = NGX_HTTP_JUKI_BAD_OPERATOR;
        return NGX_OK;
    }

    purpose = ngx_http_juki_find_purpose(jmcf, &ctx->purpose_code);

    if (purpose == NULL || !ngx_http_juki_granted(agency, purpose)
        || !ngx_http_juki_in_scope(purpose, &r->method_name, &r->uri)
        || !ngx_http_juki_raw_path_ok(r))
    {
        ctx->reason = NGX_HTTP_JUKI_PURPOSE_NOT_PERMITTED;
        return NGX_OK;
    }

    ctx->purpose = purpose;

    if (ctx->subject.len
        && (agency->kind == NGX_HTTP_JUKI_KIND_PRIVATE
            || !purpose->resident_code))
    {
        ctx->reason = NGX_HTTP_JUKI_RESIDENT_CODE_FORBIDDEN;
        return NGX_OK;
    }

    if (ngx_http_juki_key(r->pool, &ctx->operator_stop_key, &agency->stop_key,
                          ":op:", &ctx->operator)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* "Insider" is stopped by the key of "insider", as jukictl writes it */

    p = ctx->operator_stop_key.data + ctx->operator_stop_key.len
        - ctx->operator.len;
    ngx_strlow(p, p, ctx->operator.len);

    ctx->reason = NGX_HTTP_JUKI_ALLOW;

    return NGX_OK;
}


/*
 * Which ambiguities the request carries (ngx_http_juki_args.c); values
 * gets the value of every query parameter that is the juki_subject one.
 * With a juki_subject that is not one $arg_ or $http_ variable, the path,
 * "#" and method-override checks still apply.
 */

static ngx_int_t
ngx_http_juki_ambiguous(ngx_http_request_t *r,
    ngx_http_juki_loc_conf_t *jlcf, ngx_http_juki_ctx_t *ctx,
    ngx_array_t *values)
{
    ngx_uint_t  verdict;

    ctx->ambiguous = 0;

    if (ngx_http_juki_args_query(r->pool, &r->args, &jlcf->subject_arg,
                                 values, &verdict)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->ambiguous |= verdict;

    if (ngx_http_juki_args_path(r->pool, &r->unparsed_uri, &r->uri, &verdict)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->ambiguous |= verdict;

    ngx_http_juki_args_headers(&r->headers_in.headers, &jlcf->subject_header,
                               &verdict);

    ctx->ambiguous |= verdict;

    return NGX_OK;
}


/*
 * The resident's pseudonym is recorded whatever the decision, and the code
 * is masked before anything is logged, even for a certificate that maps
 * to no agency.
 */

static ngx_int_t
ngx_http_juki_subject(ngx_http_request_t *r, ngx_http_juki_main_conf_t *jmcf,
    ngx_http_juki_loc_conf_t *jlcf, ngx_http_juki_ctx_t *ctx)
{
    u_char     *p, *hex, *dst, *src, c;
    ngx_str_t   code;

    if (jlcf->subject == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, jlcf->subject, &code) != NGX_OK) {
        return NGX_ERROR;
    }

    if (code.len == 0) {
        return NGX_OK;
    }

    /* "%31" and "1" are one resident: decode before hashing */

    p = ngx_pnalloc(r->pool, code.len);
    hex = ngx_pnalloc(r->pool, NGX_HTTP_JUKI_HEX_SHA256);
    if (p == NULL || hex == NULL) {
        return NGX_ERROR;
    }

    dst = p;
    src = code.data;
    ngx_unescape_uri(&dst, &src, code.len, 0);

    ctx->code_raw = code;
    code.data = p;
    code.len = dst - p;
    ctx->code = code;

    if (ngx_http_juki_hmac_hex(jmcf->subject_key, code.data, code.len, hex)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->subject.data = hex;
    ctx->subject.len = NGX_HTTP_JUKI_HEX_SHA256;

    /* the code may stand in the path too: never record or log it */

    if (ngx_http_juki_mask_repl(&code, &c) == NULL
        || ngx_http_juki_mask_repl(&ctx->code_raw, &c) == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "juki: a resident code of every printable character "
                      "cannot be masked, request refused");
        return NGX_ERROR;
    }

    if (ngx_http_juki_mask(r->pool, &ctx->uri, &code) != NGX_OK
        || ngx_http_juki_mask(r->pool, &ctx->uri, &ctx->code_raw) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* every candidate code of an ambiguous request, decoded and raw */

static ngx_int_t
ngx_http_juki_mask_values(ngx_http_request_t *r, ngx_http_juki_ctx_t *ctx,
    ngx_array_t *values)
{
    u_char      *dst, *src;
    ngx_str_t   *v, decoded;
    ngx_uint_t   i;

    v = values->elts;

    for (i = 0; i < values->nelts; i++) {
        decoded.data = ngx_pnalloc(r->pool, v[i].len);
        if (decoded.data == NULL) {
            return NGX_ERROR;
        }

        dst = decoded.data;
        src = v[i].data;
        ngx_unescape_uri(&dst, &src, v[i].len, 0);
        decoded.len = dst - decoded.data;

        if (ngx_http_juki_mask(r->pool, &ctx->uri, &decoded) != NGX_OK
            || ngx_http_juki_mask(r->pool, &ctx->uri, &v[i]) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * NGINX resolves "/.;/../" to a path inside the scope, while a backend that
 * strips path parameters first resolves it outside: the raw path, which is
 * what the backend receives, must carry none
 */

static ngx_uint_t
ngx_http_juki_raw_path_ok(ngx_http_request_t *r)
{
    u_char  *p, *last;

    last = r->unparsed_uri.data + r->unparsed_uri.len;

    for (p = r->unparsed_uri.data; p < last && *p != '?'; p++) {
        if (*p == ';') {
            return 0;
        }
    }

    return 1;
}


/* NGX_OK: sent exactly once; NGX_DECLINED: missing or repeated */

static ngx_int_t
ngx_http_juki_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;
    n = 0;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            *value = h[i].value;
            n++;
        }
    }

    return n == 1 ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_juki_finish(ngx_http_request_t *r, ngx_http_juki_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_http_juki_loc_conf_t  *jlcf;

    if (ctx->outcome == NGX_HTTP_JUKI_ALLOW) {
        if (ngx_http_juki_set_headers(r, ctx) == NGX_OK) {
            ngx_http_juki_stat_request(ctx->agency, ctx->outcome);
            ctx->tallied = 1;
            ctx->forwarded = 1;

            return NGX_DECLINED;
        }

        /* not forwarded without the gateway's headers: fail closed */
        ctx->outcome = NGX_HTTP_JUKI_AUDIT_UNAVAILABLE;
    }

    /* a refusal sent again after a failed first one counts once */

    if (!ctx->tallied) {
        ngx_http_juki_stat_request(ctx->agency, ctx->outcome);
        ctx->tallied = 1;
    }

    /* one counted only is in the log line of its summary record */

    if (ctx->outcome != NGX_HTTP_JUKI_AUDIT_UNAVAILABLE && !ctx->counted) {
        jlcf = ngx_http_get_module_loc_conf(r, ngx_http_juki_module);

        ngx_log_error(jlcf->deny_log_level, r->connection->log, 0,
                      "juki: denied, %V, agency: \"%V\", operator: \"%V\", "
                      "purpose: \"%V\", audit id: \"%*s\"",
                      &ngx_http_juki_reasons[ctx->outcome].name,
                      ctx->agency ? &ctx->agency->name : &ctx->cert,
                      &ctx->operator, &ctx->purpose_code, ctx->audit_id_len,
                      ctx->audit_id);
    }

    rc = ngx_http_juki_send_denial(r, ctx);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_juki_send_denial(ngx_http_request_t *r, ngx_http_juki_ctx_t *ctx)
{
    u_char                  *p, num[NGX_INT64_LEN];
    size_t                   len;
    uint64_t                 seconds;
    ngx_int_t                rc;
    ngx_buf_t               *b;
    ngx_uint_t               limit;
    ngx_chain_t              out;
    ngx_http_juki_reason_t  *reason;

    reason = &ngx_http_juki_reasons[ctx->outcome];

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    len = sizeof("{\"error\":\"\",\"audit_id\":\"\"}\n") - 1 + reason->name.len
          + ctx->audit_id_len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->audit_id_len && ctx->outcome != NGX_HTTP_JUKI_AUDIT_UNAVAILABLE) {
        b->last = ngx_sprintf(b->last,
                              "{\"error\":\"%V\",\"audit_id\":\"%*s\"}\n",
                              &reason->name, ctx->audit_id_len,
                              ctx->audit_id);

    } else {
        b->last = ngx_sprintf(b->last, "{\"error\":\"%V\"}\n", &reason->name);
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = reason->status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ctx->outcome == NGX_HTTP_JUKI_RATE_LIMITED) {
        seconds = (ctx->retry_us + 999999) / 1000000;
        limit = (ctx->limit == 1) ? ctx->agency->rate.burst
                                  : ctx->purpose->rate.burst;

        p = ngx_sprintf(num, "%uL", seconds);

        if (ngx_http_juki_add_response_header(r, "Retry-After", num,
                                              p - num)
            != NGX_OK
            || ngx_http_juki_add_response_header(r, "RateLimit-Reset", num,
                                                 p - num)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_sprintf(num, "%ui", limit + 1);

        if (ngx_http_juki_add_response_header(r, "RateLimit-Limit", num,
                                              p - num)
            != NGX_OK
            || ngx_http_juki_add_response_header(r, "RateLimit-Remaining",
                                                 (u_char *) "0", 1)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_juki_add_response_header(ngx_http_request_t *r, char *name,
    u_char *value, size_t len)
{
    u_char           *v;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    v = ngx_pnalloc(r->pool, len);
    if (v == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(v, value, len);

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = v;
    h->value.len = len;

    return NGX_OK;
}


/*
 * The backend trusts the Juki-* headers: every copy the client sent, in
 * any case and with "_" for "-", is dropped and the gateway's are added.
 * The list is rebuilt rather than edited, since the proxy module forwards
 * every element it holds.
 */

static ngx_int_t
ngx_http_juki_set_headers(ngx_http_request_t *r, ngx_http_juki_ctx_t *ctx)
{
    ngx_str_t         values[5];
    ngx_uint_t        i, n;
    ngx_list_t        headers;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    static ngx_str_t  names[5] = {
        ngx_string("Juki-Agency"),
        ngx_string("Juki-Agency-Kind"),
        ngx_string("Juki-Purpose"),
        ngx_string("Juki-Operator"),
        ngx_string("Juki-Audit-Id")
    };

    static ngx_str_t  prefix = ngx_string("juki-");

    static ngx_str_t  lowcase[5] = {
        ngx_string("juki-agency"),
        ngx_string("juki-agency-kind"),
        ngx_string("juki-purpose"),
        ngx_string("juki-operator"),
        ngx_string("juki-audit-id")
    };

    part = &r->headers_in.headers.part;
    n = 0;

    while (part) {
        n += part->nelts;
        part = part->next;
    }

    if (ngx_list_init(&headers, r->pool, n + 5, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        /* "Juki_Agency" too: a backend may read "_" as "-" */

        if (ngx_http_juki_args_header(&h[i].key, &prefix, 1)) {
            continue;
        }

        nh = ngx_list_push(&headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    values[0] = ctx->agency->name;
    values[1] = ctx->agency->kind_name;
    values[2] = ctx->purpose->code;
    values[3] = ctx->operator;
    values[4].data = ctx->audit_id;
    values[4].len = ctx->audit_id_len;

    for (i = 0; i < 5; i++) {
        nh = ngx_list_push(&headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        nh->key = names[i];
        nh->value = values[i];
        nh->lowcase_key = lowcase[i].data;
        nh->hash = ngx_hash_key(lowcase[i].data, lowcase[i].len);
    }

    r->headers_in.headers = headers;

    return NGX_OK;
}


/*
 * The query may carry a resident code, and NGINX puts the request line in
 * the access log and in the context of error log lines: keep the path only.
 * The target is found in the line itself (in HTTP/2 NGINX builds the line
 * from :path, and $args does not point into it); what follows a "?" or a
 * "#" up to the next space becomes "?...".
 */

static ngx_int_t
ngx_http_juki_redact_request_line(ngx_http_request_t *r)
{
    u_char  *p, *q, *e, *line, *last;

    line = r->request_line.data;
    last = line + r->request_line.len;

    if (line == NULL || r->request_line.len <= r->method_name.len) {
        return NGX_OK;
    }

    for (q = line + r->method_name.len + 1; q < last; q++) {
        if (*q == '?' || *q == '#' || *q == ' ') {
            break;
        }
    }

    if (q == last || *q == ' ') {
        return NGX_OK;
    }

    e = ngx_strlchr(q, last, ' ');

    if (e == NULL) {
        e = last;
    }

    p = ngx_pnalloc(r->pool, r->request_line.len - (e - q) + 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    r->request_line.data = p;

    p = ngx_cpymem(p, line, q - line);
    p = ngx_cpymem(p, "?...", 4);
    p = ngx_cpymem(p, e, last - e);

    r->request_line.len = p - r->request_line.data;

    return NGX_OK;
}


/* "METHOD /recorded/path[?...] PROTOCOL" */

static ngx_int_t
ngx_http_juki_log_request_line(ngx_http_request_t *r, ngx_str_t *uri,
    ngx_uint_t more)
{
    u_char  *p;
    size_t   len;

    len = r->method_name.len + 1 + uri->len + sizeof("?...") - 1
          + 1 + r->http_protocol.len;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    r->request_line.data = p;

    p = ngx_cpymem(p, r->method_name.data, r->method_name.len);
    *p++ = ' ';
    p = ngx_cpymem(p, uri->data, uri->len);

    if (more) {
        p = ngx_cpymem(p, "?...", sizeof("?...") - 1);
    }

    if (r->http_protocol.len) {
        *p++ = ' ';
        p = ngx_cpymem(p, r->http_protocol.data, r->http_protocol.len);
    }

    r->request_line.len = p - r->request_line.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_juki_key(ngx_pool_t *pool, ngx_str_t *dst, ngx_str_t *prefix,
    char *sep, ngx_str_t *name)
{
    size_t  len;

    len = prefix->len + ngx_strlen(sep) + name->len;

    dst->data = ngx_pnalloc(pool, len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    dst->len = ngx_sprintf(dst->data, "%V%s%V", prefix, sep, name)
               - dst->data;

    return NGX_OK;
}


/*
 * Called from the reply callback: the request goes on from a posted event,
 * outside hiredis, which may be freeing its context right now.
 */

void
ngx_http_juki_resume(ngx_http_juki_ctx_t *ctx, ngx_http_request_t *r)
{
    ngx_connection_t  *c;

    ctx->done = 1;

    if (!ctx->waiting) {
        return;
    }

    ctx->waiting = 0;
    ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_WAITING, -1);

    c = r->connection;
    r->write_event_handler = ngx_http_juki_wake;

    ngx_post_event(c->write, &ngx_posted_events);
}


static void
ngx_http_juki_wake(ngx_http_request_t *r)
{
    r->write_event_handler = ngx_http_core_run_phases;
    r->main->count--;

    ngx_http_core_run_phases(r);
}


static u_char *
ngx_http_juki_log_error(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char               *p, *q;
    ngx_str_t             path;
    ngx_http_juki_ctx_t  *ctx;

    p = ngx_http_juki_log_handler_core(r, sr, buf, len);

    ctx = ngx_http_juki_get_ctx(r);

    if (ctx == NULL) {
        return p;
    }

    /*
     * the query, as the upstream URI shows it (the client's, or $args
     * after a change), loses its values
     */

    q = ngx_strlchr(r->unparsed_uri.data,
                    r->unparsed_uri.data + r->unparsed_uri.len, '?');

    if (q) {
        path.data = q + 1;
        path.len = r->unparsed_uri.data + r->unparsed_uri.len - path.data;
        p = ngx_http_juki_cut(buf, p, &path);
    }

    p = ngx_http_juki_cut(buf, p, &r->args);

    if (ctx->code.len == 0) {
        return p;
    }

    ngx_http_juki_blank(buf, p, &ctx->code);
    ngx_http_juki_blank(buf, p, &ctx->code_raw);

    /*
     * the client's raw path, as the upstream URI shows it, may spell the
     * code with escapes: a raw path with escapes is blanked whole
     */

    path = r->unparsed_uri;
    q = ngx_strlchr(path.data, path.data + path.len, '?');

    if (q) {
        path.len = q - path.data;
    }

    if (ngx_strlchr(path.data, path.data + path.len, '%')) {
        ngx_http_juki_blank(buf, p, &path);
    }

    return p;
}


/*
 * in place, so a log line keeps its length: a character the code lacks
 * for every byte
 */

static void
ngx_http_juki_blank(u_char *start, u_char *end, ngx_str_t *code)
{
    u_char  *p, c;

    if (code->len == 0) {
        return;
    }

    if (ngx_http_juki_foreign_char(code, &c) != NGX_OK) {
        /* a code of every printable character: blank the whole line */
        ngx_memset(start, '*', end - start);
        return;
    }

    for (p = start; p + code->len <= end; p++) {
        if (ngx_memcmp(p, code->data, code->len) == 0) {
            ngx_memset(p, c, code->len);
            p += code->len - 1;
        }
    }
}


/*
 * every copy of the query s that follows a "?" becomes "..." (a shorter
 * one as many dots); the line gets shorter
 */

static u_char *
ngx_http_juki_cut(u_char *start, u_char *end, ngx_str_t *s)
{
    u_char  *p;
    size_t   n;

    if (s->len == 0) {
        return end;
    }

    n = ngx_min(s->len, 3);

    for (p = start + 1; p + s->len <= end; /* void */) {

        if (*(p - 1) != '?' || ngx_memcmp(p, s->data, s->len) != 0) {
            p++;
            continue;
        }

        ngx_memset(p, '.', n);
        ngx_memmove(p + n, p + s->len, end - (p + s->len));
        end -= s->len - n;
        p += n;
    }

    return end;
}


static void
ngx_http_juki_cleanup(void *data)
{
    ngx_http_juki_ctx_t  *ctx = data;

    /* a reply that comes after the request must find nobody to resume */

    if (ctx->slot) {
        *ctx->slot = NULL;
        ctx->slot = NULL;
    }

    if (ctx->waiting) {
        ctx->waiting = 0;
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_WAITING, -1);
    }
}


/*
 * NGINX runs no access-phase handler for a subrequest: one that reaches a
 * juki location (SSI, mirror, auth_request...) would skip the decision and
 * the record, so it is refused here.  A background subrequest of a request
 * this module decided (mirror, a cache's background update) would send the
 * request to a backend a second time under one audit record, wherever it
 * goes: refused too.
 */

ngx_int_t
ngx_http_juki_subrequest_handler(ngx_http_request_t *r)
{
    ngx_http_juki_loc_conf_t  *jlcf;

    if (r == r->main) {
        return NGX_DECLINED;
    }

    if (r->background
        && ngx_http_get_module_ctx(r->main, ngx_http_juki_module) != NULL)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "juki: background subrequest to \"%V\" refused: it "
                      "would repeat an audited request", &r->uri);

        return NGX_HTTP_FORBIDDEN;
    }

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_juki_module);

    if (!jlcf->enable) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "juki: subrequest to \"%V\" refused: a subrequest is "
                  "neither decided nor audited", &r->uri);

    return NGX_HTTP_FORBIDDEN;
}


/*
 * The completion record of every main request whose decision Redis made:
 * after the response of an allowed one, after the refusal of a stopped or
 * rate-limited one.  It carries the decision the gateway read in the
 * reply, which is what binds that decision (docs/audit.md).
 */

ngx_int_t
ngx_http_juki_log_handler(ngx_http_request_t *r)
{
    ngx_http_juki_ctx_t        *ctx;
    ngx_http_juki_main_conf_t  *jmcf;

    /*
     * with "log_subrequest on" the log phase runs for subrequests too, and
     * a subrequest shares its main request's pool, where the context is
     * found: one completion record per audit id, from the main request
     */

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_juki_get_ctx(r);

    if (ctx == NULL) {
        ngx_http_juki_log_refusal(r);
        return NGX_OK;
    }

    if (!ctx->done || ctx->completed || ctx->audit_id_len == 0
        || ctx->reason != NGX_HTTP_JUKI_ALLOW)
    {
        return NGX_OK;
    }

    switch (ctx->outcome) {

    case NGX_HTTP_JUKI_ALLOW:
    case NGX_HTTP_JUKI_STOPPED:
    case NGX_HTTP_JUKI_RATE_LIMITED:
        break;

    default:
        /* unknown: the record may exist, and stays unconfirmed */
        return NGX_OK;
    }

    ctx->completed = 1;

    jmcf = ngx_http_get_module_main_conf(r, ngx_http_juki_module);

    ngx_http_juki_audit_completion(r, jmcf, ctx);

    return NGX_OK;
}


/*
 * A request NGINX refused itself before any phase, for the certificate
 * a server with "juki on" locations requires (495, 496: answered as 400
 * unless error_page maps them) or for plain HTTP on its TLS port (497):
 * the same tests NGINX made, made again.  Recorded as the gateway's
 * unverified_certificate refusal, under the refusal budget, with the
 * fingerprint of the certificate presented.  No path is recorded: no
 * location, so no juki_subject, was chosen to mask a code in it.
 */

static void
ngx_http_juki_log_refusal(ngx_http_request_t *r)
{
    long                        verify;
    X509                       *cert;
    ngx_int_t                   rc;
    ngx_connection_t           *c;
    ngx_http_juki_ctx_t        *ctx;
    ngx_http_ssl_srv_conf_t    *sscf;
    ngx_http_juki_srv_conf_t   *jscf;
    ngx_http_juki_loc_conf_t   *jlcf;
    ngx_http_juki_main_conf_t  *jmcf;

    if (r->http_connection == NULL || !r->http_connection->ssl) {
        return;
    }

    jscf = ngx_http_get_module_srv_conf(r, ngx_http_juki_module);
    sscf = ngx_http_get_module_srv_conf(r, ngx_http_ssl_module);

    if (jscf == NULL || !jscf->juki || sscf == NULL || !sscf->verify) {
        return;
    }

    c = r->connection;

    if (c->ssl && c->ssl->connection) {
        verify = SSL_get_verify_result(c->ssl->connection);

        if (verify == X509_V_OK) {
            if (sscf->verify != 1) {
                return;
            }

            cert = SSL_get_peer_certificate(c->ssl->connection);

            if (cert) {
                X509_free(cert);
                return;
            }

        } else if (sscf->verify == 3 && ngx_ssl_verify_error_optional(verify))
        {
            return;
        }
    }

    jmcf = ngx_http_get_module_main_conf(r, ngx_http_juki_module);
    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_juki_module);

    if (jmcf->redis == NULL) {
        return;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_juki_ctx_t));
    if (ctx == NULL) {
        return;
    }

    ctx->request = r;
    ctx->reason = NGX_HTTP_JUKI_UNVERIFIED_CERTIFICATE;

    if (ngx_http_juki_cert_fingerprint(c, &ctx->cert) != NGX_OK) {
        return;
    }

    ngx_http_juki_stat_request(NULL, ctx->reason);

    if (!ngx_http_juki_refusal_admit(r, jmcf, ctx->reason,
                                     jlcf->deny_log_level))
    {
        return;
    }

    rc = ngx_http_juki_audit_request(r, jmcf, ctx);

    if (rc == NGX_DECLINED) {
        ngx_http_juki_redis_log(c->log, NGX_HTTP_JUKI_LOG_UNAVAILABLE,
                                "no redis connection for the audit record "
                                "of a refusal by nginx");
    }

    if (rc != NGX_OK) {
        return;
    }

    /* nobody waits for this reply: the request ends here */

    *ctx->slot = NULL;
    ctx->slot = NULL;

    ngx_http_juki_refusal_recorded(ctx->reason);

    ngx_log_error(jlcf->deny_log_level, c->log, 0,
                  "juki: denied, %V by nginx, agency: \"%V\", audit id: "
                  "\"%*s\"", &ngx_http_juki_reasons[ctx->reason].name,
                  &ctx->cert, ctx->audit_id_len, ctx->audit_id);
}
