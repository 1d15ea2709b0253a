/*
 * jukictl: the archive in PostgreSQL (docs/audit.md, "Archive"): the
 * connection and the schema, which `jukictl archive` creates itself,
 * idempotently, in one transaction.
 */

#include <stdlib.h>
#include <string.h>

#include "jk.h"


/* pg_advisory_lock keys: schema creation, the one archiver */
#define JK_PG_LOCK_SCHEMA  "7437011201"


static const char  jk_pg_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS juki_records ("
    " list text NOT NULL,"
    " idx bigint NOT NULL,"
    " ts timestamptz NOT NULL,"
    " writer bytea NOT NULL,"
    " seq bigint NOT NULL,"
    " type \"char\" NOT NULL,"
    " pseudonym bytea,"
    " purpose bytea,"
    " decision smallint,"
    " raw bytea NOT NULL,"
    " PRIMARY KEY (list, idx, ts)"
    ") PARTITION BY RANGE (ts);"
    "CREATE INDEX IF NOT EXISTS juki_records_pseudonym_ts"
    " ON juki_records (pseudonym, ts) WHERE pseudonym IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS juki_records_writer_seq"
    " ON juki_records (writer, seq);"
    "CREATE TABLE IF NOT EXISTS juki_cursor ("
    " list text PRIMARY KEY,"
    " next_idx bigint NOT NULL,"
    " hash bytea NOT NULL);"
    "CREATE TABLE IF NOT EXISTS juki_heads ("
    " writer bytea PRIMARY KEY,"
    " kid bytea NOT NULL,"
    " seq bigint NOT NULL,"
    " mac16 bytea NOT NULL,"
    " hash bytea NOT NULL);"
    "CREATE TABLE IF NOT EXISTS juki_counts ("
    " year integer NOT NULL,"
    " agency text NOT NULL,"
    " purpose bytea NOT NULL,"
    " decision smallint NOT NULL,"
    " n bigint NOT NULL,"
    " PRIMARY KEY (year, agency, purpose, decision));"
    "CREATE TABLE IF NOT EXISTS juki_pending ("
    " writer bytea NOT NULL,"
    " seq bigint NOT NULL,"
    " list text NOT NULL,"
    " idx bigint NOT NULL,"
    " decision smallint NOT NULL,"
    " PRIMARY KEY (writer, seq));"
    "CREATE TABLE IF NOT EXISTS juki_checkpoints ("
    " id bigserial PRIMARY KEY,"
    " made timestamptz NOT NULL,"
    " note text NOT NULL);";


const char *
jk_origin(const jk_opts_t *o)
{
    return o->origin ? o->origin : JK_ORIGIN_DEFAULT;
}


/* 0 when res is a success (its status checked), else -1, said */

int
jk_pg_ok(PGresult *res, const char *what)
{
    const char  *m;
    ExecStatusType  st;

    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
        || st == PGRES_COPY_IN)
    {
        return 0;
    }

    m = res ? PQresultErrorMessage(res) : "no result";
    if (m == NULL || m[0] == '\0') {
        m = "error";
    }

    jk_err("PostgreSQL: %s: %s", what, jk_safe(m, strcspn(m, "\n")));

    return -1;
}


int
jk_pg_exec(PGconn *pg, const char *sql)
{
    int        rc;
    PGresult  *res;

    res = PQexec(pg, sql);
    rc = jk_pg_ok(res, strncmp(sql, "CREATE", 6) == 0 ? "schema" : sql);
    PQclear(res);

    return rc;
}


PGconn *
jk_pg_connect(const jk_opts_t *o)
{
    const char  *dsn, *m;
    PGconn      *pg;

    dsn = o->postgres;
    if (dsn == NULL) {
        dsn = getenv("JUKI_POSTGRES");
    }

    if (dsn == NULL || dsn[0] == '\0') {
        jk_usage_err("%s needs --postgres DSN (or JUKI_POSTGRES)",
                     o->command);
        return NULL;
    }

    pg = PQconnectdb(dsn);

    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        m = pg ? PQerrorMessage(pg) : "out of memory";
        jk_err("PostgreSQL: cannot connect: %s",
               jk_safe(m, strcspn(m, "\n")));
        PQfinish(pg);
        return NULL;
    }

    /* NOTICEs ("already exists, skipping") are not for the terminal */
    if (jk_pg_exec(pg, "SET client_min_messages = warning") != 0
        || jk_pg_exec(pg, "SET TimeZone = 'UTC'") != 0
        || jk_pg_exec(pg, "SET synchronous_commit = on") != 0)
    {
        PQfinish(pg);
        return NULL;
    }

    return pg;
}


