
/*
 * fuzz_scope: ngx_http_juki_in_scope(purpose, method, uri).
 *
 * Input: the purpose's items, one per line ("M<method>" or "U<prefix>"),
 * an empty line, the request method on one line, then the URI: everything
 * after, newlines included.  Items the configuration parser would refuse
 * (a method outside A-Z and "_", a prefix not starting with "/") are left
 * out, as `nginx -t` would not load them.
 *
 * Asserts:
 *  - a URI containing "%", "\", a byte <= 0x20 or 0x7f is never in scope;
 *  - in scope implies: the method is one of the purpose's (exactly), the
 *    URI starts with one of its prefixes, and ends there, or the prefix
 *    ends in "/", or the URI goes on with "/" (a segment boundary);
 *  - the result equals an independent reference, both ways (for a URI
 *    with a byte >= 0x80 or ";", one way: see ref_maybe_bad_byte()).
 */


#include "ngx_shim.h"
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


#define MAX_ITEMS  16


static int
ref_config_method(const u_char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if ((p[i] < 'A' || p[i] > 'Z') && p[i] != '_') {
            return 0;
        }
    }

    return 1;
}


static int
ref_bad_byte(u_char c)
{
    return c <= 0x20 || c == 0x7f || c == '%' || c == '\\';
}


/*
 * Bytes the scope check may also refuse: >= 0x80 (overlong UTF-8) and ";"
 * (path parameters) pass today, and docs/reliability.md ("Hostile input")
 * proposes to refuse them.  For a URI with one of them the reference only
 * bounds the result (in scope implies the reference says in scope), so
 * this harness holds before and after that fix.
 */

static int
ref_maybe_bad_byte(u_char c)
{
    return c >= 0x80 || c == ';';
}


static int
ref_prefix_match(ngx_str_t *prefix, ngx_str_t *uri)
{
    if (uri->len < prefix->len
        || memcmp(uri->data, prefix->data, prefix->len) != 0)
    {
        return 0;
    }

    return uri->len == prefix->len
           || prefix->data[prefix->len - 1] == '/'
           || uri->data[prefix->len] == '/';
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   *copy, *p, *last, *nl;
    size_t                    i;
    ngx_str_t                 methods[MAX_ITEMS], uris[MAX_ITEMS];
    ngx_str_t                 method, uri, *s;
    ngx_uint_t                rc, ref, method_ok, uri_ok, prefix_ok, maybe;
    ngx_http_juki_purpose_t   purpose;

    /* each piece gets its own exact-size heap copy */

    copy = ngx_shim_dup(data, size);
    p = copy;
    last = copy + size;

    ngx_memzero(&purpose, sizeof(purpose));
    purpose.methods.elts = methods;
    purpose.methods.size = sizeof(ngx_str_t);
    purpose.methods.nalloc = MAX_ITEMS;
    purpose.uris.elts = uris;
    purpose.uris.size = sizeof(ngx_str_t);
    purpose.uris.nalloc = MAX_ITEMS;

    for ( ;; ) {
        nl = memchr(p, '\n', last - p);
        if (nl == NULL) {
            goto done;   /* no request line: nothing to check */
        }

        if (nl == p) {
            p++;
            break;
        }

        if (*p == 'M' && purpose.methods.nelts < MAX_ITEMS
            && ref_config_method(p + 1, nl - p - 1))
        {
            s = &methods[purpose.methods.nelts++];
            s->len = nl - p - 1;
            s->data = ngx_shim_dup(p + 1, s->len);

        } else if (*p == 'U' && purpose.uris.nelts < MAX_ITEMS
                   && nl - p > 1 && p[1] == '/')
        {
            s = &uris[purpose.uris.nelts++];
            s->len = nl - p - 1;
            s->data = ngx_shim_dup(p + 1, s->len);
        }

        p = nl + 1;
    }

    nl = memchr(p, '\n', last - p);
    if (nl == NULL) {
        goto done;
    }

    method.len = nl - p;
    method.data = ngx_shim_dup(p, method.len);

    uri.len = last - (nl + 1);
    uri.data = ngx_shim_dup(nl + 1, uri.len);

    rc = ngx_http_juki_in_scope(&purpose, &method, &uri);

    ngx_shim_check(rc == 0 || rc == 1, "in_scope returned %lu",
                   (unsigned long) rc);

    /* the reference */

    method_ok = 0;

    for (i = 0; i < purpose.methods.nelts; i++) {
        if (methods[i].len == method.len
            && memcmp(methods[i].data, method.data, method.len) == 0)
        {
            method_ok = 1;
        }
    }

    uri_ok = (uri.len > 0 && uri.data[0] == '/');

    for (i = 0; i < uri.len; i++) {
        if (ref_bad_byte(uri.data[i])) {
            uri_ok = 0;
        }
    }

    prefix_ok = 0;

    for (i = 0; i < purpose.uris.nelts; i++) {
        if (ref_prefix_match(&uris[i], &uri)) {
            prefix_ok = 1;
        }
    }

    ref = method_ok && uri_ok && prefix_ok;

    maybe = 0;

    for (i = 0; i < uri.len; i++) {
        if (ref_maybe_bad_byte(uri.data[i])) {
            maybe = 1;
        }
    }

    if (rc) {
        for (i = 0; i < uri.len; i++) {
            if (ref_bad_byte(uri.data[i])) {
                ngx_shim_dump("uri", uri.data, uri.len);
                ngx_shim_check(0, "in scope with byte 0x%02x at %zu",
                               uri.data[i], i);
            }
        }

        if (!method_ok || !prefix_ok) {
            ngx_shim_dump("method", method.data, method.len);
            ngx_shim_dump("uri", uri.data, uri.len);
            ngx_shim_check(0, "in scope without %s",
                           method_ok ? "a prefix at a segment boundary"
                                     : "a matching method");
        }
    }

    if (rc != ref && !(maybe && rc == 0)) {
        ngx_shim_dump("method", method.data, method.len);
        ngx_shim_dump("uri", uri.data, uri.len);
        for (i = 0; i < purpose.uris.nelts; i++) {
            ngx_shim_dump("prefix", uris[i].data, uris[i].len);
        }
        ngx_shim_check(0, "in_scope %lu, reference %lu", (unsigned long) rc,
                       (unsigned long) ref);
    }

    free(method.data);
    free(uri.data);

done:

    for (i = 0; i < purpose.methods.nelts; i++) {
        free(methods[i].data);
    }

    for (i = 0; i < purpose.uris.nelts; i++) {
        free(uris[i].data);
    }

    free(copy);

    return 0;
}
