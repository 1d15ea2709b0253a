/*
 * jukictl: buffers, parsing, dates, output escaping, hash table.
 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jk.h"


void
jk_err(const char *fmt, ...)
{
    va_list  ap;

    fputs("jukictl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


int
jk_usage_err(const char *fmt, ...)
{
    va_list  ap;

    fputs("jukictl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see jukictl --help)\n", stderr);

    return JK_ERR;
}


/* growable buffer */

int
jk_buf_reserve(jk_buf_t *b, size_t n)
{
    char    *p;
    size_t   cap;

    if (n <= b->cap - b->len && b->data != NULL) {
        return 0;
    }

    if (n > SIZE_MAX / 2 - b->len) {
        jk_err("out of memory");
        return -1;
    }

    cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        jk_err("out of memory");
        return -1;
    }

    b->data = p;
    b->cap = cap;

    return 0;
}


int
jk_buf_append(jk_buf_t *b, const void *p, size_t n)
{
    if (jk_buf_reserve(b, n) != 0) {
        return -1;
    }

    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;

    return 0;
}


/* netstring: "LEN:BYTES," */

int
jk_buf_ns(jk_buf_t *b, const void *p, size_t n)
{
    char  num[32];
    int   k;

    k = snprintf(num, sizeof(num), "%zu:", n);

    if (jk_buf_reserve(b, (size_t) k + n + 1) != 0) {
        return -1;
    }

    memcpy(b->data + b->len, num, (size_t) k);
    b->len += (size_t) k;
    if (n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
    b->data[b->len++] = ',';

    return 0;
}


/* appends one formatted line (under 512 bytes) */

int
jk_buf_fmt(jk_buf_t *b, const char *fmt, ...)
{
    int      n;
    char     tmp[512];
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);

    if (n < 0 || (size_t) n >= sizeof(tmp)) {
        jk_err("internal error: a line too long");
        return -1;
    }

    return jk_buf_append(b, tmp, (size_t) n);
}


void
jk_buf_free(jk_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


int
jk_str_eq(const jk_str_t *s, const char *lit)
{
    size_t  n = strlen(lit);

    return s->len == n && memcmp(s->p, lit, n) == 0;
}


/* strict decimal: no sign, no leading zero (except "0"), no overflow */

int
jk_parse_u64(const char *p, size_t n, uint64_t *out)
{
    size_t    i;
    uint64_t  v = 0;

    if (n == 0 || n > 20 || (n > 1 && p[0] == '0')) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        if (v > (UINT64_MAX - (uint64_t) (p[i] - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t) (p[i] - '0');
    }

    *out = v;

    return 0;
}


/* "500ms", "5s", "2m", "1h"; a bare number is milliseconds */

int
jk_parse_duration(const char *s, uint64_t *ms)
{
    size_t    n, d;
    uint64_t  v, mul;

    n = strlen(s);
    d = strspn(s, "0123456789");

    if (d == 0 || jk_parse_u64(s, d, &v) != 0) {
        return -1;
    }

    if (d == n || strcmp(s + d, "ms") == 0) {
        mul = 1;
    } else if (strcmp(s + d, "s") == 0) {
        mul = 1000;
    } else if (strcmp(s + d, "m") == 0) {
        mul = 60000;
    } else if (strcmp(s + d, "h") == 0) {
        mul = 3600000;
    } else {
        return -1;
    }

    if (v > UINT64_MAX / mul) {
        return -1;
    }

    *ms = v * mul;

    return 0;
}


/* dates: proleptic Gregorian, days since 1970-01-01 */

static int64_t
jk_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t   era;
    unsigned  yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t) doe - 719468;
}


static void
jk_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t   era;
    unsigned  doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned) (z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}


int
jk_parse_date(const char *s, int64_t *days)
{
    int       i;
    unsigned  y, m, d, mdays;
    static const unsigned  dim[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') {
        return -1;
    }

    for (i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && !isdigit((unsigned char) s[i])) {
            return -1;
        }
    }

    y = (unsigned) ((s[0] - '0') * 1000 + (s[1] - '0') * 100
                    + (s[2] - '0') * 10 + (s[3] - '0'));
    m = (unsigned) ((s[5] - '0') * 10 + (s[6] - '0'));
    d = (unsigned) ((s[8] - '0') * 10 + (s[9] - '0'));

    if (y < 1970 || m < 1 || m > 12 || d < 1) {
        return -1;
    }

    mdays = dim[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        mdays = 29;
    }

    if (d > mdays) {
        return -1;
    }

    *days = jk_days_from_civil(y, m, d);

    return 0;
}


