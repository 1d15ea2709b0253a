/*
 * jukictl: stream entries as audit (A2), completion (C2), summary (S1)
 * and control (K1) records, and the checks a record passes on its own
 * (docs/audit.md, "Canonical encoding" and "Verification").
 */

#include <string.h>

#include "jk.h"


#define JK_PROBLEMS_NAMED   20      /* lines on stderr, then a count */


static const char *jk_audit_fields[] = {
    "id", "ts", "node", "writer", "seq", "kid", "agency", "kind", "cert",
    "operator", "purpose", "subject", "method", "uri", "decision", "prev",
    "mac"
};

static const char *jk_done_fields[] = {
    "id", "phase", "ts", "node", "writer", "seq", "kid", "decision",
    "status", "bytes", "upstream_ms", "prev", "mac"
};

static const char *jk_summary_fields[] = {
    "id", "phase", "ts", "node", "writer", "seq", "kid", "cause", "second",
    "recorded", "suppressed", "prev", "mac"
};

const char *jk_control_fields[] = {
    "id", "phase", "ts", "node", "writer", "seq", "kid", "action", "scope",
    "agency", "operator", "reason", "actor", "prev", "mac"
};

const int jk_ncontrol_fields =
    sizeof(jk_control_fields) / sizeof(jk_control_fields[0]);

/* the gateway's reasons first, then the two Redis decides */
const char *jk_reasons[] = {
    "unverified_certificate", "unknown_agency", "bad_request",
    "bad_purpose", "bad_operator", "purpose_not_permitted",
    "resident_code_forbidden", "stopped", "rate_limited", NULL
};

#define JK_GATEWAY_REASONS  7


static const struct {
    const char   *tag;
    const char  **names;
    int           n;
} jk_schemas[JK_REC_TYPES] = {
    { "A2", jk_audit_fields,
      sizeof(jk_audit_fields) / sizeof(jk_audit_fields[0]) },
    { "C2", jk_done_fields,
      sizeof(jk_done_fields) / sizeof(jk_done_fields[0]) },
    { "S1", jk_summary_fields,
      sizeof(jk_summary_fields) / sizeof(jk_summary_fields[0]) },
    { "K1", jk_control_fields,
      sizeof(jk_control_fields) / sizeof(jk_control_fields[0]) },
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
    r->writer = NULL;
    r->seqs = NULL;
    r->seq = 0;
    r->ts = 0;
    r->dec = JK_DEC_UNKNOWN;
    r->key = NULL;

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

        } else if (jk_str_eq(&r->val[1], "summary")) {
            r->type = JK_REC_SUMMARY;

        } else if (jk_str_eq(&r->val[1], "control")) {
            r->type = JK_REC_CONTROL;
        }

    } else if (jk_rec_get(r, "phase") == NULL) {
        r->type = JK_REC_AUDIT;
    }

    /* writer and seq for messages, before anything is trusted */
    r->writer = jk_rec_get(r, "writer");
    r->seqs = jk_rec_get(r, "seq");

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


/* JK_DEC_GATEWAY, JK_DEC_REDIS, or JK_DEC_UNKNOWN */

int
jk_decision_kind(const jk_str_t *d)
{
    int  i;

    if (jk_str_eq(d, "allow") || jk_str_eq(d, "deny:stopped")
        || jk_str_eq(d, "deny:rate_limited"))
    {
        return JK_DEC_REDIS;
    }

    if (d->len <= 5 || memcmp(d->p, "deny:", 5) != 0) {
        return JK_DEC_UNKNOWN;
    }

    for (i = 0; i < JK_GATEWAY_REASONS; i++) {
        if (strlen(jk_reasons[i]) == d->len - 5
            && memcmp(jk_reasons[i], d->p + 5, d->len - 5) == 0)
        {
            return JK_DEC_GATEWAY;
        }
    }

    return JK_DEC_UNKNOWN;
}


