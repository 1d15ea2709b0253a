/*
 * jukictl: command-line tool for juki-gateway.
 *
 * Shared declarations.  The byte-exact data contract this tool reads
 * and writes is docs/audit.md.
 */

#ifndef JK_H_INCLUDED
#define JK_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <hiredis/hiredis.h>


/* exit status */
#define JK_OK               0
#define JK_FAIL             1       /* a record or a stream failed a check */
#define JK_ERR              2       /* bad usage, unreachable or misbehaving
                                       Redis, ... */

#define JK_MAX_KEYS         16
#define JK_KEY_MIN          32
#define JK_KEY_MAX          (1024 * 1024)

#define JK_AGENCY_MAX       64
#define JK_OPERATOR_MAX     64
#define JK_SECRET_MAX       1024    /* a password, a resident code */

#define JK_SKEW_DEFAULT     5000    /* ms, --max-skew */
#define JK_SKEW_MAX         86400000

/*
 * How far past the end of a date window report and disclose read on for
 * the completion records that confirm decisions Redis made (ms).
 */
#define JK_CONFIRM_LOOKAHEAD  3600000

#define JK_UNUSED(x)        (void) (x)


/* command line */

typedef struct {
    const char      *command;
    const char      *sub;           /* function load|status */
    const char      *redis;
    const char      *password;      /* from the environment or a file */
    const char      *password_arg;  /* --password: refused, shows in ps */
    const char      *password_file;
    const char      *user;
    const char      *db;
    const char      *key_path[JK_MAX_KEYS];
    int              nkeys;
    const char      *agency;
    const char      *op;
    const char      *reason;
    const char      *from;
    const char      *to;
    const char      *format;
    const char      *resident_code;
    const char      *max_skew;
    const char      *count;
    const char      *timeout;
    int              help;
} jk_opts_t;


/* util.c */

typedef struct {
    const char      *p;
    size_t           len;
} jk_str_t;

typedef struct {
    char            *data;
    size_t           len;
    size_t           cap;
} jk_buf_t;

