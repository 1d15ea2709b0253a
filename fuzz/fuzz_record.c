
/*
 * fuzz_record: how a request's values become an A3 audit record
 * (src/ngx_http_juki_audit.c, docs/audit.md).
 *
 * The file includes src/ngx_http_juki_audit.c itself, so that its statics
 * are in reach, and defines the three functions of the rest of the module
 * the record builders call: ngx_http_juki_redis_pick() and
 * ngx_http_juki_redis_main_conf() hand out the harness's writer and
 * configuration, ngx_http_juki_batch_add() captures each record as it
 * joins the call.  The HMAC is the module's own (src/ngx_http_juki_crypto.c
 * is linked); the harness computes it again with OpenSSL's HMAC().
 *
 * Input: byte 0 = flags (bits 0-5: length L of the resident code; bit 6:
 * every writer's seq starts 32 short of 2^64 - 1; bit 7: the values the
 * handler may leave unset are { 0, NULL } when empty), L bytes of code (as
 * decoded from $arg_code), one byte U and U bytes of URI ($uri, decoded by
 * NGINX), then steps, each a selector byte, 4 bytes of unix second and 2
 * of milliseconds (the gateway's clock for that record), and its values:
 *   0 a new writer (W): writer[8], kid[8], a byte (bit 0: the other of
 *     two keys, bit 1: kid in upper-case hex), node str
 *   1 an audit record (A): reason (% 11), a byte (bits 0-1: agency, 0
 *     none; bit 2: purpose; bit 3: cert; bit 4: subject; bit 5: upper-
 *     case hex), the agency's and the purpose's rate (interval[4], 0:
 *     none, and burst[4]), operator str, purpose str, method str,
 *     cert[16], subject[16]
 *   2 a completion (C): outcome (% 3: allow, stopped, rate_limited), a
 *     byte (bit 7: of the last A record if any, and the next 16 bytes are
 *     skipped; else agency % 3, then awriter[8], aseq[8]), status[2],
 *     err_status[2], sent[8], a byte (bit 7: upstream states, bits 0-2:
 *     how many, each status[2] and response_time[4], ffffffff: -1)
 *   3 a summary (S): cause (% 3), second[4], recorded[4], suppressed[4]
 *   4 a byte: the next record finds no Redis (bit 0) or its call full
 *     (bit 1: batch_add fails)
 * (a "str" is a length byte then that many bytes; bytes past the end of
 * the input read as 0); at most 32 steps; none: an A, a C and an S.
 * Every input starts with a W, as every connection does.
 *
 * Asserts:
 *  - ngx_http_juki_record_uri(): the output has bytes in "!".."~" only;
 *    every "%" starts an escape "%XX" (upper-case hex) that it produced;
 *    it escapes exactly the bytes <= 0x20, >= 0x7f and "%"; decoding it
 *    gives the URI back;
 *  - ngx_http_juki_mask(): every leftmost, non-overlapping occurrence of
 *    the code becomes "{code}" (a code with a byte of "{code}": one
 *    printable byte it lacks), and the result never contains the code;
 *  - the URI as the handler records it ($uri masked, then escaped) keeps
 *    its escapes well-formed and, decoded, does not give the code back:
 *    SPEC 7, "a resident code never appears in an audit record"; it is
 *    the A record's uri field byte for byte;
 *  - every record the builders add, decoded by the harness's own reader
 *    of docs/audit.md ("Primitives", "Records": minimal LEB128 varints of
 *    at most 10 bytes, str lengths within the element, big-endian u48,
 *    no trailing bytes), gives back each value it was built from: type,
 *    writer, seq (the writer's next: 0 for W, then 1, 2 ... without gap,
 *    up to 2^64 - 1), ts, and the fields of W, A, C and S; the A record's
 *    gdecision is 0 for an allow and else the gateway's code (>= 16) of
 *    the table "Codes", with the decision byte after the mac equal to it;
 *    an allow has no decision byte (Redis's function appends it);
 *  - each element's length is exactly what its fields take;
 *  - its mac16 is the first 16 bytes of HMAC-SHA256(k_mac, "juki-v3" ||
 *    str(agency) || prev16 || body), computed by the harness with
 *    OpenSSL's HMAC(), agency the AGENCY of the list the record joins
 *    ("_" for juki:{_}:audit), prev16 the mac16 of the writer's previous
 *    record (16 zero bytes for W), body the bytes before the mac16;
 *  - how each record joins the call ("The function and group commit"):
 *    W, C and S as P with no more arguments and nobody waiting; an A
 *    the gateway decided as D with the operator (agency known) or P (no
 *    agency); an allow as R with operator, purpose, LIMITS ("" or
 *    "Ta tau Tp tp", 0 for a limit not set) and the 16-byte pseudonym or
 *    "", the request's ctx waiting; the list is the agency's, or
 *    juki:{_}:audit (W, S, an A with no agency);
 *  - the ids: an A record's ctx keeps its writer and seq and its audit id
 *    lower-hex(writer) "-" decimal(seq); a summary's id likewise, within
 *    NGX_HTTP_JUKI_AUDIT_ID_MAX;
 *  - a record that is not added (no Redis, call full, a reason with no
 *    record, an allow with no agency or purpose) adds nothing and leaves
 *    the writer's seq and last mac as they were;
 *  - no undefined behaviour on the values the handler leaves { 0, NULL }.
 *
 * The K record is jukictl's (stop/resume); the module builds none.
 */


#include "ngx_shim.h"

#include "ngx_http_juki_audit.c"

#include <openssl/evp.h>
#include <openssl/hmac.h>


#define STEPS_MAX   32
#define CAPS_MAX    4
#define EXTRA_MAX   8


/* the bytes of the input, read in order; past the end, zeros */

typedef struct {
    const u_char  *p;
    const u_char  *end;
} input_t;


static u_char
in_u8(input_t *in)
{
    return (in->p < in->end) ? *in->p++ : 0;
}


static uint64_t
in_be(input_t *in, ngx_uint_t n)
{
    uint64_t  v;

    v = 0;

    while (n--) {
        v = v << 8 | in_u8(in);
    }

    return v;
}


static void
in_bytes(input_t *in, u_char *dst, size_t n)
{
    while (n--) {
        *dst++ = in_u8(in);
    }
}


/* a heap copy of exactly the length; empty: { 0, NULL } or { 0, "" } */

static ngx_uint_t  unset_null;

static void
in_str(input_t *in, ngx_str_t *s, size_t max)
{
    size_t  n;

    n = in_u8(in);                  /* ngx_min() evaluates twice */
    n = ngx_min(n, max);
    n = ngx_min(n, (size_t) (in->end - in->p));

    s->len = n;
    s->data = (n || !unset_null) ? ngx_shim_dup(in->p, n) : NULL;

    in->p += n;
}


