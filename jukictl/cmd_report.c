/*
 * jukictl report: the yearly publication of provisions.
 *
 * Counts audit records (no "phase" field) whose stream entry time falls
 * in the inclusive UTC date range: decision "allow" per agency and
 * purpose, "deny:REASON" per agency and reason.  Completion and control
 * records are skipped.  Memory grows with the number of distinct
 * (agency, purpose) and (agency, reason) pairs, not with the records.
 */

#include <stdlib.h>
#include <string.h>

#include "jk.h"


typedef struct {
    const char  *code;
    const char  *text;
} jk_reason_text_t;


static const jk_reason_text_t  jk_reason_texts[] = {
    { "unverified_certificate", "client certificate missing or invalid" },
    { "unknown_agency", "certificate of no registered agency" },
    { "bad_purpose", "purpose missing or malformed" },
    { "bad_operator", "operator id missing or malformed" },
    { "purpose_not_permitted", "purpose not permitted to the agency" },
    { "resident_code_forbidden", "resident code requested by a private"
      " body" },
    { "stopped", "emergency stop in effect" },
    { "rate_limited", "rate limit exceeded" },
    { NULL, NULL }
};


static const char *
jk_reason_text(const char *p, size_t n)
{
    int  i;

    for (i = 0; jk_reason_texts[i].code; i++) {
        if (strlen(jk_reason_texts[i].code) == n
            && memcmp(jk_reason_texts[i].code, p, n) == 0)
        {
            return jk_reason_texts[i].text;
        }
    }

    return "other";
}


/* "AGENCY\0SECOND" -> its two parts */

static void
jk_split(const jk_hent_t *e, jk_str_t *a, jk_str_t *b)
{
    a->p = e->key;
    a->len = strlen(e->key);
    b->p = e->key + a->len + 1;
    b->len = e->klen - a->len - 1;
}


static int
jk_count(jk_ht_t *ht, const jk_str_t *a, const char *b, size_t blen,
    jk_buf_t *scratch)
{
    jk_hent_t  *e;

    scratch->len = 0;
    if (jk_buf_append(scratch, a->p, a->len) != 0
        || jk_buf_append(scratch, "", 1) != 0
        || jk_buf_append(scratch, b, blen) != 0)
    {
        return -1;
    }

    e = jk_ht_get(ht, scratch->data, scratch->len);
    if (e == NULL) {
        return -1;
    }

    e->n++;

    return 0;
}


static void
jk_md_agency(const jk_str_t *a)
{
    if (a->len == 0) {
        fputs("(unidentified)", stdout);
    } else {
        jk_out_md(stdout, a->p, a->len);
    }
}


