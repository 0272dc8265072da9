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
 * Private header of the httpd glue (mod_scep_*.c): the module record, our
 * log tags, and the functions the glue files call in each other (the log
 * helpers in mod_scep_log.h, the HTTP helpers in mod_scep_http.h).
 */
#ifndef mod_scep_mod_scep_private_h
#define mod_scep_mod_scep_private_h

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_scep.h"
#include "scep.h"
#include "scep_enroll.h"
#include "scep_stats.h"
#include "scep_webhook.h"
#include "scep_audit.h"
#include "mod_scep_config.h"
#include "mod_scep_http.h"
#include "mod_scep_log.h"

extern module AP_MODULE_DECLARE_DATA scep_module;

/* Log under the module's own name, so `LogLevel scep:debug` works. */
APLOG_USE_MODULE(scep);

/* The server's configuration record: read through the module record, as
 * mod_ssl's mySrvConfig(), so that reading it makes no file depend on
 * mod_scep_config.c (the directives' section setters live in the files of
 * their sections, which read the record too). */
static inline mod_scep_srv_conf_t *mod_scep_srv_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &scep_module);
}

/* The module's startup hooks (mod_scep_startup.c): the mutex types
 * (pre_config), the configuration finished and checked, the PKI, passwords
 * and templates loaded (check_config, which `apachectl -t` runs too), the
 * shared segments (post_config), a child's attachments (child_init). */
int mod_scep_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
int mod_scep_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *main_s);
int mod_scep_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
void mod_scep_child_init(apr_pool_t *pchild, server_rec *s);

/* The server a startup message is about, as the administrator wrote it
 * ("main server", "virtual host NAME:PORT (FILE:LINE)") (mod_scep_log.c). */
const char *mod_scep_server_label(server_rec *s);

/* The first line of a private file (scep_read_private_file(): mode 0600)
 * at most max bytes long, on pconf, for directive of s: a secret's file.
 * The read copy is cleansed; a failure is logged (mod_scep_config.c). */
apr_status_t mod_scep_read_first_line(apr_pool_t *pconf, server_rec *s, const char *directive,
                                      const char *file, apr_size_t max, const char **line);

/* SCEPCABackend (mod_scep_backend.c): at startup, before the defaults are
 * applied, whether s's directives fit its backend (a directive of another
 * backend, SCEPCAKeyFile or no SCEPRACertificate with an external CA
 * refuse, logged); once its PKI is loaded, its backend built into its
 * configuration (conf->ca), or why not (logged). */
apr_status_t mod_scep_backend_check_directives(server_rec *s);
apr_status_t mod_scep_backend_setup(apr_pool_t *pconf, server_rec *s);
/* At the child's end (pchild's cleanup), each backend frees what the child
 * made for itself: a child never destroys the pool they were made on. */
void mod_scep_backend_child_init(apr_pool_t *pchild, server_rec *main_s);

/* A use of a webhook (mod_scep_webhook.c): what the log lines call it,
 * its URL and the directive that set it, its secret file (NULL: unsigned)
 * and that file's directive, its X-Smallstep-Webhook-ID (NULL: the
 * server's name). */
typedef struct mod_scep_webhook_use_t {
    const char *what;
    const char *url;
    const char *url_directive;
    const char *secret_file;
    const char *secret_directive;
    const char *id;
} mod_scep_webhook_use_t;

/* At startup, the webhook of use for s on pconf, with s's SCEPWebhook*
 * TLS files and time limit: NULL when it cannot be (logged, SCEP660-669).
 * Each child frees its connections at its end
 * (mod_scep_webhook_child_init()). */
scep_webhook_t *mod_scep_webhook_create(apr_pool_t *pconf, server_rec *s,
                                        const mod_scep_webhook_use_t *use);
/* SCEPChallengeWebhook of s as the challenge method webhook into
 * conf->challenge_webhook (NULL without it); APR_EINVAL (logged) when its
 * directives cannot work. */
apr_status_t mod_scep_challenge_webhook_setup(apr_pool_t *pconf, server_rec *s);
/* The webhooks' connections of a child freed at its end (pchild). */
void mod_scep_webhook_child_init(apr_pool_t *pchild);

