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


typedef struct {
    jk_streams_t    *s;
    jk_ht_t          seen;
    size_t           cap;
} jk_list_ctx_t;


static int
jk_list_add(void *arg, const char *key, size_t len)
{
    jk_str_t        agency;
    jk_stream_t    *p;
    jk_list_ctx_t  *ctx = arg;
    jk_streams_t   *s = ctx->s;

    /* a name with a NUL byte cannot be the gateway's: not a C string */
    if (strlen(key) != len || jk_stream_agency(key, &agency) != 0
        || jk_ht_find(&ctx->seen, key, len) != NULL)
    {
        return 0;
    }

    if (jk_ht_get(&ctx->seen, key, len) == NULL) {
        return -1;
    }

    if (s->n == ctx->cap) {
        ctx->cap = ctx->cap ? ctx->cap * 2 : 16;
        p = realloc(s->s, ctx->cap * sizeof(jk_stream_t));
        if (p == NULL) {
            jk_err("out of memory");
            return -1;
        }
        s->s = p;
    }

    memset(&s->s[s->n], 0, sizeof(jk_stream_t));

    s->s[s->n].name = strdup(key);
    if (s->s[s->n].name == NULL) {
        jk_err("out of memory");
        return -1;
    }

    s->n++;

    return 0;
}


static int
jk_stream_cmp(const void *a, const void *b)
{
    return strcmp(((const jk_stream_t *) a)->name,
                  ((const jk_stream_t *) b)->name);
}


/* every juki:{*}:audit stream, sorted, each name once */

int
jk_streams_list(redisContext *c, jk_streams_t *s)
{
    int            rc;
    jk_list_ctx_t  ctx;

    s->s = NULL;
    s->n = 0;
    s->now_ms = 0;

    ctx.s = s;
    ctx.cap = 0;

    if (jk_ht_init(&ctx.seen, 64) != 0) {
        return -1;
    }

    rc = jk_scan(c, "juki:{*}:audit", "stream", jk_list_add, &ctx);

    jk_ht_free(&ctx.seen, NULL);

    if (rc != 0) {
        jk_streams_free(s);
        return -1;
    }

    if (s->n) {
        qsort(s->s, s->n, sizeof(jk_stream_t), jk_stream_cmp);
    }

    return 0;
}


/* "last-generated-id" and "max-deleted-entry-id" of an XINFO STREAM */

static int
jk_xinfo(const redisReply *r, jk_stream_t *st)
{
    int                got = 0;
    size_t             i;
    const redisReply  *k, *v;

    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        return -1;
    }

    for (i = 0; i < r->elements; i += 2) {
        k = r->element[i];
        v = r->element[i + 1];

        if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS) {
            continue;
        }

        if (k->len == 17 && memcmp(k->str, "last-generated-id", 17) == 0) {
            if (v->type != REDIS_REPLY_STRING
                || jk_parse_eid(v->str, v->len, &st->last_ms, &st->last_sq)
                   != 0)
            {
                return -1;
            }
            got = 1;

        } else if (k->len == 20
                   && memcmp(k->str, "max-deleted-entry-id", 20) == 0)
        {
            if (v->type != REDIS_REPLY_STRING
                || jk_parse_eid(v->str, v->len, &st->del_ms, &st->del_sq)
                   != 0)
            {
                return -1;
            }
        }
    }

    return got ? 0 : -1;
}


static int
jk_streams_same(const jk_streams_t *a, const jk_streams_t *b)
{
    size_t  i;

    if (a->n != b->n) {
        return 0;
    }

    for (i = 0; i < a->n; i++) {
        if (strcmp(a->s[i].name, b->s[i].name) != 0) {
            return 0;
        }
    }

    return 1;
}


/*
 * The streams, and in one MULTI/EXEC Redis's TIME and every stream's
 * last-generated-id: a consistent cut.  A connection's commands run in
 * order, so when a record is inside the cut, every earlier record of
 * its writer is too.  A stream created between the SCAN and the EXEC
 * could hold such an earlier record, so the streams are listed again
 * after the EXEC and the cut retaken when the list changed.  A stream
 * gone by the EXEC is dropped.
 */

#define JK_SNAPSHOT_TRIES   5

