/*
 * jukictl verify --postgres DSN --public-key PEM: what an auditor holding
 * only the archiver's public key can check (docs/audit.md, "What a
 * public-key auditor checks").
 *
 * Every checkpoint in juki_checkpoints (and --checkpoint FILE, one handed
 * out earlier) must carry a valid Ed25519 signature of the origin; each
 * of its lines is a claim: "list L N H" (the list hash after the first N
 * rows of L) and "writer W S H" (W's public hash at seq S).  The rows,
 * their raw bytes being the truth, must reproduce every claim: each list
 * is read in index order without gap or repeat, each row's derived
 * columns must be what its bytes say, each writer's rows form seq 0, 1,
 * 2 ... in list order.  Rows past the last checkpoint are unsigned and a
 * break: the archiver signs in the transaction that adds rows.
 */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "jk.h"


#define JK_PV_SHOWN  20


typedef struct {
    unsigned char    hash[32];
    long long        ckpt;          /* checkpoint id; -1: the file */
    int              met;           /* 1 reproduced, 2 contradicted */
} jk_claim_t;

typedef struct {
    const unsigned char *raw;
    size_t           len;
    size_t           list;
    uint64_t         idx;
    jk_a3_t          r;
} jk_prow_t;

typedef struct {
    char             name[JK_AGENCY_MAX + 1];
    uint64_t         rows;
    uint64_t         signed_rows;   /* in the last checkpoint */
} jk_plist_t;

/* what retention records dropped: 'L' agency or 'W' writer[8] */
typedef struct {
    uint64_t         next;          /* the first index or seq kept */
    unsigned char    hash[32];      /* the chain's hash before it */
    long long        rec;           /* the retention record's id */
} jk_floor_t;

typedef struct {
    EVP_PKEY        *pk;
    const char      *origin;
    uint64_t         breaks;
    jk_ht_t          claims;
    jk_ht_t          floors;
    uint64_t         nret;
    long long        last_id;
    uint64_t         nckpt;
    jk_plist_t      *lists;
    size_t           nlists;
    size_t           cap;
} jk_pv_t;


static void
jk_pv_break(jk_pv_t *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
jk_pv_break(jk_pv_t *v, const char *fmt, ...)
{
    char     what[320];
    va_list  ap;

    if (++v->breaks > JK_PV_SHOWN) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);

    fprintf(stderr, "jukictl: verify: %s\n", what);
}


static void
jk_ckpt_name(long long id, char *out, size_t size)
{
    if (id < 0) {
        snprintf(out, size, "the checkpoint file");
    } else {
        snprintf(out, size, "checkpoint %lld", id);
    }
}


static int
jk_agency_ok(const char *p, size_t n)
{
    size_t  i;

    if (n == 1 && p[0] == '_') {
        return 1;
    }

    if (n == 0 || n > JK_AGENCY_MAX) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        unsigned char  c = (unsigned char) p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || (i > 0 && (c == '.' || c == '_' || c == '-'))))
        {
            return 0;
        }
    }

    return 1;
}


static jk_plist_t *
jk_pv_list(jk_pv_t *v, const char *name, size_t n)
{
    size_t       i;
    jk_plist_t  *l;

    for (i = 0; i < v->nlists; i++) {
        if (strlen(v->lists[i].name) == n
            && memcmp(v->lists[i].name, name, n) == 0)
        {
            return &v->lists[i];
        }
    }

    if (v->nlists == v->cap) {
        size_t       cap = v->cap ? 2 * v->cap : 16;
        jk_plist_t  *nl = realloc(v->lists, cap * sizeof(*nl));

        if (nl == NULL) {
            jk_err("out of memory");
            return NULL;
        }
        v->lists = nl;
        v->cap = cap;
    }

    l = &v->lists[v->nlists++];
    memset(l, 0, sizeof(*l));
    memcpy(l->name, name, n);
    l->name[n] = '\0';

    return l;
}


/* claim keys: 'L' agency '\0' count[8], 'W' writer[8] seq[8] */

static size_t
jk_lkey(char *key, const char *ag, size_t alen, uint64_t n)
{
    key[0] = 'L';
    memcpy(key + 1, ag, alen);
    key[1 + alen] = '\0';
    memcpy(key + 2 + alen, &n, 8);

    return 10 + alen;
}


static size_t
jk_wkey(char *key, const unsigned char writer[8], uint64_t seq)
{
    key[0] = 'W';
    memcpy(key + 1, writer, 8);
    memcpy(key + 9, &seq, 8);

    return 17;
}


