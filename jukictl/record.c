/*
 * jukictl: what report and disclose share: --max-skew, and the closing
 * lines when records failed verification or were not checkable (the A3
 * records themselves are a3.c; their checks cmd_verify.c).
 */

#include <string.h>

#include "jk.h"


int
jk_skew_opt(const jk_opts_t *o, uint64_t *skew)
{
    *skew = JK_SKEW_DEFAULT;

    if (o->max_skew
        && (jk_parse_duration(o->max_skew, skew) != 0 || *skew > JK_SKEW_MAX))
    {
        /* not echoed: it might be a resident code */
        return jk_usage_err("bad --max-skew (a duration: 500ms, 5s, 2m, at"
                            " most 24h)");
    }

    return JK_OK;
}


/* what a verify run left out, for the closing lines and the outputs */

void
jk_problems_set(jk_problems_t *p, const jk_verify_t *v)
{
    p->n = v->failed;
    p->uncheckable = v->uncheckable;
    p->breaks = v->breaks;
}


/*
 * The closing lines on stderr (the breaks themselves were named while
 * verify ran, with their count past the first 20); JK_FAIL when any
 * record was left out, for whatever reason.
 */

/*
 * The Markdown lines of report and disclose for the records they left
 * out: VERB is what the records were not ("counted", "listed").
 */

void
jk_problems_md(const jk_problems_t *p, const char *verb)
{
    if (p->n) {
        printf("- **Records that failed verification (in any list, of any"
               " date), not %s: %llu**\n", verb, (unsigned long long) p->n);
    }

    if (p->uncheckable) {
        printf("- **Records that could not be checked (in any list, of any"
               " date), not %s: %llu**\n", verb,
               (unsigned long long) p->uncheckable);
    }
}


int
jk_problems_end(jk_problems_t *p)
{
    if (p->n) {
        fprintf(stderr, "jukictl: %s: %llu record%s failed verification"
                " and %s left out; run jukictl verify\n", p->cmd,
                (unsigned long long) p->n, p->n == 1 ? "" : "s",
                p->n == 1 ? "is" : "are");
    }

    if (p->uncheckable) {
        fprintf(stderr, "jukictl: %s: %llu record%s not checkable (no W"
                " record while juki:{_}:trimmed > 0) and %s left out\n",
                p->cmd, (unsigned long long) p->uncheckable,
                p->uncheckable == 1 ? " is" : "s are",
                p->uncheckable == 1 ? "is" : "are");
    }

    return p->n || p->uncheckable || p->breaks ? JK_FAIL : JK_OK;
}
