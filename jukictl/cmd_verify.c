/*
 * jukictl verify: walks every writer's chain (docs/audit.md,
 * "Verification").
 *
 * Streaming, bounded memory
 *
 *   Every juki:{*}:audit stream is read with XRANGE ... COUNT n, one
 *   batch per stream at a time, and the streams are k-way merged by
 *   entry id with a binary heap.  What is kept beyond the batches is
 *   per writer: next expected seq, last mac, highest seq seen and in
 *   which stream (a hash table keyed by writer id, ~150 bytes each),
 *   plus a bounded reorder buffer.  Memory does not grow with the
 *   number of records, only with the number of writers.
 *
 * Checks done on each record as it is read
 *
 *   field list exactly as documented (a field added by someone else
 *   would not be covered by the mac), known kid, well-formed writer,
 *   seq, id and prev, mac (and for audit records dmac and a known
 *   decision), and that audit and control records sit in the stream of
 *   their agency.
 *
 * Order, and records that arrive out of order
 *
 *   A writer is one connection, and Redis executes a connection's
 *   commands in order, so inside one stream a writer's records have
 *   increasing entry ids and increasing seq.  A record whose seq is
 *   below one already seen from the same writer in the same stream is
 *   reported ("seq out of order"): that is how two swapped records are
 *   caught.
 *
 *   Across streams the merge by entry id is only nearly in seq order:
 *   each stream numbers the entries of one millisecond on its own
 *   (T-0, T-1, ...), so two records written within the same
 *   millisecond to two streams can come out of the merge swapped, and
 *   a stream whose last id ran ahead of the clock (the clock stepped
 *   back) keeps ids ahead of the others for a while.  Such a record,
 *   whose predecessor has not been seen yet, is parked in the reorder
 *   buffer (ordered by seq per writer, and by arrival in one list) until
 *   the predecessor arrives.  A parked record is given up on, and its
 *   chain declared broken ("seq gap N..M missing"), when the merge has
 *   moved more than --max-skew ms (default 5000) of entry time past it,
 *   when the buffer holds JK_REORDER_MAX records, or at the end.
 *
 * Windows
 *
 *   With --from/--to only entries inside the window are read.  A
 *   writer's chain may then begin inside it at a seq above 1: the
 *   lowest seq seen (after the same reorder allowance) starts the chain
 *   and its prev is taken on trust; continuity is checked from there.
 *   Without --to the window ends 1 ms before the Redis clock at start,
 *   so records appended while verify runs cannot look like a gap.
 */

#include <stdlib.h>
#include <string.h>

#include "jk.h"


#define JK_MERGE_BUDGET     16384   /* entries held by all batches */
#define JK_REORDER_MAX      100000  /* records parked in the buffer */
#define JK_SKEW_DEFAULT     5000    /* ms */


typedef struct jk_pend_s    jk_pend_t;
typedef struct jk_writer_s  jk_writer_t;

struct jk_pend_s {
    jk_pend_t       *wnext;         /* the writer's parked records */
    jk_pend_t       *fprev;         /* all parked records, by arrival */
    jk_pend_t       *fnext;
    jk_writer_t     *w;
    uint64_t         seq;
    uint64_t         ms;
    uint64_t         sq;
    uint32_t         stream;
    unsigned         prev_empty:1;
    unsigned char    prev[32];
    unsigned char    mac[32];
};

struct jk_writer_s {
    const char      *name;          /* the hash table key */
    uint64_t         next;          /* next seq expected, 0: not started */
    uint64_t         max_seq;       /* highest seq seen, in max_stream */
    uint32_t         max_stream;
    unsigned         linked:1;      /* last_mac is set */
    unsigned         windowed:1;    /* chain began inside the window */
    unsigned char    last_mac[32];
    jk_pend_t       *pend;          /* parked, by seq */
    jk_pend_t       *pend_tail;
};

typedef struct {
    jk_xiter_t          it;
    const redisReply   *entry;
    uint64_t            ms;
    uint64_t            sq;
} jk_cursor_t;