/*
 * --from/--to (UTC days) to an inclusive range of record ts in
 * milliseconds.  Without --from the range starts at 0, without --to it
 * is open.
 */

int
jk_window(const jk_opts_t *o, int required, uint64_t *from_ms,
    uint64_t *to_ms, int *windowed)
{
    int64_t  from = 0, to = 0;

    if (required && (o->from == NULL || o->to == NULL)) {
        return jk_usage_err("%s needs --from DATE and --to DATE",
                            o->command);
    }

    /* a bad date is not echoed: it might be a resident code */

    if (o->from && jk_parse_date(o->from, &from) != 0) {
        return jk_usage_err("bad --from date (want YYYY-MM-DD)");
    }

    if (o->to && jk_parse_date(o->to, &to) != 0) {
        return jk_usage_err("bad --to date (want YYYY-MM-DD)");
    }

    /* both are valid dates here, safe to echo */
    if (o->from && o->to && to < from) {
        return jk_usage_err("--to %s is before --from %s", o->to, o->from);
    }

    *from_ms = o->from ? (uint64_t) from * 86400000 : 0;
    *to_ms = o->to ? (uint64_t) (to + 1) * 86400000 - 1 : UINT64_MAX;

    if (windowed) {
        *windowed = (o->from != NULL || o->to != NULL);
    }

    return JK_OK;
}


void
jk_fmt_iso(uint64_t ms, char *out, size_t size)
{
    int64_t   y, days;
    unsigned  m, d, sec;

    days = (int64_t) (ms / 86400000);
    sec = (unsigned) ((ms % 86400000) / 1000);
    jk_civil_from_days(days, &y, &m, &d);

    snprintf(out, size, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (long long) y, m, d, sec / 3600, sec / 60 % 60, sec % 60,
             (unsigned) (ms % 1000));
}


void
jk_fmt_day(int64_t days, char *out, size_t size)
{
    int64_t   y;
    unsigned  m, d;

    jk_civil_from_days(days, &y, &m, &d);
    snprintf(out, size, "%04lld-%02u-%02u", (long long) y, m, d);
}


uint64_t
jk_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/*
 * Output escaping.
 *
 * Input is decoded as UTF-8.  Printable ASCII and every valid code point
 * that is not a control or an invisible formatting character are kept;
 * the rest is escaped: in text as \xNN (a byte: a control, DEL or a byte
 * that is not valid UTF-8) or \uXXXX (an unsafe code point), with "\"
 * itself written "\\" so that an escape cannot be faked.  JSON uses its
 * own escapes (invalid bytes become U+FFFD: JSON has no byte escape).
 * CSV and Markdown take the text form and add their own quoting.
 */

/* C0, DEL, C1; zero-width, bidi and line/paragraph separators; BOM */

static int
jk_cp_unsafe(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)
           || (cp >= 0x200b && cp <= 0x200f)
           || (cp >= 0x2028 && cp <= 0x202e)
           || (cp >= 0x2060 && cp <= 0x2069)
           || cp == 0xfeff;
}


/* the length of the valid UTF-8 sequence at p, 0 when it is not one */

static size_t
jk_utf8(const unsigned char *p, size_t n, uint32_t *cp)
{
    size_t    len, i;
    uint32_t  v, min;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2; v = p[0] & 0x1f; min = 0x80;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3; v = p[0] & 0x0f; min = 0x800;

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4; v = p[0] & 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if (n < len) {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = v << 6 | (p[i] & 0x3f);
    }

    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }

    *cp = v;

    return len;
}


