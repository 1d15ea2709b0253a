
/*
 * fuzz_args: src/ngx_http_juki_args.c, the ambiguity checks.
 *
 * Input: the juki_subject parameter name on the first line, the query
 * ($args) on the second, the raw request target on the third, then $uri:
 * everything after, newlines included.  A name the configuration would not
 * take from "$arg_NAME" (anything but A-Za-z0-9_, or empty) skips the
 * query check, as it would be skipped at run time.
 *
 * Asserts, against a reference written separately below (copies and whole
 * strings, decoding to a fixpoint first, then comparing canonical forms):
 *  - ngx_http_juki_args_query() gives the reference's verdict bits, and
 *    no others, and exactly the values the reference finds, in order;
 *  - ngx_http_juki_args_path() likewise, for "#" in the target and "?" or
 *    "#" in $uri decoded any number of times;
 *  - ngx_http_juki_args_header() with the second line as a header name, for
 *    the "juki-" prefix, each method-override name and the subject name
 *    read as a header name.
 */


#include "ngx_shim.h"
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


typedef struct {
    u_char  *data;
    size_t   len;
} ref_str_t;


static int
ref_is_hex(u_char c)
{
    return strchr("0123456789abcdefABCDEF", c) != NULL && c != '\0';
}


static int
ref_hex_value(u_char c)
{
    static const char  digits[] = "0123456789abcdef";

    return (int) (strchr(digits, tolower(c)) - digits);
}


/* one decoding round into a new buffer; *escapes counts decoded "%XY" */

static ref_str_t
ref_decode_round(ref_str_t in, int plus, int *escapes)
{
    size_t     i;
    ref_str_t  out;

    out.data = malloc(in.len + 1);
    out.len = 0;
    *escapes = 0;

    i = 0;

    while (i < in.len) {
        if (in.data[i] == '%' && in.len - i >= 3
            && ref_is_hex(in.data[i + 1]) && ref_is_hex(in.data[i + 2]))
        {
            out.data[out.len++] = (u_char) (ref_hex_value(in.data[i + 1]) * 16
                                            + ref_hex_value(in.data[i + 2]));
            *escapes += 1;
            i += 3;

        } else if (plus && in.data[i] == '+') {
            out.data[out.len++] = ' ';
            i += 1;

        } else {
            out.data[out.len++] = in.data[i];
            i += 1;
        }
    }

    return out;
}


/* every string the repeated decoding goes through, the input first */

static ref_str_t *
ref_decodings(ref_str_t in, int plus, size_t *n)
{
    int         escapes;
    ref_str_t  *all, cur;

    all = malloc((in.len + 2) * sizeof(ref_str_t));
    all[0].data = malloc(in.len + 1);
    memcpy(all[0].data, in.data, in.len);
    all[0].len = in.len;
    *n = 1;
    cur = all[0];

    for ( ;; ) {
        cur = ref_decode_round(cur, plus, &escapes);
        all[(*n)++] = cur;

        if (escapes == 0) {
            break;
        }
    }

    return all;
}


static void
ref_free_decodings(ref_str_t *all, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        free(all[i].data);
    }

    free(all);
}


static int
ref_space(u_char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}


/* the canonical form of a parameter name, as docs/design.md defines it */

static ref_str_t
ref_canonical(ref_str_t raw)
{
    size_t      n, start, end, i;
    ref_str_t  *all, last, out;

    all = ref_decodings(raw, 1, &n);
    last = all[n - 1];

    end = 0;

    while (end < last.len && last.data[end] != '\0' && last.data[end] != '[')
    {
        end++;
    }

    start = 0;

    while (start < end && ref_space(last.data[start])) {
        start++;
    }

    while (end > start && ref_space(last.data[end - 1])) {
        end--;
    }

    out.data = malloc(end - start + 1);
    out.len = 0;

    i = start;

    while (i < end) {
        if (end - i >= 3 && memcmp(last.data + i, "\xe2\x84\xaa", 3) == 0) {
            out.data[out.len++] = 'k';
            i += 3;

        } else if (end - i >= 2 && memcmp(last.data + i, "\xc5\xbf", 2) == 0)
        {
            out.data[out.len++] = 's';
            i += 2;

        } else if (end - i >= 2
                   && (memcmp(last.data + i, "\xc4\xb0", 2) == 0
                       || memcmp(last.data + i, "\xc4\xb1", 2) == 0))
        {
            out.data[out.len++] = 'i';
            i += 2;

        } else if (last.data[i] == '.' || last.data[i] == ' ') {
            out.data[out.len++] = '_';
            i += 1;

        } else {
            out.data[out.len++] = (u_char) tolower(last.data[i]);
            i += 1;
        }
    }

    ref_free_decodings(all, n);

    return out;
}


