
/*
 * juki-gateway: hiredis's async API on NGINX's event loop.
 *
 * Each worker keeps "connections=" connections.  A connection accepts
 * commands from the moment its connect starts; hiredis buffers them and
 * commands of concurrent requests share a write (pipelining).  Replies come
 * in order, so one timer per connection, set to the oldest command's
 * deadline, bounds every command's wait.  Any failure (timeout, an error
 * in the handshake, a disconnect) drops the connection: the pending
 * commands fail at once and the next connection is a new audit writer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"
#include "ngx_http_juki_crypto.h"


#define NGX_HTTP_JUKI_BACKOFF_MIN     100
#define NGX_HTTP_JUKI_BACKOFF_MAX     1000
#define NGX_HTTP_JUKI_RETRY_ON_DEMAND 10


static void ngx_http_juki_redis_connect(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_redis_drop(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_redis_schedule(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_redis_handshake(ngx_http_juki_redis_conn_t *rc);
static ngx_int_t ngx_http_juki_redis_handshake_reply(
    ngx_http_juki_cmd_t *cmd, redisReply *reply);
static void ngx_http_juki_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_juki_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_juki_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_http_juki_redis_read_handler(ngx_event_t *ev);
static void ngx_http_juki_redis_write_handler(ngx_event_t *ev);
static void ngx_http_juki_redis_timer_handler(ngx_event_t *ev);
static void ngx_http_juki_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_juki_redis_add_read(void *privdata);
static void ngx_http_juki_redis_del_read(void *privdata);
static void ngx_http_juki_redis_add_write(void *privdata);
static void ngx_http_juki_redis_del_write(void *privdata);
static void ngx_http_juki_redis_cleanup(void *privdata);
static uint64_t ngx_http_juki_now_us(void);


ngx_uint_t  ngx_http_juki_exiting;


static ngx_http_juki_main_conf_t   *ngx_http_juki_jmcf;
static ngx_http_juki_redis_conn_t  *ngx_http_juki_conns;
static ngx_uint_t                   ngx_http_juki_nconns;
static ngx_uint_t                   ngx_http_juki_next;
static ngx_log_t                   *ngx_http_juki_log;
static ngx_queue_t                  ngx_http_juki_free_cmds;
static u_char                      *ngx_http_juki_fmt;
static size_t                       ngx_http_juki_fmt_size;


ngx_int_t
ngx_http_juki_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_juki_main_conf_t *jmcf)
{
    ngx_uint_t                   i;
    ngx_http_juki_redis_conn_t  *rc;

    ngx_http_juki_jmcf = jmcf;
    ngx_http_juki_log = cycle->log;
    ngx_http_juki_exiting = 0;
    ngx_queue_init(&ngx_http_juki_free_cmds);

    ngx_http_juki_nconns = jmcf->redis->connections;
    ngx_http_juki_conns = ngx_pcalloc(cycle->pool, ngx_http_juki_nconns
                                      * sizeof(ngx_http_juki_redis_conn_t));
    if (ngx_http_juki_conns == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ngx_http_juki_nconns; i++) {
        rc = &ngx_http_juki_conns[i];

        ngx_queue_init(&rc->pending);

        rc->timer.handler = ngx_http_juki_redis_timer_handler;
        rc->timer.data = rc;
        rc->timer.log = cycle->log;

        rc->reconnect.handler = ngx_http_juki_redis_reconnect_handler;
        rc->reconnect.data = rc;
        rc->reconnect.log = cycle->log;
        rc->reconnect.cancelable = 1;

        ngx_http_juki_redis_connect(rc);
    }

    return NGX_OK;
}


void
ngx_http_juki_redis_exit_worker(void)
{
    ngx_uint_t                   i;
    ngx_queue_t                 *q;
    ngx_http_juki_redis_conn_t  *rc;

    if (ngx_http_juki_conns == NULL) {
        return;
    }

    /* no request is resumed from here on: the pending ones are dropped */

    ngx_http_juki_exiting = 1;

    for (i = 0; i < ngx_http_juki_nconns; i++) {
        rc = &ngx_http_juki_conns[i];

        if (rc->reconnect.timer_set) {
            ngx_del_timer(&rc->reconnect);
        }

        ngx_http_juki_redis_drop(rc);

        if (rc->reconnect.timer_set) {
            ngx_del_timer(&rc->reconnect);
        }
    }

    while (!ngx_queue_empty(&ngx_http_juki_free_cmds)) {
        q = ngx_queue_head(&ngx_http_juki_free_cmds);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_juki_cmd_t, queue));
    }

    ngx_http_juki_conns = NULL;

    ngx_free(ngx_http_juki_fmt);
    ngx_http_juki_fmt = NULL;
    ngx_http_juki_fmt_size = 0;

    ngx_http_juki_crypto_cleanup();
}


