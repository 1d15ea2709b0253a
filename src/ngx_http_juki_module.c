
/*
 * juki-gateway: directives, configuration and module set-up.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_juki_module.h"
#include "ngx_http_juki_crypto.h"


static void *ngx_http_juki_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_juki_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_juki_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_juki_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_juki_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_juki(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_juki_subject(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_juki_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_juki_audit_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_juki_purpose_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_juki_purpose_directive(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);
static char *ngx_http_juki_agency_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_juki_agency_directive(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);
static char *ngx_http_juki_rate(ngx_conf_t *cf, ngx_http_juki_rate_t *rate);
static char *ngx_http_juki_anomaly(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_juki_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_hash_keys_arrays_t *ngx_http_juki_keys(ngx_conf_t *cf);
static ngx_int_t ngx_http_juki_build_hash(ngx_conf_t *cf, ngx_hash_t *hash,
    ngx_hash_keys_arrays_t *keys, char *name, size_t max_len);
static ngx_int_t ngx_http_juki_key_string(ngx_conf_t *cf, ngx_str_t *dst,
    ngx_str_t *agency, char *suffix);
static ngx_int_t ngx_http_juki_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_juki_init_process(ngx_cycle_t *cycle);
static void ngx_http_juki_exit_process(ngx_cycle_t *cycle);


static char *ngx_http_juki_check_node(ngx_conf_t *cf, void *post, void *data);

static ngx_conf_post_t  ngx_http_juki_node_post = {
    ngx_http_juki_check_node
};

static ngx_conf_num_bounds_t  ngx_http_juki_budget_bounds = {
    ngx_conf_check_num_bounds, 0, 1000000
};


static ngx_conf_enum_t  ngx_http_juki_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_str_t  ngx_http_juki_kinds[] = {
    ngx_null_string,
    ngx_string("national"),
    ngx_string("prefecture"),
    ngx_string("municipality"),
    ngx_string("designated"),
    ngx_string("private"),
    ngx_null_string
};


static ngx_command_t  ngx_http_juki_commands[] = {

    { ngx_string("juki"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_juki,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_juki_loc_conf_t, enable),
      NULL },

    { ngx_string("juki_subject"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_juki_subject,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_juki_loc_conf_t, subject),
      NULL },

    { ngx_string("juki_deny_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_juki_loc_conf_t, deny_log_level),
      &ngx_http_juki_log_levels },

    { ngx_string("juki_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_juki_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("juki_redis_tls"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_juki_redis_tls,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("juki_audit_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_juki_audit_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("juki_node"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_juki_main_conf_t, node),
      &ngx_http_juki_node_post },

    { ngx_string("juki_purpose"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_juki_purpose_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("juki_agency"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_juki_agency_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("juki_refusal_budget"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_juki_main_conf_t, refusal_budget),
      &ngx_http_juki_budget_bounds },

    { ngx_string("juki_anomaly"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_juki_anomaly,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("juki_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_juki_status,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_juki_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_juki_init,                    /* postconfiguration */

    ngx_http_juki_create_main_conf,        /* create main configuration */
    ngx_http_juki_init_main_conf,          /* init main configuration */

    ngx_http_juki_create_srv_conf,         /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_juki_create_loc_conf,         /* create location configuration */
    ngx_http_juki_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_juki_module = {
    NGX_MODULE_V1,
    &ngx_http_juki_module_ctx,             /* module context */
    ngx_http_juki_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_juki_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_juki_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_juki_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_juki_main_conf_t  *jmcf;

    jmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_juki_main_conf_t));
    if (jmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     jmcf->redis = NULL;
     *     jmcf->key_file = { 0, NULL };
     *     jmcf->node = { 0, NULL };
     *     the hash key arrays = NULL;
     */

    jmcf->refusal_budget = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&jmcf->purposes, cf->pool, 8,
                       sizeof(ngx_http_juki_purpose_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&jmcf->agencies, cf->pool, 8,
                       sizeof(ngx_http_juki_agency_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&jmcf->anomalies, cf->pool, 2,
                       sizeof(ngx_http_juki_anomaly_t))
        != NGX_OK)
    {
        return NULL;
    }

    return jmcf;
}


