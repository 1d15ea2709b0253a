/*
 * jukictl: command-line tool for juki-gateway.
 *
 * Shared declarations.  The byte-exact data contract this tool reads
 * and writes is docs/audit.md (A3 records and keys).
 */

#ifndef JK_H_INCLUDED
#define JK_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <openssl/evp.h>


/* exit status */
#define JK_OK               0
#define JK_FAIL             1       /* a record failed a check, or was
                                       left out */
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
    const char      *postgres;      /* --postgres DSN, env JUKI_POSTGRES */
    const char      *signing_key;
    const char      *public_key;
    const char      *keep;
    const char      *checkpoint_file;   /* archive: written */
    const char      *checkpoint;        /* verify: handed out earlier */
    const char      *origin;
    const char      *older_than;        /* retention */
    int              follow;
    int              force;             /* retention: an age under 1y */
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
int jk_buf_fmt(jk_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void jk_buf_free(jk_buf_t *b);

int jk_str_eq(const jk_str_t *s, const char *lit);
int jk_parse_u64(const char *p, size_t n, uint64_t *out);

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
int jk_name_like(const char *p, size_t n, size_t max);

#define JK_NAME_MAX         16      /* a command or format name echoed */
#define JK_OPTION_MAX       24      /* an option name echoed */
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

typedef int (*jk_scan_pt)(void *arg, const char *key, size_t len);

redisContext *jk_redis_connect(const jk_opts_t *o);
redisReply *jk_cmd(redisContext *c, int argc, const char **argv,
    const size_t *lens);
redisReply *jk_cmdf(redisContext *c, const char *fmt, ...);
int jk_redis_time_ms(redisContext *c, uint64_t *ms);
int jk_scan(redisContext *c, const char *match, const char *type,
    jk_scan_pt handler, void *arg);
int jk_purposes_load(redisContext *c, jk_ht_t *ht);


/* record.c */

int jk_skew_opt(const jk_opts_t *o, uint64_t *skew);


/* problems met by report and disclose: counted, the first few named */

typedef struct {
    const char      *cmd;
    uint64_t         n;             /* records left out: failed a check */
    uint64_t         uncheckable;   /* records left out: not checkable */
    uint64_t         breaks;
} jk_problems_t;

struct jk_verify_s;

void jk_problems_set(jk_problems_t *p, const struct jk_verify_s *v);

int jk_problems_end(jk_problems_t *p);
void jk_problems_md(const jk_problems_t *p, const char *verb);


/* a3.c: A3 records (docs/audit.md) */

typedef struct {
    const unsigned char *p;             /* the element */
    size_t               len;
    int                  type;          /* 'W' 'A' 'C' 'S' 'K' */
    unsigned char        writer[8];
    uint64_t             seq;
    uint64_t             ts;
    unsigned char        kid[8];        /* W */
    jk_str_t             node;
    int                  role;
    int                  kind;          /* A */
    jk_str_t             cert;
    jk_str_t             subject;
    jk_str_t             op;            /* A, K */
    jk_str_t             purpose;
    jk_str_t             method;
    jk_str_t             uri;
    int                  gdecision;
    int                  decision;      /* A (appended byte), C */
    unsigned char        awriter[8];    /* C */
    uint64_t             aseq;
    uint64_t             status;
    uint64_t             bytes;
    uint64_t             upstream;
    int                  cause;         /* S */
    uint64_t             second;
    uint64_t             recorded;
    uint64_t             suppressed;
    int                  action;        /* K */
    int                  scope;
    jk_str_t             reason;
    jk_str_t             actor;
    size_t               body_len;      /* type byte .. before mac16 */
    const unsigned char *mac;
} jk_a3_t;

typedef struct {
    char                *name;
    const char          *agency;        /* inside name */
    size_t               alen;
    uint64_t             trimmed;
    uint64_t             llen;
    redisReply         **reply;
    size_t               nreply;
    redisReply         **el;            /* llen elements */
    uint64_t             skip;          /* el[0 .. skip) not read */
} jk_a3_list_t;

typedef struct {
    jk_a3_list_t        *list;
    size_t               n;
    size_t               cap;
    uint64_t             now_ms;        /* Redis TIME at the cut */
    uint64_t             none_trimmed;  /* juki:{_}:trimmed: W records
                                           may have been archived */
} jk_a3_set_t;

const char *jk_a3_decode(const unsigned char *p, size_t len, jk_a3_t *r);
int jk_a3_code_ok(unsigned v);
const char *jk_a3_code_name(unsigned v);
int jk_a3_put_varint(jk_buf_t *b, uint64_t v);
int jk_a3_put_str(jk_buf_t *b, const void *p, size_t n);
int jk_a3_put_u48(jk_buf_t *b, uint64_t v);
int jk_a3_chain_cmp(const jk_a3_t *x, size_t xlist, uint64_t xpos,
    const jk_a3_t *y, size_t ylist, uint64_t ypos);
int jk_a3_mac(const jk_key_t *k, const char *agency, size_t alen,
    const unsigned char prev16[16], const unsigned char *body, size_t blen,
    jk_buf_t *scratch, unsigned char out[16]);
int jk_a3_place(const jk_a3_t *r, int none, char *msg, size_t size);
int jk_a3_read(redisContext *c, jk_a3_set_t *s);
int jk_a3_read_from(redisContext *c, jk_a3_set_t *s,
    uint64_t (*skip)(void *arg, const jk_a3_list_t *l), void *arg);
void jk_a3_set_free(jk_a3_set_t *s);


/* cmd_verify.c: every record read and checked */

typedef struct jk_vrec_s  jk_vrec_t;

struct jk_vrec_s {
    jk_a3_t          r;
    size_t           list;
    uint64_t         idx;           /* logical index: trimmed + i */
    size_t           pos;           /* i, in the list as read */
    unsigned         nconf;         /* C records naming this A */
    jk_vrec_t       *conf;          /* A: its confirming C */
    unsigned         bad:1;         /* failed a check or not checkable:
                                       left out */
    unsigned         uncheckable:1; /* bad only for want of its W */
};


typedef struct jk_verify_s {
    const char         *cmd;
    jk_a3_set_t         set;
    jk_keyring_t        kr;
    uint64_t            skew;
    uint64_t            breaks;
    jk_buf_t            scratch;
    jk_vrec_t          *recs;
    size_t              nrec;
    size_t              nw;
    uint64_t            cnt[128];
    uint64_t            unconfirmed;
    uint64_t            uncheckable;    /* records marked uncheckable */
    uint64_t            failed;         /* records bad, not uncheckable */
    jk_ht_t             as;
    redisContext       *c;
} jk_verify_t;

int jk_verify_run(const jk_opts_t *o, jk_verify_t *v);
void jk_verify_free(jk_verify_t *v);


/* note.c: public hash chains, Ed25519, C2SP signed notes */

#define JK_ORIGIN_DEFAULT  "juki-archive"

int jk_pub_hash(const unsigned char prev[32], const char *agency,
    size_t alen, const unsigned char *el, size_t len, unsigned char out[32]);
int jk_list_hash(const unsigned char prev[32], const unsigned char *el,
    size_t len, unsigned char out[32]);
void jk_b64(const unsigned char *in, size_t n, char *out);
int jk_unb64(const char *in, size_t len, unsigned char *out, size_t n);
EVP_PKEY *jk_sign_key_load(const char *path);
EVP_PKEY *jk_pub_key_load(const char *path);
int jk_note_keyid(EVP_PKEY *pk, const char *name, unsigned char id[4]);
int jk_note_name_ok(const char *name);
int jk_note_sign(EVP_PKEY *sk, const char *name, const char *body,
    size_t len, jk_buf_t *out);
const char *jk_note_open(EVP_PKEY *pk, const char *name, const char *note,
    size_t len, size_t *body_len);


/* pg.c: the archive in PostgreSQL (docs/audit.md, "Archive") */

/* session advisory lock: one archiver or retention at a time */
#define JK_PG_LOCK_ARCHIVE  "7437011202"

PGconn *jk_pg_connect(const jk_opts_t *o);
int jk_pg_ok(PGresult *res, const char *what);
int jk_pg_exec(PGconn *pg, const char *sql);
int jk_pg_schema(PGconn *pg);
int jk_pg_bytea(const char *text, size_t tlen, unsigned char *out,
    size_t n);
const char *jk_origin(const jk_opts_t *o);


/* commands */

int jk_cmd_stop(const jk_opts_t *o);
int jk_cmd_resume(const jk_opts_t *o);
int jk_cmd_status(const jk_opts_t *o);
int jk_cmd_report(const jk_opts_t *o);
int jk_cmd_disclose(const jk_opts_t *o);
int jk_cmd_verify(const jk_opts_t *o);
int jk_cmd_watch(const jk_opts_t *o);
int jk_cmd_function(const jk_opts_t *o);
int jk_cmd_archive(const jk_opts_t *o);
int jk_cmd_retention(const jk_opts_t *o);
int jk_verify_public(const jk_opts_t *o);
int jk_verify_archive(const jk_opts_t *o, EVP_PKEY *pk, int use_redis,
    int quiet);
int jk_function_id(char id[13]);


#endif /* JK_H_INCLUDED */