static int
jk_claim_add(jk_pv_t *v, const char *key, size_t klen,
    const unsigned char hash[32], long long id, const char *what)
{
    char         a[40], b[40];
    jk_hent_t   *e;
    jk_claim_t  *c;

    e = jk_ht_get(&v->claims, key, klen);
    if (e == NULL) {
        return -1;
    }

    c = e->ptr;

    if (c) {
        if (memcmp(c->hash, hash, 32) != 0) {
            jk_ckpt_name(c->ckpt, a, sizeof(a));
            jk_ckpt_name(id, b, sizeof(b));
            jk_pv_break(v, "%s and %s disagree on %s (a rewritten"
                        " history)", a, b, what);
        }
        return 0;
    }

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        jk_err("out of memory");
        return -1;
    }

    memcpy(c->hash, hash, 32);
    c->ckpt = id;
    e->ptr = c;

    return 0;
}


/*
 * Opens one checkpoint note and records its claims.  last: it is the
 * newest in the archive (its list counts are what is signed).
 */

static int
jk_pv_note(jk_pv_t *v, const char *note, size_t len, long long id,
    int last)
{
    char           name[40], key[16 + JK_AGENCY_MAX], what[128];
    char           hex[17];
    size_t         blen, ln, olen, i, klen;
    uint64_t       n;
    const char    *err, *p, *end, *nl, *f[4];
    size_t         fl[4];
    int            nf, k;
    unsigned char  hash[32], w[8];
    jk_plist_t    *pl;

    jk_ckpt_name(id, name, sizeof(name));

    err = jk_note_open(v->pk, v->origin, note, len, &blen);
    if (err) {
        jk_pv_break(v, "%s: %s", name, err);
        return 0;
    }

    v->nckpt++;
    olen = strlen(v->origin);
    p = note;
    end = note + blen;

    for (ln = 0; p < end; ln++, p = nl + 1) {
        nl = memchr(p, '\n', (size_t) (end - p));

        if (ln == 0) {
            if ((size_t) (nl - p) != olen || memcmp(p, v->origin, olen)) {
                jk_pv_break(v, "%s: origin is not %s", name, v->origin);
                return 0;
            }
            continue;
        }

        if (ln == 1) {
            if ((size_t) (nl - p) != 26
                || memcmp(p, "juki-archive checkpoint v1", 26) != 0)
            {
                jk_pv_break(v, "%s: not a juki-archive checkpoint v1",
                            name);
                return 0;
            }
            continue;
        }

        /* split into at most 4 fields */
        nf = 0;
        for (i = 0; p + i < nl && nf < 4; nf++) {
            f[nf] = p + i;
            fl[nf] = strcspn(f[nf], " \n");
            if (f[nf] + fl[nf] > nl) {
                fl[nf] = (size_t) (nl - f[nf]);
            }
            i += fl[nf] + 1;
        }

        if (ln == 2 && nf == 2 && fl[0] == 4 && memcmp(f[0], "time", 4) == 0)
        {
            continue;
        }

        if (nf != 4 || p + i - 1 != nl
            || jk_parse_u64(f[2], fl[2], &n) != 0
            || jk_unb64(f[3], fl[3], hash, 32) != 0)
        {
            jk_pv_break(v, "%s: malformed line %zu", name, ln + 1);
            return 0;
        }

        if (fl[0] == 4 && memcmp(f[0], "list", 4) == 0
            && jk_agency_ok(f[1], fl[1]))
        {
            klen = jk_lkey(key, f[1], fl[1], n);
            snprintf(what, sizeof(what), "list %.*s at %llu rows",
                     (int) fl[1], f[1], (unsigned long long) n);
            if (jk_claim_add(v, key, klen, hash, id, what) != 0) {
                return -1;
            }
            if (last) {
                pl = jk_pv_list(v, f[1], fl[1]);
                if (pl == NULL) {
                    return -1;
                }
                pl->signed_rows = n;
            }
            continue;
        }

        if (fl[0] == 6 && memcmp(f[0], "writer", 6) == 0 && fl[1] == 16) {
            memcpy(hex, f[1], 16);
            hex[16] = '\0';
            for (k = 0; k < 8; k++) {
                unsigned  b;

                if (sscanf(hex + 2 * k, "%2x", &b) != 1) {
                    break;
                }
                w[k] = (unsigned char) b;
            }
            if (k != 8 || strspn(hex, "0123456789abcdef") != 16) {
                jk_pv_break(v, "%s: malformed line %zu", name, ln + 1);
                return 0;
            }
            klen = jk_wkey(key, w, n);
            snprintf(what, sizeof(what), "writer %s seq %llu", hex,
                     (unsigned long long) n);
            if (jk_claim_add(v, key, klen, hash, id, what) != 0) {
                return -1;
            }
            continue;
        }

        jk_pv_break(v, "%s: malformed line %zu", name, ln + 1);
        return 0;
    }

    return 0;
}


