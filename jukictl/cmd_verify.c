/*
 * jukictl verify: checks every A3 record of every juki:{*}:audit list
 * (docs/audit.md, "Verification").
 *
 * The read cut (jk_a3_read()) takes TIME, the trimmed counters and the
 * lengths of all lists in one MULTI/EXEC, then reads each list up to its
 * length.  Every element is decoded exactly; the records are grouped by
 * writer and sorted by seq: 0 (the W record, which names the key), 1,
 * 2 ... without gap or repeat, each mac16 verified with the previous
 * record's as prev16.  Inside one list a writer's records must appear in
 * seq order (a writer's calls run in order): two swapped elements are
 * caught there, a record moved to another list by its mac (the agency
 * is in it).  Then decisions: a gateway-decided A record's decision byte
 * equals its gdecision; a Redis-decided one's equals its C record's,
 * which follows it in the same list, once.  A Redis-decided A with no C
 * that passed (none, or one not checkable) is "unconfirmed": counted,
 * not a break; report and disclose count it the same way.
 */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "jk.h"


#define JK_BREAKS_SHOWN  20


static void
jk_break(jk_verify_t *v, jk_vrec_t *x, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
jk_break(jk_verify_t *v, jk_vrec_t *x, const char *fmt, ...)
{
    char     w[17], what[256];
    va_list  ap;

    x->bad = 1;

    if (++v->breaks > JK_BREAKS_SHOWN) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);

    jk_hex(x->r.writer, 8, w);

    if (x->r.type == 0) {
        /* not decoded: nothing of it is known */
        fprintf(stderr, "jukictl: %s: %s element %llu: %s\n", v->cmd,
                jk_safe(v->set.list[x->list].name,
                        strlen(v->set.list[x->list].name)),
                (unsigned long long) x->idx, what);
        return;
    }

    fprintf(stderr, "jukictl: %s: %s element %llu writer %s seq %llu:"
            " %s\n", v->cmd,
            jk_safe(v->set.list[x->list].name,
                    strlen(v->set.list[x->list].name)),
            (unsigned long long) x->idx, w, (unsigned long long) x->r.seq,
            what);
}


static int
jk_vrec_cmp(const void *a, const void *b)
{
    const jk_vrec_t  *x = *(jk_vrec_t * const *) a;
    const jk_vrec_t  *y = *(jk_vrec_t * const *) b;

    return jk_a3_chain_cmp(&x->r, x->list, x->pos, &y->r, y->list, y->pos);
}


static int
jk_is_none(const jk_verify_t *v, size_t list)
{
    const jk_a3_list_t  *l = &v->set.list[list];

    return l->alen == 1 && l->agency[0] == '_';
}


void
jk_akey(const unsigned char writer[8], uint64_t seq, char key[16])
{
    memcpy(key, writer, 8);
    memcpy(key + 8, &seq, 8);
}


/* what a record must satisfy by its type and list */

static void
jk_check_place(jk_verify_t *v, jk_vrec_t *x)
{
    char  msg[160];

    if (jk_a3_place(&x->r, jk_is_none(v, x->list), msg, sizeof(msg)) != 0)
    {
        jk_break(v, x, "%s", msg);
    }
}


/*
 * --postgres: a completion whose audit record was trimmed from Redis
 * finds it in the archive by (writer, seq): an A record Redis decided,
 * earlier in the same list, with the same decision.  0 when it is (a
 * second completion across the stores is the archiver's check, not
 * this one's); 1 when it is not there (left out as uncheckable, fail
 * closed), or a break named when it contradicts; -1 on an error.
 */

static int
jk_completion_archived(jk_verify_t *v, jk_vrec_t *x)
{
    int                  rc;
    size_t               llen;
    jk_a3_t              a;
    PGresult            *res = NULL;
    const jk_a3_list_t  *l = &v->set.list[x->list];

    rc = jk_pg_seq(v->pg, x->r.awriter, x->r.aseq, &res, &a);

    if (rc == 0) {
        llen = (size_t) PQgetlength(res, 0, 0);

        if (a.type != 'A' || a.gdecision != 0 || llen != l->alen
            || memcmp(PQgetvalue(res, 0, 0), l->agency, llen) != 0
            || jk_pg_u64(PQgetvalue(res, 0, 1)) >= x->idx)
        {
            jk_break(v, x, "completion of seq %llu: the archive holds no"
                     " such audit record before it in this list",
                     (unsigned long long) x->r.aseq);

        } else if (a.decision != x->r.decision) {
            jk_break(v, x, "decision flip: the archived audit record"
                     " (seq %llu) says %s", (unsigned long long) x->r.aseq,
                     jk_a3_code_name(a.decision));
        }
    }

    PQclear(res);

    return rc;
}


