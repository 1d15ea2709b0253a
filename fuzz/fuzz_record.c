
/*
 * fuzz_record: how a request's values become an audit record.
 *
 * The file includes src/ngx_http_juki_audit.c itself, so that its static
 * ngx_http_juki_chain() is reachable without changing src/.
 *
 * Input: byte 0 = flags (bits 0-5: length L of the resident code, bit 6:
 * the writer has a previous record, with a sequence number about to reach
 * 2^64 - 1; bit 7: chain a completion record instead of a request record,
 * or a summary record when L is odd),
 * then L bytes of code (as decoded from $arg_code), then the URI ($uri,
 * already decoded by NGINX): every remaining byte.
 *
 * Asserts:
 *  - ngx_http_juki_record_uri(): the output has bytes in "!".."~" only;
 *    every "%" starts an escape "%XX" (upper-case hex) that it produced;
 *    it escapes exactly the bytes <= 0x20, >= 0x7f and "%"; decoding it
 *    gives the URI back;
 *  - ngx_http_juki_mask(): every leftmost, non-overlapping occurrence of
 *    the code becomes "{code}", and the result never contains the code;
 *  - the URI as the handler records it (record_uri and mask composed as
 *    ngx_http_juki_decide() composes them) keeps its escapes well-formed
 *    and does not give the code back in any spelling: SPEC 7, "a resident
 *    code never appears in an audit record";
 *  - ngx_http_juki_chain(): the bytes given to the HMAC are the tag and
 *    then every value but "mac" as "<len>:<bytes>," netstrings, then the
 *    bound decision of an audit record (A2) as one more, which parse back
 *    to exactly the record's values (so two different records never MAC
 *    the same bytes); the id of an audit or summary record is
 *    "<writer>-<seq + 1>", within NGX_HTTP_JUKI_AUDIT_ID_MAX, a
 *    completion keeps the id it names; no undefined behaviour on the
 *    values the handler leaves { 0, NULL }.
 *
 * KNOWN names (fuzz/Makefile) of this target's findings, all fixed in
 * src/ since: mask-order, mask-reserved, chain-null-memcpy (see
 * regressions/fuzz_record/README.md); with one of them set, the harness
 * tolerates that behaviour of an older src/.
 */


#include "ngx_shim.h"

#include "ngx_http_juki_audit.c"

#include "juki_stubs.h"


static u_char  *hmac_in;
static size_t   hmac_len;


static ngx_int_t
capture_hmac(u_char *key, u_char *data, size_t len, u_char *hex)
{
    free(hmac_in);

    hmac_in = ngx_shim_dup(data, len);
    hmac_len = len;

    ngx_memset(hex, 'b', NGX_HTTP_JUKI_HEX_SHA256);

    return NGX_OK;
}


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
 * never contains the code.  With JUKI_KNOWN_MASK_RESERVED (older src/) the
 * replacement is always "{code}", which may spell the code anew ("c",
 * "{c", "e}"): then only the plain replacement is checked.
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

#ifndef JUKI_KNOWN_MASK_RESERVED
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
#endif

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

#ifdef JUKI_KNOWN_MASK_RESERVED
    if (reserved) {
        return;
    }
#endif

    if (contains(out->data, out->len, code->data, code->len)) {
        ngx_shim_dump("in", in->data, in->len);
        ngx_shim_dump("code", code->data, code->len);
        ngx_shim_dump("out", out->data, out->len);
        ngx_shim_check(0, "the masked value still contains the code");
    }
}


/*
 * The URI as the handler records it (ngx_http_juki_decide()): with
 * JUKI_KNOWN_MASK_ORDER as today, the escaped record masked with the
 * decoded code; without, as proposed, $uri masked then escaped.  Either
 * way the record must keep its escapes well-formed and must not give the
 * code back, in any spelling: tolerated for codes with a byte of "{code}"
 * while JUKI_KNOWN_MASK_RESERVED, and for codes with a byte that
 * record_uri escapes, or a bare "%" after masking, while
 * JUKI_KNOWN_MASK_ORDER.
 */