static int
jk_pv_file(jk_pv_t *v, const char *path)
{
    int       rc;
    FILE     *f;
    char     *data;
    size_t    n;

    f = fopen(path, "rb");
    if (f == NULL) {
        jk_err("verify: cannot open \"%s\"", jk_safe(path, strlen(path)));
        return -1;
    }

    data = malloc(1024 * 1024 + 1);
    if (data == NULL) {
        fclose(f);
        jk_err("out of memory");
        return -1;
    }

    n = fread(data, 1, 1024 * 1024 + 1, f);
    fclose(f);

    if (n > 1024 * 1024) {
        free(data);
        jk_err("verify: \"%s\": too large for a checkpoint",
               jk_safe(path, strlen(path)));
        return -1;
    }

    data[n] = '\0';
    rc = jk_pv_note(v, data, n, -1, 0);
    free(data);

    return rc;
}


static uint64_t
jk_be64(const char *p)
{
    int       i;
    uint64_t  x = 0;

    for (i = 0; i < 8; i++) {
        x = (x << 8) | (unsigned char) p[i];
    }

    return x;
}


static int
jk_prow_cmp(const void *a, const void *b)
{
    const jk_prow_t  *x = *(jk_prow_t * const *) a;
    const jk_prow_t  *y = *(jk_prow_t * const *) b;

    return jk_a3_chain_cmp(&x->r, x->list, x->idx, &y->r, y->list, y->idx);
}


/* a claim at key: reproduced, contradicted (said) or none */

static void
jk_pv_check(jk_pv_t *v, const char *key, size_t klen,
    const unsigned char hash[32], const char *what, int *said)
{
    char         name[40];
    jk_hent_t   *e;
    jk_claim_t  *c;

    e = jk_ht_find(&v->claims, key, klen);
    if (e == NULL || e->ptr == NULL) {
        return;
    }

    c = e->ptr;

    if (memcmp(c->hash, hash, 32) == 0) {
        c->met = 1;
        return;
    }

    c->met = 2;

    if (!*said) {
        jk_ckpt_name(c->ckpt, name, sizeof(name));
        jk_pv_break(v, "%s do not reproduce %s (a row edited, swapped,"
                    " forged or deleted)", what, name);
        *said = 1;
    }
}


/* retention records (docs/audit.md, "Retention"): the floors */

static jk_floor_t *
jk_floor_find(jk_pv_t *v, int kind, const char *name, size_t n)
{
    char        key[1 + JK_AGENCY_MAX];
    jk_hent_t  *e;

    if (n > JK_AGENCY_MAX) {
        return NULL;
    }
    key[0] = (char) kind;
    memcpy(key + 1, name, n);

    e = jk_ht_find(&v->floors, key, n + 1);

    return e ? e->ptr : NULL;
}


/* a range FIRST..LAST dropped: it must start at the floor */

static int
jk_floor_move(jk_pv_t *v, int kind, const char *name, size_t n,
    uint64_t first, uint64_t last, const unsigned char hash[32],
    long long id, const char *what)
{
    char         key[1 + JK_AGENCY_MAX];
    jk_hent_t   *e;
    jk_floor_t  *f;

    key[0] = (char) kind;
    memcpy(key + 1, name, n);

    e = jk_ht_get(&v->floors, key, n + 1);
    if (e == NULL) {
        return -1;
    }

    f = e->ptr;
    if (f == NULL) {
        f = calloc(1, sizeof(*f));
        if (f == NULL) {
            jk_err("out of memory");
            return -1;
        }
        e->ptr = f;
    }

    if (first != f->next || last < first) {
        jk_pv_break(v, "retention record %lld: %s %llu..%llu, but %llu is"
                    " the first not dropped before (a forged record?)", id,
                    what, (unsigned long long) first,
                    (unsigned long long) last,
                    (unsigned long long) f->next);
        return 0;
    }

    f->next = last + 1;
    memcpy(f->hash, hash, 32);
    f->rec = id;

    return 0;
}


