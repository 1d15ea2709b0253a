
/*
 * juki-gateway: counters shared by the workers, and the juki_status
 * handler that shows them as JSON or in the Prometheus text format.
 *
 * The zone's name carries a checksum of the agency list, so a reload that
 * changes the agencies gets a zone of its own while old workers finish
 * with theirs; a reload that does not keeps the counters.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


#define NGX_HTTP_JUKI_NBUCKETS  11


typedef struct {
    ngx_atomic_t                 rtt[NGX_HTTP_JUKI_NBUCKETS];
    ngx_atomic_t                 rtt_sum_us;
    ngx_atomic_t                 rtt_count;
    ngx_atomic_t                 redis_errors;
    ngx_atomic_t                 reconnects;
    ngx_atomic_t                 waiting;
    ngx_atomic_t                 completion_failures;
    ngx_atomic_t                 anomalies;
    ngx_uint_t                   nagencies;
    /* (nagencies + 1) * NGX_HTTP_JUKI_NREASONS request counters follow */
    ngx_atomic_t                 requests[1];
} ngx_http_juki_stats_t;


static ngx_int_t ngx_http_juki_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_juki_status_json(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_stats_t *st,
    ngx_chain_t *out);
static ngx_int_t ngx_http_juki_status_prometheus(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_stats_t *st,
    ngx_chain_t *out);
static ngx_buf_t *ngx_http_juki_status_buf(ngx_http_request_t *r,
    ngx_chain_t **last, size_t size);
static ngx_str_t *ngx_http_juki_agency_name(ngx_http_juki_main_conf_t *jmcf,
    ngx_uint_t slot);


/* upper bounds of the round-trip buckets, in microseconds */
static uint64_t  ngx_http_juki_rtt_bounds[NGX_HTTP_JUKI_NBUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    (uint64_t) -1
};

static char  *ngx_http_juki_rtt_le[NGX_HTTP_JUKI_NBUCKETS] = {
    "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05", "0.1", "0.25", "+Inf"
};

static ngx_str_t  ngx_http_juki_no_agency = ngx_string("");

static ngx_http_juki_stats_t  *ngx_http_juki_stats;


ngx_int_t
ngx_http_juki_stats_add_zone(ngx_conf_t *cf, ngx_http_juki_main_conf_t *jmcf)
{
    size_t                    size;
    uint32_t                  crc;
    ngx_str_t                 name;
    ngx_uint_t                i;
    ngx_http_juki_agency_t  **agencies;

    agencies = jmcf->agencies.elts;

    ngx_crc32_init(crc);

    for (i = 0; i < jmcf->agencies.nelts; i++) {
        agencies[i]->index = i + 1;
        ngx_crc32_update(&crc, agencies[i]->name.data,
                         agencies[i]->name.len + 1);
    }

    ngx_crc32_final(crc);

    name.data = ngx_pnalloc(cf->pool, sizeof("juki_status_") + 8);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    name.len = ngx_sprintf(name.data, "juki_status_%08xD", crc) - name.data;

    size = sizeof(ngx_http_juki_stats_t)
           + (jmcf->agencies.nelts + 1) * NGX_HTTP_JUKI_NREASONS
             * sizeof(ngx_atomic_t);

    jmcf->stats_size = size;

    /* the slab allocator wants eight pages at least */
    size = ngx_max(ngx_align(2 * size, ngx_pagesize), 8 * ngx_pagesize);

    jmcf->stats_zone = ngx_shared_memory_add(cf, &name, size,
                                             &ngx_http_juki_module);
    if (jmcf->stats_zone == NULL) {
        return NGX_ERROR;
    }

    jmcf->stats_zone->init = ngx_http_juki_stats_init_zone;
    jmcf->stats_zone->data = jmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_juki_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_juki_main_conf_t *jmcf = shm_zone->data;

    ngx_slab_pool_t        *shpool;
    ngx_http_juki_stats_t  *st;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* the same agencies as before the reload: keep counting */
        jmcf->stats = data;
        shm_zone->data = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        jmcf->stats = shpool->data;
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    st = ngx_slab_calloc(shpool, jmcf->stats_size);
    if (st == NULL) {
        return NGX_ERROR;
    }

    st->nagencies = jmcf->agencies.nelts;

    shpool->data = st;
    jmcf->stats = st;
    shm_zone->data = st;

    return NGX_OK;
}


void
ngx_http_juki_stats_init_worker(ngx_http_juki_main_conf_t *jmcf)
{
    ngx_http_juki_stats = jmcf->stats;
}


void
ngx_http_juki_stat_request(ngx_http_juki_agency_t *agency,
    ngx_http_juki_reason_e outcome)
{
    ngx_uint_t  slot;

    if (ngx_http_juki_stats == NULL) {
        return;
    }

    slot = agency ? agency->index : 0;

    if (slot > ngx_http_juki_stats->nagencies) {
        return;
    }

    (void) ngx_atomic_fetch_add(
        &ngx_http_juki_stats->requests[slot * NGX_HTTP_JUKI_NREASONS
                                       + outcome], 1);
}