int
jk_streams_snapshot(redisContext *c, jk_streams_t *s)
{
    int            try;
    size_t         i, k;
    uint64_t       sec, usec;
    jk_streams_t   again;
    redisReply    *r = NULL, *x, *t;
    const char    *argv[3];

    if (jk_streams_list(c, s) != 0) {
        return -1;
    }

    for (try = 0; try < JK_SNAPSHOT_TRIES; try++) {

        argv[0] = "MULTI";
        if (redisAppendCommandArgv(c, 1, argv, NULL) != REDIS_OK) {
            goto oom;
        }

        argv[0] = "TIME";
        if (redisAppendCommandArgv(c, 1, argv, NULL) != REDIS_OK) {
            goto oom;
        }

        argv[0] = "XINFO";
        argv[1] = "STREAM";

        for (i = 0; i < s->n; i++) {
            argv[2] = s->s[i].name;
            if (redisAppendCommandArgv(c, 3, argv, NULL) != REDIS_OK) {
                goto oom;
            }
        }

        argv[0] = "EXEC";
        if (redisAppendCommandArgv(c, 1, argv, NULL) != REDIS_OK) {
            goto oom;
        }

        /* +OK, +QUEUED for each, then the EXEC array */
        for (i = 0; i < s->n + 3; i++) {
            void  *reply = NULL;

            if (redisGetReply(c, &reply) != REDIS_OK) {
                jk_err("Redis at %s: %s", jk_redis_addr,
                       jk_safe(c->errstr, strlen(c->errstr)));
                goto failed;
            }

            freeReplyObject(r);
            r = reply;

            if (r->type == REDIS_REPLY_ERROR) {
                jk_err("Redis at %s: MULTI/EXEC: %s", jk_redis_addr,
                       jk_safe(r->str, r->len > 200 ? 200 : r->len));
                goto drain;
            }
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements != s->n + 1) {
            jk_err("Redis at %s: unexpected reply to EXEC", jk_redis_addr);
            goto failed;
        }

        t = r->element[0];

        if (t->type != REDIS_REPLY_ARRAY || t->elements != 2
            || t->element[0]->type != REDIS_REPLY_STRING
            || t->element[1]->type != REDIS_REPLY_STRING
            || jk_parse_u64(t->element[0]->str, t->element[0]->len, &sec)
               != 0
            || jk_parse_u64(t->element[1]->str, t->element[1]->len, &usec)
               != 0
            || sec > UINT64_MAX / 2000)
        {
            jk_err("Redis at %s: unexpected reply to TIME", jk_redis_addr);
            goto failed;
        }

        s->now_ms = sec * 1000 + usec / 1000;

        for (i = 0, k = 0; i < s->n; i++) {
            x = r->element[i + 1];

            if (x->type == REDIS_REPLY_ERROR) {
                /* deleted since the SCAN, or no longer a stream */
                free(s->s[i].name);
                continue;
            }

            if (jk_xinfo(x, &s->s[i]) != 0) {
                jk_err("Redis at %s: unexpected reply to XINFO STREAM %s",
                       jk_redis_addr,
                       jk_safe(s->s[i].name, strlen(s->s[i].name)));
                for ( ; i < s->n; i++) {
                    s->s[k++] = s->s[i];
                }
                s->n = k;
                goto failed;
            }

            s->s[k++] = s->s[i];
        }

        s->n = k;
        freeReplyObject(r);
        r = NULL;

        if (jk_streams_list(c, &again) != 0) {
            goto failed;
        }

        if (jk_streams_same(s, &again)) {
            jk_streams_free(&again);
            return 0;
        }

        /* the streams changed: take the cut again with the new list */
        jk_streams_free(s);
        *s = again;
    }

    jk_err("Redis at %s: the audit streams kept changing while they were"
           " listed", jk_redis_addr);
    goto failed;

drain:

    /* read what is left of the pipeline so the context stays usable */
    for (i++; i < s->n + 3; i++) {
        void  *reply = NULL;

        if (redisGetReply(c, &reply) != REDIS_OK) {
            break;
        }
        freeReplyObject(reply);
    }

    goto failed;

oom:

    jk_err("out of memory");

failed:

    freeReplyObject(r);
    jk_streams_free(s);

    return -1;
}