static int
jk_esc_text(jk_buf_t *b, const char *s, size_t n, int json)
{
    int                   k;
    char                  tmp[16];
    size_t                i, len;
    uint32_t              cp;
    const unsigned char  *p = (const unsigned char *) s;

    for (i = 0; i < n; i += len) {
        len = jk_utf8(p + i, n - i, &cp);

        if (len == 0) {
            len = 1;
            k = json ? snprintf(tmp, sizeof(tmp), "\\ufffd")
                     : snprintf(tmp, sizeof(tmp), "\\x%02x", p[i]);

        } else if (jk_cp_unsafe(cp)) {
            if (json && cp == '\n') {
                k = snprintf(tmp, sizeof(tmp), "\\n");
            } else if (json && cp == '\r') {
                k = snprintf(tmp, sizeof(tmp), "\\r");
            } else if (json && cp == '\t') {
                k = snprintf(tmp, sizeof(tmp), "\\t");
            } else if (cp < 0x80 && !json) {
                k = snprintf(tmp, sizeof(tmp), "\\x%02x", (unsigned) cp);
            } else {
                k = snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned) cp);
            }

        } else if (cp == '\\' || (json && cp == '"')) {
            tmp[0] = '\\';
            tmp[1] = (char) cp;
            k = 2;

        } else {
            if (jk_buf_append(b, p + i, len) != 0) {
                return -1;
            }
            continue;
        }

        if (jk_buf_append(b, tmp, (size_t) k) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * JSON text that is already JSON (an alert): line breaks become spaces,
 * other controls \u00NN, unsafe code points \uXXXX, invalid bytes
 * \ufffd; everything else, quotes and backslashes included, is kept.
 */

static int
jk_esc_json_text(jk_buf_t *b, const char *s, size_t n)
{
    int                   k;
    char                  tmp[16];
    size_t                i, len;
    uint32_t              cp;
    const unsigned char  *p = (const unsigned char *) s;

    for (i = 0; i < n; i += len) {
        len = jk_utf8(p + i, n - i, &cp);

        if (len == 0) {
            len = 1;
            k = snprintf(tmp, sizeof(tmp), "\\ufffd");

        } else if (cp == '\n' || cp == '\r') {
            k = snprintf(tmp, sizeof(tmp), " ");

        } else if (jk_cp_unsafe(cp) && cp != '\t') {
            k = snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned) cp);

        } else {
            if (jk_buf_append(b, p + i, len) != 0) {
                return -1;
            }
            continue;
        }

        if (jk_buf_append(b, tmp, (size_t) k) != 0) {
            return -1;
        }
    }

    return 0;
}


/* the text form, then RFC 4180 quoting and formula neutralisation */

static int
jk_esc_csv(jk_buf_t *b, const char *s, size_t n)
{
    int       rc, formula;
    size_t    i;
    jk_buf_t  t = { NULL, 0, 0 };

    if (jk_esc_text(&t, s, n, 0) != 0) {
        jk_buf_free(&t);
        return -1;
    }

    formula = t.len && strchr("=+-@", t.data[0]) != NULL;

    if (!formula && (t.len == 0 || (memchr(t.data, ',', t.len) == NULL
                                    && memchr(t.data, '"', t.len) == NULL)))
    {
        rc = jk_buf_append(b, t.data, t.len);
        jk_buf_free(&t);
        return rc;
    }

    rc = jk_buf_append(b, formula ? "\"'" : "\"", formula ? 2 : 1);

    for (i = 0; i < t.len && rc == 0; i++) {
        if (t.data[i] == '"') {
            rc = jk_buf_append(b, "\"", 1);
        }
        if (rc == 0) {
            rc = jk_buf_append(b, &t.data[i], 1);
        }
    }

    if (rc == 0) {
        rc = jk_buf_append(b, "\"", 1);
    }

    jk_buf_free(&t);

    return rc;
}


/*
 * The text form (no line breaks or other controls, backslashes doubled),
 * then no pipes, emphasis, strikethrough, code spans, links, raw HTML or
 * character references: \ before | \ * _ ` [ ] ~, and & < > as entities.
 */

static int
jk_esc_md(jk_buf_t *b, const char *s, size_t n)
{
    int       rc = 0;
    size_t    i;
    jk_buf_t  t = { NULL, 0, 0 };

    if (jk_esc_text(&t, s, n, 0) != 0) {
        jk_buf_free(&t);
        return -1;
    }

    for (i = 0; i < t.len && rc == 0; i++) {
        char  c = t.data[i];

        if (strchr("|\\*_`[]~", c) != NULL) {
            rc = jk_buf_append(b, "\\", 1) || jk_buf_append(b, &c, 1);

        } else if (c == '&') {
            rc = jk_buf_append(b, "&amp;", 5);

        } else if (c == '<') {
            rc = jk_buf_append(b, "&lt;", 4);

        } else if (c == '>') {
            rc = jk_buf_append(b, "&gt;", 4);

        } else {
            rc = jk_buf_append(b, &c, 1);
        }
    }

    jk_buf_free(&t);

    return rc ? -1 : 0;
}