void jk_err(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
int jk_usage_err(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

int jk_buf_reserve(jk_buf_t *b, size_t n);
int jk_buf_append(jk_buf_t *b, const void *p, size_t n);
int jk_buf_ns(jk_buf_t *b, const void *p, size_t n);
void jk_buf_free(jk_buf_t *b);

int jk_str_eq(const jk_str_t *s, const char *lit);
int jk_parse_u64(const char *p, size_t n, uint64_t *out);
int jk_parse_eid(const char *p, size_t n, uint64_t *ms, uint64_t *sq);

int jk_parse_date(const char *s, int64_t *days);
int jk_window(const jk_opts_t *o, int required, uint64_t *from_ms,
    uint64_t *to_ms, int *windowed);
void jk_fmt_iso(uint64_t ms, char *out, size_t size);
void jk_fmt_day(int64_t days, char *out, size_t size);
uint64_t jk_now_ms(void);

int jk_parse_duration(const char *s, uint64_t *ms);

/*
 * Output escaping, the one place for it: every byte that came from Redis
 * goes through jk_esc() before it reaches a terminal or a file.
 */
#define JK_ESC_TEXT         0       /* \xNN, \uXXXX, backslash doubled */
#define JK_ESC_JSON         1       /* inside a JSON string */
#define JK_ESC_CSV          2       /* one RFC 4180 field */
#define JK_ESC_MD           3       /* one Markdown table cell */
#define JK_ESC_JSON_TEXT    4       /* JSON text already escaped */

int jk_esc(jk_buf_t *b, const char *p, size_t n, int mode);
void jk_out(FILE *f, int mode, const char *p, size_t n);
void jk_out_text(FILE *f, const char *p, size_t n);
void jk_out_json(FILE *f, const char *p, size_t n);
void jk_out_csv(FILE *f, const char *p, size_t n);
void jk_out_md(FILE *f, const char *p, size_t n);
const char *jk_safe(const char *p, size_t n);
void jk_safe_free(void);
int jk_out_finish(void);

int jk_valid_agency(const char *s, char *lower, size_t size);
int jk_valid_operator(const char *s, char *lower, size_t size);


/* hash table with binary-safe keys */

typedef struct jk_hent_s  jk_hent_t;

struct jk_hent_s {
    jk_hent_t       *next;
    uint64_t         hash;
    uint64_t         n;          /* a counter, for callers that count */
    void            *ptr;        /* a value, owned by the caller */
    size_t           klen;
    char             key[];
};

typedef struct {
    jk_hent_t      **bucket;
    size_t           nbuckets;
    size_t           count;
} jk_ht_t;

int jk_ht_init(jk_ht_t *ht, size_t hint);
jk_hent_t *jk_ht_find(jk_ht_t *ht, const char *key, size_t len);
jk_hent_t *jk_ht_get(jk_ht_t *ht, const char *key, size_t len);
void jk_ht_del(jk_ht_t *ht, jk_hent_t *e);
jk_hent_t **jk_ht_sorted(jk_ht_t *ht);
void jk_ht_free(jk_ht_t *ht, void (*free_ptr)(void *));


/* key.c */

typedef struct {
    char             kid[17];
    unsigned char    k_mac[32];
    unsigned char    k_sub[32];
} jk_key_t;

typedef struct {
    jk_key_t         key[JK_MAX_KEYS];
    int              n;
} jk_keyring_t;

int jk_crypto_init(void);
void jk_crypto_done(void);
int jk_keys_load(const jk_opts_t *o, jk_keyring_t *kr);
const jk_key_t *jk_keys_find(const jk_keyring_t *kr, const jk_str_t *kid);
void jk_keys_wipe(jk_keyring_t *kr);
int jk_hmac(const unsigned char *key, size_t klen, const void *msg,
    size_t len, unsigned char out[32]);
void jk_hex(const unsigned char *in, size_t n, char *out);
int jk_unhex32(const jk_str_t *s, unsigned char out[32]);
int jk_random_hex(char *out, size_t nbytes);


/* redis.c */

typedef struct {
    char            *name;
    uint64_t         last_ms;    /* XINFO STREAM last-generated-id */
    uint64_t         last_sq;
    uint64_t         del_ms;     /* max-deleted-entry-id (Redis 7) */
    uint64_t         del_sq;
} jk_stream_t;

typedef struct {
    jk_stream_t     *s;
    size_t           n;
    uint64_t         now_ms;     /* Redis TIME, with the last ids */
} jk_streams_t;

typedef struct {
    redisContext    *c;
    const char      *key;
    uint64_t         next_ms;    /* start of the next range, inclusive */
    uint64_t         next_sq;
    uint64_t         end_ms;     /* inclusive */
    uint64_t         end_sq;
    uint64_t         last_ms;    /* the last entry returned */
    uint64_t         last_sq;
    unsigned         count;
    unsigned         started:1;
    unsigned         done:1;
    redisReply      *batch;
    size_t           pos;
} jk_xiter_t;

typedef int (*jk_scan_pt)(void *arg, const char *key, size_t len);

redisContext *jk_redis_connect(const jk_opts_t *o);
redisReply *jk_cmd(redisContext *c, int argc, const char **argv,
    const size_t *lens);
redisReply *jk_cmdf(redisContext *c, const char *fmt, ...);
int jk_redis_time_ms(redisContext *c, uint64_t *ms);
int jk_scan(redisContext *c, const char *match, const char *type,
    jk_scan_pt handler, void *arg);
int jk_streams_list(redisContext *c, jk_streams_t *s);
int jk_streams_snapshot(redisContext *c, jk_streams_t *s);
void jk_streams_free(jk_streams_t *s);
int jk_stream_agency(const char *name, jk_str_t *agency);
void jk_xiter_init(jk_xiter_t *it, redisContext *c, const char *key,
    uint64_t from_ms, uint64_t to_ms, unsigned count);
void jk_xiter_end(jk_xiter_t *it, uint64_t ms, uint64_t sq);
int jk_xiter_next(jk_xiter_t *it, const redisReply **entry);
void jk_xiter_free(jk_xiter_t *it);
int jk_purposes_load(redisContext *c, jk_ht_t *ht);


/* record.c */

#define JK_REC_AUDIT        0           /* A2 */
#define JK_REC_DONE         1           /* C2 */
#define JK_REC_SUMMARY      2           /* S1 */
#define JK_REC_CONTROL      3           /* K1 */
#define JK_REC_UNKNOWN      4
#define JK_REC_TYPES        4

#define JK_REC_FIELDS_MAX   32

/* who made a decision */
#define JK_DEC_UNKNOWN      0
#define JK_DEC_GATEWAY      1           /* bound by the audit record's mac */
#define JK_DEC_REDIS        2           /* confirmed by a completion only */

typedef struct {
    jk_str_t         eid;
    uint64_t         ms;
    uint64_t         sq;
    int              type;
    int              nf;
    jk_str_t         name[JK_REC_FIELDS_MAX];
    jk_str_t         val[JK_REC_FIELDS_MAX];

    /* set by jk_rec_check() */
    const jk_str_t  *writer;            /* NULL until known */
    const jk_str_t  *seqs;
    uint64_t         seq;
    uint64_t         ts;
    int              f_prev;
    int              f_mac;
    int              dec;               /* JK_DEC_*, audit and completion */
    const jk_key_t  *key;
} jk_rec_t;

/* field positions once the field list has been accepted */
#define JK_F_ID             0
#define JK_A_TS             1
#define JK_A_WRITER         3
#define JK_A_SEQ            4
#define JK_A_KID            5
#define JK_A_AGENCY         6
#define JK_A_PURPOSE        10
#define JK_A_SUBJECT        11
#define JK_A_DECISION       14
#define JK_A_PREV           15
#define JK_A_MAC            16
#define JK_P_TS             2           /* the records with a phase */
#define JK_P_WRITER         4
#define JK_P_SEQ            5
#define JK_P_KID            6
#define JK_D_DECISION       7           /* completion */
#define JK_D_PREV           11
#define JK_D_MAC            12
#define JK_S_CAUSE          7           /* summary */
#define JK_S_SECOND         8
#define JK_S_RECORDED       9
#define JK_S_SUPPRESSED     10
#define JK_S_PREV           11
#define JK_S_MAC            12
#define JK_K_AGENCY         9           /* control */
#define JK_K_PREV           13
#define JK_K_MAC            14

typedef struct {
    const jk_keyring_t  *kr;
    jk_buf_t             scratch;
    uint64_t             now_ms;        /* Redis TIME */
    uint64_t             skew;
    char                 detail[192];
} jk_checker_t;

int jk_rec_parse(const redisReply *entry, jk_rec_t *r);
const jk_str_t *jk_rec_get(const jk_rec_t *r, const char *name);
const char *jk_rec_check(jk_checker_t *ck, jk_rec_t *r,
    const char *stream);
const char *jk_stream_check(jk_checker_t *ck, const jk_stream_t *st);
void jk_rec_say(const char *cmd, const char *stream, uint64_t ms,
    uint64_t sq, const jk_str_t *writer, const jk_str_t *seq,
    const char *what);
int jk_rec_mac(const jk_rec_t *r, const jk_key_t *k, jk_buf_t *scratch,
    unsigned char out[32]);
int jk_reason_known(const char *p, size_t n);
int jk_decision_kind(const jk_str_t *d);
int jk_audit_id(const jk_str_t *id, uint64_t *seq);
int jk_skew_opt(const jk_opts_t *o, uint64_t *skew);

extern const char *jk_reasons[];
extern const char *jk_control_fields[];
extern const int jk_ncontrol_fields;


/* problems met by report and disclose: counted, the first few named */

typedef struct {
    const char      *cmd;
    uint64_t         n;
} jk_problems_t;

void jk_problem(jk_problems_t *p, const char *stream, const jk_rec_t *r,
    const char *what);
void jk_problem_stream(jk_problems_t *p, const jk_stream_t *st,
    const char *what);
int jk_problems_end(jk_problems_t *p);


/* commands */

int jk_cmd_stop(const jk_opts_t *o);
int jk_cmd_resume(const jk_opts_t *o);
int jk_cmd_status(const jk_opts_t *o);
int jk_cmd_report(const jk_opts_t *o);
int jk_cmd_disclose(const jk_opts_t *o);
int jk_cmd_verify(const jk_opts_t *o);
int jk_cmd_watch(const jk_opts_t *o);
int jk_cmd_function(const jk_opts_t *o);
int jk_function_id(char id[13]);


#endif /* JK_H_INCLUDED */
