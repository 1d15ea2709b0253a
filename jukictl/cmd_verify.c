/*
 * jukictl verify: walks every writer's chain and checks every record
 * (docs/audit.md, "Verification").
 *
 * What is read
 *
 *   The streams are listed, then in one MULTI/EXEC Redis's TIME and each
 *   stream's last-generated-id are taken: a consistent cut.  Every entry
 *   up to its stream's id in the cut is read (inside --from/--to when
 *   given), however far in the future its id is; records appended later
 *   are left for the next run.  A last-generated-id ahead of TIME by
 *   more than --max-skew is a break before anything else (XSETID into
 *   the future, which would hide every record appended after it from
 *   date windows).
 *
 * Streaming, bounded memory
 *
 *   Every stream is read with XRANGE ... COUNT n, one batch per stream
 *   at a time, and the streams are k-way merged by entry id with a
 *   binary heap.  What is kept beyond the batches is per writer: next
 *   expected seq, last mac, highest seq seen and in which stream (a hash
 *   table keyed by writer id), half a byte per seq for what kind of
 *   record it was (to check completions), a bounded reorder buffer, and
 *   the audit records whose decision Redis made until their completion
 *   arrives.
 *
 * Checks done on each record as it is read
 *
 *   jk_rec_check(): field list, writer, seq, id, ts, kid, decision and
 *   its bound, mac, stream of its agency, entry id not ahead of TIME and
 *   ts close to the entry id.  Then completions: each names an audit
 *   record of the same stream, read before it, whose decision Redis made
 *   and equals the completion's; one completion per audit record.
 *
 * Order, and records that arrive out of order
 *
 *   A writer is one connection, and Redis executes a connection's
 *   commands in order, so inside one stream a writer's records have
 *   increasing entry ids and increasing seq.  A record whose seq is
 *   below one already seen from the same writer in the same stream is
 *   reported ("seq out of order"): that is how two swapped records are
 *   caught.  For the same reason an audit record is always read before
 *   its completion, which is appended to the same stream after it.
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
 *   moved more than --max-skew of entry time past it, when the buffer
 *   holds JK_REORDER_MAX records, or at the end.
 *
 * Windows
 *
 *   With --from/--to only entries inside the window are read.  A
 *   writer's chain may then begin inside it at a seq above 1: the
 *   lowest seq seen (after the same reorder allowance) starts the chain
 *   and its prev is taken on trust; continuity is checked from there.
 *   A completion whose audit record lies before the window is counted,
 *   not checked.
 */

#include <stdlib.h>
#include <string.h>

#include "jk.h"


#define JK_MERGE_BUDGET     16384   /* entries held by all batches */
#define JK_REORDER_MAX      100000  /* records parked in the buffer */
#define JK_UNCONFIRMED_NAMED  10    /* listed, then counted */
#define JK_YOUNG_MS         60000   /* an unconfirmed record this recent
                                       may still be in progress */

/* what a writer's seq was, four bits each */
#define JK_ST_UNSEEN        0
#define JK_ST_OTHER         1       /* not an audit record */
#define JK_ST_GATEWAY       2       /* audit, decided by the gateway */
#define JK_ST_AWAITING      3       /* audit, decided by Redis, no C2 yet */
#define JK_ST_CONFIRMED     4       /* audit, decided by Redis, with C2 */


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
    uint64_t         min_seq;       /* lowest seq seen */
    uint32_t         max_stream;
    unsigned         linked:1;      /* last_mac is set */
    unsigned         windowed:1;    /* chain began inside the window */
    unsigned char    last_mac[32];
    jk_pend_t       *pend;          /* parked, by seq */
    jk_pend_t       *pend_tail;
    unsigned char   *state;         /* JK_ST_* of seq base + i, nibbles */
    uint64_t         base;
    uint64_t         cap;           /* seqs */
};

/* an audit record decided by Redis, until its completion arrives */
typedef struct {
    uint64_t         ms;
    uint64_t         sq;
    uint32_t         stream;
    char             decision[24];
} jk_await_t;

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
    jk_ht_t             awaiting;   /* audit id -> jk_await_t */
    jk_pend_t          *fifo;
    jk_pend_t          *fifo_tail;
    size_t              npend;
    size_t              max_npend;
    jk_keyring_t        kr;
    jk_checker_t        ck;
    jk_rec_t            rec;
    int                 windowed;
    uint64_t            nrec[JK_REC_TYPES];
    uint64_t            nwindowed;
    uint64_t            nunchecked; /* completions of records before it */
} jk_verify_t;


