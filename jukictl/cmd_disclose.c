/*
 * jukictl disclose: which agency looked at one resident's record, when,
 * and for which purpose.
 *
 * The resident code is turned into its pseudonym under every key given
 * (docs/audit.md: lower-hex(HMAC-SHA256(k_sub, code))), then wiped; it
 * is never printed.  Operator ids are withheld.  Memory grows with the
 * number of matching records only.
 */

#include <stdlib.h>
#include <string.h>

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
} jk_access_t;


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


static int
jk_read_code(const jk_opts_t *o, char *code, size_t size)
{
    size_t  n;

    if (o->resident_code == NULL) {
        return jk_usage_err("disclose needs --resident-code CODE");
    }

    if (strcmp(o->resident_code, "-") == 0) {
        if (fgets(code, (int) size, stdin) == NULL) {
            return jk_usage_err("no resident code on standard input");
        }

        n = strcspn(code, "\r\n");
        if (code[n] == '\0' && n == size - 1) {
            return jk_usage_err("resident code too long");
        }
        code[n] = '\0';

    } else {
        n = strlen(o->resident_code);
        if (n >= size) {
            return jk_usage_err("resident code too long");
        }
        memcpy(code, o->resident_code, n + 1);
    }

    if (code[0] == '\0') {
        return jk_usage_err("empty resident code");
    }

    return JK_OK;
}


static int
jk_access_add(jk_access_t **list, size_t *n, size_t *cap, const jk_rec_t *r)
{
    size_t           len;
    uint64_t         ts;
    jk_access_t     *a, *p;
    const jk_str_t  *ag, *pu, *de, *t;

    ag = &r->val[JK_A_AGENCY];
    pu = &r->val[JK_A_PURPOSE];
    de = &r->val[JK_A_DECISION];
    t = &r->val[JK_A_TS];

    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        p = realloc(*list, *cap * sizeof(jk_access_t));
        if (p == NULL) {
            jk_err("out of memory");
            return -1;
        }
        *list = p;
    }

    a = &(*list)[*n];

    if (jk_parse_u64(t->p, t->len, &ts) != 0) {
        ts = r->ms;         /* fall back to the stream entry time */
    }

    len = ag->len + pu->len + de->len + 3;
    a->agency = malloc(len);
    if (a->agency == NULL) {
        jk_err("out of memory");
        return -1;
    }

    a->ts = ts;
    a->ms = r->ms;
    a->sq = r->sq;
    memcpy(a->agency, ag->p, ag->len);
    a->agency[ag->len] = '\0';
    a->purpose = a->agency + ag->len + 1;
    memcpy(a->purpose, pu->p, pu->len);
    a->purpose[pu->len] = '\0';
    a->decision = a->purpose + pu->len + 1;
    memcpy(a->decision, de->p, de->len);
    a->decision[de->len] = '\0';

    (*n)++;

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
jk_disclose_out(const jk_opts_t *o, const char *format, jk_access_t *list,
    size_t n, jk_ht_t *purposes)
{
    size_t       i, slen = 0;
    char         when[40];
    const char  *st;

    if (strcmp(format, "md") == 0) {
        printf("# Record of access to your resident registry"
               " information\n\n");
        printf("- Period: %s to %s (UTC)\n", o->from ? o->from : "beginning",
               o->to ? o->to : "now");
        printf("- Requests about you: %zu\n\n", n);

        if (n == 0) {
            printf("No request about you was recorded in this period.\n");
            return;
        }

        printf("| Date and time (UTC) | Agency | Purpose | Statutory basis"
               " | Decision |\n|---|---|---|---|---|\n");

    } else if (strcmp(format, "csv") == 0) {
        printf("time,agency,purpose,statute,decision\r\n");

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
        printf(",\n  \"count\": %zu,\n  \"accesses\": [", n);
    }

    for (i = 0; i < n; i++) {
        jk_fmt_iso(list[i].ts, when, sizeof(when));
        st = jk_statute(purposes, list[i].purpose, &slen);

        if (strcmp(format, "md") == 0) {
            printf("| %s | ", when);
            if (list[i].agency[0]) {
                jk_out_md(stdout, list[i].agency, strlen(list[i].agency));
            } else {
                fputs("(unidentified)", stdout);
            }
            fputs(" | ", stdout);
            jk_out_md(stdout, list[i].purpose, strlen(list[i].purpose));
            fputs(" | ", stdout);
            if (st) {
                jk_out_md(stdout, st, slen);
            }
            fputs(" | ", stdout);
            if (strcmp(list[i].decision, "allow") == 0) {
                fputs("provided", stdout);
            } else {
                fputs("refused (", stdout);
                jk_out_md(stdout, list[i].decision, strlen(list[i].decision));
                fputs(")", stdout);
            }
            fputs(" |\n", stdout);

        } else if (strcmp(format, "csv") == 0) {
            printf("%s,", when);
            jk_out_csv(stdout, list[i].agency, strlen(list[i].agency));
            putchar(',');
            jk_out_csv(stdout, list[i].purpose, strlen(list[i].purpose));
            putchar(',');
            if (st) {
                jk_out_csv(stdout, st, slen);
            }
            putchar(',');
            jk_out_csv(stdout, list[i].decision, strlen(list[i].decision));
            fputs("\r\n", stdout);

        } else {
            printf("%s\n    {\"time\": \"%s\", \"agency\": ", i ? "," : "",
                   when);
            jk_out_json(stdout, list[i].agency, strlen(list[i].agency));
            printf(", \"purpose\": ");
            jk_out_json(stdout, list[i].purpose, strlen(list[i].purpose));
            printf(", \"statute\": ");
            if (st) {
                jk_out_json(stdout, st, slen);
            } else {
                printf("null");
            }
            printf(", \"decision\": ");
            jk_out_json(stdout, list[i].decision, strlen(list[i].decision));
            putchar('}');
        }
    }

    if (strcmp(format, "md") == 0) {
        printf("\nOperator identities are withheld.  Each line is one"
               " request made through\njuki-gateway about your record,"
               " whether it was provided or refused.\n");

    } else if (strcmp(format, "json") == 0) {
        printf("%s]\n}\n", n ? "\n  " : "");
    }
}