int
jk_esc(jk_buf_t *b, const char *p, size_t n, int mode)
{
    switch (mode) {
    case JK_ESC_JSON:
        return jk_esc_text(b, p, n, 1);
    case JK_ESC_CSV:
        return jk_esc_csv(b, p, n);
    case JK_ESC_MD:
        return jk_esc_md(b, p, n);
    case JK_ESC_JSON_TEXT:
        return jk_esc_json_text(b, p, n);
    default:
        return jk_esc_text(b, p, n, 0);
    }
}


/* written escaped; on memory exhaustion "?" stands for the value */

void
jk_out(FILE *f, int mode, const char *p, size_t n)
{
    jk_buf_t  b = { NULL, 0, 0 };

    if (mode == JK_ESC_JSON) {
        fputc('"', f);
    }

    if (jk_esc(&b, p, n, mode) == 0) {
        if (b.len) {
            fwrite(b.data, 1, b.len, f);
        }

    } else {
        fputc('?', f);
    }

    if (mode == JK_ESC_JSON) {
        fputc('"', f);
    }

    jk_buf_free(&b);
}


void
jk_out_text(FILE *f, const char *p, size_t n)
{
    jk_out(f, JK_ESC_TEXT, p, n);
}


void
jk_out_json(FILE *f, const char *p, size_t n)
{
    jk_out(f, JK_ESC_JSON, p, n);
}


void
jk_out_csv(FILE *f, const char *p, size_t n)
{
    jk_out(f, JK_ESC_CSV, p, n);
}


void
jk_out_md(FILE *f, const char *p, size_t n)
{
    jk_out(f, JK_ESC_MD, p, n);
}


/*
 * The text form as a C string, for messages: four buffers used in turn,
 * so one message may hold up to four values; freed by jk_safe_free().
 */

static jk_buf_t  jk_safe_buf[4];
static unsigned  jk_safe_next;

const char *
jk_safe(const char *p, size_t n)
{
    jk_buf_t  *b = &jk_safe_buf[jk_safe_next++ % 4];

    b->len = 0;

    if (jk_esc(b, p, n, JK_ESC_TEXT) != 0
        || jk_buf_append(b, "", 1) != 0)
    {
        return "?";
    }

    return b->data;
}


/*
 * Whether a word given on the command line looks like a command, option
 * or format name (1 to max bytes of a-z and '-'): only such a word is
 * echoed in a message, since anything else might be a resident code or a
 * password given in the wrong place.
 */

int
jk_name_like(const char *p, size_t n, size_t max)
{
    size_t  i;

    if (n == 0 || n > max) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == '-')) {
            return 0;
        }
    }

    return 1;
}


void
jk_safe_free(void)
{
    int  i;

    for (i = 0; i < 4; i++) {
        jk_buf_free(&jk_safe_buf[i]);
    }
}


int
jk_out_finish(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        jk_err("cannot write output: %s", strerror(errno));
        return JK_ERR;
    }

    return JK_OK;
}


/* names */

int
jk_valid_agency(const char *s, char *lower, size_t size)
{
    size_t  i, n = strlen(s);

    if (n == 0 || n > JK_AGENCY_MAX || n >= size) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        unsigned char  c = (unsigned char) tolower((unsigned char) s[i]);

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || (i > 0 && (c == '.' || c == '_' || c == '-'))))
        {
            return -1;
        }

        lower[i] = (char) c;
    }

    lower[n] = '\0';

    return 0;
}


/* 1-64 of A-Za-z0-9._-, and its lower-case form (the stop key's) */

int
jk_valid_operator(const char *s, char *lower, size_t size)
{
    size_t  i, n = strlen(s);

    if (n == 0 || n > JK_OPERATOR_MAX || n >= size) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        unsigned char  c = (unsigned char) s[i];

        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char) (c - 'A' + 'a');

        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                     || c == '.' || c == '_' || c == '-'))
        {
            return -1;
        }

        lower[i] = (char) c;
    }

    lower[n] = '\0';

    return 0;
}


/* hash table: chained, FNV-1a, doubles when the load passes 1 */

static uint64_t
jk_hash(const char *p, size_t n)
{
    uint64_t  h = 14695981039346656037ULL;

    while (n--) {
        h ^= (unsigned char) *p++;
        h *= 1099511628211ULL;
    }

    return h;
}