static void
jk_check_completions(jk_verify_t *v, jk_vrec_t *recs, size_t n,
    jk_ht_t *as)
{
    size_t      i;
    char        key[16];
    jk_hent_t  *e;
    jk_vrec_t  *x, *a;

    for (i = 0; i < n; i++) {
        x = &recs[i];

        if (x->bad || x->r.type != 'C') {
            continue;
        }

        jk_akey(x->r.awriter, x->r.aseq, key);
        e = jk_ht_find(as, key, 16);
        a = e ? e->ptr : NULL;

        if (a == NULL && v->set.list[x->list].trimmed) {
            /* its audit record may be archived: the archive checks it */
            if (v->pg == NULL || jk_completion_archived(v, x) != 0) {
                v->uncheckable++;
            }
            continue;
        }

        if (a == NULL || a->list != x->list || a->pos >= x->pos) {
            jk_break(v, x, "completion of seq %llu: no such audit record"
                     " before it in this list",
                     (unsigned long long) x->r.aseq);
            continue;
        }

        if (a->r.gdecision != 0) {
            jk_break(v, x, "completion of seq %llu, which the gateway"
                     " decided", (unsigned long long) x->r.aseq);
            continue;
        }

        if (++a->nconf > 1) {
            jk_break(v, x, "second completion of seq %llu",
                     (unsigned long long) x->r.aseq);
            continue;
        }

        if (a->r.decision == x->r.decision) {
            a->conf = x;

        } else {
            jk_break(v, a, "decision flip: decision %s, its completion"
                     " (seq %llu) says %s", jk_a3_code_name(a->r.decision),
                     (unsigned long long) x->r.seq,
                     jk_a3_code_name(x->r.decision));
        }
    }
}


/*
 * --postgres: a writer whose first record in Redis is past its W record
 * continues its chain from the archive: its key by the kid of its W row,
 * prev16 the mac of its row before x.  0; 1 when the archive does not
 * hold them (the rules of Redis alone apply); -1 on an error, said.
 */

static int
jk_chain_archived(jk_verify_t *v, const jk_vrec_t *x, const jk_key_t **k,
    unsigned char prev[16])
{
    int        rc;
    char       hex[17];
    jk_str_t   kid;
    jk_a3_t    w, p;
    PGresult  *wres = NULL, *pres = NULL;

    if (x->r.seq == 0) {
        return 1;
    }

    rc = jk_pg_seq(v->pg, x->r.writer, 0, &wres, &w);
    if (rc == 0 && w.type != 'W') {
        rc = 1;
    }

    if (rc == 0) {
        jk_hex(w.kid, 8, hex);
        kid.p = hex;
        kid.len = 16;
        *k = jk_keys_find(&v->kr, &kid);
        rc = *k ? jk_pg_seq(v->pg, x->r.writer, x->r.seq - 1, &pres, &p)
                : 1;
    }

    if (rc == 0) {
        memcpy(prev, p.mac, 16);
    }

    PQclear(wres);
    PQclear(pres);

    return rc;
}


/* one writer's records, sorted by seq; -1 when a mac cannot be computed */

