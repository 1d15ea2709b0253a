
/*
 * juki-gateway fuzzing: the few NGINX core functions the fuzzed module
 * files need, written for the harnesses (fuzz/ngx_shim.c), plus helpers.
 *
 * Debian's nginx-dev ships NGINX's headers only, not its core sources, so
 * the harnesses cannot link NGINX's own objects.  Every allocation from a
 * shim pool is its own malloc() so that AddressSanitizer sees the exact
 * bounds of each pool buffer (NGINX's real pools would hide an overflow
 * into the next allocation of the same block).
 */


#ifndef _NGX_SHIM_H_INCLUDED_
#define _NGX_SHIM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <stdio.h>
#include <stdlib.h>


/* a hash laid out as ngx_hash_init() lays it out, read by ngx_hash_find() */
ngx_int_t ngx_shim_hash_build(ngx_hash_t *hash, ngx_hash_key_t *names,
    ngx_uint_t nelts);

/* a pool whose allocations are all freed by ngx_destroy_pool() */
ngx_pool_t *ngx_shim_pool(void);

/* a heap copy of exactly len bytes, so that reads past the end are caught */
u_char *ngx_shim_dup(const u_char *data, size_t len);

/* for assertion messages: a printable rendering of a byte string */
void ngx_shim_dump(const char *what, const u_char *data, size_t len);

#define ngx_shim_check(cond, ...)                                             \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "\nFUZZ ASSERTION FAILED (%s:%d): %s\n",          \
                    __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)


#endif /* _NGX_SHIM_H_INCLUDED_ */