int
jk_ht_init(jk_ht_t *ht, size_t hint)
{
    size_t  n = 16;

    while (n < hint) {
        n *= 2;
    }

    ht->bucket = calloc(n, sizeof(jk_hent_t *));
    if (ht->bucket == NULL) {
        jk_err("out of memory");
        return -1;
    }

    ht->nbuckets = n;
    ht->count = 0;

    return 0;
}


jk_hent_t *
jk_ht_find(jk_ht_t *ht, const char *key, size_t len)
{
    uint64_t    h = jk_hash(key, len);
    jk_hent_t  *e;

    for (e = ht->bucket[h & (ht->nbuckets - 1)]; e; e = e->next) {
        if (e->hash == h && e->klen == len && memcmp(e->key, key, len) == 0)
        {
            return e;
        }
    }

    return NULL;
}


static void
jk_ht_grow(jk_ht_t *ht)
{
    size_t       i, n = ht->nbuckets * 2;
    jk_hent_t  **b, *e, *next;

    b = calloc(n, sizeof(jk_hent_t *));
    if (b == NULL) {
        return;     /* keep the longer chains, still correct */
    }

    for (i = 0; i < ht->nbuckets; i++) {
        for (e = ht->bucket[i]; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }

    free(ht->bucket);
    ht->bucket = b;
    ht->nbuckets = n;
}


/* find or insert (with n = 0, ptr = NULL) */

jk_hent_t *
jk_ht_get(jk_ht_t *ht, const char *key, size_t len)
{
    jk_hent_t  *e;

    e = jk_ht_find(ht, key, len);
    if (e) {
        return e;
    }

    if (len > SIZE_MAX - sizeof(jk_hent_t) - 1) {
        jk_err("out of memory");
        return NULL;
    }

    e = malloc(sizeof(jk_hent_t) + len + 1);
    if (e == NULL) {
        jk_err("out of memory");
        return NULL;
    }

    e->hash = jk_hash(key, len);
    e->n = 0;
    e->ptr = NULL;
    e->klen = len;
    memcpy(e->key, key, len);
    e->key[len] = '\0';

    if (ht->count >= ht->nbuckets) {
        jk_ht_grow(ht);
    }

    e->next = ht->bucket[e->hash & (ht->nbuckets - 1)];
    ht->bucket[e->hash & (ht->nbuckets - 1)] = e;
    ht->count++;

    return e;
}


/* unlinks and frees an entry (not its ptr) */

void
jk_ht_del(jk_ht_t *ht, jk_hent_t *e)
{
    jk_hent_t  **pp;

    for (pp = &ht->bucket[e->hash & (ht->nbuckets - 1)]; *pp;
         pp = &(*pp)->next)
    {
        if (*pp == e) {
            *pp = e->next;
            ht->count--;
            free(e);
            return;
        }
    }
}


static int
jk_hent_cmp(const void *a, const void *b)
{
    const jk_hent_t  *x = *(const jk_hent_t * const *) a;
    const jk_hent_t  *y = *(const jk_hent_t * const *) b;
    size_t            n = x->klen < y->klen ? x->klen : y->klen;
    int               r;

    r = memcmp(x->key, y->key, n);
    if (r) {
        return r;
    }

    return (x->klen > y->klen) - (x->klen < y->klen);
}


/* all entries, sorted by key bytes; the caller frees the array */

jk_hent_t **
jk_ht_sorted(jk_ht_t *ht)
{
    size_t       i, k = 0;
    jk_hent_t  **all, *e;

    all = malloc((ht->count + 1) * sizeof(jk_hent_t *));
    if (all == NULL) {
        jk_err("out of memory");
        return NULL;
    }

    for (i = 0; i < ht->nbuckets; i++) {
        for (e = ht->bucket[i]; e; e = e->next) {
            all[k++] = e;
        }
    }

    qsort(all, k, sizeof(jk_hent_t *), jk_hent_cmp);
    all[k] = NULL;

    return all;
}


void
jk_ht_free(jk_ht_t *ht, void (*free_ptr)(void *))
{
    size_t      i;
    jk_hent_t  *e, *next;

    if (ht->bucket == NULL) {
        return;
    }

    for (i = 0; i < ht->nbuckets; i++) {
        for (e = ht->bucket[i]; e; e = next) {
            next = e->next;
            if (free_ptr && e->ptr) {
                free_ptr(e->ptr);
            }
            free(e);
        }
    }

    free(ht->bucket);
    ht->bucket = NULL;
    ht->nbuckets = 0;
    ht->count = 0;
}
