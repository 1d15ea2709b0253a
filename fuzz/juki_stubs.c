
/*
 * juki-gateway fuzzing: stand-ins for what src/ngx_http_juki_audit.c and
 * src/ngx_http_juki_batch.c call in the rest of the module (the Redis
 * layer, the handler, the counters, OpenSSL).  None of them is reached by
 * the functions the harnesses fuzz, except ngx_http_juki_hmac_hex(), which
 * hands its input to the harness's hook; fuzz_record defines its own
 * ngx_http_juki_redis_pick(), ngx_http_juki_redis_main_conf() and
 * ngx_http_juki_batch_add(), and links the real ngx_http_juki_crypto.c.
 *
 * They are weak so that a harness may define its own.  When src/ grows a
 * new call, the link fails naming it: add a stub here.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"
#include "ngx_http_juki_crypto.h"
#include "juki_stubs.h"


ngx_int_t (*juki_stub_hmac_hook)(u_char *key, u_char *data, size_t len,
    u_char *hex);


#define JUKI_REASON(name, status)                                            \
    { ngx_string(name), ngx_string("deny:" name), status }

__attribute__((weak))
ngx_http_juki_reason_t  ngx_http_juki_reasons[] = {
    { ngx_string("allow"), ngx_string("allow"), NGX_OK },
    JUKI_REASON("unverified_certificate", NGX_HTTP_FORBIDDEN),
    JUKI_REASON("unknown_agency", NGX_HTTP_FORBIDDEN),
    JUKI_REASON("bad_purpose", NGX_HTTP_BAD_REQUEST),
    JUKI_REASON("bad_operator", NGX_HTTP_BAD_REQUEST),
    JUKI_REASON("purpose_not_permitted", NGX_HTTP_FORBIDDEN),
    JUKI_REASON("resident_code_forbidden", NGX_HTTP_FORBIDDEN),
    JUKI_REASON("bad_request", NGX_HTTP_BAD_REQUEST),
    JUKI_REASON("stopped", NGX_HTTP_SERVICE_UNAVAILABLE),
    JUKI_REASON("rate_limited", 429),
    JUKI_REASON("audit_unavailable", NGX_HTTP_SERVICE_UNAVAILABLE),
    { ngx_null_string, ngx_null_string, 0 }
};

/* referenced by older revisions of src/ngx_http_juki_audit.c */
__attribute__((weak)) u_char  ngx_http_juki_script_sha[40];


__attribute__((weak)) ngx_int_t
ngx_http_juki_hmac_hex(u_char *key, u_char *data, size_t len, u_char *hex)
{
    if (juki_stub_hmac_hook) {
        return juki_stub_hmac_hook(key, data, len, hex);
    }

    ngx_memset(hex, 'a', NGX_HTTP_JUKI_HEX_SHA256);
    return NGX_OK;
}


__attribute__((weak)) ngx_http_juki_redis_conn_t *
ngx_http_juki_redis_pick(void)
{
    return NULL;
}


__attribute__((weak)) ngx_int_t
ngx_http_juki_redis_send(ngx_http_juki_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen, ngx_http_juki_cmd_t *cmd)
{
    return NGX_ERROR;
}


__attribute__((weak)) ngx_http_juki_cmd_t *
ngx_http_juki_cmd_alloc(void)
{
    return NULL;
}


__attribute__((weak)) void
ngx_http_juki_cmd_free(ngx_http_juki_cmd_t *cmd)
{
}


__attribute__((weak)) ngx_int_t
ngx_http_juki_redis_send_tail(ngx_http_juki_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen, ngx_uint_t ntail, u_char *tail,
    size_t tail_len, ngx_http_juki_cmd_t *cmd)
{
    return NGX_ERROR;
}


__attribute__((weak)) void
ngx_http_juki_redis_lost(ngx_http_juki_redis_conn_t *rc, const char *why)
{
}


__attribute__((weak)) void
ngx_http_juki_redis_up(ngx_http_juki_redis_conn_t *rc)
{
}


/* group commit (ngx_http_juki_batch.c), for harnesses without it */

__attribute__((weak)) ngx_int_t
ngx_http_juki_batch_add(ngx_http_juki_redis_conn_t *rc, u_char op,
    ngx_str_t *list, ngx_str_t *element, ngx_str_t *extra, ngx_uint_t nextra,
    ngx_http_juki_ctx_t *ctx)
{
    return NGX_ERROR;
}


__attribute__((weak)) ngx_uint_t  ngx_http_juki_exiting;


__attribute__((weak)) void
ngx_http_juki_redis_log(ngx_log_t *log, ngx_uint_t cause, const char *fmt,
    ...)
{
}


__attribute__((weak)) void
ngx_http_juki_resume(ngx_http_juki_ctx_t *ctx, ngx_http_request_t *r)
{
}


/* called by newer revisions (shared counters) */

__attribute__((weak)) void
ngx_http_juki_stat_count(ngx_uint_t counter, ngx_int_t delta)
{
}


__attribute__((weak)) void
ngx_http_juki_stat_rtt(uint64_t us)
{
}


__attribute__((weak)) void
ngx_http_juki_stat_request(ngx_http_juki_agency_t *agency,
    ngx_http_juki_reason_e outcome)
{
}


__attribute__((weak)) ngx_http_juki_main_conf_t *
ngx_http_juki_redis_main_conf(void)
{
    return NULL;
}