static int
jk_pv_retention_note(jk_pv_t *v, const char *note, size_t len, long long id)
{
    int            nf, k;
    char           what[40 + JK_AGENCY_MAX];
    size_t         blen, ln, olen, i, fl[7];
    uint64_t       num[3];
    const char    *err, *p, *end, *nl, *f[7];
    unsigned char  hash[32], w[8];

    err = jk_note_open(v->pk, v->origin, note, len, &blen);
    if (err) {
        jk_pv_break(v, "retention record %lld: %s", id, err);
        return 0;
    }

    v->nret++;
    olen = strlen(v->origin);
    p = note;
    end = note + blen;

    for (ln = 0; p < end; ln++, p = nl + 1) {
        nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL) {
            jk_pv_break(v, "retention record %lld: no final newline", id);
            return 0;
        }

        if (ln == 0) {
            if ((size_t) (nl - p) != olen || memcmp(p, v->origin, olen)) {
                jk_pv_break(v, "retention record %lld: origin is not %s",
                            id, v->origin);
                return 0;
            }
            continue;
        }

        if (ln == 1) {
            if ((size_t) (nl - p) != 25
                || memcmp(p, "juki-archive retention v1", 25) != 0)
            {
                jk_pv_break(v, "retention record %lld: not a juki-archive"
                            " retention v1", id);
                return 0;
            }
            continue;
        }

        /* split into at most 7 fields (6 used) */
        nf = 0;
        for (i = 0; p + i < nl && nf < 7; nf++) {
            f[nf] = p + i;
            fl[nf] = strcspn(f[nf], " \n");
            if (f[nf] + fl[nf] > nl) {
                fl[nf] = (size_t) (nl - f[nf]);
            }
            i += fl[nf] + 1;
        }

        if (p + i - 1 != nl) {
            goto malformed;
        }

        if ((ln == 2 && nf == 2 && fl[0] == 4
             && memcmp(f[0], "time", 4) == 0)
            || (ln == 3 && nf == 2 && fl[0] == 5
                && memcmp(f[0], "month", 5) == 0 && fl[1] == 7))
        {
            continue;
        }

        if (nf == 6 && fl[0] == 4 && memcmp(f[0], "list", 4) == 0
            && jk_agency_ok(f[1], fl[1])
            && jk_parse_u64(f[2], fl[2], &num[0]) == 0
            && jk_parse_u64(f[3], fl[3], &num[1]) == 0
            && jk_parse_u64(f[4], fl[4], &num[2]) == 0
            && jk_unb64(f[5], fl[5], hash, 32) == 0)
        {
            if (num[1] < num[0] || num[2] != num[1] - num[0] + 1) {
                jk_pv_break(v, "retention record %lld: line %zu: the row"
                            " count is not the range's", id, ln + 1);
                return 0;
            }
            snprintf(what, sizeof(what), "list %.*s rows", (int) fl[1],
                     f[1]);
            if (jk_floor_move(v, 'L', f[1], fl[1], num[0], num[1], hash,
                              id, what) != 0)
            {
                return -1;
            }
            continue;
        }

        if (nf == 5 && fl[0] == 6 && memcmp(f[0], "writer", 6) == 0
            && fl[1] == 16 && strspn(f[1], "0123456789abcdef") == 16
            && jk_parse_u64(f[2], fl[2], &num[0]) == 0
            && jk_parse_u64(f[3], fl[3], &num[1]) == 0
            && jk_unb64(f[4], fl[4], hash, 32) == 0)
        {
            for (k = 0; k < 8; k++) {
                unsigned  b;

                if (sscanf(f[1] + 2 * k, "%2x", &b) != 1) {
                    goto malformed;
                }
                w[k] = (unsigned char) b;
            }
            snprintf(what, sizeof(what), "writer %.16s seq", f[1]);
            if (jk_floor_move(v, 'W', (const char *) w, 8, num[0], num[1],
                              hash, id, what) != 0)
            {
                return -1;
            }
            continue;
        }

    malformed:

        jk_pv_break(v, "retention record %lld: malformed line %zu", id,
                    ln + 1);
        return 0;
    }

    return 0;
}


/*
 * Every retention record, in order; then the claims of checkpoints about
 * what was dropped: one at the floor is checked against the record's
 * hash, one below it is lawfully gone.
 */