static void
check_pipeline(ngx_pool_t *pool, ngx_str_t *uri, ngx_str_t *code,
    ngx_str_t *final)
{
    u_char     *dec;
    size_t      i, n;
    ngx_str_t   rec, masked;
    int         reserved, escaped;

#ifdef JUKI_KNOWN_MASK_ORDER

    ngx_shim_check(ngx_http_juki_record_uri(pool, uri, &rec) == NGX_OK,
                   "record_uri failed");
    masked = rec;
    ngx_shim_check(ngx_http_juki_mask(pool, &masked, code) == NGX_OK,
                   "mask failed");
    check_mask(&rec, &masked, code);
    *final = masked;

#else

    masked = *uri;
    ngx_shim_check(ngx_http_juki_mask(pool, &masked, code) == NGX_OK,
                   "mask failed");
    check_mask(uri, &masked, code);
    ngx_shim_check(ngx_http_juki_record_uri(pool, &masked, &rec) == NGX_OK,
                   "record_uri failed");
    check_record_uri(&masked, &rec);
    *final = rec;

#endif

    reserved = 0;
    escaped = 0;

    for (i = 0; i < code->len; i++) {
        if (memchr("{code}", code->data[i], 6)) {
            reserved = 1;
        }

        if (needs_escape(code->data[i])) {
            escaped = 1;
        }
    }

#ifdef JUKI_KNOWN_MASK_ORDER
    if (escaped) {
        return;
    }
#else

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

#endif

#ifdef JUKI_KNOWN_MASK_RESERVED
    if (reserved) {
        return;
    }
#endif

    (void) reserved;
    (void) escaped;

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


/*
 * the HMAC input: the tag, then n - 1 netstrings equal to v[0 .. n-2],
 * then one of the bound decision when there is one
 */

static void
check_netstrings(const char *tag, ngx_str_t *v, ngx_uint_t n,
    ngx_str_t *bound)
{
    size_t      pos, len;
    ngx_uint_t  i, k;
    ngx_str_t  *w;

    ngx_shim_check(hmac_in && hmac_len >= 2 && memcmp(hmac_in, tag, 2) == 0,
                   "tag");

    pos = 2;
    k = n - 1 + (bound ? 1 : 0);

    for (i = 0; i < k; i++) {
        w = (i < n - 1) ? &v[i] : bound;
        len = 0;

        ngx_shim_check(pos < hmac_len && hmac_in[pos] >= '0'
                       && hmac_in[pos] <= '9', "length of value %lu",
                       (unsigned long) i);

        /* no leading zeros: one spelling per length */
        ngx_shim_check(hmac_in[pos] != '0' || hmac_in[pos + 1] == ':',
                       "leading zero");

        while (pos < hmac_len && hmac_in[pos] >= '0' && hmac_in[pos] <= '9') {
            len = len * 10 + (hmac_in[pos++] - '0');
        }

        ngx_shim_check(pos < hmac_len && hmac_in[pos] == ':', "\":\"");
        pos++;

        ngx_shim_check(len == w->len && hmac_len - pos > len
                       && (len == 0
                           || memcmp(hmac_in + pos, w->data, len) == 0),
                       "value %lu differs", (unsigned long) i);
        pos += len;

        ngx_shim_check(hmac_in[pos] == ',', "\",\"");
        pos++;
    }

    ngx_shim_check(pos == hmac_len, "%zu bytes after the last value",
                   hmac_len - pos);
}


static void
check_chain(ngx_pool_t *pool, ngx_uint_t flags, ngx_str_t *code,
    ngx_str_t *uri)
{
    u_char                       idbuf[64], *p;
    ngx_str_t                    v[NGX_HTTP_JUKI_NFIELDS];
    ngx_str_t                    vc[NGX_HTTP_JUKI_NCFIELDS];
    ngx_str_t                    vs[NGX_HTTP_JUKI_NSFIELDS];
    ngx_str_t                    empty, bound;
    ngx_uint_t                   i;
    ngx_http_juki_chain_buf_t    buf;
    ngx_http_juki_main_conf_t    jmcf;
    ngx_http_juki_redis_conn_t   rc;

    static ngx_str_t  hex64 = ngx_string(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");

    ngx_memzero(&jmcf, sizeof(jmcf));
    ngx_str_set(&jmcf.node, "gw-tokyo-1");
    ngx_memcpy(jmcf.kid, "kid0123456789abc", NGX_HTTP_JUKI_KID_LEN);

    ngx_memzero(&rc, sizeof(rc));
    ngx_memcpy(rc.writer, "w0123456789abcde", NGX_HTTP_JUKI_WRITER_LEN);
    ngx_memset(rc.last_mac, 'c', NGX_HTTP_JUKI_HEX_SHA256);

    if (flags & 0x40) {
        rc.has_prev = 1;
        rc.seq = UINT64_MAX - 1;

    } else {
        rc.seq = 41;
    }

    /*
     * as the handler leaves them: never-set values are { 0, NULL }; while
     * JUKI_KNOWN_CHAIN_NULL_MEMCPY is unfixed, { 0, "" } lets fuzzing go on
     */
    ngx_str_null(&empty);
#ifdef JUKI_KNOWN_CHAIN_NULL_MEMCPY
    empty.data = (u_char *) "";
#endif

    juki_stub_hmac_hook = capture_hmac;

    if (!(flags & 0x80)) {
        for (i = 0; i < NGX_HTTP_JUKI_NFIELDS; i++) {
            v[i].len = 7777;
            v[i].data = NULL;
        }

        v[NGX_HTTP_JUKI_F_AGENCY] = code->len ? *code : empty;
        v[NGX_HTTP_JUKI_F_KIND] = code->len ? *uri : empty;
        v[NGX_HTTP_JUKI_F_CERT] = code->len ? hex64 : empty;
        v[NGX_HTTP_JUKI_F_OPERATOR] = *uri;
        v[NGX_HTTP_JUKI_F_PURPOSE] = *code;
        v[NGX_HTTP_JUKI_F_SUBJECT] = code->len ? hex64 : empty;
        ngx_str_set(&v[NGX_HTTP_JUKI_F_METHOD], "GET");
        v[NGX_HTTP_JUKI_F_URI] = *uri;

        /* a decision the gateway took, or "redis" */
        bound = code->len ? *code : ngx_http_juki_by_redis;

        ngx_shim_check(ngx_http_juki_chain(pool, &rc, &jmcf, "A2", v,
                                           NGX_HTTP_JUKI_NFIELDS, &bound,
                                           &buf)
                       == NGX_OK, "chain failed");

        check_netstrings("A2", v, NGX_HTTP_JUKI_NFIELDS, &bound);

        p = ngx_sprintf(idbuf, "w0123456789abcde-%uL", rc.seq + 1);
        ngx_shim_check(v[NGX_HTTP_JUKI_F_ID].len == (size_t) (p - idbuf)
                       && memcmp(v[NGX_HTTP_JUKI_F_ID].data, idbuf,
                                 p - idbuf) == 0
                       && v[NGX_HTTP_JUKI_F_ID].len
                          <= NGX_HTTP_JUKI_AUDIT_ID_MAX, "id");
        ngx_shim_check(v[NGX_HTTP_JUKI_F_PREV].len
                       == (rc.has_prev ? NGX_HTTP_JUKI_HEX_SHA256 : 0),
                       "prev");
        ngx_shim_check(v[NGX_HTTP_JUKI_F_MAC].len == NGX_HTTP_JUKI_HEX_SHA256
                       && v[NGX_HTTP_JUKI_F_MAC].data == buf.mac, "mac");

    } else if (!(code->len & 1)) {
        for (i = 0; i < NGX_HTTP_JUKI_NCFIELDS; i++) {
            vc[i].len = 7777;
            vc[i].data = NULL;
        }

        ngx_str_set(&vc[NGX_HTTP_JUKI_C_ID], "w0123456789abcde-42");
        ngx_str_set(&vc[NGX_HTTP_JUKI_C_PHASE], "done");
        vc[NGX_HTTP_JUKI_C_DECISION] = code->len ? *code : empty;
        vc[NGX_HTTP_JUKI_C_STATUS] = *uri;
        vc[NGX_HTTP_JUKI_C_BYTES] = *code;
        vc[NGX_HTTP_JUKI_C_UPSTREAM_MS] = code->len ? *uri : empty;

        ngx_shim_check(ngx_http_juki_chain(pool, &rc, &jmcf, "C2", vc,
                                           NGX_HTTP_JUKI_NCFIELDS, NULL,
                                           &buf)
                       == NGX_OK, "chain failed");

        check_netstrings("C2", vc, NGX_HTTP_JUKI_NCFIELDS, NULL);

        ngx_shim_check(vc[NGX_HTTP_JUKI_C_ID].len == 19
                       && memcmp(vc[NGX_HTTP_JUKI_C_ID].data,
                                 "w0123456789abcde-42", 19) == 0,
                       "a completion keeps the id it names");
        ngx_shim_check(vc[NGX_HTTP_JUKI_C_PREV].len
                       == (rc.has_prev ? NGX_HTTP_JUKI_HEX_SHA256 : 0),
                       "prev");

    } else {
        for (i = 0; i < NGX_HTTP_JUKI_NSFIELDS; i++) {
            vs[i].len = 7777;
            vs[i].data = NULL;
        }

        ngx_str_set(&vs[NGX_HTTP_JUKI_S_PHASE], "summary");
        vs[NGX_HTTP_JUKI_S_CAUSE] = *code;
        vs[NGX_HTTP_JUKI_S_SECOND] = *uri;
        vs[NGX_HTTP_JUKI_S_RECORDED] = empty;
        vs[NGX_HTTP_JUKI_S_SUPPRESSED] = *code;

        ngx_shim_check(ngx_http_juki_chain(pool, &rc, &jmcf, "S1", vs,
                                           NGX_HTTP_JUKI_NSFIELDS, NULL,
                                           &buf)
                       == NGX_OK, "chain failed");

        check_netstrings("S1", vs, NGX_HTTP_JUKI_NSFIELDS, NULL);

        p = ngx_sprintf(idbuf, "w0123456789abcde-%uL", rc.seq + 1);
        ngx_shim_check(vs[NGX_HTTP_JUKI_S_ID].len == (size_t) (p - idbuf)
                       && memcmp(vs[NGX_HTTP_JUKI_S_ID].data, idbuf,
                                 p - idbuf) == 0, "summary id");
    }

    juki_stub_hmac_hook = NULL;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *copy;
    ngx_str_t    code, uri, rec, masked;
    ngx_uint_t   flags;
    ngx_pool_t  *pool;

    if (size == 0) {
        return 0;
    }

    flags = data[0];

    code.len = ngx_min((size_t) (flags & 0x3f), size - 1);
    code.data = ngx_shim_dup(data + 1, code.len);

    uri.len = size - 1 - code.len;
    uri.data = ngx_shim_dup(data + 1 + code.len, uri.len);

    copy = ngx_shim_dup(uri.data, uri.len);

    pool = ngx_shim_pool();

    /* record_uri() alone */

    ngx_shim_check(ngx_http_juki_record_uri(pool, &uri, &rec) == NGX_OK,
                   "record_uri failed");
    ngx_shim_check(uri.len == size - 1 - code.len
                   && memcmp(uri.data, copy, uri.len) == 0,
                   "record_uri changed its input");

    check_record_uri(&uri, &rec);

    /* masked and recorded as the handler does */

    check_pipeline(pool, &uri, &code, &masked);

    check_chain(pool, flags, &code, &masked);

    ngx_destroy_pool(pool);

    free(copy);
    free(code.data);
    free(uri.data);

    return 0;
}
