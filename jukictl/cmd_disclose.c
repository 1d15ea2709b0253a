/*
 * jukictl disclose: which agency looked at one resident's record, when,
 * and for which purpose.
 *
 * The resident code is read from standard input, never from the command
 * line (it would show in the process list), turned into its pseudonym
 * under every key given (the first 16 bytes of HMAC-SHA256(k_sub,
 * code), docs/audit.md), then wiped; it is never printed.
 * Operator ids are withheld.
 *
 * The records are those of jk_verify_run(): every list read whole and
 * every record checked.  Any record that fails is named on stderr and
 * left out (it might be one of the resident's), and the exit status is
 * 1; so is one that cannot be checked, counted on stderr and in md and
 * json.  A decision Redis made is "confirmed" only by its C record (verify
 * links it); without one it is listed as unconfirmed.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "jk.h"


#define JK_CODE_MAX  256


typedef struct {
    uint64_t     ts;
    uint64_t     idx;       /* logical index in its list */
    char        *agency;    /* one allocation: agency\0purpose\0decision */
    char        *purpose;
    char        *decision;
    unsigned     confirmed:1;
} jk_access_t;


typedef struct {
    jk_access_t     *list;
    size_t           n;
    size_t           cap;
    size_t           shown;
    size_t           unconfirmed;
    jk_ht_t          purposes;
    jk_problems_t    prob;
    jk_keyring_t     kr;
    char             pseudo[JK_MAX_KEYS][65];
    int              nk;
    PGconn          *pg;            /* --postgres: the archive */
    jk_ht_t          seen;          /* LIST\0IDX of the archived rows met */
    jk_ht_t          cs;            /* Redis C records, by (awriter, aseq) */
    jk_buf_t         scratch;
    uint64_t         nrows;         /* archived rows read */
    jk_verify_t     *v;             /* the Redis part */
} jk_disclose_t;


static int
jk_access_cmp(const void *a, const void *b)
{
    const jk_access_t  *x = a, *y = b;

    int  c;

    /* by time, then list and place: the same order from either store */

    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }

    c = strcmp(x->agency, y->agency);
    if (c != 0) {
        return c;
    }

    return (x->idx > y->idx) - (x->idx < y->idx);
}


/*
 * The first line of standard input; on a terminal with a prompt and no
 * echo.  A code given on the command line is refused.  Read with read(2)
 * one byte at a time, so that no copy of the code stays in a stdio
 * buffer and nothing past the line is consumed; only a trailing LF or
 * CR LF ends it: a CR anywhere else, or a NUL, is a bad code (not
 * echoed).  The caller wipes code.
 */

static int
jk_read_code(const jk_opts_t *o, char *code, size_t size)
{
    int             tty, rc = JK_OK;
    char            c = 0;
    size_t          n = 0;
    ssize_t         r;
    struct termios  t, saved;

    if (o->resident_code && strcmp(o->resident_code, "-") != 0) {
        return jk_usage_err("a resident code on the command line shows in"
                            " the process list; give it on standard input"
                            " (--resident-code - or no --resident-code)");
    }

    tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;

    if (tty) {
        fputs("resident code: ", stderr);
        fflush(stderr);
        t = saved;
        t.c_lflag &= ~(tcflag_t) ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
    }

    for ( ;; ) {
        r = read(STDIN_FILENO, &c, 1);

        if (r < 0 && errno == EINTR) {
            continue;
        }

        if (r < 0) {
            rc = jk_usage_err("cannot read the resident code from standard"
                              " input: %s", strerror(errno));
            goto done;
        }

        if (r == 0 || c == '\n') {
            break;
        }

        if (n == size - 1) {
            rc = jk_usage_err("resident code too long (at most %d bytes)",
                              JK_CODE_MAX);
            goto done;
        }

        code[n++] = c;
    }

    if (r == 0 && n == 0) {
        rc = jk_usage_err("no resident code on standard input");
        goto done;
    }

    if (n && code[n - 1] == '\r') {
        n--;
    }

    code[n] = '\0';

    if (n > JK_CODE_MAX) {
        rc = jk_usage_err("resident code too long (at most %d bytes)",
                          JK_CODE_MAX);
        goto done;
    }

    if (n == 0) {
        rc = jk_usage_err("empty resident code");
        goto done;
    }

    if (memchr(code, '\r', n) != NULL || strlen(code) != n) {
        rc = jk_usage_err("bad resident code (a CR or NUL inside the"
                          " line)");
    }

done:

    c = 0;
    OPENSSL_cleanse(&c, sizeof(c));

    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }

    return rc;
}


