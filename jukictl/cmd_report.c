/*
 * jukictl report: the yearly publication of provisions.
 *
 * Counts the A3 records whose ts falls in the inclusive UTC date range,
 * among those jk_verify_run() accepts (every list read whole, every
 * record checked; one that fails is named on stderr and left out, and
 * the exit status is 1; so is one that cannot be checked, counted on
 * stderr and in the output).  An A record counts:
 *
 *   - decided by the gateway (gdecision, bound by its mac): a denial per
 *     agency and reason;
 *   - decided by Redis (allow, stopped, rate_limited): only with its C
 *     record, which verify links to it: a provision per agency and
 *     purpose, or a denial.  Without one it is "unconfirmed", listed
 *     apart and counted neither way.
 *
 * S records add the refusals they counted without recording them
 * (denials of the unidentified).
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
    { "bad_request", "malformed request" },
    { "bad_purpose", "purpose missing or malformed" },
    { "bad_operator", "operator id missing or malformed" },
    { "purpose_not_permitted", "purpose not permitted to the agency" },
    { "resident_code_forbidden", "resident code requested by a private"
      " body" },
    { "stopped", "emergency stop in effect" },
    { "rate_limited", "rate limit exceeded" },
    { NULL, NULL }
};


typedef struct {
    jk_ht_t          prov;      /* AGENCY\0PURPOSE */
    jk_ht_t          deny;      /* AGENCY\0REASON */
    jk_ht_t          unconf;    /* AGENCY\0PURPOSE\0DECISION */
    jk_ht_t          purposes;
    uint64_t         nprov;
    uint64_t         ndeny;
    uint64_t         nunconf;
    uint64_t         nsummarised;
    jk_problems_t    prob;
    jk_buf_t         key;
} jk_report_t;


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


/* "A\0B[\0C]" -> its parts */

static void
jk_split_key(const char *key, size_t klen, jk_str_t *a, jk_str_t *b,
    jk_str_t *c)
{
    const char  *end = key + klen, *z;

    z = memchr(key, '\0', klen);
    a->p = key;
    a->len = z ? (size_t) (z - key) : klen;
    b->p = z ? z + 1 : end;
    z = memchr(b->p, '\0', (size_t) (end - b->p));
    b->len = z ? (size_t) (z - b->p) : (size_t) (end - b->p);

    if (c) {
        c->p = z ? z + 1 : end;
        c->len = (size_t) (end - c->p);
    }
}


static void
jk_split(const jk_hent_t *e, jk_str_t *a, jk_str_t *b, jk_str_t *c)
{
    jk_split_key(e->key, e->klen, a, b, c);
}


/* the key "A\0B[\0C]" in rp->key */

static int
jk_key3(jk_report_t *rp, const jk_str_t *a, const char *b, size_t blen,
    const jk_str_t *c)
{
    rp->key.len = 0;

    if (jk_buf_append(&rp->key, a->p, a->len) != 0
        || jk_buf_append(&rp->key, "", 1) != 0
        || jk_buf_append(&rp->key, b, blen) != 0
        || (c && (jk_buf_append(&rp->key, "", 1) != 0
                  || jk_buf_append(&rp->key, c->p, c->len) != 0)))
    {
        return -1;
    }

    return 0;
}


static int
jk_count(jk_ht_t *ht, const jk_buf_t *key, uint64_t n)
{
    jk_hent_t  *e;

    e = jk_ht_get(ht, key->data, key->len);
    if (e == NULL) {
        return -1;
    }

    e->n += n;

    return 0;
}


/* a decision known to be the one made: a provision or a denial */

static int
jk_count_decision(jk_report_t *rp, const jk_str_t *agency,
    const jk_str_t *purpose, const jk_str_t *d)
{
    if (jk_str_eq(d, "allow")) {
        rp->nprov++;
        return jk_key3(rp, agency, purpose->p, purpose->len, NULL) != 0
               || jk_count(&rp->prov, &rp->key, 1) != 0 ? -1 : 0;
    }

    rp->ndeny++;
    return jk_key3(rp, agency, d->p + 5, d->len - 5, NULL) != 0
           || jk_count(&rp->deny, &rp->key, 1) != 0 ? -1 : 0;
}


/*
 * The A3 records of the window (by ts) that verified: a gateway-decided
 * A counts as its decision; a Redis-decided one only with its C record
 * (verify links it), else it is unconfirmed; S adds what it suppressed.
 */

