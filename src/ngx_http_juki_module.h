
/*
 * juki-gateway: shared types of ngx_http_juki_module.
 */


#ifndef _NGX_HTTP_JUKI_MODULE_H_INCLUDED_
#define _NGX_HTTP_JUKI_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>


#define NGX_HTTP_JUKI_NAME_MAX        64
#define NGX_HTTP_JUKI_HEX_SHA256      64
#define NGX_HTTP_JUKI_KID_LEN         16
#define NGX_HTTP_JUKI_WRITER_LEN      16
#define NGX_HTTP_JUKI_AUDIT_ID_MAX    (NGX_HTTP_JUKI_WRITER_LEN + 1            \
                                       + NGX_INT64_LEN)
#define NGX_HTTP_JUKI_MAC16           16
#define NGX_HTTP_JUKI_WRITER_RAW      8
#define NGX_HTTP_JUKI_MIN_KEY         32
#define NGX_HTTP_JUKI_MAX_KEY         4096


/* agency kinds, in the order of the spec */
#define NGX_HTTP_JUKI_KIND_NATIONAL      1
#define NGX_HTTP_JUKI_KIND_PREFECTURE    2
#define NGX_HTTP_JUKI_KIND_MUNICIPALITY  3
#define NGX_HTTP_JUKI_KIND_DESIGNATED    4
#define NGX_HTTP_JUKI_KIND_PRIVATE       5


/* reasons; the order matches ngx_http_juki_reasons[] */
typedef enum {
    NGX_HTTP_JUKI_ALLOW = 0,
    NGX_HTTP_JUKI_UNVERIFIED_CERTIFICATE,
    NGX_HTTP_JUKI_UNKNOWN_AGENCY,
    NGX_HTTP_JUKI_BAD_PURPOSE,
    NGX_HTTP_JUKI_BAD_OPERATOR,
    NGX_HTTP_JUKI_PURPOSE_NOT_PERMITTED,
    NGX_HTTP_JUKI_RESIDENT_CODE_FORBIDDEN,
    NGX_HTTP_JUKI_BAD_REQUEST,
    NGX_HTTP_JUKI_STOPPED,
    NGX_HTTP_JUKI_RATE_LIMITED,
    NGX_HTTP_JUKI_AUDIT_UNAVAILABLE,
    NGX_HTTP_JUKI_NREASONS
} ngx_http_juki_reason_e;


typedef struct {
    ngx_str_t                    name;        /* "bad_purpose" */
    ngx_str_t                    decision;    /* "deny:bad_purpose" */
    ngx_uint_t                   status;
} ngx_http_juki_reason_t;


typedef struct {
    ngx_uint_t                   interval_us; /* 0: no limit */
    ngx_uint_t                   burst;
    ngx_str_t                    interval;    /* GCRA emission interval, us */
    ngx_str_t                    tolerance;   /* GCRA burst tolerance, us */
} ngx_http_juki_rate_t;


typedef struct {
    ngx_str_t                    code;
    ngx_str_t                    statute;
    ngx_array_t                  methods;     /* of ngx_str_t */
    ngx_array_t                  uris;        /* of ngx_str_t */
    ngx_flag_t                   resident_code;
    ngx_http_juki_rate_t         rate;
    u_char                      *file;
    ngx_uint_t                   line;
} ngx_http_juki_purpose_t;


typedef struct {
    ngx_str_t                    name;
    ngx_uint_t                   kind;
    ngx_str_t                    kind_name;
    ngx_array_t                  purpose_names;  /* of ngx_str_t */
    ngx_array_t                  purposes;       /* of purpose pointers */
    ngx_http_juki_rate_t         rate;
    ngx_uint_t                   index;          /* status slot, from 1 */

    /* Redis keys, built once at configuration time */
    ngx_str_t                    stop_key;       /* juki:{A}:stop */
    ngx_str_t                    rate_key;       /* juki:{A}:rl, a hash */
    ngx_str_t                    audit_key;      /* juki:{A}:audit */

    u_char                      *file;
    ngx_uint_t                   line;
    u_char                      *purposes_file;
    ngx_uint_t                   purposes_line;
} ngx_http_juki_agency_t;