static int
jk_lowerhex(const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
        {
            return 0;
        }
    }

    return 1;
}


/* "WRITER-SEQ": 16 lower-hex, a dash, a positive decimal */

int
jk_audit_id(const jk_str_t *id, uint64_t *seq)
{
    if (id->len < 18 || id->p[16] != '-' || !jk_lowerhex(id->p, 16)
        || jk_parse_u64(id->p + 17, id->len - 17, seq) != 0 || *seq == 0)
    {
        return -1;
    }

    return 0;
}


/*
 * mac = H(k_mac, TAG ns(f1) ns(f2) ...) over every field in record order
 * but mac; an audit record leaves its decision out and adds ns(bound)
 * at the end: the decision when the gateway made it, "redis" when Redis
 * did.  The field list must have been checked.
 */

int
jk_rec_mac(const jk_rec_t *r, const jk_key_t *k, jk_buf_t *b,
    unsigned char out[32])
{
    int              i;
    const jk_str_t  *d;

    b->len = 0;
    if (jk_buf_append(b, jk_schemas[r->type].tag, 2) != 0) {
        return -1;
    }

    for (i = 0; i < r->nf; i++) {
        if (i == r->f_mac
            || (r->type == JK_REC_AUDIT && i == JK_A_DECISION))
        {
            continue;
        }

        if (jk_buf_ns(b, r->val[i].p, r->val[i].len) != 0) {
            return -1;
        }
    }

    if (r->type == JK_REC_AUDIT) {
        d = &r->val[JK_A_DECISION];

        if (r->dec == JK_DEC_REDIS
            ? jk_buf_ns(b, "redis", 5) != 0
            : jk_buf_ns(b, d->p, d->len) != 0)
        {
            return -1;
        }
    }

    return jk_hmac(k->k_mac, 32, b->data, b->len, out);
}


/* --max-skew, or the default */

int
jk_skew_opt(const jk_opts_t *o, uint64_t *skew)
{
    *skew = JK_SKEW_DEFAULT;

    if (o->max_skew
        && (jk_parse_duration(o->max_skew, skew) != 0 || *skew > JK_SKEW_MAX))
    {
        return jk_usage_err("bad --max-skew \"%s\" (a duration: 500ms, 5s,"
                            " 2m, at most 24h)",
                            jk_safe(o->max_skew, strlen(o->max_skew)));
    }

    return JK_OK;
}


static int
jk_ms_diff(uint64_t a, uint64_t b, uint64_t *d)
{
    *d = a > b ? a - b : b - a;

    return a > b ? 1 : a < b ? -1 : 0;
}


/*
 * Everything a record must satisfy by itself: the exact field list (a
 * field the writer did not emit would not be covered by the mac), a
 * well-formed writer, seq, id and ts, a known kid and decision, the mac,
 * the stream of its agency, and its place in time: the entry id not
 * ahead of Redis's clock and ts close to the entry id, both within the
 * skew.  NULL when it passes, else what is wrong (ck->detail may hold
 * it).  Sets r->seq, r->ts, r->dec, r->key.
 */