static char *
ngx_http_juki_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_juki_main_conf_t *jmcf = conf;

    ngx_str_t                 *name;
    ngx_uint_t                 i, j;
    ngx_http_juki_agency_t   **agencies, *agency;
    ngx_http_juki_purpose_t   *purpose, **pp;

    if (jmcf->node.data == NULL) {
        jmcf->node = cf->cycle->hostname;
    }

    if (ngx_http_juki_valid_name(&jmcf->node, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "the host name \"%V\" is no valid \"juki_node\": "
                      "set one of 1-64 of A-Za-z0-9._-", &jmcf->node);
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(jmcf->refusal_budget, 10);

    agencies = jmcf->agencies.elts;

    for (i = 0; i < jmcf->agencies.nelts; i++) {
        agency = agencies[i];

        if (ngx_array_init(&agency->purposes, cf->pool,
                           agency->purpose_names.nelts + 1,
                           sizeof(ngx_http_juki_purpose_t *))
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        name = agency->purpose_names.elts;

        for (j = 0; j < agency->purpose_names.nelts; j++) {
            purpose = ngx_http_juki_find_purpose(jmcf, &name[j]);

            if (purpose == NULL) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "agency \"%V\" names unknown purpose \"%V\" "
                              "in %s:%ui", &agency->name, &name[j],
                              agency->purposes_file, agency->purposes_line);
                return NGX_CONF_ERROR;
            }

            if (agency->kind == NGX_HTTP_JUKI_KIND_PRIVATE
                && purpose->resident_code)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "private agency \"%V\" cannot be granted "
                              "purpose \"%V\" with \"resident_code allowed\" "
                              "in %s:%ui", &agency->name, &name[j],
                              agency->purposes_file, agency->purposes_line);
                return NGX_CONF_ERROR;
            }

            if (ngx_http_juki_granted(agency, purpose)) {
                continue;
            }

            pp = ngx_array_push(&agency->purposes);
            if (pp == NULL) {
                return NGX_CONF_ERROR;
            }

            *pp = purpose;
        }
    }

    if (ngx_http_juki_build_hash(cf, &jmcf->purpose_hash, jmcf->purpose_keys,
                                 "juki_purpose", NGX_HTTP_JUKI_NAME_MAX)
        != NGX_OK
        || ngx_http_juki_build_hash(cf, &jmcf->fingerprint_hash,
                                    jmcf->fingerprint_keys,
                                    "juki_agency certificate_sha256",
                                    NGX_HTTP_JUKI_HEX_SHA256)
           != NGX_OK
        || ngx_http_juki_build_hash(cf, &jmcf->subject_hash,
                                    jmcf->subject_keys, "juki_agency subject",
                                    jmcf->subject_max)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (jmcf->redis && ngx_http_juki_stats_add_zone(cf, jmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_juki_batch_conf(cf, jmcf) != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "juki: cannot prepare the redis function call");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_juki_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_juki_srv_conf_t  *jscf;

    jscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_juki_srv_conf_t));
    if (jscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     jscf->juki = 0;    set when a location is merged with "juki on"
     */

    return jscf;
}


