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
 * The one-time passwords of a service of several servers, kept in the
 * records (SCEPPasswordStore sql; see scep_password.h). The records hold
 * no password: each is its hex HMAC under a key derived from the secret
 * key file, which every server of the service shares, so a password handed
 * out by one server is found by another, and a copy of the database alone
 * tells nothing of the passwords waiting.
 *
 * Spending is one conditional UPDATE of the records (password_spend()):
 * the database decides which of two servers spending the same half at
 * once wins, as the cache's mutex does within one server. Only when it
 * changed nothing is the row read, to tell the same request again (which
 * passes) from a refusal, and to word that refusal by the rule of
 * scep_password.c. A lookup by HMAC is an index's, not the cache's
 * constant-time scan: its timing depends on the HMAC, which says nothing
 * of the password to one who lacks the key.
 */

#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>

#include <openssl/crypto.h>

#include "scep.h"
#include "scep_enroll.h"
#include "scep_password.h"

/* HKDF's info for the passwords' HMAC key: a key of its own purpose. */
#define MAC_KEY_LABEL "mod_scep one-time password HMAC key v1"
/* The single password's name in scep_secret. */
#define SINGLE_PASSWORD_SECRET "single-password"

typedef struct pwsql_t {
    scep_password_store_t ps;
    scep_password_sql_conf_t conf;
    scep_store_t *(*records)(void *baton);
    void *records_baton;
} pwsql_t;

apr_status_t scep_password_sql_key(const unsigned char *secret,
                                   unsigned char mac_key[SCEP_PASSWORD_MAC_LEN])
{
    return scep_secret_key_derive(secret, MAC_KEY_LABEL, mac_key, SCEP_PASSWORD_MAC_LEN);
}

