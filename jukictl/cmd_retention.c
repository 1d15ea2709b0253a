/*
 * jukictl retention: drops the archive's monthly partitions that lie
 * wholly past the legal period (docs/audit.md, "Retention"; docs/
 * jukictl.md, "retention").
 *
 * Under the archiver's lock, and only when the whole archive verifies
 * against the signing key's public half: for each partition, oldest
 * first, one transaction DETACHes it, checks that what it holds is, for
 * every list and every writer, the contiguous range right after what was
 * dropped before (nothing of it left behind in the kept partitions),
 * signs a retention record naming those ranges with the hashes at their
 * ends and stores it with the floors; a second transaction DROPs the
 * detached table and marks the record done.  Killed between the two, a
 * rerun drops what its records name first.  Never a DELETE.
 */

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "jk.h"


#define JK_RET_FLOOR_MONTHS  12     /* less needs --force */
#define JK_RET_PART_LEN      19     /* juki_records_YYYYMM */


typedef struct {
    const unsigned char *raw;
    size_t               len;
    const char          *list;      /* NUL-ended, in the result */
    uint64_t             idx;
    jk_a3_t              r;
} jk_rrow_t;


/* AGE: Ny, Nmo or Nd */

static int
jk_ret_age(const char *s, uint64_t *y, uint64_t *mo, uint64_t *d)
{
    size_t    n;
    uint64_t  v;

    n = strspn(s, "0123456789");
    if (n == 0 || n > 6 || jk_parse_u64(s, n, &v) != 0 || v == 0) {
        return -1;
    }

    *y = *mo = *d = 0;

    if (strcmp(s + n, "y") == 0) {
        *y = v;
    } else if (strcmp(s + n, "mo") == 0) {
        *mo = v;
    } else if (strcmp(s + n, "d") == 0) {
        *d = v;
    } else {
        return -1;
    }

    return 0;
}


static int
jk_ret_part_ok(const char *s)
{
    return strlen(s) == JK_RET_PART_LEN
           && strncmp(s, "juki_records_", 13) == 0
           && strspn(s + 13, "0123456789") == 6;
}


static int
jk_ret_exec1(PGconn *pg, const char *sql, const char *p1, const char *what)
{
    int        rc;
    PGresult  *res;

    res = PQexecParams(pg, sql, p1 ? 1 : 0, NULL, p1 ? &p1 : NULL, NULL,
                       NULL, 0);
    rc = jk_pg_ok(res, what);
    PQclear(res);

    return rc;
}


/* the second half: DROP TABLE of a detached partition, the record done */

static int
jk_ret_drop(PGconn *pg, const char *id, const char *part)
{
    char  sql[64];

    if (!jk_ret_part_ok(part)) {
        jk_err("retention: PostgreSQL: a malformed partition name in"
               " juki_retention");
        return -1;
    }

    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", part);

    if (jk_pg_exec(pg, "BEGIN") != 0) {
        return -1;
    }

    if (jk_pg_exec(pg, sql) != 0
        || jk_ret_exec1(pg, "UPDATE juki_retention SET dropped = now()"
                            " WHERE id = $1", id, "marking dropped") != 0
        || jk_pg_exec(pg, "COMMIT") != 0)
    {
        jk_pg_exec(pg, "ROLLBACK");
        return -1;
    }

    return 0;
}


static int
jk_rrow_list_cmp(const void *a, const void *b)
{
    const jk_rrow_t  *x = *(jk_rrow_t * const *) a;
    const jk_rrow_t  *y = *(jk_rrow_t * const *) b;
    int               c;

    c = strcmp(x->list, y->list);
    if (c) {
        return c;
    }

    return (x->idx > y->idx) - (x->idx < y->idx);
}


static int
jk_rrow_writer_cmp(const void *a, const void *b)
{
    const jk_rrow_t  *x = *(jk_rrow_t * const *) a;
    const jk_rrow_t  *y = *(jk_rrow_t * const *) b;
    int               c;

    c = memcmp(x->r.writer, y->r.writer, 8);
    if (c) {
        return c;
    }

    return (x->r.seq > y->r.seq) - (x->r.seq < y->r.seq);
}


static uint64_t
jk_ret_be64(const char *p)
{
    int       i;
    uint64_t  x = 0;

    for (i = 0; i < 8; i++) {
        x = (x << 8) | (unsigned char) p[i];
    }

    return x;
}