static int
jk_access_add(jk_disclose_t *d, const jk_a3_t *r, const char *agency,
    size_t alen, uint64_t idx, int confirmed)
{
    size_t         len;
    const char    *de;
    jk_access_t   *a, *p;

    if (alen == 1 && agency[0] == '_') {
        alen = 0;
    }

    de = jk_a3_code_name(r->decision);

    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        p = realloc(d->list, d->cap * sizeof(jk_access_t));
        if (p == NULL) {
            jk_err("out of memory");
            return -1;
        }
        d->list = p;
    }

    a = &d->list[d->n];

    len = alen + r->purpose.len + strlen(de) + 3;
    a->agency = malloc(len);
    if (a->agency == NULL) {
        jk_err("out of memory");
        return -1;
    }

    a->ts = r->ts;
    a->idx = idx;
    a->confirmed = confirmed != 0;
    memcpy(a->agency, agency, alen);
    a->agency[alen] = '\0';
    a->purpose = a->agency + alen + 1;
    memcpy(a->purpose, r->purpose.p, r->purpose.len);
    a->purpose[r->purpose.len] = '\0';
    a->decision = a->purpose + r->purpose.len + 1;
    memcpy(a->decision, de, strlen(de) + 1);

    d->n++;

    return 0;
}


/* the key of a record in d->seen: LIST \0 IDX (8 bytes) */

static size_t
jk_seen_key(char *key, const char *list, size_t llen, uint64_t idx)
{
    memcpy(key, list, llen);
    key[llen] = '\0';
    memcpy(key + llen + 1, &idx, 8);

    return llen + 9;
}


/* the verified A records of the window whose subject is the resident's */