/* a monotonic clock fine enough for round trips of a few microseconds */

static uint64_t
ngx_http_juki_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* the configuration the worker's connections serve */

ngx_http_juki_main_conf_t *
ngx_http_juki_redis_main_conf(void)
{
    return ngx_http_juki_conns ? ngx_http_juki_jmcf : NULL;
}


/* a connection to send on, or NULL: the caller answers 503 at once */

ngx_http_juki_redis_conn_t *
ngx_http_juki_redis_pick(void)
{
    ngx_uint_t                   i;
    ngx_http_juki_redis_conn_t  *rc;

    if (ngx_http_juki_conns == NULL || ngx_http_juki_exiting) {
        return NULL;
    }

    for (i = 0; i < ngx_http_juki_nconns; i++) {
        rc = &ngx_http_juki_conns[ngx_http_juki_next++ % ngx_http_juki_nconns];

        if (rc->ac) {
            return rc;
        }
    }

    /*
     * none is up: a request may start a connect itself, every 10 ms at
     * most, so that service returns as soon as Redis does, without a flood
     * of requests becoming a flood of connects
     */

    for (i = 0; i < ngx_http_juki_nconns; i++) {
        rc = &ngx_http_juki_conns[i];

        if (ngx_current_msec - rc->last_attempt
            >= NGX_HTTP_JUKI_RETRY_ON_DEMAND)
        {
            if (rc->reconnect.timer_set) {
                ngx_del_timer(&rc->reconnect);
            }

            ngx_http_juki_redis_connect(rc);

            if (rc->ac) {
                return rc;
            }
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_juki_redis_send(ngx_http_juki_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen, ngx_http_juki_cmd_t *cmd)
{
    u_char     *p;
    size_t      len;
    ngx_int_t   i;

    if (rc->ac == NULL) {
        return NGX_ERROR;
    }

    /*
     * the command in RESP, formatted here in one pass into a buffer the
     * worker keeps: hiredis's own formatting grows an sds per argument
     */

    len = sizeof("*\r\n") - 1 + NGX_INT_T_LEN;

    for (i = 0; i < argc; i++) {
        len += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + argvlen[i];
    }

    if (len > ngx_http_juki_fmt_size) {
        ngx_free(ngx_http_juki_fmt);

        ngx_http_juki_fmt_size = ngx_max(len, 4096);
        ngx_http_juki_fmt = ngx_alloc(ngx_http_juki_fmt_size,
                                      ngx_http_juki_log);
        if (ngx_http_juki_fmt == NULL) {
            ngx_http_juki_fmt_size = 0;
            return NGX_ERROR;
        }
    }

    p = ngx_sprintf(ngx_http_juki_fmt, "*%i\r\n", (ngx_int_t) argc);

    for (i = 0; i < argc; i++) {
        p = ngx_sprintf(p, "$%uz\r\n", argvlen[i]);

        if (argvlen[i]) {
            p = ngx_cpymem(p, argv[i], argvlen[i]);
        }

        *p++ = '\r';
        *p++ = '\n';
    }

    if (redisAsyncFormattedCommand(rc->ac, ngx_http_juki_redis_reply, cmd,
                                   (char *) ngx_http_juki_fmt,
                                   p - ngx_http_juki_fmt)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    cmd->deadline = ngx_current_msec + ngx_http_juki_jmcf->redis->timeout;
    cmd->sent_us = ngx_http_juki_now_us();

    ngx_queue_insert_tail(&rc->pending, &cmd->queue);
    rc->npending++;

    if (!rc->timer.timer_set) {
        ngx_add_timer(&rc->timer, ngx_http_juki_jmcf->redis->timeout);
    }

    return NGX_OK;
}


ngx_http_juki_cmd_t *
ngx_http_juki_cmd_alloc(void)
{
    ngx_queue_t          *q;
    ngx_http_juki_cmd_t  *cmd;

    if (!ngx_queue_empty(&ngx_http_juki_free_cmds)) {
        q = ngx_queue_head(&ngx_http_juki_free_cmds);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_juki_cmd_t, queue);

    } else {
        cmd = ngx_alloc(sizeof(ngx_http_juki_cmd_t), ngx_http_juki_log);
        if (cmd == NULL) {
            return NULL;
        }
    }

    ngx_memzero(cmd, sizeof(ngx_http_juki_cmd_t));

    return cmd;
}


void
ngx_http_juki_cmd_free(ngx_http_juki_cmd_t *cmd)
{
    if (ngx_http_juki_conns == NULL) {
        ngx_free(cmd);
        return;
    }

    ngx_queue_insert_head(&ngx_http_juki_free_cmds, &cmd->queue);
}


/* one line per cause and second: a dead Redis must not flood the log */

void
ngx_http_juki_redis_log(ngx_log_t *log, ngx_uint_t cause, const char *fmt,
    ...)
{
    u_char      *p, buf[NGX_MAX_ERROR_STR];
    va_list      args;
    ngx_uint_t   n;

    static time_t      last[NGX_HTTP_JUKI_LOG_NCAUSES];
    static ngx_uint_t  suppressed[NGX_HTTP_JUKI_LOG_NCAUSES];

    if (last[cause] == ngx_time()) {
        suppressed[cause]++;
        return;
    }

    last[cause] = ngx_time();
    n = suppressed[cause];
    suppressed[cause] = 0;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    if (n) {
        p = ngx_slprintf(p, buf + sizeof(buf),
                         " (%ui similar suppressed)", n);
    }

    ngx_log_error(NGX_LOG_ERR, log, 0, "juki: %*s", p - buf, buf);
}


static void
ngx_http_juki_redis_connect(ngx_http_juki_redis_conn_t *rc)
{
    ngx_connection_t            *c;
    redisAsyncContext           *ac;
    ngx_http_juki_redis_conf_t  *rcf;

    rcf = ngx_http_juki_jmcf->redis;
    rc->last_attempt = ngx_current_msec;

    if (rc->attempts++) {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_RECONNECTS, 1);
    }

    /* the address is numeric, resolved at configuration time */

    if (rcf->unix_path.len) {
        ac = redisAsyncConnectUnix((char *) rcf->unix_path.data);

    } else {
        ac = redisAsyncConnect((char *) rcf->host.data, rcf->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_http_juki_log, 0,
                      "juki: redis context allocation failed");
        ngx_http_juki_redis_schedule(rc);
        return;
    }

    if (ac->err) {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_log(ngx_http_juki_log,
                                NGX_HTTP_JUKI_LOG_UNAVAILABLE,
                                "redis %V unavailable: %s", &rcf->address,
                                ac->errstr);
        redisAsyncFree(ac);
        ngx_http_juki_redis_schedule(rc);
        return;
    }

    c = ngx_get_connection(ac->c.fd, ngx_http_juki_log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_juki_redis_schedule(rc);
        return;
    }

    c->data = rc;
    c->read->handler = ngx_http_juki_redis_read_handler;
    c->write->handler = ngx_http_juki_redis_write_handler;
    c->read->log = ngx_http_juki_log;
    c->write->log = ngx_http_juki_log;

    rc->ac = ac;
    rc->bound = ac;
    rc->connection = c;

    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_juki_redis_add_read;
    ac->ev.delRead = ngx_http_juki_redis_del_read;
    ac->ev.addWrite = ngx_http_juki_redis_add_write;
    ac->ev.delWrite = ngx_http_juki_redis_del_write;
    ac->ev.cleanup = ngx_http_juki_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_juki_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_juki_redis_disconnected);

    /* a new connection is a new audit writer, its chain starts afresh */

    if (ngx_http_juki_random_hex(rc->writer, NGX_HTTP_JUKI_WRITER_LEN)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_http_juki_log, 0,
                      "juki: RAND_bytes() failed");
        ngx_http_juki_redis_drop(rc);
        return;
    }

    rc->seq = 0;
    rc->has_prev = 0;

    ngx_http_juki_redis_add_read(rc);
    ngx_http_juki_redis_handshake(rc);
}