typedef struct {
    jk_streams_t        streams;
    jk_cursor_t        *cur;
    uint32_t           *heap;
    size_t              nheap;
    jk_ht_t             writers;
    jk_pend_t          *fifo;
    jk_pend_t          *fifo_tail;
    size_t              npend;
    size_t              max_npend;
    jk_keyring_t        kr;
    jk_buf_t            scratch;
    jk_rec_t            rec;
    int                 windowed;
    uint64_t            skew;
    uint64_t            nrec[3];
    uint64_t            nwindowed;
} jk_verify_t;


/* the one line naming the break */

static int
jk_break(jk_verify_t *v, uint32_t stream, uint64_t ms, uint64_t sq,
    const char *writer, size_t wlen, const char *seq, size_t slen,
    const char *what, const char *detail)
{
    size_t  i;

    fprintf(stderr, "jukictl: verify: %s entry %llu-%llu writer ",
            v->streams.name[stream], (unsigned long long) ms,
            (unsigned long long) sq);

    for (i = 0; i < wlen && i < 64; i++) {
        fputc(writer[i] > ' ' && writer[i] < 0x7f ? writer[i] : '?', stderr);
    }
    if (wlen == 0) {
        fputc('?', stderr);
    }

    fputs(" seq ", stderr);
    for (i = 0; i < slen && i < 24; i++) {
        fputc(seq[i] > ' ' && seq[i] < 0x7f ? seq[i] : '?', stderr);
    }
    if (slen == 0) {
        fputc('?', stderr);
    }

    fprintf(stderr, ": %s%s\n", what, detail ? detail : "");

    return JK_FAIL;
}


static int
jk_break_pend(jk_verify_t *v, const jk_pend_t *p, const char *what,
    const char *detail)
{
    char  seq[24];

    snprintf(seq, sizeof(seq), "%llu", (unsigned long long) p->seq);

    return jk_break(v, p->stream, p->ms, p->sq, p->w->name, 16, seq,
                    strlen(seq), what, detail);
}


/* heap of stream indexes, smallest current entry id first */

static int
jk_cur_less(jk_verify_t *v, uint32_t a, uint32_t b)
{
    jk_cursor_t  *x = &v->cur[a], *y = &v->cur[b];

    if (x->ms != y->ms) {
        return x->ms < y->ms;
    }

    if (x->sq != y->sq) {
        return x->sq < y->sq;
    }

    return a < b;
}


static void
jk_heap_down(jk_verify_t *v, size_t i)
{
    size_t    l, m;
    uint32_t  t;

    for ( ;; ) {
        l = 2 * i + 1;
        m = i;

        if (l < v->nheap && jk_cur_less(v, v->heap[l], v->heap[m])) {
            m = l;
        }

        if (l + 1 < v->nheap && jk_cur_less(v, v->heap[l + 1], v->heap[m])) {
            m = l + 1;
        }

        if (m == i) {
            return;
        }

        t = v->heap[i];
        v->heap[i] = v->heap[m];
        v->heap[m] = t;
        i = m;
    }
}