/*
 * The floor of a list ('L', its name) or writer ('W', 8 bytes): the
 * first index or seq not dropped and the chain's hash before it; 0 and
 * zeros when nothing was dropped.
 */

static int
jk_ret_floor(PGconn *pg, int kind, const void *name, size_t n,
    uint64_t *next, unsigned char hash[32])
{
    int          len[2], fmt[2];
    char         k[2];
    const char  *v[2];
    PGresult    *res;

    k[0] = (char) kind;
    k[1] = '\0';
    v[0] = k; len[0] = 0; fmt[0] = 0;
    v[1] = name; len[1] = (int) n; fmt[1] = 1;

    res = PQexecPrepared(pg, "jk_ret_floor", 2, v, len, fmt, 1);
    if (jk_pg_ok(res, "reading the floors") != 0) {
        PQclear(res);
        return -1;
    }

    *next = 0;
    memset(hash, 0, 32);

    if (PQntuples(res) == 1) {
        if (PQgetlength(res, 0, 0) != 8 || PQgetlength(res, 0, 1) != 32) {
            jk_err("retention: PostgreSQL: a malformed juki_retained row");
            PQclear(res);
            return -1;
        }
        *next = jk_ret_be64(PQgetvalue(res, 0, 0));
        memcpy(hash, PQgetvalue(res, 0, 1), 32);
    }

    PQclear(res);

    return 0;
}


static int
jk_ret_floor_put(PGconn *pg, int kind, const void *name, size_t n,
    uint64_t next, const unsigned char hash[32])
{
    int          rc, len[4], fmt[4];
    char         k[2], num[24];
    const char  *v[4];
    PGresult    *res;

    k[0] = (char) kind;
    k[1] = '\0';
    snprintf(num, sizeof(num), "%llu", (unsigned long long) next);
    v[0] = k; len[0] = 0; fmt[0] = 0;
    v[1] = name; len[1] = (int) n; fmt[1] = 1;
    v[2] = num; len[2] = 0; fmt[2] = 0;
    v[3] = (const char *) hash; len[3] = 32; fmt[3] = 1;

    res = PQexecPrepared(pg, "jk_ret_floor_put", 4, v, len, fmt, 0);
    rc = jk_pg_ok(res, "storing the floors");
    PQclear(res);

    return rc;
}


/* the smallest kept index of a list, or seq of a writer: UINT64_MAX */

static int
jk_ret_min_kept(PGconn *pg, const char *stmt, const void *name, size_t n,
    int binary, uint64_t *min)
{
    int          len = (int) n, fmt = binary;
    const char  *v = name;
    PGresult    *res;

    res = PQexecPrepared(pg, stmt, 1, &v, &len, &fmt, 1);
    if (jk_pg_ok(res, "reading what is kept") != 0) {
        PQclear(res);
        return -1;
    }

    *min = UINT64_MAX;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        if (PQgetlength(res, 0, 0) != 8) {
            PQclear(res);
            jk_err("retention: PostgreSQL: a malformed minimum");
            return -1;
        }
        *min = jk_ret_be64(PQgetvalue(res, 0, 0));
    }

    PQclear(res);

    return 0;
}


/*
 * Inside the transaction that detached part: its rows, the ranges, the
 * record signed and stored.  0, or -1 (said): nothing of it stays.
 */

