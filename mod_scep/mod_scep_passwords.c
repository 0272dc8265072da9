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
 * Challenge passwords in the server: the one-time password cache shared by
 * every worker process, and the single password.
 *
 * The cache (scep_password.c) sits in anonymous APR shared memory guarded by
 * the global mutex "scep-pwcache" (tunable with `Mutex ... scep-pwcache`).
 * Both are made once, in the process pool, and found again there on every
 * later generation: pconf is cleared on each restart, the process pool is
 * not, so passwords handed out and not yet used survive `apachectl
 * graceful` (NDES loses them on every IIS restart). A full stop ends the
 * process and every password with it, as with NDES. When SCEPPasswordMax
 * grows beyond the segment on a graceful restart, a bigger segment takes
 * over the entries and the old one is emptied, so workers of the old
 * generation still finishing requests cannot spend a password twice.
 *
 * The mutex keeps the mechanism it was made with (the `Mutex` directive of
 * the first generation) until a full restart.
 *
 * With `SCEPPasswordStore sql` the one-time passwords live in the records
 * database instead (scep_password_sql.c), shared by every server of a
 * service: no segment, no mutex here; the secret key file (which all the
 * servers share) is read in check_config, and the single password is
 * read from the records (made by the first server that needs it) at each
 * use, so that `scepctl single-password --db` reaches every server at once.
 *
 * Single-password mode reads (or makes) the secret key and the encrypted
 * password in check_config, in the parent, as root: so `apachectl -t`
 * reports a password that does not decrypt (event 49), and also makes the
 * files when they are missing. The decrypted password stays in the
 * parent's and the children's memory (pconf, wiped with it), never in
 * shared memory, never in a log.
 */

#include <apr_file_info.h>
#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <util_mutex.h>

#include <openssl/crypto.h>

#include "mod_scep_private.h"
#include "scep_password.h"

#define PWCACHE_MUTEX_TYPE "scep-pwcache"
/* The process pool's userdata key of the surviving cache. */
#define PWCACHE_USERDATA "mod_scep_pwcache"

/* Lives in the process pool, so it outlives every generation. */
typedef struct pwcache_t {
    apr_global_mutex_t *mutex;
    apr_shm_t *shm;
    scep_pwcache_t *cache;
} pwcache_t;

/* This generation's state: the module is reloaded on every restart, so
 * these are set again by each generation's startup hooks. */
static pwcache_t *pwcache;
static scep_pwcache_opts_t issue_opts;
static const char *single_password; /* on pconf; NULL unless single-password mode (shm) */
static int store_kind;              /* SCEPPasswordStore */
static int single_mode;             /* SCEPUseSinglePassword */
/* SCEPPasswordStore sql: the secret key (the single password in the
 * records is sealed with it) and the passwords' HMAC key derived from it;
 * wiped with pconf. */
static unsigned char secret_key[SCEP_SECRET_KEY_LEN];
static scep_password_sql_conf_t sql_conf;

/* ----------------------------------------------------------------------
 * Startup
 */

void mod_scep_passwords_pre_config(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, PWCACHE_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t file_exists(apr_pool_t *p, const char *file, int *exists)
{
    apr_finfo_t finfo;
    apr_status_t rv = apr_stat(&finfo, file, APR_FINFO_TYPE, p);

    *exists = rv == APR_SUCCESS;
    return rv == APR_SUCCESS || APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

/* The secret key, made first when its file does not exist. */
static apr_status_t load_secret_key(apr_pool_t *ptemp, server_rec *s, const char *file,
                                    unsigned char *key)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    int exists = 0;
    apr_status_t rv = file_exists(ptemp, file, &exists);

    if (rv != APR_SUCCESS) {
        prob.text = apr_psprintf(ptemp, SCEP_SECRET_KEY_FILE " %s cannot be read", file);
        goto leave;
    }
    if (!exists) {
        rv = scep_secret_key_create(ptemp, file, &prob);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SCEPLOGNO(401) SCEP_SECRET_KEY_FILE
                     " %s did not exist: created a new key (mode 0600)",
                     file);
    }
    rv = scep_secret_key_read(ptemp, file, key, &prob);
leave:
    if (rv != APR_SUCCESS) {
        mod_scep_log_startup_problem(s, SCEPLOGNO(402), &prob);
    }
    return rv;
}

