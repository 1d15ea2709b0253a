/*
 * jukictl stop / resume: the emergency stop switches.
 *
 * The switch and its control record (docs/audit.md, "Control record")
 * are written in one MULTI/EXEC transaction, so a switch never changes
 * without its record, and a record never claims a change that did not
 * happen.  Each invocation is a writer of its own: seq 1, prev "".
 */

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    char             agency[JK_AGENCY_MAX + 1], stream[JK_AGENCY_MAX + 16];
    char             op[JK_OPERATOR_MAX + 1];
    char             key[JK_AGENCY_MAX + JK_OPERATOR_MAX + 32];
    char             writer[17], id[24], ts[24], node[256], actor[256];
    char             mac_hex[65];
    const char      *scope, *reason, *argv[3 + 2 * 15], *hdr;
    size_t           lens[3 + 2 * 15];
    unsigned char    mac[32];
    jk_buf_t         msg = { NULL, 0, 0 };
    jk_keyring_t     kr;
    const char      *val[15];
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
        snprintf(stream, sizeof(stream), "juki:{_}:audit");
        agency[0] = '\0';

    } else {
        snprintf(stream, sizeof(stream), "juki:{%s}:audit", agency);

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

    /* the control record */

    if (jk_random_hex(writer, 8) != 0 || jk_actor(actor, sizeof(actor)) != 0)
    {
        goto done;
    }

    if (gethostname(node, sizeof(node)) != 0) {
        snprintf(node, sizeof(node), "unknown");
    }
    node[sizeof(node) - 1] = '\0';

    snprintf(id, sizeof(id), "%s-1", writer);
    snprintf(ts, sizeof(ts), "%llu", (unsigned long long) jk_now_ms());

    val[0] = id;
    val[1] = "control";
    val[2] = ts;
    val[3] = node;
    val[4] = writer;
    val[5] = "1";
    val[6] = kr.key[0].kid;
    val[7] = stop ? "stop" : "resume";
    val[8] = scope;
    val[9] = agency;
    val[10] = o->op ? op : "";
    val[11] = reason;
    val[12] = actor;
    val[13] = "";

    if (jk_buf_append(&msg, "K1", 2) != 0) {
        goto done;
    }

    for (n = 0; n < 14; n++) {
        if (jk_buf_ns(&msg, val[n], strlen(val[n])) != 0) {
            goto done;
        }
    }

    if (jk_hmac(kr.key[0].k_mac, 32, msg.data, msg.len, mac) != 0) {
        goto done;
    }

    jk_hex(mac, 32, mac_hex);
    val[14] = mac_hex;

    /* MULTI; SET or DEL; XADD; EXEC */

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

    argv[0] = "XADD";
    lens[0] = 4;
    argv[1] = stream;
    lens[1] = strlen(stream);
    argv[2] = "*";
    lens[2] = 1;

    for (n = 0; n < jk_ncontrol_fields; n++) {
        argv[3 + 2 * n] = jk_control_fields[n];
        lens[3 + 2 * n] = strlen(jk_control_fields[n]);
        argv[4 + 2 * n] = val[n];
        lens[4 + 2 * n] = strlen(val[n]);
    }

    r = jk_cmd(c, 3 + 2 * jk_ncontrol_fields, argv, lens);
    if (r == NULL) {
        goto done;
    }
    freeReplyObject(r);

    r = jk_cmdf(c, "EXEC");
    if (r == NULL) {
        goto done;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        jk_err("Redis: the transaction was not executed");
        goto done;
    }

    for (n = 0; n < 2; n++) {
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

    printf("control record %s in %s, entry %s\n", id, stream,
           r->element[1]->type == REDIS_REPLY_STRING
           ? jk_safe(r->element[1]->str, r->element[1]->len) : "?");

    rc = JK_OK;

done:

    freeReplyObject(r);
    if (c) {
        redisFree(c);
    }
    jk_buf_free(&msg);
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
