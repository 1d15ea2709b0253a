/*
 * jukictl: command line, help, dispatch.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "jk.h"


#define C_STOP      0x01
#define C_RESUME    0x02
#define C_STATUS    0x04
#define C_REPORT    0x08
#define C_DISCLOSE  0x10
#define C_VERIFY    0x20
#define C_WATCH     0x40
#define C_FUNCTION  0x80
#define C_ARCHIVE   0x100
#define C_RETENTION 0x200
#define C_ALL       0x3ff


typedef struct {
    const char      *name;
    unsigned         mask;
    int            (*handler)(const jk_opts_t *o);
    const char      *help;
} jk_command_t;


typedef struct {
    const char      *name;
    unsigned         cmds;
    size_t           offset;     /* of the const char * in jk_opts_t */
} jk_option_t;


static const char  jk_common_help[] =
    "common options:\n"
    "  --redis ADDRESS    host:port, [v6]:port or unix:/path\n"
    "                     (default 127.0.0.1:6379, env JUKI_REDIS)\n"
    "  --password-file PATH\n"
    "                     Redis password: the file's first line, else env\n"
    "                     JUKI_REDIS_PASSWORD (never on the command line)\n"
    "  --user USER        Redis ACL user (env JUKI_REDIS_USER)\n"
    "  --db N             Redis database number (env JUKI_REDIS_DB)\n"
    "  --key PATH         audit key file, >= 32 bytes; repeatable\n"
    "                     (env JUKI_AUDIT_KEY)\n"
    "  --help             this help\n";


static const jk_command_t  jk_commands[] = {

    { "stop", C_STOP, jk_cmd_stop,
      "usage: jukictl stop [--agency A [--operator O]] --reason TEXT"
      " --key PATH\n\n"
      "Sets an emergency stop switch (global, agency or operator) and"
      " writes, in\nthe same transaction, a W record in juki:{_}:audit and"
      " a K (control)\nrecord in the agency's audit list.\n" },

    { "resume", C_RESUME, jk_cmd_resume,
      "usage: jukictl resume [--agency A [--operator O]] [--reason TEXT]"
      " --key PATH\n\n"
      "Clears an emergency stop switch and writes a control record.\n" },

    { "status", C_STATUS, jk_cmd_status,
      "usage: jukictl status\n\n"
      "Shows the stop switches that are set, today's (UTC) decisions per"
      " agency\nand the health of Redis.\n" },

    { "report", C_REPORT, jk_cmd_report,
      "usage: jukictl report --from YYYY-MM-DD --to YYYY-MM-DD"
      " [--format md|csv|json]\n"
      "                      [--max-skew DURATION] --key PATH...\n\n"
      "Provisions per agency and purpose, denials per agency and reason,"
      " for the\ninclusive UTC date range (by record ts).  Every"
      " record is checked\n(mac, and the completion that confirms a"
      " decision made in Redis); exit 1\nwhen any failed or could not be"
      " checked (left out of the counts).\n" },

    { "disclose", C_DISCLOSE, jk_cmd_disclose,
      "usage: jukictl disclose [--resident-code -] [--from DATE]"
      " [--to DATE]\n"
      "                        [--format md|csv|json] [--max-skew DURATION]"
      "\n                        --key PATH...\n\n"
      "Lists every audited request about one resident: time, agency,"
      " purpose,\nstatute and decision.  Operator ids are withheld."
      "  The code is read from\nthe first line of standard input, never"
      " from the command line.  Records\nthat fail verification or cannot"
      " be checked are left out, and the exit\nstatus is 1.\n" },

    { "verify", C_VERIFY, jk_cmd_verify,
      "usage: jukictl verify [--max-skew DURATION] --key PATH...\n"
      "       jukictl verify --postgres DSN --public-key PEM"
      " [--checkpoint FILE]\n"
      "                      [--origin NAME]\n\n"
      "Decodes every A3 record of all juki:{*}:audit lists (one read cut),"
      " walks\nevery writer's chain from its W record, checks that every"
      " decision is bound\n(gdecision, or the completion of a Redis"
      " decision) and that no ts is far\nfrom Redis's clock (--max-skew,"
      " default 5s).  Exit 0 when intact, 1\nnaming the breaks.  With"
      " --public-key (no secret): checks every signed\ncheckpoint in the"
      " archive (and --checkpoint FILE, one handed out earlier)\nand that"
      " the archived rows reproduce each.\n" },

    { "archive", C_ARCHIVE, jk_cmd_archive,
      "usage: jukictl archive --postgres DSN --signing-key PEM --key PATH..."
      "\n                       [--follow] [--keep DURATION]"
      " [--checkpoint-file PATH]\n"
      "                       [--origin NAME] [--max-skew DURATION]\n\n"
      "Moves verified records from Redis into PostgreSQL (monthly"
      " partitions),\nsigns a checkpoint, then trims Redis to the hot"
      " window (--keep, default\n24h; 0 trims all that is archived)."
      "  --follow: every second until\nSIGINT/SIGTERM.  Exit 1 at a chain"
      " break (nothing past it archived).\n" },

    { "retention", C_RETENTION, jk_cmd_retention,
      "usage: jukictl retention --postgres DSN --signing-key PEM"
      " --older-than AGE\n"
      "                         [--force] [--origin NAME]\n\n"
      "Drops the archive's monthly partitions that lie wholly before now"
      " minus AGE\n(7y, 84mo, 2555d).  The archive is verified first; each"
      " month dropped gets\na signed retention record naming every list's"
      " index range and every\nwriter's seq range with its hash.  An AGE"
      " under 1y needs --force.\n" },

    { "watch", C_WATCH, jk_cmd_watch,
      "usage: jukictl watch [--count N] [--timeout SECONDS]"
      " [--format text|json]\n\n"
      "Subscribes to juki:alerts and prints every alert as it arrives."
      "  Exit 0\nafter N alerts, after SECONDS in total, or on SIGINT or"
      " SIGTERM.\n" },

    { "function", C_FUNCTION, jk_cmd_function,
      "usage: jukictl function load|status\n\n"
      "load: loads the gateway's Redis Function library juki_ID (ID: the"
      " first 12\nhex digits of the SHA-256 of its text) with FUNCTION LOAD,"
      " without REPLACE;\na library already loaded is success.  status:"
      " exit 0 when it is loaded,\n1 when not.  Needs a Redis user allowed"
      " FUNCTION LOAD (not the gateway's).\n" },

    { NULL, 0, NULL, NULL }
};