static void *
ngx_http_juki_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_juki_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_juki_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->subject_arg = { 0, NULL };
     *     conf->subject_header = { 0, NULL };
     *     conf->file = NULL;
     *     conf->line = 0;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->subject = NGX_CONF_UNSET_PTR;
    conf->deny_log_level = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_juki_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_juki_loc_conf_t *prev = parent;
    ngx_http_juki_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_juki_srv_conf_t   *jscf;
    ngx_http_juki_main_conf_t  *jmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    /* the names the ambiguity checks need go with the value they come from */

    if (conf->subject == NGX_CONF_UNSET_PTR) {
        conf->subject_arg = prev->subject_arg;
        conf->subject_header = prev->subject_header;
    }

    ngx_conf_merge_ptr_value(conf->subject, prev->subject, NULL);
    ngx_conf_merge_uint_value(conf->deny_log_level, prev->deny_log_level,
                              NGX_LOG_WARN);

    if (conf->file == NULL) {
        conf->file = prev->file;
        conf->line = prev->line;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    jmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_juki_module);

    if (jmcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"juki on\" requires \"juki_redis\" in %s:%ui",
                      conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (jmcf->key_file.data == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"juki on\" requires \"juki_audit_key\" in %s:%ui",
                      conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    /*
     * the core module is merged before this one, so its "satisfy" is final;
     * with "satisfy any" another access module could let a request pass
     * that this module denied
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->satisfy == NGX_HTTP_SATISFY_ANY) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"juki on\" cannot be used with \"satisfy any\" "
                      "in %s:%ui", conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    /* "post_action" sends the request to a backend again, unrecorded */

    if (clcf->post_action.data) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"juki on\" cannot be used with \"post_action\" "
                      "in %s:%ui", conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    /*
     * the server's: NGINX's own certificate refusals there are recorded
     * (the locations are merged with their server's configuration)
     */

    jscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_juki_module);
    jscf->juki = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_juki(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_juki_loc_conf_t *jlcf = conf;

    char  *rv;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* remembered for the checks made when the configuration is merged */

    jlcf->file = cf->conf_file->file.name.data;
    jlcf->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/*
 * A value that is one variable, $arg_NAME or $http_NAME (braces allowed),
 * tells where the resident code comes from: the ambiguity checks then
 * know which query parameter, or which header, must come exactly once.
 */

static char *
ngx_http_juki_subject(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_juki_loc_conf_t *jlcf = conf;

    char        *rv;
    u_char      *p;
    ngx_str_t   *value, v;
    ngx_uint_t   i;

    rv = ngx_http_set_complex_value_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;
    v = value[1];

    if (v.len > 3 && v.data[0] == '$' && v.data[1] == '{'
        && v.data[v.len - 1] == '}')
    {
        v.data += 2;
        v.len -= 3;

    } else if (v.len > 1 && v.data[0] == '$') {
        v.data++;
        v.len--;

    } else {
        return NGX_CONF_OK;
    }

    for (i = 0; i < v.len; i++) {
        if (!((v.data[i] >= 'a' && v.data[i] <= 'z')
              || (v.data[i] >= 'A' && v.data[i] <= 'Z')
              || (v.data[i] >= '0' && v.data[i] <= '9')
              || v.data[i] == '_'))
        {
            return NGX_CONF_OK;
        }
    }

    if (v.len > sizeof("arg_") - 1
        && ngx_strncmp(v.data, "arg_", sizeof("arg_") - 1) == 0)
    {
        jlcf->subject_arg.data = v.data + sizeof("arg_") - 1;
        jlcf->subject_arg.len = v.len - (sizeof("arg_") - 1);

    } else if (v.len > sizeof("http_") - 1
               && ngx_strncmp(v.data, "http_", sizeof("http_") - 1) == 0)
    {
        v.data += sizeof("http_") - 1;
        v.len -= sizeof("http_") - 1;

        p = ngx_pnalloc(cf->pool, v.len);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < v.len; i++) {
            p[i] = (v.data[i] == '_') ? '-' : ngx_tolower(v.data[i]);
        }

        jlcf->subject_header.data = p;
        jlcf->subject_header.len = v.len;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_juki_check_node(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *node = data;

    if (ngx_http_juki_valid_name(node, 0) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"juki_node\" \"%V\": use 1-64 of "
                           "A-Za-z0-9._-", node);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_juki_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_juki_main_conf_t *jmcf = conf;

    u_char                      *p;
    ngx_int_t                    n;
    ngx_str_t                   *value, s;
    ngx_url_t                    u;
    ngx_uint_t                   i;
    ngx_http_juki_redis_conf_t  *rcf;

    if (jmcf->redis) {
        return "is duplicate";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_juki_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    /*
     * the replicated set-ups of SPEC section 2 are not spoken yet: refused
     * by name, not taken for a host called "sentinel=..."
     */

    if (ngx_strncmp(value[1].data, "sentinel=", 9) == 0
        || ngx_strncmp(value[1].data, "cluster=", 8) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"juki_redis\" \"%V\": Redis Sentinel and "
                           "Cluster are not supported yet, give one "
                           "address", &value[1]);
        return NGX_CONF_ERROR;
    }

    rcf->address = value[1];
    rcf->timeout = 50;
    rcf->connections = 1;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"juki_redis\" \"%V\"", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no address found for \"juki_redis\" \"%V\"",
                           &u.url);
        return NGX_CONF_ERROR;
    }

    /* resolved here, once: a worker must never wait on DNS */

    rcf->addr = u.addrs[0];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.len = value[i].len - 8;
            s.data = value[i].data + 8;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            rcf->timeout = (ngx_msec_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.len = value[i].len - 9;
            rcf->password.data = value[i].data + 9;

            if (rcf->password.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            rcf->user.len = value[i].len - 5;
            rcf->user.data = value[i].data + 5;

            if (rcf->user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR || n > 65535) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "connections=", 12) == 0) {
            n = ngx_atoi(value[i].data + 12, value[i].len - 12);
            if (n == NGX_ERROR || n == 0 || n > 64) {
                goto invalid;
            }

            rcf->connections = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "replicas=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n == NGX_ERROR || n > 16) {
                goto invalid;
            }

            rcf->replicas = n;
            continue;
        }

        goto invalid;
    }

    if (rcf->user.len && rcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"user=\" in \"juki_redis\" requires "
                           "\"password=\"");
        return NGX_CONF_ERROR;
    }

    jmcf->redis = rcf;

    return NGX_CONF_OK;