static int
jk_report_a3(jk_report_t *rp, jk_verify_t *v, uint64_t from_ms,
    uint64_t to_ms)
{
    size_t               i;
    jk_str_t             agency, d, none = { "", 0 };
    jk_vrec_t           *x;
    const char          *name;
    const jk_a3_list_t  *l;

    for (i = 0; i < v->nrec; i++) {
        x = &v->recs[i];

        if (x->bad || x->r.ts < from_ms || x->r.ts > to_ms) {
            continue;
        }

        l = &v->set.list[x->list];
        agency.p = l->agency;
        agency.len = (l->alen == 1 && l->agency[0] == '_') ? 0 : l->alen;

        if (x->r.type == 'S') {
            name = jk_a3_code_name(x->r.cause) + 5;
            rp->ndeny += x->r.suppressed;
            rp->nsummarised += x->r.suppressed;

            if (jk_key3(rp, &none, name, strlen(name), NULL) != 0
                || jk_count(&rp->deny, &rp->key, x->r.suppressed) != 0)
            {
                return -1;
            }
            continue;
        }

        if (x->r.type != 'A') {
            continue;
        }

        d.p = jk_a3_code_name(x->r.decision);
        d.len = strlen(d.p);

        if (x->r.gdecision != 0 || (x->conf && !x->conf->bad)) {
            if (jk_count_decision(rp, &agency, &x->r.purpose, &d) != 0) {
                return -1;
            }
            continue;
        }

        if (jk_key3(rp, &agency, x->r.purpose.p, x->r.purpose.len, &d) != 0
            || jk_count(&rp->unconf, &rp->key, 1) != 0)
        {
            return -1;
        }

        rp->nunconf++;
    }

    return 0;
}


/* output */

static void
jk_md_agency(const jk_str_t *a)
{
    if (a->len == 0) {
        fputs("(unidentified)", stdout);
    } else {
        jk_out_md(stdout, a->p, a->len);
    }
}


static const jk_hent_t *
jk_statute(jk_report_t *rp, const jk_str_t *purpose)
{
    jk_hent_t  *st;

    st = jk_ht_find(&rp->purposes, purpose->p, purpose->len);

    return st && st->ptr ? st : NULL;
}