#define JK_OPT(field)  offsetof(jk_opts_t, field)

static const jk_option_t  jk_options[] = {
    { "redis", C_ALL, JK_OPT(redis) },
    { "password", C_ALL, JK_OPT(password_arg) },
    { "password-file", C_ALL, JK_OPT(password_file) },
    { "user", C_ALL, JK_OPT(user) },
    { "db", C_ALL, JK_OPT(db) },
    { "key", C_ALL, 0 },
    { "agency", C_STOP | C_RESUME, JK_OPT(agency) },
    { "operator", C_STOP | C_RESUME, JK_OPT(op) },
    { "reason", C_STOP | C_RESUME, JK_OPT(reason) },
    { "from", C_REPORT | C_DISCLOSE | C_VERIFY, JK_OPT(from) },
    { "to", C_REPORT | C_DISCLOSE | C_VERIFY, JK_OPT(to) },
    { "format", C_REPORT | C_DISCLOSE | C_WATCH, JK_OPT(format) },
    { "resident-code", C_DISCLOSE, JK_OPT(resident_code) },
    { "max-skew", C_REPORT | C_DISCLOSE | C_VERIFY | C_ARCHIVE,
      JK_OPT(max_skew) },
    { "postgres", C_VERIFY | C_ARCHIVE | C_RETENTION, JK_OPT(postgres) },
    { "signing-key", C_ARCHIVE | C_RETENTION, JK_OPT(signing_key) },
    { "older-than", C_RETENTION, JK_OPT(older_than) },
    { "public-key", C_VERIFY, JK_OPT(public_key) },
    { "keep", C_ARCHIVE, JK_OPT(keep) },
    { "checkpoint-file", C_ARCHIVE, JK_OPT(checkpoint_file) },
    { "checkpoint", C_VERIFY, JK_OPT(checkpoint) },
    { "origin", C_VERIFY | C_ARCHIVE | C_RETENTION, JK_OPT(origin) },
    { "count", C_WATCH, JK_OPT(count) },
    { "timeout", C_WATCH, JK_OPT(timeout) },
    { NULL, 0, 0 }
};


