/*
 * jukictl: A3 records (docs/audit.md, "Records"): the strict decoder,
 * the mac, and the read cut of every juki:{*}:audit list.
 */

#include <stdlib.h>
#include <string.h>

#include "jk.h"


#define JK_LRANGE_CHUNK  1000


/* unsigned LEB128, minimal, at most 10 bytes */

static int
jk_varint(const unsigned char **pp, const unsigned char *end, uint64_t *v)
{
    int                   i;
    unsigned              shift = 0;
    uint64_t              x = 0;
    const unsigned char  *p = *pp;

    for (i = 0; i < 10; i++) {
        if (p == end) {
            return -1;
        }

        if (shift == 63 && (*p & 0x7e)) {
            return -1;                          /* over 64 bits */
        }

        x |= (uint64_t) (*p & 0x7f) << shift;

        if (!(*p & 0x80)) {
            if (*p == 0 && i > 0) {
                return -1;                      /* not minimal */
            }
            *pp = p + 1;
            *v = x;
            return 0;
        }

        shift += 7;
        p++;
    }

    return -1;
}


static int
jk_a3_str(const unsigned char **pp, const unsigned char *end, jk_str_t *s)
{
    uint64_t  n;

    if (jk_varint(pp, end, &n) != 0 || n > (uint64_t) (end - *pp)) {
        return -1;
    }

    s->p = (const char *) *pp;
    s->len = (size_t) n;
    *pp += n;

    return 0;
}


static int
jk_a3_u48(const unsigned char **pp, const unsigned char *end, uint64_t *v)
{
    int       i;
    uint64_t  x = 0;

    if (end - *pp < 6) {
        return -1;
    }

    for (i = 0; i < 6; i++) {
        x = (x << 8) | (*pp)[i];
    }

    *pp += 6;
    *v = x;

    return 0;
}


static int
jk_a3_raw(const unsigned char **pp, const unsigned char *end,
    unsigned char *out, size_t n)
{
    if ((size_t) (end - *pp) < n) {
        return -1;
    }

    memcpy(out, *pp, n);
    *pp += n;

    return 0;
}


int
jk_a3_code_ok(unsigned v)
{
    return (v >= 1 && v <= 3) || (v >= 16 && v <= 22);
}


const char *
jk_a3_code_name(unsigned v)
{
    static const char  *redis[] = { "allow", "deny:stopped",
                                    "deny:rate_limited" };
    static const char  *gw[] = { "deny:unverified_certificate",
        "deny:unknown_agency", "deny:bad_request", "deny:bad_purpose",
        "deny:bad_operator", "deny:purpose_not_permitted",
        "deny:resident_code_forbidden" };

    if (v >= 1 && v <= 3) {
        return redis[v - 1];
    }

    if (v >= 16 && v <= 22) {
        return gw[v - 16];
    }

    return "?";
}


#define JK_NEED(e)  if ((e) != 0) return "truncated or malformed field"

/*
 * Decodes one element exactly; NULL, or what is wrong with it.  The
 * record points into p, which must outlive it.
 */