/* the one line naming the break */

static int
jk_break(jk_verify_t *v, uint32_t stream, uint64_t ms, uint64_t sq,
    const jk_str_t *writer, const jk_str_t *seq, const char *what)
{
    jk_rec_say("verify", v->streams.s[stream].name, ms, sq, writer, seq,
               what);

    return JK_FAIL;
}


static int
jk_break_pend(jk_verify_t *v, const jk_pend_t *p, const char *what)
{
    char      seq[24];
    jk_str_t  ws, ss;

    snprintf(seq, sizeof(seq), "%llu", (unsigned long long) p->seq);

    ws.p = p->w->name;
    ws.len = 16;
    ss.p = seq;
    ss.len = strlen(seq);

    return jk_break(v, p->stream, p->ms, p->sq, &ws, &ss, what);
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
        jk_err("verify: %s: bad entry id",
               jk_safe(v->streams.s[i].name, strlen(v->streams.s[i].name)));
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
            return jk_break_pend(v, p, "prev mismatch"
                                 " (seq 1 must have an empty prev)");
        }

    } else if (w->linked) {
        if (p->prev_empty || memcmp(p->prev, w->last_mac, 32) != 0) {
            return jk_break_pend(v, p, "prev mismatch"
                                 " (not the mac of the previous seq)");
        }

    } else if (!w->windowed) {
        /* cannot happen: a chain outside a window starts at seq 1 */
        return jk_break_pend(v, p, "prev mismatch");
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
    char          what[80];
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

    snprintf(what, sizeof(what), "seq gap %llu..%llu missing",
             (unsigned long long) w->next,
             (unsigned long long) (w->pend->seq - 1));

    return jk_break_pend(v, w->pend, what);
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
    w->min_seq = UINT64_MAX;
    e->ptr = w;

    return w;
}


/* what seq was: JK_ST_* */

static unsigned
jk_state_get(const jk_writer_t *w, uint64_t seq)
{
    uint64_t  i;

    if (w->state == NULL || seq < w->base || seq - w->base >= w->cap) {
        return JK_ST_UNSEEN;
    }

    i = seq - w->base;

    return (w->state[i / 2] >> (i % 2 * 4)) & 0x0f;
}


/* the map grows either way, at least doubling, in steps of 64 seqs */

static int
jk_state_set(jk_writer_t *w, uint64_t seq, unsigned st)
{
    uint64_t        lo, hi, nlo, nhi, size, i;
    unsigned char  *p;

    if (w->state == NULL || seq < w->base || seq - w->base >= w->cap) {
        lo = w->state ? w->base : seq & ~(uint64_t) 63;
        hi = w->state ? w->base + w->cap : lo;
        size = hi - lo < 256 ? 256 : hi - lo;
        nlo = lo;
        nhi = hi;

        if (seq < lo) {
            nlo = lo > size ? lo - size : 0;
            if (seq < nlo) {
                nlo = seq;
            }
            nlo &= ~(uint64_t) 63;
        }

        if (seq >= hi) {
            nhi = hi > UINT64_MAX - size ? UINT64_MAX : hi + size;
            if (seq >= nhi) {
                nhi = seq + 1;
            }
            nhi = (nhi + 63) & ~(uint64_t) 63;
        }

        if ((nhi - nlo) / 2 > SIZE_MAX) {
            jk_err("out of memory");
            return -1;
        }

        p = calloc((size_t) ((nhi - nlo) / 2), 1);
        if (p == NULL) {
            jk_err("out of memory");
            return -1;
        }

        if (w->state) {
            memcpy(p + (lo - nlo) / 2, w->state, (size_t) (w->cap / 2));
            free(w->state);
        }

        w->state = p;
        w->base = nlo;
        w->cap = nhi - nlo;
    }

    i = seq - w->base;
    w->state[i / 2] = (unsigned char)
        ((w->state[i / 2] & ~(0x0f << (i % 2 * 4))) | st << (i % 2 * 4));

    return 0;
}


/*
 * A completion: it must name an audit record of this stream, already
 * read (it is appended after it), decided by Redis, with the same
 * decision, not completed before.
 */