static void
str_free(ngx_str_t *s)
{
    free(s->data);
    s->data = NULL;
    s->len = 0;
}


/* the records batch_add() received */

typedef struct {
    u_char                 op;
    ngx_str_t              list;
    ngx_str_t              element;
    ngx_str_t              extra[EXTRA_MAX];
    ngx_uint_t             nextra;
    ngx_http_juki_ctx_t   *ctx;
} capture_t;


static capture_t                    caps[CAPS_MAX];
static ngx_uint_t                   ncaps;
static ngx_uint_t                   fail_add;
static ngx_uint_t                   fail_pick;

static ngx_http_juki_redis_conn_t   the_rc;
static ngx_http_juki_main_conf_t    the_jmcf;


ngx_http_juki_redis_conn_t *
ngx_http_juki_redis_pick(void)
{
    return fail_pick ? NULL : &the_rc;
}


ngx_http_juki_main_conf_t *
ngx_http_juki_redis_main_conf(void)
{
    return &the_jmcf;
}


ngx_int_t
ngx_http_juki_batch_add(ngx_http_juki_redis_conn_t *rc, u_char op,
    ngx_str_t *list, ngx_str_t *element, ngx_str_t *extra, ngx_uint_t nextra,
    ngx_http_juki_ctx_t *ctx)
{
    ngx_uint_t   i;
    capture_t   *c;

    ngx_shim_check(rc == &the_rc, "another connection");

    if (fail_add) {
        return NGX_ERROR;
    }

    ngx_shim_check(ncaps < CAPS_MAX && nextra <= EXTRA_MAX,
                   "%lu records, %lu more arguments", (unsigned long) ncaps,
                   (unsigned long) nextra);

    c = &caps[ncaps++];

    c->op = op;
    c->list.len = list->len;
    c->list.data = ngx_shim_dup(list->data, list->len);
    c->element.len = element->len;
    c->element.data = ngx_shim_dup(element->data, element->len);
    c->nextra = nextra;
    c->ctx = ctx;

    for (i = 0; i < nextra; i++) {
        ngx_shim_check(extra[i].len == 0 || extra[i].data != NULL,
                       "argument %lu: NULL data", (unsigned long) i);
        c->extra[i].len = extra[i].len;
        c->extra[i].data = ngx_shim_dup(extra[i].data, extra[i].len);
    }

    return NGX_OK;
}


static void
caps_free(void)
{
    ngx_uint_t  i, j;

    for (i = 0; i < ncaps; i++) {
        str_free(&caps[i].list);
        str_free(&caps[i].element);

        for (j = 0; j < caps[i].nextra; j++) {
            str_free(&caps[i].extra[j]);
        }
    }

    ncaps = 0;
}


/*
 * The reader: docs/audit.md, "Primitives" and "Records", byte by byte.
 * Each function returns 0 on a malformed element.
 */

typedef struct {
    const u_char  *p;
    const u_char  *end;
} cursor_t;


typedef struct {
    const u_char  *data;
    size_t         len;
} span_t;


static int
rd_u8(cursor_t *c, u_char *v)
{
    if (c->p >= c->end) {
        return 0;
    }

    *v = *c->p++;
    return 1;
}


static int
rd_fixed(cursor_t *c, size_t n, const u_char **v)
{
    if ((size_t) (c->end - c->p) < n) {
        return 0;
    }

    *v = c->p;
    c->p += n;
    return 1;
}


static int
rd_u48(cursor_t *c, uint64_t *v)
{
    ngx_uint_t     i;
    const u_char  *b;

    if (!rd_fixed(c, 6, &b)) {
        return 0;
    }

    *v = 0;

    for (i = 0; i < 6; i++) {
        *v = *v << 8 | b[i];
    }

    return 1;
}


/* unsigned LEB128: at most 10 bytes, minimal, no bit past 2^64 */

static int
rd_varint(cursor_t *c, uint64_t *v)
{
    u_char      b;
    ngx_uint_t  i;

    *v = 0;

    for (i = 0; i < 10; i++) {
        if (!rd_u8(c, &b)) {
            return 0;
        }

        if (i == 9 && b > 1) {
            return 0;                   /* past 64 bits */
        }

        *v |= (uint64_t) (b & 0x7f) << (7 * i);

        if (!(b & 0x80)) {
            /* minimal: a last byte 0 only for the value 0 itself */
            return !(b == 0 && i > 0);
        }
    }

    return 0;
}


static int
rd_str(cursor_t *c, span_t *s)
{
    uint64_t  n;

    if (!rd_varint(c, &n) || n > (uint64_t) (c->end - c->p)) {
        return 0;
    }

    s->data = c->p;
    s->len = (size_t) n;
    c->p += n;

    return 1;
}


typedef struct {
    u_char          type;
    const u_char   *writer;
    uint64_t        seq;
    uint64_t        ts;
    size_t          body;           /* bytes before the mac16 */
    const u_char   *mac;

    /* W */
    const u_char   *kid;
    span_t          node;
    u_char          role;

    /* A */
    u_char          kind;
    span_t          cert;
    span_t          subject;
    span_t          operator;
    span_t          purpose;
    span_t          method;
    span_t          uri;
    u_char          gdecision;
    u_char          decision;

    /* C */
    const u_char   *awriter;
    uint64_t        aseq;
    uint64_t        status;
    uint64_t        bytes;
    uint64_t        upstream;

    /* S */
    u_char          cause;
    uint64_t        second;
    uint64_t        recorded;
    uint64_t        suppressed;
} record_t;


static int
rd_record(const u_char *e, size_t len, record_t *r)
{
    cursor_t  c;

    ngx_memzero(r, sizeof(record_t));

    c.p = e;
    c.end = e + len;

    if (!rd_u8(&c, &r->type) || !rd_fixed(&c, 8, &r->writer)) {
        return 0;
    }

    switch (r->type) {

    case 'W':
        if (!rd_u48(&c, &r->ts) || !rd_fixed(&c, 8, &r->kid)
            || !rd_str(&c, &r->node) || !rd_u8(&c, &r->role))
        {
            return 0;
        }

        break;

    case 'A':
        if (!rd_varint(&c, &r->seq) || !rd_u48(&c, &r->ts)
            || !rd_u8(&c, &r->kind) || !rd_str(&c, &r->cert)
            || !rd_str(&c, &r->subject) || !rd_str(&c, &r->operator)
            || !rd_str(&c, &r->purpose) || !rd_str(&c, &r->method)
            || !rd_str(&c, &r->uri) || !rd_u8(&c, &r->gdecision))
        {
            return 0;
        }

        break;

    case 'C':
        if (!rd_varint(&c, &r->seq) || !rd_u48(&c, &r->ts)
            || !rd_fixed(&c, 8, &r->awriter) || !rd_varint(&c, &r->aseq)
            || !rd_u8(&c, &r->decision) || !rd_varint(&c, &r->status)
            || !rd_varint(&c, &r->bytes) || !rd_varint(&c, &r->upstream))
        {
            return 0;
        }

        break;

    case 'S':
        if (!rd_varint(&c, &r->seq) || !rd_u48(&c, &r->ts)
            || !rd_u8(&c, &r->cause) || !rd_varint(&c, &r->second)
            || !rd_varint(&c, &r->recorded)
            || !rd_varint(&c, &r->suppressed))
        {
            return 0;
        }

        break;

    default:
        return 0;                       /* an unknown type */
    }

    r->body = c.p - e;

    if (!rd_fixed(&c, 16, &r->mac)) {
        return 0;
    }

    if (r->type == 'A' && !rd_u8(&c, &r->decision)) {
        return 0;
    }

    return c.p == c.end;                /* nothing after the last field */
}