const char *
jk_rec_check(jk_checker_t *ck, jk_rec_t *r, const char *stream)
{
    int              i, n, fw, fs, fk, ft;
    uint64_t         v, d;
    jk_str_t         agency;
    const char     **names;
    const jk_str_t  *ag;
    unsigned char    mac[32], stored[32];

    if (r->type == JK_REC_UNKNOWN) {
        return "unknown phase";
    }

    names = jk_schemas[r->type].names;
    n = jk_schemas[r->type].n;

    if (r->nf != n) {
        return "malformed record (wrong field list)";
    }

    for (i = 0; i < n; i++) {
        if (!jk_str_eq(&r->name[i], names[i])) {
            return "malformed record (wrong field list)";
        }
    }

    if (r->type == JK_REC_AUDIT) {
        fw = JK_A_WRITER; fs = JK_A_SEQ; fk = JK_A_KID; ft = JK_A_TS;
        r->f_prev = JK_A_PREV;
        r->f_mac = JK_A_MAC;

    } else {
        fw = JK_P_WRITER; fs = JK_P_SEQ; fk = JK_P_KID; ft = JK_P_TS;
        r->f_prev = n - 2;
        r->f_mac = n - 1;
    }

    r->writer = &r->val[fw];
    r->seqs = &r->val[fs];

    if (r->writer->len != 16 || !jk_lowerhex(r->writer->p, 16)) {
        return "malformed record (writer)";
    }

    if (jk_parse_u64(r->seqs->p, r->seqs->len, &r->seq) != 0 || r->seq == 0
        || r->seq == UINT64_MAX)
    {
        return "malformed record (seq)";
    }

    if (jk_parse_u64(r->val[ft].p, r->val[ft].len, &r->ts) != 0) {
        return "malformed record (ts)";
    }

    /* a completion names the record it completes, the others themselves */
    if (r->type == JK_REC_DONE) {
        if (jk_audit_id(&r->val[JK_F_ID], &v) != 0) {
            return "malformed record (id)";
        }

    } else {
        const jk_str_t  *id = &r->val[JK_F_ID];

        if (id->len != 17 + r->seqs->len || id->p[16] != '-'
            || memcmp(id->p, r->writer->p, 16) != 0
            || memcmp(id->p + 17, r->seqs->p, r->seqs->len) != 0)
        {
            return "bad id (not WRITER-SEQ)";
        }
    }

    r->key = jk_keys_find(ck->kr, &r->val[fk]);
    if (r->key == NULL) {
        return "unknown kid";
    }

    if (r->type == JK_REC_AUDIT || r->type == JK_REC_DONE) {
        r->dec = jk_decision_kind(&r->val[r->type == JK_REC_AUDIT
                                          ? JK_A_DECISION : JK_D_DECISION]);

        if (r->dec == JK_DEC_UNKNOWN) {
            return "unknown decision";
        }

        if (r->type == JK_REC_DONE && r->dec != JK_DEC_REDIS) {
            return "completion of a decision Redis does not make";
        }
    }

    if (jk_unhex32(&r->val[r->f_mac], stored) != 0) {
        return "bad mac (not 64 lower-hex)";
    }

    if (jk_rec_mac(r, r->key, &ck->scratch, mac) != 0) {
        return "out of memory";
    }

    if (memcmp(mac, stored, 32) != 0) {
        return "bad mac";
    }

    /* where it is */

    if (r->type == JK_REC_AUDIT || r->type == JK_REC_CONTROL) {
        ag = &r->val[r->type == JK_REC_AUDIT ? JK_A_AGENCY : JK_K_AGENCY];

        if (jk_stream_agency(stream, &agency) != 0
            || (ag->len == 0
                ? !(agency.len == 1 && agency.p[0] == '_')
                : !(ag->len == agency.len
                    && memcmp(ag->p, agency.p, ag->len) == 0)))
        {
            return "record in the wrong stream for its agency";
        }

    } else if (r->type == JK_REC_SUMMARY) {
        if (strcmp(stream, "juki:{_}:audit") != 0) {
            return "record in the wrong stream for its agency";
        }

        if (!jk_reason_known(r->val[JK_S_CAUSE].p, r->val[JK_S_CAUSE].len))
        {
            return "unknown cause";
        }

        if (jk_parse_u64(r->val[JK_S_SECOND].p, r->val[JK_S_SECOND].len,
                         &v) != 0
            || jk_parse_u64(r->val[JK_S_RECORDED].p,
                            r->val[JK_S_RECORDED].len, &v) != 0
            || jk_parse_u64(r->val[JK_S_SUPPRESSED].p,
                            r->val[JK_S_SUPPRESSED].len, &v) != 0
            || v == 0)
        {
            return "malformed record (summary counts)";
        }
    }

    /* when it is */

    if (r->ms > ck->now_ms && r->ms - ck->now_ms > ck->skew) {
        snprintf(ck->detail, sizeof(ck->detail),
                 "entry id ahead of Redis's clock by %llu ms",
                 (unsigned long long) (r->ms - ck->now_ms));
        return ck->detail;
    }

    i = jk_ms_diff(r->ts, r->ms, &d);
    if (d > ck->skew) {
        snprintf(ck->detail, sizeof(ck->detail),
                 "ts %llu ms %s its entry id", (unsigned long long) d,
                 i > 0 ? "after" : "before");
        return ck->detail;
    }

    return NULL;
}