/* Challenge checks (mod_scep_challenge.c): SCEPChallengeCheck's and
 * ChallengeCheck's words as a list on p, or why not. Before the defaults,
 * whether s's directives agree (SCEPEnforcePassword Off with a list
 * refuses, logged); once its templates are finished, the program's check
 * built (conf->challenge_program) and every method that the server or one
 * of its templates lists configured, or why not (logged): the webhook's
 * check (conf->challenge_webhook) is built before. The server's list
 * (SCEPChallengeCheck, else password or none by SCEPEnforcePassword), and
 * the checks of a request, on its pool. */
const char *mod_scep_challenge_list_parse(apr_pool_t *p, const char *args,
                                          const scep_challenge_list_t **list);
apr_status_t mod_scep_challenge_check_directives(server_rec *s);
apr_status_t mod_scep_challenge_setup(apr_pool_t *pconf, server_rec *s);
const scep_challenge_list_t *mod_scep_challenge_list(const mod_scep_srv_conf_t *conf);
const scep_challenge_checks_t *mod_scep_challenge_checks(request_rec *r);

/* inner (an external CA's backend) with SCEPExternalCRL's CRL as its
 * crl(), or a refusal (event 44) without one (mod_scep_ext_crl.c). */
scep_ca_backend_t *mod_scep_ext_crl_backend(apr_pool_t *pconf, server_rec *s,
                                            scep_ca_backend_t *inner);

/* The child's background thread that asks the external CAs about the
 * requests they hold, every SCEPCAPollInterval seconds; stopped and joined
 * when pchild goes (mod_scep_poll.c). */
void mod_scep_poll_child_init(apr_pool_t *pchild, server_rec *s);

/* The engine's environment for a server, without a request (the
 * background poll): records through mod_scep_server_records(), the
 * server's backend and log, on p (mod_scep_pkiop.c). */
const scep_enroll_env_t *mod_scep_server_env(apr_pool_t *p, server_rec *s);

/* scep_log_fn for the core's lines about a request (baton: the
 * request_rec), at the core's file and line (mod_scep_store_dbd.c). */
void mod_scep_log_core(void *baton, const char *file, int line, int level, const char *msg);

/* SCEPNotifyWebhook (mod_scep_notify.c): s's webhook built once its
 * configuration is final (conf->notify, by mod_scep_webhook_create(),
 * whose children free its connections), or why not (logged: Apache does
 * not start); a PKIOperation's decision, once its CertRep is written, made
 * into the notification that the log_transaction hook sends after the
 * answer went out (PKCSReq, RenewalReq, CertPoll; nothing without the
 * directive). */
apr_status_t mod_scep_notify_setup(apr_pool_t *pconf, server_rec *s);
void mod_scep_notify_later(request_rec *r, const scep_request_t *req, const scep_outcome_t *outcome,
                           const scep_reply_t *reply);
int mod_scep_notify_log_transaction(request_rec *r);

/* The `scep` handler (mod_scep_handler.c). */
int mod_scep_handler(request_rec *r);

/* PKIOperation with the pkiMessage of the request, as sent (BER or DER):
 * writes the CertRep and returns OK, or returns an HTTP status
 * (mod_scep_pkiop.c). */
int mod_scep_pkioperation(request_rec *r, const unsigned char *msg, apr_size_t len);

/* The enrollment engine's environment for this request (mod_scep_pkiop.c):
 * the server's configuration, the records through
 * mod_scep_store_acquire(), the built-in CA, the password cache, the
 * request's error log. The CA manager page's decisions go through it too. */
const scep_enroll_env_t *mod_scep_enroll_env(request_rec *r);

/* The store of this request's records on a connection from mod_dbd, with
 * the schema migrated and the statements prepared; NULL (logged) when there
 * is no usable database connection. The same store until
 * mod_scep_store_release() gives the connection back, which a handler does
 * once it has what it needs from the records, before it answers; the
 * request pool's end releases it otherwise (mod_scep_store_dbd.c). */
scep_store_t *mod_scep_store_acquire(request_rec *r);
void mod_scep_store_release(request_rec *r);

/* A store for the server, without a request (the background poll), on a
 * connection from mod_dbd that p's cleanup gives back; NULL (logged) when
 * there is none. */
scep_store_t *mod_scep_store_open_server(apr_pool_t *p, server_rec *s);
/* The same, opened at the first need: a baton on p for
 * mod_scep_server_records(), the records() of an engine's environment or of
 * the SQL password store without a request; opened once, then the same. */