/* the codes of docs/audit.md, "Codes"; 0: never recorded */

static u_char
doc_code(ngx_http_juki_reason_e reason)
{
    switch (reason) {
    case NGX_HTTP_JUKI_ALLOW:                    return 1;
    case NGX_HTTP_JUKI_STOPPED:                  return 2;
    case NGX_HTTP_JUKI_RATE_LIMITED:             return 3;
    case NGX_HTTP_JUKI_UNVERIFIED_CERTIFICATE:   return 16;
    case NGX_HTTP_JUKI_UNKNOWN_AGENCY:           return 17;
    case NGX_HTTP_JUKI_BAD_REQUEST:              return 18;
    case NGX_HTTP_JUKI_BAD_PURPOSE:              return 19;
    case NGX_HTTP_JUKI_BAD_OPERATOR:             return 20;
    case NGX_HTTP_JUKI_PURPOSE_NOT_PERMITTED:    return 21;
    case NGX_HTTP_JUKI_RESIDENT_CODE_FORBIDDEN:  return 22;
    default:                                     return 0;
    }
}


static size_t
leb128(u_char *p, uint64_t v)
{
    size_t  n;

    for (n = 0; ; n++) {
        p[n] = v & 0x7f;
        v >>= 7;

        if (v == 0) {
            return n + 1;
        }

        p[n] |= 0x80;
    }
}


/* the writer as the harness follows it */

typedef struct {
    u_char      raw[8];
    uint64_t    seq;
    u_char      prev[16];
    ngx_uint_t  started;
} model_t;


static model_t  model;


/*
 * mac16 over "juki-v3" || str(agency) || prev16 || body, with OpenSSL's
 * one-shot HMAC(), agency taken from the list's name juki:{AGENCY}:audit
 */

static void
check_mac(capture_t *cap, record_t *rec, const u_char *prev)
{
    u_char        *buf, *p, mac[EVP_MAX_MD_SIZE];
    size_t         alen;
    unsigned int   n;
    const u_char  *agency;

    ngx_shim_check(cap->list.len > sizeof("juki:{}:audit") - 1
                   && memcmp(cap->list.data, "juki:{", 6) == 0
                   && memcmp(cap->list.data + cap->list.len - 7, "}:audit", 7)
                      == 0, "list name");

    agency = cap->list.data + 6;
    alen = cap->list.len - 13;

    buf = malloc(7 + 10 + alen + 16 + rec->body);
    if (buf == NULL) {
        abort();
    }

    p = ngx_cpymem(buf, "juki-v3", 7);
    p += leb128(p, alen);
    p = ngx_cpymem(p, agency, alen);
    p = ngx_cpymem(p, prev, 16);
    p = ngx_cpymem(p, cap->element.data, rec->body);

    if (HMAC(EVP_sha256(), the_jmcf.mac_key, 32, buf, p - buf, mac, &n)
        == NULL || n != 32)
    {
        abort();
    }

    free(buf);

    if (memcmp(mac, rec->mac, 16) != 0) {
        ngx_shim_dump("element", cap->element.data, cap->element.len);
        ngx_shim_dump("list", cap->list.data, cap->list.len);
        ngx_shim_check(0, "mac16 is not HMAC-SHA256(k_mac, \"juki-v3\" || "
                       "str(agency) || prev16 || body)[0..16)");
    }
}


static void
check_span(span_t *got, ngx_str_t *want, const char *what)
{
    if (got->len != want->len
        || (want->len && memcmp(got->data, want->data, want->len) != 0))
    {
        ngx_shim_dump("record", got->data, got->len);
        ngx_shim_dump("value", want->data, want->len);
        ngx_shim_check(0, "%s does not round-trip", what);
    }
}


static void
check_arg(ngx_str_t *got, ngx_str_t *want, const char *what)
{
    span_t  g;

    g.data = got->data;
    g.len = got->len;

    check_span(&g, want, what);
}


static void
check_list(capture_t *cap, ngx_str_t *agency)
{
    u_char  name[128], *p;

    p = ngx_cpymem(name, "juki:{", 6);
    p = ngx_cpymem(p, agency->data, agency->len);
    p = ngx_cpymem(p, "}:audit", 7);

    ngx_shim_check(cap->list.len == (size_t) (p - name)
                   && memcmp(cap->list.data, name, p - name) == 0,
                   "list \"%.*s\", want \"%.*s\"", (int) cap->list.len,
                   cap->list.data, (int) (p - name), name);
}


/*
 * One captured record: decoded, its mac checked, the model moved on.
 * An R group's element has no decision byte yet: the function appends
 * one (1 here) before it is stored, and so does the reader read it.
 */

static void
check_element(capture_t *cap, record_t *rec, u_char type, uint64_t ts)
{
    u_char     *stored;
    size_t      len;
    uint64_t    seq;
    ngx_uint_t  ok;

    len = cap->element.len + (cap->op == NGX_HTTP_JUKI_OP_DECIDE);

    stored = malloc(len);
    if (stored == NULL) {
        abort();
    }

    ngx_memcpy(stored, cap->element.data, cap->element.len);

    if (cap->op == NGX_HTTP_JUKI_OP_DECIDE) {
        stored[len - 1] = 1;
    }

    ok = rd_record(stored, len, rec);

    if (!ok) {
        ngx_shim_dump("element", cap->element.data, cap->element.len);
        ngx_shim_check(0, "the %c record does not decode as docs/audit.md "
                       "says (op %c)", type, cap->op);
    }

    /* the fields point into the copy the model keeps for the checks */
    free(cap->element.data);
    cap->element.data = stored;
    cap->element.len = len;

    ngx_shim_check(rec->type == type, "type %c, want %c", rec->type, type);
    ngx_shim_check(memcmp(rec->writer, model.raw, 8) == 0, "writer");
    ngx_shim_check(rec->ts == ts, "ts %llu, want %llu",
                   (unsigned long long) rec->ts, (unsigned long long) ts);

    seq = (type == 'W') ? 0 : model.seq + 1;

    ngx_shim_check(rec->seq == seq, "seq %llu, want %llu",
                   (unsigned long long) rec->seq, (unsigned long long) seq);

    check_mac(cap, rec, (type == 'W') ? (u_char *) "\0\0\0\0\0\0\0\0"
                                        "\0\0\0\0\0\0\0\0"
                                      : model.prev);

    model.seq = seq;
    ngx_memcpy(model.prev, rec->mac, 16);

    /* the connection's chain is where the model is */
    ngx_shim_check(the_rc.seq == model.seq
                   && memcmp(the_rc.last_mac, model.prev, 16) == 0,
                   "the writer's seq and last mac");
}


