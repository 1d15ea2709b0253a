
/*
 * juki-gateway fuzzing: a stand-in for the NGINX core functions that
 * src/ngx_http_juki_policy.c, src/ngx_http_juki_audit.c,
 * src/ngx_http_juki_args.c and src/ngx_http_juki_batch.c call.  Written
 * for the harnesses from NGINX's documented behaviour (ngx_string.h,
 * ngx_hash.h, ngx_palloc.h, ngx_array.h, ngx_alloc.h); see ngx_shim.h for
 * why.
 */


#include "ngx_shim.h"
#include <ngx_event.h>


volatile ngx_cycle_t  *ngx_cycle;
volatile ngx_msec_t    ngx_current_msec;
ngx_queue_t            ngx_posted_events;

static ngx_time_t      ngx_shim_time = { 1700000000, 123, 0 };
volatile ngx_time_t   *ngx_cached_time = &ngx_shim_time;

ngx_uint_t  ngx_pagesize = 4096;
ngx_uint_t  ngx_pagesize_shift = 12;
ngx_uint_t  ngx_cacheline_size = 64;


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    return malloc(size);
}


/* pools: every allocation is a malloc() chained on pool->large */

ngx_pool_t *
ngx_create_pool(size_t size, ngx_log_t *log)
{
    ngx_pool_t  *p;

    p = calloc(1, sizeof(ngx_pool_t));
    if (p == NULL) {
        abort();
    }

    p->log = log;

    return p;
}


ngx_pool_t *
ngx_shim_pool(void)
{
    return ngx_create_pool(4096, NULL);
}


void
ngx_destroy_pool(ngx_pool_t *pool)
{
    ngx_pool_large_t  *l, *next;

    for (l = pool->large; l; l = next) {
        next = l->next;
        free(l->alloc);
        free(l);
    }

    free(pool);
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    ngx_pool_large_t  *l;

    l = malloc(sizeof(ngx_pool_large_t));
    if (l == NULL) {
        abort();
    }

    /* malloc(0) may return NULL, which the callers take for "no memory" */
    l->alloc = malloc(size ? size : 1);
    if (l->alloc == NULL) {
        abort();
    }

    l->next = pool->large;
    pool->large = l;

    return l->alloc;
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_pnalloc(pool, size);
    ngx_memzero(p, size);

    return p;
}


ngx_int_t
ngx_pfree(ngx_pool_t *pool, void *p)
{
    return NGX_DECLINED;
}


/* arrays: a full array moves to a new allocation twice its size */

void *
ngx_array_push(ngx_array_t *a)
{
    void  *elts;

    if (a->nelts == a->nalloc) {
        elts = ngx_palloc(a->pool, 2 * a->nalloc * a->size);
        if (elts == NULL) {
            return NULL;
        }

        memcpy(elts, a->elts, a->nelts * a->size);
        a->elts = elts;
        a->nalloc *= 2;
    }

    return (u_char *) a->elts + a->size * a->nelts++;
}


u_char *
ngx_shim_dup(const u_char *data, size_t len)
{
    u_char  *p;

    p = malloc(len ? len : 1);
    if (p == NULL) {
        abort();
    }

    if (len) {
        memcpy(p, data, len);
    }

    return p;
}


void
ngx_shim_dump(const char *what, const u_char *data, size_t len)
{
    size_t  i;

    fprintf(stderr, "%s (%zu bytes): \"", what, len);

    for (i = 0; i < len && i < 512; i++) {
        if (data[i] >= 0x20 && data[i] < 0x7f && data[i] != '"'
            && data[i] != '\\')
        {
            fputc(data[i], stderr);

        } else {
            fprintf(stderr, "\\x%02x", data[i]);
        }
    }

    fprintf(stderr, "%s\"\n", i < len ? "..." : "");
}


/* ngx_atoi(): decimal digits only, NGX_ERROR when empty or on overflow */

ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_int_t  value, d;

    if (n == 0) {
        return NGX_ERROR;
    }

    for (value = 0; n--; line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        d = *line - '0';

        if (value > (NGX_MAX_INT_T_VALUE - d) / 10) {
            return NGX_ERROR;
        }

        value = value * 10 + d;
    }

    return value;
}


ngx_uint_t
ngx_hash_key(u_char *data, size_t len)
{
    ngx_uint_t  i, key;

    key = 0;

    for (i = 0; i < len; i++) {
        key = ngx_hash(key, data[i]);
    }

    return key;
}


