
/*
 * fuzz_config_values: the parsers of configuration values, and the lookups
 * of what a client certificate presents.
 *
 *  - ngx_http_juki_parse_fingerprint(): NGX_OK iff the value is 64 hex
 *    digits, or 32 hex pairs joined by ":"; then the output is exactly
 *    the value's hex digits in lower case;
 *  - ngx_http_juki_parse_rate(): NGX_OK iff "<digits>r/s" or
 *    "<digits>r/m" with 1 <= digits <= 1000000; then the result is the
 *    emission interval, 10^6 / n us (60 * 10^6 / n for r/m), never 0;
 *  - ngx_http_juki_find_agency() over fingerprint and subject hashes built
 *    from a few keys: the fingerprint (the parsed one, and the value
 *    itself) and the value as a subject find an agency iff it is one of
 *    the keys, exactly; a fingerprint that finds nothing falls back to
 *    the subject;
 *  - ngx_http_juki_find_purpose() likewise over a purpose hash.
 *
 * The whole input is the value, in a heap buffer of exactly its length.
 */


#include "ngx_shim.h"
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


static ngx_http_juki_agency_t     agencies[4];
static ngx_http_juki_purpose_t    purposes[3];
static ngx_http_juki_main_conf_t  jmcf;

static ngx_str_t  fingerprints[] = {
    ngx_string("3fa1000000000000000000000000000000000000000000000000000000c0ffee"),
    ngx_string("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
    ngx_string("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
};

static ngx_str_t  subjects[] = {
    ngx_string("CN=pension-service,O=Japan Pension Service,C=JP"),
    ngx_string("CN=city-of-kobe,O=Kobe City,C=JP"),
    ngx_string("CN=x"),
};

static ngx_str_t  purpose_codes[] = {
    ngx_string("pension.benefit"),
    ngx_string("tax.assessment"),
    ngx_string("P"),
};


static void
init(void)
{
    ngx_uint_t       i;
    ngx_hash_key_t   keys[3];

    for (i = 0; i < 3; i++) {
        keys[i].key = fingerprints[i];
        keys[i].value = &agencies[i];
    }

    ngx_shim_hash_build(&jmcf.fingerprint_hash, keys, 3);

    /* subjects: agency 3 holds subject 0, agencies 1 and 2 theirs */

    for (i = 0; i < 3; i++) {
        keys[i].key = subjects[i];
        keys[i].value = &agencies[i == 0 ? 3 : i];
    }

    ngx_shim_hash_build(&jmcf.subject_hash, keys, 3);

    for (i = 0; i < 3; i++) {
        purposes[i].code = purpose_codes[i];
        keys[i].key = purpose_codes[i];
        keys[i].value = &purposes[i];
    }

    ngx_shim_hash_build(&jmcf.purpose_hash, keys, 3);
}


/*
 * JUKI_KNOWN_FINGERPRINT_CTL (see the Makefile's KNOWN): src/ before
 * commit dbd5f43 took the bytes 0x10-0x19 for the digits "0"-"9" (it
 * tested c | 0x20); with it set, the reference does the same.
 */

static int
hexdigit(u_char c)
{
#ifdef JUKI_KNOWN_FINGERPRINT_CTL
    if (c >= 0x10 && c <= 0x19) {
        return 1;
    }
#endif

    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}


/* reference: accepted iff 64 hex or 32 colon-joined pairs; the hex out */

static int
ref_fingerprint(const u_char *p, size_t len, u_char *hex)
{
    size_t  i, n;

    if (len != 64 && len != 95) {
        return 0;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        if (len == 95 && i % 3 == 2) {
            if (p[i] != ':') {
                return 0;
            }
            continue;
        }

        if (!hexdigit(p[i])) {
            return 0;
        }

        hex[n++] = (p[i] >= 'A' && p[i] <= 'F') || p[i] < '0'
                   ? p[i] | 0x20 : p[i];
    }

    return n == 64;
}


static int
ref_rate(const u_char *p, size_t len, ngx_uint_t *rate)
{
    size_t    i;
    uint64_t  n;

    if (len < 4 || p[len - 3] != 'r' || p[len - 2] != '/'
        || (p[len - 1] != 's' && p[len - 1] != 'm'))
    {
        return 0;
    }

    n = 0;

    for (i = 0; i < len - 3; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }

        n = n * 10 + (p[i] - '0');

        if (n > 1000000) {
            return 0;
        }
    }

    if (n == 0) {
        return 0;
    }

    /* the GCRA emission interval in microseconds */
    *rate = (ngx_uint_t) ((p[len - 1] == 's' ? 1000000 : 60000000) / n);

    return 1;
}


static ngx_http_juki_agency_t *
ref_lookup(ngx_str_t *keys, ngx_uint_t n, const u_char *p, size_t len,
    int subject)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (keys[i].len == len && memcmp(keys[i].data, p, len) == 0) {
            return &agencies[subject && i == 0 ? 3 : i];
        }
    }

    return NULL;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   *copy, *hex, ref_hex[64];
    ngx_int_t                 rc;
    ngx_str_t                 value, fp, subject, none;
    ngx_uint_t                rate, ref_r, ok;
    ngx_http_juki_agency_t   *a, *ref_a;
    ngx_http_juki_purpose_t  *pu;

    static ngx_uint_t  inited;

    if (!inited) {
        init();
        inited = 1;
    }

    copy = ngx_shim_dup(data, size);
    value.len = size;
    value.data = copy;

    /* the fingerprint */

    hex = malloc(64);
    if (hex == NULL) {
        abort();
    }

    rc = ngx_http_juki_parse_fingerprint(&value, hex);
    ok = ref_fingerprint(copy, size, ref_hex);

    ngx_shim_check(rc == NGX_OK || rc == NGX_ERROR, "rc %ld", (long) rc);

    if ((rc == NGX_OK) != ok) {
        ngx_shim_dump("value", copy, size);
        ngx_shim_check(0, "parse_fingerprint %s, reference %s",
                       rc == NGX_OK ? "accepts" : "rejects",
                       ok ? "accepts" : "rejects");
    }

    if (rc == NGX_OK) {
        if (memcmp(hex, ref_hex, 64) != 0) {
            ngx_shim_dump("value", copy, size);
            ngx_shim_dump("hex", hex, 64);
            ngx_shim_check(0, "parse_fingerprint output differs");
        }

        fp.len = 64;
        fp.data = hex;
        ngx_str_null(&none);

        a = ngx_http_juki_find_agency(&jmcf, &fp, &none);
        ref_a = ref_lookup(fingerprints, 3, hex, 64, 0);
        ngx_shim_check(a == ref_a, "find_agency by a parsed fingerprint");
    }

    free(hex);

    /* the value itself as a fingerprint, then as a subject */

    ngx_str_null(&none);
    subject = value;

    a = ngx_http_juki_find_agency(&jmcf, &value, &none);
    ref_a = ref_lookup(fingerprints, 3, copy, size, 0);
    ngx_shim_check(a == ref_a, "find_agency by fingerprint, no subject");

    a = ngx_http_juki_find_agency(&jmcf, &none, &subject);
    ref_a = ref_lookup(subjects, 3, copy, size, 1);
    ngx_shim_check(a == ref_a, "find_agency by subject, no fingerprint");

    a = ngx_http_juki_find_agency(&jmcf, &value, &subject);
    ref_a = ref_lookup(fingerprints, 3, copy, size, 0);
    if (ref_a == NULL) {
        ref_a = ref_lookup(subjects, 3, copy, size, 1);
    }
    ngx_shim_check(a == ref_a, "find_agency by fingerprint, then subject");

    pu = ngx_http_juki_find_purpose(&jmcf, &value);
    ok = 0;
    for (rate = 0; rate < 3; rate++) {
        if (purpose_codes[rate].len == size
            && memcmp(purpose_codes[rate].data, copy, size) == 0)
        {
            ok = 1;
            ngx_shim_check(pu == &purposes[rate], "find_purpose: wrong one");
        }
    }
    ngx_shim_check(ok || pu == NULL, "find_purpose found a stranger");

    /* the rate */

    rate = 0;
    rc = ngx_http_juki_parse_rate(&value, &rate);
    ref_r = 0;
    ok = ref_rate(copy, size, &ref_r);

    ngx_shim_check(rc == NGX_OK || rc == NGX_ERROR, "rc %ld", (long) rc);

    if ((rc == NGX_OK) != ok || (ok && rate != ref_r)) {
        ngx_shim_dump("value", copy, size);
        ngx_shim_check(0, "parse_rate %s (%lu), reference %s (%lu)",
                       rc == NGX_OK ? "accepts" : "rejects",
                       (unsigned long) rate, ok ? "accepts" : "rejects",
                       (unsigned long) ref_r);
    }

    ngx_shim_check(rc != NGX_OK || rate > 0, "parse_rate: interval 0");

    free(copy);

    return 0;
}
