/*
 * jukictl status: stop switches, today's decisions, Redis health.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jk.h"


static void
jk_print_text(const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        unsigned char  c = (unsigned char) p[i];

        putchar(c < 0x20 || c == 0x7f ? '?' : c);
    }
}


static int
jk_status_switches(redisContext *c)
{
    int          shown = 0;
    char         label[160];
    size_t       i, n;
    char        *cursor = NULL;
    const char  *name, *rest;
    redisReply  *r, *keys, *v;

    printf("stop switches:\n");

    v = jk_cmdf(c, "GET juki:stop");
    if (v == NULL) {
        return -1;
    }

    if (v->type == REDIS_REPLY_STRING) {
        printf("  %-9s %-40s ", "global", "*");
        jk_print_text(v->str, v->len);
        putchar('\n');
        shown++;
    }

    freeReplyObject(v);

    cursor = strdup("0");
    if (cursor == NULL) {
        jk_err("out of memory");
        return -1;
    }

    do {
        r = jk_cmdf(c, "SCAN %s MATCH juki:{*}:stop* COUNT 1000 TYPE string",
                    cursor);
        free(cursor);
        cursor = NULL;

        if (r == NULL) {
            return -1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || r->element[0]->type != REDIS_REPLY_STRING
            || r->element[1]->type != REDIS_REPLY_ARRAY)
        {
            jk_err("Redis: unexpected reply to SCAN");
            freeReplyObject(r);
            return -1;
        }

        keys = r->element[1];

        for (i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type != REDIS_REPLY_STRING) {
                continue;
            }

            name = keys->element[i]->str;
            rest = strstr(name, "}:stop");
            if (strncmp(name, "juki:{", 6) != 0 || rest == NULL) {
                continue;
            }

            n = (size_t) (rest - name - 6);
            rest += 6;

            if (*rest != '\0' && strncmp(rest, ":op:", 4) != 0) {
                continue;
            }

            v = jk_cmdf(c, "GET %s", name);
            if (v == NULL) {
                freeReplyObject(r);
                return -1;
            }

            if (v->type == REDIS_REPLY_STRING) {
                if (*rest == '\0') {
                    snprintf(label, sizeof(label), "%.*s",
                             (int) (n > 64 ? 64 : n), name + 6);

                } else {
                    snprintf(label, sizeof(label), "%.*s/%.64s",
                             (int) (n > 64 ? 64 : n), name + 6, rest + 4);
                }

                printf("  %-9s %-40s ", *rest ? "operator" : "agency",
                       label);

                jk_print_text(v->str, v->len);
                putchar('\n');
                shown++;
            }

            freeReplyObject(v);
        }

        cursor = strdup(r->element[0]->str);
        freeReplyObject(r);

        if (cursor == NULL) {
            jk_err("out of memory");
            return -1;
        }

    } while (strcmp(cursor, "0") != 0);

    free(cursor);

    if (shown == 0) {
        printf("  none set\n");
    }

    return 0;
}


static int
jk_status_today(redisContext *c)
{
    int              rc;
    size_t           i, k;
    char             day[16];
    uint64_t         now, midnight, allow, deny;
    jk_ht_t          reasons;
    jk_str_t         agency;
    jk_rec_t        *rec;
    jk_hent_t      **sorted;
    jk_xiter_t       it;
    jk_streams_t     streams;
    const jk_str_t  *d;
    const redisReply  *entry;

    if (jk_redis_time_ms(c, &now) != 0) {
        return -1;
    }

    midnight = now - now % 86400000;
    jk_fmt_day((int64_t) (now / 86400000), day, sizeof(day));

    if (jk_streams_list(c, &streams) != 0) {
        return -1;
    }

    rec = malloc(sizeof(jk_rec_t));
    if (rec == NULL) {
        jk_err("out of memory");
        jk_streams_free(&streams);
        return -1;
    }

    printf("\ntoday (%s UTC), audit records per agency:\n", day);
    printf("  %-24s %10s %10s  %s\n", "agency", "allow", "deny",
           "denials by reason");

    for (i = 0; i < streams.n; i++) {
        if (jk_ht_init(&reasons, 16) != 0) {
            goto failed;
        }

        allow = 0;
        deny = 0;

        jk_xiter_init(&it, c, streams.name[i], midnight, UINT64_MAX, 1000);

        while ((rc = jk_xiter_next(&it, &entry)) == 1) {
            if (jk_rec_parse(entry, rec) != 0 || rec->type != JK_REC_AUDIT) {
                continue;
            }

            d = jk_rec_get(rec, "decision");
            if (d == NULL) {
                continue;
            }

            if (jk_str_eq(d, "allow")) {
                allow++;

            } else if (d->len > 5 && memcmp(d->p, "deny:", 5) == 0) {
                jk_hent_t  *e = jk_ht_get(&reasons, d->p + 5, d->len - 5);

                if (e == NULL) {
                    jk_xiter_free(&it);
                    jk_ht_free(&reasons, NULL);
                    goto failed;
                }

                e->n++;
                deny++;
            }
        }

        jk_xiter_free(&it);

        if (rc < 0) {
            jk_ht_free(&reasons, NULL);
            goto failed;
        }

        jk_stream_agency(streams.name[i], &agency);

        if (agency.len == 1 && agency.p[0] == '_') {
            printf("  %-24s", "(no agency)");
        } else {
            printf("  %-24.*s", (int) agency.len, agency.p);
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
            jk_print_text(sorted[k]->key, sorted[k]->klen);
            printf("=%llu", (unsigned long long) sorted[k]->n);
        }

        putchar('\n');
        free(sorted);
        jk_ht_free(&reasons, NULL);
    }

    if (streams.n == 0) {
        printf("  no audit streams\n");
    }

    free(rec);
    jk_streams_free(&streams);

    return 0;

failed:

    free(rec);
    jk_streams_free(&streams);

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
        jk_err("Redis: %s", c->errstr);
        return -1;
    }

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[1]->type == REDIS_REPLY_STRING)
    {
        snprintf(fsync, sizeof(fsync), "%s", r->element[1]->str);

    } else {
        snprintf(fsync, sizeof(fsync), "unknown (CONFIG GET not permitted)");
    }

    freeReplyObject(r);

    printf("\nredis %s:\n", addr && addr[0] ? addr : "127.0.0.1:6379");
    printf("  %-22s %.2f ms\n", "ping", ms);
    printf("  %-22s %s\n", "version", version);
    printf("  %-22s %s\n", "role", role);
    printf("  %-22s %s\n", "used_memory", mem);
    printf("  %-22s %s\n", "aof_enabled", aof);
    printf("  %-22s %s\n", "aof_last_write_status", aofst);
    printf("  %-22s %s\n", "appendfsync", fsync);

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