static int
ref_valid_name(ref_str_t name)
{
    size_t  i;

    if (name.len == 0) {
        return 0;
    }

    for (i = 0; i < name.len; i++) {
        if (!isalnum(name.data[i]) && name.data[i] != '_') {
            return 0;
        }
    }

    return 1;
}


/* the pieces of s between separators sep (empty ones included) */

static ref_str_t *
ref_split(ref_str_t s, u_char sep, size_t *n)
{
    size_t      i, from;
    ref_str_t  *parts;

    parts = malloc((s.len + 1) * sizeof(ref_str_t));
    *n = 0;
    from = 0;

    for (i = 0; i <= s.len; i++) {
        if (i == s.len || s.data[i] == sep) {
            parts[*n].data = s.data + from;
            parts[*n].len = i - from;
            (*n)++;
            from = i + 1;
        }
    }

    return parts;
}


static ngx_uint_t
ref_query(ref_str_t args, ref_str_t name, ref_str_t *values, size_t *nvalues)
{
    u_char      *eq;
    size_t       np, nq, i, k, count;
    ref_str_t   *params, *pieces, key, canon, lname;
    ngx_uint_t   verdict;

    verdict = 0;
    *nvalues = 0;
    count = 0;

    if (args.len == 0) {
        return 0;
    }

    lname.data = malloc(name.len + 1);
    lname.len = name.len;

    for (i = 0; i < name.len; i++) {
        lname.data[i] = (u_char) tolower(name.data[i]);
    }

    params = ref_split(args, '&', &np);

    for (i = 0; i < np; i++) {
        pieces = ref_split(params[i], ';', &nq);

        for (k = 0; k < nq; k++) {
            eq = memchr(pieces[k].data, '=', pieces[k].len);
            key.data = pieces[k].data;
            key.len = eq ? (size_t) (eq - pieces[k].data) : pieces[k].len;

            if (key.len == 0) {
                continue;
            }

            canon = ref_canonical(key);

            if (canon.len == lname.len
                && memcmp(canon.data, lname.data, lname.len) == 0)
            {
                count++;

                if (key.len != name.len
                    || memcmp(key.data, name.data, name.len) != 0)
                {
                    verdict |= NGX_HTTP_JUKI_AMB_SPELLING;
                }

                if (nq > 1) {
                    verdict |= NGX_HTTP_JUKI_AMB_SEMICOLON;
                }

                if (eq && pieces[k].len - key.len - 1 > 0) {
                    values[*nvalues].data = eq + 1;
                    values[*nvalues].len = pieces[k].len - key.len - 1;
                    (*nvalues)++;
                }
            }

            free(canon.data);
        }

        free(pieces);
    }

    free(params);
    free(lname.data);

    if (count >= 2) {
        verdict |= NGX_HTTP_JUKI_AMB_REPEATED;
    }

    return verdict;
}


static ngx_uint_t
ref_path(ref_str_t target, ref_str_t uri)
{
    size_t       n, i;
    ref_str_t   *all;
    ngx_uint_t   verdict;

    verdict = 0;

    if (memchr(target.data, '#', target.len)) {
        verdict |= NGX_HTTP_JUKI_AMB_FRAGMENT;
    }

    all = ref_decodings(uri, 0, &n);

    for (i = 0; i < n; i++) {
        if (memchr(all[i].data, '?', all[i].len)
            || memchr(all[i].data, '#', all[i].len))
        {
            verdict |= NGX_HTTP_JUKI_AMB_PATH;
        }
    }

    ref_free_decodings(all, n);

    return verdict;
}


/* the header name as the gateway compares it: lower case, "_" as "-" */

static ngx_uint_t
ref_header(ref_str_t key, const char *name, int prefix)
{
    size_t   i, len;
    u_char  *folded;
    int      eq;

    len = strlen(name);

    if (key.len < len || (!prefix && key.len != len)) {
        return 0;
    }

    folded = malloc(key.len + 1);

    for (i = 0; i < key.len; i++) {
        folded[i] = key.data[i] == '_' ? '-' : (u_char) tolower(key.data[i]);
    }

    eq = memcmp(folded, name, len) == 0;
    free(folded);

    return eq;
}


