/*
 * jukictl archive: moves verified records from Redis into PostgreSQL
 * (docs/audit.md, "Archive"; docs/jukictl.md, "archive").
 *
 * One batch: BEGIN; the cursors (list -> next logical index); the read
 * cut of every list from its cursor on; the new elements decoded and
 * checked, every writer's chain continued from its head in the archive
 * (seq, mac16; its key by the kid stored with the head); a break cuts
 * its list there and every writer whose chain passes through the cut is
 * cut too (to a fixpoint), so nothing past a break is archived; COPY of
 * the rest; heads, cursors, counts advanced; a checkpoint signed over the
 * new state and stored; COMMIT.  Only then the checkpoint file is
 * written and Redis trimmed (MULTI; LTRIM; INCRBY trimmed; EXEC), never
 * past the cursor: killed anywhere, a restart neither loses nor
 * duplicates a record.  One archiver at a time (a session advisory lock).
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jk.h"


#define JK_KEEP_DEFAULT      86400000       /* 24h */
#define JK_CKPT_EVERY        60000          /* ms, --follow */
#define JK_ARCH_SHOWN        20
#define JK_CKPT_FILE         "juki-archive.checkpoint"


typedef struct jk_arec_s  jk_arec_t;

struct jk_arec_s {
    jk_a3_t          r;
    size_t           list;
    uint64_t         idx;
    uint64_t         pos;
    jk_arec_t       *conf;          /* A: its C in this batch */
    unsigned         bad:1;
    unsigned         pending:1;     /* C: its A archived, in juki_pending */
};

typedef struct {
    unsigned char    writer[8];
    int              found;         /* a head in the archive */
    int              advanced;
    unsigned char    kid[8];
    uint64_t         seq;
    unsigned char    mac[16];
    unsigned char    hash[32];
} jk_whead_t;

typedef struct {
    int              skipped;       /* not archived in this batch */
    int              in_pg;
    uint64_t         next;          /* cursor in the archive */
    unsigned char    hash[32];
    uint64_t         cut;           /* first pos not archived */
    uint64_t         newnext;
    unsigned char    newhash[32];
    size_t           base;          /* its first record in recs */
} jk_alist_t;

typedef struct {
    uint64_t         next;
    unsigned char    hash[32];
} jk_cursor_t;

typedef struct {
    const jk_opts_t *o;
    PGconn          *pg;
    redisContext    *c;
    jk_keyring_t     kr;
    EVP_PKEY        *sk;
    const char      *origin;
    const char      *file;
    uint64_t         keep;
    uint64_t         skew;
    uint64_t         breaks;
    uint64_t         last_ckpt;
    uint64_t         total;
    jk_a3_set_t      set;
    jk_alist_t      *al;
    jk_arec_t       *recs;
    size_t           nrec;
    jk_arec_t      **sorted;
    size_t           nsorted;
    jk_ht_t          cursors;
    jk_ht_t          heads;
    jk_ht_t          as;
    jk_buf_t         scratch;
    jk_buf_t         buf;
    jk_buf_t         note;
} jk_arch_t;


static volatile sig_atomic_t  jk_arch_stop;


static void
jk_arch_signal(int sig)
{
    JK_UNUSED(sig);
    jk_arch_stop = 1;
}


static int
jk_list_name_ok(const jk_a3_list_t *l)
{
    size_t  i;

    if (l->alen == 1 && l->agency[0] == '_') {
        return 1;
    }

    for (i = 0; i < l->alen; i++) {
        unsigned char  c = (unsigned char) l->agency[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || (i > 0 && (c == '.' || c == '_' || c == '-'))))
        {
            return 0;
        }
    }

    return l->alen > 0;
}


static void
jk_abreak(jk_arch_t *a, jk_arec_t *x, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
jk_abreak(jk_arch_t *a, jk_arec_t *x, const char *fmt, ...)
{
    char                 w[17], what[256];
    va_list              ap;
    const jk_a3_list_t  *l = &a->set.list[x->list];

    x->bad = 1;

    if (++a->breaks > JK_ARCH_SHOWN) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);

    if (x->r.type == 0) {
        fprintf(stderr, "jukictl: archive: %s element %llu: %s\n",
                jk_safe(l->name, strlen(l->name)),
                (unsigned long long) x->idx, what);
        return;
    }

    jk_hex(x->r.writer, 8, w);
    fprintf(stderr, "jukictl: archive: %s element %llu writer %s seq %llu:"
            " %s\n", jk_safe(l->name, strlen(l->name)),
            (unsigned long long) x->idx, w, (unsigned long long) x->r.seq,
            what);
}


static void
jk_list_err(jk_arch_t *a, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
jk_list_err(jk_arch_t *a, size_t i, const char *fmt, ...)
{
    char                 what[256];
    va_list              ap;
    const jk_a3_list_t  *l = &a->set.list[i];

    a->al[i].skipped = 1;

    if (++a->breaks > JK_ARCH_SHOWN) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);

    fprintf(stderr, "jukictl: archive: %s: %s\n",
            jk_safe(l->name, strlen(l->name)), what);
}


/* prepared statements, once per connection */

static int
jk_arch_prepare(PGconn *pg)
{
    size_t     i;
    PGresult  *res;
    static const char  *st[][2] = {
        { "jk_head_get",
          "SELECT kid, seq, mac16, hash FROM juki_heads WHERE writer = $1" },
        { "jk_head_put",
          "INSERT INTO juki_heads (writer, kid, seq, mac16, hash)"
          " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (writer) DO UPDATE"
          " SET seq = EXCLUDED.seq, mac16 = EXCLUDED.mac16,"
          " hash = EXCLUDED.hash" },
        { "jk_cur_put",
          "INSERT INTO juki_cursor (list, next_idx, hash)"
          " VALUES ($1, $2, $3) ON CONFLICT (list) DO UPDATE"
          " SET next_idx = EXCLUDED.next_idx, hash = EXCLUDED.hash" },
        { "jk_cnt_put",
          "INSERT INTO juki_counts (year, agency, purpose, decision, n)"
          " VALUES ($1, $2, $3, $4, $5)"
          " ON CONFLICT (year, agency, purpose, decision) DO UPDATE"
          " SET n = juki_counts.n + EXCLUDED.n" },
        { "jk_ckpt_put",
          "INSERT INTO juki_checkpoints (made, note)"
          " VALUES (to_timestamp($1::bigint / 1000.0), $2)" },
        { "jk_pend_get",
          "SELECT list, decision FROM juki_pending"
          " WHERE writer = $1 AND seq = $2" },
        { "jk_pend_put",
          "INSERT INTO juki_pending (writer, seq, list, idx, decision)"
          " VALUES ($1, $2, $3, $4, $5)" },
        { "jk_pend_del",
          "DELETE FROM juki_pending WHERE writer = $1 AND seq = $2" },
        { "jk_keep_min",
          "SELECT min(idx) FROM juki_records WHERE list = $1"
          " AND idx >= $2 AND idx < $3"
          " AND ts > to_timestamp($4::bigint / 1000.0)" },
    };

    for (i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        res = PQprepare(pg, st[i][0], st[i][1], 0, NULL);
        if (jk_pg_ok(res, st[i][0]) != 0) {
            PQclear(res);
            return -1;
        }
        PQclear(res);
    }

    return 0;
}