int
jk_pg_schema(PGconn *pg)
{
    if (jk_pg_exec(pg, "BEGIN") != 0) {
        return -1;
    }

    if (jk_pg_exec(pg, "SELECT pg_advisory_xact_lock(" JK_PG_LOCK_SCHEMA
                       ")") != 0
        || jk_pg_exec(pg, jk_pg_schema_sql) != 0
        || jk_pg_exec(pg, "COMMIT") != 0)
    {
        jk_pg_exec(pg, "ROLLBACK");
        return -1;
    }

    return 0;
}


/*
 * Reads of the archive by the index on (writer, seq), for the records
 * of one trail over both stores (disclose --postgres, verify's chains
 * continued from the archive).
 */

#define JK_PG_SEQ_SQL                                                    \
    "SELECT list, idx, raw FROM juki_records"                            \
    " WHERE writer = $1 AND seq = $2"


int
jk_pg_prepare_read(PGconn *pg)
{
    int        rc;
    PGresult  *res;

    res = PQprepare(pg, "jk_pg_seq", JK_PG_SEQ_SQL, 0, NULL);
    rc = jk_pg_ok(res, "prepare");
    PQclear(res);

    return rc;
}


/*
 * The one row of (writer, seq), decoded (pointing into *res, which the
 * caller clears): 0; 1 when there is none, several, or it is not what
 * its columns say; -1 on an error, said.
 */

int
jk_pg_seq(PGconn *pg, const unsigned char writer[8], uint64_t seq,
    PGresult **res, jk_a3_t *r)
{
    int          len[2], fmt[2];
    char         n[24];
    const char  *val[2];

    snprintf(n, sizeof(n), "%llu", (unsigned long long) seq);
    val[0] = (const char *) writer; len[0] = 8; fmt[0] = 1;
    val[1] = n; len[1] = 0; fmt[1] = 0;

    *res = PQexecPrepared(pg, "jk_pg_seq", 2, val, len, fmt, 1);
    if (jk_pg_ok(*res, "reading a writer's row") != 0) {
        return -1;
    }

    if (PQntuples(*res) != 1 || PQnfields(*res) != 3
        || PQgetlength(*res, 0, 1) != 8
        || jk_a3_decode((const unsigned char *) PQgetvalue(*res, 0, 2),
                        (size_t) PQgetlength(*res, 0, 2), r) != NULL
        || r->seq != seq || memcmp(r->writer, writer, 8) != 0)
    {
        return 1;
    }

    return 0;
}


/* a bigint in binary result form */

uint64_t
jk_pg_u64(const char *v)
{
    const unsigned char  *p = (const unsigned char *) v;

    return (uint64_t) p[0] << 56 | (uint64_t) p[1] << 48
           | (uint64_t) p[2] << 40 | (uint64_t) p[3] << 32
           | (uint64_t) p[4] << 24 | (uint64_t) p[5] << 16
           | (uint64_t) p[6] << 8 | (uint64_t) p[7];
}


static int
jk_hexv(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


/*
 * A bytea in text (hex) output form, "\x0a1b...", of exactly n bytes:
 * n, or -1.
 */

int
jk_pg_bytea(const char *text, size_t tlen, unsigned char *out, size_t n)
{
    int     hi, lo;
    size_t  i, len;

    if (tlen < 2 || text[0] != '\\' || text[1] != 'x' || tlen % 2) {
        return -1;
    }

    len = (tlen - 2) / 2;
    if (len != n) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        hi = jk_hexv((unsigned char) text[2 + 2 * i]);
        lo = jk_hexv((unsigned char) text[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char) (hi << 4 | lo);
    }

    return (int) len;
}
