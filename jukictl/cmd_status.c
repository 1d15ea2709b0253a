/*
 * jukictl status: stop switches, today's decisions, Redis health.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jk.h"


typedef struct {
    redisContext    *c;
    int              shown;
} jk_switches_t;


/* one key of SCAN MATCH juki:{*}:stop*: shown when it is a switch */

static int
jk_status_switch(void *arg, const char *name, size_t len)
{
    char            label[600];
    size_t          n, n2;
    const char     *rest, *end = name + len, *argv[2];
    size_t          lens[2];
    redisReply     *v;
    jk_switches_t  *sw = arg;

    if (len < 12 || memcmp(name, "juki:{", 6) != 0) {
        return 0;
    }

    rest = memchr(name + 6, '}', len - 6);
    if (rest == NULL || end - rest < 6 || memcmp(rest, "}:stop", 6) != 0) {
        return 0;
    }

    n = (size_t) (rest - name - 6);
    rest += 6;

    if (rest != end && (end - rest < 4 || memcmp(rest, ":op:", 4) != 0)) {
        return 0;
    }

    argv[0] = "GET";
    lens[0] = 3;
    argv[1] = name;
    lens[1] = len;

    v = jk_cmd(sw->c, 2, argv, lens);
    if (v == NULL) {
        return -1;
    }

    if (v->type == REDIS_REPLY_STRING) {
        if (rest == end) {
            snprintf(label, sizeof(label), "%s",
                     jk_safe(name + 6, n > 64 ? 64 : n));

        } else {
            n2 = (size_t) (end - rest - 4);
            snprintf(label, sizeof(label), "%s/%s",
                     jk_safe(name + 6, n > 64 ? 64 : n),
                     jk_safe(rest + 4, n2 > 64 ? 64 : n2));
        }

        printf("  %-9s %-40s ", rest == end ? "agency" : "operator", label);
        jk_out_text(stdout, v->str, v->len);
        putchar('\n');
        sw->shown++;
    }

    freeReplyObject(v);

    return 0;
}


static int
jk_status_switches(redisContext *c)
{
    redisReply     *v;
    jk_switches_t   sw;

    printf("stop switches:\n");

    v = jk_cmdf(c, "GET juki:stop");
    if (v == NULL) {
        return -1;
    }

    sw.c = c;
    sw.shown = 0;

    if (v->type == REDIS_REPLY_STRING) {
        printf("  %-9s %-40s ", "global", "*");
        jk_out_text(stdout, v->str, v->len);
        putchar('\n');
        sw.shown++;
    }

    freeReplyObject(v);

    if (jk_scan(c, "juki:{*}:stop*", "string", jk_status_switch, &sw) != 0) {
        return -1;
    }

    if (sw.shown == 0) {
        printf("  none set\n");
    }

    return 0;
}


static int
jk_status_today(redisContext *c)
{
    size_t           i, j, k;
    char             day[16];
    uint64_t         now, midnight, allow, deny, add;
    jk_ht_t          reasons;
    jk_a3_t          r;
    jk_hent_t      **sorted, *e;
    jk_a3_set_t      set;
    const char      *name;
    jk_a3_list_t    *l;

    /* the read cut of all lists (A3); its TIME is "now" */
    if (jk_a3_read(c, &set) != 0) {
        jk_a3_set_free(&set);
        return -1;
    }

    now = set.now_ms;
    midnight = now - now % 86400000;
    jk_fmt_day((int64_t) (now / 86400000), day, sizeof(day));

    printf("\ntoday (%s UTC), audit records per agency:\n", day);
    printf("  %-24s %10s %10s  %s\n", "agency", "allow", "deny",
           "denials by reason");

    for (i = 0; i < set.n; i++) {
        l = &set.list[i];

        if (jk_ht_init(&reasons, 16) != 0) {
            goto failed;
        }

        allow = 0;
        deny = 0;

        for (j = 0; j < l->llen; j++) {
            if (jk_a3_decode((const unsigned char *) l->el[j]->str,
                             l->el[j]->len, &r) != NULL
                || r.ts < midnight)
            {
                continue;       /* verify names what does not decode */
            }

            if (r.type == 'A' && r.decision == 1) {
                allow++;
                continue;
            }

            if (r.type == 'A') {
                name = jk_a3_code_name(r.decision);
                add = 1;

            } else if (r.type == 'S') {
                /* refusals a summary record counts but did not record */
                name = jk_a3_code_name(r.cause);
                add = r.suppressed;

            } else {
                continue;
            }

            e = jk_ht_get(&reasons, name + 5, strlen(name + 5));
            if (e == NULL) {
                jk_ht_free(&reasons, NULL);
                goto failed;
            }

            e->n += add;
            deny += add;
        }

        if (l->alen == 1 && l->agency[0] == '_') {
            printf("  %-24s", "(no agency)");
        } else {
            printf("  %-24s", jk_safe(l->agency, l->alen));
        }

        printf(" %10llu %10llu", (unsigned long long) allow,
               (unsigned long long) deny);

        sorted = jk_ht_sorted(&reasons);
        if (sorted == NULL) {
            jk_ht_free(&reasons, NULL);
            goto failed;
        }

        for (k = 0; sorted[k]; k++) {
            fputs(k ? " " : "  ", stdout);
            jk_out_text(stdout, sorted[k]->key, sorted[k]->klen);
            printf("=%llu", (unsigned long long) sorted[k]->n);
        }

        putchar('\n');
        free(sorted);
        jk_ht_free(&reasons, NULL);
    }

    if (set.n == 0) {
        printf("  no audit lists\n");
    }

    jk_a3_set_free(&set);

    return 0;

failed:

    jk_a3_set_free(&set);

    return -1;
}