static void
jk_free_ptr(void *p)
{
    free(p);
}


static int
jk_cursors_load(jk_arch_t *a)
{
    int           i, n;
    PGresult     *res;
    jk_hent_t    *e;
    jk_cursor_t  *cu;
    uint64_t      v;
    const char   *s;

    res = PQexec(a->pg, "SELECT list, next_idx, hash FROM juki_cursor");
    if (jk_pg_ok(res, "reading the cursors") != 0) {
        PQclear(res);
        return -1;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        s = PQgetvalue(res, i, 1);
        cu = malloc(sizeof(*cu));
        if (cu == NULL) {
            jk_err("out of memory");
            PQclear(res);
            return -1;
        }

        if (jk_parse_u64(s, strlen(s), &v) != 0
            || jk_pg_bytea(PQgetvalue(res, i, 2), PQgetlength(res, i, 2),
                           cu->hash, 32) != 32)
        {
            jk_err("PostgreSQL: a malformed cursor row");
            free(cu);
            PQclear(res);
            return -1;
        }
        cu->next = v;

        s = PQgetvalue(res, i, 0);
        e = jk_ht_get(&a->cursors, s, strlen(s));
        if (e == NULL) {
            free(cu);
            PQclear(res);
            return -1;
        }
        free(e->ptr);
        e->ptr = cu;
    }

    PQclear(res);

    return 0;
}


static const jk_cursor_t *
jk_cursor_of(jk_arch_t *a, const jk_a3_list_t *l)
{
    jk_hent_t  *e;

    e = jk_ht_find(&a->cursors, l->agency, l->alen);

    return e ? e->ptr : NULL;
}


static uint64_t
jk_arch_skip(void *arg, const jk_a3_list_t *l)
{
    const jk_cursor_t  *cu = jk_cursor_of(arg, l);

    if (cu == NULL || cu->next <= l->trimmed) {
        return 0;
    }

    return cu->next - l->trimmed;
}


static int
jk_rec_cmp(const void *p, const void *q)
{
    const jk_arec_t  *x = *(jk_arec_t * const *) p;
    const jk_arec_t  *y = *(jk_arec_t * const *) q;

    return jk_a3_chain_cmp(&x->r, x->list, x->pos, &y->r, y->list, y->pos);
}


/* the writer's head in the archive, looked up once per batch */

static jk_whead_t *
jk_head_of(jk_arch_t *a, const unsigned char writer[8])
{
    const char   *v[1];
    int           len[1], fmt[1];
    uint64_t      seq;
    PGresult     *res;
    jk_hent_t    *e;
    jk_whead_t   *h;
    const char   *s;

    e = jk_ht_get(&a->heads, (const char *) writer, 8);
    if (e == NULL) {
        return NULL;
    }

    if (e->ptr) {
        return e->ptr;
    }

    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        jk_err("out of memory");
        return NULL;
    }
    memcpy(h->writer, writer, 8);

    v[0] = (const char *) writer;
    len[0] = 8;
    fmt[0] = 1;

    res = PQexecPrepared(a->pg, "jk_head_get", 1, v, len, fmt, 0);
    if (jk_pg_ok(res, "reading a writer's head") != 0) {
        PQclear(res);
        free(h);
        return NULL;
    }

    if (PQntuples(res) == 1) {
        s = PQgetvalue(res, 0, 1);
        if (jk_pg_bytea(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0),
                        h->kid, 8) != 8
            || jk_parse_u64(s, strlen(s), &seq) != 0
            || jk_pg_bytea(PQgetvalue(res, 0, 2), PQgetlength(res, 0, 2),
                           h->mac, 16) != 16
            || jk_pg_bytea(PQgetvalue(res, 0, 3), PQgetlength(res, 0, 3),
                           h->hash, 32) != 32)
        {
            jk_err("PostgreSQL: a malformed juki_heads row");
            PQclear(res);
            free(h);
            return NULL;
        }
        h->seq = seq;
        h->found = 1;
    }

    PQclear(res);
    e->ptr = h;

    return h;
}


static const jk_key_t *
jk_key_of(jk_arch_t *a, const unsigned char kid[8])
{
    char      hex[17];
    jk_str_t  s;

    jk_hex(kid, 8, hex);
    s.p = hex;
    s.len = 16;

    return jk_keys_find(&a->kr, &s);
}


/*
 * One writer's new records, sorted by seq: continues the head in the
 * archive; the first break marks its record bad and ends the walk (the
 * fixpoint leaves the rest out).
 */