void
jk_streams_free(jk_streams_t *s)
{
    size_t  i;

    for (i = 0; i < s->n; i++) {
        free(s->s[i].name);
    }

    free(s->s);
    s->s = NULL;
    s->n = 0;
}


/*
 * Stream iterator: XRANGE key START END COUNT n, one batch at a time;
 * only the current batch is held in memory.  Entry ids must increase
 * strictly and stay inside the range asked for, else Redis misbehaves
 * (and a loop over its replies might not end): reported, -1.
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
    it->end_sq = UINT64_MAX;
    it->last_ms = 0;
    it->last_sq = 0;
    it->count = count;
    it->started = 0;
    it->done = 0;
    it->batch = NULL;
    it->pos = 0;
}


/* lowers the end of the range to the entry id MS-SQ */

void
jk_xiter_end(jk_xiter_t *it, uint64_t ms, uint64_t sq)
{
    if (ms < it->end_ms || (ms == it->end_ms && sq < it->end_sq)) {
        it->end_ms = ms;
        it->end_sq = sq;
    }

    if (it->next_ms > it->end_ms
        || (it->next_ms == it->end_ms && it->next_sq > it->end_sq))
    {
        it->done = 1;
    }
}


static int
jk_eid_less(uint64_t ams, uint64_t asq, uint64_t bms, uint64_t bsq)
{
    return ams < bms || (ams == bms && asq < bsq);
}


static int
jk_xiter_fetch(jk_xiter_t *it)
{
    char         start[48], end[48], count[16];
    const char  *argv[6];
    size_t       i;
    uint64_t     ms, sq;
    redisReply  *r, *e;

    freeReplyObject(it->batch);
    it->batch = NULL;
    it->pos = 0;

    snprintf(start, sizeof(start), "%llu-%llu",
             (unsigned long long) it->next_ms,
             (unsigned long long) it->next_sq);

    if (it->end_ms == UINT64_MAX && it->end_sq == UINT64_MAX) {
        end[0] = '+';
        end[1] = '\0';

    } else {
        snprintf(end, sizeof(end), "%llu-%llu",
                 (unsigned long long) it->end_ms,
                 (unsigned long long) it->end_sq);
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

    if (r->type != REDIS_REPLY_ARRAY || r->elements > it->count) {
        jk_err("Redis at %s: unexpected reply to XRANGE %s", jk_redis_addr,
               jk_safe(it->key, strlen(it->key)));
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
                   jk_redis_addr, jk_safe(it->key, strlen(it->key)));
            freeReplyObject(r);
            return -1;
        }

        if (jk_parse_eid(e->element[0]->str, e->element[0]->len, &ms, &sq)
            != 0)
        {
            jk_err("Redis at %s: bad entry id in %s", jk_redis_addr,
                   jk_safe(it->key, strlen(it->key)));
            freeReplyObject(r);
            return -1;
        }

        if (jk_eid_less(ms, sq, it->next_ms, it->next_sq)
            || jk_eid_less(it->end_ms, it->end_sq, ms, sq)
            || (it->started
                && !jk_eid_less(it->last_ms, it->last_sq, ms, sq)))
        {
            jk_err("Redis at %s: XRANGE %s returned entry %llu-%llu out of"
                   " order or outside the range asked for", jk_redis_addr,
                   jk_safe(it->key, strlen(it->key)),
                   (unsigned long long) ms, (unsigned long long) sq);
            freeReplyObject(r);
            return -1;
        }

        it->last_ms = ms;
        it->last_sq = sq;
        it->started = 1;
    }

    if (r->elements < it->count) {
        it->done = 1;       /* the last batch */
    }

    if (r->elements) {
        /* the next range starts right after the last entry */
        if (it->last_sq == UINT64_MAX) {
            if (it->last_ms == UINT64_MAX) {
                it->done = 1;
            }
            it->next_ms = it->last_ms + 1;
            it->next_sq = 0;

        } else {
            it->next_ms = it->last_ms;
            it->next_sq = it->last_sq + 1;
        }

        if (jk_eid_less(it->end_ms, it->end_sq, it->next_ms, it->next_sq)) {
            it->done = 1;
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