static int
jk_ret_record(PGconn *pg, EVP_PKEY *sk, const char *origin,
    const char *part, uint64_t *nrows, size_t *nlists)
{
    int             rc = -1, ok;
    char            sql[96], b64[48], hex[17], ms[24];
    size_t          i, j, n, k;
    uint64_t        next, min;
    const char     *err, *v[3];
    int             len[3], fmt[3];
    PGresult       *res, *ins;
    jk_buf_t        body = { NULL, 0, 0 }, note = { NULL, 0, 0 };
    jk_rrow_t      *rows = NULL, **sorted = NULL, *x;
    unsigned char   hash[32];

    snprintf(sql, sizeof(sql), "SELECT list, idx, raw FROM %s", part);

    res = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 1);
    if (jk_pg_ok(res, "reading the partition") != 0) {
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

    for (i = 0; i < n; i++) {
        x = &rows[i];
        x->list = PQgetvalue(res, (int) i, 0);
        x->raw = (const unsigned char *) PQgetvalue(res, (int) i, 2);
        x->len = (size_t) PQgetlength(res, (int) i, 2);

        if (PQgetlength(res, (int) i, 1) != 8
            || strlen(x->list) == 0 || strlen(x->list) > JK_AGENCY_MAX)
        {
            jk_err("retention: %s: a malformed row", part);
            goto done;
        }
        x->idx = jk_ret_be64(PQgetvalue(res, (int) i, 1));

        err = jk_a3_decode(x->raw, x->len, &x->r);
        if (err) {
            jk_err("retention: %s: list %s row %llu does not decode: %s",
                   part, jk_safe(x->list, strlen(x->list)),
                   (unsigned long long) x->idx, err);
            goto done;
        }
        sorted[i] = x;
    }

    snprintf(ms, sizeof(ms), "%llu", (unsigned long long) jk_now_ms());

    if (jk_buf_fmt(&body, "%s\njuki-archive retention v1\ntime %s\n"
                   "month %.4s-%.2s\n", origin, ms, part + 13, part + 17)
        != 0)
    {
        goto done;
    }

    /* every list: the range right after its floor, nothing of it kept */

    *nlists = 0;
    if (n) {
        qsort(sorted, n, sizeof(sorted[0]), jk_rrow_list_cmp);
    }

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && strcmp(sorted[j]->list, sorted[i]->list)
                                 == 0; j++)
        {
            /* void */
        }

        x = sorted[i];
        if (jk_ret_floor(pg, 'L', x->list, strlen(x->list), &next, hash)
            != 0
            || jk_ret_min_kept(pg, "jk_ret_min_idx", x->list, 0, 0, &min)
               != 0)
        {
            goto done;
        }

        if (x->idx != next || sorted[j - 1]->idx - x->idx != j - i - 1
            || min <= sorted[j - 1]->idx)
        {
            jk_err("retention: %s: list %s: rows %llu..%llu are not the"
                   " oldest of the list (%llu is its first not dropped;"
                   " %s): nothing dropped", part,
                   jk_safe(x->list, strlen(x->list)),
                   (unsigned long long) x->idx,
                   (unsigned long long) sorted[j - 1]->idx,
                   (unsigned long long) next,
                   min <= sorted[j - 1]->idx ? "older rows kept elsewhere"
                                             : "a gap");
            goto done;
        }

        for (k = i; k < j; k++) {
            if (jk_list_hash(hash, sorted[k]->raw, sorted[k]->len, hash)
                != 0)
            {
                goto done;
            }
        }

        jk_b64(hash, 32, b64);
        if (jk_buf_fmt(&body, "list %s %llu %llu %llu %s\n", x->list,
                       (unsigned long long) x->idx,
                       (unsigned long long) sorted[j - 1]->idx,
                       (unsigned long long) (j - i), b64) != 0
            || jk_ret_floor_put(pg, 'L', x->list, strlen(x->list),
                                sorted[j - 1]->idx + 1, hash) != 0)
        {
            goto done;
        }
        (*nlists)++;
    }

    /* every writer: the same, its public hash chain */

    if (n) {
        qsort(sorted, n, sizeof(sorted[0]), jk_rrow_writer_cmp);
    }

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && memcmp(sorted[j]->r.writer,
                                        sorted[i]->r.writer, 8) == 0; j++)
        {
            /* void */
        }

        x = sorted[i];
        jk_hex(x->r.writer, 8, hex);

        if (jk_ret_floor(pg, 'W', x->r.writer, 8, &next, hash) != 0
            || jk_ret_min_kept(pg, "jk_ret_min_seq", x->r.writer, 8, 1,
                               &min) != 0)
        {
            goto done;
        }

        ok = x->r.seq == next && sorted[j - 1]->r.seq - x->r.seq == j - i - 1
             && min > sorted[j - 1]->r.seq;
        if (!ok) {
            jk_err("retention: %s: writer %s: seq %llu..%llu are not the"
                   " oldest of its chain (%llu is its first not dropped):"
                   " nothing dropped", part, hex,
                   (unsigned long long) x->r.seq,
                   (unsigned long long) sorted[j - 1]->r.seq,
                   (unsigned long long) next);
            goto done;
        }

        for (k = i; k < j; k++) {
            if (jk_pub_hash(hash, sorted[k]->list, strlen(sorted[k]->list),
                            sorted[k]->raw, sorted[k]->len, hash) != 0)
            {
                goto done;
            }
        }

        jk_b64(hash, 32, b64);
        if (jk_buf_fmt(&body, "writer %s %llu %llu %s\n", hex,
                       (unsigned long long) x->r.seq,
                       (unsigned long long) sorted[j - 1]->r.seq, b64) != 0
            || jk_ret_floor_put(pg, 'W', x->r.writer, 8,
                                sorted[j - 1]->r.seq + 1, hash) != 0)
        {
            goto done;
        }
    }

    if (jk_note_sign(sk, origin, body.data, body.len, &note) != 0
        || jk_buf_append(&note, "\0", 1) != 0)
    {
        goto done;
    }

    v[0] = ms; len[0] = 0; fmt[0] = 0;
    v[1] = part; len[1] = 0; fmt[1] = 0;
    v[2] = note.data; len[2] = 0; fmt[2] = 0;

    ins = PQexecPrepared(pg, "jk_ret_put", 3, v, len, fmt, 0);
    if (jk_pg_ok(ins, "storing the retention record") != 0) {
        PQclear(ins);
        goto done;
    }
    PQclear(ins);

    *nrows = n;
    rc = 0;