static int
jk_check_chain(jk_verify_t *v, jk_vrec_t **g, size_t n, uint64_t *last,
    uint64_t *uncheckable, uint64_t *unkeyed)
{
    char             hex[17];
    size_t           i, j;
    uint64_t         maxts = 0;
    jk_str_t         kid;
    jk_vrec_t       *x;
    unsigned char    prev[16], mac[16];
    const jk_key_t  *k = NULL;
    const jk_a3_list_t  *l;

    for (j = 0; j < v->set.n; j++) {
        last[j] = UINT64_MAX;
    }

    x = g[0];

    if (v->pg && (x->r.seq != 0 || x->r.type != 'W')) {
        switch (jk_chain_archived(v, x, &k, prev)) {
        case -1:
            return -1;
        case 0:
            goto chain;
        }
    }

    if (x->r.seq != 0 || x->r.type != 'W') {
        if (v->set.none_trimmed) {
            /*
             * W records live only in juki:{_}:audit: only when its head
             * was archived may this writer's W be gone with it, and then
             * nothing names its key.  Trimming of another list says
             * nothing about W records.  A record that already failed
             * a check stays a failure.
             */
            for (i = 0; i < n; i++) {
                if (!g[i]->bad) {
                    g[i]->uncheckable = 1;
                    (*uncheckable)++;
                }
                g[i]->bad = 1;
            }
            return 0;
        }
        jk_break(v, x, "no W record: seq 0 .. %llu missing",
                 (unsigned long long) x->r.seq - (x->r.type == 'W' ? 0 : 1));
        *unkeyed += n;
        for (i = 0; i < n; i++) {
            g[i]->bad = 1;
        }
        return 0;
    }

    jk_hex(x->r.kid, 8, hex);
    kid.p = hex;
    kid.len = 16;
    k = jk_keys_find(&v->kr, &kid);

    if (k == NULL) {
        jk_break(v, x, "unknown kid %s", hex);
        *unkeyed += n;
        for (i = 0; i < n; i++) {
            g[i]->bad = 1;
        }
        return 0;
    }

    memset(prev, 0, 16);

chain:

    for (i = 0; i < n; i++) {
        x = g[i];
        l = &v->set.list[x->list];

        if (i > 0) {
            if (x->r.seq == g[i - 1]->r.seq) {
                jk_break(v, x, "seq %llu repeated",
                         (unsigned long long) x->r.seq);

            } else if (x->r.seq != g[i - 1]->r.seq + 1) {
                jk_break(v, x, "seq gap: %llu..%llu missing (deleted?)",
                         (unsigned long long) g[i - 1]->r.seq + 1,
                         (unsigned long long) x->r.seq - 1);
                /* the chain resumes from this record */
                memcpy(prev, x->r.mac, 16);
                goto order;
            }

            if (x->r.type == 'W') {
                jk_break(v, x, "a second W record");
            }
        }

        if (jk_a3_mac(k, l->agency, l->alen, prev, x->r.p, x->r.body_len,
                      &v->scratch, mac) != 0)
        {
            /* out of memory or OpenSSL failed (said): no verdict */
            return -1;
        }

        if (memcmp(mac, x->r.mac, 16) != 0) {
            jk_break(v, x, "bad mac (edited, forged, moved or reordered)");
        }

        memcpy(prev, x->r.mac, 16);

    order:

        if (last[x->list] != UINT64_MAX && x->pos < last[x->list]) {
            jk_break(v, x, "out of order in its list (before seq %llu of"
                     " its writer): swapped?",
                     (unsigned long long) g[i - 1]->r.seq);
        }
        last[x->list] = x->pos;

        if (x->r.ts > v->set.now_ms + v->skew) {
            jk_break(v, x, "ts %llu ms ahead of Redis TIME",
                     (unsigned long long) (x->r.ts - v->set.now_ms));
        }

        if (x->r.ts + v->skew < maxts) {
            jk_break(v, x, "ts %llu ms before its writer's earlier record",
                     (unsigned long long) (maxts - x->r.ts));
        }

        if (x->r.ts > maxts) {
            maxts = x->r.ts;
        }
    }

    return 0;
}


/*
 * Reads every list (the cut) and checks every record; breaks are named
 * on stderr (the first JK_BREAKS_SHOWN), counted in v->breaks, and the
 * records marked bad (v->failed counts them; v->uncheckable those marked
 * only for want of their W).  JK_ERR on usage errors, Redis errors, and
 * when a mac cannot be computed.
 */

int
jk_verify_run(const jk_opts_t *o, jk_verify_t *v)
{
    return jk_verify_run_pg(o, v, NULL);
}


