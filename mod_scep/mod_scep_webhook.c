/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/*
 * The webhooks in httpd: a server's webhook built at startup from its
 * directives (the URL and secret file of its use, the SCEPWebhook* TLS
 * and time limit shared by the challenge and the notifications), the
 * challenge method webhook into the server's record, and each child's
 * connections freed at its end.
 */

#include <apr_strings.h>

#include <openssl/crypto.h>

#include "mod_scep_private.h"
#include "scep_challenge_webhook.h"
#include "scep_webhook.h"

/* The longest line of a secret file: base64 of the longest secret. */
#define SECRET_TEXT_MAX ((SCEP_WEBHOOK_SECRET_MAX_LEN + 2) / 3 * 4 + 2)

/* The webhooks this generation made (on pconf), whose connections each
 * child frees at its end. */
static apr_array_header_t *made;

static apr_status_t forget_made(void *data)
{
    (void)data;
    made = NULL;
    return APR_SUCCESS;
}

static void remember(apr_pool_t *pconf, scep_webhook_t *wh)
{
    if (!made) {
        made = apr_array_make(pconf, 4, sizeof(scep_webhook_t *));
        apr_pool_cleanup_register(pconf, NULL, forget_made, apr_pool_cleanup_null);
    }
    APR_ARRAY_PUSH(made, scep_webhook_t *) = wh;
}

static apr_status_t refuse_start(server_rec *s, const char *directive, const char *why)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SCEPLOGNO(660) "%s: %s: %s%s",
                 mod_scep_server_label(s), directive, why,
                 scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
    return APR_EINVAL;
}

/* The secret of file, decoded, on pconf (its text cleansed). */
static apr_status_t read_secret(apr_pool_t *pconf, server_rec *s, const char *directive,
                                const char *file, scep_webhook_conf_t *wc)
{
    const char *text = NULL;
    apr_status_t rv;

    rv = mod_scep_read_first_line(pconf, s, directive, file, SECRET_TEXT_MAX, &text);
    if (rv != APR_SUCCESS) {
        return rv; /* logged */
    }
    rv = scep_webhook_secret_decode(pconf, text, &wc->secret, &wc->secret_len);
    OPENSSL_cleanse((char *)text, strlen(text));
    if (rv != APR_SUCCESS) {
        return refuse_start(
            s, directive,
            apr_psprintf(pconf, "%s is not base64 of 1 to %d bytes (step-ca's webhook secret)",
                         file, SCEP_WEBHOOK_SECRET_MAX_LEN));
    }
    return APR_SUCCESS;
}

scep_webhook_t *mod_scep_webhook_create(apr_pool_t *pconf, server_rec *s,
                                        const mod_scep_webhook_use_t *use)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    scep_webhook_conf_t wc = { 0 };
    scep_webhook_t *wh = NULL;
    const char *why = NULL;

    wc.url = use->url;
    wc.what = use->what;
    wc.id = use->id ? use->id : s->server_hostname;
    wc.ca_file = conf->webhook_ca_file;
    wc.client_cert = conf->webhook_client_cert;
    wc.client_key = conf->webhook_client_key;
    wc.timeout = conf->webhook_timeout;
    wc.log = mod_scep_log_server;
    wc.log_baton = s;
    if (use->secret_file &&
        read_secret(pconf, s, use->secret_directive, use->secret_file, &wc) != APR_SUCCESS) {
        return NULL;
    }
    if (scep_webhook_create(pconf, &wc, &wh, &why) != APR_SUCCESS) {
        /* the URL's directive names the webhook; why names a file */
        refuse_start(s, use->url_directive, why);
        return NULL;
    }
    remember(pconf, wh);
    return wh;
}

/* Directives of the challenge webhook without its URL would be ignored:
 * a configuration that says more than it does refuses to start. */
static apr_status_t check_without_url(server_rec *s, const mod_scep_srv_conf_t *conf)
{
    if (conf->challenge_webhook_secret_file) {
        return refuse_start(s, SCEP_CHALLENGE_WEBHOOK_SECRET_FILE,
                            "set without " SCEP_CHALLENGE_WEBHOOK " (the URL)");
    }
    if (conf->challenge_webhook_id) {
        return refuse_start(s, SCEP_CHALLENGE_WEBHOOK_ID,
                            "set without " SCEP_CHALLENGE_WEBHOOK " (the URL)");
    }
    return APR_SUCCESS;
}

apr_status_t mod_scep_challenge_webhook_setup(apr_pool_t *pconf, server_rec *s)
{
    mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);
    mod_scep_webhook_use_t use = { 0 };
    scep_webhook_t *wh;

    conf->challenge_webhook = NULL;
    if (!conf->challenge_webhook_url) {
        return check_without_url(s, conf);
    }
    use.what = "challenge webhook";
    use.url = conf->challenge_webhook_url;
    use.url_directive = SCEP_CHALLENGE_WEBHOOK;
    use.secret_file = conf->challenge_webhook_secret_file;
    use.secret_directive = SCEP_CHALLENGE_WEBHOOK_SECRET_FILE;
    use.id = conf->challenge_webhook_id;
    wh = mod_scep_webhook_create(pconf, s, &use);
    if (!wh) {
        return APR_EINVAL;
    }
    conf->challenge_webhook =
        scep_challenge_webhook(pconf, wh, s->server_hostname, mod_scep_log_server, s);
    return APR_SUCCESS;
}

static apr_status_t webhook_process_exit(void *data)
{
    scep_webhook_process_exit(data);
    return APR_SUCCESS;
}

void mod_scep_webhook_child_init(apr_pool_t *pchild)
{
    int i;

    for (i = 0; made && i < made->nelts; i++) {
        apr_pool_cleanup_register(pchild, APR_ARRAY_IDX(made, i, scep_webhook_t *),
                                  webhook_process_exit, apr_pool_cleanup_null);
    }
}
