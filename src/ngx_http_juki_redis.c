
/*
 * juki-gateway: the Redis connection layer, on NGINX's own sockets.
 *
 * Each worker keeps "connections=" connections, opened with NGINX's peer
 * connection (and its SSL layer when juki_redis_tls is set); hiredis only
 * parses the replies (redisReader).  A connection accepts commands from
 * the moment its connect starts: they are appended to its write buffer,
 * and a posted write event sends everything one turn of the event loop
 * queued in one write (pipelining).  Replies come in order, so a FIFO of
 * pending commands matches them, and one timer per connection, set to the
 * oldest command's deadline, bounds every command's wait.  Any failure (a
 * timeout, a failed connect or TLS handshake, an error in the set-up, a
 * disconnect) drops the connection: the pending commands fail at once and
 * the next connection is a new audit writer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_juki_module.h"
#include "ngx_http_juki_crypto.h"


#define NGX_HTTP_JUKI_BACKOFF_MIN     100
#define NGX_HTTP_JUKI_BACKOFF_MAX     1000
#define NGX_HTTP_JUKI_RETRY_ON_DEMAND 10
#define NGX_HTTP_JUKI_OUT_MIN         4096
#define NGX_HTTP_JUKI_OUT_KEEP        65536
#define NGX_HTTP_JUKI_READ_SIZE       16384


static void ngx_http_juki_redis_connect(ngx_http_juki_redis_conn_t *rc);
static ngx_int_t ngx_http_juki_redis_test_connect(ngx_connection_t *c);
static void ngx_http_juki_redis_connected(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_redis_tls_done(ngx_connection_t *c);
static void ngx_http_juki_redis_ready(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_redis_handshake(ngx_http_juki_redis_conn_t *rc);
static ngx_int_t ngx_http_juki_redis_handshake_reply(
    ngx_http_juki_cmd_t *cmd, redisReply *reply);
static ngx_int_t ngx_http_juki_redis_grow(ngx_http_juki_redis_conn_t *rc,
    size_t len);
static void ngx_http_juki_redis_flush(ngx_http_juki_redis_conn_t *rc);
static ngx_int_t ngx_http_juki_redis_replies(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_redis_drop(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_redis_schedule(ngx_http_juki_redis_conn_t *rc);
static void ngx_http_juki_redis_read_handler(ngx_event_t *rev);
static void ngx_http_juki_redis_write_handler(ngx_event_t *wev);
static void ngx_http_juki_redis_timer_handler(ngx_event_t *ev);
static void ngx_http_juki_redis_reconnect_handler(ngx_event_t *ev);
static u_char *ngx_http_juki_redis_log_context(ngx_log_t *log, u_char *buf,
    size_t len);
static void ngx_http_juki_redis_log_writer(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len);
static uint64_t ngx_http_juki_now_us(void);


ngx_uint_t  ngx_http_juki_exiting;


static ngx_http_juki_main_conf_t   *ngx_http_juki_jmcf;
static ngx_http_juki_redis_conn_t  *ngx_http_juki_conns;
static ngx_uint_t                   ngx_http_juki_nconns;
static ngx_uint_t                   ngx_http_juki_next;
static ngx_log_t                   *ngx_http_juki_log;
static ngx_queue_t                  ngx_http_juki_free_cmds;


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
        ngx_http_juki_batch_init(rc, cycle->log);

        /*
         * NGINX's own lines about the socket (connect(), SSL, recv())
         * go through a writer that limits them as ngx_http_juki_redis_log()
         * limits ours: a dead Redis must not flood the log
         */

        rc->log = *cycle->log;
        rc->log.connection = 0;
        rc->log.handler = ngx_http_juki_redis_log_context;
        rc->log.data = rc;
        rc->log.writer = ngx_http_juki_redis_log_writer;
        rc->log.wdata = cycle->log;
        rc->log.action = NULL;
        rc->log.next = NULL;

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

        ngx_free(rc->out);
        rc->out = NULL;
        rc->out_size = 0;
    }

    while (!ngx_queue_empty(&ngx_http_juki_free_cmds)) {
        q = ngx_queue_head(&ngx_http_juki_free_cmds);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_juki_cmd_t, queue));
    }

    ngx_http_juki_batch_exit();

    ngx_http_juki_conns = NULL;

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

        if (rc->peer.connection) {
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

            if (rc->peer.connection) {
                return rc;
            }
        }
    }

    return NULL;
}