/*
 * The exact-match hash: buckets[key % size] points at a run of elements
 * { value, len, name }, each padded to a pointer boundary, ended by a NULL
 * value.  ngx_hash_find() below reads that layout as NGINX's does.
 */

#define NGX_SHIM_ELT_SIZE(len)                                                \
    (sizeof(void *) + ngx_align((len) + 2, sizeof(void *)))

ngx_int_t
ngx_shim_hash_build(ngx_hash_t *hash, ngx_hash_key_t *names,
    ngx_uint_t nelts)
{
    u_char          *p;
    size_t           len;
    ngx_uint_t       i, b, size;
    ngx_hash_elt_t  *elt;

    size = nelts ? nelts * 2 + 1 : 1;

    hash->buckets = calloc(size, sizeof(ngx_hash_elt_t *));
    hash->size = size;

    if (hash->buckets == NULL) {
        abort();
    }

    for (b = 0; b < size; b++) {
        len = 0;

        for (i = 0; i < nelts; i++) {
            names[i].key_hash = ngx_hash_key(names[i].key.data,
                                             names[i].key.len);
            if (names[i].key_hash % size == b) {
                len += NGX_SHIM_ELT_SIZE(names[i].key.len);
            }
        }

        if (len == 0) {
            continue;
        }

        p = calloc(1, len + sizeof(void *));
        if (p == NULL) {
            abort();
        }

        hash->buckets[b] = (ngx_hash_elt_t *) p;

        for (i = 0; i < nelts; i++) {
            if (names[i].key_hash % size != b) {
                continue;
            }

            elt = (ngx_hash_elt_t *) p;
            elt->value = names[i].value;
            elt->len = (u_short) names[i].key.len;
            memcpy(elt->name, names[i].key.data, names[i].key.len);

            p += NGX_SHIM_ELT_SIZE(names[i].key.len);
        }

        /* the terminating element: value NULL, from calloc() */
    }

    return NGX_OK;
}


void *
ngx_hash_find(ngx_hash_t *hash, ngx_uint_t key, u_char *name, size_t len)
{
    ngx_hash_elt_t  *elt;

    elt = hash->buckets[key % hash->size];

    if (elt == NULL) {
        return NULL;
    }

    while (elt->value) {
        if (len == (size_t) elt->len
            && (len == 0 || memcmp(name, elt->name, len) == 0))
        {
            return elt->value;
        }

        elt = (ngx_hash_elt_t *) ngx_align_ptr(&elt->name[0] + elt->len,
                                               sizeof(void *));
    }

    return NULL;
}


/*
 * ngx_vslprintf(): the conversions the module uses, with NGINX's meaning:
 *   %[0][width][u][x|X]  followed by  d i z L O T M D l p c s V Z N %
 *   %*s: a size_t length, then u_char *;  %V: ngx_str_t *
 */

static u_char *
ngx_shim_num(u_char *buf, u_char *last, uint64_t ui64, u_char zero,
    ngx_uint_t hexadecimal, ngx_uint_t width)
{
    u_char      *p, temp[NGX_INT64_LEN + 1];
    size_t       len;

    static const u_char  hex[] = "0123456789abcdef";
    static const u_char  HEX[] = "0123456789ABCDEF";

    p = temp + NGX_INT64_LEN;

    if (hexadecimal == 0) {
        do {
            *--p = (u_char) (ui64 % 10 + '0');
        } while (ui64 /= 10);

    } else {
        do {
            *--p = (hexadecimal == 1 ? hex : HEX)[ui64 & 0xf];
        } while (ui64 >>= 4);
    }

    len = (temp + NGX_INT64_LEN) - p;

    while (len++ < width && buf < last) {
        *buf++ = zero;
    }

    len = (temp + NGX_INT64_LEN) - p;

    if (buf + len > last) {
        len = last - buf;
    }

    return ngx_cpymem(buf, p, len);
}