static void
jk_heap_up(jk_verify_t *v, size_t i)
{
    uint32_t  t;

    while (i && jk_cur_less(v, v->heap[i], v->heap[(i - 1) / 2])) {
        t = v->heap[i];
        v->heap[i] = v->heap[(i - 1) / 2];
        v->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}


/* next entry of stream i: 1 got one, 0 end, -1 error */

static int
jk_cursor_advance(jk_verify_t *v, uint32_t i)
{
    int                rc;
    jk_cursor_t       *c = &v->cur[i];
    const redisReply  *id;

    rc = jk_xiter_next(&c->it, &c->entry);
    if (rc != 1) {
        return rc;
    }

    id = c->entry->element[0];

    if (jk_parse_eid(id->str, id->len, &c->ms, &c->sq) != 0) {
        jk_err("verify: %s: bad entry id", v->streams.name[i]);
        return -1;
    }

    return 1;
}


/* the chain link of a record that is next in its writer's seq order */

static int
jk_link(jk_verify_t *v, jk_writer_t *w, const jk_pend_t *p)
{
    if (p->seq == 1) {
        if (!p->prev_empty) {
            return jk_break_pend(v, p, "prev mismatch",
                                 " (seq 1 must have an empty prev)");
        }

    } else if (w->linked) {
        if (p->prev_empty || memcmp(p->prev, w->last_mac, 32) != 0) {
            return jk_break_pend(v, p, "prev mismatch",
                                 " (not the mac of the previous seq)");
        }

    } else if (!w->windowed) {
        /* cannot happen: a chain outside a window starts at seq 1 */
        return jk_break_pend(v, p, "prev mismatch", NULL);
    }

    memcpy(w->last_mac, p->mac, 32);
    w->linked = 1;
    w->next = p->seq + 1;

    return JK_OK;
}


static void
jk_fifo_remove(jk_verify_t *v, jk_pend_t *p)
{
    if (p->fprev) {
        p->fprev->fnext = p->fnext;
    } else {
        v->fifo = p->fnext;
    }

    if (p->fnext) {
        p->fnext->fprev = p->fprev;
    } else {
        v->fifo_tail = p->fprev;
    }

    v->npend--;
}


/* link the writer's parked records that now follow on */

static int
jk_drain(jk_verify_t *v, jk_writer_t *w)
{
    int         rc;
    jk_pend_t  *p;

    while (w->pend && w->pend->seq == w->next) {
        p = w->pend;

        rc = jk_link(v, w, p);
        if (rc != JK_OK) {
            return rc;
        }

        w->pend = p->wnext;
        if (w->pend == NULL) {
            w->pend_tail = NULL;
        }

        jk_fifo_remove(v, p);
        free(p);
    }

    return JK_OK;
}


/*
 * Gives up waiting for the oldest parked record's predecessors.  A
 * writer that has not started (inside a window) starts at its lowest
 * seq; otherwise this is a gap.
 */

static int
jk_evict(jk_verify_t *v)
{
    int           rc;
    char          detail[64];
    uint64_t      seq = v->fifo->seq;
    jk_writer_t  *w = v->fifo->w;

    if (w->next == 0) {
        w->next = w->pend->seq;
        w->windowed = 1;
        v->nwindowed++;

        rc = jk_drain(v, w);
        if (rc != JK_OK) {
            return rc;
        }

        if (w->next > seq) {
            return JK_OK;       /* the oldest parked record is linked */
        }
    }

    snprintf(detail, sizeof(detail), "%llu..%llu missing",
             (unsigned long long) w->next,
             (unsigned long long) (w->pend->seq - 1));

    return jk_break_pend(v, w->pend, "seq gap ", detail);
}


static jk_writer_t *
jk_writer_get(jk_verify_t *v, const jk_str_t *name)
{
    jk_hent_t    *e;
    jk_writer_t  *w;

    e = jk_ht_get(&v->writers, name->p, name->len);
    if (e == NULL) {
        return NULL;
    }

    if (e->ptr) {
        return e->ptr;
    }

    w = calloc(1, sizeof(jk_writer_t));
    if (w == NULL) {
        jk_err("out of memory");
        return NULL;
    }

    w->name = e->key;
    w->next = v->windowed ? 0 : 1;
    e->ptr = w;

    return w;
}


static int
jk_lowerhex(const jk_str_t *s, size_t n)
{
    size_t  i;

    if (s->len != n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!((s->p[i] >= '0' && s->p[i] <= '9')
              || (s->p[i] >= 'a' && s->p[i] <= 'f')))
        {
            return 0;
        }
    }

    return 1;
}


/* every check that needs only the record itself, then its chain */