static int
jk_arch_chain(jk_arch_t *a, jk_arec_t **g, size_t n, uint64_t *last)
{
    char                 hex[17];
    size_t               i, j;
    uint64_t             want;
    jk_arec_t           *x;
    jk_whead_t          *h;
    unsigned char        prev[16], mac[16];
    const jk_key_t      *k;
    const jk_a3_list_t  *l;

    h = jk_head_of(a, g[0]->r.writer);
    if (h == NULL) {
        return -1;
    }

    for (j = 0; j < a->set.n; j++) {
        last[j] = UINT64_MAX;
    }

    x = g[0];

    if (x->r.seq == 0) {
        if (h->found) {
            jk_abreak(a, x, "a W record for a writer archived up to seq"
                      " %llu", (unsigned long long) h->seq);
            return 0;
        }
        memcpy(h->kid, x->r.kid, 8);
        memset(prev, 0, 16);
        want = 0;

    } else {
        if (!h->found) {
            jk_abreak(a, x, "no W record, in Redis or the archive: seq"
                      " 0..%llu missing (trimmed before archiving?)",
                      (unsigned long long) x->r.seq - 1);
            return 0;
        }
        memcpy(prev, h->mac, 16);
        want = h->seq + 1;
    }

    k = jk_key_of(a, h->kid);
    if (k == NULL) {
        jk_hex(h->kid, 8, hex);
        jk_abreak(a, x, "unknown kid %s", hex);
        return 0;
    }

    for (i = 0; i < n; i++) {
        x = g[i];
        l = &a->set.list[x->list];

        if (x->r.seq != want) {
            if (x->r.seq < want) {
                jk_abreak(a, x, "seq %llu repeated (already archived or"
                          " twice)", (unsigned long long) x->r.seq);
            } else {
                jk_abreak(a, x, "seq gap: %llu..%llu missing (deleted?)",
                          (unsigned long long) want,
                          (unsigned long long) x->r.seq - 1);
            }
            return 0;
        }

        if (x->r.type == 'W' && x->r.seq != 0) {
            jk_abreak(a, x, "a second W record");
            return 0;
        }

        if (jk_a3_mac(k, l->agency, l->alen, prev, x->r.p, x->r.body_len,
                      &a->scratch, mac) != 0)
        {
            return -1;
        }

        if (memcmp(mac, x->r.mac, 16) != 0) {
            jk_abreak(a, x, "bad mac (edited, forged, moved or"
                      " reordered)");
            return 0;
        }

        if (last[x->list] != UINT64_MAX && x->pos < last[x->list]) {
            jk_abreak(a, x, "out of order in its list: swapped?");
            return 0;
        }
        last[x->list] = x->pos;

        if (x->r.ts > a->set.now_ms + a->skew) {
            jk_abreak(a, x, "ts %llu ms ahead of Redis TIME",
                      (unsigned long long) (x->r.ts - a->set.now_ms));
            return 0;
        }

        memcpy(prev, x->r.mac, 16);
        want++;
    }

    return 0;
}


/*
 * The archived audit record a completion names, when it is not in this
 * batch: juki_pending holds every archived A record Redis decided whose
 * completion was not archived with it.  1 found (list and decision
 * set), 0 not, -1 error.
 */

static int
jk_pending_get(jk_arch_t *a, const jk_arec_t *x, char *list, size_t size,
    int *decision)
{
    int         len[2], fmt[2], n;
    char        seq[24];
    PGresult   *res;
    const char *v[2];

    snprintf(seq, sizeof(seq), "%llu", (unsigned long long) x->r.aseq);
    v[0] = (const char *) x->r.awriter; len[0] = 8; fmt[0] = 1;
    v[1] = seq; len[1] = 0; fmt[1] = 0;

    res = PQexecPrepared(a->pg, "jk_pend_get", 2, v, len, fmt, 0);
    if (jk_pg_ok(res, "reading juki_pending") != 0) {
        PQclear(res);
        return -1;
    }

    n = PQntuples(res);
    if (n == 1) {
        snprintf(list, size, "%s", PQgetvalue(res, 0, 0));
        *decision = atoi(PQgetvalue(res, 0, 1));
    }

    PQclear(res);

    return n == 1;
}


static int
jk_arch_completions(jk_arch_t *a)
{
    int           d, found;
    char          key[16], list[JK_AGENCY_MAX + 1];
    size_t        i;
    jk_hent_t    *e;
    jk_arec_t    *x, *r;
    jk_a3_list_t *l;

    for (i = 0; i < a->nrec; i++) {
        x = &a->recs[i];

        if (x->bad || x->r.type != 'C') {
            continue;
        }

        memcpy(key, x->r.awriter, 8);
        memcpy(key + 8, &x->r.aseq, 8);
        e = jk_ht_find(&a->as, key, 16);
        r = e ? e->ptr : NULL;

        if (r == NULL) {
            /* archived in an earlier batch? */
            found = jk_pending_get(a, x, list, sizeof(list), &d);
            if (found < 0) {
                return -1;
            }

            l = &a->set.list[x->list];

            if (!found || strlen(list) != l->alen
                || memcmp(list, l->agency, l->alen) != 0)
            {
                jk_abreak(a, x, "completion of seq %llu: no such audit"
                          " record before it in this list (or a second"
                          " completion)", (unsigned long long) x->r.aseq);
                continue;
            }

            if (d != x->r.decision) {
                jk_abreak(a, x, "decision flip: the archived audit record"
                          " (seq %llu) says %s, its completion %s",
                          (unsigned long long) x->r.aseq,
                          jk_a3_code_name((unsigned) d),
                          jk_a3_code_name(x->r.decision));
                continue;
            }

            x->pending = 1;

            /* a second completion of it in this batch meets this one */
            e = jk_ht_get(&a->as, key, 16);
            if (e == NULL) {
                return -1;
            }
            e->ptr = x;
            continue;
        }

        if (r->r.type != 'A') {
            jk_abreak(a, x, "second completion of seq %llu",
                      (unsigned long long) x->r.aseq);
            continue;
        }

        if (r->list != x->list || r->pos >= x->pos) {
            jk_abreak(a, x, "completion of seq %llu: no such audit"
                      " record before it in this list",
                      (unsigned long long) x->r.aseq);
            continue;
        }

        if (r->r.gdecision != 0) {
            jk_abreak(a, x, "completion of seq %llu, which the gateway"
                      " decided", (unsigned long long) x->r.aseq);
            continue;
        }

        if (r->conf != NULL) {
            jk_abreak(a, x, "second completion of seq %llu",
                      (unsigned long long) x->r.aseq);
            continue;
        }

        r->conf = x;

        if (r->r.decision != x->r.decision) {
            jk_abreak(a, r, "decision flip: decision %s, its completion"
                      " (seq %llu) says %s", jk_a3_code_name(r->r.decision),
                      (unsigned long long) x->r.seq,
                      jk_a3_code_name(x->r.decision));
        }
    }

    return 0;
}


/* reads and checks the new elements; sets every list's cut */