/*
 * A stream's last-generated-id (and the highest id deleted) must not be
 * ahead of Redis's clock: after XSETID into the future every record
 * appended gets an id no date window reaches.
 */

const char *
jk_stream_check(jk_checker_t *ck, const jk_stream_t *st)
{
    if (st->last_ms > ck->now_ms && st->last_ms - ck->now_ms > ck->skew) {
        snprintf(ck->detail, sizeof(ck->detail),
                 "last-generated-id ahead of Redis's clock by %llu ms",
                 (unsigned long long) (st->last_ms - ck->now_ms));
        return ck->detail;
    }

    if (st->del_ms > ck->now_ms && st->del_ms - ck->now_ms > ck->skew) {
        snprintf(ck->detail, sizeof(ck->detail),
                 "max-deleted-entry-id ahead of Redis's clock by %llu ms"
                 " (a record with a future id was deleted)",
                 (unsigned long long) (st->del_ms - ck->now_ms));
        return ck->detail;
    }

    return NULL;
}


/* "jukictl: CMD: STREAM entry ID writer WRITER seq SEQ: WHAT" */

void
jk_rec_say(const char *cmd, const char *stream, uint64_t ms, uint64_t sq,
    const jk_str_t *writer, const jk_str_t *seq, const char *what)
{
    fprintf(stderr, "jukictl: %s: %s entry %llu-%llu writer %s seq %s: %s\n",
            cmd, jk_safe(stream, strlen(stream)), (unsigned long long) ms,
            (unsigned long long) sq,
            writer && writer->len ? jk_safe(writer->p,
                                            writer->len > 64 ? 64
                                                             : writer->len)
                                  : "-",
            seq && seq->len ? jk_safe(seq->p, seq->len > 24 ? 24 : seq->len)
                            : "-",
            what);
}


void
jk_problem(jk_problems_t *p, const char *stream, const jk_rec_t *r,
    const char *what)
{
    if (p->n++ < JK_PROBLEMS_NAMED) {
        jk_rec_say(p->cmd, stream, r->ms, r->sq, r->writer, r->seqs, what);
    }
}


void
jk_problem_stream(jk_problems_t *p, const jk_stream_t *st, const char *what)
{
    if (p->n++ < JK_PROBLEMS_NAMED) {
        jk_rec_say(p->cmd, st->name, st->last_ms, st->last_sq, NULL, NULL,
                   what);
    }
}


/* JK_FAIL with a closing line when anything was found, else JK_OK */

int
jk_problems_end(jk_problems_t *p)
{
    if (p->n == 0) {
        return JK_OK;
    }

    if (p->n > JK_PROBLEMS_NAMED) {
        fprintf(stderr, "jukictl: %s: ... and %llu more\n", p->cmd,
                (unsigned long long) (p->n - JK_PROBLEMS_NAMED));
    }

    fprintf(stderr, "jukictl: %s: %llu record%s or stream%s failed"
            " verification and %s left out; run jukictl verify\n", p->cmd,
            (unsigned long long) p->n, p->n == 1 ? "" : "s",
            p->n == 1 ? "" : "s", p->n == 1 ? "is" : "are");

    return JK_FAIL;
}