invalid:

    p = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%*s\" in \"juki_redis\"",
                       p ? (size_t) (p - value[i].data + 1) : value[i].len,
                       value[i].data);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_juki_audit_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_juki_main_conf_t *jmcf = conf;

    char             *rv;
    u_char            key[NGX_HTTP_JUKI_MAX_KEY + 1];
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t        *value;
    ngx_file_info_t   fi;

    if (jmcf->key_file.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    jmcf->key_file = value[1];

    if (ngx_conf_full_name(cf->cycle, &jmcf->key_file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(jmcf->key_file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN,
                       0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open audit key \"%V\"", &jmcf->key_file);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot stat audit key \"%V\"", &jmcf->key_file);
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audit key \"%V\" is not a regular file",
                           &jmcf->key_file);
        goto done;
    }

    if (ngx_file_access(&fi) & 077) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audit key \"%V\" must not be accessible by "
                           "group or others (chmod 600)", &jmcf->key_file);
        goto done;
    }

    n = ngx_read_fd(fd, key, sizeof(key));
    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read audit key \"%V\"", &jmcf->key_file);
        goto done;
    }

    if (n < NGX_HTTP_JUKI_MIN_KEY || n > NGX_HTTP_JUKI_MAX_KEY) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "audit key \"%V\" has %z bytes, it must have "
                           "%d to %d", &jmcf->key_file, n,
                           NGX_HTTP_JUKI_MIN_KEY, NGX_HTTP_JUKI_MAX_KEY);
        goto done;
    }

    if (ngx_http_juki_derive_keys(key, (size_t) n, jmcf->mac_key,
                                  jmcf->subject_key, jmcf->kid)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot derive keys from audit key \"%V\"",
                           &jmcf->key_file);
        goto done;
    }

    rv = NGX_CONF_OK;

done:

    ngx_explicit_memzero(key, sizeof(key));

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &jmcf->key_file);
    }

    return rv;
}