static void
check_unchanged(const char *what)
{
    ngx_shim_check(ncaps == 0, "%s: a record was added", what);
    ngx_shim_check(the_rc.seq == model.seq
                   && memcmp(the_rc.last_mac, model.prev, 16) == 0,
                   "%s: the chain moved", what);
}


static void
check_id(const u_char *id, size_t len, uint64_t seq)
{
    u_char  want[64];
    int     n;

    n = snprintf((char *) want, sizeof(want),
                 "%02x%02x%02x%02x%02x%02x%02x%02x-%llu",
                 model.raw[0], model.raw[1], model.raw[2], model.raw[3],
                 model.raw[4], model.raw[5], model.raw[6], model.raw[7],
                 (unsigned long long) seq);

    ngx_shim_check(len == (size_t) n && memcmp(id, want, n) == 0
                   && len <= NGX_HTTP_JUKI_AUDIT_ID_MAX,
                   "id \"%.*s\", want \"%s\"", (int) len, id, want);
}


static void
set_time(input_t *in, uint64_t *ts)
{
    static ngx_time_t  tp;

    tp.sec = (time_t) in_be(in, 4);
    tp.msec = in_be(in, 2) % 1000;

    ngx_cached_time = &tp;

    *ts = (uint64_t) tp.sec * 1000 + tp.msec;
}


static void
hex(u_char *dst, const u_char *src, size_t n, ngx_uint_t upper)
{
    static const char  lc[] = "0123456789abcdef", uc[] = "0123456789ABCDEF";

    const char  *h;

    h = upper ? uc : lc;

    while (n--) {
        *dst++ = h[*src >> 4];
        *dst++ = h[*src++ & 0xf];
    }
}


/* W: a new connection, as ngx_http_juki_redis.c starts one */

static u_char  the_kid_raw[8];

static void
step_writer(input_t *in, ngx_uint_t flags, ngx_uint_t first)
{
    u_char      b;
    uint64_t    ts;
    ngx_int_t   rc;
    record_t    rec;
    ngx_str_t   node;

    if (first) {
        static const u_char  t0[] = "\x65\x5c\x3a\xff\x03\xe7";
        input_t              fixed = { t0, t0 + 6 };

        set_time(&fixed, &ts);

        ngx_memcpy(model.raw, "\x9f\x3c\x2a\x1b\x0d\x4e\x5f\x60", 8);
        ngx_memcpy(the_kid_raw, "\x01\x23\x45\x67\x89\xab\xcd\xef", 8);
        b = 0;
        ngx_str_set(&node, "gw-tokyo-1");
        node.data = ngx_shim_dup(node.data, node.len);

    } else {
        set_time(in, &ts);
        in_bytes(in, model.raw, 8);
        in_bytes(in, the_kid_raw, 8);
        b = in_u8(in);
        in_str(in, &node, 255);
    }

    /* two keys: the module keeps two HMAC contexts */
    ngx_memset(the_jmcf.mac_key, (b & 1) ? 0xa5 : 0x3c, 32);
    hex(the_jmcf.kid, the_kid_raw, 8, b & 2);
    the_jmcf.node = node;

    ngx_memzero(&the_rc, sizeof(the_rc));
    ngx_memcpy(the_rc.writer_raw, model.raw, 8);
    hex(the_rc.writer, model.raw, 8, 0);

    model.seq = 0;
    ngx_memzero(model.prev, 16);
    model.started = 0;

    rc = ngx_http_juki_audit_writer(&the_rc);

    if (node.len > NGX_HTTP_JUKI_NAME_MAX || fail_add) {
        ngx_shim_check(rc == NGX_ERROR, "W: a node name of %zu bytes, "
                       "call full %lu: %ld", node.len,
                       (unsigned long) fail_add, (long) rc);
        check_unchanged("W not added");
        goto done;
    }

    ngx_shim_check(rc == NGX_OK && ncaps == 1, "W: rc %ld, %lu records",
                   (long) rc, (unsigned long) ncaps);

    check_element(&caps[0], &rec, 'W', ts);

    ngx_shim_check(caps[0].op == NGX_HTTP_JUKI_OP_APPEND
                   && caps[0].nextra == 0 && caps[0].ctx == NULL, "W: P");
    check_list(&caps[0], &ngx_http_juki_nobody);

    ngx_shim_check(memcmp(rec.kid, the_kid_raw, 8) == 0, "W: kid");
    check_span(&rec.node, &node, "W: node");
    ngx_shim_check(rec.role == 1, "W: role %u", rec.role);

    model.started = 1;

    if (flags & 0x40) {
        /* as if 2^64 - 33 records had gone before */
        the_rc.seq = UINT64_MAX - STEPS_MAX;
        model.seq = the_rc.seq;
    }

done:

    str_free(&node);
}


/* LIMITS "Ta tau Tp tp": a limit that is not set is "0 0" */
#define RATE_OR_0(rt, s)  ((rt).interval_us ? (int) (rt).s.len : 1),          \
                          ((rt).interval_us ? (char *) (rt).s.data : "0")


static ngx_http_juki_agency_t   agencies[3];
static ngx_http_juki_purpose_t  the_purpose;

static void
rate(input_t *in, ngx_http_juki_rate_t *rt, u_char *buf)
{
    uint64_t  interval, burst;

    interval = in_be(in, 4);
    burst = in_be(in, 4);

    ngx_memzero(rt, sizeof(ngx_http_juki_rate_t));

    if (interval == 0) {
        return;
    }

    rt->interval_us = interval;
    rt->burst = burst;
    rt->interval.data = buf;
    rt->interval.len = sprintf((char *) buf, "%llu",
                               (unsigned long long) interval);
    rt->tolerance.data = buf + 32;
    rt->tolerance.len = sprintf((char *) buf + 32, "%llu",
                                (unsigned long long) (interval * burst));
}


