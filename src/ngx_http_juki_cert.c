
/*
 * juki-gateway: the client certificate NGINX verified, and the agency it
 * belongs to.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


static ngx_int_t ngx_http_juki_cert_digest(ngx_connection_t *c, X509 *cert,
    ngx_str_t *fingerprint);
static ngx_int_t ngx_http_juki_cert_subject(ngx_http_request_t *r,
    X509 *cert, ngx_str_t *subject);
static void ngx_http_juki_cert_free(void *parent, void *ptr,
    CRYPTO_EX_DATA *ad, int idx, long argl, void *argp);


/*
 * The fingerprint of a connection's certificate, kept with its SSL object:
 * a keep-alive connection digests its certificate once, not per request.
 */
static int  ngx_http_juki_ssl_index = -1;


ngx_int_t
ngx_http_juki_cert_init(ngx_log_t *log)
{
    if (ngx_http_juki_ssl_index != -1) {
        return NGX_OK;
    }

    ngx_http_juki_ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
                                                   ngx_http_juki_cert_free);
    if (ngx_http_juki_ssl_index == -1) {
        ngx_ssl_error(NGX_LOG_EMERG, log, 0, "SSL_get_ex_new_index() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * NGX_DECLINED: no certificate, or one that did not verify (possible with
 * "ssl_verify_client optional_no_ca", or a plain connection);
 * NGX_OK: *fingerprint is set and *agency is the agency or NULL.
 */

ngx_int_t
ngx_http_juki_cert_agency(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_str_t *fingerprint,
    ngx_http_juki_agency_t **agency)
{
    X509                    *cert;
    ngx_int_t                rc;
    ngx_str_t                subject;
    ngx_connection_t         *c;
    ngx_http_ssl_srv_conf_t  *sscf;

    c = r->connection;

    if (c->ssl == NULL || c->ssl->connection == NULL) {
        return NGX_DECLINED;
    }

    /*
     * A handshake without SNI is made with the default server's settings
     * (CA, CRL, verification depth): a verification counts only when it
     * was made by the server block that serves the request.
     */

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_ssl_module);

    if (sscf == NULL || !sscf->verify || sscf->ssl.ctx == NULL
        || SSL_get_SSL_CTX(c->ssl->connection) != sscf->ssl.ctx)
    {
        return NGX_DECLINED;
    }

    if (SSL_get_verify_result(c->ssl->connection) != X509_V_OK) {
        return NGX_DECLINED;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_DECLINED;
    }

    rc = NGX_ERROR;

    if (ngx_http_juki_cert_digest(c, cert, fingerprint) != NGX_OK) {
        goto done;
    }

    ngx_str_null(&subject);

    *agency = ngx_http_juki_find_agency(jmcf, fingerprint, &subject);

    if (*agency == NULL && jmcf->subject_hash.size) {
        if (ngx_http_juki_cert_subject(r, cert, &subject) != NGX_OK) {
            goto done;
        }

        *agency = ngx_http_juki_find_agency(jmcf, fingerprint, &subject);
    }

    rc = NGX_OK;

done:

    X509_free(cert);

    return rc;
}


/*
 * the fingerprint of the certificate the client presented, verified or
 * not, for the record of a refusal; empty when it presented none
 */

ngx_int_t
ngx_http_juki_cert_fingerprint(ngx_connection_t *c, ngx_str_t *fingerprint)
{
    X509       *cert;
    ngx_int_t   rc;

    ngx_str_null(fingerprint);

    if (c->ssl == NULL || c->ssl->connection == NULL) {
        return NGX_OK;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_juki_cert_digest(c, cert, fingerprint);

    X509_free(cert);

    return rc;
}


/* hex SHA-256 of the DER, digested once per TLS connection */

static ngx_int_t
ngx_http_juki_cert_digest(ngx_connection_t *c, X509 *cert,
    ngx_str_t *fingerprint)
{
    u_char        raw[EVP_MAX_MD_SIZE], *hex;
    unsigned int  n;

    hex = SSL_get_ex_data(c->ssl->connection, ngx_http_juki_ssl_index);

    if (hex == NULL) {
        if (X509_digest(cert, EVP_sha256(), raw, &n) != 1 || n != 32) {
            ngx_ssl_error(NGX_LOG_ALERT, c->log, 0, "X509_digest() failed");
            return NGX_ERROR;
        }

        hex = OPENSSL_malloc(NGX_HTTP_JUKI_HEX_SHA256);
        if (hex == NULL) {
            return NGX_ERROR;
        }

        ngx_hex_dump(hex, raw, 32);

        if (SSL_set_ex_data(c->ssl->connection, ngx_http_juki_ssl_index, hex)
            != 1)
        {
            OPENSSL_free(hex);
            return NGX_ERROR;
        }
    }

    fingerprint->data = hex;
    fingerprint->len = NGX_HTTP_JUKI_HEX_SHA256;

    return NGX_OK;
}


static void
ngx_http_juki_cert_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
    OPENSSL_free(ptr);
}


/*
 * the RFC 2253 form, as NGINX's $ssl_client_s_dn shows it, written in hex
 * as the subject hash keeps it
 */

static ngx_int_t
ngx_http_juki_cert_subject(ngx_http_request_t *r, X509 *cert,
    ngx_str_t *subject)
{
    BIO        *bio;
    char       *p;
    long        len;
    ngx_int_t   rc;
    X509_NAME  *name;

    name = X509_get_subject_name(cert);
    if (name == NULL) {
        return NGX_OK;
    }

    bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        ngx_ssl_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "BIO_new() failed");
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
        ngx_ssl_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "X509_NAME_print_ex() failed");
        goto done;
    }

    len = BIO_get_mem_data(bio, &p);

    if (len <= 0) {
        rc = NGX_OK;
        goto done;
    }

    subject->data = ngx_pnalloc(r->pool, 2 * len);
    if (subject->data == NULL) {
        goto done;
    }

    subject->len = ngx_hex_dump(subject->data, (u_char *) p, len)
                   - subject->data;

    rc = NGX_OK;

done:

    BIO_free(bio);

    return rc;
}