/*
 * Appends the command to the connection's write buffer and queues it for
 * its reply.  Nothing is written here: the posted write event sends, at
 * the end of this turn of the event loop, every command queued in it, in
 * one write.
 */

ngx_int_t
ngx_http_juki_redis_send(ngx_http_juki_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen, ngx_http_juki_cmd_t *cmd)
{
    return ngx_http_juki_redis_send_tail(rc, argc, argv, argvlen, 0, NULL, 0,
                                         cmd);
}


/*
 * The same, with NTAIL more arguments already in RESP (a call's records,
 * formatted as they came); a deadline the caller set in cmd is kept
 */

ngx_int_t
ngx_http_juki_redis_send_tail(ngx_http_juki_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen, ngx_uint_t ntail, u_char *tail,
    size_t tail_len, ngx_http_juki_cmd_t *cmd)
{
    u_char            *p;
    size_t             len;
    ngx_int_t          i;
    ngx_msec_int_t     left;
    ngx_event_t       *wev;
    ngx_connection_t  *c;

    c = rc->peer.connection;

    if (c == NULL) {
        return NGX_ERROR;
    }

    /* RESP, formatted in one pass straight into the write buffer */

    len = sizeof("*\r\n") - 1 + NGX_INT_T_LEN + tail_len;

    for (i = 0; i < argc; i++) {
        len += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + argvlen[i];
    }

    if (rc->out_size - rc->out_len < len
        && ngx_http_juki_redis_grow(rc, len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_sprintf(rc->out + rc->out_len, "*%ui\r\n",
                    (ngx_uint_t) argc + ntail);

    for (i = 0; i < argc; i++) {
        p = ngx_sprintf(p, "$%uz\r\n", argvlen[i]);

        if (argvlen[i]) {
            p = ngx_cpymem(p, argv[i], argvlen[i]);
        }

        *p++ = '\r';
        *p++ = '\n';
    }

    if (tail_len) {
        p = ngx_cpymem(p, tail, tail_len);
    }

    rc->out_len = p - rc->out;

    if (cmd->deadline == 0) {
        cmd->deadline = ngx_current_msec + ngx_http_juki_jmcf->redis->timeout;
    }

    cmd->sent_us = ngx_http_juki_now_us();

    ngx_queue_insert_tail(&rc->pending, &cmd->queue);
    rc->npending++;

    if (!rc->timer.timer_set) {
        left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);
        ngx_add_timer(&rc->timer, left > 0 ? (ngx_msec_t) left : 1);
    }

    /* before the connection is up, its completion writes the buffer */

    wev = c->write;

    if (rc->connected && !wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }

    return NGX_OK;
}


/*
 * Room for len more bytes.  The bytes not written yet move to the start
 * of the new buffer: an SSL_write() to be repeated sees the same bytes at
 * another address, which SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows
 */

static ngx_int_t
ngx_http_juki_redis_grow(ngx_http_juki_redis_conn_t *rc, size_t len)
{
    u_char  *out;
    size_t   size, unsent;

    unsent = rc->out_len - rc->out_sent;

    size = ngx_max(rc->out_size * 2, NGX_HTTP_JUKI_OUT_MIN);

    while (size < unsent + len) {
        size *= 2;
    }

    out = ngx_alloc(size, ngx_http_juki_log);
    if (out == NULL) {
        return NGX_ERROR;
    }

    if (unsent) {
        ngx_memcpy(out, rc->out + rc->out_sent, unsent);
    }

    ngx_free(rc->out);

    rc->out = out;
    rc->out_size = size;
    rc->out_sent = 0;
    rc->out_len = unsent;

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


static u_char *
ngx_http_juki_redis_log_context(ngx_log_t *log, u_char *buf, size_t len)
{
    if (log->action == NULL) {
        return buf;
    }

    return ngx_snprintf(buf, len, " while %s redis %V", log->action,
                        &ngx_http_juki_jmcf->redis->address);
}


/*
 * NGINX formatted the line for the error logs: it is written to them, at
 * most one line a second per level (an info line does not hide an error),
 * the count of those left out in the next one
 */

static void
ngx_http_juki_redis_log_writer(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len)
{
    u_char      *p, line[NGX_MAX_ERROR_STR];
    ngx_log_t   *l;
    ngx_uint_t   n;

    static time_t      last[NGX_LOG_DEBUG];
    static ngx_uint_t  suppressed[NGX_LOG_DEBUG];

    if (level < NGX_LOG_DEBUG) {

        if (last[level] == ngx_time()) {
            suppressed[level]++;
            return;
        }

        last[level] = ngx_time();
        n = suppressed[level];
        suppressed[level] = 0;

        if (n && len > NGX_LINEFEED_SIZE && len <= sizeof(line)) {
            p = ngx_cpymem(line, buf, len - NGX_LINEFEED_SIZE);
            p = ngx_slprintf(p, line + sizeof(line) - NGX_LINEFEED_SIZE,
                             " (%ui similar suppressed)", n);
            ngx_linefeed(p);

            buf = line;
            len = p - line;
        }
    }

    for (l = log->wdata; l; l = l->next) {

        if (l->log_level < level) {
            break;
        }

        if (l->writer) {
            l->writer(l, level, buf, len);
            continue;
        }

        (void) ngx_write_fd(l->file->fd, buf, len);
    }
}


static void
ngx_http_juki_redis_connect(ngx_http_juki_redis_conn_t *rc)
{
    ngx_int_t                    n;
    ngx_connection_t            *c;
    ngx_http_juki_redis_conf_t  *rcf;

    rcf = ngx_http_juki_jmcf->redis;
    rc->last_attempt = ngx_current_msec;

    if (rc->attempts++) {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_RECONNECTS, 1);
    }

    rc->reader = redisReaderCreate();
    if (rc->reader == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_http_juki_log, 0,
                      "juki: redis reader allocation failed");
        ngx_http_juki_redis_schedule(rc);
        return;
    }

    /* the address is numeric, resolved at configuration time */

    ngx_memzero(&rc->peer, sizeof(ngx_peer_connection_t));

    rc->peer.sockaddr = rcf->addr.sockaddr;
    rc->peer.socklen = rcf->addr.socklen;
    rc->peer.name = &rcf->address;
    rc->peer.get = ngx_event_get_peer;
    rc->peer.log = &rc->log;
    rc->peer.log_error = NGX_ERROR_ERR;
    rc->peer.so_keepalive = 1;

    rc->log.connection = 0;
    rc->log.action = "connecting to";

    n = ngx_event_connect_peer(&rc->peer);

    if (n != NGX_OK && n != NGX_AGAIN) {
        /* NGINX logged why */
        rc->peer.connection = NULL;

        redisReaderFree(rc->reader);
        rc->reader = NULL;

        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_log(ngx_http_juki_log,
                                NGX_HTTP_JUKI_LOG_UNAVAILABLE,
                                "redis %V unavailable: cannot connect",
                                &rcf->address);
        ngx_http_juki_redis_schedule(rc);
        return;
    }

    c = rc->peer.connection;

    c->data = rc;
    c->read->handler = ngx_http_juki_redis_read_handler;
    c->write->handler = ngx_http_juki_redis_write_handler;

    rc->log.connection = c->number;
    rc->connected = 0;
    rc->out_sent = 0;
    rc->out_len = 0;

    /* a new connection is a new audit writer, its chain starts afresh */

    if (RAND_bytes(rc->writer_raw, NGX_HTTP_JUKI_WRITER_RAW) != 1) {
        ngx_log_error(NGX_LOG_ALERT, ngx_http_juki_log, 0,
                      "juki: RAND_bytes() failed");
        ngx_http_juki_redis_drop(rc);
        return;
    }

    ngx_hex_dump(rc->writer, rc->writer_raw, NGX_HTTP_JUKI_WRITER_RAW);
    rc->seq = 0;
    ngx_memzero(rc->last_mac, NGX_HTTP_JUKI_MAC16);

    /* commands are small and go out at once, as hiredis had it */

    if (rcf->addr.sockaddr->sa_family != AF_UNIX
        && ngx_tcp_nodelay(c) != NGX_OK)
    {
        ngx_http_juki_redis_drop(rc);
        return;
    }

    /*
     * the set-up goes first in the buffer, before any request's command;
     * the writer's first record, which says who it is, opens its first
     * call: a missing function library shows there
     */

    ngx_http_juki_redis_handshake(rc);

    if (rc->peer.connection != c) {
        return;
    }

    if (ngx_http_juki_audit_writer(rc) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, ngx_http_juki_log, 0,
                      "juki: the writer record could not be made");
        ngx_http_juki_redis_drop(rc);
        return;
    }

    if (n == NGX_OK && rc->peer.connection == c) {
        ngx_http_juki_redis_connected(rc);
    }
}


