
/*
 * fuzz_headers: ngx_http_juki_valid_name(), the check of the Juki-Purpose
 * and Juki-Operator header values (lowercase = 0) and of agency names
 * (lowercase = 1), against an independent reference:
 *
 *   lowercase = 0: 1-64 bytes of A-Z a-z 0-9 . _ -
 *   lowercase = 1: 1-64 bytes of a-z 0-9 . _ -, not starting with . _ -
 *
 * The whole input is the value; it sits in a heap buffer of exactly its
 * length so that any read past the end is caught.
 */


#include "ngx_shim.h"
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


static int
ref_valid_name(const u_char *p, size_t len, int lowercase)
{
    size_t  i;
    u_char  c;

    if (len < 1 || len > 64) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c >= 'a' && c <= 'z') {
            continue;
        }

        if (c >= '0' && c <= '9') {
            continue;
        }

        if (c >= 'A' && c <= 'Z') {
            if (lowercase) {
                return 0;
            }
            continue;
        }

        if (c == '.' || c == '_' || c == '-') {
            if (lowercase && i == 0) {
                return 0;
            }
            continue;
        }

        return 0;
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *copy;
    ngx_int_t   rc;
    ngx_str_t   s;
    ngx_uint_t  lc;

    copy = ngx_shim_dup(data, size);

    for (lc = 0; lc < 2; lc++) {
        s.len = size;
        s.data = copy;

        rc = ngx_http_juki_valid_name(&s, lc);

        ngx_shim_check(rc == NGX_OK || rc == NGX_ERROR, "rc %ld", (long) rc);
        ngx_shim_check(s.len == size && s.data == copy,
                       "the value was modified");

        if ((rc == NGX_OK) != ref_valid_name(copy, size, (int) lc)) {
            ngx_shim_dump("value", copy, size);
            ngx_shim_check(0, "valid_name(lowercase=%lu) = %s, reference %s",
                           (unsigned long) lc, rc == NGX_OK ? "OK" : "ERROR",
                           rc == NGX_OK ? "rejects" : "accepts");
        }
    }

    free(copy);

    return 0;
}