void *mod_scep_server_records_baton(apr_pool_t *p, server_rec *s);
scep_store_t *mod_scep_server_records(void *baton);

/* The records' part of the startup hooks (mod_scep_store_dbd.c): mod_dbd's
 * post_connect hook (register_hooks), the mutex type "scep-sqlite"
 * (pre_config), the mutex made once in the process pool (post_config), a
 * child's attachment (child_init). */
void mod_scep_store_register_hooks(void);
void mod_scep_store_pre_config(apr_pool_t *pconf);
apr_status_t mod_scep_store_post_config(server_rec *s);
void mod_scep_store_child_init(apr_pool_t *pchild, server_rec *s);

/* A new one-time password (SCEPPasswordStore: in the cache or in the
 * records), or the single password in single-password mode (expires 0);
 * *waiting: how many one-time passwords, this one included, wait for their
 * devices (0 for the single password). APR_ENOSPC: SCEPPasswordMax wait
 * already (mod_scep_passwords.c). */
apr_status_t mod_scep_password_issue(request_rec *r, const char **password, apr_time_t *expires,
                                     int *waiting);

/* How many one-time passwords wait for their devices now, in the cache or,
 * with SCEPPasswordStore sql, in the whole service (0 in single-password
 * mode and when no server has SCEP); an error when the cache cannot be
 * locked or the records cannot be read (logged) (mod_scep_passwords.c). */
apr_status_t mod_scep_passwords_waiting(apr_pool_t *p, server_rec *s, int *waiting);

/* The passwords as the engine's password store (scep_enroll.h):
 * SCEPChallengePasswordFile's static password, the single password, then
 * the one-time passwords (SCEPPasswordStore: the cache's scep_pwcache_use()
 * or the records' scep_password_sql()), for r (mod_scep_passwords.c). */
scep_password_store_t *mod_scep_password_store(request_rec *r);

/* With SCEPPasswordStore sql, a key for label derived from the secret key
 * file every server of the service shares (scep_secret_key_derive()), the
 * same at each server; APR_ENOTIMPL without (mod_scep_passwords.c). After
 * check_config. */
apr_status_t mod_scep_passwords_service_key(const char *label, unsigned char *out, apr_size_t len);

/* The password cache's part of the startup hooks (mod_scep_passwords.c):
 * registers the mutex type "scep-pwcache" (pre_config); loads or makes the
 * single password (check_config, when a server has SCEP); makes or finds
 * again the shared cache and its mutex (post_config); attaches a child to
 * the mutex (child_init). */
void mod_scep_passwords_pre_config(apr_pool_t *pconf);
apr_status_t mod_scep_passwords_check_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                             server_rec *main_s);
apr_status_t mod_scep_passwords_post_config(server_rec *main_s);
void mod_scep_passwords_child_init(apr_pool_t *pchild, server_rec *s);

/* The `scep-crl` handler: that CRL as DER at a plain HTTP URL
 * (mod_scep_crl.c). */
int mod_scep_crl_handler(request_rec *r);

/* The template of that name configured in conf (<SCEPTemplate>, or the
 * built-in one once mod_scep_templates_finish ran), NULL if none
 * (mod_scep_template.c, by scep_template_find()). */
scep_template_t *mod_scep_template_find(const mod_scep_srv_conf_t *conf, const char *name);

/* At startup, after the defaults are applied: adds the built-in template
 * unless a section of its name replaces it, and returns why the server
 * cannot start when a key-usage directive names a template that does not
 * exist (NULL when all exist). */
const char *mod_scep_templates_finish(apr_pool_t *pconf, mod_scep_srv_conf_t *conf);

/* The `scep-admin` handler: NDES's password page (mod_scep_admin.c). */
int mod_scep_admin_handler(request_rec *r);

/* The `scep-manager` handler: the CA manager page (mod_scep_manager.c), and
 * its post_config part: the key of its form tokens, drawn once in the
 * process pool. */
int mod_scep_manager_handler(request_rec *r);
apr_status_t mod_scep_manager_post_config(server_rec *main_s);

/* 1 when r->user is a CA manager (member of SCEPCAManagerGroup, nested
 * groups too), 0 when not (logged naming the user and the group), -1 on an
 * LDAP error (logged). Always 1 when SCEPLDAPURL is unset, as then no group
 * is configured (the startup refuses one without it): Apache's Require
 * decides (mod_scep_ldap.c). */