typedef struct {
    ngx_str_t                    address;     /* as written, for logs */
    ngx_addr_t                   addr;        /* resolved once */
    ngx_str_t                    password;
    ngx_str_t                    user;
    ngx_int_t                    db;
    ngx_msec_t                   timeout;
    ngx_uint_t                   connections;
    ngx_uint_t                   replicas;    /* WAIT for them after a call */
} ngx_http_juki_redis_conf_t;


typedef struct {
    ngx_ssl_t                    ssl;         /* CA, client certificate */
    ngx_str_t                    name;        /* NUL-terminated */
} ngx_http_juki_redis_tls_t;


#define NGX_HTTP_JUKI_RULE_DISTINCT      1
#define NGX_HTTP_JUKI_RULE_DENIALS       2

#define NGX_HTTP_JUKI_ACTION_STOP_OPERATOR  1
#define NGX_HTTP_JUKI_ACTION_STOP_AGENCY    2
#define NGX_HTTP_JUKI_ACTION_ALERT          3

#define NGX_HTTP_JUKI_PER_OPERATOR       1
#define NGX_HTTP_JUKI_PER_AGENCY         2


typedef struct {
    ngx_uint_t                   type;
    ngx_uint_t                   threshold;
    ngx_msec_t                   window;
    ngx_uint_t                   action;
    ngx_uint_t                   per;
    ngx_flag_t                   dry_run;
} ngx_http_juki_anomaly_t;


typedef struct {
    ngx_array_t                  purposes;    /* of purpose pointers */
    ngx_array_t                  agencies;    /* of agency pointers */
    ngx_array_t                  anomalies;   /* of ngx_http_juki_anomaly_t */

    /* the function library: juki_ID_batch, and the rules it is given */
    ngx_str_t                    function;
    ngx_str_t                    rules;

    ngx_hash_t                   purpose_hash;
    ngx_hash_t                   fingerprint_hash;
    ngx_hash_t                   subject_hash;
    ngx_hash_keys_arrays_t      *purpose_keys;
    ngx_hash_keys_arrays_t      *fingerprint_keys;
    ngx_hash_keys_arrays_t      *subject_keys;
    ngx_hash_keys_arrays_t      *agency_keys;
    size_t                       subject_max;

    ngx_http_juki_redis_conf_t  *redis;
    ngx_http_juki_redis_tls_t   *redis_tls;   /* NULL: plaintext */

    ngx_str_t                    key_file;
    u_char                       mac_key[32];
    u_char                       subject_key[32];
    u_char                       kid[NGX_HTTP_JUKI_KID_LEN];

    ngx_str_t                    node;

    /* refusals with no agency recorded one by one per client and second */
    ngx_uint_t                   refusal_budget;

    ngx_shm_zone_t              *stats_zone;
    void                        *stats;
    size_t                       stats_size;
} ngx_http_juki_main_conf_t;


/* set when a location of the server has "juki on" */
typedef struct {
    ngx_flag_t                   juki;
} ngx_http_juki_srv_conf_t;


typedef struct {
    ngx_flag_t                   enable;
    ngx_http_complex_value_t    *subject;
    ngx_str_t                    subject_arg;     /* NAME of $arg_NAME */
    ngx_str_t                    subject_header;  /* of $http_NAME: x-a-b */
    ngx_uint_t                   deny_log_level;
    u_char                      *file;
    ngx_uint_t                   line;
} ngx_http_juki_loc_conf_t;


/* the Redis connection layer: ngx_http_juki_redis.c */

typedef struct ngx_http_juki_redis_conn_s  ngx_http_juki_redis_conn_t;
typedef struct ngx_http_juki_cmd_s         ngx_http_juki_cmd_t;
typedef struct ngx_http_juki_call_s        ngx_http_juki_call_t;
typedef struct ngx_http_juki_ctx_s         ngx_http_juki_ctx_t;

/* NGX_ERROR from a handler drops the connection: its chain has a gap */
typedef ngx_int_t (*ngx_http_juki_reply_pt)(ngx_http_juki_cmd_t *cmd,
    redisReply *reply);

struct ngx_http_juki_cmd_s {
    ngx_queue_t                  queue;
    ngx_msec_t                   deadline;
    uint64_t                     sent_us;
    ngx_http_juki_reply_pt       handler;
    void                        *data;       /* NULL once detached */
};

