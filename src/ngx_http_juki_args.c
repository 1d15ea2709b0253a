
/*
 * juki-gateway: is a request ambiguous?  NGINX and the backend behind it
 * must agree on which resident, which path and which method a request is
 * about; wherever a common backend could read the query, the path or the
 * headers otherwise than NGINX does, the request is ambiguous and refused
 * (bad_request).  Pure functions of their input (fuzz/fuzz_args.c).
 *
 * A query parameter "is" the juki_subject parameter NAME when its name,
 * read as lenient backends read names, is NAME:
 *
 *   - percent-decoded, "+" as a space, again and again while a round
 *     decoded an escape ("c%256Fde" -> "c%6Fde" -> "code");
 *   - cut at a NUL (C strings) or a "[" (the array notation of PHP, Rails
 *     and qs: "code[]=1" is a code);
 *   - without leading and trailing white space;
 *   - compared case-insensitively, "." and " " read as "_" (PHP), and the
 *     Unicode letters whose case mapping is ASCII ("K" KELVIN SIGN, "s"
 *     LONG S, dotless and dotted "i") read as those letters.
 *
 * Parameters are split on "&" and on ";" (some backends split on both).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


static ngx_uint_t ngx_http_juki_args_hex(u_char c);
static size_t ngx_http_juki_args_decode(u_char *p, size_t len,
    ngx_uint_t plus, ngx_uint_t *decoded);
static ngx_uint_t ngx_http_juki_args_is_name(u_char *buf, ngx_str_t *raw,
    ngx_str_t *name);
static ngx_uint_t ngx_http_juki_args_space(u_char c);


static ngx_str_t  ngx_http_juki_args_overrides[] = {
    ngx_string("x-http-method-override"),
    ngx_string("x-http-method"),
    ngx_string("x-method-override"),
    ngx_null_string
};


/*
 * The query: *verdict gets NGX_HTTP_JUKI_AMB_REPEATED (the parameter more
 * than once), _SPELLING (a name that is NAME only once read leniently) or
 * _SEMICOLON (a ";" inside the "&"-parameter that holds it: NGINX's $arg_
 * and a backend splitting on ";" read different values).  The value of
 * every such parameter is added to values (when not NULL), for masking.
 */