static int
jk_arch_check(jk_arch_t *a)
{
    int                  changed;
    char                 key[16], msg[160];
    size_t               i, j, k, n, m;
    uint64_t            *last;
    const char          *err;
    jk_hent_t           *e;
    jk_arec_t           *x;
    jk_alist_t          *al;
    redisReply          *el;
    jk_a3_list_t        *l;
    const jk_cursor_t   *cu;

    a->al = calloc(a->set.n ? a->set.n : 1, sizeof(a->al[0]));
    last = calloc(a->set.n ? a->set.n : 1, sizeof(last[0]));
    if (a->al == NULL || last == NULL) {
        jk_err("out of memory");
        free(last);
        return -1;
    }

    n = 0;

    for (i = 0; i < a->set.n; i++) {
        l = &a->set.list[i];
        al = &a->al[i];
        cu = jk_cursor_of(a, l);

        if (cu) {
            al->in_pg = 1;
            al->next = cu->next;
            memcpy(al->hash, cu->hash, 32);
        }

        al->cut = l->llen;

        if (!jk_list_name_ok(l)) {
            jk_list_err(a, i, "not an agency's list: left alone");
            continue;
        }

        if (al->next < l->trimmed) {
            jk_list_err(a, i, "elements %llu..%llu were trimmed but never"
                        " archived", (unsigned long long) al->next,
                        (unsigned long long) l->trimmed - 1);
            continue;
        }

        if (al->next > l->trimmed + l->llen) {
            jk_list_err(a, i, "the archive holds %llu elements, Redis only"
                        " %llu (an older Redis put back?)",
                        (unsigned long long) al->next,
                        (unsigned long long) (l->trimmed + l->llen));
            continue;
        }

        n += l->llen - l->skip;
    }

    a->recs = calloc(n ? n : 1, sizeof(a->recs[0]));
    a->sorted = calloc(n ? n : 1, sizeof(a->sorted[0]));
    if (a->recs == NULL || a->sorted == NULL) {
        jk_err("out of memory");
        free(last);
        return -1;
    }

    /* decode; the per-record checks */

    k = 0;

    for (i = 0; i < a->set.n; i++) {
        l = &a->set.list[i];

        if (a->al[i].skipped) {
            continue;
        }

        a->al[i].base = k;

        for (j = l->skip; j < l->llen; j++) {
            x = &a->recs[k++];
            el = l->el[j];
            x->list = i;
            x->pos = j;
            x->idx = l->trimmed + j;

            err = jk_a3_decode((const unsigned char *) el->str, el->len,
                               &x->r);
            if (err) {
                x->r.type = 0;
                jk_abreak(a, x, "%s", err);
                continue;
            }

            if (jk_a3_place(&x->r, l->alen == 1 && l->agency[0] == '_',
                            msg, sizeof(msg)) != 0)
            {
                jk_abreak(a, x, "%s", msg);
                continue;
            }

            if (x->r.type == 'A') {
                memcpy(key, x->r.writer, 8);
                memcpy(key + 8, &x->r.seq, 8);
                e = jk_ht_get(&a->as, key, 16);
                if (e == NULL) {
                    free(last);
                    return -1;
                }
                if (e->ptr != NULL) {
                    jk_abreak(a, x, "seq %llu repeated",
                              (unsigned long long) x->r.seq);
                    continue;
                }
                e->ptr = x;
            }
        }
    }

    a->nrec = k;

    if (jk_arch_completions(a) != 0) {
        free(last);
        return -1;
    }

    /* chains */

    m = 0;
    for (i = 0; i < a->nrec; i++) {
        if (a->recs[i].r.type) {
            a->sorted[m++] = &a->recs[i];
        }
    }

    if (m) {
        qsort(a->sorted, m, sizeof(a->sorted[0]), jk_rec_cmp);
    }

    for (i = 0; i < m; i = j) {
        for (j = i + 1; j < m && memcmp(a->sorted[j]->r.writer,
                                        a->sorted[i]->r.writer, 8) == 0;
             j++)
        {
            /* void */
        }

        if (jk_arch_chain(a, a->sorted + i, j - i, last) != 0) {
            free(last);
            return -1;
        }
    }

    free(last);

    /* cut every list at its first bad record; then to a fixpoint */

    for (i = 0; i < a->nrec; i++) {
        x = &a->recs[i];
        if (x->bad && x->pos < a->al[x->list].cut) {
            a->al[x->list].cut = x->pos;
        }
    }

    do {
        changed = 0;

        for (i = 0; i < m; i = j) {
            int  out = 0;

            for (j = i; j < m && memcmp(a->sorted[j]->r.writer,
                                        a->sorted[i]->r.writer, 8) == 0;
                 j++)
            {
                x = a->sorted[j];
                al = &a->al[x->list];

                if (x->pos >= al->cut) {
                    out = 1;

                } else if (out) {
                    al->cut = x->pos;
                    changed = 1;
                }
            }
        }

    } while (changed);

    a->nsorted = m;

    return 0;
}


/* the public hashes and the new heads and cursors of what is archived */

static int
jk_arch_hashes(jk_arch_t *a, uint64_t *rows)
{
    size_t               i, j;
    jk_arec_t           *x, *lastx;
    jk_whead_t          *h;
    jk_alist_t          *al;
    jk_a3_list_t        *l;
    unsigned char        cur[32];
    static const unsigned char  zero[32];

    *rows = 0;

    for (i = 0; i < a->nsorted; i = j) {
        h = jk_head_of(a, a->sorted[i]->r.writer);
        if (h == NULL) {
            return -1;
        }

        memcpy(cur, h->found ? h->hash : zero, 32);
        lastx = NULL;

        for (j = i; j < a->nsorted && memcmp(a->sorted[j]->r.writer,
                                             a->sorted[i]->r.writer, 8) == 0;
             j++)
        {
            x = a->sorted[j];
            al = &a->al[x->list];
            l = &a->set.list[x->list];

            if (x->pos >= al->cut) {
                continue;
            }

            if (jk_pub_hash(cur, l->agency, l->alen, x->r.p, x->r.len, cur)
                != 0)
            {
                return -1;
            }
            lastx = x;
        }

        if (lastx) {
            h->seq = lastx->r.seq;
            memcpy(h->mac, lastx->r.mac, 16);
            memcpy(h->hash, cur, 32);
            h->advanced = 1;
        }
    }

    for (i = 0; i < a->set.n; i++) {
        l = &a->set.list[i];
        al = &a->al[i];
        al->newnext = al->next;
        memcpy(al->newhash, al->in_pg ? al->hash : zero, 32);

        if (al->skipped) {
            continue;
        }

        for (j = l->skip; j < al->cut; j++) {
            x = &a->recs[al->base + (j - l->skip)];
            if (jk_list_hash(al->newhash, x->r.p, x->r.len, al->newhash)
                != 0)
            {
                return -1;
            }
            (*rows)++;
        }

        if (al->cut > l->skip) {
            al->newnext = l->trimmed + al->cut;
        }
    }

    return 0;
}


static int
jk_buf_hex(jk_buf_t *b, const unsigned char *p, size_t n)
{
    size_t  i;
    static const char  hx[] = "0123456789abcdef";

    if (jk_buf_reserve(b, 3 + 2 * n) != 0) {
        return -1;
    }

    b->data[b->len++] = '\\';
    b->data[b->len++] = '\\';
    b->data[b->len++] = 'x';

    for (i = 0; i < n; i++) {
        b->data[b->len++] = hx[p[i] >> 4];
        b->data[b->len++] = hx[p[i] & 15];
    }

    return 0;
}