static int
jk_check(jk_verify_t *v, uint32_t stream, const redisReply *entry)
{
    int              wf, sf, kf, pf, mf;
    char             expect[64];
    uint64_t         seq;
    jk_str_t         agency;
    jk_rec_t        *r = &v->rec;
    jk_pend_t        pend, *p, *q, *prev;
    const char      *what;
    jk_writer_t     *w;
    const jk_key_t  *key;
    unsigned char    mac[32], stored[32];

#define BREAK(what, detail)                                                  \
    jk_break(v, stream, r->ms, r->sq, r->val[wf].p, r->val[wf].len,          \
             r->val[sf].p, r->val[sf].len, what, detail)

    if (jk_rec_parse(entry, r) != 0) {
        return jk_break(v, stream, v->cur[stream].ms, v->cur[stream].sq,
                        "", 0, "", 0, "malformed record", NULL);
    }

    what = jk_rec_schema(r);

    if (what) {
        const jk_str_t  *ws = jk_rec_get(r, "writer");
        const jk_str_t  *ss = jk_rec_get(r, "seq");

        return jk_break(v, stream, r->ms, r->sq, ws ? ws->p : "",
                        ws ? ws->len : 0, ss ? ss->p : "", ss ? ss->len : 0,
                        what, NULL);
    }

    if (r->type == JK_REC_AUDIT) {
        wf = JK_A_WRITER;
        sf = JK_A_SEQ;
        kf = JK_A_KID;
        pf = JK_A_PREV;
        mf = JK_A_MAC;

    } else {
        wf = JK_C_WRITER;
        sf = JK_C_SEQ;
        kf = JK_C_KID;
        pf = r->type == JK_REC_DONE ? JK_D_PREV : JK_K_PREV;
        mf = r->type == JK_REC_DONE ? JK_D_MAC : JK_K_MAC;
    }

    v->nrec[r->type]++;

    if (!jk_lowerhex(&r->val[wf], 16)) {
        return BREAK("malformed record (writer)", NULL);
    }

    if (jk_parse_u64(r->val[sf].p, r->val[sf].len, &seq) != 0 || seq == 0
        || seq == UINT64_MAX)
    {
        return BREAK("malformed record (seq)", NULL);
    }

    key = jk_keys_find(&v->kr, &r->val[kf]);
    if (key == NULL) {
        return BREAK("unknown kid", NULL);
    }

    if (r->type != JK_REC_DONE) {
        snprintf(expect, sizeof(expect), "%.16s-%llu", r->val[wf].p,
                 (unsigned long long) seq);

        if (!jk_str_eq(&r->val[JK_F_ID], expect)) {
            return BREAK("bad id (not WRITER-SEQ)", NULL);
        }
    }

    if (jk_unhex32(&r->val[mf], stored) != 0) {
        return BREAK("bad mac", " (not 64 lower-hex)");
    }

    if (jk_rec_mac(r, key, &v->scratch, mac) != 0) {
        return JK_ERR;
    }

    if (memcmp(mac, stored, 32) != 0) {
        return BREAK("bad mac", NULL);
    }

    if (r->type == JK_REC_AUDIT) {
        if (jk_unhex32(&r->val[JK_A_DMAC], stored) != 0) {
            return BREAK("bad dmac", " (not 64 lower-hex)");
        }

        if (jk_rec_dmac(r, key, &v->scratch, mac) != 0) {
            return JK_ERR;
        }

        if (memcmp(mac, stored, 32) != 0) {
            return BREAK("bad dmac", NULL);
        }

        if (!jk_decision_known(&r->val[JK_A_DECISION])) {
            return BREAK("unknown decision", NULL);
        }
    }

    if (r->type != JK_REC_DONE) {
        const jk_str_t  *ag = &r->val[r->type == JK_REC_AUDIT
                                      ? JK_A_AGENCY : JK_K_AGENCY];

        jk_stream_agency(v->streams.name[stream], &agency);

        if (ag->len == 0
            ? !(agency.len == 1 && agency.p[0] == '_')
            : !(ag->len == agency.len
                && memcmp(ag->p, agency.p, ag->len) == 0))
        {
            return BREAK("record in the wrong stream for its agency", NULL);
        }
    }

    /* the chain */

    memset(&pend, 0, sizeof(pend));
    pend.seq = seq;
    pend.ms = r->ms;
    pend.sq = r->sq;
    pend.stream = stream;

    if (jk_unhex32(&r->val[mf], pend.mac) != 0) {
        return BREAK("bad mac", NULL);
    }

    if (r->val[pf].len == 0) {
        pend.prev_empty = 1;

    } else if (jk_unhex32(&r->val[pf], pend.prev) != 0) {
        return BREAK("prev mismatch", " (not 64 lower-hex)");
    }

    w = jk_writer_get(v, &r->val[wf]);
    if (w == NULL) {
        return JK_ERR;
    }

    pend.w = w;

    if (w->next && seq < w->next) {
        return BREAK("seq repeat", NULL);
    }

    /* where it would be parked: after prev, before prev->wnext */
    prev = NULL;

    if (w->pend_tail && w->pend_tail->seq < seq) {
        prev = w->pend_tail;

    } else {
        for (q = w->pend; q && q->seq < seq; q = q->wnext) {
            prev = q;
        }

        if (q && q->seq == seq) {
            return BREAK("seq repeat", NULL);
        }
    }

    if (w->max_seq > seq && w->max_stream == stream) {
        snprintf(expect, sizeof(expect), " (after seq %llu in this stream)",
                 (unsigned long long) w->max_seq);
        return BREAK("seq out of order", expect);
    }

    if (seq > w->max_seq) {
        w->max_seq = seq;
        w->max_stream = stream;
    }

    if (seq == 1 && w->next == 0) {
        w->next = 1;
    }

    if (seq == w->next) {
        int  rc = jk_link(v, w, &pend);

        if (rc != JK_OK) {
            return rc;
        }

        return jk_drain(v, w);
    }

    /* park it until its predecessors arrive */

    p = malloc(sizeof(jk_pend_t));
    if (p == NULL) {
        jk_err("out of memory");
        return JK_ERR;
    }

    *p = pend;

    if (prev) {
        p->wnext = prev->wnext;
        prev->wnext = p;
    } else {
        p->wnext = w->pend;
        w->pend = p;
    }

    if (p->wnext == NULL) {
        w->pend_tail = p;
    }

    p->fnext = NULL;
    p->fprev = v->fifo_tail;
    if (v->fifo_tail) {
        v->fifo_tail->fnext = p;
    } else {
        v->fifo = p;
    }
    v->fifo_tail = p;

    if (++v->npend > v->max_npend) {
        v->max_npend = v->npend;
    }

    return JK_OK;

#undef BREAK
}