const char *
jk_a3_decode(const unsigned char *p, size_t len, jk_a3_t *r)
{
    uint64_t              v;
    const unsigned char  *q, *end, *mac_end;

    memset(r, 0, sizeof(*r));
    r->p = p;
    r->len = len;

    if (len == 0) {
        return "empty element";
    }

    r->type = p[0];
    q = p + 1;

    /* the mac16 ends the element, but for A's appended decision byte */
    if (r->type == 'A') {
        if (len < 1 + 16 + 1) {
            return "truncated";
        }
        end = p + len - 17;
        mac_end = p + len - 1;

    } else if (r->type == 'W' || r->type == 'C' || r->type == 'S'
               || r->type == 'K')
    {
        if (len < 1 + 16) {
            return "truncated";
        }
        end = p + len - 16;
        mac_end = p + len;

    } else {
        return "unknown record type";
    }

    JK_NEED(jk_a3_raw(&q, end, r->writer, 8));

    if (r->type == 'W') {
        r->seq = 0;
        JK_NEED(jk_a3_u48(&q, end, &r->ts));
        JK_NEED(jk_a3_raw(&q, end, r->kid, 8));
        JK_NEED(jk_a3_str(&q, end, &r->node));
        if (q == end) {
            return "truncated";
        }
        r->role = *q++;
        if (r->role != 1 && r->role != 2) {
            return "bad role";
        }

    } else {
        JK_NEED(jk_varint(&q, end, &r->seq));
        if (r->seq == 0) {
            return "seq 0 in a record other than W";
        }
        JK_NEED(jk_a3_u48(&q, end, &r->ts));
    }

    switch (r->type) {

    case 'A':
        if (q == end) {
            return "truncated";
        }
        r->kind = *q++;
        if (r->kind > 5) {
            return "bad kind";
        }
        JK_NEED(jk_a3_str(&q, end, &r->cert));
        JK_NEED(jk_a3_str(&q, end, &r->subject));
        if ((r->cert.len != 0 && r->cert.len != 16)
            || (r->subject.len != 0 && r->subject.len != 16))
        {
            return "bad cert or subject length";
        }
        JK_NEED(jk_a3_str(&q, end, &r->op));
        JK_NEED(jk_a3_str(&q, end, &r->purpose));
        JK_NEED(jk_a3_str(&q, end, &r->method));
        JK_NEED(jk_a3_str(&q, end, &r->uri));
        if (q == end) {
            return "truncated";
        }
        r->gdecision = *q++;
        r->decision = p[len - 1];
        if (r->gdecision != 0 && !(r->gdecision >= 16 && r->gdecision <= 22))
        {
            return "bad gdecision";
        }
        if (!jk_a3_code_ok(r->decision)) {
            return "bad decision";
        }
        break;

    case 'C':
        JK_NEED(jk_a3_raw(&q, end, r->awriter, 8));
        JK_NEED(jk_varint(&q, end, &r->aseq));
        if (q == end) {
            return "truncated";
        }
        r->decision = *q++;
        if (!jk_a3_code_ok(r->decision)) {
            return "bad decision";
        }
        JK_NEED(jk_varint(&q, end, &r->status));
        JK_NEED(jk_varint(&q, end, &r->bytes));
        JK_NEED(jk_varint(&q, end, &r->upstream));
        break;

    case 'S':
        if (q == end) {
            return "truncated";
        }
        r->cause = *q++;
        if (r->cause < 16 || r->cause > 18) {
            return "bad summary cause";
        }
        JK_NEED(jk_varint(&q, end, &r->second));
        JK_NEED(jk_varint(&q, end, &r->recorded));
        JK_NEED(jk_varint(&q, end, &r->suppressed));
        break;

    case 'K':
        if (end - q < 2) {
            return "truncated";
        }
        r->action = *q++;
        r->scope = *q++;
        if (r->action != 1 && r->action != 2) {
            return "bad action";
        }
        if (r->scope < 1 || r->scope > 3) {
            return "bad scope";
        }
        JK_NEED(jk_a3_str(&q, end, &r->op));
        JK_NEED(jk_a3_str(&q, end, &r->reason));
        JK_NEED(jk_a3_str(&q, end, &r->actor));
        break;

    default:
        break;
    }

    if (q != end) {
        return "trailing bytes";
    }

    r->body_len = (size_t) (end - p);
    r->mac = end;
    (void) mac_end;
    (void) v;

    return NULL;
}


int
jk_a3_put_varint(jk_buf_t *b, uint64_t v)
{
    unsigned char  c[10];
    size_t         n = 0;

    do {
        c[n] = v & 0x7f;
        v >>= 7;
        if (v) {
            c[n] |= 0x80;
        }
        n++;
    } while (v);

    return jk_buf_append(b, c, n);
}


int
jk_a3_put_str(jk_buf_t *b, const void *p, size_t n)
{
    if (jk_a3_put_varint(b, n) != 0) {
        return -1;
    }

    return jk_buf_append(b, p, n);
}