u_char *
ngx_vslprintf(u_char *buf, u_char *last, const char *fmt, va_list args)
{
    u_char      *p, zero;
    size_t       len, slen;
    int64_t      i64;
    uint64_t     ui64;
    ngx_str_t   *v;
    ngx_uint_t   width, sign, hex, max_width;

    while (*fmt && buf < last) {

        if (*fmt != '%') {
            *buf++ = *fmt++;
            continue;
        }

        i64 = 0;
        ui64 = 0;

        zero = (u_char) ((*++fmt == '0') ? '0' : ' ');
        width = 0;
        sign = 1;
        hex = 0;
        max_width = 0;
        slen = (size_t) -1;

        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }

        for ( ;; ) {
            switch (*fmt) {

            case 'u':
                sign = 0;
                fmt++;
                continue;

            case 'm':
                max_width = 1;
                fmt++;
                continue;

            case 'X':
                hex = 2;
                sign = 0;
                fmt++;
                continue;

            case 'x':
                hex = 1;
                sign = 0;
                fmt++;
                continue;

            case '*':
                slen = va_arg(args, size_t);
                fmt++;
                continue;

            default:
                break;
            }

            break;
        }

        (void) max_width;

        switch (*fmt) {

        case 'V':
            v = va_arg(args, ngx_str_t *);
            len = ngx_min((size_t) (last - buf), v->len);
            buf = ngx_cpymem(buf, v->data, len);
            fmt++;
            continue;

        case 's':
            p = va_arg(args, u_char *);

            if (slen == (size_t) -1) {
                while (*p && buf < last) {
                    *buf++ = *p++;
                }

            } else {
                len = ngx_min((size_t) (last - buf), slen);
                buf = ngx_cpymem(buf, p, len);
            }

            fmt++;
            continue;

        case 'O':
            i64 = (int64_t) va_arg(args, off_t);
            sign = 1;
            break;

        case 'T':
            i64 = (int64_t) va_arg(args, time_t);
            sign = 1;
            break;

        case 'M':
            ui64 = (uint64_t) va_arg(args, ngx_msec_t);
            if ((ngx_msec_int_t) ui64 == -1) {
                sign = 1;
                i64 = -1;

            } else {
                sign = 0;
            }
            break;

        case 'z':
            if (sign) {
                i64 = (int64_t) va_arg(args, ssize_t);
            } else {
                ui64 = (uint64_t) va_arg(args, size_t);
            }
            break;

        case 'i':
            if (sign) {
                i64 = (int64_t) va_arg(args, ngx_int_t);
            } else {
                ui64 = (uint64_t) va_arg(args, ngx_uint_t);
            }
            break;

        case 'd':
            if (sign) {
                i64 = (int64_t) va_arg(args, int);
            } else {
                ui64 = (uint64_t) va_arg(args, u_int);
            }
            break;

        case 'l':
            if (sign) {
                i64 = (int64_t) va_arg(args, long);
            } else {
                ui64 = (uint64_t) va_arg(args, u_long);
            }
            break;

        case 'D':
            if (sign) {
                i64 = (int64_t) va_arg(args, int32_t);
            } else {
                ui64 = (uint64_t) va_arg(args, uint32_t);
            }
            break;

        case 'L':
            if (sign) {
                i64 = va_arg(args, int64_t);
            } else {
                ui64 = va_arg(args, uint64_t);
            }
            break;

        case 'p':
            ui64 = (uintptr_t) va_arg(args, void *);
            hex = 2;
            sign = 0;
            zero = '0';
            width = 2 * sizeof(void *);
            break;

        case 'c':
            *buf++ = (u_char) (va_arg(args, int) & 0xff);
            fmt++;
            continue;

        case 'Z':
            *buf++ = '\0';
            fmt++;
            continue;

        case 'N':
            *buf++ = LF;
            fmt++;
            continue;

        case '%':
            *buf++ = '%';
            fmt++;
            continue;

        default:
            /* not used by the module: print it as it stands */
            *buf++ = (u_char) *fmt++;
            continue;
        }

        if (sign) {
            if (i64 < 0) {
                *buf++ = '-';
                ui64 = (uint64_t) 0 - (uint64_t) i64;

            } else {
                ui64 = (uint64_t) i64;
            }
        }

        buf = ngx_shim_num(buf, last, ui64, zero, hex, width);

        fmt++;
    }

    return buf;
}


u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, (void *) -1, fmt, args);
    va_end(args);

    return p;
}


u_char * ngx_cdecl
ngx_snprintf(u_char *buf, size_t max, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + max, fmt, args);
    va_end(args);

    return p;
}


u_char * ngx_cdecl
ngx_slprintf(u_char *buf, u_char *last, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, last, fmt, args);
    va_end(args);

    return p;
}


u_char *
ngx_hex_dump(u_char *dst, u_char *src, size_t len)
{
    static const u_char  hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }

    return dst;
}


void
ngx_explicit_memzero(void *buf, size_t n)
{
    volatile u_char  *p = buf;

    while (n--) {
        *p++ = 0;
    }
}


void ngx_cdecl
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}