static void
jk_writer_free(void *ptr)
{
    jk_writer_t  *w = ptr;
    jk_pend_t    *p, *next;

    for (p = w->pend; p; p = next) {
        next = p->wnext;
        free(p);
    }

    free(w);
}


static int
jk_verify_run(jk_verify_t *v, redisContext *c, uint64_t from_ms,
    uint64_t to_ms)
{
    int       rc;
    size_t    n;
    unsigned  count;
    uint32_t  i;

    n = v->streams.n;

    v->cur = calloc(n ? n : 1, sizeof(jk_cursor_t));
    v->heap = calloc(n ? n : 1, sizeof(uint32_t));
    if (v->cur == NULL || v->heap == NULL) {
        jk_err("out of memory");
        return JK_ERR;
    }

    count = n ? (unsigned) (JK_MERGE_BUDGET / n) : 1000;
    count = count < 16 ? 16 : count > 1000 ? 1000 : count;

    for (i = 0; i < n; i++) {
        jk_xiter_init(&v->cur[i].it, c, v->streams.name[i], from_ms, to_ms,
                      count);

        rc = jk_cursor_advance(v, i);
        if (rc < 0) {
            return JK_ERR;
        }

        if (rc == 1) {
            v->heap[v->nheap++] = i;
            jk_heap_up(v, v->nheap - 1);
        }
    }

    while (v->nheap) {
        i = v->heap[0];

        rc = jk_check(v, i, v->cur[i].entry);
        if (rc != JK_OK) {
            return rc;
        }

        while (v->fifo
               && (v->npend > JK_REORDER_MAX
                   || v->fifo->ms + v->skew < v->cur[i].ms))
        {
            rc = jk_evict(v);
            if (rc != JK_OK) {
                return rc;
            }
        }

        rc = jk_cursor_advance(v, i);
        if (rc < 0) {
            return JK_ERR;
        }

        if (rc == 0) {
            v->heap[0] = v->heap[--v->nheap];
        }

        jk_heap_down(v, 0);
    }

    while (v->fifo) {
        rc = jk_evict(v);
        if (rc != JK_OK) {
            return rc;
        }
    }

    return JK_OK;
}