int
jk_a3_put_u48(jk_buf_t *b, uint64_t v)
{
    int            i;
    unsigned char  c[6];

    for (i = 5; i >= 0; i--) {
        c[i] = v & 0xff;
        v >>= 8;
    }

    return jk_buf_append(b, c, 6);
}


/*
 * mac16 = first 16 bytes of
 * HMAC-SHA256(k_mac, "juki-v3" || str(agency) || prev16 || body)
 */

int
jk_a3_mac(const jk_key_t *k, const char *agency, size_t alen,
    const unsigned char prev16[16], const unsigned char *body, size_t blen,
    jk_buf_t *scratch, unsigned char out[16])
{
    unsigned char  mac[32];

    scratch->len = 0;

    if (jk_buf_append(scratch, "juki-v3", 7) != 0
        || jk_a3_put_str(scratch, agency, alen) != 0
        || jk_buf_append(scratch, prev16, 16) != 0
        || jk_buf_append(scratch, body, blen) != 0
        || jk_hmac(k->k_mac, 32, scratch->data, scratch->len, mac) != 0)
    {
        return -1;
    }

    memcpy(out, mac, 16);

    return 0;
}


/*
 * What a record must satisfy by its type and its list (none: the list is
 * juki:{_}:audit): 0, or -1 with the problem in msg.
 */

int
jk_a3_place(const jk_a3_t *r, int none, char *msg, size_t size)
{
    switch (r->type) {

    case 'W':
        if (!none) {
            snprintf(msg, size, "W record outside juki:{_}:audit");
            return -1;
        }
        break;

    case 'A':
        if (r->gdecision) {
            if (r->decision != r->gdecision) {
                snprintf(msg, size, "decision flip: decision %s, the"
                         " gateway decided %s",
                         jk_a3_code_name(r->decision),
                         jk_a3_code_name(r->gdecision));
                return -1;
            }

        } else if (r->decision < 1 || r->decision > 3) {
            snprintf(msg, size, "decision flip: decision %s on a record"
                     " Redis decides", jk_a3_code_name(r->decision));
            return -1;

        } else if (none) {
            snprintf(msg, size, "a record Redis decided in"
                     " juki:{_}:audit");
            return -1;
        }
        break;

    case 'S':
        if (!none) {
            snprintf(msg, size, "S record outside juki:{_}:audit");
            return -1;
        }

        if (r->suppressed < 1) {
            /* a summary is written only for refusals it did not record */
            snprintf(msg, size, "S record with suppressed 0");
            return -1;
        }
        break;

    case 'K':
        if ((r->scope == 1) != none) {
            snprintf(msg, size, "K record of scope %d in the wrong list",
                     r->scope);
            return -1;
        }
        break;

    default:
        break;
    }

    return 0;
}


/* the read cut */

static int
jk_a3_list_add(void *arg, const char *key, size_t len)
{
    jk_a3_set_t  *s = arg;
    jk_a3_list_t *l;
    const char   *b, *e;

    /* juki:{A}:audit, A without braces */
    if (len < 14 || memcmp(key, "juki:{", 6) != 0
        || memcmp(key + len - 7, "}:audit", 7) != 0)
    {
        return 0;
    }

    b = key + 6;
    e = key + len - 7;

    if (e == b || memchr(b, '{', (size_t) (e - b))
        || memchr(b, '}', (size_t) (e - b)) || e - b > JK_AGENCY_MAX)
    {
        return 0;
    }

    if (s->n == s->cap) {
        size_t         cap = s->cap ? 2 * s->cap : 16;
        jk_a3_list_t  *nl = realloc(s->list, cap * sizeof(*nl));

        if (nl == NULL) {
            jk_err("out of memory");
            return -1;
        }

        s->list = nl;
        s->cap = cap;
    }

    l = &s->list[s->n];
    memset(l, 0, sizeof(*l));

    l->name = malloc(len + 1);
    if (l->name == NULL) {
        jk_err("out of memory");
        return -1;
    }

    memcpy(l->name, key, len);
    l->name[len] = '\0';
    l->agency = l->name + 6;
    l->alen = (size_t) (e - b);
    s->n++;

    return 0;
}