static char *
ngx_http_juki_purpose_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_juki_main_conf_t *jmcf = conf;

    char                      *rv;
    ngx_int_t                  rc;
    ngx_str_t                 *value;
    ngx_conf_t                 save;
    ngx_http_juki_purpose_t   *purpose, **pp;

    value = cf->args->elts;

    /*
     * a purpose code names a field of the limiter hash juki:{A}:rl, where
     * "_" is the agency-wide limit: a code starts with a letter or digit
     */

    if (ngx_http_juki_valid_name(&value[1], 0) != NGX_OK
        || ngx_strchr("._-", value[1].data[0]) != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid purpose code \"%V\": use 1-64 of "
                           "A-Za-z0-9._- starting with a letter or digit",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    purpose = ngx_pcalloc(cf->pool, sizeof(ngx_http_juki_purpose_t));
    if (purpose == NULL) {
        return NGX_CONF_ERROR;
    }

    purpose->code = value[1];
    purpose->resident_code = NGX_CONF_UNSET;
    purpose->file = cf->conf_file->file.name.data;
    purpose->line = cf->conf_file->line;

    if (ngx_array_init(&purpose->methods, cf->pool, 2, sizeof(ngx_str_t))
        != NGX_OK
        || ngx_array_init(&purpose->uris, cf->pool, 2, sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (jmcf->purpose_keys == NULL) {
        jmcf->purpose_keys = ngx_http_juki_keys(cf);
        if (jmcf->purpose_keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rc = ngx_hash_add_key(jmcf->purpose_keys, &purpose->code, purpose,
                          NGX_HASH_READONLY_KEY);

    if (rc == NGX_BUSY) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate juki_purpose \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (rc != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    pp = ngx_array_push(&jmcf->purposes);
    if (pp == NULL) {
        return NGX_CONF_ERROR;
    }

    *pp = purpose;

    save = *cf;
    cf->handler = ngx_http_juki_purpose_directive;
    cf->handler_conf = (void *) purpose;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (purpose->methods.nelts == 0 || purpose->uris.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "juki_purpose \"%V\" needs \"methods\" and \"uri\"",
                           &purpose->code);
        return NGX_CONF_ERROR;
    }

    if (purpose->statute.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "juki_purpose \"%V\" needs \"statute\"",
                           &purpose->code);
        return NGX_CONF_ERROR;
    }

    /* fail closed: a purpose says so when it may carry a resident code */

    if (purpose->resident_code == NGX_CONF_UNSET) {
        purpose->resident_code = 0;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_juki_purpose_directive(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf)
{
    ngx_http_juki_purpose_t  *purpose = cf->handler_conf;

    u_char      *c;
    ngx_str_t   *value, *s;
    ngx_uint_t   i, nargs;

    value = cf->args->elts;
    nargs = cf->args->nelts;

    if (ngx_strcmp(value[0].data, "include") == 0) {
        if (nargs != 2) {
            goto args;
        }

        return ngx_conf_include(cf, dummy, conf);
    }

    if (value[0].len == 7 && ngx_strcmp(value[0].data, "statute") == 0) {
        if (nargs != 2 || value[1].len == 0) {
            goto args;
        }

        if (purpose->statute.len) {
            goto duplicate;
        }

        purpose->statute = value[1];
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[0].data, "methods") == 0) {
        if (nargs < 2) {
            goto args;
        }

        for (i = 1; i < nargs; i++) {
            for (c = value[i].data; c < value[i].data + value[i].len; c++) {
                if ((*c < 'A' || *c > 'Z') && *c != '_') {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid method \"%V\" in purpose "
                                       "\"%V\"", &value[i], &purpose->code);
                    return NGX_CONF_ERROR;
                }
            }

            s = ngx_array_push(&purpose->methods);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }

            *s = value[i];
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[0].data, "uri") == 0) {
        if (nargs < 2) {
            goto args;
        }

        for (i = 1; i < nargs; i++) {
            if (value[i].len == 0 || value[i].data[0] != '/') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid uri prefix \"%V\" in purpose "
                                   "\"%V\": it must start with \"/\"",
                                   &value[i], &purpose->code);
                return NGX_CONF_ERROR;
            }

            s = ngx_array_push(&purpose->uris);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }

            *s = value[i];
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[0].data, "resident_code") == 0) {
        if (nargs != 2) {
            goto args;
        }

        if (purpose->resident_code != NGX_CONF_UNSET) {
            goto duplicate;
        }

        if (ngx_strcmp(value[1].data, "allowed") == 0) {
            purpose->resident_code = 1;

        } else if (ngx_strcmp(value[1].data, "forbidden") == 0) {
            purpose->resident_code = 0;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"resident_code\", "
                               "it must be \"allowed\" or \"forbidden\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[0].data, "rate") == 0) {
        if (purpose->rate.interval_us) {
            goto duplicate;
        }

        return ngx_http_juki_rate(cf, &purpose->rate);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in juki_purpose", &value[0]);
    return NGX_CONF_ERROR;

args:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of arguments in \"%V\" in "
                       "juki_purpose \"%V\"", &value[0], &purpose->code);
    return NGX_CONF_ERROR;

duplicate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is duplicate in juki_purpose \"%V\"",
                       &value[0], &purpose->code);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_juki_agency_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_juki_main_conf_t *jmcf = conf;

    char                     *rv;
    ngx_int_t                 rc;
    ngx_str_t                *value;
    ngx_conf_t                save;
    ngx_http_juki_agency_t   *agency, **ap;

    value = cf->args->elts;

    if (ngx_http_juki_valid_name(&value[1], 1) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid agency name \"%V\": use 1-64 of "
                           "a-z0-9._- starting with a letter or digit",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    agency = ngx_pcalloc(cf->pool, sizeof(ngx_http_juki_agency_t));
    if (agency == NULL) {
        return NGX_CONF_ERROR;
    }

    agency->name = value[1];
    agency->file = cf->conf_file->file.name.data;
    agency->line = cf->conf_file->line;

    if (ngx_array_init(&agency->purpose_names, cf->pool, 4,
                       sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (jmcf->agency_keys == NULL) {
        jmcf->agency_keys = ngx_http_juki_keys(cf);
        jmcf->fingerprint_keys = ngx_http_juki_keys(cf);
        jmcf->subject_keys = ngx_http_juki_keys(cf);

        if (jmcf->agency_keys == NULL || jmcf->fingerprint_keys == NULL
            || jmcf->subject_keys == NULL)
        {
            return NGX_CONF_ERROR;
        }
    }

    rc = ngx_hash_add_key(jmcf->agency_keys, &agency->name, agency,
                          NGX_HASH_READONLY_KEY);

    if (rc == NGX_BUSY) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate juki_agency \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (rc != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_juki_key_string(cf, &agency->stop_key, &agency->name,
                                 "stop")
        != NGX_OK
        || ngx_http_juki_key_string(cf, &agency->rate_key, &agency->name,
                                    "rl")
           != NGX_OK
        || ngx_http_juki_key_string(cf, &agency->audit_key, &agency->name,
                                    "audit")
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ap = ngx_array_push(&jmcf->agencies);
    if (ap == NULL) {
        return NGX_CONF_ERROR;
    }

    *ap = agency;

    save = *cf;
    cf->handler = ngx_http_juki_agency_directive;
    cf->handler_conf = (void *) agency;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (agency->kind == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "juki_agency \"%V\" needs \"kind\"",
                           &agency->name);
        return NGX_CONF_ERROR;
    }

    if (agency->purposes_file == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "juki_agency \"%V\" needs \"purposes\"",
                           &agency->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_juki_agency_directive(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf)
{
    ngx_http_juki_agency_t  *agency = cf->handler_conf;

    u_char                     *hex;
    ngx_int_t                   rc;
    ngx_str_t                  *value, *s, key;
    ngx_uint_t                  i, k, nargs;
    ngx_hash_key_t             *hk;
    ngx_hash_keys_arrays_t     *keys;
    ngx_http_juki_agency_t     *owner;
    ngx_http_juki_main_conf_t  *jmcf;

    value = cf->args->elts;
    nargs = cf->args->nelts;
    jmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_juki_module);

    if (ngx_strcmp(value[0].data, "include") == 0) {
        if (nargs != 2) {
            goto args;
        }

        return ngx_conf_include(cf, dummy, conf);
    }

    if (ngx_strcmp(value[0].data, "kind") == 0) {
        if (nargs != 2) {
            goto args;
        }

        if (agency->kind) {
            goto duplicate;
        }

        for (k = 1; ngx_http_juki_kinds[k].len; k++) {
            if (value[1].len == ngx_http_juki_kinds[k].len
                && ngx_strcmp(value[1].data, ngx_http_juki_kinds[k].data)
                   == 0)
            {
                agency->kind = k;
                agency->kind_name = ngx_http_juki_kinds[k];
                return NGX_CONF_OK;
            }
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid kind \"%V\" in juki_agency \"%V\", it "
                           "must be national, prefecture, municipality, "
                           "designated or private", &value[1], &agency->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_strcmp(value[0].data, "certificate_sha256") == 0
        || ngx_strcmp(value[0].data, "subject") == 0)
    {
        if (nargs != 2) {
            goto args;
        }

        if (value[0].data[0] == 'c') {
            hex = ngx_pnalloc(cf->pool, NGX_HTTP_JUKI_HEX_SHA256);
            if (hex == NULL) {
                return NGX_CONF_ERROR;
            }

            if (ngx_http_juki_parse_fingerprint(&value[1], hex) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid certificate_sha256 \"%V\" in "
                                   "juki_agency \"%V\": 32 hex bytes "
                                   "expected", &value[1], &agency->name);
                return NGX_CONF_ERROR;
            }

            key.len = NGX_HTTP_JUKI_HEX_SHA256;
            key.data = hex;
            keys = jmcf->fingerprint_keys;

        } else {
            if (value[1].len == 0 || value[1].len > 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid subject in juki_agency \"%V\"",
                                   &agency->name);
                return NGX_CONF_ERROR;
            }

            /*
             * ngx_hash_find() compares lower-cased names, and a subject is
             * matched exactly: the key is the subject written in hex
             */

            key.len = 2 * value[1].len;
            key.data = ngx_pnalloc(cf->pool, key.len);
            if (key.data == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_hex_dump(key.data, value[1].data, value[1].len);

            keys = jmcf->subject_keys;
            jmcf->subject_max = ngx_max(jmcf->subject_max, key.len);
        }

        rc = ngx_hash_add_key(keys, &key, agency, NGX_HASH_READONLY_KEY);

        if (rc == NGX_BUSY) {
            hk = keys->keys.elts;
            owner = NULL;

            for (i = 0; i < keys->keys.nelts; i++) {
                if (hk[i].key.len == key.len
                    && ngx_strncmp(hk[i].key.data, key.data, key.len) == 0)
                {
                    owner = hk[i].value;
                    break;
                }
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%V \"%V\" of juki_agency \"%V\" is already "
                               "claimed by juki_agency \"%V\"", &value[0],
                               &value[1], &agency->name,
                               owner ? &owner->name : &value[1]);
            return NGX_CONF_ERROR;
        }

        if (rc != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[0].data, "purposes") == 0) {
        if (nargs < 2) {
            goto args;
        }

        for (i = 1; i < nargs; i++) {
            s = ngx_array_push(&agency->purpose_names);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }

            *s = value[i];
        }

        /* checked once every purpose is known, see init_main_conf */

        agency->purposes_file = cf->conf_file->file.name.data;
        agency->purposes_line = cf->conf_file->line;

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[0].data, "rate") == 0) {
        if (agency->rate.interval_us) {
            goto duplicate;
        }

        return ngx_http_juki_rate(cf, &agency->rate);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in juki_agency", &value[0]);
    return NGX_CONF_ERROR;

args:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of arguments in \"%V\" in "
                       "juki_agency \"%V\"", &value[0], &agency->name);
    return NGX_CONF_ERROR;

duplicate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is duplicate in juki_agency \"%V\"",
                       &value[0], &agency->name);
    return NGX_CONF_ERROR;
}