static int
jk_month_of(uint64_t ms, uint64_t *month)
{
    time_t     t = (time_t) (ms / 1000);
    struct tm  tm;

    if (gmtime_r(&t, &tm) == NULL) {
        return -1;
    }

    *month = (uint64_t) (tm.tm_year + 1900) * 12 + (uint64_t) tm.tm_mon;

    return 0;
}


static int
jk_u64_cmp(const void *p, const void *q)
{
    uint64_t  x = *(const uint64_t *) p, y = *(const uint64_t *) q;

    return (x > y) - (x < y);
}


/* monthly partitions for every month a row falls in, and the next */

static int
jk_arch_partitions(jk_arch_t *a)
{
    int        rc = -1;
    size_t     i, j, n = 0;
    uint64_t  *mon, mo, y1, m1, y2, m2;
    char       sql[512];

    mon = malloc((a->nrec + 2) * sizeof(mon[0]));
    if (mon == NULL) {
        jk_err("out of memory");
        return -1;
    }

    if (jk_month_of(a->set.now_ms, &mon[n]) != 0) {
        goto done;
    }
    mon[n + 1] = mon[n] + 1;
    n += 2;

    for (i = 0; i < a->nrec; i++) {
        jk_arec_t  *x = &a->recs[i];

        if (x->pos >= a->al[x->list].cut) {
            continue;
        }
        if (jk_month_of(x->r.ts, &mon[n]) != 0) {
            jk_err("a ts out of range");
            goto done;
        }
        n++;
    }

    qsort(mon, n, sizeof(mon[0]), jk_u64_cmp);

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && mon[j] == mon[i]; j++) {
            /* void */
        }

        mo = mon[i];
        y1 = mo / 12;
        m1 = mo % 12 + 1;
        y2 = (mo + 1) / 12;
        m2 = (mo + 1) % 12 + 1;

        snprintf(sql, sizeof(sql),
                 "CREATE TABLE IF NOT EXISTS juki_records_%04llu%02llu"
                 " PARTITION OF juki_records FOR VALUES"
                 " FROM ('%04llu-%02llu-01 00:00:00+00')"
                 " TO ('%04llu-%02llu-01 00:00:00+00')",
                 (unsigned long long) y1, (unsigned long long) m1,
                 (unsigned long long) y1, (unsigned long long) m1,
                 (unsigned long long) y2, (unsigned long long) m2);

        if (jk_pg_exec(a->pg, sql) != 0) {
            goto done;
        }
    }

    rc = 0;

done:

    free(mon);
    return rc;
}


/* COPY of the rows, text format, every byte string hex-escaped */

static int
jk_arch_copy(jk_arch_t *a)
{
    int          rc;
    char         ts[40];
    size_t       i, j;
    jk_arec_t   *x;
    jk_a3_list_t *l;
    jk_buf_t    *b = &a->buf;
    PGresult    *res;

    res = PQexec(a->pg, "COPY juki_records (list, idx, ts, writer, seq,"
                        " type, pseudonym, purpose, decision, raw)"
                        " FROM STDIN");
    if (jk_pg_ok(res, "COPY") != 0) {
        PQclear(res);
        return -1;
    }
    PQclear(res);

    for (i = 0; i < a->set.n; i++) {
        l = &a->set.list[i];

        if (a->al[i].skipped) {
            continue;
        }

        for (j = l->skip; j < a->al[i].cut; j++) {
            x = &a->recs[a->al[i].base + (j - l->skip)];
            jk_fmt_iso(x->r.ts, ts, sizeof(ts));

            b->len = 0;
            if (jk_buf_append(b, l->agency, l->alen) != 0
                || jk_buf_fmt(b, "\t%llu\t%s\t",
                              (unsigned long long) x->idx, ts) != 0
                || jk_buf_hex(b, x->r.writer, 8) != 0
                || jk_buf_fmt(b, "\t%llu\t%c\t",
                              (unsigned long long) x->r.seq, x->r.type)
                   != 0)
            {
                goto fail;
            }

            if (x->r.type == 'A' && x->r.subject.len == 16) {
                rc = jk_buf_hex(b, (const unsigned char *) x->r.subject.p,
                                16);
            } else {
                rc = jk_buf_append(b, "\\N", 2);
            }

            if (rc != 0 || jk_buf_append(b, "\t", 1) != 0) {
                goto fail;
            }

            if (x->r.type == 'A') {
                rc = jk_buf_hex(b, (const unsigned char *) x->r.purpose.p,
                                x->r.purpose.len);
            } else {
                rc = jk_buf_append(b, "\\N", 2);
            }

            if (rc != 0) {
                goto fail;
            }

            if (x->r.type == 'A' || x->r.type == 'C') {
                rc = jk_buf_fmt(b, "\t%d\t", x->r.decision);
            } else {
                rc = jk_buf_append(b, "\t\\N\t", 4);
            }

            if (rc != 0 || jk_buf_hex(b, x->r.p, x->r.len) != 0
                || jk_buf_append(b, "\n", 1) != 0)
            {
                goto fail;
            }

            if (PQputCopyData(a->pg, b->data, (int) b->len) != 1) {
                jk_err("PostgreSQL: COPY: %s",
                       jk_safe(PQerrorMessage(a->pg),
                               strcspn(PQerrorMessage(a->pg), "\n")));
                goto fail;
            }
        }
    }

    if (PQputCopyEnd(a->pg, NULL) != 1) {
        jk_err("PostgreSQL: COPY end failed");
        return -1;
    }

    rc = 0;
    while ((res = PQgetResult(a->pg)) != NULL) {
        if (jk_pg_ok(res, "COPY") != 0) {
            rc = -1;
        }
        PQclear(res);
    }

    return rc;

fail:

    PQputCopyEnd(a->pg, "jukictl: archive: aborted");
    while ((res = PQgetResult(a->pg)) != NULL) {
        PQclear(res);
    }
    return -1;
}


static int
jk_exec_prepared(jk_arch_t *a, const char *name, int n,
    const char *const *v, const int *len, const int *fmt)
{
    int        rc;
    PGresult  *res;

    res = PQexecPrepared(a->pg, name, n, v, len, fmt, 0);
    rc = jk_pg_ok(res, name);
    PQclear(res);

    return rc;
}


/* heads, cursors and the per-year counts */