static void
ngx_http_juki_redis_handshake(ngx_http_juki_redis_conn_t *rc)
{
    int                          argc;
    u_char                       db[NGX_INT_T_LEN];
    size_t                      *lens;
    ngx_uint_t                   i, n;
    const char                 **argv, *args[4];
    size_t                       argl[4];
    ngx_http_juki_cmd_t         *cmd;
    ngx_http_juki_purpose_t    **purposes;
    ngx_http_juki_redis_conf_t  *rcf;

    rcf = ngx_http_juki_jmcf->redis;

    for (n = 0; n < 4; n++) {

        argc = 0;
        argv = args;
        lens = argl;

        switch (n) {

        case 0:
            if (rcf->password.len == 0) {
                continue;
            }

            args[argc] = "AUTH";
            argl[argc++] = 4;

            if (rcf->user.len) {
                args[argc] = (char *) rcf->user.data;
                argl[argc++] = rcf->user.len;
            }

            args[argc] = (char *) rcf->password.data;
            argl[argc++] = rcf->password.len;
            break;

        case 1:
            if (rcf->db == 0) {
                continue;
            }

            args[argc] = "SELECT";
            argl[argc++] = 6;
            args[argc] = (char *) db;
            argl[argc++] = ngx_sprintf(db, "%i", rcf->db) - db;
            break;

        case 2:
            args[argc] = "SCRIPT";
            argl[argc++] = 6;
            args[argc] = "LOAD";
            argl[argc++] = 4;
            args[argc] = (char *) ngx_http_juki_jmcf->script.data;
            argl[argc++] = ngx_http_juki_jmcf->script.len;
            break;

        default:
            /* the statutes, for jukictl's reports */

            if (ngx_http_juki_jmcf->purposes.nelts == 0) {
                continue;
            }

            argc = 2 + 2 * ngx_http_juki_jmcf->purposes.nelts;

            argv = ngx_alloc(argc * sizeof(char *), ngx_http_juki_log);
            lens = ngx_alloc(argc * sizeof(size_t), ngx_http_juki_log);
            if (argv == NULL || lens == NULL) {
                ngx_free(argv);
                ngx_free(lens);
                ngx_http_juki_redis_drop(rc);
                return;
            }

            argv[0] = "HSET";
            lens[0] = 4;
            argv[1] = "juki:purposes";
            lens[1] = sizeof("juki:purposes") - 1;

            purposes = ngx_http_juki_jmcf->purposes.elts;

            for (i = 0; i < ngx_http_juki_jmcf->purposes.nelts; i++) {
                argv[2 + 2 * i] = (char *) purposes[i]->code.data;
                lens[2 + 2 * i] = purposes[i]->code.len;
                argv[3 + 2 * i] = (char *) purposes[i]->statute.data;
                lens[3 + 2 * i] = purposes[i]->statute.len;
            }
        }

        cmd = ngx_http_juki_cmd_alloc();

        if (cmd == NULL
            || ngx_http_juki_redis_send(rc, argc, argv, lens, cmd) != NGX_OK)
        {
            if (cmd) {
                ngx_http_juki_cmd_free(cmd);
            }

            if (argv != args) {
                ngx_free(argv);
                ngx_free(lens);
            }

            ngx_http_juki_redis_drop(rc);
            return;
        }

        cmd->handler = ngx_http_juki_redis_handshake_reply;
        cmd->data = rc;

        if (argv != args) {
            ngx_free(argv);
            ngx_free(lens);
        }
    }
}