static void
jk_help(const jk_command_t *cmd)
{
    int  i;

    if (cmd) {
        fputs(cmd->help, stdout);
        fputc('\n', stdout);
        fputs(jk_common_help, stdout);
        return;
    }

    fputs("usage: jukictl COMMAND [OPTIONS]\n\n"
          "juki-gateway control: emergency stop, status, publication"
          " report,\ndisclosure to residents, audit chain verification,"
          " alerts.\n\ncommands:\n", stdout);

    for (i = 0; jk_commands[i].name; i++) {
        const char  *h = strchr(jk_commands[i].help, ':') + 2;

        printf("  %.*s\n", (int) strcspn(h, "\n"), h);
    }

    fputs("\n", stdout);
    fputs(jk_common_help, stdout);
    fputs("\nExit status: 0 success, 1 verification failed, 2 bad usage"
          " or error.\nSee jukictl COMMAND --help and docs/jukictl.md.\n",
          stdout);
}


/*
 * The first line of PATH (CR LF or LF stripped), at most JK_SECRET_MAX
 * bytes, not empty.  The caller wipes the buffer.
 */

static int
jk_password_read(const char *path, char *buf, size_t size)
{
    int          fd;
    char        *nl;
    ssize_t      n;
    size_t       len = 0;
    struct stat  st;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        jk_err("cannot open password file \"%s\": %s",
               jk_safe(path, strlen(path)), strerror(errno));
        return -1;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        jk_err("password file \"%s\" is not a regular file",
               jk_safe(path, strlen(path)));
        close(fd);
        return -1;
    }

    while (len < size - 1) {
        n = read(fd, buf + len, size - 1 - len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            jk_err("cannot read password file \"%s\": %s",
                   jk_safe(path, strlen(path)), strerror(errno));
            close(fd);
            return -1;
        }

        if (n == 0) {
            break;
        }

        len += (size_t) n;
    }

    close(fd);
    buf[len] = '\0';

    nl = memchr(buf, '\n', len);
    if (nl) {
        *nl = '\0';
        len = (size_t) (nl - buf);

    } else if (len > size - 2) {
        jk_err("password file \"%s\": the first line is longer than %d"
               " bytes", jk_safe(path, strlen(path)), JK_SECRET_MAX);
        return -1;
    }

    if (len && buf[len - 1] == '\r') {
        buf[--len] = '\0';
    }

    if (len == 0 || memchr(buf, '\0', len) != NULL) {
        jk_err("password file \"%s\": the first line is empty or holds"
               " a NUL byte", jk_safe(path, strlen(path)));
        return -1;
    }

    return 0;
}


/*
 * An unknown "-x" or "--name[=value]": the name (without its dashes and
 * value) is echoed only when it looks like an option name; anything else
 * might be a resident code or a password.
 */

static int
jk_unknown_option(const char *arg)
{
    const char  *name = arg + (arg[1] == '-' ? 2 : 1);
    size_t       n = strcspn(name, "=");

    if (!jk_name_like(name, n, JK_OPTION_MAX)) {
        return jk_usage_err("unknown option");
    }

    return jk_usage_err("unknown option \"%.*s\"",
                        (int) (name - arg + n), arg);
}