done:

    jk_buf_free(&body);
    jk_buf_free(&note);
    free(sorted);
    free(rows);
    PQclear(res);

    return rc;
}


static const struct {
    const char  *name;
    const char  *sql;
    int          n;
} jk_ret_stmts[] = {
    { "jk_ret_parts",
      "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
      " ON c.oid = i.inhrelid"
      " WHERE i.inhparent = 'juki_records'::regclass"
      " AND c.relname ~ '^juki_records_[0-9]{6}$'"
      " AND to_timestamp(substr(c.relname, 14), 'YYYYMM')"
      " + interval '1 month' <= now() - $1::interval"
      " ORDER BY c.relname", 1 },
    { "jk_ret_floor",
      "SELECT next, hash FROM juki_retained WHERE kind = $1 AND name = $2",
      2 },
    { "jk_ret_floor_put",
      "INSERT INTO juki_retained (kind, name, next, hash)"
      " VALUES ($1, $2, $3, $4) ON CONFLICT (kind, name)"
      " DO UPDATE SET next = EXCLUDED.next, hash = EXCLUDED.hash", 4 },
    { "jk_ret_min_idx",
      "SELECT min(idx) FROM juki_records WHERE list = $1", 1 },
    { "jk_ret_min_seq",
      "SELECT min(seq) FROM juki_records WHERE writer = $1", 1 },
    { "jk_ret_put",
      "INSERT INTO juki_retention (made, part, note)"
      " VALUES (to_timestamp($1::bigint / 1000.0), $2, $3)", 3 },
    { NULL, NULL, 0 }
};