static ngx_int_t
ngx_http_juki_redis_handshake_reply(ngx_http_juki_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_juki_redis_conn_t  *rc = cmd->data;

    if (reply == NULL) {
        return NGX_OK;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_juki_redis_log(ngx_http_juki_log,
                                NGX_HTTP_JUKI_LOG_UNAVAILABLE,
                                "redis %V refused the connection set-up: "
                                "%*s", &ngx_http_juki_jmcf->redis->address,
                                (size_t) ngx_min(reply->len, 200),
                                reply->str);
        return NGX_ERROR;
    }

    if (reply->type == REDIS_REPLY_STRING && reply->len == 40) {

        if (ngx_strncmp(reply->str, ngx_http_juki_jmcf->script_sha, 40) != 0) {
            ngx_log_error(NGX_LOG_CRIT, ngx_http_juki_log, 0,
                          "juki: redis returned an unexpected script sha");
            return NGX_ERROR;
        }

        /* the script is loaded: the connection is up */

        if (rc->backoff) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_http_juki_log, 0,
                          "juki: redis %V connected",
                          &ngx_http_juki_jmcf->redis->address);
        }

        rc->backoff = 0;
    }

    return NGX_OK;
}


static void
ngx_http_juki_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_juki_cmd_t *cmd = privdata;

    ngx_http_juki_redis_conn_t  *rc;

    rc = ac->data;

    ngx_queue_remove(&cmd->queue);
    rc->npending--;

    if (rc->npending == 0 && rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (r) {
        ngx_http_juki_stat_rtt(ngx_http_juki_now_us() - cmd->sent_us);
    }

    if (!ngx_http_juki_exiting && cmd->handler
        && cmd->handler(cmd, r) != NGX_OK && rc->ac == ac)
    {
        /* inside a callback hiredis frees the context once it returns */
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_drop(rc);
    }

    ngx_http_juki_cmd_free(cmd);
}