static int
jk_arch_state(jk_arch_t *a)
{
    int           len[5], fmt[5];
    char          n1[24], n2[24], n3[8], key[8 + JK_AGENCY_MAX + 1024];
    size_t        i, j, klen;
    uint64_t      y;
    jk_ht_t       cnt;
    jk_arec_t    *x;
    jk_hent_t    *e, **all;
    jk_whead_t   *h;
    jk_alist_t   *al;
    jk_a3_list_t *l;
    const char   *v[5];
    time_t        t;
    struct tm     tm;

    /* heads */

    for (i = 0; i < a->nsorted; i++) {
        h = jk_head_of(a, a->sorted[i]->r.writer);
        if (h == NULL) {
            return -1;
        }
        if (!h->advanced || (i > 0 && memcmp(a->sorted[i - 1]->r.writer,
                                             h->writer, 8) == 0))
        {
            continue;
        }

        snprintf(n1, sizeof(n1), "%llu", (unsigned long long) h->seq);
        v[0] = (const char *) h->writer; len[0] = 8; fmt[0] = 1;
        v[1] = (const char *) h->kid; len[1] = 8; fmt[1] = 1;
        v[2] = n1; len[2] = 0; fmt[2] = 0;
        v[3] = (const char *) h->mac; len[3] = 16; fmt[3] = 1;
        v[4] = (const char *) h->hash; len[4] = 32; fmt[4] = 1;

        if (jk_exec_prepared(a, "jk_head_put", 5, v, len, fmt) != 0) {
            return -1;
        }
    }

    /* cursors */

    for (i = 0; i < a->set.n; i++) {
        l = &a->set.list[i];
        al = &a->al[i];

        if (al->skipped || al->newnext == al->next) {
            continue;
        }

        snprintf(key, sizeof(key), "%.*s", (int) l->alen, l->agency);
        snprintf(n1, sizeof(n1), "%llu", (unsigned long long) al->newnext);
        v[0] = key; len[0] = 0; fmt[0] = 0;
        v[1] = n1; len[1] = 0; fmt[1] = 0;
        v[2] = (const char *) al->newhash; len[2] = 32; fmt[2] = 1;

        if (jk_exec_prepared(a, "jk_cur_put", 3, v, len, fmt) != 0) {
            return -1;
        }
    }

    /*
     * juki_pending: an A record Redis decided goes in unless its
     * completion is archived with it; a completion archived takes its
     * earlier A record out
     */

    for (i = 0; i < a->set.n; i++) {
        l = &a->set.list[i];
        al = &a->al[i];

        if (al->skipped) {
            continue;
        }

        for (j = l->skip; j < al->cut; j++) {
            x = &a->recs[al->base + (j - l->skip)];

            if (x->r.type == 'A' && x->r.gdecision == 0
                && (x->conf == NULL
                    || x->conf->pos >= a->al[x->conf->list].cut))
            {
                snprintf(n1, sizeof(n1), "%llu",
                         (unsigned long long) x->r.seq);
                snprintf(n2, sizeof(n2), "%llu",
                         (unsigned long long) x->idx);
                snprintf(n3, sizeof(n3), "%d", x->r.decision);
                snprintf(key, sizeof(key), "%.*s", (int) l->alen,
                         l->agency);
                v[0] = (const char *) x->r.writer; len[0] = 8; fmt[0] = 1;
                v[1] = n1; len[1] = 0; fmt[1] = 0;
                v[2] = key; len[2] = 0; fmt[2] = 0;
                v[3] = n2; len[3] = 0; fmt[3] = 0;
                v[4] = n3; len[4] = 0; fmt[4] = 0;

                if (jk_exec_prepared(a, "jk_pend_put", 5, v, len, fmt)
                    != 0)
                {
                    return -1;
                }

            } else if (x->r.type == 'C' && x->pending) {
                snprintf(n1, sizeof(n1), "%llu",
                         (unsigned long long) x->r.aseq);
                v[0] = (const char *) x->r.awriter; len[0] = 8; fmt[0] = 1;
                v[1] = n1; len[1] = 0; fmt[1] = 0;

                if (jk_exec_prepared(a, "jk_pend_del", 2, v, len, fmt)
                    != 0)
                {
                    return -1;
                }
            }
        }
    }

    /* counts: year, agency, purpose, decision of every A archived */

    if (jk_ht_init(&cnt, 64) != 0) {
        return -1;
    }

    for (i = 0; i < a->set.n; i++) {
        l = &a->set.list[i];
        al = &a->al[i];

        if (al->skipped) {
            continue;
        }

        for (j = l->skip; j < al->cut; j++) {
            x = &a->recs[al->base + (j - l->skip)];

            if (x->r.type != 'A' || x->r.purpose.len > 1024) {
                continue;
            }

            t = (time_t) (x->r.ts / 1000);
            if (gmtime_r(&t, &tm) == NULL) {
                continue;
            }
            y = (uint64_t) tm.tm_year + 1900;

            key[0] = (char) (y >> 8);
            key[1] = (char) y;
            key[2] = (char) x->r.decision;
            key[3] = (char) l->alen;
            memcpy(key + 4, l->agency, l->alen);
            memcpy(key + 4 + l->alen, x->r.purpose.p, x->r.purpose.len);
            klen = 4 + l->alen + x->r.purpose.len;

            e = jk_ht_get(&cnt, key, klen);
            if (e == NULL) {
                jk_ht_free(&cnt, NULL);
                return -1;
            }
            e->n++;
        }
    }

    all = jk_ht_sorted(&cnt);
    if (all == NULL) {
        jk_ht_free(&cnt, NULL);
        return -1;
    }

    for (i = 0; all[i]; i++) {
        e = all[i];
        y = ((uint64_t) (unsigned char) e->key[0] << 8)
            | (unsigned char) e->key[1];
        klen = (unsigned char) e->key[3];

        snprintf(n1, sizeof(n1), "%llu", (unsigned long long) y);
        snprintf(n3, sizeof(n3), "%d", (unsigned char) e->key[2]);
        snprintf(n2, sizeof(n2), "%llu", (unsigned long long) e->n);
        snprintf(key, sizeof(key), "%.*s", (int) klen, e->key + 4);

        v[0] = n1; len[0] = 0; fmt[0] = 0;
        v[1] = key; len[1] = 0; fmt[1] = 0;
        v[2] = e->key + 4 + klen;
        len[2] = (int) (e->klen - 4 - klen); fmt[2] = 1;
        v[3] = n3; len[3] = 0; fmt[3] = 0;
        v[4] = n2; len[4] = 0; fmt[4] = 0;

        if (jk_exec_prepared(a, "jk_cnt_put", 5, v, len, fmt) != 0) {
            free(all);
            jk_ht_free(&cnt, NULL);
            return -1;
        }
    }

    free(all);
    jk_ht_free(&cnt, NULL);

    return 0;
}


/*
 * The checkpoint of the state inside the transaction: every list's
 * cursor and list hash, and the head of every writer this batch
 * advanced; signed, stored in juki_checkpoints (docs/audit.md,
 * "Checkpoints").
 */

