/*
 * jukictl watch: follow the alerts of the gateway.
 *
 * SUBSCRIBE juki:alerts and print every message as it arrives: verbatim
 * (--format json) or as one human line (--format text, the default).
 * The subscribed connection is read with poll(2) on the context's file
 * descriptor and redisBufferRead(): a read timeout would leave a hiredis
 * 0.14 context in a sticky error state, and poll also lets SIGINT and
 * SIGTERM end the wait at once.
 */

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jk.h"


#define JK_WATCH_CHANNEL    "juki:alerts"
#define JK_WATCH_SLICE      250             /* ms, longest poll(2) */
#define JK_WATCH_TIMEOUT_MAX  ((uint64_t) 100 * 366 * 86400)  /* s */

#define JK_JSON_FIELDS_MAX  32

#define JK_JSON_STRING      0
#define JK_JSON_NUMBER      1
#define JK_JSON_OTHER       2               /* literal, object, array */


typedef struct {
    jk_str_t         name;      /* raw, between the quotes */
    jk_str_t         val;       /* raw; a string between its quotes */
    int              type;
} jk_jfield_t;

typedef struct {
    jk_jfield_t      f[JK_JSON_FIELDS_MAX];
    int              n;
} jk_jobj_t;


static volatile sig_atomic_t  jk_watch_stop;


static void
jk_watch_signal(int signo)
{
    JK_UNUSED(signo);

    jk_watch_stop = 1;
}


static uint64_t
jk_mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/*
 * A tolerant reader of one JSON object: the top-level members are
 * recorded (strings, numbers, and the raw text of anything else), nested
 * values are skipped with their brackets counted.  Escapes are not
 * decoded here.  Raw control characters are refused except as
 * whitespace between tokens, and bytes above 0x7f outside strings.
 */

static const char *
jk_json_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


/* p at the opening quote; returns past the closing one, or NULL */

static const char *
jk_json_string(const char *p, const char *end, jk_str_t *s)
{
    const char     *start = ++p;
    unsigned char   c;

    while (p < end) {
        c = (unsigned char) *p;

        if (c == '"') {
            s->p = start;
            s->len = (size_t) (p - start);
            return p + 1;
        }

        if (c < 0x20 || (c == '\\' && end - p < 2)) {
            return NULL;
        }

        p += (c == '\\') ? 2 : 1;
    }

    return NULL;
}


/* a nested object or array, p at its bracket */

static const char *
jk_json_nested(const char *p, const char *end)
{
    size_t          depth = 0;
    jk_str_t        s;
    unsigned char   c;

    while (p < end) {
        c = (unsigned char) *p;

        if (c == '"') {
            p = jk_json_string(p, end, &s);
            if (p == NULL) {
                return NULL;
            }
            continue;
        }

        if (c == '{' || c == '[') {
            depth++;

        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                return p + 1;
            }

        } else if ((c < 0x20 && c != ' ' && c != '\t' && c != '\n'
                    && c != '\r')
                   || c >= 0x7f)
        {
            return NULL;
        }

        p++;
    }

    return NULL;
}


static int
jk_json_object(const char *p, size_t n, jk_jobj_t *o)
{
    const char   *end = p + n, *start;
    jk_jfield_t   f;

    o->n = 0;

    p = jk_json_ws(p, end);
    if (p == end || *p != '{') {
        return -1;
    }

    p = jk_json_ws(p + 1, end);
    if (p < end && *p == '}') {
        goto done;
    }

    for ( ;; ) {
        if (p == end || *p != '"') {
            return -1;
        }

        p = jk_json_string(p, end, &f.name);
        if (p == NULL) {
            return -1;
        }

        p = jk_json_ws(p, end);
        if (p == end || *p != ':') {
            return -1;
        }

        p = jk_json_ws(p + 1, end);
        if (p == end) {
            return -1;
        }

        start = p;

        if (*p == '"') {
            f.type = JK_JSON_STRING;
            p = jk_json_string(p, end, &f.val);
            if (p == NULL) {
                return -1;
            }

        } else {
            if (*p == '{' || *p == '[') {
                f.type = JK_JSON_OTHER;
                p = jk_json_nested(p, end);
                if (p == NULL) {
                    return -1;
                }

            } else {
                f.type = (*p == '-' || (*p >= '0' && *p <= '9'))
                         ? JK_JSON_NUMBER : JK_JSON_OTHER;

                while (p < end
                       && ((*p >= '0' && *p <= '9')
                           || (*p >= 'a' && *p <= 'z')
                           || (*p >= 'A' && *p <= 'Z')
                           || *p == '-' || *p == '+' || *p == '.'))
                {
                    p++;
                }

                if (p == start) {
                    return -1;
                }
            }

            f.val.p = start;
            f.val.len = (size_t) (p - start);
        }

        if (o->n < JK_JSON_FIELDS_MAX) {
            o->f[o->n++] = f;
        }

        p = jk_json_ws(p, end);
        if (p == end) {
            return -1;
        }

        if (*p == '}') {
            break;
        }

        if (*p != ',') {
            return -1;
        }

        p = jk_json_ws(p + 1, end);
    }

done:

    p = jk_json_ws(p + 1, end);

    return p == end ? 0 : -1;
}