static int
jk_pv_retention(jk_pv_t *v, PGconn *pg)
{
    int          i, n, said = 0;
    char         what[80];
    size_t       alen;
    uint64_t     at;
    PGresult    *res;
    jk_hent_t  **all;
    jk_claim_t  *c;
    jk_floor_t  *f;

    res = PQexec(pg, "SELECT to_regclass('juki_retention') IS NOT NULL");
    if (jk_pg_ok(res, "looking for retention records") != 0) {
        PQclear(res);
        return -1;
    }
    n = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);

    if (!n) {
        return 0;
    }

    res = PQexec(pg, "SELECT id, note FROM juki_retention ORDER BY id");
    if (jk_pg_ok(res, "reading the retention records") != 0) {
        PQclear(res);
        return -1;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        if (jk_pv_retention_note(v, PQgetvalue(res, i, 1),
                                 (size_t) PQgetlength(res, i, 1),
                                 strtoll(PQgetvalue(res, i, 0), NULL, 10))
            != 0)
        {
            PQclear(res);
            return -1;
        }
    }

    PQclear(res);

    if (n == 0) {
        return 0;
    }

    all = jk_ht_sorted(&v->claims);
    if (all == NULL) {
        return -1;
    }

    for (i = 0; all[i]; i++) {
        c = all[i]->ptr;
        if (c == NULL || c->met) {
            continue;
        }

        if (all[i]->key[0] == 'L') {
            alen = strlen(all[i]->key + 1);
            memcpy(&at, all[i]->key + 2 + alen, 8);
            f = jk_floor_find(v, 'L', all[i]->key + 1, alen);
            snprintf(what, sizeof(what), "the retention record of list %s",
                     all[i]->key + 1);
        } else {
            memcpy(&at, all[i]->key + 9, 8);
            at++;                       /* the hash after seq S */
            f = jk_floor_find(v, 'W', all[i]->key + 1, 8);
            snprintf(what, sizeof(what), "the retention record of a"
                     " writer");
        }

        if (f == NULL || at > f->next) {
            continue;
        }

        if (at < f->next) {
            c->met = 3;                 /* dropped under a record */
            continue;
        }

        said = 0;
        jk_pv_check(v, all[i]->key, all[i]->klen, f->hash, what, &said);
    }

    free(all);

    return 0;
}


