/*
 * jukictl: stream entries as audit, completion and control records
 * (docs/audit.md, "Canonical encoding").
 */

#include <string.h>

#include "jk.h"


static const char *jk_audit_fields[] = {
    "id", "ts", "node", "writer", "seq", "kid", "agency", "kind", "cert",
    "operator", "purpose", "subject", "method", "uri", "decision", "prev",
    "mac", "dmac"
};

static const char *jk_done_fields[] = {
    "id", "phase", "ts", "node", "writer", "seq", "kid", "status", "bytes",
    "upstream_ms", "prev", "mac"
};

const char *jk_control_fields[] = {
    "id", "phase", "ts", "node", "writer", "seq", "kid", "action", "scope",
    "agency", "operator", "reason", "actor", "prev", "mac"
};

const int jk_ncontrol_fields =
    sizeof(jk_control_fields) / sizeof(jk_control_fields[0]);

const char *jk_reasons[] = {
    "unverified_certificate", "unknown_agency", "bad_purpose",
    "bad_operator", "purpose_not_permitted", "resident_code_forbidden",
    "stopped", "rate_limited", NULL
};


/* an XRANGE entry [id, [f1, v1, f2, v2, ...]]; -1 when malformed */

int
jk_rec_parse(const redisReply *entry, jk_rec_t *r)
{
    size_t             i;
    const redisReply  *f, *id;

    id = entry->element[0];
    f = entry->element[1];

    r->eid.p = id->str;
    r->eid.len = id->len;
    r->type = JK_REC_UNKNOWN;
    r->nf = 0;

    if (jk_parse_eid(id->str, id->len, &r->ms, &r->sq) != 0) {
        return -1;
    }

    if (f->elements % 2 || f->elements / 2 > JK_REC_FIELDS_MAX) {
        return -1;
    }

    for (i = 0; i < f->elements; i += 2) {
        if (f->element[i]->type != REDIS_REPLY_STRING
            || f->element[i + 1]->type != REDIS_REPLY_STRING)
        {
            return -1;
        }

        r->name[r->nf].p = f->element[i]->str;
        r->name[r->nf].len = f->element[i]->len;
        r->val[r->nf].p = f->element[i + 1]->str;
        r->val[r->nf].len = f->element[i + 1]->len;
        r->nf++;
    }

    /* audit records have no phase; the others carry it second */
    if (r->nf >= 2 && jk_str_eq(&r->name[1], "phase")) {
        if (jk_str_eq(&r->val[1], "done")) {
            r->type = JK_REC_DONE;

        } else if (jk_str_eq(&r->val[1], "control")) {
            r->type = JK_REC_CONTROL;
        }

    } else if (jk_rec_get(r, "phase") == NULL) {
        r->type = JK_REC_AUDIT;
    }

    return 0;
}


const jk_str_t *
jk_rec_get(const jk_rec_t *r, const char *name)
{
    int  i;

    for (i = 0; i < r->nf; i++) {
        if (jk_str_eq(&r->name[i], name)) {
            return &r->val[i];
        }
    }

    return NULL;
}


/*
 * The exact field list, in order: a field the writer did not emit would
 * not be covered by the mac, so none is tolerated.  NULL when it
 * matches, else what is wrong.
 */

const char *
jk_rec_schema(const jk_rec_t *r)
{
    int           i, n;
    const char  **names;

    switch (r->type) {
    case JK_REC_AUDIT:
        names = jk_audit_fields;
        n = sizeof(jk_audit_fields) / sizeof(jk_audit_fields[0]);
        break;
    case JK_REC_DONE:
        names = jk_done_fields;
        n = sizeof(jk_done_fields) / sizeof(jk_done_fields[0]);
        break;
    case JK_REC_CONTROL:
        names = jk_control_fields;
        n = jk_ncontrol_fields;
        break;
    default:
        return "unknown phase";
    }

    if (r->nf != n) {
        return "malformed record (wrong field list)";
    }

    for (i = 0; i < n; i++) {
        if (!jk_str_eq(&r->name[i], names[i])) {
            return "malformed record (wrong field list)";
        }
    }

    return NULL;
}


/*
 * mac = H(k_mac, TAG ns(f1) ns(f2) ...) over every field in record order
 * except decision, mac and dmac: that is exactly the list docs/audit.md
 * gives for each record type.  The schema must have been checked.
 */

int
jk_rec_mac(const jk_rec_t *r, const jk_key_t *k, jk_buf_t *b,
    unsigned char out[32])
{
    int          i;
    const char  *tag;

    tag = r->type == JK_REC_AUDIT ? "A1"
          : r->type == JK_REC_DONE ? "C1" : "K1";

    b->len = 0;
    if (jk_buf_append(b, tag, 2) != 0) {
        return -1;
    }

    for (i = 0; i < r->nf; i++) {
        if (jk_str_eq(&r->name[i], "decision")
            || jk_str_eq(&r->name[i], "mac")
            || jk_str_eq(&r->name[i], "dmac"))
        {
            continue;
        }

        if (jk_buf_ns(b, r->val[i].p, r->val[i].len) != 0) {
            return -1;
        }
    }

    return jk_hmac(k->k_mac, 32, b->data, b->len, out);
}


/* dmac = H(k_mac, "D1" ns(mac) ns(decision)), audit records only */

int
jk_rec_dmac(const jk_rec_t *r, const jk_key_t *k, jk_buf_t *b,
    unsigned char out[32])
{
    b->len = 0;

    if (jk_buf_append(b, "D1", 2) != 0
        || jk_buf_ns(b, r->val[JK_A_MAC].p, r->val[JK_A_MAC].len) != 0
        || jk_buf_ns(b, r->val[JK_A_DECISION].p,
                     r->val[JK_A_DECISION].len) != 0)
    {
        return -1;
    }

    return jk_hmac(k->k_mac, 32, b->data, b->len, out);
}


int
jk_reason_known(const char *p, size_t n)
{
    int  i;

    for (i = 0; jk_reasons[i]; i++) {
        if (strlen(jk_reasons[i]) == n && memcmp(jk_reasons[i], p, n) == 0) {
            return 1;
        }
    }

    return 0;
}


int
jk_decision_known(const jk_str_t *d)
{
    if (jk_str_eq(d, "allow")) {
        return 1;
    }

    return d->len > 5 && memcmp(d->p, "deny:", 5) == 0
           && jk_reason_known(d->p + 5, d->len - 5);
}