static int
jk_a3_list_cmp(const void *a, const void *b)
{
    return strcmp(((const jk_a3_list_t *) a)->name,
                  ((const jk_a3_list_t *) b)->name);
}


static int
jk_a3_int(const redisReply *r, uint64_t *v)
{
    if (r->type == REDIS_REPLY_NIL) {
        *v = 0;
        return 0;
    }

    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer < 0) {
            return -1;
        }
        *v = (uint64_t) r->integer;
        return 0;
    }

    if (r->type == REDIS_REPLY_STRING) {
        return jk_parse_u64(r->str, r->len, v);
    }

    return -1;
}


int
jk_a3_read(redisContext *c, jk_a3_set_t *s)
{
    return jk_a3_read_from(c, s, NULL, NULL);
}


/*
 * The cut, reading each list from element skip(arg, list) on (0 when
 * skip is NULL; clamped to the list's length): the elements before it
 * are left NULL in l->el, l->skip says how many.
 */

int
jk_a3_read_from(redisContext *c, jk_a3_set_t *s,
    uint64_t (*skip)(void *arg, const jk_a3_list_t *l), void *arg)
{
    size_t        i, j, n;
    uint64_t      sec, usec, start, stop;
    char          tkey[JK_AGENCY_MAX + 32], a[24], b[24];
    const char   *argv[4];
    redisReply   *r, *x;
    jk_a3_list_t *l;

    memset(s, 0, sizeof(*s));

    if (jk_scan(c, "juki:{*}:audit", "list", jk_a3_list_add, s) != 0) {
        return -1;
    }

    if (s->n) {
        qsort(s->list, s->n, sizeof(s->list[0]), jk_a3_list_cmp);
    }

    /*
     * MULTI; TIME; GET juki:{_}:trimmed (read even when that list is
     * gone: it says whether W records were archived); GET trimmed and
     * LLEN of each list; EXEC
     */

    r = jk_cmdf(c, "MULTI");
    if (r == NULL) {
        return -1;
    }
    freeReplyObject(r);

    n = 2;
    if (redisAppendCommand(c, "TIME") != REDIS_OK
        || redisAppendCommand(c, "GET juki:{_}:trimmed") != REDIS_OK)
    {
        goto fail;
    }

    for (i = 0; i < s->n; i++) {
        l = &s->list[i];
        snprintf(tkey, sizeof(tkey), "juki:{%.*s}:trimmed", (int) l->alen,
                 l->agency);
        if (redisAppendCommand(c, "GET %s", tkey) != REDIS_OK
            || redisAppendCommand(c, "LLEN %s", l->name) != REDIS_OK)
        {
            goto fail;
        }
        n += 2;
    }

    for (i = 0; i < n; i++) {
        if (redisGetReply(c, (void **) &r) != REDIS_OK) {
            goto fail;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            jk_err("Redis: %s", jk_safe(r->str, r->len > 200 ? 200 : r->len));
            freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
    }

    r = jk_cmdf(c, "EXEC");
    if (r == NULL) {
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        jk_err("Redis: the read cut was not executed");
        freeReplyObject(r);
        return -1;
    }

    x = r->element[0];
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 2
        || x->element[0]->type != REDIS_REPLY_STRING
        || x->element[1]->type != REDIS_REPLY_STRING
        || jk_parse_u64(x->element[0]->str, x->element[0]->len, &sec) != 0
        || jk_parse_u64(x->element[1]->str, x->element[1]->len, &usec) != 0)
    {
        jk_err("Redis: unexpected reply to TIME");
        freeReplyObject(r);
        return -1;
    }

    s->now_ms = sec * 1000 + usec / 1000;

    if (jk_a3_int(r->element[1], &s->none_trimmed) != 0) {
        jk_err("Redis: a bad trimmed counter for juki:{_}:audit");
        freeReplyObject(r);
        return -1;
    }

    for (i = 0; i < s->n; i++) {
        if (jk_a3_int(r->element[2 + 2 * i], &s->list[i].trimmed) != 0
            || jk_a3_int(r->element[3 + 2 * i], &s->list[i].llen) != 0)
        {
            jk_err("Redis: a bad trimmed counter or LLEN for %s",
                   jk_safe(s->list[i].name, strlen(s->list[i].name)));
            freeReplyObject(r);
            return -1;
        }
    }

    freeReplyObject(r);

    /* LRANGE in chunks, up to the lengths of the cut */

    for (i = 0; i < s->n; i++) {
        l = &s->list[i];

        l->skip = skip ? skip(arg, l) : 0;
        if (l->skip > l->llen) {
            l->skip = l->llen;
        }

        if (l->llen == 0) {
            continue;
        }

        l->el = calloc(l->llen, sizeof(l->el[0]));
        l->nreply = (l->llen - l->skip + JK_LRANGE_CHUNK - 1)
                    / JK_LRANGE_CHUNK;
        l->reply = calloc(l->nreply ? l->nreply : 1, sizeof(l->reply[0]));

        if (l->el == NULL || l->reply == NULL) {
            jk_err("out of memory");
            return -1;
        }

        for (j = 0; j < l->nreply; j++) {
            start = l->skip + j * JK_LRANGE_CHUNK;
            stop = start + JK_LRANGE_CHUNK - 1;
            if (stop >= l->llen) {
                stop = l->llen - 1;
            }

            snprintf(a, sizeof(a), "%llu", (unsigned long long) start);
            snprintf(b, sizeof(b), "%llu", (unsigned long long) stop);
            argv[0] = "LRANGE";
            argv[1] = l->name;
            argv[2] = a;
            argv[3] = b;

            x = jk_cmd(c, 4, argv, NULL);
            if (x == NULL) {
                return -1;
            }
            l->reply[j] = x;

            if (x->type != REDIS_REPLY_ARRAY
                || x->elements != stop - start + 1)
            {
                /* the archiver trimmed the head during the read */
                jk_err("Redis: %s changed during the read (trimmed?);"
                       " run again",
                       jk_safe(l->name, strlen(l->name)));
                return -1;
            }

            for (n = 0; n < x->elements; n++) {
                if (x->element[n]->type != REDIS_REPLY_STRING) {
                    jk_err("Redis: a list element that is not a string");
                    return -1;
                }
                l->el[start + n] = x->element[n];
            }
        }
    }

    /* the archiver trimmed a head meanwhile: the reads may be shifted */

    for (i = 0; i < s->n; i++) {
        uint64_t  t;

        l = &s->list[i];
        snprintf(tkey, sizeof(tkey), "juki:{%.*s}:trimmed", (int) l->alen,
                 l->agency);

        x = jk_cmdf(c, "GET %s", tkey);
        if (x == NULL) {
            return -1;
        }

        if (jk_a3_int(x, &t) != 0 || t != l->trimmed) {
            freeReplyObject(x);
            jk_err("Redis: %s was trimmed during the read; run again",
                   jk_safe(l->name, strlen(l->name)));
            return -1;
        }

        freeReplyObject(x);
    }

    return 0;

fail:

    jk_err("Redis: %s", c->err ? jk_safe(c->errstr, strlen(c->errstr))
                               : "no reply");
    return -1;
}


void
jk_a3_set_free(jk_a3_set_t *s)
{
    size_t  i, j;

    for (i = 0; i < s->n; i++) {
        for (j = 0; j < s->list[i].nreply; j++) {
            freeReplyObject(s->list[i].reply[j]);
        }
        free(s->list[i].reply);
        free(s->list[i].el);
        free(s->list[i].name);
    }

    free(s->list);
    memset(s, 0, sizeof(*s));
}


/*
 * The order records are checked in: by writer, then seq; records that
 * claim the same place (a break) by list and place in it, so that the
 * same one is named first on every run
 */

int
jk_a3_chain_cmp(const jk_a3_t *x, size_t xlist, uint64_t xpos,
    const jk_a3_t *y, size_t ylist, uint64_t ypos)
{
    int  c;

    c = memcmp(x->writer, y->writer, 8);
    if (c) {
        return c;
    }

    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }

    if (xlist != ylist) {
        return xlist < ylist ? -1 : 1;
    }

    return xpos < ypos ? -1 : xpos > ypos;
}