static void
jk_report_md(const jk_opts_t *o, jk_hent_t **prov, jk_hent_t **deny,
    jk_ht_t *purposes, uint64_t nprov, uint64_t ndeny)
{
    size_t      i;
    uint64_t    sub;
    jk_str_t    a, b, prev;
    jk_hent_t  *st;

    printf("# Provision of resident registry information\n\n");
    printf("Public notice of the provisions of resident registry"
           " information made\nthrough juki-gateway to public bodies,"
           " by agency and statutory purpose,\nand of the requests that"
           " were refused.\n\n");
    printf("- Period: %s to %s (UTC, both days included)\n", o->from, o->to);
    printf("- Provisions: %llu\n", (unsigned long long) nprov);
    printf("- Refused requests: %llu\n\n", (unsigned long long) ndeny);

    printf("## Provisions by agency and purpose\n\n");

    if (prov[0] == NULL) {
        printf("No provisions in this period.\n\n");

    } else {
        printf("| Agency | Purpose | Statutory basis | Provisions |\n");
        printf("|---|---|---|---:|\n");

        for (i = 0; prov[i]; i++) {
            jk_split(prov[i], &a, &b);
            fputs("| ", stdout);
            jk_md_agency(&a);
            fputs(" | ", stdout);
            jk_out_md(stdout, b.p, b.len);
            fputs(" | ", stdout);

            st = jk_ht_find(purposes, b.p, b.len);
            if (st && st->ptr) {
                jk_out_md(stdout, st->ptr, st->n);
            } else {
                fputs("(not recorded)", stdout);
            }

            printf(" | %llu |\n", (unsigned long long) prov[i]->n);
        }

        printf("| **Total** | | | **%llu** |\n\n", (unsigned long long) nprov);

        printf("### Provisions per agency\n\n");
        printf("| Agency | Provisions |\n|---|---:|\n");

        i = 0;

        while (prov[i]) {
            jk_split(prov[i], &a, &b);
            prev = a;
            sub = 0;

            while (prov[i]) {
                jk_split(prov[i], &a, &b);
                if (a.len != prev.len || memcmp(a.p, prev.p, a.len) != 0) {
                    break;
                }
                sub += prov[i++]->n;
            }

            fputs("| ", stdout);
            jk_md_agency(&prev);
            printf(" | %llu |\n", (unsigned long long) sub);
        }

        putchar('\n');
    }

    printf("## Refused requests by agency and reason\n\n");

    if (deny[0] == NULL) {
        printf("No refused requests in this period.\n\n");

    } else {
        printf("| Agency | Reason | Refused |\n|---|---|---:|\n");

        for (i = 0; deny[i]; i++) {
            jk_split(deny[i], &a, &b);
            fputs("| ", stdout);
            jk_md_agency(&a);
            fputs(" | ", stdout);
            fputs(jk_reason_text(b.p, b.len), stdout);
            fputs(" (", stdout);
            jk_out_md(stdout, b.p, b.len);
            printf(") | %llu |\n", (unsigned long long) deny[i]->n);
        }

        printf("| **Total** | | **%llu** |\n\n", (unsigned long long) ndeny);
    }

    printf("Counted from the gateway's audit records, each written before"
           " the request\nwas forwarded or refused.  A request refused"
           " before an agency could be\nidentified is listed as"
           " \"(unidentified)\".\n");
}


static void
jk_report_csv(jk_hent_t **prov, jk_hent_t **deny, jk_ht_t *purposes)
{
    size_t      i;
    jk_str_t    a, b;
    jk_hent_t  *st;

    printf("section,agency,purpose,statute,reason,count\r\n");

    for (i = 0; prov[i]; i++) {
        jk_split(prov[i], &a, &b);
        fputs("provision,", stdout);
        jk_out_csv(stdout, a.p, a.len);
        putchar(',');
        jk_out_csv(stdout, b.p, b.len);
        putchar(',');
        st = jk_ht_find(purposes, b.p, b.len);
        if (st && st->ptr) {
            jk_out_csv(stdout, st->ptr, st->n);
        }
        printf(",,%llu\r\n", (unsigned long long) prov[i]->n);
    }

    for (i = 0; deny[i]; i++) {
        jk_split(deny[i], &a, &b);
        fputs("denial,", stdout);
        jk_out_csv(stdout, a.p, a.len);
        fputs(",,,", stdout);
        jk_out_csv(stdout, b.p, b.len);
        printf(",%llu\r\n", (unsigned long long) deny[i]->n);
    }
}


static void
jk_report_json(const jk_opts_t *o, jk_hent_t **prov, jk_hent_t **deny,
    jk_ht_t *purposes, uint64_t nprov, uint64_t ndeny)
{
    size_t      i;
    jk_str_t    a, b;
    jk_hent_t  *st;

    printf("{\n  \"from\": \"%s\",\n  \"to\": \"%s\",\n", o->from, o->to);
    printf("  \"provisions\": [");

    for (i = 0; prov[i]; i++) {
        jk_split(prov[i], &a, &b);
        printf("%s\n    {\"agency\": ", i ? "," : "");
        jk_out_json(stdout, a.p, a.len);
        printf(", \"purpose\": ");
        jk_out_json(stdout, b.p, b.len);
        printf(", \"statute\": ");
        st = jk_ht_find(purposes, b.p, b.len);
        if (st && st->ptr) {
            jk_out_json(stdout, st->ptr, st->n);
        } else {
            printf("null");
        }
        printf(", \"count\": %llu}", (unsigned long long) prov[i]->n);
    }

    printf("%s],\n  \"denials\": [", i ? "\n  " : "");

    for (i = 0; deny[i]; i++) {
        jk_split(deny[i], &a, &b);
        printf("%s\n    {\"agency\": ", i ? "," : "");
        jk_out_json(stdout, a.p, a.len);
        printf(", \"reason\": ");
        jk_out_json(stdout, b.p, b.len);
        printf(", \"count\": %llu}", (unsigned long long) deny[i]->n);
    }

    printf("%s],\n  \"totals\": {\"provisions\": %llu, \"denials\": %llu}"
           "\n}\n", i ? "\n  " : "", (unsigned long long) nprov,
           (unsigned long long) ndeny);
}


