
/*
 * juki-gateway fuzzing: see juki_stubs.c.
 */


#ifndef _JUKI_STUBS_H_INCLUDED_
#define _JUKI_STUBS_H_INCLUDED_


/* when set, ngx_http_juki_hmac_hex() calls it instead of hashing */
extern ngx_int_t (*juki_stub_hmac_hook)(u_char *key, u_char *data,
    size_t len, u_char *hex);


#endif /* _JUKI_STUBS_H_INCLUDED_ */