int
jk_cmd_verify(const jk_opts_t *o)
{
    int            rc = JK_ERR, nk;
    size_t         i;
    uint64_t       from_ms, to_ms, now, skew = JK_SKEW_DEFAULT, total;
    jk_verify_t   *v;
    redisContext  *c;

    if (jk_window(o, 0, &from_ms, &to_ms, NULL) != JK_OK) {
        return JK_ERR;
    }

    if (o->max_skew
        && (jk_parse_u64(o->max_skew, strlen(o->max_skew), &skew) != 0
            || skew > 86400000))
    {
        return jk_usage_err("bad --max-skew \"%s\" (ms, at most 86400000)",
                            o->max_skew);
    }

    v = calloc(1, sizeof(jk_verify_t));
    if (v == NULL) {
        jk_err("out of memory");
        return JK_ERR;
    }

    v->skew = skew;
    v->windowed = (o->from != NULL);

    nk = jk_keys_load(o, &v->kr);
    if (nk <= 0) {
        if (nk == 0) {
            jk_err("verify needs the audit key (--key PATH or"
                   " JUKI_AUDIT_KEY)");
        }
        free(v);
        return JK_ERR;
    }

    c = jk_redis_connect(o);
    if (c == NULL) {
        jk_keys_wipe(&v->kr);
        free(v);
        return JK_ERR;
    }

    if (jk_ht_init(&v->writers, 256) != 0
        || jk_redis_time_ms(c, &now) != 0
        || jk_streams_list(c, &v->streams) != 0)
    {
        goto done;
    }

    /* records appended while we read are left for the next run */
    if (now && to_ms > now - 1) {
        to_ms = now - 1;
    }

    rc = jk_verify_run(v, c, from_ms, to_ms);

    if (rc == JK_OK) {
        total = v->nrec[0] + v->nrec[1] + v->nrec[2];

        printf("verify: ok: %llu records (%llu audit, %llu completion,"
               " %llu control) in %zu streams, %zu writers\n",
               (unsigned long long) total, (unsigned long long) v->nrec[0],
               (unsigned long long) v->nrec[1],
               (unsigned long long) v->nrec[2], v->streams.n,
               v->writers.count);

        if (v->windowed) {
            printf("verify: %llu chains begin inside the window; their"
                   " first record's prev\nis not checked\n",
                   (unsigned long long) v->nwindowed);
        }

        if (v->max_npend) {
            printf("verify: at most %zu records waited for a predecessor"
                   " from another stream\n", v->max_npend);
        }
    }

done:

    for (i = 0; v->cur && i < v->streams.n; i++) {
        jk_xiter_free(&v->cur[i].it);
    }

    free(v->cur);
    free(v->heap);
    jk_ht_free(&v->writers, jk_writer_free);
    jk_streams_free(&v->streams);
    jk_buf_free(&v->scratch);
    jk_keys_wipe(&v->kr);
    free(v);
    redisFree(c);

    return rc;
}