static int
jk_disclose_a3(jk_disclose_t *d, jk_verify_t *v, uint64_t from_ms,
    uint64_t to_ms)
{
    int                  k;
    char                 key[JK_AGENCY_MAX + 16];
    size_t               i, klen;
    jk_vrec_t           *x;
    const jk_a3_list_t  *l;

    for (i = 0; i < v->nrec; i++) {
        x = &v->recs[i];

        if (x->bad || x->r.type != 'A' || x->r.subject.len != 16
            || x->r.ts < from_ms || x->r.ts > to_ms)
        {
            continue;
        }

        for (k = 0; k < d->nk; k++) {
            if (CRYPTO_memcmp(x->r.subject.p, d->pseudo[k], 16) == 0) {
                break;
            }
        }

        if (k == d->nk) {
            continue;
        }

        l = &v->set.list[x->list];

        /* the hot window overlaps the archive: its copy was listed */
        if (d->pg && l->alen <= JK_AGENCY_MAX) {
            klen = jk_seen_key(key, l->agency, l->alen, x->idx);
            if (jk_ht_find(&d->seen, key, klen) != NULL) {
                continue;
            }
        }

        if (jk_access_add(d, &x->r, l->agency, l->alen, x->idx,
                          x->r.gdecision != 0
                          || (x->conf && !x->conf->bad))
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


/*
 * The archive (--postgres).  The resident's rows are found by the index
 * on (pseudonym, ts); each is believed only by its raw bytes: decoded,
 * its subject the pseudonym, its mac checked under its writer's key
 * (the kid of the writer's W row) over the mac16 of the writer's row
 * before it (both by the index on (writer, seq)).  A row that fails is
 * named and left out.  A decision Redis made is confirmed when the
 * archiver archived its completion (no juki_pending row: it checked
 * list, decision and once), or by a completion verified in Redis.
 */

#define JK_DPG_ROWS                                                      \
    "SELECT list, idx, raw FROM juki_records"                            \
    " WHERE pseudonym = $1 AND ts >= $2::timestamptz"                    \
    " AND ts <= $3::timestamptz"

#define JK_DPG_PEND                                                      \
    "SELECT list, decision FROM juki_pending"                            \
    " WHERE writer = $1 AND seq = $2"


static int
jk_dpg_prepare(jk_disclose_t *d)
{
    size_t       i;
    PGresult    *res;

    static const char  *stmt[][2] = {
        { "jk_dpg_rows", JK_DPG_ROWS },
        { "jk_dpg_pend", JK_DPG_PEND },
    };

    for (i = 0; i < sizeof(stmt) / sizeof(stmt[0]); i++) {
        res = PQprepare(d->pg, stmt[i][0], stmt[i][1], 0, NULL);
        if (jk_pg_ok(res, "prepare") != 0) {
            PQclear(res);
            return -1;
        }
        PQclear(res);
    }

    return 0;
}


static void
jk_dpg_bad(jk_disclose_t *d, const char *list, size_t llen, uint64_t idx,
    const char *what)
{
    d->prob.n++;

    if (d->prob.n > 20) {
        return;
    }

    fprintf(stderr, "jukictl: disclose: archived %s element %llu: %s\n",
            jk_safe(list, llen), (unsigned long long) idx, what);
}


/* NULL when r's mac is good; else what is wrong; "" on an error, said */

static const char *
jk_dpg_mac(jk_disclose_t *d, const jk_a3_t *r, const char *list,
    size_t llen)
{
    int              rc;
    char             hex[17];
    jk_str_t         kid;
    jk_a3_t          w, p;
    PGresult        *wres = NULL, *pres = NULL;
    const char      *what = NULL;
    unsigned char    mac[16];
    const jk_key_t  *k;

    if (r->seq == 0) {
        return "an A record at seq 0";
    }

    rc = jk_pg_seq(d->pg, r->writer, 0, &wres, &w);
    if (rc != 0 || w.type != 'W') {
        what = rc < 0 ? "" : "its writer's W row is not in the archive"
                             " once";
        goto done;
    }

    jk_hex(w.kid, 8, hex);
    kid.p = hex;
    kid.len = 16;
    k = jk_keys_find(&d->kr, &kid);
    if (k == NULL) {
        what = "its writer's kid is none of the keys given";
        goto done;
    }

    rc = jk_pg_seq(d->pg, r->writer, r->seq - 1, &pres, &p);
    if (rc != 0) {
        what = rc < 0 ? "" : "its writer's row before it is not in the"
                             " archive once";
        goto done;
    }

    if (jk_a3_mac(k, list, llen, p.mac, r->p, r->body_len, &d->scratch,
                  mac) != 0)
    {
        what = "";
        goto done;
    }

    if (CRYPTO_memcmp(mac, r->mac, 16) != 0) {
        what = "bad mac (edited, forged, moved or reordered)";
    }

done:

    PQclear(wres);
    PQclear(pres);

    return what;
}


/* 1 when the decision Redis made for r is confirmed, 0 not, -1 error */

static int
jk_dpg_confirmed(jk_disclose_t *d, const jk_a3_t *r, const char *list,
    size_t llen, uint64_t idx)
{
    int                  len[2], fmt[2], rc;
    char                 n[24], key[16];
    const char          *val[2];
    PGresult            *res;
    jk_hent_t           *e;
    jk_vrec_t           *c;
    const jk_a3_list_t  *l;

    if (r->gdecision != 0) {
        return 1;
    }

    snprintf(n, sizeof(n), "%llu", (unsigned long long) r->seq);
    val[0] = (const char *) r->writer; len[0] = 8; fmt[0] = 1;
    val[1] = n; len[1] = 0; fmt[1] = 0;

    res = PQexecPrepared(d->pg, "jk_dpg_pend", 2, val, len, fmt, 1);
    if (jk_pg_ok(res, "reading juki_pending") != 0) {
        PQclear(res);
        return -1;
    }

    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        /* its completion was archived after the archiver checked it */
        return 1;
    }

    jk_akey(r->writer, r->seq, key);
    e = jk_ht_find(&d->cs, key, 16);
    c = e ? e->ptr : NULL;

    if (c == NULL) {
        return 0;
    }

    /* in the same list after it, the same decision: verify's rule */
    l = &d->v->set.list[c->list];

    return c->r.decision == r->decision && c->idx > idx && l->alen == llen
           && memcmp(l->agency, list, llen) == 0;
}


/* one row found by the index */

static int
jk_dpg_row(jk_disclose_t *d, PGresult *res, int i, uint64_t from_ms,
    uint64_t to_ms, const char *pseudo)
{
    int                   conf;
    char                  key[JK_AGENCY_MAX + 16];
    size_t                llen, len, klen;
    uint64_t              idx;
    jk_a3_t               r;
    jk_hent_t            *e;
    const char           *list, *what;
    const unsigned char  *p, *raw;

    list = PQgetvalue(res, i, 0);
    llen = (size_t) PQgetlength(res, i, 0);
    p = (const unsigned char *) PQgetvalue(res, i, 1);
    raw = (const unsigned char *) PQgetvalue(res, i, 2);
    len = (size_t) PQgetlength(res, i, 2);

    if (PQgetlength(res, i, 1) != 8 || llen == 0 || llen > JK_AGENCY_MAX) {
        jk_dpg_bad(d, "?", 1, 0, "malformed row");
        return 0;
    }

    idx = jk_pg_u64((const char *) p);

    klen = jk_seen_key(key, list, llen, idx);
    e = jk_ht_get(&d->seen, key, klen);
    if (e == NULL) {
        return -1;
    }

    if (e->n++) {
        /* found under another key's pseudonym too */
        return 0;
    }

    d->nrows++;

    what = jk_a3_decode(raw, len, &r);
    if (what != NULL) {
        jk_dpg_bad(d, list, llen, idx, what);
        return 0;
    }

    if (r.type != 'A' || r.subject.len != 16
        || CRYPTO_memcmp(r.subject.p, pseudo, 16) != 0)
    {
        jk_dpg_bad(d, list, llen, idx, "its bytes are not the resident's"
                   " audit record (derived columns edited)");
        return 0;
    }

    what = jk_dpg_mac(d, &r, list, llen);
    if (what != NULL) {
        if (what[0] == '\0') {
            return -1;
        }
        jk_dpg_bad(d, list, llen, idx, what);
        return 0;
    }

    if (r.ts < from_ms || r.ts > to_ms) {
        /* its ts column lies (verify --public-key names it) */
        return 0;
    }

    conf = jk_dpg_confirmed(d, &r, list, llen, idx);
    if (conf < 0) {
        return -1;
    }

    return jk_access_add(d, &r, list, llen, idx, conf);
}


/* the Redis C records verified, by the A record they name */

static int
jk_dpg_cs(jk_disclose_t *d, jk_verify_t *v)
{
    char        key[16];
    size_t      i;
    jk_hent_t  *e;
    jk_vrec_t  *x;

    if (jk_ht_init(&d->cs, 64) != 0) {
        return -1;
    }

    for (i = 0; i < v->nrec; i++) {
        x = &v->recs[i];

        if (x->bad || x->r.type != 'C') {
            continue;
        }

        jk_akey(x->r.awriter, x->r.aseq, key);
        e = jk_ht_get(&d->cs, key, 16);
        if (e == NULL) {
            return -1;
        }

        /* a second completion: none confirms (verify names it) */
        e->ptr = e->n++ ? NULL : x;
    }

    return 0;
}


static int
jk_disclose_pg(jk_disclose_t *d, jk_verify_t *v, uint64_t from_ms,
    uint64_t to_ms)
{
    int          k, i, n, len[3], fmt[3];
    char         from[40], to[40];
    const char  *val[3];
    PGresult    *res;

    if (jk_ht_init(&d->seen, 64) != 0 || jk_dpg_cs(d, v) != 0
        || jk_dpg_prepare(d) != 0)
    {
        return -1;
    }

    jk_fmt_iso(from_ms, from, sizeof(from));
    if (to_ms == UINT64_MAX) {
        snprintf(to, sizeof(to), "infinity");
    } else {
        jk_fmt_iso(to_ms, to, sizeof(to));
    }

    for (k = 0; k < d->nk; k++) {
        val[0] = d->pseudo[k]; len[0] = 16; fmt[0] = 1;
        val[1] = from; len[1] = 0; fmt[1] = 0;
        val[2] = to; len[2] = 0; fmt[2] = 0;

        res = PQexecPrepared(d->pg, "jk_dpg_rows", 3, val, len, fmt, 1);
        if (jk_pg_ok(res, "reading the resident's rows") != 0
            || PQnfields(res) != 3)
        {
            PQclear(res);
            return -1;
        }

        n = PQntuples(res);

        for (i = 0; i < n; i++) {
            if (jk_dpg_row(d, res, i, from_ms, to_ms, d->pseudo[k]) != 0) {
                PQclear(res);
                return -1;
            }
        }

        PQclear(res);
    }

    return 0;
}


static const char *
jk_statute(jk_ht_t *purposes, const char *purpose, size_t *len)
{
    jk_hent_t  *e;

    e = jk_ht_find(purposes, purpose, strlen(purpose));
    if (e == NULL || e->ptr == NULL) {
        return NULL;
    }

    *len = e->n;

    return e->ptr;
}


static void
jk_disclose_out(const jk_opts_t *o, const char *format, jk_disclose_t *d)
{
    size_t        i, k, slen = 0;
    char          when[40];
    const char   *st;
    jk_access_t  *a;

    if (strcmp(format, "md") == 0) {
        printf("# Record of access to your resident registry"
               " information\n\n");
        printf("- Period: %s to %s (UTC)\n",
               o->from ? jk_safe(o->from, strlen(o->from)) : "beginning",
               o->to ? jk_safe(o->to, strlen(o->to)) : "now");
        printf("- Requests about you: %zu\n", d->shown);

        jk_problems_md(&d->prob, "listed");

        putchar('\n');

        if (d->shown == 0) {
            printf("No request about you was recorded in this period.\n");
            return;
        }

        printf("| Date and time (UTC) | Agency | Purpose | Statutory basis"
               " | Decision |\n|---|---|---|---|---|\n");

    } else if (strcmp(format, "csv") == 0) {
        printf("time,agency,purpose,statute,decision,confirmed\r\n");

    } else {
        printf("{\n  \"from\": ");
        if (o->from) {
            jk_out_json(stdout, o->from, strlen(o->from));
        } else {
            printf("null");
        }
        printf(",\n  \"to\": ");
        if (o->to) {
            jk_out_json(stdout, o->to, strlen(o->to));
        } else {
            printf("null");
        }
        printf(",\n  \"count\": %zu,\n  \"unconfirmed\": %zu,"
               "\n  \"unverified\": %llu,\n  \"uncheckable\": %llu,"
               "\n  \"accesses\": [", d->shown, d->unconfirmed,
               (unsigned long long) d->prob.n,
               (unsigned long long) d->prob.uncheckable);
    }

    for (i = 0, k = 0; i < d->n; i++) {
        a = &d->list[i];

        jk_fmt_iso(a->ts, when, sizeof(when));
        st = jk_statute(&d->purposes, a->purpose, &slen);

        if (strcmp(format, "md") == 0) {
            printf("| %s | ", when);
            if (a->agency[0]) {
                jk_out_md(stdout, a->agency, strlen(a->agency));
            } else {
                fputs("(unidentified)", stdout);
            }
            fputs(" | ", stdout);
            jk_out_md(stdout, a->purpose, strlen(a->purpose));
            fputs(" | ", stdout);
            if (st) {
                jk_out_md(stdout, st, slen);
            }
            fputs(" | ", stdout);
            if (!a->confirmed) {
                fputs("not confirmed (recorded as ", stdout);
                jk_out_md(stdout, a->decision, strlen(a->decision));
                fputs(")", stdout);
            } else if (strcmp(a->decision, "allow") == 0) {
                fputs("provided", stdout);
            } else {
                fputs("refused (", stdout);
                jk_out_md(stdout, a->decision, strlen(a->decision));
                fputs(")", stdout);
            }
            fputs(" |\n", stdout);

        } else if (strcmp(format, "csv") == 0) {
            printf("%s,", when);
            jk_out_csv(stdout, a->agency, strlen(a->agency));
            putchar(',');
            jk_out_csv(stdout, a->purpose, strlen(a->purpose));
            putchar(',');
            if (st) {
                jk_out_csv(stdout, st, slen);
            }
            putchar(',');
            jk_out_csv(stdout, a->decision, strlen(a->decision));
            printf(",%s\r\n", a->confirmed ? "yes" : "no");

        } else {
            printf("%s\n    {\"time\": \"%s\", \"agency\": ", k ? "," : "",
                   when);
            jk_out_json(stdout, a->agency, strlen(a->agency));
            printf(", \"purpose\": ");
            jk_out_json(stdout, a->purpose, strlen(a->purpose));
            printf(", \"statute\": ");
            if (st) {
                jk_out_json(stdout, st, slen);
            } else {
                printf("null");
            }
            printf(", \"decision\": ");
            jk_out_json(stdout, a->decision, strlen(a->decision));
            printf(", \"confirmed\": %s}", a->confirmed ? "true" : "false");
        }

        k++;
    }

    if (strcmp(format, "md") == 0) {
        printf("\nOperator identities are withheld.  Each line is one"
               " request made through\njuki-gateway about your record,"
               " whether it was provided or refused.\n");

        if (d->unconfirmed) {
            printf("A decision shown as \"not confirmed\" was made by the"
                   " gateway's database and\nis not confirmed by the"
                   " record the gateway writes afterwards.\n");
        }

    } else if (strcmp(format, "json") == 0) {
        printf("%s]\n}\n", k ? "\n  " : "");
    }
}


int
jk_cmd_disclose(const jk_opts_t *o)
{
    int             rc = JK_ERR, k;
    char            code[JK_CODE_MAX + 2];
    size_t          i;
    uint64_t        from_ms, to_ms, skew, n;
    unsigned char   h[32];
    jk_disclose_t  *d;
    const char     *format;
    jk_verify_t     v;

    memset(&v, 0, sizeof(v));

    format = o->format ? o->format : "md";

    if (strcmp(format, "md") && strcmp(format, "csv")
        && strcmp(format, "json"))
    {
        if (!jk_name_like(format, strlen(format), JK_NAME_MAX)) {
            return jk_usage_err("bad --format (md, csv or json)");
        }
        return jk_usage_err("bad --format \"%s\" (md, csv or json)",
                            format);
    }

    if (jk_window(o, 0, &from_ms, &to_ms, NULL) != JK_OK
        || jk_skew_opt(o, &skew) != JK_OK)
    {
        return JK_ERR;
    }

    d = calloc(1, sizeof(jk_disclose_t));
    if (d == NULL) {
        jk_err("out of memory");
        return JK_ERR;
    }

    d->prob.cmd = "disclose";

    if (jk_read_code(o, code, sizeof(code)) != JK_OK) {
        goto done;
    }

    d->nk = jk_keys_load(o, &d->kr);

    if (d->nk == 0) {
        jk_err("disclose needs the audit key (--key PATH or"
               " JUKI_AUDIT_KEY)");
    }

    for (k = 0; k < d->nk; k++) {
        if (jk_hmac(d->kr.key[k].k_sub, 32, code, strlen(code), h) != 0) {
            d->nk = -1;
            break;
        }
        memcpy(d->pseudo[k], h, 16);
    }

    OPENSSL_cleanse(code, sizeof(code));
    OPENSSL_cleanse(h, sizeof(h));

    if (d->nk <= 0) {
        goto done;
    }

    if (o->postgres || getenv("JUKI_POSTGRES")) {
        d->pg = jk_pg_connect(o);
        if (d->pg == NULL || jk_pg_prepare_read(d->pg) != 0) {
            goto done;
        }
    }

    if (jk_verify_run_pg(o, &v, d->pg) != JK_OK) {
        goto done;
    }

    /*
     * Redis first, then the archive: a record trimmed in between was
     * read from Redis and is found in the archive too, once listed
     */
    if (d->pg) {
        d->v = &v;
        if (jk_disclose_pg(d, &v, from_ms, to_ms) != 0) {
            goto done;
        }
    }

    if (jk_ht_init(&d->purposes, 64) != 0
        || jk_purposes_load(v.c, &d->purposes) != 0
        || jk_disclose_a3(d, &v, from_ms, to_ms) != 0)
    {
        goto done;
    }

    /*
     * every record that failed or could not be checked is left out: it
     * might be one of the resident's
     */
    n = d->prob.n;
    jk_problems_set(&d->prob, &v);
    d->prob.n += n;

    for (i = 0; i < d->n; i++) {
        d->shown++;
        d->unconfirmed += !d->list[i].confirmed;
    }

    if (d->n) {
        qsort(d->list, d->n, sizeof(jk_access_t), jk_access_cmp);
    }

    jk_disclose_out(o, format, d);

    rc = jk_problems_end(&d->prob);

    if (rc == JK_FAIL && jk_out_finish() != JK_OK) {
        rc = JK_ERR;
    }

done:

    OPENSSL_cleanse(code, sizeof(code));

    for (i = 0; i < d->n; i++) {
        free(d->list[i].agency);
    }

    free(d->list);
    OPENSSL_cleanse(d->pseudo, sizeof(d->pseudo));
    jk_ht_free(&d->purposes, free);
    jk_ht_free(&d->seen, NULL);
    jk_ht_free(&d->cs, NULL);
    jk_buf_free(&d->scratch);
    PQfinish(d->pg);
    jk_keys_wipe(&d->kr);
    jk_verify_free(&v);
    free(d);

    return rc;
}