static ngx_int_t
ngx_http_juki_redis_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

#if (NGX_HAVE_KQUEUE)

    if (ngx_event_flags & NGX_USE_KQUEUE_EVENT) {
        if (c->write->pending_eof || c->read->pending_eof) {
            err = c->write->pending_eof ? c->write->kq_errno
                                        : c->read->kq_errno;

            (void) ngx_connection_error(c, err, "connect() failed");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

#endif

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* TCP is up: TLS next, when configured, then the buffer goes out */

static void
ngx_http_juki_redis_connected(ngx_http_juki_redis_conn_t *rc)
{
    ngx_int_t          n;
    ngx_connection_t  *c;

    c = rc->peer.connection;

    if (ngx_http_juki_jmcf->redis_tls == NULL) {
        ngx_http_juki_redis_ready(rc);
        return;
    }

    rc->log.action = "SSL handshaking to";

    n = ngx_http_juki_redis_tls_start(c, ngx_http_juki_jmcf->redis_tls,
                                      ngx_http_juki_redis_tls_done);

    if (n == NGX_AGAIN) {
        return;
    }

    /* done at once, or failed: ngx_http_juki_redis_tls_done() tells */

    ngx_http_juki_redis_tls_done(c);
}


/*
 * The TLS handshake is over, one way or the other.  The certificate is
 * checked before a byte of Redis traffic is written: a failure is a
 * failed connection, never a fallback to plaintext.
 */

static void
ngx_http_juki_redis_tls_done(ngx_connection_t *c)
{
    ngx_http_juki_redis_conn_t  *rc = c->data;

    ngx_str_t  *address;

    address = &ngx_http_juki_jmcf->redis->address;

    if (c->ssl == NULL || !c->ssl->handshaked) {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_log(ngx_http_juki_log, NGX_HTTP_JUKI_LOG_TLS,
                                "redis %V unavailable: TLS handshake failed",
                                address);
        ngx_http_juki_redis_drop(rc);
        return;
    }

    if (ngx_http_juki_redis_tls_verify(c, ngx_http_juki_jmcf->redis_tls,
                                       address)
        != NGX_OK)
    {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_drop(rc);
        return;
    }

    /* the SSL layer had its own handlers on the events meanwhile */

    c->read->handler = ngx_http_juki_redis_read_handler;
    c->write->handler = ngx_http_juki_redis_write_handler;

    ngx_http_juki_redis_ready(rc);
}


static void
ngx_http_juki_redis_ready(ngx_http_juki_redis_conn_t *rc)
{
    ngx_connection_t  *c;

    c = rc->peer.connection;

    rc->connected = 1;
    rc->log.action = "talking to";

    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
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

    for (n = 0; n < 3; n++) {

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

    (void) rc;

    return NGX_OK;
}


/* a call was answered: the connection works, the back-off starts over */

void
ngx_http_juki_redis_up(ngx_http_juki_redis_conn_t *rc)
{
    if (rc->backoff) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_juki_log, 0,
                      "juki: redis %V connected",
                      &ngx_http_juki_jmcf->redis->address);
    }

    rc->backoff = 0;
}


static void
ngx_http_juki_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t            *c = wev->data;
    ngx_http_juki_redis_conn_t  *rc = c->data;

    if (rc->connected) {
        ngx_http_juki_redis_flush(rc);
        return;
    }

    /* the non-blocking connect is over */

    if (ngx_http_juki_redis_test_connect(c) != NGX_OK) {
        ngx_http_juki_redis_lost(rc, "unavailable: cannot connect");
        return;
    }

    ngx_http_juki_redis_connected(rc);
}