static void
agencies_init(void)
{
    ngx_uint_t  i;

    static char  *names[] = {
        "shibuya-city", "example-bank",
        "a123456789b123456789c123456789d123456789e123456789f1234567890abc"
    };
    static ngx_uint_t  kinds[] = { 3, 5, 1 };
    static u_char      keys[3][80];

    for (i = 0; i < 3; i++) {
        ngx_memzero(&agencies[i], sizeof(ngx_http_juki_agency_t));
        agencies[i].name.data = (u_char *) names[i];
        agencies[i].name.len = strlen(names[i]);
        agencies[i].kind = kinds[i];
        agencies[i].audit_key.data = keys[i];
        agencies[i].audit_key.len = sprintf((char *) keys[i],
                                            "juki:{%s}:audit", names[i]);
    }
}


/* the last A record's ctx, for a completion */
static ngx_http_juki_ctx_t  last_a;
static ngx_uint_t           have_last_a;


static void
step_audit(input_t *in, ngx_pool_t *pool, ngx_str_t *uri)
{
    u_char                   b, f, code, limits[128], cert_raw[32];
    u_char                   subj_raw[32], *cert_hex, *subj_hex;
    u_char                   rbuf[2][64];
    uint64_t                 ts, seq;
    ngx_int_t                rc, want;
    record_t                 rec;
    ngx_str_t                method, want_limits, sub16;
    ngx_connection_t         c;
    ngx_log_t                log;
    ngx_http_request_t       r;
    ngx_http_juki_ctx_t      ctx;
    ngx_http_juki_reason_e   reason;

    set_time(in, &ts);

    b = in_u8(in);
    f = in_u8(in);

    ngx_memzero(&ctx, sizeof(ctx));
    ngx_memzero(&r, sizeof(r));
    ngx_memzero(&c, sizeof(c));
    ngx_memzero(&log, sizeof(log));

    reason = (ngx_http_juki_reason_e) (b % NGX_HTTP_JUKI_NREASONS);

    ctx.reason = reason;
    ctx.agency = (f & 3) ? &agencies[(f & 3) - 1] : NULL;

    rate(in, &agencies[0].rate, rbuf[0]);
    agencies[1].rate = agencies[0].rate;
    agencies[2].rate = agencies[0].rate;

    ngx_memzero(&the_purpose, sizeof(the_purpose));
    rate(in, &the_purpose.rate, rbuf[1]);
    ctx.purpose = (f & 4) ? &the_purpose : NULL;

    in_str(in, &ctx.operator, 64);
    in_str(in, &ctx.purpose_code, 64);
    in_str(in, &method, 32);

    in_bytes(in, cert_raw, 16);
    in_bytes(in, subj_raw, 16);

    /* hex SHA-256 and HMAC as the module makes them, 64 digits */
    ngx_memset(cert_raw + 16, 0xee, 16);
    ngx_memset(subj_raw + 16, 0x11, 16);

    cert_hex = malloc(64);
    subj_hex = malloc(64);
    if (cert_hex == NULL || subj_hex == NULL) {
        abort();
    }

    hex(cert_hex, cert_raw, 32, f & 0x20);
    hex(subj_hex, subj_raw, 32, f & 0x20);

    if (f & 8) {
        ctx.cert.data = cert_hex;
        ctx.cert.len = 64;

    } else if (!unset_null) {
        ctx.cert.data = cert_hex;
    }

    if (f & 0x10) {
        ctx.subject.data = subj_hex;
        ctx.subject.len = 64;

    } else if (!unset_null) {
        ctx.subject.data = subj_hex;
    }

    ctx.uri = *uri;
    if (uri->len == 0 && unset_null) {
        ctx.uri.data = NULL;
    }

    log.log_level = NGX_LOG_EMERG;
    c.log = &log;
    r.connection = &c;
    r.pool = pool;
    r.method_name = method;
    ctx.request = &r;

    code = doc_code(reason);

    if (reason == NGX_HTTP_JUKI_ALLOW) {
        want = (ctx.agency && ctx.purpose) ? NGX_OK : NGX_ERROR;

    } else {
        /* the gateway's own decisions only: codes 16 and up */
        want = (code >= 16) ? NGX_OK : NGX_ERROR;
    }

    if (want == NGX_OK && fail_pick) {
        want = NGX_DECLINED;

    } else if (want == NGX_OK && fail_add) {
        want = NGX_ERROR;
    }

    rc = ngx_http_juki_audit_request(&r, &the_jmcf, &ctx);

    ngx_shim_check(rc == want, "audit_request(reason %s, agency %d, "
                   "purpose %d) = %ld, want %ld",
                   ngx_http_juki_reasons[reason].name.data,
                   ctx.agency != NULL, ctx.purpose != NULL, (long) rc,
                   (long) want);

    if (rc != NGX_OK) {
        check_unchanged("A not added");
        goto done;
    }

    ngx_shim_check(ncaps == 1, "A: %lu records", (unsigned long) ncaps);

    seq = model.seq + 1;

    check_element(&caps[0], &rec, 'A', ts);

    ngx_shim_check(rec.kind == (ctx.agency ? ctx.agency->kind : 0),
                   "A: kind %u", rec.kind);

    ngx_shim_check(rec.cert.len == ((f & 8) ? 16 : 0)
                   && (rec.cert.len == 0
                       || memcmp(rec.cert.data, cert_raw, 16) == 0),
                   "A: cert");
    ngx_shim_check(rec.subject.len == ((f & 0x10) ? 16 : 0)
                   && (rec.subject.len == 0
                       || memcmp(rec.subject.data, subj_raw, 16) == 0),
                   "A: subject");

    check_span(&rec.operator, &ctx.operator, "A: operator");
    check_span(&rec.purpose, &ctx.purpose_code, "A: purpose");
    check_span(&rec.method, &method, "A: method");
    check_span(&rec.uri, uri, "A: uri");

    if (reason == NGX_HTTP_JUKI_ALLOW) {
        ngx_shim_check(rec.gdecision == 0, "A: allow, gdecision %u",
                       rec.gdecision);

        /* R OPERATOR PURPOSE LIMITS SUBJECT; the function appends */
        ngx_shim_check(caps[0].op == NGX_HTTP_JUKI_OP_DECIDE
                       && caps[0].nextra == 4 && caps[0].ctx == &ctx,
                       "A: allow as R (op %c, %lu arguments)", caps[0].op,
                       (unsigned long) caps[0].nextra);

        check_arg(&caps[0].extra[0], &ctx.operator,
                   "R: operator");
        check_arg(&caps[0].extra[1], &ctx.purpose_code,
                   "R: purpose");

        want_limits.data = limits;
        want_limits.len = 0;

        if (ctx.agency->rate.interval_us || ctx.purpose->rate.interval_us) {
            want_limits.len = sprintf((char *) limits, "%.*s %.*s %.*s %.*s",
                                  RATE_OR_0(ctx.agency->rate, interval),
                                  RATE_OR_0(ctx.agency->rate, tolerance),
                                  RATE_OR_0(ctx.purpose->rate, interval),
                                  RATE_OR_0(ctx.purpose->rate, tolerance));
        }

        check_arg(&caps[0].extra[2], &want_limits, "R: limits");

        sub16.data = subj_raw;
        sub16.len = (f & 0x10) ? 16 : 0;

        check_arg(&caps[0].extra[3], &sub16, "R: subject");

        check_list(&caps[0], &ctx.agency->name);

    } else {
        ngx_shim_check(rec.gdecision == code && rec.decision == code,
                       "A: %s, gdecision %u decision %u, want %u",
                       ngx_http_juki_reasons[reason].name.data,
                       rec.gdecision, rec.decision, code);

        if (ctx.agency) {
            ngx_shim_check(caps[0].op == NGX_HTTP_JUKI_OP_DENIAL
                           && caps[0].nextra == 1, "A: denial as D");
            check_arg(&caps[0].extra[0], &ctx.operator,
                       "D: operator");
            check_list(&caps[0], &ctx.agency->name);

        } else {
            ngx_shim_check(caps[0].op == NGX_HTTP_JUKI_OP_APPEND
                           && caps[0].nextra == 0, "A: no agency as P");
            check_list(&caps[0], &ngx_http_juki_nobody);
        }

        ngx_shim_check(caps[0].ctx == &ctx, "A: the request waits");
    }

    ngx_shim_check(memcmp(ctx.awriter, model.raw, 8) == 0 && ctx.aseq == seq,
                   "A: ctx's writer and seq");
    check_id(ctx.audit_id, ctx.audit_id_len, seq);

    if (ctx.agency) {
        last_a = ctx;
        have_last_a = 1;
    }

done:

    str_free(&ctx.operator);
    str_free(&ctx.purpose_code);
    str_free(&method);
    free(cert_hex);
    free(subj_hex);
}