/* "rate 50r/s [burst=100]", meaning what limit_req ... nodelay means */

static char *
ngx_http_juki_rate(ngx_conf_t *cf, ngx_http_juki_rate_t *rate)
{
    ngx_int_t    burst;
    ngx_str_t   *value;
    ngx_uint_t   i;
    uint64_t     interval, tolerance;

    value = cf->args->elts;

    if (cf->args->nelts < 2 || cf->args->nelts > 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of arguments in \"rate\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_juki_parse_rate(&value[1], &rate->interval_us) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\", use for example \"50r/s\" "
                           "or \"10r/m\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    burst = 0;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            burst = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (burst != NGX_ERROR && burst <= 1000000) {
                continue;
            }
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"rate\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    rate->burst = burst;

    interval = rate->interval_us;
    tolerance = interval * rate->burst;

    rate->interval.data = ngx_pnalloc(cf->pool, NGX_INT64_LEN);
    rate->tolerance.data = ngx_pnalloc(cf->pool, NGX_INT64_LEN);
    if (rate->interval.data == NULL || rate->tolerance.data == NULL) {
        return NGX_CONF_ERROR;
    }

    rate->interval.len = ngx_sprintf(rate->interval.data, "%uL", interval)
                         - rate->interval.data;
    rate->tolerance.len = ngx_sprintf(rate->tolerance.data, "%uL", tolerance)
                          - rate->tolerance.data;

    return NGX_CONF_OK;
}