/* writes what the buffer holds, as much as the socket takes */

static void
ngx_http_juki_redis_flush(ngx_http_juki_redis_conn_t *rc)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = rc->peer.connection;

    while (rc->out_sent < rc->out_len) {

        n = c->send(c, rc->out + rc->out_sent, rc->out_len - rc->out_sent);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_juki_redis_lost(rc, "connection lost: write failed");
            return;
        }

        rc->out_sent += n;
    }

    if (rc->out_sent == rc->out_len) {
        rc->out_sent = 0;
        rc->out_len = 0;

        /* a burst's buffer is not kept for ever */

        if (rc->out_size > NGX_HTTP_JUKI_OUT_KEEP) {
            ngx_free(rc->out);
            rc->out = NULL;
            rc->out_size = 0;
        }
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_http_juki_redis_lost(rc, "connection lost: write event");
    }
}


static void
ngx_http_juki_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t            *c = rev->data;
    ngx_http_juki_redis_conn_t  *rc = c->data;

    u_char      buf[NGX_HTTP_JUKI_READ_SIZE];
    ssize_t     n;
    ngx_uint_t  generation;

    if (!rc->connected) {
        /* an error of the connect in progress may show as a read event */

        if (ngx_http_juki_redis_test_connect(c) != NGX_OK) {
            ngx_http_juki_redis_lost(rc, "unavailable: cannot connect");
            return;
        }

        ngx_http_juki_redis_connected(rc);
        return;
    }

    generation = rc->generation;

    do {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_juki_redis_lost(rc, "connection lost: closed by redis");
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_juki_redis_lost(rc, "connection lost: read failed");
            return;
        }

        if (redisReaderFeed(rc->reader, (char *) buf, n) != REDIS_OK) {
            ngx_http_juki_redis_lost(rc, "connection lost: no memory");
            return;
        }

        if (ngx_http_juki_redis_replies(rc) != NGX_OK
            || rc->generation != generation)
        {
            return;
        }

    } while (rev->ready);

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_juki_redis_lost(rc, "connection lost: read event");
    }
}


