
/*
 * juki-gateway: refusals made before an agency is known (no or unverified
 * certificate, unknown agency, a bad request from nobody known).  Nobody's
 * limiter stands in their way, so they are recorded one record each only
 * up to juki_refusal_budget per client address and second; past it they
 * are counted, and one summary record per cause and second says how many
 * of each were recorded and how many only counted.  Per worker, in fixed
 * tables: a flood of addresses cannot make them grow.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


/* client addresses tracked per worker and second, and probes per lookup */
#define NGX_HTTP_JUKI_BUDGET_SLOTS   128
#define NGX_HTTP_JUKI_BUDGET_PROBES  8


typedef struct {
    u_char                       addr[16];
    size_t                       len;
    time_t                       second;     /* not now: a free slot */
    ngx_uint_t                   count;
} ngx_http_juki_budget_t;


typedef struct {
    time_t                       second;
    ngx_uint_t                   recorded;
    ngx_uint_t                   suppressed;
    ngx_uint_t                   level;
} ngx_http_juki_tally_t;


static size_t ngx_http_juki_client(ngx_connection_t *c, u_char *addr);
static void ngx_http_juki_tally(ngx_http_juki_reason_e reason,
    ngx_uint_t suppressed, ngx_uint_t level);
static void ngx_http_juki_summarise(ngx_http_juki_reason_e reason);
static void ngx_http_juki_flush_handler(ngx_event_t *ev);


static ngx_http_juki_budget_t
    ngx_http_juki_budgets[NGX_HTTP_JUKI_BUDGET_SLOTS];
static ngx_http_juki_tally_t  ngx_http_juki_tallies[NGX_HTTP_JUKI_NREASONS];
static ngx_event_t            ngx_http_juki_flush;


void
ngx_http_juki_refusal_init_worker(ngx_cycle_t *cycle)
{
    ngx_memzero(ngx_http_juki_budgets, sizeof(ngx_http_juki_budgets));
    ngx_memzero(ngx_http_juki_tallies, sizeof(ngx_http_juki_tallies));
    ngx_memzero(&ngx_http_juki_flush, sizeof(ngx_event_t));

    /*
     * not cancelable: a worker that shuts down gracefully writes the
     * summaries of its last second before it exits
     */

    ngx_http_juki_flush.handler = ngx_http_juki_flush_handler;
    ngx_http_juki_flush.log = cycle->log;
}


/*
 * 1: record this refusal with no agency one record of its own; 0: past
 * the budget of its client address, or no slot left for the address in
 * this second: only counted
 */

ngx_uint_t
ngx_http_juki_refusal_admit(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_reason_e reason,
    ngx_uint_t level)
{
    u_char                  addr[16];
    size_t                  len;
    time_t                  now;
    uint32_t                h;
    ngx_uint_t              i;
    ngx_http_juki_budget_t  *b;

    now = ngx_time();
    len = ngx_http_juki_client(r->connection, addr);
    h = ngx_crc32_short(addr, len);

    /*
     * open addressing, every slot of an earlier second free: the address
     * is found before the first free slot of its probe sequence, since it
     * took that slot when it came first in this second
     */

    for (i = 0; i < NGX_HTTP_JUKI_BUDGET_PROBES; i++) {
        b = &ngx_http_juki_budgets[(h + i) % NGX_HTTP_JUKI_BUDGET_SLOTS];

        if (b->second != now) {
            ngx_memcpy(b->addr, addr, len);
            b->len = len;
            b->second = now;
            b->count = 0;
            break;
        }

        if (b->len == len && ngx_memcmp(b->addr, addr, len) == 0) {
            break;
        }
    }

    if (i < NGX_HTTP_JUKI_BUDGET_PROBES && b->count < jmcf->refusal_budget) {
        b->count++;
        return 1;
    }

    ngx_http_juki_tally(reason, 1, level);

    return 0;
}


/* a refusal admitted above whose record went to Redis */

void
ngx_http_juki_refusal_recorded(ngx_http_juki_reason_e reason)
{
    ngx_http_juki_tally(reason, 0, 0);
}


/* the address bytes; one key for every unix-socket client */

static size_t
ngx_http_juki_client(ngx_connection_t *c, u_char *addr)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (c->sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) c->sockaddr;
        ngx_memcpy(addr, sin6->sin6_addr.s6_addr, 16);
        return 16;
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) c->sockaddr;
        ngx_memcpy(addr, &sin->sin_addr, 4);
        return 4;

    default:
        return 0;
    }
}


static void
ngx_http_juki_tally(ngx_http_juki_reason_e reason, ngx_uint_t suppressed,
    ngx_uint_t level)
{
    time_t                  now;
    ngx_time_t             *tp;
    ngx_http_juki_tally_t  *t;

    t = &ngx_http_juki_tallies[reason];
    now = ngx_time();

    if (t->second != now) {
        if (t->suppressed) {
            ngx_http_juki_summarise(reason);
        }

        t->second = now;
        t->recorded = 0;
        t->suppressed = 0;
    }

    if (!suppressed) {
        t->recorded++;
        return;
    }

    if (t->suppressed++ == 0) {
        t->level = level;

        /* the second is over at the next full second of the clock */

        if (!ngx_http_juki_flush.timer_set) {
            tp = ngx_timeofday();
            ngx_add_timer(&ngx_http_juki_flush, 1000 - tp->msec + 10);
        }
    }
}


static void
ngx_http_juki_flush_handler(ngx_event_t *ev)
{
    time_t                  now;
    ngx_time_t             *tp;
    ngx_uint_t              i, again;
    ngx_http_juki_tally_t  *t;

    now = ngx_time();
    again = 0;

    for (i = 0; i < NGX_HTTP_JUKI_NREASONS; i++) {
        t = &ngx_http_juki_tallies[i];

        if (t->suppressed == 0) {
            continue;
        }

        if (t->second < now) {
            ngx_http_juki_summarise(i);

        } else {
            again = 1;
        }
    }

    if (again) {
        tp = ngx_timeofday();
        ngx_add_timer(ev, 1000 - tp->msec + 10);
    }
}


/*
 * The counts are in the error log line as well: when the record cannot
 * be written, they are not lost with it.
 */

static void
ngx_http_juki_summarise(ngx_http_juki_reason_e reason)
{
    u_char                  buf[NGX_HTTP_JUKI_AUDIT_ID_MAX];
    ngx_int_t               rc;
    ngx_str_t               id, *cause;
    ngx_http_juki_tally_t  *t;

    t = &ngx_http_juki_tallies[reason];
    cause = &ngx_http_juki_reasons[reason].name;

    id.data = buf;
    id.len = 0;

    rc = ngx_http_juki_audit_summary(reason, t->second, t->recorded,
                                     t->suppressed, &id);

    if (rc == NGX_OK) {
        ngx_log_error(t->level, ngx_cycle->log, 0,
                      "juki: denied, %V, %ui refusals in second %T: %ui "
                      "recorded one by one, %ui counted in summary record "
                      "\"%V\"", cause, t->recorded + t->suppressed,
                      t->second, t->recorded, t->suppressed, &id);

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "juki: summary record not written: %V, %ui refusals "
                      "in second %T: %ui recorded one by one, %ui counted",
                      cause, t->recorded + t->suppressed, t->second,
                      t->recorded, t->suppressed);
    }

    t->recorded = 0;
    t->suppressed = 0;
}