/*
 * juki_anomaly distinct_subjects=N window=T [per=operator|agency]
 *              [action=...] [dry_run]
 * juki_anomaly denials=N window=T [per=agency] [action=...] [dry_run]
 */

static char *
ngx_http_juki_anomaly(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_juki_main_conf_t *jmcf = conf;

    u_char                   *p;
    ngx_int_t                 n;
    ngx_str_t                *value, s;
    ngx_uint_t                i;
    ngx_http_juki_anomaly_t  *rule;

    /* the function's reply names a rule by a small number */

    if (jmcf->anomalies.nelts == NGX_HTTP_JUKI_RULES_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "at most %d \"juki_anomaly\" rules",
                           NGX_HTTP_JUKI_RULES_MAX);
        return NGX_CONF_ERROR;
    }

    rule = ngx_array_push(&jmcf->anomalies);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(rule, sizeof(ngx_http_juki_anomaly_t));

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        p = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        s.data = p ? p + 1 : value[i].data + value[i].len;
        s.len = value[i].data + value[i].len - s.data;

        if (rule->type == 0
            && (ngx_strncmp(value[i].data, "distinct_subjects=", 18) == 0
                || ngx_strncmp(value[i].data, "denials=", 8) == 0))
        {
            n = ngx_atoi(s.data, s.len);
            if (n == NGX_ERROR || n == 0 || n > 10000000) {
                goto invalid;
            }

            rule->type = (value[i].data[1] == 'i')
                         ? NGX_HTTP_JUKI_RULE_DISTINCT
                         : NGX_HTTP_JUKI_RULE_DENIALS;
            rule->threshold = n;
            continue;
        }

        if (rule->window == 0
            && ngx_strncmp(value[i].data, "window=", 7) == 0)
        {
            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n < 1000 || n > 7 * 86400 * 1000) {
                goto invalid;
            }

            rule->window = (ngx_msec_t) n;
            continue;
        }

        if (rule->action == 0
            && ngx_strncmp(value[i].data, "action=", 7) == 0)
        {
            if (s.len == 13 && ngx_strncmp(s.data, "stop_operator", 13) == 0)
            {
                rule->action = NGX_HTTP_JUKI_ACTION_STOP_OPERATOR;

            } else if (s.len == 11
                       && ngx_strncmp(s.data, "stop_agency", 11) == 0)
            {
                rule->action = NGX_HTTP_JUKI_ACTION_STOP_AGENCY;

            } else if (s.len == 5 && ngx_strncmp(s.data, "alert", 5) == 0) {
                rule->action = NGX_HTTP_JUKI_ACTION_ALERT;

            } else {
                goto invalid;
            }

            continue;
        }

        if (rule->per == 0 && ngx_strncmp(value[i].data, "per=", 4) == 0) {
            if (s.len == 8 && ngx_strncmp(s.data, "operator", 8) == 0) {
                rule->per = NGX_HTTP_JUKI_PER_OPERATOR;

            } else if (s.len == 6 && ngx_strncmp(s.data, "agency", 6) == 0) {
                rule->per = NGX_HTTP_JUKI_PER_AGENCY;

            } else {
                goto invalid;
            }

            continue;
        }

        if (!rule->dry_run && value[i].len == 7
            && ngx_strcmp(value[i].data, "dry_run") == 0)
        {
            rule->dry_run = 1;
            continue;
        }

        goto invalid;
    }

    if (rule->type == 0 || rule->window == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"juki_anomaly\" needs \"distinct_subjects=\" or "
                           "\"denials=\", and \"window=\"");
        return NGX_CONF_ERROR;
    }

    if (rule->type == NGX_HTTP_JUKI_RULE_DENIALS
        && rule->per == NGX_HTTP_JUKI_PER_OPERATOR)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"per=operator\" does not fit a \"denials\" "
                           "rule: denials are counted per agency");
        return NGX_CONF_ERROR;
    }

    if (rule->per == 0) {
        rule->per = (rule->type == NGX_HTTP_JUKI_RULE_DISTINCT)
                    ? NGX_HTTP_JUKI_PER_OPERATOR
                    : NGX_HTTP_JUKI_PER_AGENCY;
    }

    if (rule->per == NGX_HTTP_JUKI_PER_AGENCY
        && rule->action == NGX_HTTP_JUKI_ACTION_STOP_OPERATOR
        && rule->type == NGX_HTTP_JUKI_RULE_DISTINCT)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"action=stop_operator\" does not fit a "
                           "\"per=agency\" rule: it counts the residents "
                           "of every operator of the agency together");
        return NGX_CONF_ERROR;
    }

    if (rule->action == 0) {
        rule->action = (rule->per == NGX_HTTP_JUKI_PER_OPERATOR)
                       ? NGX_HTTP_JUKI_ACTION_STOP_OPERATOR
                       : NGX_HTTP_JUKI_ACTION_STOP_AGENCY;
    }

    if (rule->type == NGX_HTTP_JUKI_RULE_DENIALS
        && rule->action == NGX_HTTP_JUKI_ACTION_STOP_OPERATOR)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"action=stop_operator\" does not fit a "
                           "\"denials\" rule: denials are counted per "
                           "agency");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid or repeated parameter \"%V\" in "
                       "\"juki_anomaly\"", &value[i]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_juki_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_juki_status_handler;

    return NGX_CONF_OK;
}