/*
 * Every complete reply goes to the oldest pending command.  NGX_ERROR:
 * the connection was dropped meanwhile, by its handler or for the reply.
 */

static ngx_int_t
ngx_http_juki_redis_replies(ngx_http_juki_redis_conn_t *rc)
{
    void                 *r;
    ngx_int_t             n;
    ngx_uint_t            generation;
    ngx_queue_t          *q;
    ngx_http_juki_cmd_t  *cmd;

    generation = rc->generation;

    for ( ;; ) {

        r = NULL;

        if (redisReaderGetReply(rc->reader, &r) != REDIS_OK) {
            ngx_http_juki_redis_log(ngx_http_juki_log,
                                    NGX_HTTP_JUKI_LOG_REPLY,
                                    "redis %V sent a malformed reply: %s",
                                    &ngx_http_juki_jmcf->redis->address,
                                    rc->reader->errstr);
            ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
            ngx_http_juki_redis_drop(rc);
            return NGX_ERROR;
        }

        if (r == NULL) {
            return NGX_OK;
        }

        if (ngx_queue_empty(&rc->pending)) {
            freeReplyObject(r);
            ngx_http_juki_redis_log(ngx_http_juki_log,
                                    NGX_HTTP_JUKI_LOG_REPLY,
                                    "redis %V sent a reply to no command",
                                    &ngx_http_juki_jmcf->redis->address);
            ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
            ngx_http_juki_redis_drop(rc);
            return NGX_ERROR;
        }

        q = ngx_queue_head(&rc->pending);
        ngx_queue_remove(q);
        rc->npending--;

        cmd = ngx_queue_data(q, ngx_http_juki_cmd_t, queue);

        if (rc->npending == 0 && rc->timer.timer_set) {
            ngx_del_timer(&rc->timer);
        }

        ngx_http_juki_stat_rtt(ngx_http_juki_now_us() - cmd->sent_us);

        n = NGX_OK;

        if (!ngx_http_juki_exiting && cmd->handler) {
            n = cmd->handler(cmd, r);
        }

        freeReplyObject(r);
        ngx_http_juki_cmd_free(cmd);

        if (rc->generation != generation) {
            return NGX_ERROR;
        }

        if (n != NGX_OK) {
            ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
            ngx_http_juki_redis_drop(rc);
            return NGX_ERROR;
        }
    }
}


