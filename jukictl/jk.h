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
#define JK_FAIL             1       /* a check failed (verify) */
#define JK_ERR              2       /* bad usage, unreachable Redis, ... */

#define JK_MAX_KEYS         16
#define JK_KEY_MIN          32
#define JK_KEY_MAX          (1024 * 1024)

#define JK_AGENCY_MAX       64
#define JK_OPERATOR_MAX     64

#define JK_UNUSED(x)        (void) (x)


/* command line */

typedef struct {
    const char      *command;
    const char      *redis;
    const char      *password;
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

void jk_out_json(FILE *f, const char *p, size_t n);
void jk_out_csv(FILE *f, const char *p, size_t n);
void jk_out_md(FILE *f, const char *p, size_t n);
int jk_out_finish(void);

int jk_valid_agency(const char *s, char *lower, size_t size);
int jk_valid_operator(const char *s);


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
    char           **name;
    size_t           n;
} jk_streams_t;

typedef struct {
    redisContext    *c;
    const char      *key;
    uint64_t         next_ms;    /* start of the next range, inclusive */
    uint64_t         next_sq;
    uint64_t         end_ms;     /* inclusive, whole millisecond */
    unsigned         count;
    redisReply      *batch;
    size_t           pos;
    int              done;
} jk_xiter_t;

redisContext *jk_redis_connect(const jk_opts_t *o);
redisReply *jk_cmd(redisContext *c, int argc, const char **argv,
    const size_t *lens);
redisReply *jk_cmdf(redisContext *c, const char *fmt, ...);
int jk_redis_time_ms(redisContext *c, uint64_t *ms);
int jk_streams_list(redisContext *c, jk_streams_t *s);
void jk_streams_free(jk_streams_t *s);
int jk_stream_agency(const char *name, jk_str_t *agency);
void jk_xiter_init(jk_xiter_t *it, redisContext *c, const char *key,
    uint64_t from_ms, uint64_t to_ms, unsigned count);
int jk_xiter_next(jk_xiter_t *it, const redisReply **entry);
void jk_xiter_free(jk_xiter_t *it);
int jk_purposes_load(redisContext *c, jk_ht_t *ht);


/* record.c */

#define JK_REC_AUDIT        0
#define JK_REC_DONE         1
#define JK_REC_CONTROL      2
#define JK_REC_UNKNOWN      3

#define JK_REC_FIELDS_MAX   32

typedef struct {
    jk_str_t         eid;
    uint64_t         ms;
    uint64_t         sq;
    int              type;
    int              nf;
    jk_str_t         name[JK_REC_FIELDS_MAX];
    jk_str_t         val[JK_REC_FIELDS_MAX];
} jk_rec_t;

/* field positions once jk_rec_schema() has accepted a record */
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
#define JK_A_DMAC           17
#define JK_C_WRITER         4           /* completion and control */
#define JK_C_SEQ            5
#define JK_C_KID            6
#define JK_D_PREV           10          /* completion */
#define JK_D_MAC            11
#define JK_K_AGENCY         9           /* control */
#define JK_K_PREV           13
#define JK_K_MAC            14

int jk_rec_parse(const redisReply *entry, jk_rec_t *r);
const jk_str_t *jk_rec_get(const jk_rec_t *r, const char *name);
const char *jk_rec_schema(const jk_rec_t *r);
int jk_rec_mac(const jk_rec_t *r, const jk_key_t *k, jk_buf_t *scratch,
    unsigned char out[32]);
int jk_rec_dmac(const jk_rec_t *r, const jk_key_t *k, jk_buf_t *scratch,
    unsigned char out[32]);
int jk_reason_known(const char *p, size_t n);
int jk_decision_known(const jk_str_t *d);

extern const char *jk_reasons[];
extern const char *jk_control_fields[];
extern const int jk_ncontrol_fields;


/* commands */

int jk_cmd_stop(const jk_opts_t *o);
int jk_cmd_resume(const jk_opts_t *o);
int jk_cmd_status(const jk_opts_t *o);
int jk_cmd_report(const jk_opts_t *o);
int jk_cmd_disclose(const jk_opts_t *o);
int jk_cmd_verify(const jk_opts_t *o);
int jk_cmd_watch(const jk_opts_t *o);


#endif /* JK_H_INCLUDED */