static void
ngx_http_juki_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_juki_redis_conn_t  *rc = ac->data;

    if (status != REDIS_OK) {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_log(ngx_http_juki_log,
                                NGX_HTTP_JUKI_LOG_UNAVAILABLE,
                                "redis %V unavailable: %s",
                                &ngx_http_juki_jmcf->redis->address,
                                ac->errstr);

        /* hiredis frees the context itself after this callback */

        rc->ac = NULL;
        ngx_http_juki_redis_schedule(rc);
    }
}


static void
ngx_http_juki_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_http_juki_redis_conn_t  *rc = ac->data;

    if (status != REDIS_OK && !ngx_http_juki_exiting) {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_log(ngx_http_juki_log,
                                NGX_HTTP_JUKI_LOG_UNAVAILABLE,
                                "redis %V connection lost: %s",
                                &ngx_http_juki_jmcf->redis->address,
                                ac->errstr);
    }

    if (rc->ac == ac) {
        rc->ac = NULL;
        ngx_http_juki_redis_schedule(rc);
    }
}


/* frees the context; pending commands are called back with no reply */

static void
ngx_http_juki_redis_drop(ngx_http_juki_redis_conn_t *rc)
{
    redisAsyncContext  *ac;

    ac = rc->ac;

    if (ac == NULL) {
        return;
    }

    rc->ac = NULL;

    redisAsyncFree(ac);

    ngx_http_juki_redis_schedule(rc);
}


static void
ngx_http_juki_redis_schedule(ngx_http_juki_redis_conn_t *rc)
{
    if (ngx_http_juki_exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    rc->backoff = rc->backoff ? ngx_min(rc->backoff * 2,
                                        NGX_HTTP_JUKI_BACKOFF_MAX)
                              : NGX_HTTP_JUKI_BACKOFF_MIN;

    if (!rc->reconnect.timer_set) {
        ngx_add_timer(&rc->reconnect, rc->backoff);
    }
}


static void
ngx_http_juki_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c = ev->data;
    ngx_http_juki_redis_conn_t  *rc = c->data;

    if (rc->ac) {
        redisAsyncHandleRead(rc->ac);
    }
}