void
ngx_http_juki_stat_rtt(uint64_t us)
{
    ngx_uint_t  i;

    if (ngx_http_juki_stats == NULL) {
        return;
    }

    for (i = 0; us > ngx_http_juki_rtt_bounds[i]; i++) {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&ngx_http_juki_stats->rtt[i], 1);
    (void) ngx_atomic_fetch_add(&ngx_http_juki_stats->rtt_sum_us,
                                (ngx_atomic_int_t) us);
    (void) ngx_atomic_fetch_add(&ngx_http_juki_stats->rtt_count, 1);
}


void
ngx_http_juki_stat_count(ngx_uint_t counter, ngx_int_t delta)
{
    ngx_atomic_t  *a;

    if (ngx_http_juki_stats == NULL) {
        return;
    }

    switch (counter) {
    case NGX_HTTP_JUKI_STAT_REDIS_ERRORS:
        a = &ngx_http_juki_stats->redis_errors;
        break;
    case NGX_HTTP_JUKI_STAT_RECONNECTS:
        a = &ngx_http_juki_stats->reconnects;
        break;
    case NGX_HTTP_JUKI_STAT_WAITING:
        a = &ngx_http_juki_stats->waiting;
        break;
    case NGX_HTTP_JUKI_STAT_COMPLETION_FAILURES:
        a = &ngx_http_juki_stats->completion_failures;
        break;
    default:
        a = &ngx_http_juki_stats->anomalies;
    }

    (void) ngx_atomic_fetch_add(a, delta);
}


