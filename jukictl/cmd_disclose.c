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
    uint64_t     ms;
    uint64_t     sq;
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
} jk_disclose_t;


static int
jk_access_cmp(const void *a, const void *b)
{
    const jk_access_t  *x = a, *y = b;

    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }

    if (x->ms != y->ms) {
        return x->ms < y->ms ? -1 : 1;
    }

    return (x->sq > y->sq) - (x->sq < y->sq);
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
jk_access_add(jk_disclose_t *d, const jk_vrec_t *x, const jk_a3_list_t *l)
{
    size_t         len, alen;
    const char    *de;
    jk_access_t   *a, *p;

    alen = (l->alen == 1 && l->agency[0] == '_') ? 0 : l->alen;
    de = jk_a3_code_name(x->r.decision);

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

    len = alen + x->r.purpose.len + strlen(de) + 3;
    a->agency = malloc(len);
    if (a->agency == NULL) {
        jk_err("out of memory");
        return -1;
    }

    a->ts = x->r.ts;
    a->ms = x->list;
    a->sq = x->pos;
    a->confirmed = x->r.gdecision != 0 || (x->conf && !x->conf->bad);
    memcpy(a->agency, l->agency, alen);
    a->agency[alen] = '\0';
    a->purpose = a->agency + alen + 1;
    memcpy(a->purpose, x->r.purpose.p, x->r.purpose.len);
    a->purpose[x->r.purpose.len] = '\0';
    a->decision = a->purpose + x->r.purpose.len + 1;
    memcpy(a->decision, de, strlen(de) + 1);

    d->n++;

    return 0;
}


/* the verified A records of the window whose subject is the resident's */

static int
jk_disclose_a3(jk_disclose_t *d, jk_verify_t *v, uint64_t from_ms,
    uint64_t to_ms)
{
    int         k;
    size_t      i;
    jk_vrec_t  *x;

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

        if (k < d->nk && jk_access_add(d, x, &v->set.list[x->list]) != 0) {
            return -1;
        }
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
    uint64_t        from_ms, to_ms, skew;
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

    if (jk_verify_run(o, &v) != JK_OK) {
        goto done;
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
    jk_problems_set(&d->prob, &v);

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
    jk_keys_wipe(&d->kr);
    jk_verify_free(&v);
    free(d);

    return rc;
}
