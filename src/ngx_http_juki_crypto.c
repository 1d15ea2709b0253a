
/*
 * juki-gateway: keyed hashes for the audit chain and resident pseudonyms,
 * on OpenSSL 3's EVP API; docs/audit.md gives the derivations.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ngx_http_juki_crypto.h"


#define NGX_HTTP_JUKI_NKEYS  2


typedef struct {
    u_char         key[32];
    EVP_MAC_CTX   *ctx;
} ngx_http_juki_hmac_t;


static EVP_MAC_CTX *ngx_http_juki_hmac_ctx(u_char *key);


static EVP_MAC               *ngx_http_juki_mac;
static ngx_http_juki_hmac_t   ngx_http_juki_hmacs[NGX_HTTP_JUKI_NKEYS];


ngx_int_t
ngx_http_juki_derive_keys(u_char *key, size_t len, u_char *mac_key,
    u_char *subject_key, u_char *kid)
{
    u_char        raw[EVP_MAX_MD_SIZE], hex[64];
    unsigned int  n;

    if (HMAC(EVP_sha256(), key, (int) len, (u_char *) "juki-chain-v1",
             sizeof("juki-chain-v1") - 1, mac_key, &n)
        == NULL
        || HMAC(EVP_sha256(), key, (int) len, (u_char *) "juki-subject-v1",
                sizeof("juki-subject-v1") - 1, subject_key, &n)
           == NULL)
    {
        return NGX_ERROR;
    }

    if (EVP_Digest(key, len, raw, &n, EVP_sha256(), NULL) != 1) {
        return NGX_ERROR;
    }

    ngx_hex_dump(hex, raw, 8);
    ngx_memcpy(kid, hex, 16);

    return NGX_OK;
}


/*
 * One keyed context per key and process, re-initialised for each message:
 * EVP_MAC_init() with a NULL key reuses the prepared pads, which spares a
 * key schedule and an allocation on the request path.
 */

static EVP_MAC_CTX *
ngx_http_juki_hmac_ctx(u_char *key)
{
    ngx_uint_t    i;
    OSSL_PARAM    params[2];
    EVP_MAC_CTX  *ctx;

    for (i = 0; i < NGX_HTTP_JUKI_NKEYS; i++) {
        if (ngx_http_juki_hmacs[i].ctx
            && ngx_memcmp(ngx_http_juki_hmacs[i].key, key, 32) == 0)
        {
            return ngx_http_juki_hmacs[i].ctx;
        }
    }

    for (i = 0; i < NGX_HTTP_JUKI_NKEYS; i++) {
        if (ngx_http_juki_hmacs[i].ctx == NULL) {
            break;
        }
    }

    if (i == NGX_HTTP_JUKI_NKEYS) {
        /* a reload brought new keys: start over */
        ngx_http_juki_crypto_cleanup();
        i = 0;
    }

    if (ngx_http_juki_mac == NULL) {
        ngx_http_juki_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (ngx_http_juki_mac == NULL) {
            return NULL;
        }
    }

    ctx = EVP_MAC_CTX_new(ngx_http_juki_mac);
    if (ctx == NULL) {
        return NULL;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    if (EVP_MAC_init(ctx, key, 32, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }

    ngx_memcpy(ngx_http_juki_hmacs[i].key, key, 32);
    ngx_http_juki_hmacs[i].ctx = ctx;

    return ctx;
}


ngx_int_t
ngx_http_juki_hmac_hex(u_char *key, u_char *data, size_t len, u_char *hex)
{
    u_char        raw[32];
    size_t        n;
    EVP_MAC_CTX  *ctx;

    ctx = ngx_http_juki_hmac_ctx(key);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1
        || EVP_MAC_update(ctx, data, len) != 1
        || EVP_MAC_final(ctx, raw, &n, sizeof(raw)) != 1
        || n != sizeof(raw))
    {
        return NGX_ERROR;
    }

    ngx_hex_dump(hex, raw, sizeof(raw));

    return NGX_OK;
}


/* the same over several parts, as if concatenated; the raw 32 bytes */

ngx_int_t
ngx_http_juki_hmac_parts(u_char *key, ngx_str_t *parts, ngx_uint_t n,
    u_char *mac)
{
    size_t        len;
    ngx_uint_t    i;
    EVP_MAC_CTX  *ctx;

    ctx = ngx_http_juki_hmac_ctx(key);
    if (ctx == NULL || EVP_MAC_init(ctx, NULL, 0, NULL) != 1) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (parts[i].len
            && EVP_MAC_update(ctx, parts[i].data, parts[i].len) != 1)
        {
            return NGX_ERROR;
        }
    }

    if (EVP_MAC_final(ctx, mac, &len, 32) != 1 || len != 32) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_juki_sha256_hex(u_char *data, size_t len, u_char *hex)
{
    u_char        raw[EVP_MAX_MD_SIZE];
    unsigned int  n;

    if (EVP_Digest(data, len, raw, &n, EVP_sha256(), NULL) != 1
        || n != 32)
    {
        return NGX_ERROR;
    }

    ngx_hex_dump(hex, raw, 32);

    return NGX_OK;
}


ngx_int_t
ngx_http_juki_random_hex(u_char *hex, size_t len)
{
    u_char  raw[32];

    if (len > 2 * sizeof(raw) || len % 2) {
        return NGX_ERROR;
    }

    if (RAND_bytes(raw, (int) (len / 2)) != 1) {
        return NGX_ERROR;
    }

    ngx_hex_dump(hex, raw, len / 2);

    return NGX_OK;
}


void
ngx_http_juki_crypto_cleanup(void)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_JUKI_NKEYS; i++) {
        if (ngx_http_juki_hmacs[i].ctx) {
            EVP_MAC_CTX_free(ngx_http_juki_hmacs[i].ctx);
            ngx_http_juki_hmacs[i].ctx = NULL;
        }

        ngx_explicit_memzero(ngx_http_juki_hmacs[i].key, 32);
    }

    if (ngx_http_juki_mac) {
        EVP_MAC_free(ngx_http_juki_mac);
        ngx_http_juki_mac = NULL;
    }
}
