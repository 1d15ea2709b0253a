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
    " note text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS juki_retention ("
    " id bigserial PRIMARY KEY,"
    " made timestamptz NOT NULL,"
    " part text NOT NULL,"
    " note text NOT NULL,"
    " dropped timestamptz);"
    "CREATE TABLE IF NOT EXISTS juki_retained ("
    " kind \"char\" NOT NULL,"
    " name bytea NOT NULL,"
    " next bigint NOT NULL,"
    " hash bytea NOT NULL,"
    " PRIMARY KEY (kind, name));";


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
