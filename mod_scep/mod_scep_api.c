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
 * The optional functions of the public header include/mod_scep.h, which
 * mod_scep.c registers for other modules: a challenge password minted as
 * the admin page mints one, and a server's status. They only adapt what
 * the password cache (mod_scep_passwords.c) and the configuration hold.
 */

#include <apr_strings.h>
#include <apr_time.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_scep.h"
#include "mod_scep_private.h"

/* The signed-in user for the log, "-" when the calling module has none. */
static const char *logged_user(request_rec *r)
{
    return r->user ? ap_escape_logitem(r->pool, r->user) : "-";
}

/* Logs a password handed out, as the admin page does (its SCEP525/526). */
static void log_minted(request_rec *r, const mod_scep_srv_conf_t *conf, apr_time_t expires,
                       int waiting)
{
    char until[APR_RFC822_DATE_LEN];

    if (!expires) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      SCEPLOGNO(092) "the single password given to another module for %s (%s)",
                      logged_user(r), r->useragent_ip);
        return;
    }
    apr_rfc822_date(until, expires);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  SCEPLOGNO(093) "one-time password given to another module for %s (%s), valid "
                                 "until %s; %d of at most %d (" SCEP_PASSWORD_MAX
                                 ") now wait for their devices",
                  logged_user(r), r->useragent_ip, until, waiting, conf->password_max);
}

apr_status_t mod_scep_mint_password(request_rec *r, const char **password, apr_time_t *expires)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);
    int waiting;
    apr_status_t rv;

    *password = NULL;
    *expires = 0;
    if (!conf->enabled) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      SCEPLOGNO(091) "another module asked for a password in a server "
                                     "without " SCEP_CA_CERTIFICATE_FILE);
        return APR_ENOTIMPL;
    }
    rv = mod_scep_password_issue(r, password, expires, &waiting);
    if (APR_STATUS_IS_ENOSPC(rv)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      SCEPLOGNO(094) "no password for another module's %s (%s): the password "
                                     "cache is full, %d passwords waiting to be used "
                                     "(" SCEP_PASSWORD_MAX ")",
                      logged_user(r), r->useragent_ip, conf->password_max);
    }
    else if (rv == APR_SUCCESS) {
        log_minted(r, conf, *expires, waiting);
        mod_scep_audit_password(r, NULL, *expires);
    }
    /* Other failures: mod_scep_password_issue logged why. */
    return rv;
}

apr_status_t mod_scep_status(apr_pool_t *p, server_rec *s, mod_scep_status_t *st)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(s);

    st->version = MOD_SCEP_VERSION;
    st->enabled = conf->enabled;
    st->ca_thumbprint = conf->enabled ? apr_pstrdup(p, conf->pki->ca_thumbprint) : NULL;
    st->passwords_max = conf->password_max;
    st->single_password = conf->use_single_password;
    return mod_scep_passwords_waiting(p, s, &st->passwords_waiting);
}