static void
step_completion(input_t *in, ngx_pool_t *pool)
{
    u_char                      b, f, n;
    uint64_t                    ts, seq, upstream;
    record_t                    rec;
    ngx_uint_t                  i;
    ngx_array_t                 states;
    ngx_connection_t            c;
    ngx_log_t                   log;
    ngx_http_request_t          r;
    ngx_http_juki_ctx_t         ctx;
    ngx_http_upstream_state_t   st[8];

    static ngx_http_juki_reason_e  outcomes[] = {
        NGX_HTTP_JUKI_ALLOW, NGX_HTTP_JUKI_STOPPED,
        NGX_HTTP_JUKI_RATE_LIMITED
    };

    set_time(in, &ts);

    b = in_u8(in);
    f = in_u8(in);

    ngx_memzero(&ctx, sizeof(ctx));
    ngx_memzero(&r, sizeof(r));
    ngx_memzero(&c, sizeof(c));
    ngx_memzero(&log, sizeof(log));

    if ((f & 0x80) && have_last_a) {
        ctx = last_a;                   /* the A record it completes */
        in->p += ngx_min((size_t) 16, (size_t) (in->end - in->p));

    } else {
        in_bytes(in, ctx.awriter, 8);
        ctx.aseq = in_be(in, 8);
        ctx.agency = &agencies[f % 3];
    }

    ctx.outcome = outcomes[b % 3];

    r.headers_out.status = in_be(in, 2);
    r.err_status = in_be(in, 2);
    c.sent = (off_t) in_be(in, 8);

    n = in_u8(in);
    upstream = 0;

    if (n & 0x80) {
        n &= 7;

        states.elts = st;
        states.nelts = n;
        states.size = sizeof(ngx_http_upstream_state_t);
        states.nalloc = 8;
        r.upstream_states = &states;

        upstream = n ? 1 : 0;

        for (i = 0; i < n; i++) {
            ngx_memzero(&st[i], sizeof(ngx_http_upstream_state_t));
            st[i].status = in_be(in, 2);
            st[i].response_time = in_be(in, 4);

            if (st[i].response_time == 0xffffffff) {
                st[i].response_time = (ngx_msec_t) -1;
            }

            /* ms + 1 of the upstreams that answered; 0: none tried */
            if (st[i].status && st[i].response_time != (ngx_msec_t) -1) {
                upstream += st[i].response_time;
            }
        }
    }

    log.log_level = NGX_LOG_EMERG;
    c.log = &log;
    r.connection = &c;
    r.pool = pool;
    ctx.request = &r;

    ngx_http_juki_audit_completion(&r, &the_jmcf, &ctx);

    if (fail_pick || fail_add) {
        check_unchanged("C not added");
        return;
    }

    ngx_shim_check(ncaps == 1, "C: %lu records", (unsigned long) ncaps);

    seq = model.seq + 1;
    (void) seq;

    check_element(&caps[0], &rec, 'C', ts);

    ngx_shim_check(caps[0].op == NGX_HTTP_JUKI_OP_APPEND
                   && caps[0].nextra == 0 && caps[0].ctx == NULL, "C: P");
    check_list(&caps[0], &ctx.agency->name);

    ngx_shim_check(memcmp(rec.awriter, ctx.awriter, 8) == 0
                   && rec.aseq == ctx.aseq, "C: awriter, aseq");
    ngx_shim_check(rec.decision == doc_code(ctx.outcome)
                   && rec.decision >= 1 && rec.decision <= 3,
                   "C: decision %u", rec.decision);
    ngx_shim_check(rec.status == (r.err_status ? r.err_status
                                               : r.headers_out.status),
                   "C: status %llu", (unsigned long long) rec.status);
    ngx_shim_check(rec.bytes == (c.sent > 0 ? (uint64_t) c.sent : 0),
                   "C: bytes %llu", (unsigned long long) rec.bytes);
    ngx_shim_check(rec.upstream == upstream, "C: upstream %llu, want %llu",
                   (unsigned long long) rec.upstream,
                   (unsigned long long) upstream);
}


