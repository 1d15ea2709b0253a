
/*
 * juki-gateway: TLS to Redis with NGINX's SSL layer.
 *
 * juki_redis_tls builds one client SSL context when the configuration is
 * read (so nginx -t reads the CA, the certificate and the key); every
 * connection the Redis layer opens runs its handshake on it, and its
 * server certificate is checked against ca= and name= before anything is
 * written.  A failure is a failed connection; there is no plaintext
 * fallback.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


#define NGX_HTTP_JUKI_TLS_CA      0
#define NGX_HTTP_JUKI_TLS_NAME    1
#define NGX_HTTP_JUKI_TLS_CERT    2
#define NGX_HTTP_JUKI_TLS_KEY     3
#define NGX_HTTP_JUKI_TLS_DEPTH   4
#define NGX_HTTP_JUKI_TLS_NPARAMS 5


static ngx_int_t ngx_http_juki_redis_tls_file(ngx_conf_t *cf,
    ngx_str_t *name, ngx_str_t *path);
static ngx_int_t ngx_http_juki_redis_tls_name(ngx_conf_t *cf,
    ngx_str_t *name);


static ngx_str_t  ngx_http_juki_redis_tls_params[] = {
    ngx_string("ca="),
    ngx_string("name="),
    ngx_string("cert="),
    ngx_string("key="),
    ngx_string("verify_depth=")
};


char *
ngx_http_juki_redis_tls(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_juki_main_conf_t *jmcf = conf;

    u_char                     *eq;
    ngx_int_t                   depth;
    ngx_str_t                  *value, v[NGX_HTTP_JUKI_TLS_NPARAMS];
    ngx_uint_t                  i, k;
    ngx_pool_cleanup_t         *cln;
    ngx_http_juki_redis_tls_t  *tls;

    if (jmcf->redis_tls) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(v, sizeof(v));

    for (i = 1; i < cf->args->nelts; i++) {

        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        for (k = 0; eq && k < NGX_HTTP_JUKI_TLS_NPARAMS; k++) {
            if ((size_t) (eq + 1 - value[i].data)
                    == ngx_http_juki_redis_tls_params[k].len
                && ngx_strncmp(value[i].data,
                               ngx_http_juki_redis_tls_params[k].data,
                               ngx_http_juki_redis_tls_params[k].len)
                   == 0)
            {
                break;
            }
        }

        if (eq == NULL || k == NGX_HTTP_JUKI_TLS_NPARAMS) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%*s\" in "
                               "\"juki_redis_tls\"",
                               eq ? (size_t) (eq + 1 - value[i].data)
                                  : value[i].len,
                               value[i].data);
            return NGX_CONF_ERROR;
        }

        if (v[k].data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate parameter \"%V\" in "
                               "\"juki_redis_tls\"",
                               &ngx_http_juki_redis_tls_params[k]);
            return NGX_CONF_ERROR;
        }

        /* the rest of the argument: NUL-terminated like the argument */

        v[k].data = eq + 1;
        v[k].len = value[i].data + value[i].len - v[k].data;

        if (v[k].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "empty parameter \"%V\" in "
                               "\"juki_redis_tls\"",
                               &ngx_http_juki_redis_tls_params[k]);
            return NGX_CONF_ERROR;
        }
    }

    for (k = NGX_HTTP_JUKI_TLS_CA; k <= NGX_HTTP_JUKI_TLS_NAME; k++) {
        if (v[k].data == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"juki_redis_tls\" needs \"%V\"",
                               &ngx_http_juki_redis_tls_params[k]);
            return NGX_CONF_ERROR;
        }
    }

    if ((v[NGX_HTTP_JUKI_TLS_CERT].data == NULL)
        != (v[NGX_HTTP_JUKI_TLS_KEY].data == NULL))
    {
        k = v[NGX_HTTP_JUKI_TLS_CERT].data ? NGX_HTTP_JUKI_TLS_CERT
                                           : NGX_HTTP_JUKI_TLS_KEY;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" in \"juki_redis_tls\" needs \"%V\"",
                           &ngx_http_juki_redis_tls_params[k],
                           &ngx_http_juki_redis_tls_params[
                               k == NGX_HTTP_JUKI_TLS_CERT
                               ? NGX_HTTP_JUKI_TLS_KEY
                               : NGX_HTTP_JUKI_TLS_CERT]);
        return NGX_CONF_ERROR;
    }

    /* as proxy_ssl_verify_depth: the server certificate and its CA */

    depth = 1;

    if (v[NGX_HTTP_JUKI_TLS_DEPTH].data) {
        depth = ngx_atoi(v[NGX_HTTP_JUKI_TLS_DEPTH].data,
                         v[NGX_HTTP_JUKI_TLS_DEPTH].len);

        if (depth == NGX_ERROR || depth == 0 || depth > 100) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"verify_depth=\" \"%V\" in "
                               "\"juki_redis_tls\", it must be 1 to 100",
                               &v[NGX_HTTP_JUKI_TLS_DEPTH]);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_juki_redis_tls_name(cf, &v[NGX_HTTP_JUKI_TLS_NAME])
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* each file is looked at here, with file and line, before OpenSSL */

    for (k = NGX_HTTP_JUKI_TLS_CA; k <= NGX_HTTP_JUKI_TLS_KEY; k++) {
        if (k != NGX_HTTP_JUKI_TLS_NAME && v[k].data
            && ngx_http_juki_redis_tls_file(cf,
                                            &ngx_http_juki_redis_tls_params[k],
                                            &v[k])
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    tls = ngx_pcalloc(cf->pool, sizeof(ngx_http_juki_redis_tls_t));
    if (tls == NULL) {
        return NGX_CONF_ERROR;
    }

    tls->name = v[NGX_HTTP_JUKI_TLS_NAME];
    tls->ssl.log = cf->log;

    if (ngx_ssl_create(&tls->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(&tls->ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = &tls->ssl;

    /* the write buffer may move between two tries of one SSL_write() */

    SSL_CTX_set_mode(tls->ssl.ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (v[NGX_HTTP_JUKI_TLS_CERT].data
        && ngx_ssl_certificate(cf, &tls->ssl, &v[NGX_HTTP_JUKI_TLS_CERT],
                               &v[NGX_HTTP_JUKI_TLS_KEY], NULL)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_ssl_trusted_certificate(cf, &tls->ssl, &v[NGX_HTTP_JUKI_TLS_CA],
                                    depth)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    jmcf->redis_tls = tls;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_juki_redis_tls_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *path)
{
    ngx_fd_t          fd;
    ngx_str_t         full;
    ngx_file_info_t   fi;

    full = *path;

    if (ngx_conf_full_name(cf->cycle, &full, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(full.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open \"%V\" file \"%s\" of "
                           "\"juki_redis_tls\"", name, full.data);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot stat \"%V\" file \"%s\" of "
                           "\"juki_redis_tls\"", name, full.data);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    (void) ngx_close_file(fd);

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" file \"%s\" of \"juki_redis_tls\" is not "
                           "a regular file", name, full.data);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The certificate is matched against a DNS name (X509_check_host()): an
 * address would never match, so it is refused here rather than at the
 * first connect
 */

static ngx_int_t
ngx_http_juki_redis_tls_name(ngx_conf_t *cf, ngx_str_t *name)
{
    u_char      c;
    ngx_uint_t  i, letters;

    letters = 0;

    if (name->len > 253 || name->data[0] == '.' || name->data[0] == '-') {
        goto invalid;
    }

    for (i = 0; i < name->len; i++) {
        c = name->data[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || c == '-' || c == '_')
        {
            letters = 1;
            continue;
        }

        if ((c >= '0' && c <= '9') || c == '.') {
            continue;
        }

        if (c == ':') {
            goto address;
        }

        goto invalid;
    }

    if (!letters) {
        goto address;
    }

    return NGX_OK;

address:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"name=\" in \"juki_redis_tls\" must be the DNS "
                       "name in the Redis certificate, not an address");
    return NGX_ERROR;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"name=\" \"%V\" in \"juki_redis_tls\": "
                       "use a DNS name of A-Za-z0-9.-_", name);
    return NGX_ERROR;
}


/*
 * Starts the client handshake on a connected socket.  NGX_OK: done at
 * once; NGX_AGAIN: handler is called when it is over; NGX_ERROR: failed
 * (NGINX logged why).  The caller tells success by c->ssl->handshaked.
 */

ngx_int_t
ngx_http_juki_redis_tls_start(ngx_connection_t *c,
    ngx_http_juki_redis_tls_t *tls, ngx_connection_handler_pt handler)
{
    ngx_int_t  rc;

    /* ngx_ssl_create_connection() allocates from the connection's pool */

    if (c->pool == NULL) {
        c->pool = ngx_create_pool(512, c->log);
        if (c->pool == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_ssl_create_connection(&tls->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the name is a DNS name (checked at configuration time): it is SNI */

    if (SSL_set_tlsext_host_name(c->ssl->connection, (char *) tls->name.data)
        == 0)
    {
        ngx_ssl_error(NGX_LOG_ALERT, c->log, 0,
                      "SSL_set_tlsext_host_name(\"%V\") failed", &tls->name);
        return NGX_ERROR;
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = handler;
    }

    return rc;
}


/* after the handshake: the chain up to ca=, and the name= */

ngx_int_t
ngx_http_juki_redis_tls_verify(ngx_connection_t *c,
    ngx_http_juki_redis_tls_t *tls, ngx_str_t *address)
{
    long  rc;

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_TLS,
                                "redis %V unavailable: certificate verify "
                                "error: (%l:%s)", address, rc,
                                X509_verify_cert_error_string(rc));
        return NGX_ERROR;
    }

    if (ngx_ssl_check_host(c, &tls->name) != NGX_OK) {
        ngx_http_juki_redis_log(ngx_cycle->log, NGX_HTTP_JUKI_LOG_TLS,
                                "redis %V unavailable: certificate does not "
                                "match \"%V\"", address, &tls->name);
        return NGX_ERROR;
    }

    return NGX_OK;
}
