/*
 * jukictl: Redis connection, stream listing and stream iteration.
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
               c->err ? c->errstr : "no reply");
        return NULL;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        jk_err("Redis at %s: %s: %.*s", jk_redis_addr, what,
               (int) (r->len > 200 ? 200 : r->len), r->str);
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


/* "juki:{AGENCY}:audit" -> AGENCY ("_" for the no-agency stream) */

int
jk_stream_agency(const char *name, jk_str_t *agency)
{
    size_t  n = strlen(name);

    if (n < 13 || strncmp(name, "juki:{", 6) != 0
        || strcmp(name + n - 7, "}:audit") != 0)
    {
        return -1;
    }

    agency->p = name + 6;
    agency->len = n - 13;

    if (memchr(agency->p, '}', agency->len) != NULL) {
        return -1;
    }

    return 0;
}


static int
jk_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char * const *) a, *(char * const *) b);
}


/* every juki:{*}:audit stream, sorted, each name once */

int
jk_streams_list(redisContext *c, jk_streams_t *s)
{
    size_t       i, cap = 0;
    char        *cursor, **p;
    jk_str_t     agency;
    jk_ht_t      seen;
    redisReply  *r, *keys;

    s->name = NULL;
    s->n = 0;

    if (jk_ht_init(&seen, 64) != 0) {
        return -1;
    }

    cursor = strdup("0");
    if (cursor == NULL) {
        jk_err("out of memory");
        goto failed;
    }

    do {
        r = jk_cmdf(c, "SCAN %s MATCH juki:{*}:audit COUNT 1000 TYPE stream",
                    cursor);
        free(cursor);
        cursor = NULL;

        if (r == NULL) {
            goto failed;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || r->element[0]->type != REDIS_REPLY_STRING
            || r->element[1]->type != REDIS_REPLY_ARRAY)
        {
            jk_err("Redis at %s: unexpected reply to SCAN", jk_redis_addr);
            freeReplyObject(r);
            goto failed;
        }

        keys = r->element[1];

        for (i = 0; i < keys->elements; i++) {
            redisReply  *k = keys->element[i];
            jk_hent_t   *e;

            if (k->type != REDIS_REPLY_STRING || strlen(k->str) != k->len
                || jk_stream_agency(k->str, &agency) != 0)
            {
                continue;
            }

            if (jk_ht_find(&seen, k->str, k->len)) {
                continue;
            }

            e = jk_ht_get(&seen, k->str, k->len);
            if (e == NULL) {
                freeReplyObject(r);
                goto failed;
            }

            if (s->n == cap) {
                cap = cap ? cap * 2 : 16;
                p = realloc(s->name, cap * sizeof(char *));
                if (p == NULL) {
                    jk_err("out of memory");
                    freeReplyObject(r);
                    goto failed;
                }
                s->name = p;
            }

            s->name[s->n] = strdup(k->str);
            if (s->name[s->n] == NULL) {
                jk_err("out of memory");
                freeReplyObject(r);
                goto failed;
            }
            s->n++;
        }

        cursor = strdup(r->element[0]->str);
        freeReplyObject(r);

        if (cursor == NULL) {
            jk_err("out of memory");
            goto failed;
        }

    } while (strcmp(cursor, "0") != 0);

    free(cursor);
    jk_ht_free(&seen, NULL);

    if (s->n) {
        qsort(s->name, s->n, sizeof(char *), jk_name_cmp);
    }

    return 0;

failed:

    jk_ht_free(&seen, NULL);
    jk_streams_free(s);

    return -1;
}


void
jk_streams_free(jk_streams_t *s)
{
    size_t  i;

    for (i = 0; i < s->n; i++) {
        free(s->name[i]);
    }

    free(s->name);
    s->name = NULL;
    s->n = 0;
}


/*
 * Stream iterator: XRANGE key START END COUNT n, one batch at a time;
 * only the current batch is held in memory.
 */

void
jk_xiter_init(jk_xiter_t *it, redisContext *c, const char *key,
    uint64_t from_ms, uint64_t to_ms, unsigned count)
{
    it->c = c;
    it->key = key;
    it->next_ms = from_ms;
    it->next_sq = 0;
    it->end_ms = to_ms;
    it->count = count;
    it->batch = NULL;
    it->pos = 0;
    it->done = 0;
}


static int
jk_xiter_fetch(jk_xiter_t *it)
{
    char         start[48], end[24], count[16];
    const char  *argv[6];
    size_t       i;
    redisReply  *r, *e;

    freeReplyObject(it->batch);
    it->batch = NULL;
    it->pos = 0;

    snprintf(start, sizeof(start), "%llu-%llu",
             (unsigned long long) it->next_ms,
             (unsigned long long) it->next_sq);

    if (it->end_ms == UINT64_MAX) {
        end[0] = '+';
        end[1] = '\0';

    } else {
        snprintf(end, sizeof(end), "%llu", (unsigned long long) it->end_ms);
    }

    snprintf(count, sizeof(count), "%u", it->count);

    argv[0] = "XRANGE";
    argv[1] = it->key;
    argv[2] = start;
    argv[3] = end;
    argv[4] = "COUNT";
    argv[5] = count;

    r = jk_cmd(it->c, 6, argv, NULL);
    if (r == NULL) {
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY) {
        jk_err("Redis at %s: unexpected reply to XRANGE %s", jk_redis_addr,
               it->key);
        freeReplyObject(r);
        return -1;
    }

    for (i = 0; i < r->elements; i++) {
        e = r->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING
            || e->element[1]->type != REDIS_REPLY_ARRAY)
        {
            jk_err("Redis at %s: malformed entry in XRANGE %s",
                   jk_redis_addr, it->key);
            freeReplyObject(r);
            return -1;
        }
    }

    if (r->elements < it->count) {
        it->done = 1;       /* the last batch */
    }

    if (r->elements) {
        uint64_t  ms, sq;

        e = r->element[r->elements - 1]->element[0];
        if (jk_parse_eid(e->str, e->len, &ms, &sq) != 0) {
            jk_err("Redis at %s: bad entry id in %s", jk_redis_addr,
                   it->key);
            freeReplyObject(r);
            return -1;
        }

        /* the next range starts right after the last entry */
        if (sq == UINT64_MAX) {
            if (ms == UINT64_MAX) {
                it->done = 1;
            }
            it->next_ms = ms + 1;
            it->next_sq = 0;

        } else {
            it->next_ms = ms;
            it->next_sq = sq + 1;
        }
    }

    it->batch = r;

    return 0;
}


/* 1: *entry set (valid until the next call), 0: end, -1: error */

int
jk_xiter_next(jk_xiter_t *it, const redisReply **entry)
{
    for ( ;; ) {
        if (it->batch && it->pos < it->batch->elements) {
            *entry = it->batch->element[it->pos++];
            return 1;
        }

        if (it->done) {
            freeReplyObject(it->batch);
            it->batch = NULL;
            return 0;
        }

        if (jk_xiter_fetch(it) != 0) {
            return -1;
        }
    }
}


void
jk_xiter_free(jk_xiter_t *it)
{
    freeReplyObject(it->batch);
    it->batch = NULL;
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
