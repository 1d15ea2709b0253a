/*
 * jukictl function load / status: the Redis Function library of group
 * commit (src/ngx_http_juki_function.h, docs/audit.md,
 * "The function and group commit").
 *
 * The library id is the first 12 lower-hex digits of the SHA-256 of the
 * template text; the loaded text is the template with every "@V@"
 * replaced by the id.  FUNCTION LOAD is sent without REPLACE: a changed
 * library is a new name, and "already exists" means it is loaded.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "jk.h"
#include "../src/ngx_http_juki_function.h"


static const char  jk_function_template[] = NGX_HTTP_JUKI_FUNCTION_LIBRARY;


int
jk_function_id(char id[NGX_HTTP_JUKI_FUNCTION_ID_LEN + 1])
{
    char           hex[65];
    unsigned int   dlen = 0;
    unsigned char  digest[32];

    if (!EVP_Digest(jk_function_template, sizeof(jk_function_template) - 1,
                    digest, &dlen, EVP_sha256(), NULL)
        || dlen != 32)
    {
        jk_err("OpenSSL: SHA-256 failed");
        return -1;
    }

    jk_hex(digest, 32, hex);
    memcpy(id, hex, NGX_HTTP_JUKI_FUNCTION_ID_LEN);
    id[NGX_HTTP_JUKI_FUNCTION_ID_LEN] = '\0';

    return 0;
}


/* the template with every "@V@" replaced by the id */

static int
jk_function_text(const char *id, jk_buf_t *b)
{
    const char  *p, *q, *end;

    p = jk_function_template;
    end = p + sizeof(jk_function_template) - 1;

    while (p < end) {
        q = strstr(p, "@V@");
        if (q == NULL) {
            q = end;
        }

        if (jk_buf_append(b, p, (size_t) (q - p)) != 0) {
            return -1;
        }

        if (q == end) {
            break;
        }

        if (jk_buf_append(b, id, strlen(id)) != 0) {
            return -1;
        }

        p = q + 3;
    }

    return 0;
}


static int
jk_function_load(const jk_opts_t *o, const char *id)
{
    int            rc = JK_ERR;
    char           name[32], exists[96];
    const char    *argv[3];
    size_t         lens[3];
    jk_buf_t       text = { NULL, 0, 0 };
    redisReply    *r = NULL;
    redisContext  *c;

    snprintf(name, sizeof(name), "juki_%s", id);
    snprintf(exists, sizeof(exists), "ERR Library '%s' already exists",
             name);

    if (jk_function_text(id, &text) != 0) {
        return JK_ERR;
    }

    c = jk_redis_connect(o);
    if (c == NULL) {
        jk_buf_free(&text);
        return JK_ERR;
    }

    argv[0] = "FUNCTION";
    lens[0] = 8;
    argv[1] = "LOAD";
    lens[1] = 4;
    argv[2] = text.data;
    lens[2] = text.len;

    r = redisCommandArgv(c, 3, argv, lens);

    if (r == NULL) {
        jk_err("Redis: FUNCTION LOAD: %s",
               c->err ? jk_safe(c->errstr, strlen(c->errstr)) : "no reply");
        goto done;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        if (r->len == strlen(exists) && memcmp(r->str, exists, r->len) == 0)
        {
            printf("function library %s already loaded\n", name);
            rc = JK_OK;
            goto done;
        }

        jk_err("Redis: FUNCTION LOAD %s: %s", name,
               jk_safe(r->str, r->len > 200 ? 200 : r->len));
        goto done;
    }

    if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        && r->len == strlen(name) && memcmp(r->str, name, r->len) == 0)
    {
        printf("function library %s loaded\n", name);
        rc = JK_OK;
        goto done;
    }

    jk_err("Redis: FUNCTION LOAD %s: unexpected reply", name);

done:

    freeReplyObject(r);
    redisFree(c);
    jk_buf_free(&text);

    return rc;
}


static int
jk_function_status(const jk_opts_t *o, const char *id)
{
    int            rc = JK_ERR;
    char           name[32];
    redisReply    *r;
    redisContext  *c;

    snprintf(name, sizeof(name), "juki_%s", id);

    c = jk_redis_connect(o);
    if (c == NULL) {
        return JK_ERR;
    }

    /* LIBRARYNAME is a pattern; the id is hex, so it matches one name */
    r = jk_cmdf(c, "FUNCTION LIST LIBRARYNAME %s", name);
    if (r == NULL) {
        goto done;
    }

    if (r->type != REDIS_REPLY_ARRAY) {
        jk_err("Redis: FUNCTION LIST: unexpected reply");
        goto done;
    }

    if (r->elements == 0) {
        printf("function library %s is not loaded"
               " (jukictl function load)\n", name);
        rc = JK_FAIL;

    } else {
        printf("function library %s is loaded\n", name);
        rc = JK_OK;
    }

done:

    freeReplyObject(r);
    redisFree(c);

    return rc;
}


int
jk_cmd_function(const jk_opts_t *o)
{
    char  id[NGX_HTTP_JUKI_FUNCTION_ID_LEN + 1];

    if (o->sub == NULL) {
        return jk_usage_err("function needs load or status");
    }

    if (jk_function_id(id) != 0) {
        return JK_ERR;
    }

    if (strcmp(o->sub, "load") == 0) {
        return jk_function_load(o, id);
    }

    if (strcmp(o->sub, "status") == 0) {
        return jk_function_status(o, id);
    }

    if (!jk_name_like(o->sub, strlen(o->sub), JK_NAME_MAX)) {
        return jk_usage_err("unknown function subcommand");
    }

    return jk_usage_err("unknown function subcommand \"%s\"", o->sub);
}