static void
jk_report_md(const jk_opts_t *o, jk_report_t *rp, jk_hent_t **prov,
    jk_hent_t **deny, jk_hent_t **unconf)
{
    size_t            i;
    uint64_t          sub;
    jk_str_t          a, b, d, prev;
    const jk_hent_t  *st;

    printf("# Provision of resident registry information\n\n");
    printf("Public notice of the provisions of resident registry"
           " information made\nthrough juki-gateway to public bodies,"
           " by agency and statutory purpose,\nand of the requests that"
           " were refused.\n\n");
    printf("- Period: %s to %s (UTC, both days included)\n",
           jk_safe(o->from, strlen(o->from)), jk_safe(o->to, strlen(o->to)));
    printf("- Provisions: %llu\n", (unsigned long long) rp->nprov);
    printf("- Refused requests: %llu\n", (unsigned long long) rp->ndeny);

    if (rp->nunconf) {
        printf("- Requests whose decision is unconfirmed: %llu\n",
               (unsigned long long) rp->nunconf);
    }

    jk_problems_md(&rp->prob, "counted");

    printf("\n## Provisions by agency and purpose\n\n");

    if (prov[0] == NULL) {
        printf("No provisions in this period.\n\n");

    } else {
        printf("| Agency | Purpose | Statutory basis | Provisions |\n");
        printf("|---|---|---|---:|\n");

        for (i = 0; prov[i]; i++) {
            jk_split(prov[i], &a, &b, NULL);
            fputs("| ", stdout);
            jk_md_agency(&a);
            fputs(" | ", stdout);
            jk_out_md(stdout, b.p, b.len);
            fputs(" | ", stdout);

            st = jk_statute(rp, &b);
            if (st) {
                jk_out_md(stdout, st->ptr, st->n);
            } else {
                fputs("(not recorded)", stdout);
            }

            printf(" | %llu |\n", (unsigned long long) prov[i]->n);
        }

        printf("| **Total** | | | **%llu** |\n\n",
               (unsigned long long) rp->nprov);

        printf("### Provisions per agency\n\n");
        printf("| Agency | Provisions |\n|---|---:|\n");

        i = 0;

        while (prov[i]) {
            jk_split(prov[i], &a, &b, NULL);
            prev = a;
            sub = 0;

            while (prov[i]) {
                jk_split(prov[i], &a, &b, NULL);
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
            jk_split(deny[i], &a, &b, NULL);
            fputs("| ", stdout);
            jk_md_agency(&a);
            fputs(" | ", stdout);
            fputs(jk_reason_text(b.p, b.len), stdout);
            fputs(" (", stdout);
            jk_out_md(stdout, b.p, b.len);
            printf(") | %llu |\n", (unsigned long long) deny[i]->n);
        }

        printf("| **Total** | | **%llu** |\n\n",
               (unsigned long long) rp->ndeny);

        if (rp->nsummarised) {
            printf("%llu of the refused requests were counted by summary"
                   " records (refusal flood\ncontrol) rather than recorded"
                   " one by one.\n\n",
                   (unsigned long long) rp->nsummarised);
        }
    }

    if (unconf[0]) {
        printf("## Requests whose decision is unconfirmed\n\n");
        printf("The decision of these requests was made in Redis and no"
               " completion record\nconfirms it (the gateway may have"
               " stopped before writing one).  They are\ncounted neither as"
               " provisions nor as refusals.\n\n");
        printf("| Agency | Purpose | Recorded decision | Requests |\n");
        printf("|---|---|---|---:|\n");

        for (i = 0; unconf[i]; i++) {
            jk_split(unconf[i], &a, &b, &d);
            fputs("| ", stdout);
            jk_md_agency(&a);
            fputs(" | ", stdout);
            jk_out_md(stdout, b.p, b.len);
            fputs(" | ", stdout);
            jk_out_md(stdout, d.p, d.len);
            printf(" | %llu |\n", (unsigned long long) unconf[i]->n);
        }

        putchar('\n');
    }

    if (rp->prob.n || rp->prob.uncheckable || rp->prob.breaks) {
        printf("**Warning:** %llu records failed verification and %llu"
               " could not be checked\n(their writer's first record was"
               " archived); none of them is counted, and\nany of them may"
               " belong to this period.  Do not publish this report before"
               "\n`jukictl verify` has been run and the cause found.\n\n",
               (unsigned long long) rp->prob.n,
               (unsigned long long) rp->prob.uncheckable);
    }

    printf("Counted from the gateway's audit records, each written before"
           " the request\nwas forwarded or refused, and checked with the"
           " audit key.  A request refused\nbefore an agency could be"
           " identified is listed as \"(unidentified)\".\n");
}


static void
jk_report_csv(jk_report_t *rp, jk_hent_t **prov, jk_hent_t **deny,
    jk_hent_t **unconf)
{
    size_t            i;
    jk_str_t          a, b, d;
    const jk_hent_t  *st;

    printf("section,agency,purpose,statute,reason,count\r\n");

    for (i = 0; prov[i]; i++) {
        jk_split(prov[i], &a, &b, NULL);
        fputs("provision,", stdout);
        jk_out_csv(stdout, a.p, a.len);
        putchar(',');
        jk_out_csv(stdout, b.p, b.len);
        putchar(',');
        st = jk_statute(rp, &b);
        if (st) {
            jk_out_csv(stdout, st->ptr, st->n);
        }
        printf(",,%llu\r\n", (unsigned long long) prov[i]->n);
    }

    for (i = 0; deny[i]; i++) {
        jk_split(deny[i], &a, &b, NULL);
        fputs("denial,", stdout);
        jk_out_csv(stdout, a.p, a.len);
        fputs(",,,", stdout);
        jk_out_csv(stdout, b.p, b.len);
        printf(",%llu\r\n", (unsigned long long) deny[i]->n);
    }

    for (i = 0; unconf[i]; i++) {
        jk_split(unconf[i], &a, &b, &d);
        fputs("unconfirmed,", stdout);
        jk_out_csv(stdout, a.p, a.len);
        putchar(',');
        jk_out_csv(stdout, b.p, b.len);
        putchar(',');
        st = jk_statute(rp, &b);
        if (st) {
            jk_out_csv(stdout, st->ptr, st->n);
        }
        putchar(',');
        jk_out_csv(stdout, d.p, d.len);
        printf(",%llu\r\n", (unsigned long long) unconf[i]->n);
    }

    if (rp->prob.n) {
        printf("unverified,,,,,%llu\r\n", (unsigned long long) rp->prob.n);
    }

    if (rp->prob.uncheckable) {
        printf("uncheckable,,,,,%llu\r\n",
               (unsigned long long) rp->prob.uncheckable);
    }
}


static void
jk_report_json(const jk_opts_t *o, jk_report_t *rp, jk_hent_t **prov,
    jk_hent_t **deny, jk_hent_t **unconf)
{
    size_t            i;
    jk_str_t          a, b, d;
    const jk_hent_t  *st;

    printf("{\n  \"from\": ");
    jk_out_json(stdout, o->from, strlen(o->from));
    printf(",\n  \"to\": ");
    jk_out_json(stdout, o->to, strlen(o->to));
    printf(",\n  \"provisions\": [");

    for (i = 0; prov[i]; i++) {
        jk_split(prov[i], &a, &b, NULL);
        printf("%s\n    {\"agency\": ", i ? "," : "");
        jk_out_json(stdout, a.p, a.len);
        printf(", \"purpose\": ");
        jk_out_json(stdout, b.p, b.len);
        printf(", \"statute\": ");
        st = jk_statute(rp, &b);
        if (st) {
            jk_out_json(stdout, st->ptr, st->n);
        } else {
            printf("null");
        }
        printf(", \"count\": %llu}", (unsigned long long) prov[i]->n);
    }

    printf("%s],\n  \"denials\": [", i ? "\n  " : "");

    for (i = 0; deny[i]; i++) {
        jk_split(deny[i], &a, &b, NULL);
        printf("%s\n    {\"agency\": ", i ? "," : "");
        jk_out_json(stdout, a.p, a.len);
        printf(", \"reason\": ");
        jk_out_json(stdout, b.p, b.len);
        printf(", \"count\": %llu}", (unsigned long long) deny[i]->n);
    }

    printf("%s],\n  \"unconfirmed\": [", i ? "\n  " : "");

    for (i = 0; unconf[i]; i++) {
        jk_split(unconf[i], &a, &b, &d);
        printf("%s\n    {\"agency\": ", i ? "," : "");
        jk_out_json(stdout, a.p, a.len);
        printf(", \"purpose\": ");
        jk_out_json(stdout, b.p, b.len);
        printf(", \"decision\": ");
        jk_out_json(stdout, d.p, d.len);
        printf(", \"count\": %llu}", (unsigned long long) unconf[i]->n);
    }

    printf("%s],\n  \"totals\": {\"provisions\": %llu, \"denials\": %llu,"
           " \"summarised\": %llu, \"unconfirmed\": %llu,"
           " \"unverified\": %llu, \"uncheckable\": %llu}\n}\n",
           i ? "\n  " : "",
           (unsigned long long) rp->nprov, (unsigned long long) rp->ndeny,
           (unsigned long long) rp->nsummarised,
           (unsigned long long) rp->nunconf,
           (unsigned long long) rp->prob.n,
           (unsigned long long) rp->prob.uncheckable);
}


int
jk_cmd_report(const jk_opts_t *o)
{
    int            rc = JK_ERR;
    uint64_t       from_ms, to_ms, skew;
    jk_hent_t    **sp = NULL, **sd = NULL, **su = NULL;
    jk_report_t   *rp;
    const char    *format;
    jk_verify_t    v;

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

    if (jk_window(o, 1, &from_ms, &to_ms, NULL) != JK_OK
        || jk_skew_opt(o, &skew) != JK_OK)
    {
        return JK_ERR;
    }

    rp = calloc(1, sizeof(jk_report_t));
    if (rp == NULL) {
        jk_err("out of memory");
        return JK_ERR;
    }

    rp->prob.cmd = "report";

    if (jk_verify_run(o, &v) != JK_OK) {
        goto done;
    }

    if (jk_ht_init(&rp->prov, 64) != 0 || jk_ht_init(&rp->deny, 64) != 0
        || jk_ht_init(&rp->unconf, 64) != 0
        || jk_ht_init(&rp->purposes, 64) != 0
        || jk_purposes_load(v.c, &rp->purposes) != 0
        || jk_report_a3(rp, &v, from_ms, to_ms) != 0)
    {
        goto done;
    }

    /*
     * what was left out, over all the lists: the ts of a record that
     * failed or could not be checked is not to be trusted for the window
     */
    jk_problems_set(&rp->prob, &v);

    sp = jk_ht_sorted(&rp->prov);
    sd = jk_ht_sorted(&rp->deny);
    su = jk_ht_sorted(&rp->unconf);
    if (sp == NULL || sd == NULL || su == NULL) {
        goto done;
    }

    if (strcmp(format, "md") == 0) {
        jk_report_md(o, rp, sp, sd, su);

    } else if (strcmp(format, "csv") == 0) {
        jk_report_csv(rp, sp, sd, su);

    } else {
        jk_report_json(o, rp, sp, sd, su);
    }

    rc = jk_problems_end(&rp->prob);

    if (rc == JK_FAIL && jk_out_finish() != JK_OK) {
        rc = JK_ERR;
    }

done:

    free(sp);
    free(sd);
    free(su);
    jk_buf_free(&rp->key);
    jk_ht_free(&rp->prov, NULL);
    jk_ht_free(&rp->deny, NULL);
    jk_ht_free(&rp->unconf, NULL);
    jk_ht_free(&rp->purposes, free);
    jk_verify_free(&v);
    free(rp);

    return rc;
}