int
jk_cmd_report(const jk_opts_t *o)
{
    int                rc = JK_ERR, r;
    size_t             i;
    uint64_t           from_ms, to_ms, nprov = 0, ndeny = 0;
    jk_ht_t            prov = { NULL, 0, 0 }, deny = { NULL, 0, 0 };
    jk_ht_t            purposes = { NULL, 0, 0 };
    jk_buf_t           scratch = { NULL, 0, 0 };
    jk_rec_t          *rec = NULL;
    jk_hent_t        **sp = NULL, **sd = NULL;
    jk_xiter_t         it;
    jk_streams_t       streams = { NULL, 0 };
    const char        *format;
    const jk_str_t    *agency, *purpose, *d;
    redisContext      *c;
    const redisReply  *entry;

    format = o->format ? o->format : "md";

    if (strcmp(format, "md") && strcmp(format, "csv")
        && strcmp(format, "json"))
    {
        return jk_usage_err("bad --format \"%s\" (md, csv or json)", format);
    }

    if (jk_window(o, 1, &from_ms, &to_ms, NULL) != JK_OK) {
        return JK_ERR;
    }

    c = jk_redis_connect(o);
    if (c == NULL) {
        return JK_ERR;
    }

    rec = malloc(sizeof(jk_rec_t));
    if (rec == NULL) {
        jk_err("out of memory");
        goto done;
    }

    if (jk_ht_init(&prov, 64) != 0 || jk_ht_init(&deny, 64) != 0
        || jk_ht_init(&purposes, 64) != 0
        || jk_purposes_load(c, &purposes) != 0
        || jk_streams_list(c, &streams) != 0)
    {
        goto done;
    }

    for (i = 0; i < streams.n; i++) {
        jk_xiter_init(&it, c, streams.name[i], from_ms, to_ms, 1000);

        while ((r = jk_xiter_next(&it, &entry)) == 1) {
            if (jk_rec_parse(entry, rec) != 0 || rec->type != JK_REC_AUDIT) {
                continue;
            }

            agency = jk_rec_get(rec, "agency");
            purpose = jk_rec_get(rec, "purpose");
            d = jk_rec_get(rec, "decision");

            if (agency == NULL || purpose == NULL || d == NULL
                || memchr(agency->p, '\0', agency->len) != NULL)
            {
                continue;   /* not a record the gateway can write */
            }

            if (jk_str_eq(d, "allow")) {
                r = jk_count(&prov, agency, purpose->p, purpose->len,
                             &scratch);
                nprov++;

            } else if (d->len > 5 && memcmp(d->p, "deny:", 5) == 0) {
                r = jk_count(&deny, agency, d->p + 5, d->len - 5, &scratch);
                ndeny++;

            } else {
                r = 0;
            }

            if (r != 0) {
                break;
            }
        }

        jk_xiter_free(&it);

        if (r != 0) {
            goto done;
        }
    }

    sp = jk_ht_sorted(&prov);
    sd = jk_ht_sorted(&deny);
    if (sp == NULL || sd == NULL) {
        goto done;
    }

    if (strcmp(format, "md") == 0) {
        jk_report_md(o, sp, sd, &purposes, nprov, ndeny);

    } else if (strcmp(format, "csv") == 0) {
        jk_report_csv(sp, sd, &purposes);

    } else {
        jk_report_json(o, sp, sd, &purposes, nprov, ndeny);
    }

    rc = JK_OK;

done:

    free(sp);
    free(sd);
    free(rec);
    jk_buf_free(&scratch);
    jk_ht_free(&prov, NULL);
    jk_ht_free(&deny, NULL);
    jk_ht_free(&purposes, free);
    jk_streams_free(&streams);
    redisFree(c);

    return rc;
}