/* A new single password, written encrypted, when its file does not exist. */
static apr_status_t make_single_password(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                         const mod_scep_srv_conf_t *conf, const unsigned char *key,
                                         const char **password)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    apr_status_t rv = scep_password_generate(pconf, conf->password_length, password);

    if (rv != APR_SUCCESS) {
        prob.text = "cannot draw random bytes for the single password";
        goto leave;
    }
    rv = scep_single_password_write(ptemp, conf->single_password_file, key, *password, &prob);
    if (rv == APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     SCEPLOGNO(403) SCEP_SINGLE_PASSWORD_FILE
                     " %s did not exist: made a new single password; "
                     "the admin page shows it",
                     conf->single_password_file);
    }
leave:
    if (rv != APR_SUCCESS) {
        mod_scep_log_startup_problem(s, SCEPLOGNO(404), &prob);
    }
    return rv;
}

static apr_status_t read_single_password(apr_pool_t *pconf, server_rec *s,
                                         const mod_scep_srv_conf_t *conf, const unsigned char *key,
                                         const char **password)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    apr_status_t rv;

    rv = scep_single_password_read(pconf, conf->single_password_file, key, password, &prob);
    if (rv == APR_SUCCESS) {
        return rv;
    }
    if (prob.event == SCEP_EVENT_FAILED_DECRYPT_PASSWORD) {
        /* The white paper's fix for event 49: delete the stored password. */
        prob.text = apr_psprintf(pconf,
                                 "%s; delete %s to have a new single password made at "
                                 "the next start, or set one with `scepctl single-password "
                                 "--key %s --file %s --set PASSWORD`",
                                 prob.text, conf->single_password_file, conf->secret_key_file,
                                 conf->single_password_file);
    }
    mod_scep_log_startup_problem(s, SCEPLOGNO(405), &prob);
    return rv;
}

static apr_status_t load_single_password(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                         const mod_scep_srv_conf_t *conf)
{
    unsigned char key[SCEP_SECRET_KEY_LEN];
    int exists = 0;
    apr_status_t rv;

    rv = load_secret_key(ptemp, s, conf->secret_key_file, key);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    rv = file_exists(ptemp, conf->single_password_file, &exists);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     SCEPLOGNO(406) SCEP_SINGLE_PASSWORD_FILE " %s cannot be read%s",
                     conf->single_password_file,
                     scep_event_text(SCEP_EVENT_FAILED_DECRYPT_PASSWORD));
        goto leave;
    }
    rv = exists ? read_single_password(pconf, s, conf, key, &single_password)
                : make_single_password(pconf, ptemp, s, conf, key, &single_password);
leave:
    OPENSSL_cleanse(key, sizeof(key));
    return rv;
}

static apr_status_t cleanse_keys(void *data)
{
    (void)data;
    OPENSSL_cleanse(secret_key, sizeof(secret_key));
    OPENSSL_cleanse(&sql_conf, sizeof(sql_conf));
    return APR_SUCCESS;
}

/* The key file must exist: a server that made its own would MAC the
 * passwords under another key than the other servers (theirs refused
 * here, its own refused there) and could not open their single password. */