static int
jk_completion(jk_verify_t *v, uint32_t stream, const jk_rec_t *r)
{
    char             what[320];
    uint64_t         seq;
    unsigned         st;
    jk_hent_t       *e;
    jk_await_t      *a;
    jk_writer_t     *w;
    const jk_str_t  *id = &r->val[JK_F_ID], *d = &r->val[JK_D_DECISION];

    e = jk_ht_find(&v->awaiting, id->p, id->len);

    if (e) {
        a = e->ptr;

        if (a->stream != stream) {
            snprintf(what, sizeof(what), "completion of an audit record of"
                     " another stream (%s entry %llu-%llu)",
                     jk_safe(v->streams.s[a->stream].name,
                             strlen(v->streams.s[a->stream].name)),
                     (unsigned long long) a->ms, (unsigned long long) a->sq);
            return jk_break(v, stream, r->ms, r->sq, r->writer, r->seqs,
                            what);
        }

        if (!jk_str_eq(d, a->decision)) {
            snprintf(what, sizeof(what), "completion says %s, its audit"
                     " record %s says %s", jk_safe(d->p, d->len),
                     jk_safe(id->p, id->len), a->decision);
            return jk_break(v, stream, r->ms, r->sq, r->writer, r->seqs,
                            what);
        }

        free(a);
        jk_ht_del(&v->awaiting, e);

        jk_audit_id(id, &seq);
        e = jk_ht_find(&v->writers, id->p, 16);

        if (e == NULL || e->ptr == NULL
            || jk_state_set(e->ptr, seq, JK_ST_CONFIRMED) != 0)
        {
            return JK_ERR;
        }

        return JK_OK;
    }

    jk_audit_id(id, &seq);
    e = jk_ht_find(&v->writers, id->p, 16);
    w = e ? e->ptr : NULL;
    st = w ? jk_state_get(w, seq) : JK_ST_UNSEEN;

    switch (st) {

    case JK_ST_CONFIRMED:
        snprintf(what, sizeof(what), "second completion of audit record %s",
                 jk_safe(id->p, id->len));
        break;

    case JK_ST_GATEWAY:
        snprintf(what, sizeof(what), "completion of audit record %s, whose"
                 " decision the gateway made", jk_safe(id->p, id->len));
        break;

    case JK_ST_OTHER:
        snprintf(what, sizeof(what), "completion of %s, which is not an"
                 " audit record", jk_safe(id->p, id->len));
        break;

    default:
        /* in a window, the audit record may come before it */
        if (v->windowed && (w == NULL || w->min_seq > seq)) {
            v->nunchecked++;
            return JK_OK;
        }

        snprintf(what, sizeof(what), "completion of a missing audit record"
                 " %s", jk_safe(id->p, id->len));
    }

    return jk_break(v, stream, r->ms, r->sq, r->writer, r->seqs, what);
}


/* every check that needs only the record itself, then its chain */