ngx_int_t
ngx_http_juki_args_query(ngx_pool_t *pool, ngx_str_t *args, ngx_str_t *name,
    ngx_array_t *values, ngx_uint_t *verdict)
{
    u_char      *buf, *last, *param, *end, *piece, *stop, *eq;
    ngx_str_t    raw, *v;
    ngx_uint_t   n, semicolon;

    *verdict = 0;

    if (name->len == 0 || args->len == 0) {
        return NGX_OK;
    }

    /* the decoded name is never longer than the raw one */

    buf = ngx_pnalloc(pool, args->len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    last = args->data + args->len;

    for (param = args->data; /* void */; param = end + 1) {
        end = ngx_strlchr(param, last, '&');

        if (end == NULL) {
            end = last;
        }

        semicolon = (ngx_strlchr(param, end, ';') != NULL);

        for (piece = param; /* void */; piece = stop + 1) {
            stop = ngx_strlchr(piece, end, ';');

            if (stop == NULL) {
                stop = end;
            }

            eq = ngx_strlchr(piece, stop, '=');

            raw.data = piece;
            raw.len = (eq ? eq : stop) - piece;

            if (raw.len && ngx_http_juki_args_is_name(buf, &raw, name)) {
                n++;

                if (raw.len != name->len
                    || ngx_memcmp(raw.data, name->data, name->len) != 0)
                {
                    *verdict |= NGX_HTTP_JUKI_AMB_SPELLING;
                }

                if (semicolon) {
                    *verdict |= NGX_HTTP_JUKI_AMB_SEMICOLON;
                }

                if (values && eq && stop - (eq + 1) > 0) {
                    v = ngx_array_push(values);
                    if (v == NULL) {
                        return NGX_ERROR;
                    }

                    v->data = eq + 1;
                    v->len = stop - (eq + 1);
                }
            }

            if (stop == end) {
                break;
            }
        }

        if (end == last) {
            break;
        }
    }

    if (n > 1) {
        *verdict |= NGX_HTTP_JUKI_AMB_REPEATED;
    }

    return NGX_OK;
}


/*
 * The path: a raw "#" in the request target (NGINX ends $uri and $args
 * there, proxy_pass sends the target whole) is NGX_HTTP_JUKI_AMB_FRAGMENT;
 * a "?" or "#" in $uri, or in what decoding $uri again yields (a backend
 * that decodes twice), is NGX_HTTP_JUKI_AMB_PATH.
 */

ngx_int_t
ngx_http_juki_args_path(ngx_pool_t *pool, ngx_str_t *target, ngx_str_t *uri,
    ngx_uint_t *verdict)
{
    u_char      *buf;
    size_t       len;
    ngx_uint_t   decoded;

    *verdict = 0;

    if (ngx_strlchr(target->data, target->data + target->len, '#')) {
        *verdict |= NGX_HTTP_JUKI_AMB_FRAGMENT;
    }

    if (ngx_strlchr(uri->data, uri->data + uri->len, '?')
        || ngx_strlchr(uri->data, uri->data + uri->len, '#'))
    {
        *verdict |= NGX_HTTP_JUKI_AMB_PATH;
        return NGX_OK;
    }

    if (ngx_strlchr(uri->data, uri->data + uri->len, '%') == NULL) {
        return NGX_OK;
    }

    buf = ngx_pnalloc(pool, uri->len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(buf, uri->data, uri->len);
    len = uri->len;

    do {
        len = ngx_http_juki_args_decode(buf, len, 0, &decoded);

        if (ngx_strlchr(buf, buf + len, '?')
            || ngx_strlchr(buf, buf + len, '#'))
        {
            *verdict |= NGX_HTTP_JUKI_AMB_PATH;
            return NGX_OK;
        }

    } while (decoded);

    return NGX_OK;
}


/*
 * The headers: a method-override header is NGX_HTTP_JUKI_AMB_OVERRIDE (a
 * backend honouring it would run another method than the one the purpose
 * allowed); the juki_subject header (lower case, "-", may be empty) more
 * than once is NGX_HTTP_JUKI_AMB_REPEATED.
 */

void
ngx_http_juki_args_headers(ngx_list_t *headers, ngx_str_t *subject,
    ngx_uint_t *verdict)
{
    ngx_uint_t        i, k, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    *verdict = 0;
    n = 0;

    part = &headers->part;
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

        for (k = 0; ngx_http_juki_args_overrides[k].len; k++) {
            if (ngx_http_juki_args_header(&h[i].key,
                                          &ngx_http_juki_args_overrides[k], 0))
            {
                *verdict |= NGX_HTTP_JUKI_AMB_OVERRIDE;
            }
        }

        if (subject->len
            && ngx_http_juki_args_header(&h[i].key, subject, 0))
        {
            n++;
        }
    }

    if (n > 1) {
        *verdict |= NGX_HTTP_JUKI_AMB_REPEATED;
    }
}


/*
 * 1 when the header name, case-folded with "_" read as "-", is name (lower
 * case, "-"), or with prefix starts with it
 */

ngx_uint_t
ngx_http_juki_args_header(ngx_str_t *key, ngx_str_t *name, ngx_uint_t prefix)
{
    u_char      c;
    ngx_uint_t  i;

    if (key->len < name->len || (!prefix && key->len != name->len)) {
        return 0;
    }

    for (i = 0; i < name->len; i++) {
        c = ngx_tolower(key->data[i]);

        if (c == '_') {
            c = '-';
        }

        if (c != name->data[i]) {
            return 0;
        }
    }

    return 1;
}


/* the first reason of a verdict, for the log */

char *
ngx_http_juki_args_cause(ngx_uint_t verdict)
{
    if (verdict & NGX_HTTP_JUKI_AMB_REPEATED) {
        return "juki_subject parameter or header repeated";
    }

    if (verdict & NGX_HTTP_JUKI_AMB_SPELLING) {
        return "juki_subject parameter in another spelling";
    }

    if (verdict & NGX_HTTP_JUKI_AMB_SEMICOLON) {
        return "\";\" next to the juki_subject parameter";
    }

    if (verdict & NGX_HTTP_JUKI_AMB_FRAGMENT) {
        return "\"#\" in the request target";
    }

    if (verdict & NGX_HTTP_JUKI_AMB_PATH) {
        return "\"?\" or \"#\" decoded in the path";
    }

    return "method-override header";
}


/* 1 when the raw parameter name is NAME read leniently; buf: scratch */

static ngx_uint_t
ngx_http_juki_args_is_name(u_char *buf, ngx_str_t *raw, ngx_str_t *name)
{
    u_char      *p, *last, c;
    size_t       len;
    ngx_uint_t   i, decoded;

    ngx_memcpy(buf, raw->data, raw->len);
    len = raw->len;

    do {
        len = ngx_http_juki_args_decode(buf, len, 1, &decoded);
    } while (decoded);

    for (last = buf; last < buf + len && *last != '\0' && *last != '[';
         last++)
    {
        /* void */
    }

    for (p = buf; p < last && ngx_http_juki_args_space(*p); p++) {
        /* void */
    }

    while (last > p && ngx_http_juki_args_space(*(last - 1))) {
        last--;
    }

    for (i = 0; i < name->len; i++) {

        if (p == last) {
            return 0;
        }

        if (last - p >= 3 && p[0] == 0xe2 && p[1] == 0x84 && p[2] == 0xaa) {
            c = 'k';
            p += 3;

        } else if (last - p >= 2 && p[0] == 0xc5 && p[1] == 0xbf) {
            c = 's';
            p += 2;

        } else if (last - p >= 2 && p[0] == 0xc4
                   && (p[1] == 0xb0 || p[1] == 0xb1))
        {
            c = 'i';
            p += 2;

        } else {
            c = ngx_tolower(*p);

            if (c == '.' || c == ' ') {
                c = '_';
            }

            p++;
        }

        if (c != ngx_tolower(name->data[i])) {
            return 0;
        }
    }

    return p == last;
}


/* one round of percent-decoding in place; "+" as a space with plus */

static size_t
ngx_http_juki_args_decode(u_char *p, size_t len, ngx_uint_t plus,
    ngx_uint_t *decoded)
{
    size_t      i, n;
    ngx_uint_t  hi, lo;

    *decoded = 0;
    n = 0;

    for (i = 0; i < len; i++) {

        if (p[i] == '%' && i + 2 < len) {
            hi = ngx_http_juki_args_hex(p[i + 1]);
            lo = ngx_http_juki_args_hex(p[i + 2]);

            if (hi < 16 && lo < 16) {
                p[n++] = (u_char) (hi << 4 | lo);
                i += 2;
                *decoded = 1;
                continue;
            }
        }

        p[n++] = (plus && p[i] == '+') ? ' ' : p[i];
    }

    return n;
}


/* the value of a hex digit, 16 for anything else */

static ngx_uint_t
ngx_http_juki_args_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return 16;
}


static ngx_uint_t
ngx_http_juki_args_space(u_char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v'
           || c == '\f';
}
