/*
 * jukictl: Redis connection, commands, SCAN of keys (the audit lists)
 * and juki:purposes.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "jk.h"


#define JK_CONNECT_TIMEOUT  2       /* seconds */
#define JK_COMMAND_TIMEOUT  10      /* seconds */


static const char *jk_redis_addr;


/*
 * ADDRESS as for juki_redis: "unix:/path", "host:port", "[v6]:port",
 * or "host" (port 6379).
 */

redisContext *
jk_redis_connect(const jk_opts_t *o)
{
    int              port = 6379;
    char            *host, *colon, *end;
    long             v;
    const char      *addr, *env;
    redisReply      *r;
    redisContext    *c;
    struct timeval   tv;

    addr = o->redis;
    if (addr == NULL) {
        env = getenv("JUKI_REDIS");
        addr = (env && env[0]) ? env : "127.0.0.1:6379";
    }

    jk_redis_addr = addr;

    tv.tv_sec = JK_CONNECT_TIMEOUT;
    tv.tv_usec = 0;

    if (strncmp(addr, "unix:", 5) == 0) {
        if (addr[5] == '\0') {
            jk_usage_err("bad Redis address \"%s\"", addr);
            return NULL;
        }

        c = redisConnectUnixWithTimeout(addr + 5, tv);

    } else {
        host = strdup(addr);
        if (host == NULL) {
            jk_err("out of memory");
            return NULL;
        }

        if (host[0] == '[') {
            end = strchr(host, ']');
            if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
                free(host);
                jk_usage_err("bad Redis address \"%s\"", addr);
                return NULL;
            }
            *end = '\0';
            colon = end[1] == ':' ? end + 1 : NULL;
            memmove(host, host + 1, strlen(host + 1) + 1);

        } else {
            colon = strrchr(host, ':');
            if (colon && strchr(host, ':') != colon) {
                colon = NULL;       /* a bare IPv6 address */
            }
        }

        if (colon) {
            *colon = '\0';
            errno = 0;
            v = strtol(colon + 1, &end, 10);
            if (errno || end == colon + 1 || *end != '\0' || v < 1
                || v > 65535)
            {
                free(host);
                jk_usage_err("bad port in Redis address \"%s\"", addr);
                return NULL;
            }
            port = (int) v;
        }

        if (host[0] == '\0') {
            free(host);
            jk_usage_err("bad Redis address \"%s\"", addr);
            return NULL;
        }

        c = redisConnectWithTimeout(host, port, tv);
        free(host);
    }

    if (c == NULL) {
        jk_err("out of memory");
        return NULL;
    }

    if (c->err) {
        jk_err("cannot connect to Redis at %s: %s", addr, c->errstr);
        redisFree(c);
        return NULL;
    }

    tv.tv_sec = JK_COMMAND_TIMEOUT;
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        jk_err("cannot set the Redis timeout: %s", c->errstr);
        redisFree(c);
        return NULL;
    }

    if (o->password) {
        const char  *argv[3];
        int          argc = 0;

        argv[argc++] = "AUTH";
        if (o->user) {
            argv[argc++] = o->user;
        }
        argv[argc++] = o->password;

        r = jk_cmd(c, argc, argv, NULL);
        if (r == NULL) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }

    if (o->db) {
        r = jk_cmdf(c, "SELECT %s", o->db);
        if (r == NULL) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }

    return c;
}


static redisReply *
jk_reply_check(redisContext *c, redisReply *r, const char *what)
{
    if (r == NULL) {
        jk_err("Redis at %s: %s", jk_redis_addr,
               c->err ? jk_safe(c->errstr, strlen(c->errstr)) : "no reply");
        return NULL;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        jk_err("Redis at %s: %s: %s", jk_redis_addr, what,
               jk_safe(r->str, r->len > 200 ? 200 : r->len));
        freeReplyObject(r);
        return NULL;
    }

    return r;
}


/* a command; NULL (reported) on a connection error or an error reply */

redisReply *
jk_cmd(redisContext *c, int argc, const char **argv, const size_t *lens)
{
    return jk_reply_check(c, redisCommandArgv(c, argc, argv, lens), argv[0]);
}


redisReply *
jk_cmdf(redisContext *c, const char *fmt, ...)
{
    va_list      ap;
    redisReply  *r;
    char         what[16];
    size_t       n;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);

    n = strcspn(fmt, " ");
    if (n >= sizeof(what)) {
        n = sizeof(what) - 1;
    }
    memcpy(what, fmt, n);
    what[n] = '\0';

    return jk_reply_check(c, r, what);
}