static apr_status_t require_shared_key_file(apr_pool_t *ptemp, server_rec *s,
                                            const mod_scep_srv_conf_t *conf)
{
    int exists = 0;

    if (!conf->secret_key_file) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     SCEPLOGNO(013) SCEP_PASSWORD_STORE
                     " sql needs " SCEP_SECRET_KEY_FILE
                     ", the key file that every server of the service shares "
                     "(the records keep the passwords as HMACs under a key "
                     "derived from it)%s",
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return APR_EINVAL;
    }
    if (file_exists(ptemp, conf->secret_key_file, &exists) != APR_SUCCESS || !exists) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     SCEPLOGNO(014) SCEP_PASSWORD_STORE
                     " sql: " SCEP_SECRET_KEY_FILE
                     " %s does not exist: every server of the service needs the "
                     "same key file; make it once (`scepctl secret-key --key %s`) "
                     "and copy it to each server (mode 0600)%s",
                     conf->secret_key_file, conf->secret_key_file,
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return APR_ENOENT;
    }
    return APR_SUCCESS;
}

/* SCEPPasswordStore sql: the shared key read, the HMAC key derived. */
static apr_status_t setup_sql_store(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                    const mod_scep_srv_conf_t *conf)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    apr_status_t rv = require_shared_key_file(ptemp, s, conf);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_pool_cleanup_register(pconf, NULL, cleanse_keys, apr_pool_cleanup_null);
    rv = scep_secret_key_read(ptemp, conf->secret_key_file, secret_key, &prob);
    if (rv != APR_SUCCESS) {
        mod_scep_log_startup_problem(s, SCEPLOGNO(015), &prob);
        return rv;
    }
    rv = scep_password_sql_key(secret_key, sql_conf.mac_key);
    if (rv != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, rv, s,
            SCEPLOGNO(
                016) "cannot derive the one-time passwords' HMAC key from " SCEP_SECRET_KEY_FILE
                     " %s (HKDF)%s",
            conf->secret_key_file, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        mod_scep_log_openssl(s, APLOG_EMERG);
        return rv;
    }
    sql_conf.opts = issue_opts;
    return APR_SUCCESS;
}

apr_status_t mod_scep_passwords_check_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                                             server_rec *main_s)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(main_s);

    single_password = NULL;
    store_kind = conf->password_store;
    single_mode = conf->use_single_password;
    issue_opts.max = conf->password_max;
    issue_opts.validity = apr_time_from_sec((apr_time_t)conf->password_validity * 60);
    issue_opts.length = conf->password_length;
    if (store_kind == SCEP_PASSWORD_STORE_SQL) {
        /* The single password lives in the records: no file. */
        return setup_sql_store(pconf, ptemp, main_s, conf);
    }
    if (!conf->use_single_password) {
        return APR_SUCCESS;
    }
    if (!conf->secret_key_file || !conf->single_password_file) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, main_s,
                     SCEPLOGNO(407) SCEP_USE_SINGLE_PASSWORD " On needs " SCEP_SECRET_KEY_FILE
                                                             " and " SCEP_SINGLE_PASSWORD_FILE "%s",
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return APR_EINVAL;
    }
    return load_single_password(pconf, ptemp, main_s, conf);
}

/* The surviving state, made on the first generation. */
static apr_status_t pwcache_find_or_create(server_rec *s, pwcache_t **found)
{
    apr_pool_t *pproc = s->process->pool;
    pwcache_t *pc = NULL;
    apr_status_t rv;

    apr_pool_userdata_get((void **)&pc, PWCACHE_USERDATA, pproc);
    if (pc) {
        *found = pc;
        return APR_SUCCESS;
    }
    pc = apr_pcalloc(pproc, sizeof(*pc));
    rv = ap_global_mutex_create(&pc->mutex, NULL, PWCACHE_MUTEX_TYPE, NULL, s, pproc, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     SCEPLOGNO(408) "cannot create the global mutex " PWCACHE_MUTEX_TYPE
                                    " of the password cache%s",
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return rv;
    }
    apr_pool_userdata_set(pc, PWCACHE_USERDATA, apr_pool_cleanup_null, pproc);
    *found = pc;
    return APR_SUCCESS;
}