int mod_scep_ldap_is_ca_manager(request_rec *r, const mod_scep_srv_conf_t *conf);

/* 1 when r->user may get passwords under conf's SCEPCAType, 0 when not
 * (logged with NDES event 6 or 41), -1 on an LDAP error (logged). Always 1
 * when SCEPLDAPURL is unset, as then no group is configured (mod_scep_ldap.c). */
int mod_scep_ldap_authorized(request_rec *r, const mod_scep_srv_conf_t *conf);

/* The optional functions of include/mod_scep.h, registered by mod_scep.c
 * (mod_scep_api.c). */
apr_status_t mod_scep_mint_password(request_rec *r, const char **password, apr_time_t *expires);
apr_status_t mod_scep_status(apr_pool_t *p, server_rec *s, mod_scep_status_t *st);

/* mod_status's figures (mod_scep_stats.c): the shared segment made or
 * found again, every server with SCEP given its slot (post_config); an
 * enrollment message's outcome counted (PKIOperation, beside the
 * notification), a CA manager's decision counted (issued, refused), a use
 * of the records that failed or worked (mod_scep_store_dbd.c); a server's
 * figures read and when the counting started (APR_ENOTIMPL: no segment,
 * no server has SCEP). No lock: atomic adds. */
apr_status_t mod_scep_stats_post_config(apr_pool_t *pconf, server_rec *main_s);
/* r->notes' key set when a use of r's records failed (mod_scep_store_dbd.c):
 * a refusal for want of records counts as a fault. */
#define MOD_SCEP_NOTE_RECORDS_FAULT "mod_scep-records-fault"
void mod_scep_stats_outcome(request_rec *r, const scep_request_t *req,
                            const scep_outcome_t *outcome);
void mod_scep_stats_add(server_rec *s, scep_stats_counter_t counter);
void mod_scep_stats_store_fault(server_rec *s);
void mod_scep_stats_store_ok(server_rec *s);
apr_status_t mod_scep_stats_read(server_rec *s, scep_stats_view_t *view, apr_time_t *started);

/* The SCEP section of mod_status's /server-status and its ?auto lines
 * (mod_scep_status.c): its status_hook registered (register_hooks). */
void mod_scep_status_register_hooks(void);
/* SCEPAuditLog (mod_scep_audit.c): the mutex type "scep-audit" (pre_config
 * hook); each server's file or piped logger opened by the parent as root
 * (open_logs hook: one that cannot be opened stops the start, logged); a
 * child's attachment to the pipes' mutex. Then the lines of decisions, to
 * r's server's audit log, nothing without one: a PKIOperation's outcome
 * (beside its notification); a manager's approval or denial of a
 * transaction (before: the request as found before the decision, by
 * mod_scep_audit_find_txn(), NULL when the audit log is off) and a
 * revocation, with r->user; a challenge password handed out (never the
 * password: the device an MDM named, when it expires, 0 for the single
 * password). */
int mod_scep_audit_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
int mod_scep_audit_open_logs(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *main_s);
void mod_scep_audit_child_init(apr_pool_t *pchild, server_rec *s);
int mod_scep_audit_enabled(request_rec *r);
void mod_scep_audit_pkiop(request_rec *r, const scep_request_t *req, const scep_outcome_t *outcome,
                          const scep_reply_t *reply);
const scep_txn_t *mod_scep_audit_find_txn(request_rec *r, scep_store_t *store,
                                          const char *transaction_id);
void mod_scep_audit_decision(request_rec *r, scep_store_t *store, scep_audit_event_t event,
                             const scep_txn_t *before, const char *transaction_id,
                             const char *reason);
void mod_scep_audit_revoked(request_rec *r, scep_store_t *store, const char *serial,
                            const char *reason);
void mod_scep_audit_password(request_rec *r, const char *device, apr_time_t expires);
/* SCEPPKCS11Module, SCEPPKCS11PINFile (mod_scep_pkcs11.c): at startup,
 * before any PKI is loaded, the token's module and PIN made the process's
 * for the pkcs11: keys; a pkcs11: key or a PIN file without the module, a
 * module that is no readable file, a PIN file that is not private refuse
 * to start (logged). */
apr_status_t mod_scep_pkcs11_setup(apr_pool_t *pconf, server_rec *main_s);

#endif /* mod_scep_mod_scep_private_h */