static const jk_jfield_t *
jk_json_get(const jk_jobj_t *o, const char *name)
{
    int  i;

    for (i = o->n - 1; i >= 0; i--) {
        if (jk_str_eq(&o->f[i].name, name)) {
            return &o->f[i];
        }
    }

    return NULL;
}


/* output lines */

static int
jk_hex4(const char *p, uint32_t *v)
{
    int  i;

    *v = 0;

    for (i = 0; i < 4; i++) {
        char  c = p[i];

        *v <<= 4;
        if (c >= '0' && c <= '9') {
            *v |= (uint32_t) (c - '0');
        } else if (c >= 'a' && c <= 'f') {
            *v |= (uint32_t) (c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            *v |= (uint32_t) (c - 'A' + 10);
        } else {
            return -1;
        }
    }

    return 0;
}


static int
jk_put_utf8(jk_buf_t *b, uint32_t cp)
{
    unsigned char  u[4];
    size_t         n;

    if (cp < 0x80) {
        u[0] = (unsigned char) cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char) (0xc0 | cp >> 6);
        u[1] = (unsigned char) (0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char) (0xe0 | cp >> 12);
        u[1] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char) (0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (unsigned char) (0xf0 | cp >> 18);
        u[1] = (unsigned char) (0x80 | (cp >> 12 & 0x3f));
        u[2] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
        u[3] = (unsigned char) (0x80 | (cp & 0x3f));
        n = 4;
    }

    return jk_buf_append(b, u, n);
}


/*
 * A JSON string's escapes decoded (a lone surrogate becomes U+FFFD, an
 * unknown escape stays as written).
 */

static int
jk_json_decode(jk_buf_t *out, const char *p, size_t n)
{
    int       rc = 0;
    size_t    i;
    uint32_t  cp, lo;

    for (i = 0; i < n && rc == 0; i++) {
        if (p[i] != '\\' || i + 1 == n) {
            rc = jk_buf_append(out, &p[i], 1);
            continue;
        }

        switch (p[++i]) {
        case '"': case '\\': case '/':
            rc = jk_buf_append(out, &p[i], 1);
            break;
        case 'b':
            rc = jk_buf_append(out, "\b", 1);
            break;
        case 'f':
            rc = jk_buf_append(out, "\f", 1);
            break;
        case 'n':
            rc = jk_buf_append(out, "\n", 1);
            break;
        case 'r':
            rc = jk_buf_append(out, "\r", 1);
            break;
        case 't':
            rc = jk_buf_append(out, "\t", 1);
            break;
        case 'u':
            if (n - i < 5 || jk_hex4(p + i + 1, &cp) != 0) {
                rc = jk_buf_append(out, p + i - 1, 2);
                break;
            }

            i += 4;

            if (cp >= 0xd800 && cp <= 0xdbff && n - i >= 7
                && p[i + 1] == '\\' && p[i + 2] == 'u'
                && jk_hex4(p + i + 3, &lo) == 0
                && lo >= 0xdc00 && lo <= 0xdfff)
            {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;

            } else if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0xfffd;
            }

            rc = jk_put_utf8(out, cp);
            break;
        default:
            rc = jk_buf_append(out, p + i - 1, 2);
        }
    }

    return rc;
}


/* a value for a human: decoded, then escaped as all text output is */

static int
jk_watch_text(jk_buf_t *b, const jk_jfield_t *f)
{
    int       rc;
    jk_buf_t  raw = { NULL, 0, 0 };

    if (f->type != JK_JSON_STRING) {
        return jk_esc(b, f->val.p, f->val.len, JK_ESC_TEXT);
    }

    rc = jk_json_decode(&raw, f->val.p, f->val.len);

    if (rc == 0) {
        rc = jk_esc(b, raw.data, raw.len, JK_ESC_TEXT);
    }

    jk_buf_free(&raw);

    return rc;
}