static int
jk_pv_rows(jk_pv_t *v, PGconn *pg, uint64_t *nrows, size_t *nwriters)
{
    int              rc = -1, said;
    char             key[16 + JK_AGENCY_MAX], what[200], w[17];
    size_t           i, j, n, m, prevlist;
    uint64_t         expect, lastmet, want;
    PGresult        *res;
    jk_prow_t       *rows = NULL, **sorted = NULL, *x;
    jk_plist_t      *pl = NULL;
    jk_floor_t      *fl;
    const char      *err, *ag;
    unsigned char    cur[32];
    uint64_t        *last = NULL;
    static const unsigned char  zero[32];

    res = PQexecParams(pg, "SELECT list, idx, writer, seq, type, raw"
                           " FROM juki_records"
                           " ORDER BY list COLLATE \"C\", idx",
                       0, NULL, NULL, NULL, NULL, 1);
    if (jk_pg_ok(res, "reading the archive") != 0) {
        PQclear(res);
        return -1;
    }

    n = (size_t) PQntuples(res);
    rows = calloc(n ? n : 1, sizeof(rows[0]));
    sorted = calloc(n ? n : 1, sizeof(sorted[0]));
    if (rows == NULL || sorted == NULL) {
        jk_err("out of memory");
        goto done;
    }

    /* each list in index order: no gap, no repeat, its hash chain */

    prevlist = SIZE_MAX;
    expect = 0;
    lastmet = 0;
    said = 0;
    memset(cur, 0, 32);
    m = 0;

    for (i = 0; i < n; i++) {
        int  al = PQgetlength(res, (int) i, 0);

        ag = PQgetvalue(res, (int) i, 0);
        x = &rows[i];

        if (!jk_agency_ok(ag, (size_t) al)
            || PQgetlength(res, (int) i, 1) != 8
            || PQgetlength(res, (int) i, 2) != 8
            || PQgetlength(res, (int) i, 3) != 8
            || PQgetlength(res, (int) i, 4) != 1)
        {
            jk_pv_break(v, "a row with a malformed list or columns");
            continue;
        }

        if (pl == NULL || strlen(pl->name) != (size_t) al
            || memcmp(pl->name, ag, (size_t) al) != 0)
        {
            pl = jk_pv_list(v, ag, (size_t) al);
            if (pl == NULL) {
                goto done;
            }
            prevlist = (size_t) (pl - v->lists);
            expect = 0;
            lastmet = 0;
            said = 0;
            memset(cur, 0, 32);
            fl = jk_floor_find(v, 'L', ag, (size_t) al);
            if (fl) {
                expect = fl->next;
                lastmet = fl->next;
                memcpy(cur, fl->hash, 32);
            }
        }

        x->list = prevlist;
        x->idx = jk_be64(PQgetvalue(res, (int) i, 1));
        x->raw = (const unsigned char *) PQgetvalue(res, (int) i, 5);
        x->len = (size_t) PQgetlength(res, (int) i, 5);

        if (x->idx != expect) {
            if (x->idx < expect) {
                jk_pv_break(v, "list %s: row %llu twice (a forged or"
                            " copied row)", pl->name,
                            (unsigned long long) x->idx);
                continue;
            }
            if (!said) {
                jk_pv_break(v, "list %s: rows %llu..%llu missing"
                            " (deleted?)", pl->name,
                            (unsigned long long) expect,
                            (unsigned long long) x->idx - 1);
                said = 1;
            }
            expect = x->idx;
        }

        expect++;
        pl->rows = expect;

        if (jk_list_hash(cur, x->raw, x->len, cur) != 0) {
            goto done;
        }

        snprintf(what, sizeof(what), "list %s: rows %llu..%llu",
                 pl->name, (unsigned long long) lastmet,
                 (unsigned long long) x->idx);
        jk_lkey(key, pl->name, strlen(pl->name), x->idx + 1);
        jk_pv_check(v, key, 10 + strlen(pl->name), cur, what, &said);
        {
            jk_hent_t  *e = jk_ht_find(&v->claims, key,
                                       10 + strlen(pl->name));
            if (e && e->ptr && ((jk_claim_t *) e->ptr)->met == 1) {
                lastmet = x->idx + 1;
            }
        }

        err = jk_a3_decode(x->raw, x->len, &x->r);
        if (err) {
            jk_pv_break(v, "list %s row %llu: its bytes do not decode: %s",
                        pl->name, (unsigned long long) x->idx, err);
            continue;
        }

        if (memcmp(PQgetvalue(res, (int) i, 2), x->r.writer, 8) != 0
            || jk_be64(PQgetvalue(res, (int) i, 3)) != x->r.seq
            || PQgetvalue(res, (int) i, 4)[0] != (char) x->r.type)
        {
            jk_hex(x->r.writer, 8, w);
            jk_pv_break(v, "list %s row %llu: its columns do not match its"
                        " bytes (writer %s seq %llu): moved or swapped",
                        pl->name, (unsigned long long) x->idx, w,
                        (unsigned long long) x->r.seq);
            continue;
        }

        sorted[m++] = x;
    }

    /* each writer: seq 0, 1, 2 ... in list order, its public hash */

    last = calloc(v->nlists ? v->nlists : 1, sizeof(last[0]));
    if (last == NULL) {
        jk_err("out of memory");
        goto done;
    }

    if (m) {
        qsort(sorted, m, sizeof(sorted[0]), jk_prow_cmp);
    }

    *nwriters = 0;

    for (i = 0; i < m; i = j) {
        for (j = i + 1; j < m && memcmp(sorted[j]->r.writer,
                                        sorted[i]->r.writer, 8) == 0; j++)
        {
            /* void */
        }

        (*nwriters)++;
        memset(cur, 0, 32);
        memset(last, 0xff, v->nlists * sizeof(last[0]));
        jk_hex(sorted[i]->r.writer, 8, w);
        want = 0;
        said = 0;
        fl = jk_floor_find(v, 'W', (const char *) sorted[i]->r.writer, 8);
        if (fl) {
            want = fl->next;
            memcpy(cur, fl->hash, 32);
        }

        for (size_t k = i; k < j; k++) {
            x = sorted[k];
            pl = &v->lists[x->list];

            if (x->r.seq != want && !said) {
                if (x->r.seq < want) {
                    jk_pv_break(v, "writer %s: seq %llu twice (list %s row"
                                " %llu)", w, (unsigned long long) x->r.seq,
                                pl->name, (unsigned long long) x->idx);
                } else {
                    jk_pv_break(v, "writer %s: seq %llu..%llu missing from"
                                " the archive (deleted?)", w,
                                (unsigned long long) want,
                                (unsigned long long) x->r.seq - 1);
                }
                said = 1;
            }
            want = x->r.seq + 1;

            if (last[x->list] != UINT64_MAX && x->idx < last[x->list]
                && !said)
            {
                jk_pv_break(v, "writer %s seq %llu: out of order in list %s"
                            " (row %llu): swapped?", w,
                            (unsigned long long) x->r.seq, pl->name,
                            (unsigned long long) x->idx);
                said = 1;
            }
            last[x->list] = x->idx;

            if (jk_pub_hash(cur, pl->name, strlen(pl->name), x->raw, x->len,
                            cur) != 0)
            {
                goto done;
            }

            snprintf(what, sizeof(what), "writer %s: seq 0..%llu", w,
                     (unsigned long long) x->r.seq);
            jk_wkey(key, x->r.writer, x->r.seq);
            jk_pv_check(v, key, 17, cur, what, &said);
        }
    }

    (void) zero;
    *nrows = n;
    rc = 0;

done:

    free(last);
    free(sorted);
    free(rows);
    PQclear(res);

    return rc;
}