int
jk_cmd_disclose(const jk_opts_t *o)
{
    int                rc = JK_ERR, r = 0, nk, k;
    char               code[JK_CODE_MAX + 2];
    char               pseudo[JK_MAX_KEYS][65];
    size_t             i, n = 0, cap = 0;
    uint64_t           from_ms, to_ms;
    unsigned char      h[32];
    jk_ht_t            purposes = { NULL, 0, 0 };
    jk_rec_t          *rec = NULL;
    jk_xiter_t         it;
    jk_access_t       *list = NULL;
    jk_keyring_t       kr;
    jk_streams_t       streams = { NULL, 0 };
    const char        *format;
    const jk_str_t    *sub;
    redisContext      *c = NULL;
    const redisReply  *entry;

    format = o->format ? o->format : "md";

    if (strcmp(format, "md") && strcmp(format, "csv")
        && strcmp(format, "json"))
    {
        return jk_usage_err("bad --format \"%s\" (md, csv or json)", format);
    }

    if (jk_window(o, 0, &from_ms, &to_ms, NULL) != JK_OK) {
        return JK_ERR;
    }

    if (jk_read_code(o, code, sizeof(code)) != JK_OK) {
        OPENSSL_cleanse(code, sizeof(code));
        return JK_ERR;
    }

    nk = jk_keys_load(o, &kr);

    if (nk == 0) {
        jk_err("disclose needs the audit key (--key PATH or"
               " JUKI_AUDIT_KEY)");
    }

    for (k = 0; k < nk; k++) {
        if (jk_hmac(kr.key[k].k_sub, 32, code, strlen(code), h) != 0) {
            nk = -1;
            break;
        }
        jk_hex(h, 32, pseudo[k]);
    }

    OPENSSL_cleanse(code, sizeof(code));
    OPENSSL_cleanse(h, sizeof(h));
    jk_keys_wipe(&kr);

    if (nk <= 0) {
        return JK_ERR;
    }

    c = jk_redis_connect(o);
    if (c == NULL) {
        goto done;
    }

    rec = malloc(sizeof(jk_rec_t));
    if (rec == NULL) {
        jk_err("out of memory");
        goto done;
    }

    if (jk_ht_init(&purposes, 64) != 0
        || jk_purposes_load(c, &purposes) != 0
        || jk_streams_list(c, &streams) != 0)
    {
        goto done;
    }

    for (i = 0; i < streams.n && r == 0; i++) {
        jk_xiter_init(&it, c, streams.name[i], from_ms, to_ms, 1000);

        while ((r = jk_xiter_next(&it, &entry)) == 1) {
            r = 0;

            if (jk_rec_parse(entry, rec) != 0 || rec->type != JK_REC_AUDIT
                || jk_rec_schema(rec) != NULL)
            {
                continue;
            }

            sub = &rec->val[JK_A_SUBJECT];
            if (sub->len != 64) {
                continue;
            }

            for (k = 0; k < nk; k++) {
                if (memcmp(sub->p, pseudo[k], 64) == 0) {
                    break;
                }
            }

            if (k < nk && jk_access_add(&list, &n, &cap, rec) != 0) {
                r = -1;
                break;
            }
        }

        jk_xiter_free(&it);
    }

    if (r != 0) {
        goto done;
    }

    if (n) {
        qsort(list, n, sizeof(jk_access_t), jk_access_cmp);
    }

    jk_disclose_out(o, format, list, n, &purposes);

    rc = JK_OK;

done:

    for (i = 0; i < n; i++) {
        free(list[i].agency);
    }

    free(list);
    free(rec);
    OPENSSL_cleanse(pseudo, sizeof(pseudo));
    jk_ht_free(&purposes, free);
    jk_streams_free(&streams);
    if (c) {
        redisFree(c);
    }

    return rc;
}