int
jk_cmd_retention(const jk_opts_t *o)
{
    int          rc = JK_ERR, i, n;
    char         age[96], sql[96], part[JK_RET_PART_LEN + 1];
    size_t       nlists;
    uint64_t     y, mo, d, nrows, total = 0, parts = 0;
    PGconn      *pg = NULL;
    PGresult    *res = NULL;
    EVP_PKEY    *sk = NULL;
    const char  *origin, *p;

    origin = jk_origin(o);

    if (!jk_note_name_ok(origin)) {
        return jk_usage_err("retention: --origin: a key name of printable"
                            " ASCII, no space or '+'");
    }

    if (o->older_than == NULL
        || jk_ret_age(o->older_than, &y, &mo, &d) != 0)
    {
        return jk_usage_err("retention needs --older-than AGE: Ny, Nmo or"
                            " Nd (7y, 84mo, 2557d)");
    }

    if (y * 12 + mo < JK_RET_FLOOR_MONTHS && d < 365 && !o->force) {
        return jk_usage_err("retention: --older-than %s is under a year"
                            " (the law keeps records 5-7 years; a typo of"
                            " 7y?): give --force to mean it",
                            jk_safe(o->older_than, strlen(o->older_than)));
    }

    if (o->signing_key == NULL) {
        return jk_usage_err("retention needs --signing-key PEM (Ed25519,"
                            " PKCS#8; the archive's)");
    }

    if (o->nkeys) {
        return jk_usage_err("retention takes no --key: it reads only"
                            " PostgreSQL");
    }

    snprintf(age, sizeof(age), "%llu years %llu months %llu days",
             (unsigned long long) y, (unsigned long long) mo,
             (unsigned long long) d);

    sk = jk_sign_key_load(o->signing_key);
    if (sk == NULL) {
        goto done;
    }

    pg = jk_pg_connect(o);
    if (pg == NULL || jk_pg_schema(pg) != 0) {
        goto done;
    }

    for (i = 0; jk_ret_stmts[i].name; i++) {
        res = PQprepare(pg, jk_ret_stmts[i].name, jk_ret_stmts[i].sql,
                        jk_ret_stmts[i].n, NULL);
        if (jk_pg_ok(res, "prepare") != 0) {
            goto done;
        }
        PQclear(res);
        res = NULL;
    }

    res = PQexec(pg, "SELECT pg_try_advisory_lock(" JK_PG_LOCK_ARCHIVE
                     ")");
    if (jk_pg_ok(res, "lock") != 0) {
        goto done;
    }
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        jk_err("retention: an archiver or retention runs on this"
               " database");
        goto done;
    }
    PQclear(res);

    /* first what a killed run detached and recorded but did not drop */

    res = PQexec(pg, "SELECT id, part FROM juki_retention"
                     " WHERE dropped IS NULL ORDER BY id");
    if (jk_pg_ok(res, "reading the retention records") != 0) {
        goto done;
    }
    n = PQntuples(res);
    for (i = 0; i < n; i++) {
        p = PQgetvalue(res, i, 1);
        if (jk_ret_drop(pg, PQgetvalue(res, i, 0), p) != 0) {
            goto done;
        }
        printf("dropped: %s (detached by an earlier run)\n", p);
    }
    PQclear(res);
    res = NULL;

    /* nothing is dropped from an archive that does not verify */

    rc = jk_verify_archive(o, sk, 0, 1);
    if (rc != JK_OK) {
        if (rc == JK_FAIL) {
            jk_err("retention: the archive does not verify (above):"
                   " nothing dropped");
        }
        goto done;
    }
    rc = JK_ERR;

    p = age;
    res = PQexecPrepared(pg, "jk_ret_parts", 1, &p, NULL, NULL, 0);
    if (jk_pg_ok(res, "listing the partitions") != 0) {
        goto done;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        p = PQgetvalue(res, i, 0);
        if (!jk_ret_part_ok(p)) {
            jk_err("retention: PostgreSQL: a malformed partition name");
            goto done;
        }
        memcpy(part, p, sizeof(part));

        if (jk_pg_exec(pg, "BEGIN ISOLATION LEVEL SERIALIZABLE") != 0) {
            goto done;
        }

        snprintf(sql, sizeof(sql), "ALTER TABLE juki_records DETACH"
                 " PARTITION %s", part);

        if (jk_pg_exec(pg, sql) != 0
            || jk_ret_record(pg, sk, origin, part, &nrows, &nlists) != 0
            || jk_pg_exec(pg, "COMMIT") != 0)
        {
            jk_pg_exec(pg, "ROLLBACK");
            rc = JK_FAIL;
            goto done;
        }

        /* for t/112: a kill between the detach and the drop */
        p = getenv("JUKI_TEST_RETENTION_KILL");
        if (p && strcmp(p, "detached") == 0) {
            raise(SIGKILL);
        }

        snprintf(sql, sizeof(sql), "SELECT id FROM juki_retention"
                 " WHERE part = '%s' AND dropped IS NULL", part);
        {
            PGresult  *r2 = PQexec(pg, sql);

            if (jk_pg_ok(r2, "reading the record") != 0
                || PQntuples(r2) != 1
                || jk_ret_drop(pg, PQgetvalue(r2, 0, 0), part) != 0)
            {
                if (r2 && PQntuples(r2) != 1) {
                    jk_err("retention: %s: no record to drop it under",
                           part);
                }
                PQclear(r2);
                goto done;
            }
            PQclear(r2);
        }

        printf("dropped: %s (%llu records in %zu lists)\n", part,
               (unsigned long long) nrows, nlists);
        total += nrows;
        parts++;
    }

    printf("retention: %llu partitions, %llu records dropped, each under a"
           " signed record\n", (unsigned long long) parts,
           (unsigned long long) total);
    rc = JK_OK;

done:

    PQclear(res);
    PQfinish(pg);
    EVP_PKEY_free(sk);

    return rc;
}