/* claims nothing reproduced: truncation */

static void
jk_pv_unmet(jk_pv_t *v)
{
    char          name[40], w[17];
    size_t        i;
    uint64_t      n;
    jk_hent_t   **all;
    jk_claim_t   *c;

    all = jk_ht_sorted(&v->claims);
    if (all == NULL) {
        v->breaks++;
        return;
    }

    for (i = 0; all[i]; i++) {
        c = all[i]->ptr;
        if (c == NULL || c->met) {
            continue;
        }

        jk_ckpt_name(c->ckpt, name, sizeof(name));

        if (all[i]->key[0] == 'L') {
            size_t  alen = strlen(all[i]->key + 1);

            memcpy(&n, all[i]->key + 2 + alen, 8);
            jk_pv_break(v, "%s names list %s at %llu rows: the archive"
                        " has fewer (truncated or deleted)", name,
                        all[i]->key + 1, (unsigned long long) n);
        } else {
            jk_hex((const unsigned char *) all[i]->key + 1, 8, w);
            memcpy(&n, all[i]->key + 9, 8);
            jk_pv_break(v, "%s names writer %s at seq %llu: not in the"
                        " archive (truncated or deleted)", name, w,
                        (unsigned long long) n);
        }
    }

    free(all);

    for (i = 0; i < v->nlists; i++) {
        if (v->lists[i].rows > v->lists[i].signed_rows) {
            jk_pv_break(v, "list %s: rows %llu..%llu are in no checkpoint"
                        " (forged rows?)", v->lists[i].name,
                        (unsigned long long) v->lists[i].signed_rows,
                        (unsigned long long) v->lists[i].rows - 1);
        }
    }
}


/*
 * With Redis at hand (--redis or JUKI_REDIS): every juki:{A}:trimmed
 * counter, read BEFORE the rows (a counter never passes the archive's
 * committed rows, so a later read of the rows cannot be behind it).
 */

typedef struct {
    redisContext    *c;
    jk_ht_t          t;             /* agency -> n = trimmed */
} jk_pv_redis_t;


static int
jk_pv_trimmed(void *arg, const char *key, size_t len)
{
    jk_pv_redis_t  *pr = arg;
    uint64_t        n;
    jk_hent_t      *e;
    redisReply     *r;
    const char     *argv[2];
    char            name[JK_AGENCY_MAX + 32];

    /* juki:{A}:trimmed */
    if (len < 16 || len >= sizeof(name) || memcmp(key, "juki:{", 6) != 0
        || memcmp(key + len - 9, "}:trimmed", 9) != 0
        || !jk_agency_ok(key + 6, len - 15))
    {
        return 0;
    }

    memcpy(name, key, len);
    name[len] = '\0';
    argv[0] = "GET";
    argv[1] = name;

    r = jk_cmd(pr->c, 2, argv, NULL);
    if (r == NULL) {
        return -1;
    }

    if (r->type != REDIS_REPLY_STRING
        || jk_parse_u64(r->str, r->len, &n) != 0)
    {
        freeReplyObject(r);
        return 0;
    }
    freeReplyObject(r);

    e = jk_ht_get(&pr->t, key + 6, len - 15);
    if (e == NULL) {
        return -1;
    }
    e->n = n;

    return 0;
}


static void
jk_pv_redis_check(jk_pv_t *v, jk_pv_redis_t *pr)
{
    size_t       i, k;
    uint64_t     rows;
    jk_hent_t  **all;
    jk_floor_t  *f;

    all = jk_ht_sorted(&pr->t);
    if (all == NULL) {
        v->breaks++;
        return;
    }

    for (k = 0; all[k]; k++) {
        rows = 0;
        for (i = 0; i < v->nlists; i++) {
            if (strlen(v->lists[i].name) == all[k]->klen
                && memcmp(v->lists[i].name, all[k]->key, all[k]->klen)
                   == 0)
            {
                rows = v->lists[i].rows;
            }
        }

        f = jk_floor_find(v, 'L', all[k]->key, all[k]->klen);
        if (f && f->next > rows) {
            rows = f->next;             /* all of it under retention */
        }

        if (all[k]->n > rows) {
            jk_pv_break(v, "list %s: Redis trimmed %llu records, the"
                        " archive holds %llu (truncated or deleted)",
                        all[k]->key, (unsigned long long) all[k]->n,
                        (unsigned long long) rows);
        }
    }

    free(all);
}


