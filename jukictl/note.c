/*
 * jukictl: the public side of the archive (docs/audit.md, "Public hash
 * chain" and "Checkpoints"): the per-writer and per-list SHA-256 chains,
 * Ed25519 keys, and C2SP signed notes.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jk.h"


/* the U+2014 em dash and a space that open a signature line */
#define JK_NOTE_DASH     "\xe2\x80\x94 "
#define JK_NOTE_DASH_LEN 4


/* h = SHA-256(tag || prev || part1 || part2) */

static int
jk_sha256_chain(const char *tag, const unsigned char prev[32],
    const void *p1, size_t n1, const void *p2, size_t n2,
    unsigned char out[32])
{
    int          ok;
    unsigned     len = 0;
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        jk_err("out of memory");
        return -1;
    }

    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)
         && EVP_DigestUpdate(ctx, tag, strlen(tag))
         && EVP_DigestUpdate(ctx, prev, 32)
         && (n1 == 0 || EVP_DigestUpdate(ctx, p1, n1))
         && (n2 == 0 || EVP_DigestUpdate(ctx, p2, n2))
         && EVP_DigestFinal_ex(ctx, out, &len)
         && len == 32;

    EVP_MD_CTX_free(ctx);

    if (!ok) {
        jk_err("SHA-256 failed");
        return -1;
    }

    return 0;
}


/*
 * writer chain: h_s = SHA-256("juki-pub-v1" || h_{s-1} || str(agency) ||
 * element), h_{-1} = 32 zero bytes; the element whole (an A record's
 * decision byte included).
 */

int
jk_pub_hash(const unsigned char prev[32], const char *agency, size_t alen,
    const unsigned char *el, size_t len, unsigned char out[32])
{
    unsigned char  a[10 + JK_AGENCY_MAX];
    size_t         n;
    jk_buf_t       b = { (char *) a, 0, sizeof(a) };

    if (alen > JK_AGENCY_MAX || jk_a3_put_str(&b, agency, alen) != 0) {
        return -1;
    }

    n = b.len;

    return jk_sha256_chain("juki-pub-v1", prev, a, n, el, len, out);
}


/* list chain: L_i = SHA-256("juki-list-v1" || L_{i-1} || element) */

int
jk_list_hash(const unsigned char prev[32], const unsigned char *el,
    size_t len, unsigned char out[32])
{
    return jk_sha256_chain("juki-list-v1", prev, el, len, NULL, 0, out);
}


/* base64 (standard, padded); out holds 4 * ((n + 2) / 3) + 1 */

void
jk_b64(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *) out, in, (int) n);
}


/* exactly n bytes from base64 text of len chars; 0 or -1 */

int
jk_unb64(const char *in, size_t len, unsigned char *out, size_t n)
{
    int             k;
    size_t          pad = 0;
    unsigned char  *tmp;

    if (len == 0 || len % 4 != 0 || len > 4096) {
        return -1;
    }

    if (in[len - 1] == '=') {
        pad++;
        if (in[len - 2] == '=') {
            pad++;
        }
    }

    if (len / 4 * 3 - pad != n) {
        return -1;
    }

    tmp = malloc(len / 4 * 3 + 1);
    if (tmp == NULL) {
        return -1;
    }

    k = EVP_DecodeBlock(tmp, (const unsigned char *) in, (int) len);
    if (k < 0 || (size_t) k != len / 4 * 3) {
        free(tmp);
        return -1;
    }

    memcpy(out, tmp, n);
    free(tmp);

    return 0;
}


/* Ed25519 keys: PKCS#8 PEM (private), SPKI PEM (public) */

static EVP_PKEY *
jk_pem_load(const char *what, const char *path, int private)
{
    FILE      *f;
    EVP_PKEY  *pk;

    f = fopen(path, "r");
    if (f == NULL) {
        jk_err("cannot open %s \"%s\"", what, jk_safe(path, strlen(path)));
        return NULL;
    }

    pk = private ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
                 : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);

    if (pk == NULL) {
        jk_err("%s \"%s\": not a %s PEM key", what,
               jk_safe(path, strlen(path)),
               private ? "PKCS#8 private" : "SPKI public");
        return NULL;
    }

    if (EVP_PKEY_id(pk) != EVP_PKEY_ED25519) {
        jk_err("%s \"%s\": not an Ed25519 key", what,
               jk_safe(path, strlen(path)));
        EVP_PKEY_free(pk);
        return NULL;
    }

    return pk;
}


EVP_PKEY *
jk_sign_key_load(const char *path)
{
    return jk_pem_load("signing key", path, 1);
}


EVP_PKEY *
jk_pub_key_load(const char *path)
{
    return jk_pem_load("public key", path, 0);
}


/* key ID = SHA-256(name || 0x0A || 0x01 || public key)[0..4) */

int
jk_note_keyid(EVP_PKEY *pk, const char *name, unsigned char id[4])
{
    size_t         n = 32;
    unsigned       dlen = 0;
    unsigned char  raw[32], d[32];
    EVP_MD_CTX    *ctx;
    int            ok;

    if (!EVP_PKEY_get_raw_public_key(pk, raw, &n) || n != 32) {
        jk_err("cannot read the Ed25519 public key");
        return -1;
    }

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        jk_err("out of memory");
        return -1;
    }

    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)
         && EVP_DigestUpdate(ctx, name, strlen(name))
         && EVP_DigestUpdate(ctx, "\n\x01", 2)
         && EVP_DigestUpdate(ctx, raw, 32)
         && EVP_DigestFinal_ex(ctx, d, &dlen);

    EVP_MD_CTX_free(ctx);

    if (!ok) {
        jk_err("SHA-256 failed");
        return -1;
    }

    memcpy(id, d, 4);

    return 0;
}