static void
step_summary(input_t *in)
{
    u_char                   b, *id;
    time_t                   second;
    uint64_t                 ts, seq;
    ngx_int_t                rc;
    record_t                 rec;
    ngx_str_t                sid;
    ngx_uint_t               recorded, suppressed;
    ngx_http_juki_reason_e   cause;

    static ngx_http_juki_reason_e  causes[] = {
        NGX_HTTP_JUKI_UNVERIFIED_CERTIFICATE, NGX_HTTP_JUKI_UNKNOWN_AGENCY,
        NGX_HTTP_JUKI_BAD_REQUEST
    };

    set_time(in, &ts);

    b = in_u8(in);
    cause = causes[b % 3];
    second = (time_t) in_be(in, 4);
    recorded = in_be(in, 4);
    suppressed = in_be(in, 4);

    /* exactly NGX_HTTP_JUKI_AUDIT_ID_MAX bytes, as the caller gives */
    id = malloc(NGX_HTTP_JUKI_AUDIT_ID_MAX);
    if (id == NULL) {
        abort();
    }

    sid.data = id;
    sid.len = 0;

    rc = ngx_http_juki_audit_summary(cause, second, recorded, suppressed,
                                     &sid);

    if (fail_pick) {
        ngx_shim_check(rc == NGX_DECLINED, "S with no Redis: %ld", (long) rc);
        check_unchanged("S not added");
        goto done;
    }

    if (fail_add) {
        ngx_shim_check(rc == NGX_ERROR, "S, call full: %ld", (long) rc);
        check_unchanged("S not added");
        goto done;
    }

    ngx_shim_check(rc == NGX_OK && ncaps == 1, "S: rc %ld", (long) rc);

    seq = model.seq + 1;

    check_element(&caps[0], &rec, 'S', ts);

    ngx_shim_check(caps[0].op == NGX_HTTP_JUKI_OP_APPEND
                   && caps[0].nextra == 0 && caps[0].ctx == NULL, "S: P");
    check_list(&caps[0], &ngx_http_juki_nobody);

    ngx_shim_check(rec.cause == doc_code(cause) && rec.cause >= 16
                   && rec.cause <= 18, "S: cause %u", rec.cause);
    ngx_shim_check(rec.second == (uint64_t) second, "S: second");
    ngx_shim_check(rec.recorded == recorded, "S: recorded");
    ngx_shim_check(rec.suppressed == suppressed, "S: suppressed");

    check_id(sid.data, sid.len, seq);

done:

    free(id);
}


/* record_uri() and mask(), as before A3 */

static int
needs_escape(u_char c)
{
    return c <= 0x20 || c >= 0x7f || c == '%';
}


static int
uhex(u_char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}


static u_char
hexval(u_char c)
{
    return (u_char) (c <= '9' ? c - '0' : c - 'A' + 10);
}


/* "%XX" to bytes; a "%" that starts no escape stands for itself */