int
jk_verify_run_pg(const jk_opts_t *o, jk_verify_t *v, PGconn *pg)
{
    int              n;
    char             key[16];
    size_t           i, j, k;
    uint64_t         unkeyed = 0, *last = NULL;
    const char      *err;
    jk_hent_t       *e;
    jk_vrec_t       *x, **sorted = NULL;
    redisReply      *el;
    jk_a3_list_t    *l;

    memset(v, 0, sizeof(*v));
    v->cmd = o->command;
    v->pg = pg;

    if (jk_skew_opt(o, &v->skew) != JK_OK) {
        return JK_ERR;
    }

    if (jk_ht_init(&v->as, 1024) != 0) {
        return JK_ERR;
    }

    n = jk_keys_load(o, &v->kr);
    if (n < 0) {
        return JK_ERR;
    }

    if (n == 0) {
        jk_err("%s needs the audit key (--key PATH or JUKI_AUDIT_KEY)",
               o->command);
        return JK_ERR;
    }

    v->c = jk_redis_connect(o);
    if (v->c == NULL || jk_a3_read(v->c, &v->set) != 0) {
        return JK_ERR;
    }

    for (i = 0; i < v->set.n; i++) {
        v->nrec += v->set.list[i].llen;
    }

    v->recs = calloc(v->nrec ? v->nrec : 1, sizeof(v->recs[0]));
    sorted = calloc(v->nrec ? v->nrec : 1, sizeof(sorted[0]));
    last = calloc(v->set.n ? v->set.n : 1, sizeof(last[0]));

    if (v->recs == NULL || sorted == NULL || last == NULL) {
        jk_err("out of memory");
        goto failed;
    }

    /* decode every element */

    k = 0;

    for (i = 0; i < v->set.n; i++) {
        l = &v->set.list[i];

        for (j = 0; j < l->llen; j++) {
            x = &v->recs[k++];
            el = l->el[j];
            x->list = i;
            x->pos = j;
            x->idx = l->trimmed + j;

            err = jk_a3_decode((const unsigned char *) el->str, el->len,
                               &x->r);
            if (err) {
                x->r.type = 0;
                jk_break(v, x, "%s", err);
                continue;
            }

            v->cnt[x->r.type]++;
            jk_check_place(v, x);

            if (x->r.type == 'A') {
                jk_akey(x->r.writer, x->r.seq, key);
                e = jk_ht_get(&v->as, key, 16);
                if (e == NULL) {
                    goto failed;
                }
                if (e->ptr == NULL) {
                    e->ptr = x;
                }
            }
        }
    }

    jk_check_completions(v, v->recs, v->nrec, &v->as);

    /* chains */

    n = 0;
    for (i = 0; i < v->nrec; i++) {
        if (v->recs[i].r.type) {
            sorted[n++] = &v->recs[i];
        }
    }

    if (n) {
        qsort(sorted, (size_t) n, sizeof(sorted[0]), jk_vrec_cmp);
    }

    for (i = 0; i < (size_t) n; i = j) {
        for (j = i + 1; j < (size_t) n
             && memcmp(sorted[j]->r.writer, sorted[i]->r.writer, 8) == 0;
             j++)
        {
            /* void */
        }

        v->nw++;
        if (jk_check_chain(v, sorted + i, j - i, last, &v->uncheckable,
                           &unkeyed) != 0)
        {
            goto failed;
        }
    }

    for (i = 0; i < v->nrec; i++) {
        x = &v->recs[i];
        /* as report and disclose: a completion left out confirms nothing */
        if (x->r.type == 'A' && x->r.gdecision == 0 && !x->bad
            && (x->conf == NULL || x->conf->bad))
        {
            v->unconfirmed++;
        }
        if (x->bad && !x->uncheckable) {
            v->failed++;
        }
    }

    if (v->breaks > JK_BREAKS_SHOWN) {
        jk_err("%s: %llu breaks in all (%d shown)", o->command,
               (unsigned long long) v->breaks, JK_BREAKS_SHOWN);
    }

    free(sorted);
    free(last);

    return JK_OK;

failed:

    free(sorted);
    free(last);

    return JK_ERR;
}


void
jk_verify_free(jk_verify_t *v)
{
    free(v->recs);
    v->recs = NULL;
    jk_ht_free(&v->as, NULL);
    jk_a3_set_free(&v->set);
    jk_buf_free(&v->scratch);
    if (v->c) {
        redisFree(v->c);
        v->c = NULL;
    }
    jk_keys_wipe(&v->kr);
}


int
jk_cmd_verify(const jk_opts_t *o)
{
    int          rc;
    PGconn      *pg = NULL;
    jk_verify_t  v;

    if (o->from || o->to) {
        return jk_usage_err("verify --from/--to: not supported: verify"
                            " reads every list whole (a chain has no date"
                            " bounds)");
    }

    /*
     * --postgres with --key (no --public-key): Redis's records, the
     * chains of writers whose first records were trimmed continued from
     * the archive (the rows themselves: --public-key)
     */
    if (o->postgres && o->nkeys && !o->public_key && !o->checkpoint) {
        pg = jk_pg_connect(o);
        if (pg == NULL || jk_pg_prepare_read(pg) != 0) {
            PQfinish(pg);
            return JK_ERR;
        }

    } else if (o->public_key || o->postgres || o->checkpoint) {
        return jk_verify_public(o);
    }

    rc = jk_verify_run_pg(o, &v, pg);

    if (rc == JK_OK && v.breaks) {
        rc = JK_FAIL;
    }

    if (rc == JK_OK) {
        printf("ok: %zu records (%llu writer, %llu audit, %llu completion,"
               " %llu summary, %llu control) in %zu lists, %zu writers\n",
               v.nrec, (unsigned long long) v.cnt['W'],
               (unsigned long long) v.cnt['A'],
               (unsigned long long) v.cnt['C'],
               (unsigned long long) v.cnt['S'],
               (unsigned long long) v.cnt['K'], v.set.n, v.nw);

        if (v.unconfirmed) {
            printf("unconfirmed: %llu audit records decided by Redis have"
                   " no completion (yet)\n",
                   (unsigned long long) v.unconfirmed);
        }

        if (v.uncheckable) {
            printf("not checkable: %llu records of writers whose head was"
                   " trimmed\n", (unsigned long long) v.uncheckable);
        }
    }

    jk_verify_free(&v);
    PQfinish(pg);

    return rc;
}
