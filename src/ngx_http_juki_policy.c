
/*
 * juki-gateway: the statutory policy, agencies and purposes, and the
 * parsers of their configuration values.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"


/* 1-64 of A-Za-z0-9._- ; agency names: lower case, not starting with ._- */

ngx_int_t
ngx_http_juki_valid_name(ngx_str_t *value, ngx_uint_t lowercase)
{
    u_char  *p, *last, c;

    if (value->len == 0 || value->len > NGX_HTTP_JUKI_NAME_MAX) {
        return NGX_ERROR;
    }

    last = value->data + value->len;

    for (p = value->data; p < last; p++) {
        c = *p;

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            continue;
        }

        if (c >= 'A' && c <= 'Z' && !lowercase) {
            continue;
        }

        if ((c == '.' || c == '_' || c == '-')
            && !(lowercase && p == value->data))
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_http_juki_agency_t *
ngx_http_juki_find_agency(ngx_http_juki_main_conf_t *jmcf,
    ngx_str_t *fingerprint, ngx_str_t *subject)
{
    ngx_http_juki_agency_t  *agency;

    if (fingerprint->len && jmcf->fingerprint_hash.size) {
        agency = ngx_hash_find(&jmcf->fingerprint_hash,
                               ngx_hash_key(fingerprint->data,
                                            fingerprint->len),
                               fingerprint->data, fingerprint->len);
        if (agency) {
            return agency;
        }
    }

    if (subject->len && jmcf->subject_hash.size) {
        return ngx_hash_find(&jmcf->subject_hash,
                             ngx_hash_key(subject->data, subject->len),
                             subject->data, subject->len);
    }

    return NULL;
}


ngx_http_juki_purpose_t *
ngx_http_juki_find_purpose(ngx_http_juki_main_conf_t *jmcf, ngx_str_t *code)
{
    ngx_uint_t                i;
    ngx_http_juki_purpose_t **purposes;

    if (jmcf->purpose_hash.size) {
        return ngx_hash_find(&jmcf->purpose_hash,
                             ngx_hash_key(code->data, code->len),
                             code->data, code->len);
    }

    /* before the hash is built, at configuration time */

    purposes = jmcf->purposes.elts;

    for (i = 0; i < jmcf->purposes.nelts; i++) {
        if (purposes[i]->code.len == code->len
            && ngx_strncmp(purposes[i]->code.data, code->data, code->len)
               == 0)
        {
            return purposes[i];
        }
    }

    return NULL;
}


ngx_uint_t
ngx_http_juki_granted(ngx_http_juki_agency_t *agency,
    ngx_http_juki_purpose_t *purpose)
{
    ngx_uint_t                 i;
    ngx_http_juki_purpose_t  **granted;

    /* an agency holds a handful of purposes: a scan is the fastest */

    granted = agency->purposes.elts;

    for (i = 0; i < agency->purposes.nelts; i++) {
        if (granted[i] == purpose) {
            return 1;
        }
    }

    return 0;
}


/*
 * The URI is NGINX's normalised $uri: percent-decoded, dot segments
 * resolved, slashes merged.  Anything a backend could still decode or
 * resolve differently is out of every scope: "%", "\", ";" (path
 * parameters, which some servers strip before resolving ".."), control
 * bytes and bytes of 0x80 and above (overlong UTF-8 dots).  A prefix
 * matches at a segment boundary only, so "/v1/residents" does not admit
 * "/v1/residents-admin".
 */

ngx_uint_t
ngx_http_juki_in_scope(ngx_http_juki_purpose_t *purpose, ngx_str_t *method,
    ngx_str_t *uri)
{
    u_char      *p, *last;
    ngx_str_t   *s;
    ngx_uint_t   i, found;

    s = purpose->methods.elts;
    found = 0;

    for (i = 0; i < purpose->methods.nelts; i++) {
        if (s[i].len == method->len
            && ngx_strncmp(s[i].data, method->data, method->len) == 0)
        {
            found = 1;
            break;
        }
    }

    if (!found || uri->len == 0 || uri->data[0] != '/') {
        return 0;
    }

    last = uri->data + uri->len;

    for (p = uri->data; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '%' || *p == '\\'
            || *p == ';')
        {
            return 0;
        }
    }

    s = purpose->uris.elts;

    for (i = 0; i < purpose->uris.nelts; i++) {
        if (uri->len < s[i].len
            || ngx_strncmp(uri->data, s[i].data, s[i].len) != 0)
        {
            continue;
        }

        if (uri->len == s[i].len || s[i].data[s[i].len - 1] == '/'
            || uri->data[s[i].len] == '/')
        {
            return 1;
        }
    }

    return 0;
}


/* "3F:A1:..." or "3fa1...": 32 bytes, colons all or none; to lower hex */

ngx_int_t
ngx_http_juki_parse_fingerprint(ngx_str_t *value, u_char *hex)
{
    u_char      c, *p, *last;
    ngx_uint_t  n, colons;

    if (value->len == NGX_HTTP_JUKI_HEX_SHA256) {
        colons = 0;

    } else if (value->len == NGX_HTTP_JUKI_HEX_SHA256 + 31) {
        colons = 1;

    } else {
        return NGX_ERROR;
    }

    last = value->data + value->len;
    n = 0;

    for (p = value->data; p < last; p++) {

        if (colons && (p - value->data) % 3 == 2) {
            if (*p != ':') {
                return NGX_ERROR;
            }

            continue;
        }

        c = *p;

        if (c >= 'A' && c <= 'F') {
            c |= 0x20;
        }

        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
            hex[n++] = c;
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * "50r/s" or "10r/m", to the GCRA emission interval in microseconds:
 * exact for any rate up to 1000000r/s, "1r/m" is 60000000
 */

ngx_int_t
ngx_http_juki_parse_rate(ngx_str_t *value, ngx_uint_t *interval)
{
    size_t     len;
    ngx_int_t  n, scale;
    u_char    *p;

    len = value->len;

    if (len < 4) {
        return NGX_ERROR;
    }

    p = value->data + len - 3;

    if (p[0] != 'r' || p[1] != '/') {
        return NGX_ERROR;
    }

    if (p[2] == 's') {
        scale = 1000000;

    } else if (p[2] == 'm') {
        scale = 60000000;

    } else {
        return NGX_ERROR;
    }

    n = ngx_atoi(value->data, len - 3);
    if (n == NGX_ERROR || n == 0 || n > 1000000) {
        return NGX_ERROR;
    }

    *interval = (ngx_uint_t) (scale / n);

    return NGX_OK;
}