static apr_status_t segment_create(server_rec *s, int capacity, apr_shm_t **shm,
                                   scep_pwcache_t **cache)
{
    apr_status_t rv = apr_shm_create(shm, scep_pwcache_size(capacity), NULL, s->process->pool);

    if (rv == APR_SUCCESS) {
        rv = scep_pwcache_init(apr_shm_baseaddr_get(*shm), capacity, cache);
        if (rv != APR_SUCCESS) {
            apr_shm_destroy(*shm);
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, rv, s,
            SCEPLOGNO(409) "cannot create the shared memory of the password cache (%d entries)%s",
            capacity, scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        mod_scep_log_openssl(s, APLOG_EMERG);
    }
    return rv;
}

/* Moves the entries of the old segment into the new one, under the mutex
 * so that no worker of the old generation is using the old one meanwhile. */
static apr_status_t segment_take_over(server_rec *s, pwcache_t *pc, scep_pwcache_t *cache)
{
    int old_capacity = scep_pwcache_capacity(pc->cache);
    apr_status_t rv = scep_global_mutex_lock(pc->mutex);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     SCEPLOGNO(410) "cannot lock the password cache to grow it%s",
                     scep_event_text(SCEP_EVENT_FAILED_TO_LOAD));
        return rv;
    }
    scep_pwcache_move(cache, pc->cache);
    apr_global_mutex_unlock(pc->mutex);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                 SCEPLOGNO(411) "password cache grown from %d to %d entries (" SCEP_PASSWORD_MAX
                                "); waiting passwords kept",
                 old_capacity, scep_pwcache_capacity(cache));
    return APR_SUCCESS;
}

/* A segment of at least capacity entries: the existing one, or a bigger one
 * that takes over its entries. A smaller SCEPPasswordMax keeps the segment
 * (issuing stops at the new maximum). */
static apr_status_t pwcache_ensure_capacity(server_rec *s, pwcache_t *pc, int capacity)
{
    apr_shm_t *shm = NULL;
    scep_pwcache_t *cache = NULL;
    apr_status_t rv;

    if (pc->cache && scep_pwcache_capacity(pc->cache) >= capacity) {
        return APR_SUCCESS;
    }
    rv = segment_create(s, capacity, &shm, &cache);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (pc->cache) {
        rv = segment_take_over(s, pc, cache);
        if (rv != APR_SUCCESS) {
            apr_shm_destroy(shm);
            return rv;
        }
        /* Only this process's mapping goes: workers of the old generation
         * keep theirs until they exit. */
        apr_shm_destroy(pc->shm);
    }
    pc->shm = shm;
    pc->cache = cache;
    return APR_SUCCESS;
}

static int any_server_enabled(server_rec *main_s)
{
    server_rec *s;

    for (s = main_s; s; s = s->next) {
        if (mod_scep_srv_conf(s)->enabled) {
            return 1;
        }
    }
    return 0;
}

apr_status_t mod_scep_passwords_service_key(const char *label, unsigned char *out, apr_size_t len)
{
    if (store_kind != SCEP_PASSWORD_STORE_SQL) {
        return APR_ENOTIMPL;
    }
    return scep_secret_key_derive(secret_key, label, out, len);
}

apr_status_t mod_scep_passwords_post_config(server_rec *main_s)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(main_s);
    pwcache_t *pc = NULL;
    apr_status_t rv;

    pwcache = NULL;
    /* The first pass only checks the configuration; the segment made there
     * would be thrown away (or, after detaching, lose its lock file). With
     * SCEPPasswordStore sql the records hold the passwords. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG ||
        !any_server_enabled(main_s) || conf->password_store == SCEP_PASSWORD_STORE_SQL) {
        return APR_SUCCESS;
    }
    rv = pwcache_find_or_create(main_s, &pc);
    if (rv == APR_SUCCESS) {
        rv = pwcache_ensure_capacity(main_s, pc, conf->password_max);
    }
    if (rv == APR_SUCCESS) {
        pwcache = pc;
    }
    return rv;
}

void mod_scep_passwords_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (!pwcache) {
        return;
    }
    rv = apr_global_mutex_child_init(&pwcache->mutex, apr_global_mutex_lockfile(pwcache->mutex),
                                     pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     SCEPLOGNO(412) "cannot attach to the global mutex " PWCACHE_MUTEX_TYPE
                                    " of the "
                                    "password cache: passwords cannot be issued nor checked");
    }
}

/* ----------------------------------------------------------------------
 * Requests
 */

