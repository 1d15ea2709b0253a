/*
 * jukictl: what report and disclose share: --max-skew, and the closing
 * line when records failed verification (the A3 records themselves are
 * a3.c; their checks cmd_verify.c).
 */

#include <string.h>

#include "jk.h"


#define JK_PROBLEMS_NAMED   20      /* lines on stderr, then a count */


int
jk_skew_opt(const jk_opts_t *o, uint64_t *skew)
{
    *skew = JK_SKEW_DEFAULT;

    if (o->max_skew
        && (jk_parse_duration(o->max_skew, skew) != 0 || *skew > JK_SKEW_MAX))
    {
        return jk_usage_err("bad --max-skew \"%s\" (a duration: 500ms, 5s,"
                            " 2m, at most 24h)",
                            jk_safe(o->max_skew, strlen(o->max_skew)));
    }

    return JK_OK;
}


int
jk_problems_end(jk_problems_t *p)
{
    if (p->n == 0) {
        return JK_OK;
    }

    if (p->n > JK_PROBLEMS_NAMED) {
        fprintf(stderr, "jukictl: %s: ... and %llu more\n", p->cmd,
                (unsigned long long) (p->n - JK_PROBLEMS_NAMED));
    }

    fprintf(stderr, "jukictl: %s: %llu record%s or stream%s failed"
            " verification and %s left out; run jukictl verify\n", p->cmd,
            (unsigned long long) p->n, p->n == 1 ? "" : "s",
            p->n == 1 ? "" : "s", p->n == 1 ? "is" : "are");

    return JK_FAIL;
}