static void
jk_claim_free(void *p)
{
    free(p);
}


int
jk_verify_public(const jk_opts_t *o)
{
    int        rc;
    EVP_PKEY  *pk;

    if (o->public_key == NULL) {
        return jk_usage_err("verify --postgres needs --public-key PEM (the"
                            " archive's rows are checked against the"
                            " signed checkpoints)");
    }

    if (o->nkeys) {
        return jk_usage_err("verify --public-key takes no --key: it needs"
                            " no secret");
    }

    pk = jk_pub_key_load(o->public_key);
    if (pk == NULL) {
        return JK_ERR;
    }

    rc = jk_verify_archive(o, pk, o->redis || (getenv("JUKI_REDIS")
                                               && getenv("JUKI_REDIS")[0]),
                           0);

    EVP_PKEY_free(pk);

    return rc;
}


/*
 * The check of verify --public-key with the key pk (retention checks the
 * archive with its signing key before it drops anything); use_redis:
 * compare Redis's trimmed counters too; quiet: no "ok" line.
 */

int
jk_verify_archive(const jk_opts_t *o, EVP_PKEY *pk, int use_redis,
    int quiet)
{
    int         rc = JK_ERR, i, n;
    size_t      nwriters = 0;
    uint64_t    nrows = 0;
    PGconn     *pg = NULL;
    PGresult   *res = NULL;
    jk_pv_t     v;
    const char *s;
    jk_pv_redis_t  pr;

    memset(&v, 0, sizeof(v));
    memset(&pr, 0, sizeof(pr));
    v.origin = jk_origin(o);
    v.pk = pk;

    if (jk_ht_init(&v.claims, 1024) != 0) {
        return JK_ERR;
    }

    if (jk_ht_init(&v.floors, 64) != 0) {
        jk_ht_free(&v.claims, NULL);
        return JK_ERR;
    }

    if (jk_ht_init(&pr.t, 64) != 0) {
        jk_ht_free(&v.claims, NULL);
        jk_ht_free(&v.floors, NULL);
        return JK_ERR;
    }

    if (use_redis) {
        pr.c = jk_redis_connect(o);
        if (pr.c == NULL
            || jk_scan(pr.c, "juki:{*}:trimmed", "string", jk_pv_trimmed,
                       &pr) != 0)
        {
            goto done;
        }
    }

    pg = jk_pg_connect(o);
    if (pg == NULL) {
        goto done;
    }

    res = PQexec(pg, "SELECT id, note FROM juki_checkpoints ORDER BY id");
    if (jk_pg_ok(res, "reading the checkpoints") != 0) {
        goto done;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        long long  id;

        s = PQgetvalue(res, i, 0);
        id = strtoll(s, NULL, 10);
        if (jk_pv_note(&v, PQgetvalue(res, i, 1), PQgetlength(res, i, 1),
                       id, i == n - 1) != 0)
        {
            goto done;
        }
    }

    if (n == 0) {
        jk_pv_break(&v, "the archive holds no checkpoint");
    }

    if (o->checkpoint && jk_pv_file(&v, o->checkpoint) != 0) {
        goto done;
    }

    if (jk_pv_retention(&v, pg) != 0) {
        goto done;
    }

    if (jk_pv_rows(&v, pg, &nrows, &nwriters) != 0) {
        goto done;
    }

    jk_pv_unmet(&v);

    if (pr.c) {
        jk_pv_redis_check(&v, &pr);
    }

    if (v.breaks > JK_PV_SHOWN) {
        jk_err("verify: %llu breaks in all (%d shown)",
               (unsigned long long) v.breaks, JK_PV_SHOWN);
    }

    if (v.breaks) {
        rc = JK_FAIL;
        goto done;
    }

    if (!quiet) {
        printf("ok: %llu archived records in %zu lists, %zu writers; %llu"
               " signed checkpoints reproduced%s", (unsigned long long) nrows,
               v.nlists, nwriters, (unsigned long long) v.nckpt,
               pr.c ? "; Redis's trimmed counters covered" : "");
        if (v.nret) {
            printf("; %llu retention records", (unsigned long long) v.nret);
        }
        printf("\n");
    }

    rc = JK_OK;

done:

    PQclear(res);
    PQfinish(pg);
    if (pr.c) {
        redisFree(pr.c);
    }
    jk_ht_free(&pr.t, NULL);
    free(v.lists);
    jk_ht_free(&v.claims, jk_claim_free);
    jk_ht_free(&v.floors, jk_claim_free);

    return rc;
}