/*
 * A key name as C2SP allows it: not empty, no space, no '+', printable
 * ASCII here.
 */

int
jk_note_name_ok(const char *name)
{
    const char  *p;

    if (name[0] == '\0' || strlen(name) > 128) {
        return 0;
    }

    for (p = name; *p; p++) {
        if (*p <= ' ' || *p > '~' || *p == '+') {
            return 0;
        }
    }

    return 1;
}


/*
 * out = body, a blank line, "— NAME base64(keyid || signature)\n".  The
 * body is non-empty text ending in "\n" with no blank line.
 */

int
jk_note_sign(EVP_PKEY *sk, const char *name, const char *body, size_t len,
    jk_buf_t *out)
{
    int            ok;
    char           b64[128];
    size_t         i, slen = 64;
    unsigned char  sig[4 + 64];
    EVP_MD_CTX    *ctx;

    for (i = 0; i + 1 < len; i++) {
        if (body[i] == '\n' && body[i + 1] == '\n') {
            len = 0;
        }
    }

    if (len == 0 || body[len - 1] != '\n') {
        jk_err("internal error: a checkpoint body that is no note text");
        return -1;
    }

    if (jk_note_keyid(sk, name, sig) != 0) {
        return -1;
    }

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        jk_err("out of memory");
        return -1;
    }

    ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, sk)
         && EVP_DigestSign(ctx, sig + 4, &slen,
                           (const unsigned char *) body, len)
         && slen == 64;

    EVP_MD_CTX_free(ctx);

    if (!ok) {
        jk_err("Ed25519 signing failed");
        return -1;
    }

    jk_b64(sig, sizeof(sig), b64);

    out->len = 0;

    if (jk_buf_append(out, body, len) != 0
        || jk_buf_append(out, "\n" JK_NOTE_DASH, 1 + JK_NOTE_DASH_LEN) != 0
        || jk_buf_append(out, name, strlen(name)) != 0
        || jk_buf_append(out, " ", 1) != 0
        || jk_buf_append(out, b64, strlen(b64)) != 0
        || jk_buf_append(out, "\n", 1) != 0)
    {
        return -1;
    }

    return 0;
}


/*
 * Opens a signed note: NULL when a signature line of NAME with the key
 * ID of pk verifies over the body (whose length goes to *body_len), else
 * what is wrong.  Lines of other names are ignored, as C2SP says; a line
 * of NAME with pk's key ID that does not verify rejects the note.
 */

const char *
jk_note_open(EVP_PKEY *pk, const char *name, const char *note, size_t len,
    size_t *body_len)
{
    int            ok, found = 0;
    size_t         i, blen, nlen, llen;
    const char    *p, *end, *nl, *sp;
    unsigned char  id[4], sig[4 + 64];
    EVP_MD_CTX    *ctx;

    if (len > 1024 * 1024 || memchr(note, '\0', len) != NULL) {
        return "not a note (size or NUL byte)";
    }

    /* the last blank line separates the signatures */
    p = NULL;
    for (i = 0; i + 1 < len; i++) {
        if (note[i] == '\n' && note[i + 1] == '\n') {
            p = note + i;
        }
    }

    if (p == NULL) {
        return "not a signed note (no blank line before signatures)";
    }

    blen = (size_t) (p - note) + 1;
    end = note + len;
    p += 2;

    if (p == end || end[-1] != '\n') {
        return "not a signed note (no signature line)";
    }

    if (jk_note_keyid(pk, name, id) != 0) {
        return "cannot compute the key ID";
    }

    nlen = strlen(name);

    for ( /* void */ ; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t) (end - p));
        llen = (size_t) (nl - p);

        if (llen < JK_NOTE_DASH_LEN + 3
            || memcmp(p, JK_NOTE_DASH, JK_NOTE_DASH_LEN) != 0)
        {
            return "a malformed signature line";
        }

        sp = memchr(p + JK_NOTE_DASH_LEN, ' ', llen - JK_NOTE_DASH_LEN);
        if (sp == NULL) {
            return "a malformed signature line";
        }

        if ((size_t) (sp - p - JK_NOTE_DASH_LEN) != nlen
            || memcmp(p + JK_NOTE_DASH_LEN, name, nlen) != 0)
        {
            continue;
        }

        if (jk_unb64(sp + 1, (size_t) (nl - sp - 1), sig, sizeof(sig))
            != 0)
        {
            continue;                   /* not an Ed25519 signature */
        }

        if (memcmp(sig, id, 4) != 0) {
            continue;                   /* another key of that name */
        }

        ctx = EVP_MD_CTX_new();
        if (ctx == NULL) {
            return "out of memory";
        }

        ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk)
             && EVP_DigestVerify(ctx, sig + 4, 64,
                                 (const unsigned char *) note, blen) == 1;

        EVP_MD_CTX_free(ctx);

        if (!ok) {
            return "bad signature";
        }

        found = 1;
        break;
    }

    if (!found) {
        return "no signature by the key given";
    }

    *body_len = blen;

    return NULL;
}