/* APR_ENOTIMPL when this server has no cache: SCEP is enabled nowhere.
 * Logged with the server: a request's page and the public API's status
 * lock it alike. */
static apr_status_t pwcache_lock(server_rec *s)
{
    apr_status_t rv;

    if (!pwcache) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     SCEPLOGNO(413) "no password cache: no server has " SCEP_CA_CERTIFICATE_FILE);
        return APR_ENOTIMPL;
    }
    rv = scep_global_mutex_lock(pwcache->mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     SCEPLOGNO(414) "cannot lock the password cache (mutex " PWCACHE_MUTEX_TYPE
                                    ")");
    }
    return rv;
}

static void pwcache_unlock(server_rec *s)
{
    apr_status_t rv = apr_global_mutex_unlock(pwcache->mutex);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     SCEPLOGNO(415) "cannot unlock the password cache (mutex " PWCACHE_MUTEX_TYPE
                                    ")");
    }
}

/* The cache as a one-time password store (scep_password_store_t); the
 * baton is the server, whose log says what fails. */
static apr_status_t shm_issue(scep_password_store_t *ps, apr_pool_t *p, const char **password,
                              apr_time_t *expires, int *waiting)
{
    server_rec *s = ps->baton;
    apr_time_t now = apr_time_now();
    apr_status_t rv = pwcache_lock(s);

    *password = NULL;
    *waiting = 0;
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = scep_pwcache_issue(pwcache->cache, p, now, &issue_opts, password, expires);
    *waiting = scep_pwcache_in_use(pwcache->cache, now);
    pwcache_unlock(s);
    return rv;
}

static apr_status_t shm_waiting(scep_password_store_t *ps, apr_pool_t *p, int *waiting)
{
    server_rec *s = ps->baton;
    apr_status_t rv = pwcache_lock(s);

    (void)p;
    *waiting = 0;
    if (rv == APR_SUCCESS) {
        *waiting = scep_pwcache_in_use(pwcache->cache, apr_time_now());
        pwcache_unlock(s);
    }
    return rv;
}

/* The cache's verdict; prob's failInfo stays NONE on a server fault. */
static apr_status_t shm_use(scep_password_store_t *ps, apr_pool_t *p, const char *challenge,
                            int key_usage, const char *spender, scep_problem_t *prob)
{
    server_rec *s = ps->baton;
    apr_status_t rv = pwcache_lock(s);

    (void)p; /* what the cache keeps lives in shared memory */
    if (rv != APR_SUCCESS) {
        return scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                            "the password cache cannot be used");
    }
    rv = scep_pwcache_use(pwcache->cache, apr_time_now(), challenge, key_usage, spender, prob);
    pwcache_unlock(s);
    if (rv != APR_SUCCESS && prob->fail_info == SCEP_FAIL_NONE) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, SCEPLOGNO(417) "%s%s", prob->text,
                     scep_event_text(prob->event));
        mod_scep_log_openssl(s, APLOG_ERR);
    }
    return rv;
}

static scep_password_store_t *shm_store(apr_pool_t *p, server_rec *s)
{
    scep_password_store_t *ps = apr_pcalloc(p, sizeof(*ps));

    ps->baton = s;
    ps->use = shm_use;
    ps->issue = shm_issue;
    ps->waiting = shm_waiting;
    return ps;
}

static scep_store_t *request_records(void *baton)
{
    return mod_scep_store_acquire(baton);
}

/* The one-time passwords of this generation: r's (NULL: the server s's,
 * through a connection of its own on p). */