static void
ngx_http_juki_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c = ev->data;
    ngx_http_juki_redis_conn_t  *rc = c->data;

    if (rc->ac) {
        redisAsyncHandleWrite(rc->ac);
    }
}


static void
ngx_http_juki_redis_timer_handler(ngx_event_t *ev)
{
    ngx_http_juki_redis_conn_t  *rc = ev->data;

    ngx_queue_t          *q;
    ngx_msec_int_t        left;
    ngx_http_juki_cmd_t  *cmd;

    if (ngx_queue_empty(&rc->pending)) {
        return;
    }

    q = ngx_queue_head(&rc->pending);
    cmd = ngx_queue_data(q, ngx_http_juki_cmd_t, queue);

    left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);

    if (left > 0) {
        /* the timer was set for an older command that has had its reply */
        ngx_add_timer(&rc->timer, (ngx_msec_t) left);
        return;
    }

    ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);

    ngx_http_juki_redis_log(ngx_http_juki_log, NGX_HTTP_JUKI_LOG_TIMEOUT,
                            "redis %V timed out after %M ms, "
                            "%ui commands pending",
                            &ngx_http_juki_jmcf->redis->address,
                            ngx_http_juki_jmcf->redis->timeout,
                            rc->npending);

    ngx_http_juki_redis_drop(rc);
}


static void
ngx_http_juki_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_juki_redis_conn_t  *rc = ev->data;

    if (rc->ac == NULL && !ngx_exiting && !ngx_http_juki_exiting) {
        ngx_http_juki_redis_connect(rc);
    }
}


/*
 * hiredis reads at most 16 KiB a call: the events are level-triggered so
 * that a larger backlog of replies is read on the next turn of the loop
 */

static void
ngx_http_juki_redis_add_read(void *privdata)
{
    ngx_http_juki_redis_conn_t  *rc = privdata;

    if (rc->connection && !rc->connection->read->active) {
        if (ngx_add_event(rc->connection->read, NGX_READ_EVENT,
                          NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_http_juki_log, 0,
                          "juki: cannot add the redis read event");
        }
    }
}


static void
ngx_http_juki_redis_del_read(void *privdata)
{
    ngx_http_juki_redis_conn_t  *rc = privdata;

    if (rc->connection && rc->connection->read->active) {
        (void) ngx_del_event(rc->connection->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_juki_redis_add_write(void *privdata)
{
    ngx_http_juki_redis_conn_t  *rc = privdata;

    ngx_event_t  *wev;

    if (rc->connection == NULL) {
        return;
    }

    wev = rc->connection->write;

    if (!wev->active) {
        if (ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, ngx_http_juki_log, 0,
                          "juki: cannot add the redis write event");
        }
    }

    /*
     * once connected, write at the end of this turn of the loop: the
     * commands of every request handled in it go out in one write
     */

    if (rc->ac && (rc->ac->c.flags & REDIS_CONNECTED) && !wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


static void
ngx_http_juki_redis_del_write(void *privdata)
{
    ngx_http_juki_redis_conn_t  *rc = privdata;

    if (rc->connection && rc->connection->write->active) {
        (void) ngx_del_event(rc->connection->write, NGX_WRITE_EVENT, 0);
    }
}


/* the fd is NGINX's to close: hiredis must not close it a second time */

static void
ngx_http_juki_redis_cleanup(void *privdata)
{
    ngx_http_juki_redis_conn_t  *rc = privdata;

    ngx_connection_t  *c;

    c = rc->connection;

    if (c == NULL) {
        return;
    }

    rc->connection = NULL;

    ngx_close_connection(c);

    rc->bound->c.fd = -1;
    rc->bound = NULL;
}