static size_t
unescape(const u_char *s, size_t len, u_char *out)
{
    size_t  i, n;

    for (i = 0, n = 0; i < len; n++) {
        if (s[i] == '%' && i + 2 < len && uhex(s[i + 1]) && uhex(s[i + 2])) {
            out[n] = (u_char) (hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 3;

        } else {
            out[n] = s[i++];
        }
    }

    return n;
}


static int
contains(const u_char *s, size_t len, const u_char *code, size_t clen)
{
    size_t  i;

    if (clen == 0 || len < clen) {
        return 0;
    }

    for (i = 0; i + clen <= len; i++) {
        if (memcmp(s + i, code, clen) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
check_record_uri(ngx_str_t *uri, ngx_str_t *rec)
{
    u_char  *dec;
    size_t   i, n, want;

    want = uri->len;

    for (i = 0; i < uri->len; i++) {
        if (needs_escape(uri->data[i])) {
            want += 2;
        }
    }

    ngx_shim_check(rec->len == want, "record_uri length %zu, want %zu",
                   rec->len, want);

    for (i = 0; i < rec->len; i++) {
        if (rec->data[i] < '!' || rec->data[i] > '~') {
            ngx_shim_dump("record", rec->data, rec->len);
            ngx_shim_check(0, "record_uri left byte 0x%02x at %zu",
                           rec->data[i], i);
        }

        if (rec->data[i] == '%') {
            if (i + 2 >= rec->len || !uhex(rec->data[i + 1])
                || !uhex(rec->data[i + 2]))
            {
                ngx_shim_dump("record", rec->data, rec->len);
                ngx_shim_check(0, "bare \"%%\" at %zu", i);
            }

            i += 2;
        }
    }

    dec = malloc(rec->len + 1);
    if (dec == NULL) {
        abort();
    }

    n = unescape(rec->data, rec->len, dec);

    if (n != uri->len || (n && memcmp(dec, uri->data, n) != 0)) {
        ngx_shim_dump("uri", uri->data, uri->len);
        ngx_shim_dump("record", rec->data, rec->len);
        ngx_shim_check(0, "the record does not decode to the URI");
    }

    /* escaped only what must be: every escape decodes to such a byte */

    for (i = 0; i < rec->len; i++) {
        if (rec->data[i] == '%') {
            ngx_shim_check(needs_escape((u_char) (hexval(rec->data[i + 1]) << 4
                                                  | hexval(rec->data[i + 2]))),
                           "needless escape at %zu", i);
            i += 2;
        }
    }

    free(dec);
}


/*
 * ngx_http_juki_mask() itself: the leftmost, non-overlapping occurrences of
 * the code are replaced, by "{code}" when the code has none of its
 * characters, else by one printable character the code lacks; the result
 * never contains the code.
 */

static size_t
replace_all(ngx_str_t *in, ngx_str_t *code, const u_char *repl, size_t rlen,
    u_char *out)
{
    u_char  *q;
    size_t   i;

    q = out;

    for (i = 0; i < in->len; ) {
        if (code->len && i + code->len <= in->len
            && memcmp(in->data + i, code->data, code->len) == 0)
        {
            q = ngx_cpymem(q, repl, rlen);
            i += code->len;

        } else {
            *q++ = in->data[i++];
        }
    }

    return q - out;
}


static void
check_mask(ngx_str_t *in, ngx_str_t *out, ngx_str_t *code)
{
    u_char  *ref, repl[6];
    size_t   i, rlen, reflen;
    int      reserved;

    reserved = 0;

    for (i = 0; i < code->len; i++) {
        if (memchr("{code}", code->data[i], 6)) {
            reserved = 1;
        }
    }

    memcpy(repl, "{code}", 6);
    rlen = 6;

    if (reserved) {
        /* the one character at the first replacement, to be checked */

        for (i = 0; i + code->len <= in->len; i++) {
            if (memcmp(in->data + i, code->data, code->len) == 0) {
                break;
            }
        }

        if (i + code->len <= in->len) {
            ngx_shim_check(i < out->len, "masked value too short");

            repl[0] = out->data[i];
            rlen = 1;

            ngx_shim_check(repl[0] >= '!' && repl[0] <= '~'
                           && memchr(code->data, repl[0], code->len) == NULL,
                           "replacement 0x%02x is in the code or not "
                           "printable", repl[0]);
        }
    }

    ref = malloc(in->len * 6 + 1);
    if (ref == NULL) {
        abort();
    }

    reflen = replace_all(in, code, repl, rlen, ref);

    if (reflen != out->len || (reflen && memcmp(ref, out->data, reflen) != 0))
    {
        ngx_shim_dump("in", in->data, in->len);
        ngx_shim_dump("code", code->data, code->len);
        ngx_shim_dump("out", out->data, out->len);
        ngx_shim_dump("want", ref, reflen);
        ngx_shim_check(0, "mask differs from the reference");
    }

    free(ref);

    if (contains(out->data, out->len, code->data, code->len)) {
        ngx_shim_dump("in", in->data, in->len);
        ngx_shim_dump("code", code->data, code->len);
        ngx_shim_dump("out", out->data, out->len);
        ngx_shim_check(0, "the masked value still contains the code");
    }
}


/*
 * The URI as the handler records it (ngx_http_juki_decide()): $uri masked
 * then escaped; the record must keep its escapes well-formed and must not
 * give the code back, in any spelling.
 */

static void
check_pipeline(ngx_pool_t *pool, ngx_str_t *uri, ngx_str_t *code,
    ngx_str_t *final)
{
    u_char     *dec;
    size_t      i, n;
    ngx_str_t   rec, masked;

    masked = *uri;
    ngx_shim_check(ngx_http_juki_mask(pool, &masked, code) == NGX_OK,
                   "mask failed");
    check_mask(uri, &masked, code);
    ngx_shim_check(ngx_http_juki_record_uri(pool, &masked, &rec) == NGX_OK,
                   "record_uri failed");
    check_record_uri(&masked, &rec);
    *final = rec;

    /* a bare "%" would be an escape the record did not produce */

    for (i = 0; i < final->len; i++) {
        if (final->data[i] == '%') {
            if (i + 2 >= final->len || !uhex(final->data[i + 1])
                || !uhex(final->data[i + 2]))
            {
                ngx_shim_dump("uri", uri->data, uri->len);
                ngx_shim_dump("code", code->data, code->len);
                ngx_shim_dump("record", final->data, final->len);
                ngx_shim_check(0, "bare \"%%\" in the record at %zu", i);
            }

            i += 2;
        }
    }

    dec = malloc(final->len + 1);
    if (dec == NULL) {
        abort();
    }

    /*
     * the record read as it is meant, decoded; its raw text may still
     * spell a code by coincidence, the hex digits of an escape followed by
     * digits of the URI (URI "/ 01", code "2001", record "/%2001")
     */

    n = unescape(final->data, final->len, dec);

    if (contains(dec, n, code->data, code->len)) {
        ngx_shim_dump("uri", uri->data, uri->len);
        ngx_shim_dump("code", code->data, code->len);
        ngx_shim_dump("record", final->data, final->len);
        ngx_shim_check(0, "the code can be read back from the record");
    }

    free(dec);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char       *copy, sel;
    size_t        ulen;
    input_t       in;
    ngx_str_t     code, uri, rec, masked;
    ngx_uint_t    flags, steps;
    ngx_pool_t   *pool;

    if (size == 0) {
        return 0;
    }

    flags = data[0];
    unset_null = (flags & 0x80) != 0;

    in.p = data + 1;
    in.end = data + size;

    code.len = ngx_min((size_t) (flags & 0x3f), (size_t) (in.end - in.p));
    code.data = ngx_shim_dup(in.p, code.len);
    in.p += code.len;

    ulen = in_u8(&in);
    uri.len = ngx_min(ulen, (size_t) (in.end - in.p));
    uri.data = ngx_shim_dup(in.p, uri.len);
    in.p += uri.len;

    copy = ngx_shim_dup(uri.data, uri.len);

    pool = ngx_shim_pool();

    /* record_uri() alone */

    ngx_shim_check(ngx_http_juki_record_uri(pool, &uri, &rec) == NGX_OK,
                   "record_uri failed");
    ngx_shim_check(memcmp(uri.data, copy, uri.len) == 0,
                   "record_uri changed its input");

    check_record_uri(&uri, &rec);

    /* masked and recorded as the handler does */

    check_pipeline(pool, &uri, &code, &masked);

    /* the records of one connection, from its W on */

    agencies_init();
    have_last_a = 0;
    fail_add = 0;
    fail_pick = 0;
    ngx_memzero(&the_jmcf, sizeof(the_jmcf));

    step_writer(&in, flags, 1);
    caps_free();

    if (in.p == in.end) {
        /* no steps: an allow, its completion and a summary */
        static const u_char  dflt[] =
            "\x01" "\x65\x5c\x3b\x00" "\x01\x23" "\x00" "\x1d"
            "\x00\x03\xe8\x02" "\x0f\x42\x40\x00"
            "\x08" "insider1" "\x02" "P1" "\x03" "GET"
            "0123456789abcdef" "fedcba9876543210"
            "\x02" "\x65\x5c\x3b\x00" "\x01\x24" "\x00" "\x80"
            "0123456789abcdef" "\x00\xc8" "\x00\x00"
            "\x00\x00\x00\x00\x00\x00\x04\x00" "\x81" "\x00\xc8"
            "\x00\x00\x00\x07"
            "\x03" "\x65\x5c\x3b\x01" "\x00\x00" "\x00" "\x65\x5c\x3b\x00"
            "\x00\x00\x00\x05" "\x00\x00\x00\x02";

        in.p = dflt;
        in.end = dflt + sizeof(dflt) - 1;
    }

    for (steps = 0; steps < STEPS_MAX && in.p < in.end; steps++) {
        sel = in_u8(&in);

#ifdef JUKI_TRACE
        fprintf(stderr, "fuzz_record: step %lu at %ld: %c, seq %llu\n",
                (unsigned long) steps, (long) (in.p - data - 1),
                "WACSF"[sel % 5],
                (unsigned long long) model.seq);
#endif

        switch (sel % 5) {

        case 0:
            step_writer(&in, flags, 0);
            fail_add = 0;
            fail_pick = 0;
            break;

        case 1:
            step_audit(&in, pool, &masked);
            fail_add = 0;
            fail_pick = 0;
            break;

        case 2:
            step_completion(&in, pool);
            fail_add = 0;
            fail_pick = 0;
            break;

        case 3:
            step_summary(&in);
            fail_add = 0;
            fail_pick = 0;
            break;

        default:
            sel = in_u8(&in);
            fail_pick = sel & 1;
            fail_add = !fail_pick && (sel & 2);
        }

        caps_free();

        if (!model.started) {
            break;                      /* no W: the connection failed */
        }
    }

    ngx_destroy_pool(pool);

    free(copy);
    free(code.data);
    free(uri.data);

    return 0;
}