int
main(int argc, char **argv)
{
    int                  i, rc;
    char                *arg, *eq;
    size_t               nlen;
    const char          *val, **slot, *env;
    jk_opts_t            o;
    const jk_option_t   *opt;
    const jk_command_t  *cmd = NULL;
    const char          *seen[sizeof(jk_options) / sizeof(jk_options[0])];
    static char          password[JK_SECRET_MAX + 2];

    memset(&o, 0, sizeof(o));
    memset(seen, 0, sizeof(seen));

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            o.help = 1;
            continue;
        }

        if (strcmp(arg, "--follow") == 0) {
            o.follow = 1;
            continue;
        }

        if (strcmp(arg, "--force") == 0) {
            o.force = 1;
            continue;
        }

        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (arg[0] == '-' && arg[1] != '\0') {
                return jk_unknown_option(arg);
            }

            if (cmd && cmd->mask == C_FUNCTION && o.sub == NULL) {
                o.sub = arg;
                continue;
            }

            /* not echoed: it might be a resident code or a password */
            if (cmd) {
                return jk_usage_err("unexpected argument at position %d",
                                    i);
            }

            for (cmd = jk_commands; cmd->name; cmd++) {
                if (strcmp(cmd->name, arg) == 0) {
                    break;
                }
            }

            if (cmd->name == NULL) {
                /* echoed only when it looks like a command name */
                if (!jk_name_like(arg, strlen(arg), JK_NAME_MAX)) {
                    return jk_usage_err("unknown command");
                }
                return jk_usage_err("unknown command \"%s\"", arg);
            }

            continue;
        }

        eq = strchr(arg + 2, '=');
        nlen = eq ? (size_t) (eq - arg - 2) : strlen(arg + 2);

        for (opt = jk_options; opt->name; opt++) {
            if (strlen(opt->name) == nlen
                && strncmp(opt->name, arg + 2, nlen) == 0)
            {
                break;
            }
        }

        if (opt->name == NULL) {
            return jk_unknown_option(arg);
        }

        if (eq) {
            val = eq + 1;

        } else if (i + 1 < argc) {
            val = argv[++i];

        } else {
            return jk_usage_err("option --%s needs a value", opt->name);
        }

        if (strcmp(opt->name, "key") == 0) {
            if (o.nkeys == JK_MAX_KEYS) {
                return jk_usage_err("at most %d --key options", JK_MAX_KEYS);
            }
            o.key_path[o.nkeys++] = val;
            continue;
        }

        if (seen[opt - jk_options]) {
            return jk_usage_err("option --%s given twice", opt->name);
        }

        seen[opt - jk_options] = val;
        slot = (const char **) ((char *) &o + opt->offset);
        *slot = val;
    }

    if (o.help) {
        jk_help(cmd && cmd->name ? cmd : NULL);
        return jk_out_finish();
    }

    if (cmd == NULL) {
        return jk_usage_err("no command given");
    }

    if (o.follow && cmd->mask != C_ARCHIVE) {
        return jk_usage_err("%s does not take --follow", cmd->name);
    }

    if (o.force && cmd->mask != C_RETENTION) {
        return jk_usage_err("%s does not take --force", cmd->name);
    }

    for (opt = jk_options; opt->name; opt++) {
        if (seen[opt - jk_options] && !(opt->cmds & cmd->mask)) {
            return jk_usage_err("%s does not take --%s", cmd->name,
                                opt->name);
        }
    }

    if (o.password_arg) {
        return jk_usage_err("--password on the command line shows in the"
                            " process list; set JUKI_REDIS_PASSWORD or give"
                            " --password-file PATH");
    }

    if (o.password_file) {
        if (jk_password_read(o.password_file, password, sizeof(password))
            != 0)
        {
            OPENSSL_cleanse(password, sizeof(password));
            return JK_ERR;
        }
        o.password = password;

    } else {
        env = getenv("JUKI_REDIS_PASSWORD");
        o.password = (env && env[0]) ? env : NULL;
    }

    if (o.user == NULL) {
        env = getenv("JUKI_REDIS_USER");
        o.user = (env && env[0]) ? env : NULL;
    }

    if (o.db == NULL) {
        env = getenv("JUKI_REDIS_DB");
        o.db = (env && env[0]) ? env : NULL;
    }

    if (o.db) {
        uint64_t  db;

        if (jk_parse_u64(o.db, strlen(o.db), &db) != 0 || db > 1000000) {
            OPENSSL_cleanse(password, sizeof(password));
            /* not echoed: it might be a resident code */
            return jk_usage_err("bad database number (0 to 1000000)");
        }
    }

    if (o.user && o.password == NULL) {
        OPENSSL_cleanse(password, sizeof(password));
        return jk_usage_err("--user needs a password (JUKI_REDIS_PASSWORD"
                            " or --password-file)");
    }

    o.command = cmd->name;

    if (jk_crypto_init() != 0) {
        return JK_ERR;
    }

    rc = cmd->handler(&o);

    if (rc == JK_OK) {
        rc = jk_out_finish();
    } else {
        fflush(stdout);
    }

    jk_crypto_done();
    jk_safe_free();
    OPENSSL_cleanse(password, sizeof(password));

    return rc;
}