int
jk_redis_time_ms(redisContext *c, uint64_t *ms)
{
    uint64_t     sec, usec;
    redisReply  *r;

    r = jk_cmdf(c, "TIME");
    if (r == NULL) {
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
        || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[1]->type != REDIS_REPLY_STRING
        || jk_parse_u64(r->element[0]->str, r->element[0]->len, &sec) != 0
        || jk_parse_u64(r->element[1]->str, r->element[1]->len, &usec) != 0)
    {
        jk_err("Redis at %s: unexpected reply to TIME", jk_redis_addr);
        freeReplyObject(r);
        return -1;
    }

    freeReplyObject(r);
    *ms = sec * 1000 + usec / 1000;

    return 0;
}


/*
 * SCAN 0 MATCH m [TYPE t] ... until the cursor is 0 again.  A cursor
 * Redis returns twice (a cycle, or one that does not advance) or an
 * endless walk is Redis misbehaving: reported, -1.
 */

#define JK_SCAN_CALLS_MAX   1000000

int
jk_scan(redisContext *c, const char *match, const char *type,
    jk_scan_pt handler, void *arg)
{
    int          rc = -1;
    char         cursor[24];
    size_t       i, calls = 0, argc;
    jk_ht_t      seen;
    const char  *argv[8];
    redisReply  *r = NULL, *keys, *cur;

    if (jk_ht_init(&seen, 64) != 0) {
        return -1;
    }

    memcpy(cursor, "0", 2);

    do {
        if (++calls > JK_SCAN_CALLS_MAX) {
            jk_err("Redis at %s: SCAN MATCH %s did not end after %d calls",
                   jk_redis_addr, match, JK_SCAN_CALLS_MAX);
            goto done;
        }

        argc = 0;
        argv[argc++] = "SCAN";
        argv[argc++] = cursor;
        argv[argc++] = "MATCH";
        argv[argc++] = match;
        argv[argc++] = "COUNT";
        argv[argc++] = "1000";
        if (type) {
            argv[argc++] = "TYPE";
            argv[argc++] = type;
        }

        r = jk_cmd(c, (int) argc, argv, NULL);
        if (r == NULL) {
            goto done;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || r->element[0]->type != REDIS_REPLY_STRING
            || r->element[1]->type != REDIS_REPLY_ARRAY)
        {
            jk_err("Redis at %s: unexpected reply to SCAN", jk_redis_addr);
            goto done;
        }

        cur = r->element[0];

        {
            uint64_t  v;

            if (cur->len >= sizeof(cursor)
                || jk_parse_u64(cur->str, cur->len, &v) != 0)
            {
                jk_err("Redis at %s: SCAN returned a bad cursor \"%s\"",
                       jk_redis_addr,
                       jk_safe(cur->str, cur->len > 24 ? 24 : cur->len));
                goto done;
            }
        }

        /* the cursor just sent is remembered too, so "0" ... "0" ends */
        if (jk_ht_get(&seen, cursor, strlen(cursor)) == NULL) {
            goto done;
        }

        if (!(cur->len == 1 && cur->str[0] == '0')
            && jk_ht_find(&seen, cur->str, cur->len) != NULL)
        {
            jk_err("Redis at %s: SCAN MATCH %s returned cursor %s again"
                   " (the walk would not end)", jk_redis_addr, match,
                   jk_safe(cur->str, cur->len));
            goto done;
        }

        keys = r->element[1];

        for (i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type != REDIS_REPLY_STRING) {
                continue;
            }

            if (handler(arg, keys->element[i]->str, keys->element[i]->len)
                != 0)
            {
                goto done;
            }
        }

        memcpy(cursor, cur->str, cur->len);
        cursor[cur->len] = '\0';
        freeReplyObject(r);
        r = NULL;

    } while (strcmp(cursor, "0") != 0);

    rc = 0;

done:

    freeReplyObject(r);
    jk_ht_free(&seen, NULL);

    return rc;
}


/* juki:purposes: purpose code -> statute text (e->ptr, malloc'ed) */

int
jk_purposes_load(redisContext *c, jk_ht_t *ht)
{
    size_t       i;
    jk_hent_t   *e;
    redisReply  *r, *k, *v;

    r = jk_cmdf(c, "HGETALL juki:purposes");
    if (r == NULL) {
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        jk_err("Redis at %s: juki:purposes is not a hash", jk_redis_addr);
        freeReplyObject(r);
        return -1;
    }

    for (i = 0; i < r->elements; i += 2) {
        k = r->element[i];
        v = r->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }

        e = jk_ht_get(ht, k->str, k->len);
        if (e == NULL) {
            freeReplyObject(r);
            return -1;
        }

        free(e->ptr);
        e->ptr = malloc(v->len + 1);
        if (e->ptr == NULL) {
            jk_err("out of memory");
            freeReplyObject(r);
            return -1;
        }

        memcpy(e->ptr, v->str, v->len);
        ((char *) e->ptr)[v->len] = '\0';
        e->n = v->len;
    }

    freeReplyObject(r);

    return 0;
}