static ngx_hash_keys_arrays_t *
ngx_http_juki_keys(ngx_conf_t *cf)
{
    ngx_hash_keys_arrays_t  *keys;

    keys = ngx_pcalloc(cf->temp_pool, sizeof(ngx_hash_keys_arrays_t));
    if (keys == NULL) {
        return NULL;
    }

    keys->pool = cf->pool;
    keys->temp_pool = cf->temp_pool;

    if (ngx_hash_keys_array_init(keys, NGX_HASH_LARGE) != NGX_OK) {
        return NULL;
    }

    return keys;
}


static ngx_int_t
ngx_http_juki_build_hash(ngx_conf_t *cf, ngx_hash_t *hash,
    ngx_hash_keys_arrays_t *keys, char *name, size_t max_len)
{
    ngx_hash_init_t  hinit;

    if (keys == NULL || keys->keys.nelts == 0) {
        /* an empty hash: lookups find nothing */
        ngx_memzero(hash, sizeof(ngx_hash_t));
        return NGX_OK;
    }

    hinit.hash = hash;
    hinit.key = ngx_hash_key;
    hinit.max_size = ngx_max(1024, keys->keys.nelts * 8);
    hinit.bucket_size = ngx_align(ngx_max(ngx_cacheline_size,
                                          2 * sizeof(void *)
                                          + ngx_align(max_len + 2,
                                                      sizeof(void *))),
                                  ngx_cacheline_size);
    hinit.name = name;
    hinit.pool = cf->pool;
    hinit.temp_pool = NULL;

    return ngx_hash_init(&hinit, keys->keys.elts, keys->keys.nelts);
}


static ngx_int_t
ngx_http_juki_key_string(ngx_conf_t *cf, ngx_str_t *dst, ngx_str_t *agency,
    char *suffix)
{
    size_t  len;

    len = sizeof("juki:{}:") - 1 + agency->len + ngx_strlen(suffix);

    dst->data = ngx_pnalloc(cf->pool, len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    dst->len = ngx_sprintf(dst->data, "juki:{%V}:%s", agency, suffix)
               - dst->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_juki_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    if (ngx_http_juki_cert_init(cf->log) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_juki_access_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_juki_subrequest_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_juki_log_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_juki_init_process(ngx_cycle_t *cycle)
{
    ngx_http_juki_main_conf_t  *jmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_get_conf(cycle->conf_ctx, ngx_http_module) == NULL) {
        return NGX_OK;
    }

    jmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_juki_module);

    if (jmcf == NULL || jmcf->redis == NULL) {
        return NGX_OK;
    }

    ngx_http_juki_stats_init_worker(jmcf);
    ngx_http_juki_refusal_init_worker(cycle);

    return ngx_http_juki_redis_init_worker(cycle, jmcf);
}


static void
ngx_http_juki_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_juki_redis_exit_worker();
}