static int
jk_watch_pair(jk_buf_t *b, const jk_jobj_t *o, const char *name,
    const char *label, const char *suffix)
{
    const jk_jfield_t  *f;

    f = jk_json_get(o, name);
    if (f == NULL) {
        return 0;
    }

    if (jk_buf_append(b, " ", 1) != 0
        || jk_buf_append(b, label, strlen(label)) != 0
        || jk_buf_append(b, "=", 1) != 0
        || jk_watch_text(b, f) != 0
        || jk_buf_append(b, suffix, strlen(suffix)) != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * "TIME ALERT RULE agency=A operator=O count=C threshold=T window=Ws
 * action=X[ DRY RUN]"; absent fields are left out, TIME is the time of
 * receipt when the alert has no integer "time".
 */

static int
jk_watch_line_text(jk_buf_t *b, const jk_jobj_t *o)
{
    char                iso[32];
    uint64_t            ms;
    const jk_jfield_t  *f;

    f = jk_json_get(o, "time");
    if (f == NULL || f->type != JK_JSON_NUMBER
        || jk_parse_u64(f->val.p, f->val.len, &ms) != 0
        || ms > (uint64_t) 253402300799999)     /* 9999-12-31 */
    {
        ms = jk_now_ms();
    }

    jk_fmt_iso(ms, iso, sizeof(iso));

    if (jk_buf_append(b, iso, strlen(iso)) != 0
        || jk_buf_append(b, " ALERT ", 7) != 0)
    {
        return -1;
    }

    f = jk_json_get(o, "rule");
    if (f == NULL || f->val.len == 0) {
        if (jk_buf_append(b, "-", 1) != 0) {
            return -1;
        }

    } else if (jk_watch_text(b, f) != 0) {
        return -1;
    }

    if (jk_watch_pair(b, o, "agency", "agency", "") != 0
        || jk_watch_pair(b, o, "operator", "operator", "") != 0
        || jk_watch_pair(b, o, "count", "count", "") != 0
        || jk_watch_pair(b, o, "threshold", "threshold", "") != 0
        || jk_watch_pair(b, o, "window_s", "window", "s") != 0
        || jk_watch_pair(b, o, "action", "action", "") != 0)
    {
        return -1;
    }

    f = jk_json_get(o, "dry_run");
    if (f && jk_str_eq(&f->val, "true")
        && jk_buf_append(b, " DRY RUN", 8) != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * The object on one line: CR and LF between tokens become spaces, an
 * unsafe code point or a byte that is not UTF-8 inside a string a JSON
 * escape
 */

static int
jk_watch_line_json(jk_buf_t *b, const char *p, size_t n)
{
    return jk_esc(b, p, n, JK_ESC_JSON_TEXT);
}


/* "malformed: " and the message, escaped */

static int
jk_watch_line_malformed(jk_buf_t *b, const char *p, size_t n)
{
    if (jk_buf_append(b, "malformed: ", 11) != 0) {
        return -1;
    }

    return jk_esc(b, p, n, JK_ESC_TEXT);
}


/* 1 a message printed, 0 another reply, -1 an error (reported) */

static int
jk_watch_reply(const redisReply *r, int json, jk_buf_t *b, jk_jobj_t *obj)
{
    const redisReply  *kind, *msg;

    if (r->type == REDIS_REPLY_ERROR) {
        jk_err("watch: Redis: %s",
               jk_safe(r->str, r->len > 200 ? 200 : r->len));
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        return 0;
    }

    kind = r->element[0];
    msg = r->element[2];

    if (kind->type != REDIS_REPLY_STRING || kind->len != 7
        || memcmp(kind->str, "message", 7) != 0
        || msg->type != REDIS_REPLY_STRING)
    {
        return 0;
    }

    b->len = 0;

    if (jk_json_object(msg->str, msg->len, obj) != 0) {
        if (jk_watch_line_malformed(b, msg->str, msg->len) != 0) {
            return -1;
        }

    } else if (json) {
        if (jk_watch_line_json(b, msg->str, msg->len) != 0) {
            return -1;
        }

    } else if (jk_watch_line_text(b, obj) != 0) {
        return -1;
    }

    if (jk_buf_append(b, "\n", 1) != 0) {
        return -1;
    }

    if (fwrite(b->data, 1, b->len, stdout) != b->len || fflush(stdout) != 0)
    {
        jk_err("cannot write output: %s", strerror(errno));
        return -1;
    }

    return 1;
}


static const char *
jk_watch_addr(const jk_opts_t *o)
{
    const char  *env;

    if (o->redis) {
        return o->redis;
    }

    env = getenv("JUKI_REDIS");

    return (env && env[0]) ? env : "127.0.0.1:6379";
}


int
jk_cmd_watch(const jk_opts_t *o)
{
    int                rc = JK_ERR, json, n, wait;
    void              *reply;
    uint64_t           count = 0, timeout = 0, seen = 0, deadline = 0, now;
    jk_buf_t           line = { NULL, 0, 0 };
    jk_jobj_t         *obj;
    redisReply        *r;
    redisContext      *c;
    struct pollfd      pfd;
    struct sigaction   sa;
    const char        *format, *argv[2];

    /* arguments */

    format = o->format ? o->format : "text";

    if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
        if (!jk_name_like(format, strlen(format), JK_NAME_MAX)) {
            return jk_usage_err("bad --format (text or json)");
        }
        return jk_usage_err("bad --format \"%s\" (text or json)", format);
    }

    json = (format[0] == 'j');

    if (o->count
        && (jk_parse_u64(o->count, strlen(o->count), &count) != 0
            || count == 0))
    {
        return jk_usage_err("bad --count \"%s\" (a positive integer)",
                            o->count);
    }

    if (o->timeout
        && (jk_parse_u64(o->timeout, strlen(o->timeout), &timeout) != 0
            || timeout == 0 || timeout > JK_WATCH_TIMEOUT_MAX))
    {
        return jk_usage_err("bad --timeout \"%s\" (seconds, a positive"
                            " integer)", o->timeout);
    }

    if (timeout) {
        deadline = jk_mono_ms() + timeout * 1000;
    }

    /*
     * poll(2) fails with EINTR on a signal even with SA_RESTART, which
     * keeps a write to a slow standard output from failing half-way
     */

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = jk_watch_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);

    if (sigaction(SIGINT, &sa, NULL) != 0
        || sigaction(SIGTERM, &sa, NULL) != 0)
    {
        jk_err("sigaction: %s", strerror(errno));
        return JK_ERR;
    }

    obj = malloc(sizeof(jk_jobj_t));
    if (obj == NULL) {
        jk_err("out of memory");
        return JK_ERR;
    }

    c = jk_redis_connect(o);
    if (c == NULL) {
        free(obj);
        return jk_watch_stop ? JK_OK : JK_ERR;
    }

    /* a peer that vanished without a FIN is noticed in about 30 s */

    if (c->connection_type == REDIS_CONN_TCP
        && redisEnableKeepAlive(c) != REDIS_OK)
    {
        jk_err("cannot enable TCP keepalive: %s", c->errstr);
        goto done;
    }

    argv[0] = "SUBSCRIBE";
    argv[1] = JK_WATCH_CHANNEL;

    r = jk_cmd(c, 2, argv, NULL);
    if (r == NULL) {
        goto done;
    }

    n = (r->type == REDIS_REPLY_ARRAY && r->elements == 3
         && r->element[0]->type == REDIS_REPLY_STRING
         && r->element[0]->len == 9
         && memcmp(r->element[0]->str, "subscribe", 9) == 0);
    freeReplyObject(r);

    if (!n) {
        jk_err("Redis at %s: unexpected reply to SUBSCRIBE",
               jk_watch_addr(o));
        goto done;
    }

    for ( ;; ) {
        if (jk_watch_stop) {
            rc = JK_OK;
            break;
        }

        /* replies already read come first */

        reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
            jk_err("Redis at %s: %s", jk_watch_addr(o),
                   jk_safe(c->errstr, strlen(c->errstr)));
            break;
        }

        if (reply) {
            n = jk_watch_reply(reply, json, &line, obj);
            freeReplyObject(reply);

            if (n < 0) {
                break;
            }

            seen += (uint64_t) n;
            if (count && seen >= count) {
                rc = JK_OK;
                break;
            }

            continue;
        }

        wait = JK_WATCH_SLICE;

        if (deadline) {
            now = jk_mono_ms();
            if (now >= deadline) {
                rc = JK_OK;
                break;
            }

            if (deadline - now < (uint64_t) wait) {
                wait = (int) (deadline - now);
            }
        }

        pfd.fd = c->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;

        n = poll(&pfd, 1, wait);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }

            jk_err("poll: %s", strerror(errno));
            break;
        }

        if (n == 0) {
            continue;
        }

        if (redisBufferRead(c) != REDIS_OK) {
            jk_err("lost the connection to Redis at %s: %s",
                   jk_watch_addr(o), jk_safe(c->errstr, strlen(c->errstr)));
            break;
        }
    }

done:

    redisFree(c);
    jk_buf_free(&line);
    free(obj);

    return rc;
}