/* The hex HMAC of text under the store's key, on p; NULL on failure. */
static const char *hex_mac(apr_pool_t *p, const pwsql_t *pw, const char *text)
{
    unsigned char mac[SCEP_PASSWORD_MAC_LEN];
    const char *hex = NULL;

    if (scep_password_mac(pw->conf.mac_key, text, mac)) {
        hex = scep_hex(p, mac, sizeof(mac));
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return hex;
}

/* Whole seconds: what the records keep. */
static apr_time_t now_in_seconds(void)
{
    return apr_time_from_sec(apr_time_sec(apr_time_now()));
}

static apr_status_t fault(scep_problem_t *prob, apr_status_t rv, const char *text)
{
    return scep_problem(prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, text);
}

/* The records, or NULL (logged by records()). */
static scep_store_t *records_of(const pwsql_t *pw)
{
    return pw->records(pw->records_baton);
}

static apr_status_t sql_issue(scep_password_store_t *ps, apr_pool_t *p, const char **password,
                              apr_time_t *expires, int *waiting)
{
    pwsql_t *pw = ps->baton;
    scep_store_t *store = records_of(pw);
    apr_time_t now = now_in_seconds();
    const char *text = NULL, *mac;
    apr_status_t rv;

    *password = NULL;
    *waiting = 0;
    if (!store) {
        return APR_EGENERAL;
    }
    rv = scep_password_generate(p, pw->conf.opts.length, &text);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    mac = hex_mac(p, pw, text);
    if (!mac) {
        return APR_EGENERAL;
    }
    *expires = now + pw->conf.opts.validity;
    rv = store->password_add(store, p, mac, now, *expires, pw->conf.opts.max, waiting);
    if (rv == APR_SUCCESS) {
        *password = text;
    }
    return rv;
}

static apr_status_t sql_waiting(scep_password_store_t *ps, apr_pool_t *p, int *waiting)
{
    pwsql_t *pw = ps->baton;
    scep_store_t *store = records_of(pw);

    *waiting = 0;
    return store ? store->password_waiting(store, p, now_in_seconds(), waiting) : APR_EGENERAL;
}

/* 1 when the recorded spender (hex) is who, compared in constant time. */
static int same_spender(const char *recorded, const char *who)
{
    apr_size_t len = strlen(who);

    return recorded && strlen(recorded) == len && CRYPTO_memcmp(recorded, who, len) == 0;
}

/* 1 when every half in asked went to who. */
static int spent_by(const scep_password_row_t *row, int asked, const char *who)
{
    int same = 1;

    if (asked & SCEP_PASSWORD_SERVED_SIGN) {
        same &= same_spender(row->spender_sign, who);
    }
    if (asked & SCEP_PASSWORD_SERVED_ENCRYPT) {
        same &= same_spender(row->spender_encrypt, who);
    }
    return same;
}

/* After a spend that changed nothing: the same request again passes,
 * anything else is refused by the rule. */
static apr_status_t answer_unspent(scep_store_t *store, apr_pool_t *p, apr_time_t now,
                                   const char *mac, int asked, const char *who,
                                   scep_problem_t *prob)
{
    scep_password_row_t *row = NULL;
    apr_status_t rv = store->password_find(store, p, mac, &row);

    if (rv == APR_NOTFOUND) {
        return scep_password_refused(prob, SCEP_PASSWORD_SERVED_ALL);
    }
    if (rv != APR_SUCCESS) {
        return fault(prob, rv, "the one-time passwords in the records cannot be read");
    }
    /* Expired, also between the UPDATE and this read (nothing served of
     * what was asked). */
    if (row->expires <= now || (row->served & asked) == 0) {
        return scep_password_refused(prob, SCEP_PASSWORD_SERVED_ALL);
    }
    if ((row->served & asked) == asked && spent_by(row, asked, who)) {
        return APR_SUCCESS;
    }
    return scep_password_refused(prob, row->served);
}

static apr_status_t sql_use(scep_password_store_t *ps, apr_pool_t *p, const char *challenge,
                            int key_usage, const char *spender, scep_problem_t *prob)
{
    pwsql_t *pw = ps->baton;
    scep_store_t *store = records_of(pw);
    int asked = scep_password_halves(key_usage);
    apr_time_t now = now_in_seconds();
    const char *mac, *who;
    apr_status_t rv;

    if (!store) {
        return fault(prob, APR_EGENERAL, "the records cannot be reached");
    }
    mac = hex_mac(p, pw, challenge);
    who = hex_mac(p, pw, spender);
    if (!mac || !who) {
        return fault(prob, APR_EGENERAL, "cannot compute the HMAC of the challenge password");
    }
    rv = store->password_spend(store, p, mac, now, asked, who);
    if (rv == APR_EEXIST) {
        return answer_unspent(store, p, now, mac, asked, who, prob);
    }
    return rv == APR_SUCCESS
               ? rv
               : fault(prob, rv, "the one-time passwords in the records cannot be changed");
}

scep_password_store_t *scep_password_sql(apr_pool_t *p, const scep_password_sql_conf_t *conf,
                                         scep_store_t *(*records)(void *baton), void *baton)
{
    pwsql_t *pw = apr_pcalloc(p, sizeof(*pw));

    pw->conf = *conf;
    pw->records = records;
    pw->records_baton = baton;
    pw->ps.baton = pw;
    pw->ps.use = sql_use;
    pw->ps.issue = sql_issue;
    pw->ps.waiting = sql_waiting;
    return &pw->ps;
}

/* ----------------------------------------------------------------------
 * The single password
 */

/* A new single password recorded unless one is there already. */
static apr_status_t record_new_single_password(apr_pool_t *p, scep_store_t *store,
                                               const unsigned char *secret, int length,
                                               scep_problem_t *prob)
{
    const char *made = NULL, *sealed = NULL;
    apr_status_t rv = scep_password_generate(p, length, &made);

    if (rv != APR_SUCCESS) {
        return fault(prob, rv, "cannot draw random bytes for the single password");
    }
    rv = scep_single_password_seal(p, secret, made, &sealed, prob);
    if (rv == APR_SUCCESS) {
        rv = store->secret_put(store, p, SINGLE_PASSWORD_SECRET, sealed, 0);
        if (rv != APR_SUCCESS) {
            fault(prob, rv, "the single password cannot be recorded");
        }
    }
    return rv;
}

apr_status_t scep_single_password_sql(apr_pool_t *p, scep_store_t *store,
                                      const unsigned char *secret, int length,
                                      const char **password, scep_problem_t *prob)
{
    const char *sealed = NULL;
    apr_status_t rv = store->secret_get(store, p, SINGLE_PASSWORD_SECRET, &sealed);

    *password = NULL;
    if (rv == APR_NOTFOUND) {
        rv = record_new_single_password(p, store, secret, length, prob);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        /* This server's, or the one another server recorded first. */
        rv = store->secret_get(store, p, SINGLE_PASSWORD_SECRET, &sealed);
    }
    if (rv != APR_SUCCESS) {
        return fault(prob, rv, "the single password cannot be read from the records");
    }
    return scep_single_password_open(p, secret, sealed, password, prob);
}

apr_status_t scep_single_password_sql_set(apr_pool_t *p, scep_store_t *store,
                                          const unsigned char *secret, const char *password,
                                          scep_problem_t *prob)
{
    const char *sealed = NULL;
    apr_status_t rv = scep_single_password_seal(p, secret, password, &sealed, prob);

    if (rv == APR_SUCCESS) {
        rv = store->secret_put(store, p, SINGLE_PASSWORD_SECRET, sealed, 1);
        if (rv != APR_SUCCESS) {
            fault(prob, rv, "the single password cannot be recorded");
        }
    }
    return rv;
}