struct ngx_http_juki_redis_conn_s {
    ngx_peer_connection_t        peer;       /* .connection NULL while down */
    ngx_log_t                    log;        /* of NGINX's own lines on it */
    redisReader                 *reader;
    ngx_uint_t                   generation; /* moves on at every close */

    /*
     * the write buffer: commands are appended as requests send them and
     * go out together from a posted write event, at the end of the turn
     * of the event loop; out_sent .. out_len is not written yet
     */
    u_char                      *out;
    size_t                       out_size;
    size_t                       out_sent;
    size_t                       out_len;

    ngx_event_t                  timer;      /* oldest command's deadline */
    ngx_event_t                  reconnect;
    ngx_queue_t                  pending;    /* sent, waiting, in order */
    ngx_uint_t                   npending;
    ngx_msec_t                   backoff;
    ngx_msec_t                   last_attempt;
    ngx_uint_t                   attempts;
    unsigned                     connected:1; /* TCP and TLS up: may write */

    /*
     * group commit (ngx_http_juki_batch.c): calls built and not sent yet,
     * oldest first, the last one open for more records; at most one call
     * is in flight, so a failed call is always its writer's last
     */
    ngx_queue_t                  calls;
    ngx_http_juki_call_t        *inflight;
    ngx_event_t                  flush;

    /* the audit chain of the writer this connection is */
    u_char                       writer[NGX_HTTP_JUKI_WRITER_LEN];
    u_char                       writer_raw[NGX_HTTP_JUKI_WRITER_RAW];
    uint64_t                     seq;
    u_char                       last_mac[NGX_HTTP_JUKI_MAC16];
};


ngx_int_t ngx_http_juki_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_juki_main_conf_t *jmcf);
void ngx_http_juki_redis_exit_worker(void);
ngx_http_juki_redis_conn_t *ngx_http_juki_redis_pick(void);
ngx_http_juki_main_conf_t *ngx_http_juki_redis_main_conf(void);
ngx_int_t ngx_http_juki_redis_send(ngx_http_juki_redis_conn_t *rc,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_juki_cmd_t *cmd);
ngx_int_t ngx_http_juki_redis_send_tail(ngx_http_juki_redis_conn_t *rc,
    int argc, const char **argv, const size_t *argvlen, ngx_uint_t ntail,
    u_char *tail, size_t tail_len, ngx_http_juki_cmd_t *cmd);
void ngx_http_juki_redis_lost(ngx_http_juki_redis_conn_t *rc,
    const char *why);
void ngx_http_juki_redis_up(ngx_http_juki_redis_conn_t *rc);
ngx_http_juki_cmd_t *ngx_http_juki_cmd_alloc(void);
void ngx_http_juki_cmd_free(ngx_http_juki_cmd_t *cmd);
void ngx_http_juki_redis_log(ngx_log_t *log, ngx_uint_t cause,
    const char *fmt, ...);

#define NGX_HTTP_JUKI_LOG_UNAVAILABLE   0
#define NGX_HTTP_JUKI_LOG_TIMEOUT       1
#define NGX_HTTP_JUKI_LOG_REPLY         2
#define NGX_HTTP_JUKI_LOG_COMPLETION    3
#define NGX_HTTP_JUKI_LOG_TLS           4
#define NGX_HTTP_JUKI_LOG_NCAUSES       5


/* TLS to Redis: ngx_http_juki_redis_tls.c */

