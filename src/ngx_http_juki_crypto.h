
/*
 * juki-gateway: keyed hashes for the audit chain and resident pseudonyms.
 */


#ifndef _NGX_HTTP_JUKI_CRYPTO_H_INCLUDED_
#define _NGX_HTTP_JUKI_CRYPTO_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


ngx_int_t ngx_http_juki_derive_keys(u_char *key, size_t len,
    u_char *mac_key, u_char *subject_key, u_char *kid);
ngx_int_t ngx_http_juki_hmac_hex(u_char *key, u_char *data, size_t len,
    u_char *hex);
ngx_int_t ngx_http_juki_hmac_parts(u_char *key, ngx_str_t *parts,
    ngx_uint_t n, u_char *mac);
ngx_int_t ngx_http_juki_sha256_hex(u_char *data, size_t len, u_char *hex);
ngx_int_t ngx_http_juki_random_hex(u_char *hex, size_t len);
void ngx_http_juki_crypto_cleanup(void);


#endif /* _NGX_HTTP_JUKI_CRYPTO_H_INCLUDED_ */