static void
check_header(ngx_str_t *key, const char *name, int prefix)
{
    ngx_str_t   n;
    ref_str_t   k;
    ngx_uint_t  rc, ref;

    n.data = (u_char *) name;
    n.len = strlen(name);
    k.data = key->data;
    k.len = key->len;

    rc = ngx_http_juki_args_header(key, &n, prefix);
    ref = ref_header(k, name, prefix);

    if (rc != ref) {
        ngx_shim_dump("key", key->data, key->len);
        ngx_shim_check(0, "header \"%s\"%s: %lu, reference %lu", name,
                       prefix ? " (prefix)" : "", (unsigned long) rc,
                       (unsigned long) ref);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char       *copy, *p, *last, *nl[3], *lname;
    size_t        i, k, nvalues;
    ngx_str_t     name, args, target, uri, *v;
    ngx_uint_t    verdict, ref;
    ngx_pool_t   *pool;
    ref_str_t     rname, rargs, rtarget, ruri, *rvalues;
    ngx_array_t   values;

    copy = ngx_shim_dup(data, size);
    last = copy + size;
    p = copy;

    for (i = 0; i < 3; i++) {
        nl[i] = memchr(p, '\n', last - p);
        if (nl[i] == NULL) {
            free(copy);
            return 0;
        }

        p = nl[i] + 1;
    }

    /* each piece gets its own exact-size heap copy */

    name.len = nl[0] - copy;
    name.data = ngx_shim_dup(copy, name.len);
    args.len = nl[1] - (nl[0] + 1);
    args.data = ngx_shim_dup(nl[0] + 1, args.len);
    target.len = nl[2] - (nl[1] + 1);
    target.data = ngx_shim_dup(nl[1] + 1, target.len);
    uri.len = last - (nl[2] + 1);
    uri.data = ngx_shim_dup(nl[2] + 1, uri.len);

    rname.data = name.data;
    rname.len = name.len;
    rargs.data = args.data;
    rargs.len = args.len;
    rtarget.data = target.data;
    rtarget.len = target.len;
    ruri.data = uri.data;
    ruri.len = uri.len;

    pool = ngx_shim_pool();

    /* the query */

    if (ref_valid_name(rname)) {
        if (ngx_array_init(&values, pool, 1, sizeof(ngx_str_t)) != NGX_OK
            || ngx_http_juki_args_query(pool, &args, &name, &values,
                                        &verdict)
               != NGX_OK)
        {
            ngx_shim_check(0, "args_query failed");
        }

        rvalues = malloc((args.len + 1) * sizeof(ref_str_t));
        ref = ref_query(rargs, rname, rvalues, &nvalues);

        if (verdict != ref) {
            ngx_shim_dump("name", name.data, name.len);
            ngx_shim_dump("args", args.data, args.len);
            ngx_shim_check(0, "query verdict 0x%lx, reference 0x%lx",
                           (unsigned long) verdict, (unsigned long) ref);
        }

        ngx_shim_check(values.nelts == nvalues,
                       "%lu values, reference %zu",
                       (unsigned long) values.nelts, nvalues);

        v = values.elts;

        for (k = 0; k < nvalues; k++) {
            if (v[k].len != rvalues[k].len
                || memcmp(v[k].data, rvalues[k].data, v[k].len) != 0)
            {
                ngx_shim_dump("args", args.data, args.len);
                ngx_shim_dump("value", v[k].data, v[k].len);
                ngx_shim_dump("reference", rvalues[k].data, rvalues[k].len);
                ngx_shim_check(0, "value %zu differs", k);
            }
        }

        free(rvalues);

        /* the header spelling of the subject name */

        lname = malloc(name.len + 1);

        for (k = 0; k < name.len; k++) {
            lname[k] = name.data[k] == '_' ? '-' : tolower(name.data[k]);
        }

        lname[name.len] = '\0';

        check_header(&args, (char *) lname, 0);
        free(lname);

    } else {
        ngx_str_null(&name);

        if (ngx_http_juki_args_query(pool, &args, &name, NULL, &verdict)
            != NGX_OK)
        {
            ngx_shim_check(0, "args_query failed");
        }

        ngx_shim_check(verdict == 0, "verdict 0x%lx without a name",
                       (unsigned long) verdict);
    }

    /* the path */

    if (ngx_http_juki_args_path(pool, &target, &uri, &verdict) != NGX_OK) {
        ngx_shim_check(0, "args_path failed");
    }

    ref = ref_path(rtarget, ruri);

    if (verdict != ref) {
        ngx_shim_dump("target", target.data, target.len);
        ngx_shim_dump("uri", uri.data, uri.len);
        ngx_shim_check(0, "path verdict 0x%lx, reference 0x%lx",
                       (unsigned long) verdict, (unsigned long) ref);
    }

    /* header names, with the query line as one */

    check_header(&args, "juki-", 1);
    check_header(&args, "x-http-method-override", 0);
    check_header(&args, "x-http-method", 0);
    check_header(&args, "x-method-override", 0);

    ngx_destroy_pool(pool);

    free(rname.data);
    free(args.data);
    free(target.data);
    free(uri.data);
    free(copy);

    return 0;
}