char *ngx_http_juki_redis_tls(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_juki_redis_tls_start(ngx_connection_t *c,
    ngx_http_juki_redis_tls_t *tls, ngx_connection_handler_pt handler);
ngx_int_t ngx_http_juki_redis_tls_verify(ngx_connection_t *c,
    ngx_http_juki_redis_tls_t *tls, ngx_str_t *address);



/* group commit: ngx_http_juki_batch.c */

#define NGX_HTTP_JUKI_BATCH_MAX       128    /* records in one call */
#define NGX_HTTP_JUKI_RULES_MAX       64     /* juki_anomaly rules */

/* how a record travels in the call (src/ngx_http_juki_function.h) */
#define NGX_HTTP_JUKI_OP_APPEND       'P'
#define NGX_HTTP_JUKI_OP_DENIAL       'D'
#define NGX_HTTP_JUKI_OP_DECIDE       'R'

ngx_int_t ngx_http_juki_batch_conf(ngx_conf_t *cf,
    ngx_http_juki_main_conf_t *jmcf);
ngx_int_t ngx_http_juki_batch_add(ngx_http_juki_redis_conn_t *rc,
    u_char op, ngx_str_t *list, ngx_str_t *element, ngx_str_t *extra,
    ngx_uint_t nextra, ngx_http_juki_ctx_t *ctx);
void ngx_http_juki_batch_init(ngx_http_juki_redis_conn_t *rc,
    ngx_log_t *log);
void ngx_http_juki_batch_abort(ngx_http_juki_redis_conn_t *rc);
void ngx_http_juki_batch_exit(void);
ngx_int_t ngx_http_juki_batch_decode(redisReply *reply, ngx_uint_t ngroups,
    u_char *ops, u_char *decision, uint64_t *retry, ngx_uint_t *limit);


/* policy: ngx_http_juki_policy.c */

ngx_int_t ngx_http_juki_valid_name(ngx_str_t *value, ngx_uint_t lowercase);
ngx_http_juki_agency_t *ngx_http_juki_find_agency(
    ngx_http_juki_main_conf_t *jmcf, ngx_str_t *fingerprint,
    ngx_str_t *subject);
ngx_http_juki_purpose_t *ngx_http_juki_find_purpose(
    ngx_http_juki_main_conf_t *jmcf, ngx_str_t *code);
ngx_uint_t ngx_http_juki_granted(ngx_http_juki_agency_t *agency,
    ngx_http_juki_purpose_t *purpose);
ngx_uint_t ngx_http_juki_in_scope(ngx_http_juki_purpose_t *purpose,
    ngx_str_t *method, ngx_str_t *uri);
ngx_int_t ngx_http_juki_parse_fingerprint(ngx_str_t *value, u_char *hex);
ngx_int_t ngx_http_juki_parse_rate(ngx_str_t *value, ngx_uint_t *interval);


/* certificates: ngx_http_juki_cert.c */

ngx_int_t ngx_http_juki_cert_init(ngx_log_t *log);
ngx_int_t ngx_http_juki_cert_agency(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_str_t *fingerprint,
    ngx_http_juki_agency_t **agency);
ngx_int_t ngx_http_juki_cert_fingerprint(ngx_connection_t *c,
    ngx_str_t *fingerprint);


/* audit records: ngx_http_juki_audit.c */

struct ngx_http_juki_ctx_s {
    ngx_http_juki_agency_t      *agency;
    ngx_http_juki_purpose_t     *purpose;
    ngx_http_juki_reason_e       reason;     /* decided before Redis */
    ngx_str_t                    cert;       /* hex SHA-256 */
    ngx_str_t                    operator;
    ngx_str_t                    purpose_code;
    ngx_str_t                    subject;    /* pseudonym, hex */
    ngx_str_t                    code;       /* the resident code, decoded */
    ngx_str_t                    code_raw;   /* as juki_subject gave it */
    ngx_str_t                    uri;        /* escaped for the record */
    ngx_str_t                    operator_stop_key;
    ngx_http_request_t          *request;
    u_char                       audit_id[NGX_HTTP_JUKI_AUDIT_ID_MAX];
    size_t                       audit_id_len;
    u_char                       awriter[NGX_HTTP_JUKI_WRITER_RAW];
    uint64_t                     aseq;

    /* the call's slot of this request while it waits, NULL otherwise */
    ngx_http_juki_ctx_t        **slot;

    /* the outcome */
    ngx_http_juki_reason_e       outcome;
    ngx_uint_t                   limit;      /* 1 agency, 2 purpose */
    uint64_t                     retry_us;

    ngx_uint_t                   ambiguous;  /* NGX_HTTP_JUKI_AMB_* */

    unsigned                     waiting:1;
    unsigned                     done:1;
    unsigned                     forwarded:1;
    unsigned                     counted:1;  /* in a summary record only */
    unsigned                     completed:1;
    unsigned                     tallied:1;  /* in the status counters */
};


ngx_int_t ngx_http_juki_audit_request(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_ctx_t *ctx);
void ngx_http_juki_audit_completion(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_ctx_t *ctx);
ngx_int_t ngx_http_juki_audit_writer(ngx_http_juki_redis_conn_t *rc);
ngx_int_t ngx_http_juki_audit_summary(ngx_http_juki_reason_e cause,
    time_t second,
    ngx_uint_t recorded, ngx_uint_t suppressed, ngx_str_t *id);
ngx_int_t ngx_http_juki_record_uri(ngx_pool_t *pool, ngx_str_t *uri,
    ngx_str_t *dst);
ngx_int_t ngx_http_juki_mask(ngx_pool_t *pool, ngx_str_t *s,
    ngx_str_t *code);
u_char *ngx_http_juki_mask_repl(ngx_str_t *code, u_char *c);
ngx_int_t ngx_http_juki_foreign_char(ngx_str_t *code, u_char *c);
ngx_uint_t ngx_http_juki_decision_code(ngx_http_juki_reason_e reason);


/* refusals before an agency is known: ngx_http_juki_refusal.c */

void ngx_http_juki_refusal_init_worker(ngx_cycle_t *cycle);
ngx_uint_t ngx_http_juki_refusal_admit(ngx_http_request_t *r,
    ngx_http_juki_main_conf_t *jmcf, ngx_http_juki_reason_e reason,
    ngx_uint_t level);
void ngx_http_juki_refusal_recorded(ngx_http_juki_reason_e reason);
/* ambiguous requests: ngx_http_juki_args.c */

#define NGX_HTTP_JUKI_AMB_REPEATED    0x01
#define NGX_HTTP_JUKI_AMB_SPELLING    0x02
#define NGX_HTTP_JUKI_AMB_SEMICOLON   0x04
#define NGX_HTTP_JUKI_AMB_FRAGMENT    0x08
#define NGX_HTTP_JUKI_AMB_PATH        0x10
#define NGX_HTTP_JUKI_AMB_OVERRIDE    0x20

ngx_int_t ngx_http_juki_args_query(ngx_pool_t *pool, ngx_str_t *args,
    ngx_str_t *name, ngx_array_t *values, ngx_uint_t *verdict);
ngx_int_t ngx_http_juki_args_path(ngx_pool_t *pool, ngx_str_t *target,
    ngx_str_t *uri, ngx_uint_t *verdict);
void ngx_http_juki_args_headers(ngx_list_t *headers, ngx_str_t *subject,
    ngx_uint_t *verdict);
ngx_uint_t ngx_http_juki_args_header(ngx_str_t *key, ngx_str_t *name,
    ngx_uint_t prefix);
char *ngx_http_juki_args_cause(ngx_uint_t verdict);


/* shared counters and juki_status: ngx_http_juki_stats.c */

#define NGX_HTTP_JUKI_STAT_REDIS_ERRORS         0
#define NGX_HTTP_JUKI_STAT_RECONNECTS           1
#define NGX_HTTP_JUKI_STAT_WAITING              2
#define NGX_HTTP_JUKI_STAT_COMPLETION_FAILURES  3
#define NGX_HTTP_JUKI_STAT_ANOMALIES            4

ngx_int_t ngx_http_juki_stats_add_zone(ngx_conf_t *cf,
    ngx_http_juki_main_conf_t *jmcf);
void ngx_http_juki_stats_init_worker(ngx_http_juki_main_conf_t *jmcf);
void ngx_http_juki_stat_request(ngx_http_juki_agency_t *agency,
    ngx_http_juki_reason_e outcome);
void ngx_http_juki_stat_rtt(uint64_t us);
void ngx_http_juki_stat_count(ngx_uint_t counter, ngx_int_t delta);


/* the request path: ngx_http_juki_handler.c */

ngx_int_t ngx_http_juki_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_juki_log_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_juki_subrequest_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_juki_status_handler(ngx_http_request_t *r);
void ngx_http_juki_resume(ngx_http_juki_ctx_t *ctx, ngx_http_request_t *r);

extern ngx_http_juki_reason_t  ngx_http_juki_reasons[];
extern ngx_module_t            ngx_http_juki_module;
extern ngx_uint_t              ngx_http_juki_exiting;


#endif /* _NGX_HTTP_JUKI_MODULE_H_INCLUDED_ */
