/*
 * jukictl: audit key files and HMAC (docs/audit.md, "Keys derived from
 * the audit key file").
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "jk.h"


static EVP_MAC      *jk_mac;
static EVP_MAC_CTX  *jk_mac_ctx;


int
jk_crypto_init(void)
{
    OSSL_PARAM  params[2];
    char        digest[] = "SHA256";

    jk_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (jk_mac == NULL) {
        jk_err("OpenSSL: HMAC is not available");
        return -1;
    }

    jk_mac_ctx = EVP_MAC_CTX_new(jk_mac);
    if (jk_mac_ctx == NULL) {
        jk_err("OpenSSL: cannot create an HMAC context");
        EVP_MAC_free(jk_mac);
        jk_mac = NULL;
        return -1;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 digest, 0);
    params[1] = OSSL_PARAM_construct_end();

    if (!EVP_MAC_CTX_set_params(jk_mac_ctx, params)) {
        jk_err("OpenSSL: SHA-256 is not available for HMAC");
        jk_crypto_done();
        return -1;
    }

    return 0;
}


void
jk_crypto_done(void)
{
    EVP_MAC_CTX_free(jk_mac_ctx);
    EVP_MAC_free(jk_mac);
    jk_mac_ctx = NULL;
    jk_mac = NULL;
}


/* HMAC-SHA256; the context keeps its digest, each call sets the key */

int
jk_hmac(const unsigned char *key, size_t klen, const void *msg, size_t len,
    unsigned char out[32])
{
    size_t  outl = 0;

    if (!EVP_MAC_init(jk_mac_ctx, key, klen, NULL)
        || !EVP_MAC_update(jk_mac_ctx, msg, len)
        || !EVP_MAC_final(jk_mac_ctx, out, &outl, 32)
        || outl != 32)
    {
        jk_err("OpenSSL: HMAC-SHA256 failed");
        return -1;
    }

    return 0;
}


void
jk_hex(const unsigned char *in, size_t n, char *out)
{
    static const char  digits[] = "0123456789abcdef";
    size_t             i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }

    out[2 * n] = '\0';
}


static int
jk_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* exactly 64 lower-hex characters */

int
jk_unhex32(const jk_str_t *s, unsigned char out[32])
{
    int     hi, lo;
    size_t  i;

    if (s->len != 64) {
        return -1;
    }

    for (i = 0; i < 32; i++) {
        hi = jk_hexval(s->p[2 * i]);
        lo = jk_hexval(s->p[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


int
jk_random_hex(char *out, size_t nbytes)
{
    unsigned char  raw[32];

    if (nbytes > sizeof(raw) || RAND_bytes(raw, (int) nbytes) != 1) {
        jk_err("OpenSSL: no random bytes");
        return -1;
    }

    jk_hex(raw, nbytes, out);

    return 0;
}


/* the whole file, raw; the buffer is wiped and freed by the caller */

static int
jk_key_read(const char *path, unsigned char **data, size_t *len,
    size_t *cap_out)
{
    int             fd;
    ssize_t         n;
    size_t          size = 0, cap = 4096;
    unsigned char  *buf, *p;
    struct stat     st;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        jk_err("cannot open key file \"%s\": %s", path, strerror(errno));
        return -1;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        jk_err("key file \"%s\" is not a regular file", path);
        close(fd);
        return -1;
    }

    buf = malloc(cap);
    if (buf == NULL) {
        jk_err("out of memory");
        close(fd);
        return -1;
    }

    for ( ;; ) {
        if (size == cap) {
            if (cap >= JK_KEY_MAX) {
                jk_err("key file \"%s\" is larger than %d bytes", path,
                       JK_KEY_MAX);
                goto failed;
            }

            /* grow by copying, so no key bytes are left in freed memory */
            p = malloc(cap * 2);
            if (p == NULL) {
                jk_err("out of memory");
                goto failed;
            }

            memcpy(p, buf, size);
            OPENSSL_clear_free(buf, cap);
            buf = p;
            cap *= 2;
        }

        n = read(fd, buf + size, cap - size);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            jk_err("cannot read key file \"%s\": %s", path,
                   strerror(errno));
            goto failed;
        }

        if (n == 0) {
            break;
        }

        size += (size_t) n;
    }

    close(fd);

    if (size < JK_KEY_MIN) {
        jk_err("key file \"%s\" holds %zu bytes, at least %d are required",
               path, size, JK_KEY_MIN);
        OPENSSL_clear_free(buf, cap);
        return -1;
    }

    *data = buf;
    *len = size;
    *cap_out = cap;

    return 0;

failed:

    close(fd);
    OPENSSL_clear_free(buf, cap);

    return -1;
}


static int
jk_key_derive(const unsigned char *raw, size_t len, jk_key_t *k)
{
    unsigned char  digest[32];
    char           hex[65];
    unsigned int   dlen = 0;

    if (!EVP_Digest(raw, len, digest, &dlen, EVP_sha256(), NULL)
        || dlen != 32)
    {
        jk_err("OpenSSL: SHA-256 failed");
        return -1;
    }

    jk_hex(digest, 32, hex);
    memcpy(k->kid, hex, 16);
    k->kid[16] = '\0';

    if (jk_hmac(raw, len, "juki-chain-v1", 13, k->k_mac) != 0
        || jk_hmac(raw, len, "juki-subject-v1", 15, k->k_sub) != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * Loads every --key, or JUKI_AUDIT_KEY when none was given.
 * Returns the number of keys loaded (0 when none is configured), -1 on
 * error.
 */

int
jk_keys_load(const jk_opts_t *o, jk_keyring_t *kr)
{
    int             i, j, n;
    size_t          len, cap;
    const char     *paths[JK_MAX_KEYS], *env;
    unsigned char  *raw;

    kr->n = 0;
    n = o->nkeys;

    for (i = 0; i < n; i++) {
        paths[i] = o->key_path[i];
    }

    if (n == 0) {
        env = getenv("JUKI_AUDIT_KEY");
        if (env != NULL && env[0] != '\0') {
            paths[n++] = env;
        }
    }

    for (i = 0; i < n; i++) {
        if (jk_key_read(paths[i], &raw, &len, &cap) != 0) {
            jk_keys_wipe(kr);
            return -1;
        }

        if (jk_key_derive(raw, len, &kr->key[kr->n]) != 0) {
            OPENSSL_clear_free(raw, cap);
            jk_keys_wipe(kr);
            return -1;
        }

        OPENSSL_clear_free(raw, cap);

        for (j = 0; j < kr->n; j++) {
            if (memcmp(kr->key[j].kid, kr->key[kr->n].kid, 16) == 0) {
                break;
            }
        }

        if (j == kr->n) {
            kr->n++;        /* the same key given twice counts once */
        }
    }

    return kr->n;
}


const jk_key_t *
jk_keys_find(const jk_keyring_t *kr, const jk_str_t *kid)
{
    int  i;

    if (kid->len != 16) {
        return NULL;
    }

    for (i = 0; i < kr->n; i++) {
        if (memcmp(kr->key[i].kid, kid->p, 16) == 0) {
            return &kr->key[i];
        }
    }

    return NULL;
}


void
jk_keys_wipe(jk_keyring_t *kr)
{
    OPENSSL_cleanse(kr, sizeof(jk_keyring_t));
}