void
ngx_http_juki_redis_lost(ngx_http_juki_redis_conn_t *rc, const char *why)
{
    if (!ngx_http_juki_exiting) {
        ngx_http_juki_stat_count(NGX_HTTP_JUKI_STAT_REDIS_ERRORS, 1);
        ngx_http_juki_redis_log(ngx_http_juki_log,
                                NGX_HTTP_JUKI_LOG_UNAVAILABLE,
                                "redis %V %s",
                                &ngx_http_juki_jmcf->redis->address, why);
    }

    ngx_http_juki_redis_drop(rc);
}


/*
 * Closes the connection and fails every pending command: each handler
 * is called without a reply, unless the worker is exiting.
 */

static void
ngx_http_juki_redis_drop(ngx_http_juki_redis_conn_t *rc)
{
    ngx_pool_t           *pool;
    ngx_queue_t           failed, *q;
    ngx_connection_t     *c;
    ngx_http_juki_cmd_t  *cmd;

    c = rc->peer.connection;

    if (c == NULL) {
        return;
    }

    rc->peer.connection = NULL;
    rc->connected = 0;
    rc->generation++;
    rc->log.action = NULL;

    if (c->ssl) {
        /* no close_notify to a peer that failed or timed out */
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }

    pool = c->pool;

    ngx_close_connection(c);

    if (pool) {
        ngx_destroy_pool(pool);
    }

    redisReaderFree(rc->reader);
    rc->reader = NULL;

    rc->out_sent = 0;
    rc->out_len = 0;

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    /* taken off first: a handler may already start the next connection */

    ngx_queue_init(&failed);

    if (!ngx_queue_empty(&rc->pending)) {
        ngx_queue_add(&failed, &rc->pending);
        ngx_queue_init(&rc->pending);
    }

    rc->npending = 0;

    while (!ngx_queue_empty(&failed)) {
        q = ngx_queue_head(&failed);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_http_juki_cmd_t, queue);

        if (!ngx_http_juki_exiting && cmd->handler) {
            (void) cmd->handler(cmd, NULL);
        }

        ngx_http_juki_cmd_free(cmd);
    }

    ngx_http_juki_batch_abort(rc);

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
ngx_http_juki_redis_timer_handler(ngx_event_t *ev)
{
    ngx_http_juki_redis_conn_t  *rc = ev->data;

    ngx_queue_t          *q;
    ngx_msec_int_t        left;
    ngx_connection_t     *c;
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

    /* the set-up commands are pending from the connect on */

    c = rc->peer.connection;

    ngx_http_juki_redis_log(ngx_http_juki_log, NGX_HTTP_JUKI_LOG_TIMEOUT,
                            "redis %V timed out after %M ms%s, "
                            "%ui commands pending",
                            &ngx_http_juki_jmcf->redis->address,
                            ngx_http_juki_jmcf->redis->timeout,
                            rc->connected ? ""
                            : (c && c->ssl) ? " in the TLS handshake"
                            : " while connecting",
                            rc->npending);

    ngx_http_juki_redis_drop(rc);
}


static void
ngx_http_juki_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_juki_redis_conn_t  *rc = ev->data;

    if (rc->peer.connection == NULL && !ngx_exiting
        && !ngx_http_juki_exiting)
    {
        ngx_http_juki_redis_connect(rc);
    }
}