ngx_int_t
ngx_http_juki_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_str_t                   format;
    ngx_uint_t                  prometheus;
    ngx_chain_t                 out, *cl;
    ngx_table_elt_t            *accept;
    ngx_http_juki_stats_t      *st;
    ngx_http_juki_main_conf_t  *jmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    jmcf = ngx_http_get_module_main_conf(r, ngx_http_juki_module);
    st = jmcf->stats;

    if (st == NULL) {
        /* no juki_redis: there is nothing to count */
        return NGX_HTTP_NOT_FOUND;
    }

    prometheus = 0;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        if (format.len == 10
            && ngx_strncmp(format.data, "prometheus", 10) == 0)
        {
            prometheus = 1;

        } else if (format.len != 4
                   || ngx_strncmp(format.data, "json", 4) != 0)
        {
            return NGX_HTTP_BAD_REQUEST;
        }

    } else {
        accept = r->headers_in.accept;

        if (accept
            && ngx_strlcasestrn(accept->value.data,
                                accept->value.data + accept->value.len,
                                (u_char *) "text/plain", 10 - 1)
               != NULL)
        {
            prometheus = 1;
        }
    }

    out.buf = NULL;
    out.next = NULL;

    rc = prometheus ? ngx_http_juki_status_prometheus(r, jmcf, st, &out)
                    : ngx_http_juki_status_json(r, jmcf, st, &out);
    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = NGX_HTTP_OK;

    if (prometheus) {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = 0;

    for (cl = &out; cl; cl = cl->next) {
        r->headers_out.content_length_n += cl->buf->last - cl->buf->pos;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}


static ngx_str_t *
ngx_http_juki_agency_name(ngx_http_juki_main_conf_t *jmcf, ngx_uint_t slot)
{
    ngx_http_juki_agency_t  **agencies;

    if (slot == 0) {
        return &ngx_http_juki_no_agency;
    }

    agencies = jmcf->agencies.elts;

    return &agencies[slot - 1]->name;
}


/* the room one agency's lines need, with the names of the reasons */

#define NGX_HTTP_JUKI_LINE  (NGX_HTTP_JUKI_NAME_MAX + NGX_ATOMIC_T_LEN + 128)


static ngx_int_t
ngx_http_juki_status_json(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_stats_t *st,
    ngx_chain_t *out)
{
    ngx_buf_t    *b;
    ngx_uint_t    slot, i;
    ngx_chain_t  *last;
    ngx_atomic_uint_t  cum;

    last = out;

    for (slot = 0; slot <= st->nagencies; slot++) {
        b = ngx_http_juki_status_buf(r, &last,
                                     NGX_HTTP_JUKI_NREASONS
                                     * NGX_HTTP_JUKI_LINE);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->last = ngx_sprintf(b->last, "%s{\"agency\":\"%V\",\"decisions\":{",
                              slot ? "," : "{\"requests\":[",
                              ngx_http_juki_agency_name(jmcf, slot));

        for (i = 0; i < NGX_HTTP_JUKI_NREASONS; i++) {
            b->last = ngx_sprintf(b->last, "%s\"%V\":%uA", i ? "," : "",
                                  &ngx_http_juki_reasons[i].decision,
                                  st->requests[slot * NGX_HTTP_JUKI_NREASONS
                                               + i]);
        }

        *b->last++ = '}';
        *b->last++ = '}';
    }

    b = ngx_http_juki_status_buf(r, &last,
                                 (NGX_HTTP_JUKI_NBUCKETS + 8)
                                 * NGX_HTTP_JUKI_LINE);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "],\"redis\":{\"roundtrip\":{\"buckets\":{");

    cum = 0;

    for (i = 0; i < NGX_HTTP_JUKI_NBUCKETS; i++) {
        cum += st->rtt[i];
        b->last = ngx_sprintf(b->last, "%s\"%s\":%uA", i ? "," : "",
                              ngx_http_juki_rtt_le[i], cum);
    }

    b->last = ngx_sprintf(b->last,
                          "},\"sum_seconds\":%uA.%06uA,\"count\":%uA},"
                          "\"errors\":%uA,\"reconnects\":%uA,"
                          "\"waiting\":%A},"
                          "\"completion_failures\":%uA,"
                          "\"anomalies_fired\":%uA}\n",
                          st->rtt_sum_us / 1000000, st->rtt_sum_us % 1000000,
                          st->rtt_count, st->redis_errors, st->reconnects,
                          (ngx_atomic_int_t) st->waiting,
                          st->completion_failures, st->anomalies);

    b->last_buf = 1;
    b->last_in_chain = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_juki_status_prometheus(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_stats_t *st,
    ngx_chain_t *out)
{
    ngx_buf_t          *b;
    ngx_uint_t          slot, i;
    ngx_chain_t        *last;
    ngx_atomic_uint_t   cum;

    last = out;

    b = ngx_http_juki_status_buf(r, &last, 256);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
        "# HELP juki_requests_total Requests decided by the gateway, "
        "by agency and decision.\n"
        "# TYPE juki_requests_total counter\n");

    for (slot = 0; slot <= st->nagencies; slot++) {
        b = ngx_http_juki_status_buf(r, &last,
                                     NGX_HTTP_JUKI_NREASONS
                                     * NGX_HTTP_JUKI_LINE);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        for (i = 0; i < NGX_HTTP_JUKI_NREASONS; i++) {
            b->last = ngx_sprintf(b->last, "juki_requests_total{agency=\"%V\","
                                  "decision=\"%s\",reason=\"%V\"} %uA\n",
                                  ngx_http_juki_agency_name(jmcf, slot),
                                  i == NGX_HTTP_JUKI_ALLOW ? "allow"
                                  : i == NGX_HTTP_JUKI_AUDIT_UNAVAILABLE
                                    ? "error" : "deny",
                                  i == NGX_HTTP_JUKI_ALLOW
                                  ? &ngx_http_juki_no_agency
                                  : &ngx_http_juki_reasons[i].name,
                                  st->requests[slot * NGX_HTTP_JUKI_NREASONS
                                               + i]);
        }
    }

    b = ngx_http_juki_status_buf(r, &last,
                                 (NGX_HTTP_JUKI_NBUCKETS + 16)
                                 * NGX_HTTP_JUKI_LINE);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
        "# HELP juki_redis_roundtrip_seconds Time from sending a command "
        "to Redis to its reply.\n"
        "# TYPE juki_redis_roundtrip_seconds histogram\n");

    cum = 0;

    for (i = 0; i < NGX_HTTP_JUKI_NBUCKETS; i++) {
        cum += st->rtt[i];
        b->last = ngx_sprintf(b->last,
                              "juki_redis_roundtrip_seconds_bucket"
                              "{le=\"%s\"} %uA\n",
                              ngx_http_juki_rtt_le[i], cum);
    }

    b->last = ngx_sprintf(b->last,
        "juki_redis_roundtrip_seconds_sum %uA.%06uA\n"
        "juki_redis_roundtrip_seconds_count %uA\n"
        "# HELP juki_redis_errors_total Redis failures: refused connects, "
        "timeouts, lost connections, error replies.\n"
        "# TYPE juki_redis_errors_total counter\n"
        "juki_redis_errors_total %uA\n"
        "# HELP juki_redis_reconnects_total Connections to Redis opened "
        "again after a failure.\n"
        "# TYPE juki_redis_reconnects_total counter\n"
        "juki_redis_reconnects_total %uA\n"
        "# HELP juki_requests_waiting Requests waiting for Redis now.\n"
        "# TYPE juki_requests_waiting gauge\n"
        "juki_requests_waiting %A\n"
        "# HELP juki_completion_failures_total Completion records that "
        "could not be written.\n"
        "# TYPE juki_completion_failures_total counter\n"
        "juki_completion_failures_total %uA\n"
        "# HELP juki_anomalies_total Anomaly rules that fired.\n"
        "# TYPE juki_anomalies_total counter\n"
        "juki_anomalies_total %uA\n",
        st->rtt_sum_us / 1000000, st->rtt_sum_us % 1000000, st->rtt_count,
        st->redis_errors, st->reconnects, (ngx_atomic_int_t) st->waiting,
        st->completion_failures, st->anomalies);

    b->last_buf = 1;
    b->last_in_chain = 1;

    return NGX_OK;
}


/* a new buffer at the end of the chain; the first one fills *out itself */

static ngx_buf_t *
ngx_http_juki_status_buf(ngx_http_request_t *r, ngx_chain_t **last,
    size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NULL;
    }

    if ((*last)->buf == NULL) {
        (*last)->buf = b;
        return b;
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;
    (*last)->next = cl;
    *last = cl;

    return b;
}