static void
jk_info_field(const redisReply *info, const char *name, char *out,
    size_t size)
{
    size_t       n = strlen(name), len;
    const char  *p, *end;

    snprintf(out, size, "?");

    for (p = info->str; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            end = p + strcspn(p, "\r\n");
            len = (size_t) (end - p);
            if (len >= size) {
                len = size - 1;
            }
            memcpy(out, p, len);
            out[len] = '\0';
            return;
        }
    }
}


static int
jk_status_health(redisContext *c, const jk_opts_t *o)
{
    char             version[64], role[32], mem[32], aof[16], fsync[64];
    char             aofst[32];
    const char      *addr;
    redisReply      *r;
    struct timespec  t0, t1;
    double           ms;

    addr = o->redis ? o->redis : getenv("JUKI_REDIS");

    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = jk_cmdf(c, "PING");
    clock_gettime(CLOCK_MONOTONIC, &t1);

    if (r == NULL) {
        return -1;
    }
    freeReplyObject(r);

    ms = (double) (t1.tv_sec - t0.tv_sec) * 1e3
         + (double) (t1.tv_nsec - t0.tv_nsec) / 1e6;

    r = jk_cmdf(c, "INFO");
    if (r == NULL) {
        return -1;
    }

    if (r->type != REDIS_REPLY_STRING) {
        jk_err("Redis: unexpected reply to INFO");
        freeReplyObject(r);
        return -1;
    }

    jk_info_field(r, "redis_version", version, sizeof(version));
    jk_info_field(r, "role", role, sizeof(role));
    jk_info_field(r, "used_memory_human", mem, sizeof(mem));
    jk_info_field(r, "aof_enabled", aof, sizeof(aof));
    jk_info_field(r, "aof_last_write_status", aofst, sizeof(aofst));
    freeReplyObject(r);

    /* CONFIG may be renamed or denied by ACL: that is not an error */
    r = redisCommand(c, "CONFIG GET appendfsync");
    if (r == NULL) {
        jk_err("Redis: %s", jk_safe(c->errstr, strlen(c->errstr)));
        return -1;
    }

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[1]->type == REDIS_REPLY_STRING)
    {
        snprintf(fsync, sizeof(fsync), "%.*s",
                 (int) (r->element[1]->len < 63 ? r->element[1]->len : 63),
                 r->element[1]->str);

    } else {
        snprintf(fsync, sizeof(fsync), "unknown (CONFIG GET not permitted)");
    }

    freeReplyObject(r);

    printf("\nredis %s:\n", addr && addr[0] ? jk_safe(addr, strlen(addr))
                                             : "127.0.0.1:6379");
    printf("  %-22s %.2f ms\n", "ping", ms);
    printf("  %-22s %s\n", "version", jk_safe(version, strlen(version)));
    printf("  %-22s %s\n", "role", jk_safe(role, strlen(role)));
    printf("  %-22s %s\n", "used_memory", jk_safe(mem, strlen(mem)));
    printf("  %-22s %s\n", "aof_enabled", jk_safe(aof, strlen(aof)));
    printf("  %-22s %s\n", "aof_last_write_status",
           jk_safe(aofst, strlen(aofst)));
    printf("  %-22s %s\n", "appendfsync", jk_safe(fsync, strlen(fsync)));

    if (strcmp(aof, "1") != 0) {
        printf("  warning: AOF is off; acknowledged audit records do not"
               " survive a crash\n");

    } else if (strcmp(fsync, "always") != 0 && strncmp(fsync, "unknown", 7))
    {
        printf("  warning: appendfsync is not \"always\"; the last"
               " acknowledged records\n  may be lost on a crash\n");
    }

    return 0;
}


int
jk_cmd_status(const jk_opts_t *o)
{
    int            rc = JK_ERR;
    redisContext  *c;

    c = jk_redis_connect(o);
    if (c == NULL) {
        return JK_ERR;
    }

    if (jk_status_switches(c) == 0
        && jk_status_today(c) == 0
        && jk_status_health(c, o) == 0)
    {
        rc = JK_OK;
    }

    redisFree(c);

    return rc;
}
