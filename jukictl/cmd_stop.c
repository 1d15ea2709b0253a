/*
 * jukictl stop / resume: the emergency stop switches.
 *
 * The switch and its A3 records (docs/audit.md) are
 * written in one MULTI/EXEC transaction, so a switch never changes
 * without its record, and a record never claims a change that did not
 * happen.  Each invocation is a writer of its own: its W record (role 2)
 * in juki:{_}:audit, then its K record, seq 1, in the agency's list (or
 * juki:{_}:audit for the global switch).
 */

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "jk.h"


#define JK_REASON_MAX  1024


static int
jk_actor(char *out, size_t size)
{
    struct passwd  *pw;

    pw = getpwuid(getuid());

    if (pw && pw->pw_name && pw->pw_name[0]) {
        if (strlen(pw->pw_name) >= size) {
            jk_err("user name too long");
            return -1;
        }
        memcpy(out, pw->pw_name, strlen(pw->pw_name) + 1);

    } else {
        snprintf(out, size, "uid:%lu", (unsigned long) getuid());
    }

    return 0;
}


static int
jk_switch(const jk_opts_t *o, int stop)
{
    int              n, rc = JK_ERR;
    char             agency[JK_AGENCY_MAX + 1], list[JK_AGENCY_MAX + 16];
    char             op[JK_OPERATOR_MAX + 1];
    char             key[JK_AGENCY_MAX + JK_OPERATOR_MAX + 32];
    char             whex[17], node[256], actor[256];
    const char      *scope, *reason, *hdr;
    uint64_t         ts;
    unsigned char    writer[8], kid[8], prev[16], mac[16];
    jk_buf_t         msg = { NULL, 0, 0 }, w = { NULL, 0, 0 },
                     k = { NULL, 0, 0 };
    jk_keyring_t     kr;
    redisReply      *r = NULL, *x;
    redisContext    *c = NULL;

    /* arguments */

    reason = o->reason ? o->reason : "";

    if (stop && reason[0] == '\0') {
        return jk_usage_err("stop needs --reason TEXT");
    }

    if (strlen(reason) > JK_REASON_MAX) {
        return jk_usage_err("--reason is longer than %d bytes",
                            JK_REASON_MAX);
    }

    for (n = 0; reason[n]; n++) {
        if ((unsigned char) reason[n] < 0x20 || reason[n] == 0x7f) {
            return jk_usage_err("--reason holds a control character");
        }
    }

    if (o->op && o->agency == NULL) {
        return jk_usage_err("--operator needs --agency");
    }

    if (o->agency && jk_valid_agency(o->agency, agency, sizeof(agency)))
    {
        return jk_usage_err("bad agency name \"%s\"",
                            jk_safe(o->agency, strlen(o->agency)));
    }

    /* the module looks up the lower-cased id: Op.7 and op.7 are one */
    if (o->op && jk_valid_operator(o->op, op, sizeof(op)) != 0) {
        return jk_usage_err("bad operator id \"%s\" (1-64 of A-Za-z0-9._-)",
                            jk_safe(o->op, strlen(o->op)));
    }

    if (o->agency == NULL) {
        scope = "global";
        snprintf(key, sizeof(key), "juki:stop");
        snprintf(list, sizeof(list), "juki:{_}:audit");
        agency[0] = '\0';

    } else {
        snprintf(list, sizeof(list), "juki:{%s}:audit", agency);

        if (o->op) {
            scope = "operator";
            snprintf(key, sizeof(key), "juki:{%s}:stop:op:%s", agency, op);

        } else {
            scope = "agency";
            snprintf(key, sizeof(key), "juki:{%s}:stop", agency);
        }
    }

    n = jk_keys_load(o, &kr);
    if (n < 0) {
        return JK_ERR;
    }

    if (n == 0) {
        jk_err("%s needs the audit key (--key PATH or JUKI_AUDIT_KEY)",
               o->command);
        return JK_ERR;
    }

    if (o->nkeys > 1) {
        jk_err("%s signs with one key; give exactly one --key", o->command);
        goto done;
    }

    /* the writer's W record, then its K record (seq 1) */

    if (RAND_bytes(writer, 8) != 1) {
        jk_err("OpenSSL: no random bytes");
        goto done;
    }

    jk_hex(writer, 8, whex);

    if (jk_actor(actor, sizeof(actor)) != 0) {
        goto done;
    }

    if (gethostname(node, sizeof(node)) != 0) {
        snprintf(node, sizeof(node), "unknown");
    }
    node[sizeof(node) - 1] = '\0';

    for (n = 0; n < 8; n++) {
        unsigned  v;

        if (sscanf(kr.key[0].kid + 2 * n, "%2x", &v) != 1) {
            jk_err("bad kid");
            goto done;
        }
        kid[n] = (unsigned char) v;
    }

    ts = jk_now_ms();
    memset(prev, 0, 16);

    if (jk_buf_append(&w, "W", 1) != 0
        || jk_buf_append(&w, writer, 8) != 0
        || jk_a3_put_u48(&w, ts) != 0
        || jk_buf_append(&w, kid, 8) != 0
        || jk_a3_put_str(&w, node, strlen(node)) != 0
        || jk_buf_append(&w, "\x02", 1) != 0
        || jk_a3_mac(&kr.key[0], "_", 1, prev, (unsigned char *) w.data,
                     w.len, &msg, mac) != 0
        || jk_buf_append(&w, mac, 16) != 0)
    {
        goto done;
    }

    memcpy(prev, mac, 16);

    if (jk_buf_append(&k, "K", 1) != 0
        || jk_buf_append(&k, writer, 8) != 0
        || jk_a3_put_varint(&k, 1) != 0
        || jk_a3_put_u48(&k, ts) != 0
        || jk_buf_append(&k, stop ? "\x01" : "\x02", 1) != 0
        || jk_buf_append(&k, o->agency == NULL ? "\x01"
                             : o->op ? "\x03" : "\x02", 1) != 0
        || jk_a3_put_str(&k, o->op ? op : "", o->op ? strlen(op) : 0) != 0
        || jk_a3_put_str(&k, reason, strlen(reason)) != 0
        || jk_a3_put_str(&k, actor, strlen(actor)) != 0
        || jk_a3_mac(&kr.key[0], o->agency ? agency : "_",
                     o->agency ? strlen(agency) : 1, prev,
                     (unsigned char *) k.data, k.len, &msg, mac) != 0
        || jk_buf_append(&k, mac, 16) != 0)
    {
        goto done;
    }

    /* MULTI; SET or DEL; RPUSH W; RPUSH K; EXEC */

    c = jk_redis_connect(o);
    if (c == NULL) {
        goto done;
    }

    r = jk_cmdf(c, "MULTI");
    if (r == NULL) {
        goto done;
    }
    freeReplyObject(r);

    if (stop) {
        r = jk_cmdf(c, "SET %s %s", key, reason);
    } else {
        r = jk_cmdf(c, "DEL %s", key);
    }

    if (r == NULL) {
        goto done;
    }
    freeReplyObject(r);

    r = jk_cmdf(c, "RPUSH juki:{_}:audit %b", w.data, w.len);
    if (r == NULL) {
        goto done;
    }
    freeReplyObject(r);

    r = jk_cmdf(c, "RPUSH %s %b", list, k.data, k.len);
    if (r == NULL) {
        goto done;
    }
    freeReplyObject(r);

    r = jk_cmdf(c, "EXEC");
    if (r == NULL) {
        goto done;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        jk_err("Redis: the transaction was not executed");
        goto done;
    }

    for (n = 0; n < 3; n++) {
        x = r->element[n];
        if (x->type == REDIS_REPLY_ERROR) {
            jk_err("Redis: %s", jk_safe(x->str, x->len > 200 ? 200 : x->len));
            goto done;
        }
    }

    hdr = stop ? "stopped" : "resumed";

    if (!stop && r->element[0]->type == REDIS_REPLY_INTEGER
        && r->element[0]->integer == 0)
    {
        printf("%s: %s (was not set)\n", hdr, key);

    } else {
        printf("%s: %s\n", hdr, key);
    }

    printf("control record %s-1 in %s\n", whex, list);

    (void) scope;
    rc = JK_OK;

done:

    freeReplyObject(r);
    if (c) {
        redisFree(c);
    }
    jk_buf_free(&msg);
    jk_buf_free(&w);
    jk_buf_free(&k);
    jk_keys_wipe(&kr);

    return rc;
}


int
jk_cmd_stop(const jk_opts_t *o)
{
    return jk_switch(o, 1);
}


int
jk_cmd_resume(const jk_opts_t *o)
{
    return jk_switch(o, 0);
}