static int
jk_arch_checkpoint(jk_arch_t *a, uint64_t now)
{
    int          i, n, len[2], fmt[2];
    char         b64[64], hex[17], ms[24];
    size_t       k;
    jk_buf_t     body = { NULL, 0, 0 };
    PGresult    *res;
    jk_hent_t  **all;
    jk_whead_t  *h;
    const char  *v[2], *s;
    unsigned char  hash[32];

    if (jk_buf_fmt(&body, "%s\njuki-archive checkpoint v1\ntime %llu\n",
                   a->origin, (unsigned long long) now) != 0)
    {
        goto fail;
    }

    res = PQexec(a->pg, "SELECT list, next_idx, hash FROM juki_cursor"
                        " ORDER BY list COLLATE \"C\"");
    if (jk_pg_ok(res, "reading the cursors") != 0) {
        PQclear(res);
        goto fail;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        s = PQgetvalue(res, i, 0);
        if (strlen(s) > JK_AGENCY_MAX || strspn(s,
                "abcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(s)
            || jk_pg_bytea(PQgetvalue(res, i, 2), PQgetlength(res, i, 2),
                           hash, 32) != 32)
        {
            jk_err("PostgreSQL: a malformed cursor row");
            PQclear(res);
            goto fail;
        }
        jk_b64(hash, 32, b64);

        if (jk_buf_fmt(&body, "list %s %s %s\n", s, PQgetvalue(res, i, 1),
                       b64) != 0)
        {
            PQclear(res);
            goto fail;
        }
    }

    PQclear(res);

    all = jk_ht_sorted(&a->heads);
    if (all == NULL) {
        goto fail;
    }

    for (k = 0; all[k]; k++) {
        h = all[k]->ptr;
        if (h == NULL || !h->advanced) {
            continue;
        }
        jk_hex(h->writer, 8, hex);
        jk_b64(h->hash, 32, b64);
        if (jk_buf_fmt(&body, "writer %s %llu %s\n", hex,
                       (unsigned long long) h->seq, b64) != 0)
        {
            free(all);
            goto fail;
        }
    }

    free(all);

    if (jk_note_sign(a->sk, a->origin, body.data, body.len, &a->note) != 0
        || jk_buf_append(&a->note, "\0", 1) != 0)
    {
        goto fail;
    }
    a->note.len--;                      /* a text parameter: NUL ended */

    snprintf(ms, sizeof(ms), "%llu", (unsigned long long) now);
    v[0] = ms; len[0] = 0; fmt[0] = 0;
    v[1] = a->note.data; len[1] = 0; fmt[1] = 0;

    if (jk_exec_prepared(a, "jk_ckpt_put", 2, v, len, fmt) != 0) {
        goto fail;
    }

    jk_buf_free(&body);
    return 0;

fail:

    jk_buf_free(&body);
    return -1;
}


/* the checkpoint file: a new file renamed over the old */

static int
jk_arch_write_file(jk_arch_t *a)
{
    int      fd;
    char     tmp[4096];
    size_t   off = 0;
    ssize_t  n;

    if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", a->file)
        >= sizeof(tmp))
    {
        jk_err("archive: --checkpoint-file: path too long");
        return -1;
    }

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        jk_err("archive: cannot write \"%s\": %s",
               jk_safe(tmp, strlen(tmp)), strerror(errno));
        return -1;
    }

    while (off < a->note.len) {
        n = write(fd, a->note.data + off, a->note.len - off);
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            jk_err("archive: cannot write \"%s\": %s",
                   jk_safe(tmp, strlen(tmp)), strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t) n;
    }

    if (fsync(fd) == -1 || close(fd) == -1 || rename(tmp, a->file) == -1) {
        jk_err("archive: cannot write \"%s\": %s",
               jk_safe(a->file, strlen(a->file)), strerror(errno));
        unlink(tmp);
        return -1;
    }

    return 0;
}


static void
jk_discard(redisContext *c)
{
    redisReply  *r;

    r = jk_cmdf(c, "DISCARD");
    if (r) {
        freeReplyObject(r);
    }
}


/*
 * After COMMIT: removes from the head of each list what the archive
 * holds and is older than --keep: MULTI; LTRIM list N -1; INCRBY
 * trimmed N; EXEC.  Never past the cursor.
 */

static int
jk_arch_trim(jk_arch_t *a)
{
    int           len[4];
    char          tkey[JK_AGENCY_MAX + 32], sn[24], s1[24], s2[24], s3[24];
    char          ag[JK_AGENCY_MAX + 1];
    size_t        i;
    uint64_t      t, cur, upto, v, cutoff;
    PGresult     *res;
    redisReply   *r;
    jk_alist_t   *al;
    jk_a3_list_t *l;
    const char   *pv[4], *s, *argv[4];

    cutoff = a->set.now_ms > a->keep ? a->set.now_ms - a->keep : 0;

    for (i = 0; i < a->set.n; i++) {
        l = &a->set.list[i];
        al = &a->al[i];

        if (al->skipped) {
            continue;
        }

        t = l->trimmed;
        cur = al->newnext;
        if (cur <= t) {
            continue;
        }

        upto = cur;

        if (a->keep) {
            if (a->set.now_ms <= a->keep) {
                continue;
            }
            snprintf(ag, sizeof(ag), "%.*s", (int) l->alen, l->agency);
            snprintf(s1, sizeof(s1), "%llu", (unsigned long long) t);
            snprintf(s2, sizeof(s2), "%llu", (unsigned long long) cur);
            snprintf(s3, sizeof(s3), "%llu", (unsigned long long) cutoff);
            pv[0] = ag; pv[1] = s1; pv[2] = s2; pv[3] = s3;
            len[0] = len[1] = len[2] = len[3] = 0;

            res = PQexecPrepared(a->pg, "jk_keep_min", 4, pv, len, NULL, 0);
            if (jk_pg_ok(res, "the hot window") != 0) {
                PQclear(res);
                return -1;
            }
            if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
                s = PQgetvalue(res, 0, 0);
                if (jk_parse_u64(s, strlen(s), &v) != 0 || v < t
                    || v > cur)
                {
                    PQclear(res);
                    jk_err("PostgreSQL: a bad index");
                    return -1;
                }
                upto = v;
            }
            PQclear(res);
        }

        if (upto <= t) {
            continue;
        }

        snprintf(tkey, sizeof(tkey), "juki:{%.*s}:trimmed", (int) l->alen,
                 l->agency);
        snprintf(sn, sizeof(sn), "%llu", (unsigned long long) (upto - t));

        r = jk_cmdf(a->c, "MULTI");
        if (r == NULL) {
            return -1;
        }
        freeReplyObject(r);

        argv[0] = "LTRIM"; argv[1] = l->name; argv[2] = sn; argv[3] = "-1";
        r = jk_cmd(a->c, 4, argv, NULL);
        if (r == NULL) {
            jk_discard(a->c);
            return -1;
        }
        freeReplyObject(r);

        argv[0] = "INCRBY"; argv[1] = tkey; argv[2] = sn;
        r = jk_cmd(a->c, 3, argv, NULL);
        if (r == NULL) {
            jk_discard(a->c);
            return -1;
        }
        freeReplyObject(r);

        r = jk_cmdf(a->c, "EXEC");
        if (r == NULL) {
            return -1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || r->element[1]->type != REDIS_REPLY_INTEGER
            || (uint64_t) r->element[1]->integer != upto)
        {
            jk_err("archive: Redis: %s: the trim was not executed as sent",
                   jk_safe(l->name, strlen(l->name)));
            freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
    }

    return 0;
}