static scep_password_store_t *one_time_store(apr_pool_t *p, server_rec *s, request_rec *r)
{
    if (store_kind != SCEP_PASSWORD_STORE_SQL) {
        return shm_store(p, s);
    }
    if (r) {
        return scep_password_sql(p, &sql_conf, request_records, r);
    }
    return scep_password_sql(p, &sql_conf, mod_scep_server_records,
                             mod_scep_server_records_baton(p, s));
}

/* The single password of this generation in *password: the file's (shm),
 * or the one the records hold for the service (sql; made by the first
 * server that needs it); NULL when not in single-password mode. An error
 * when the records cannot give it (logged). */
static apr_status_t single_password_of(request_rec *r, const char **password)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_store_t *store;
    apr_status_t rv;

    *password = single_password;
    if (!single_mode || store_kind != SCEP_PASSWORD_STORE_SQL) {
        return APR_SUCCESS;
    }
    store = mod_scep_store_acquire(r);
    if (!store) {
        return APR_EGENERAL;
    }
    rv = scep_single_password_sql(r->pool, store, secret_key, issue_opts.length, password, &prob);
    if (rv != APR_SUCCESS) {
        mod_scep_log_problem(r, APLOG_ERR, SCEPLOGNO(418), &prob);
    }
    return rv;
}

apr_status_t mod_scep_password_issue(request_rec *r, const char **password, apr_time_t *expires,
                                     int *waiting)
{
    scep_password_store_t *ps;
    apr_status_t rv;

    *password = NULL;
    *waiting = 0;
    if (single_mode) {
        *expires = 0;
        return single_password_of(r, password);
    }
    ps = one_time_store(r->pool, r->server, r);
    rv = ps->issue(ps, r->pool, password, expires, waiting);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOSPC(rv)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      SCEPLOGNO(416) "cannot make a one-time password");
        mod_scep_rlog_openssl(r, APLOG_ERR);
    }
    return rv;
}

apr_status_t mod_scep_passwords_waiting(apr_pool_t *p, server_rec *s, int *waiting)
{
    scep_password_store_t *ps;
    apr_pool_t *sub = NULL;
    apr_status_t rv;

    *waiting = 0;
    if (single_mode || (store_kind != SCEP_PASSWORD_STORE_SQL && !pwcache)) {
        return APR_SUCCESS;
    }
    /* Its own pool: the records' connection goes back at once. */
    rv = apr_pool_create(&sub, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    ps = one_time_store(sub, s, NULL);
    rv = ps->waiting(ps, sub, waiting);
    apr_pool_destroy(sub);
    return rv;
}

/* scep_password_store_t's use() of a request; the baton is the request. */
static apr_status_t use_password(scep_password_store_t *ps, apr_pool_t *p, const char *challenge,
                                 int key_usage, const char *spender, scep_problem_t *prob)
{
    request_rec *r = ps->baton;
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(r->server);
    scep_password_store_t *one_time;
    const char *single = NULL;

    if (!challenge || !*challenge) {
        return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NO_PASSWORD,
                            "the request carries no challenge password");
    }
    /* The sources in turn, each compared in constant time: the static
     * password (SCEPChallengePasswordFile), the single password, then the
     * one-time passwords, which alone are spent. */
    if (conf->challenge && scep_password_equal(conf->challenge, challenge)) {
        return APR_SUCCESS;
    }
    if (single_password_of(r, &single) != APR_SUCCESS) {
        return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                            "the single password cannot be read");
    }
    if (single && scep_password_equal(single, challenge)) {
        return APR_SUCCESS;
    }
    one_time = one_time_store(p, r->server, r);
    return one_time->use(one_time, p, challenge, key_usage, spender, prob);
}

scep_password_store_t *mod_scep_password_store(request_rec *r)
{
    scep_password_store_t *ps = apr_pcalloc(r->pool, sizeof(*ps));

    ps->baton = r;
    ps->use = use_password;
    return ps;
}