static int
jk_check(jk_verify_t *v, uint32_t stream, const redisReply *entry)
{
    int              rc;
    char             detail[96];
    uint64_t         seq;
    unsigned         st;
    jk_rec_t        *r = &v->rec;
    jk_pend_t        pend, *p, *q, *prev;
    jk_hent_t       *e;
    jk_await_t      *a;
    const char      *what;
    jk_writer_t     *w;

#define BREAK(what)                                                          \
    jk_break(v, stream, r->ms, r->sq, r->writer, r->seqs, what)

    if (jk_rec_parse(entry, r) != 0) {
        return jk_break(v, stream, v->cur[stream].ms, v->cur[stream].sq,
                        NULL, NULL, "malformed record");
    }

    what = jk_rec_check(&v->ck, r, v->streams.s[stream].name);
    if (what) {
        return BREAK(what);
    }

    v->nrec[r->type]++;
    seq = r->seq;

    /* the chain */

    memset(&pend, 0, sizeof(pend));
    pend.seq = seq;
    pend.ms = r->ms;
    pend.sq = r->sq;
    pend.stream = stream;

    if (jk_unhex32(&r->val[r->f_mac], pend.mac) != 0) {
        return BREAK("bad mac");
    }

    if (r->val[r->f_prev].len == 0) {
        pend.prev_empty = 1;

    } else if (jk_unhex32(&r->val[r->f_prev], pend.prev) != 0) {
        return BREAK("prev mismatch (not 64 lower-hex)");
    }

    w = jk_writer_get(v, r->writer);
    if (w == NULL) {
        return JK_ERR;
    }

    pend.w = w;

    if ((w->next && seq < w->next) || jk_state_get(w, seq) != JK_ST_UNSEEN) {
        return BREAK("seq repeat");
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
            return BREAK("seq repeat");
        }
    }

    if (w->max_seq > seq && w->max_stream == stream) {
        snprintf(detail, sizeof(detail), "seq out of order (after seq %llu"
                 " in this stream)", (unsigned long long) w->max_seq);
        return BREAK(detail);
    }

    if (seq > w->max_seq) {
        w->max_seq = seq;
        w->max_stream = stream;
    }

    if (seq < w->min_seq) {
        w->min_seq = seq;
    }

    /* what this seq is, for the completions that name it */

    if (r->type != JK_REC_AUDIT) {
        st = JK_ST_OTHER;

    } else if (r->dec == JK_DEC_GATEWAY) {
        st = JK_ST_GATEWAY;

    } else {
        st = JK_ST_AWAITING;

        a = malloc(sizeof(jk_await_t));
        if (a == NULL) {
            jk_err("out of memory");
            return JK_ERR;
        }

        a->ms = r->ms;
        a->sq = r->sq;
        a->stream = stream;
        snprintf(a->decision, sizeof(a->decision), "%.*s",
                 (int) r->val[JK_A_DECISION].len, r->val[JK_A_DECISION].p);

        e = jk_ht_get(&v->awaiting, r->val[JK_F_ID].p, r->val[JK_F_ID].len);
        if (e == NULL) {
            free(a);
            return JK_ERR;
        }

        free(e->ptr);
        e->ptr = a;
    }

    if (jk_state_set(w, seq, st) != 0) {
        return JK_ERR;
    }

    if (r->type == JK_REC_DONE) {
        rc = jk_completion(v, stream, r);
        if (rc != JK_OK) {
            return rc;
        }
    }

    if (seq == 1 && w->next == 0) {
        w->next = 1;
    }

    if (seq == w->next) {
        rc = jk_link(v, w, &pend);
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

    free(w->state);
    free(w);
}


/*
 * Streams whose last-generated-id is in the future: the first entry
 * past the allowed skew is named when there is one, else the stream.
 */

static int
jk_verify_clock(jk_verify_t *v, redisContext *c)
{
    int                rc;
    size_t             i;
    jk_xiter_t         it;
    const char        *what;
    jk_stream_t       *st;
    const redisReply  *entry;

    for (i = 0; i < v->streams.n; i++) {
        st = &v->streams.s[i];

        what = jk_stream_check(&v->ck, st);
        if (what == NULL) {
            continue;
        }

        jk_xiter_init(&it, c, st->name, v->ck.now_ms + v->ck.skew + 1,
                      UINT64_MAX, 1);
        jk_xiter_end(&it, st->last_ms, st->last_sq);

        rc = jk_xiter_next(&it, &entry);

        if (rc < 0) {
            jk_xiter_free(&it);
            return JK_ERR;
        }

        if (rc == 1 && jk_rec_parse(entry, &v->rec) == 0) {
            snprintf(v->ck.detail, sizeof(v->ck.detail),
                     "entry id ahead of Redis's clock by %llu ms",
                     (unsigned long long) (v->rec.ms - v->ck.now_ms));
            jk_break(v, (uint32_t) i, v->rec.ms, v->rec.sq, v->rec.writer,
                     v->rec.seqs, v->ck.detail);
            jk_xiter_free(&it);
            return JK_FAIL;
        }

        jk_xiter_free(&it);

        return jk_break(v, (uint32_t) i, st->last_ms, st->last_sq, NULL,
                        NULL, jk_stream_check(&v->ck, st));
    }

    return JK_OK;
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
        jk_xiter_init(&v->cur[i].it, c, v->streams.s[i].name, from_ms, to_ms,
                      count);

        /* everything up to the cut, and nothing after it */
        jk_xiter_end(&v->cur[i].it, v->streams.s[i].last_ms,
                     v->streams.s[i].last_sq);

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
                   || v->fifo->ms + v->ck.skew < v->cur[i].ms))
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


static int
jk_await_cmp(const void *x, const void *y)
{
    const jk_await_t  *a = (*(jk_hent_t * const *) x)->ptr;
    const jk_await_t  *b = (*(jk_hent_t * const *) y)->ptr;

    if (a->stream != b->stream) {
        return a->stream < b->stream ? -1 : 1;
    }

    if (a->ms != b->ms) {
        return a->ms < b->ms ? -1 : 1;
    }

    return (a->sq > b->sq) - (a->sq < b->sq);
}