static void
jk_arch_batch_free(jk_arch_t *a)
{
    jk_a3_set_free(&a->set);
    free(a->al);
    free(a->recs);
    free(a->sorted);
    a->al = NULL;
    a->recs = NULL;
    a->sorted = NULL;
    a->nrec = 0;
    a->nsorted = 0;
    jk_ht_free(&a->cursors, jk_free_ptr);
    jk_ht_free(&a->heads, jk_free_ptr);
    jk_ht_free(&a->as, NULL);
}


/* one batch; JK_OK, JK_FAIL (a break: what precedes it is archived) */

static int
jk_arch_batch(jk_arch_t *a)
{
    int       rc = JK_ERR, sign;
    uint64_t  rows = 0, now;

    a->breaks = 0;

    if (jk_ht_init(&a->cursors, 64) != 0 || jk_ht_init(&a->heads, 256) != 0
        || jk_ht_init(&a->as, 1024) != 0)
    {
        goto done;
    }

    if (jk_pg_exec(a->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ") != 0) {
        goto done;
    }

    if (jk_cursors_load(a) != 0
        || jk_a3_read_from(a->c, &a->set, jk_arch_skip, a) != 0
        || jk_arch_check(a) != 0
        || jk_arch_hashes(a, &rows) != 0)
    {
        goto rollback;
    }

    if (rows && (jk_arch_partitions(a) != 0 || jk_arch_copy(a) != 0
                 || jk_arch_state(a) != 0))
    {
        goto rollback;
    }

    now = jk_now_ms();
    sign = rows || !a->o->follow || a->breaks
           || now - a->last_ckpt >= JK_CKPT_EVERY;

    if (sign && jk_arch_checkpoint(a, now) != 0) {
        goto rollback;
    }

    if (jk_pg_exec(a->pg, "COMMIT") != 0) {
        goto done;
    }

    a->total += rows;

    if (sign) {
        a->last_ckpt = now;
        if (jk_arch_write_file(a) != 0) {
            goto done;
        }
    }

    if (jk_arch_trim(a) != 0) {
        goto done;
    }

    rc = a->breaks ? JK_FAIL : JK_OK;

    if (a->breaks > JK_ARCH_SHOWN) {
        jk_err("archive: %llu breaks in all (%d shown)",
               (unsigned long long) a->breaks, JK_ARCH_SHOWN);
    }

    if (!a->o->follow || rows) {
        printf("archived: %llu records (%llu in all)%s\n",
               (unsigned long long) rows, (unsigned long long) a->total,
               a->breaks ? "; stopped at a break" : "");
        fflush(stdout);
    }

    goto done;

rollback:

    jk_pg_exec(a->pg, "ROLLBACK");

done:

    jk_arch_batch_free(a);

    return rc;
}


int
jk_cmd_archive(const jk_opts_t *o)
{
    int               n, rc = JK_ERR;
    PGresult         *res;
    jk_arch_t         a;
    struct sigaction  sa;
    struct timespec   ts;

    memset(&a, 0, sizeof(a));
    a.o = o;
    a.origin = jk_origin(o);
    a.file = o->checkpoint_file ? o->checkpoint_file : JK_CKPT_FILE;
    a.keep = JK_KEEP_DEFAULT;

    if (!jk_note_name_ok(a.origin)) {
        return jk_usage_err("archive: --origin: a key name of printable"
                            " ASCII, no space or '+'");
    }

    if (o->keep && jk_parse_duration(o->keep, &a.keep) != 0) {
        return jk_usage_err("archive: --keep: a duration (24h, 90m, 0)");
    }

    if (o->signing_key == NULL) {
        return jk_usage_err("archive needs --signing-key PEM (Ed25519,"
                            " PKCS#8)");
    }

    if (jk_skew_opt(o, &a.skew) != JK_OK) {
        return JK_ERR;
    }

    n = jk_keys_load(o, &a.kr);
    if (n < 0) {
        return JK_ERR;
    }
    if (n == 0) {
        jk_err("archive needs the audit key (--key PATH or"
               " JUKI_AUDIT_KEY)");
        goto done;
    }

    a.sk = jk_sign_key_load(o->signing_key);
    if (a.sk == NULL) {
        goto done;
    }

    a.pg = jk_pg_connect(o);
    if (a.pg == NULL || jk_pg_schema(a.pg) != 0
        || jk_arch_prepare(a.pg) != 0)
    {
        goto done;
    }

    res = PQexec(a.pg, "SELECT pg_try_advisory_lock(" JK_PG_LOCK_ARCHIVE ")");
    if (jk_pg_ok(res, "lock") != 0) {
        PQclear(res);
        goto done;
    }
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        jk_err("archive: another archiver runs on this database");
        goto done;
    }
    PQclear(res);

    a.c = jk_redis_connect(o);
    if (a.c == NULL) {
        goto done;
    }

    if (o->follow) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = jk_arch_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }

    for ( ;; ) {
        rc = jk_arch_batch(&a);

        if (rc != JK_OK || !o->follow || jk_arch_stop) {
            break;
        }

        ts.tv_sec = 1;
        ts.tv_nsec = 0;
        nanosleep(&ts, NULL);

        if (jk_arch_stop) {
            break;
        }
    }

done:

    if (a.c) {
        redisFree(a.c);
    }
    PQfinish(a.pg);
    EVP_PKEY_free(a.sk);
    jk_buf_free(&a.scratch);
    jk_buf_free(&a.buf);
    jk_buf_free(&a.note);
    jk_keys_wipe(&a.kr);

    return rc;
}