/* audit records decided by Redis and never completed: listed, counted */

static int
jk_verify_unconfirmed(jk_verify_t *v)
{
    size_t        i, young = 0;
    jk_hent_t   **all;
    jk_await_t   *a;

    if (v->awaiting.count == 0) {
        return JK_OK;
    }

    all = jk_ht_sorted(&v->awaiting);
    if (all == NULL) {
        return JK_ERR;
    }

    qsort(all, v->awaiting.count, sizeof(jk_hent_t *), jk_await_cmp);

    for (i = 0; all[i]; i++) {
        a = all[i]->ptr;

        if (a->ms + JK_YOUNG_MS > v->ck.now_ms) {
            young++;
        }
    }

    printf("verify: %zu audit record%s whose decision Redis made %s no"
           " completion record (unconfirmed", v->awaiting.count,
           v->awaiting.count == 1 ? "" : "s",
           v->awaiting.count == 1 ? "has" : "have");
    if (young) {
        printf("; %zu less than a minute old, perhaps still in progress",
               young);
    }
    printf(")\n");

    for (i = 0; all[i] && i < JK_UNCONFIRMED_NAMED; i++) {
        a = all[i]->ptr;

        printf("verify: unconfirmed: %s entry %llu-%llu id %s decision %s\n",
               jk_safe(v->streams.s[a->stream].name,
                       strlen(v->streams.s[a->stream].name)),
               (unsigned long long) a->ms, (unsigned long long) a->sq,
               jk_safe(all[i]->key, all[i]->klen), a->decision);
    }

    if (v->awaiting.count > JK_UNCONFIRMED_NAMED) {
        printf("verify: unconfirmed: ... and %zu more\n",
               v->awaiting.count - JK_UNCONFIRMED_NAMED);
    }

    free(all);

    return JK_OK;
}


int
jk_cmd_verify(const jk_opts_t *o)
{
    int            rc = JK_ERR, nk;
    size_t         i;
    uint64_t       from_ms, to_ms, skew, total;
    jk_verify_t   *v;
    redisContext  *c;

    if (jk_window(o, 0, &from_ms, &to_ms, NULL) != JK_OK) {
        return JK_ERR;
    }

    if (jk_skew_opt(o, &skew) != JK_OK) {
        return JK_ERR;
    }

    v = calloc(1, sizeof(jk_verify_t));
    if (v == NULL) {
        jk_err("out of memory");
        return JK_ERR;
    }

    v->ck.skew = skew;
    v->ck.kr = &v->kr;
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
        || jk_ht_init(&v->awaiting, 256) != 0
        || jk_streams_snapshot(c, &v->streams) != 0)
    {
        goto done;
    }

    v->ck.now_ms = v->streams.now_ms;

    rc = jk_verify_clock(v, c);

    if (rc == JK_OK) {
        rc = jk_verify_run(v, c, from_ms, to_ms);
    }

    if (rc == JK_OK) {
        total = v->nrec[0] + v->nrec[1] + v->nrec[2] + v->nrec[3];

        printf("verify: ok: %llu records (%llu audit, %llu completion,"
               " %llu summary, %llu control) in %zu streams, %zu writers\n",
               (unsigned long long) total,
               (unsigned long long) v->nrec[JK_REC_AUDIT],
               (unsigned long long) v->nrec[JK_REC_DONE],
               (unsigned long long) v->nrec[JK_REC_SUMMARY],
               (unsigned long long) v->nrec[JK_REC_CONTROL], v->streams.n,
               v->writers.count);

        rc = jk_verify_unconfirmed(v);

        if (v->windowed) {
            printf("verify: %llu chains begin inside the window; their"
                   " first record's prev\nis not checked\n",
                   (unsigned long long) v->nwindowed);
        }

        if (v->nunchecked) {
            printf("verify: %llu completion records of audit records before"
                   " the window were not checked\n",
                   (unsigned long long) v->nunchecked);
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
    jk_ht_free(&v->awaiting, free);
    jk_streams_free(&v->streams);
    jk_buf_free(&v->ck.scratch);
    jk_keys_wipe(&v->kr);
    free(v);
    redisFree(c);

    return rc;
}
