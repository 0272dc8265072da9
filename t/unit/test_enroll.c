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

/* The enrollment engine (scep_enroll.c) driven by real pkiMessages, parsed
 * by scep_request_parse(), against the records on SQLite with the built-in
 * CA and a password store of the test's own; requests an external CA holds
 * with a real certmonger helper backend (t/unit/helpers/stateful around
 * certmonger's local-submit). */

#include <stdio.h>
#include <string.h>

#include <apr_dbd.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include <check.h>

#include <openssl/pem.h>

#include "scep_challenge.h"
#include "scep_ca_helper.h"
#include "scep_enroll.h"
#include "testmsg.h"
#include "testutil.h"

#define PASSWORD "device-challenge-6f1d" /* no word of the schema ("scep_secret") */
#define LOCAL_SUBMIT "/usr/lib/certmonger/local-submit"
/* Makefile.am gives the absolute path; make tidy, which compiles without
 * the Makefile's flags, this one. */
#ifndef HELPERS_DIR
#define HELPERS_DIR "t/unit/helpers"
#endif

static apr_pool_t *pool;
static const char *db_file;
static scep_sql_conn_t conn;
static scep_store_t *store;
static apr_array_header_t *lines; /* of const char *: every log line */
static scep_enroll_conf_t conf;
static scep_enroll_env_t env;
static scep_ca_builtin_conf_t ca_conf;
static scep_template_t *manual; /* "Manual": held for a CA manager */

/* The records' accessor: the store, NULL while they are "down". */
static int records_down, records_asked;
/* The password store: spends of accepted passwords; a fault on demand. */
static int spends, password_fault;
/* What records() serves: the store, or one that races another worker. */
static scep_store_t *served;
/* The racing worker records the transaction first, in this state; the
 * serial of the certificate it issued. */
static const char *race_status, *race_serial;

static void remember_line(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    (void)level;
    APR_ARRAY_PUSH(lines, const char *) = apr_pstrdup(pool, msg);
}

/* 1 when a line starts with tag ("SCEP203") and contains needle. */
static int logged(const char *tag, const char *needle)
{
    int i;

    for (i = 0; i < lines->nelts; i++) {
        const char *line = APR_ARRAY_IDX(lines, i, const char *);

        if (strncmp(line, tag, strlen(tag)) == 0 && (!needle || strstr(line, needle))) {
            return 1;
        }
    }
    return 0;
}

static scep_store_t *records(void *baton)
{
    (void)baton;
    records_asked++;
    return records_down ? NULL : served;
}

static apr_status_t use_password(scep_password_store_t *ps, apr_pool_t *p, const char *challenge,
                                 int key_usage, const char *spender, scep_problem_t *prob)
{
    (void)ps;
    (void)p;
    (void)key_usage;
    ck_assert_ptr_nonnull(spender);
    if (password_fault) {
        return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE, "broken");
    }
    if (!challenge) {
        return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NO_PASSWORD,
                            "the request carries no challenge password");
    }
    if (strcmp(challenge, PASSWORD) != 0) {
        return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD,
                            "the challenge password is not valid");
    }
    spends++;
    return APR_SUCCESS;
}

static scep_password_store_t passwords = { NULL, use_password };
/* SCEPEnforcePassword's check: the password store alone */
static const scep_challenge_list_t password_only = { 1, { SCEP_CHALLENGE_METHOD_PASSWORD } };
static scep_challenge_checks_t checks;

/* A test CA backend: refuses, or fails. */
static apr_status_t refusing_issue(scep_ca_backend_t *ca, apr_pool_t *p, X509_REQ *csr,
                                   const scep_template_t *tmpl, X509 **cert,
                                   scep_ca_ticket_t *ticket, scep_problem_t *prob)
{
    (void)p;
    (void)ticket;
    (void)csr;
    (void)tmpl;
    *cert = NULL;
    return ca->baton ? scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_SUBMIT,
                                    "the CA does not like it")
                     : scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
}

static apr_status_t no_crl(scep_ca_backend_t *ca, apr_pool_t *p, scep_store_t *s, X509_CRL **crl,
                           scep_problem_t *prob)
{
    (void)ca;
    (void)p;
    (void)s;
    *crl = NULL;
    return scep_problem(prob, APR_ENOTIMPL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_GETCRL_FAILED,
                        "no CRL here");
}

/* A store whose record() finds that another worker recorded the same
 * transaction first, in race_status. */
static scep_store_t racing;

static X509 *issued_by_another(apr_pool_t *p, X509 *cert)
{
    X509_REQ *csr = X509_to_X509_REQ(cert, NULL, NULL);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_ca_ticket_t ticket = { NULL, 0 };
    X509 *other = NULL;

    SCEP_OWN(p, csr, X509_REQ_free);
    ck_assert_int_eq(env.ca->issue(env.ca, p, csr, NULL, &other, &ticket, &prob), APR_SUCCESS);
    race_serial = scep_serial_hex(p, X509_get0_serialNumber(other));
    return other;
}

static apr_status_t record_after_another(scep_store_t *s, apr_pool_t *p, const scep_txn_t *txn,
                                         X509 *cert)
{
    scep_txn_t first = *txn;
    int held = strcmp(race_status, SCEP_TXN_PENDING) == 0;

    (void)s;
    first.status = race_status;
    ck_assert_int_eq(store->record(store, p, &first, held ? NULL : issued_by_another(p, cert)),
                     APR_SUCCESS);
    return store->record(store, p, txn, cert);
}

static apr_status_t close_connection(void *data)
{
    (void)data;
    return apr_dbd_close(conn.driver, conn.handle);
}

static void open_store(void)
{
    const char *error = NULL;

    db_file = testutil_path(pool, testutil_tempdir(pool), "scep.db");
    ck_assert_int_eq(apr_dbd_init(pool), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_get_driver(pool, "sqlite3", &conn.driver), APR_SUCCESS);
    ck_assert_msg(apr_dbd_open_ex(conn.driver, pool, db_file, &conn.handle, &error) == APR_SUCCESS,
                  "%s", error ? error : "cannot open");
    apr_pool_cleanup_register(pool, NULL, close_connection, apr_pool_cleanup_null);
    conn.prepared = apr_hash_make(pool);
    ck_assert_int_eq(scep_store_sql(pool, &conn, remember_line, NULL, &store), APR_SUCCESS);
    served = store;
}

static void setup(void)
{
    apr_array_header_t *templates;

    apr_pool_create(&pool, NULL);
    lines = apr_array_make(pool, 8, sizeof(const char *));
    records_down = records_asked = spends = password_fault = 0;
    open_store();
    templates = apr_array_make(pool, 2, sizeof(scep_template_t *));
    APR_ARRAY_PUSH(templates, scep_template_t *) = scep_template_builtin(pool);
    manual = scep_template_new(pool, "Manual");
    manual->issuance = SCEP_ISSUANCE_MANUAL;
    APR_ARRAY_PUSH(templates, scep_template_t *) = manual;
    conf = (scep_enroll_conf_t){ .pki = testmsg_pki(),
                                 .challenge_checks = &password_only,
                                 .renewal_subject_match = 1,
                                 .cache_request_minutes = 20,
                                 .refresh_period_days = 7,
                                 .signature_template = SCEP_BUILTIN_TEMPLATE,
                                 .encryption_template = SCEP_BUILTIN_TEMPLATE,
                                 .general_purpose_template = SCEP_BUILTIN_TEMPLATE,
                                 .templates = templates };
    checks = (scep_challenge_checks_t){ .by_method = {
                                            [SCEP_CHALLENGE_METHOD_PASSWORD] =
                                                scep_challenge_password(pool, &passwords),
                                        } };
    ca_conf = (scep_ca_builtin_conf_t){
        .pki = testmsg_pki(), .validity_days = 30, .md = EVP_sha256(), .crl_validity_hours = 24
    };
    env = (scep_enroll_env_t){ .pool = pool,
                               .conf = &conf,
                               .records = records,
                               .ca = scep_ca_builtin(pool, &ca_conf),
                               .challenge_checks = &checks,
                               .log = remember_line,
                               .client_addr = "192.0.2.1" };
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* ----------------------------------------------------------------------
 * Messages
 */

static scep_request_t *parsed(const testmsg_device_t *signer, const testmsg_opts_t *opts)
{
    scep_parse_opts_t popts = { 0, 0 };
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_request_t *req = NULL;
    apr_size_t len;
    unsigned char *der = testmsg_build(pool, signer, opts, &len);

    ck_assert_msg(scep_request_parse(pool, testmsg_pki(), der, len, &popts, &req, &prob) ==
                      APR_SUCCESS,
                  "%s", prob.text);
    return req;
}

static scep_outcome_t run(const scep_request_t *req)
{
    scep_outcome_t outcome;

    scep_enroll_message(&env, req, &outcome);
    return outcome;
}

/* The CSR (DER) of the last request(), as the device sent it. */
static const unsigned char *sent_csr;
static apr_size_t sent_csr_len;

/* A request of type (PKCSReq, RenewalReq) signed by signer for csr_dev's
 * key: subject CN, challenge, keyUsage (NULL: none). */
static scep_outcome_t request(int type, const char *txid, const testmsg_device_t *signer,
                              const testmsg_device_t *csr_dev, const char *cn,
                              const char *challenge)
{
    testmsg_opts_t opts;
    apr_size_t len;
    unsigned char *csr = testmsg_csr(pool, csr_dev, cn, challenge, "digitalSignature", &len);

    sent_csr = csr;
    sent_csr_len = len;
    testmsg_defaults(&opts, csr, len);
    opts.message_type = type;
    opts.transaction_id = txid;
    return run(parsed(signer, &opts));
}

static scep_outcome_t enroll(const char *txid, const testmsg_device_t *dev, const char *cn)
{
    return request(SCEP_MSG_PKCSREQ, txid, dev, dev, cn, PASSWORD);
}

/* DER SEQUENCE around content (short or two-byte lengths). */
static unsigned char *sequence(const unsigned char *content, apr_size_t n, apr_size_t *len)
{
    unsigned char *der = apr_palloc(pool, n + 4);
    apr_size_t head = n < 128 ? 2 : 4;

    der[0] = 0x30;
    if (n < 128) {
        der[1] = (unsigned char)n;
    }
    else {
        der[1] = 0x82;
        der[2] = (unsigned char)(n >> 8);
        der[3] = (unsigned char)n;
    }
    memcpy(der + head, content, n);
    *len = n + head;
    return der;
}

static apr_size_t name_der(const X509_NAME *name, unsigned char *buf)
{
    unsigned char *der = NULL;
    int n = i2d_X509_NAME(name, &der);

    memcpy(buf, der, (size_t)n);
    OPENSSL_free(der);
    return (apr_size_t)n;
}

static scep_outcome_t poll_as(const char *txid, const testmsg_device_t *dev, const char *cn)
{
    unsigned char names[1024];
    X509_NAME *subject = testutil_name(pool, apr_pstrcat(pool, "/CN=", cn, NULL));
    apr_size_t n = name_der(X509_get_subject_name(testmsg_pki()->ca_cert), names), len;
    testmsg_opts_t opts;
    unsigned char *body;

    n += name_der(subject, names + n);
    body = sequence(names, n, &len);
    testmsg_defaults(&opts, body, len);
    opts.message_type = SCEP_MSG_CERTPOLL;
    opts.transaction_id = txid;
    return run(parsed(dev, &opts));
}

/* GetCert or GetCRL naming issuer's certificate serial. */
static scep_outcome_t get(int type, const X509_NAME *issuer, const ASN1_INTEGER *serial)
{
    testmsg_opts_t opts;
    apr_size_t len;
    unsigned char *body = testmsg_issuer_and_serial(pool, issuer, serial, &len);

    ck_assert_ptr_nonnull(body);
    testmsg_defaults(&opts, body, len);
    opts.message_type = type;
    opts.transaction_id = "get";
    return run(parsed(testmsg_device(pool, "getter"), &opts));
}

static const char *serial_of(X509 *cert)
{
    return scep_serial_hex(pool, X509_get0_serialNumber(cert));
}

static const char *status_of(const char *txid)
{
    scep_txn_t *txn;

    if (store->find_transaction(store, pool, txid, &txn) != APR_SUCCESS) {
        return NULL;
    }
    return txn->status;
}

static void assert_refused(const scep_outcome_t *o, scep_fail_info_t fail_info, int event)
{
    ck_assert_int_eq(o->kind, SCEP_OUTCOME_REFUSED);
    ck_assert_int_eq(o->problem.fail_info, fail_info);
    ck_assert_int_eq(o->problem.event, event);
    ck_assert_ptr_nonnull(o->problem.text);
}

static void set_created(const char *txid, const char *when)
{
    int nrows;
    const char *sql = apr_psprintf(pool,
                                   "UPDATE scep_request SET created = '%s' "
                                   "WHERE transaction_id = '%s'",
                                   when, txid);

    ck_assert_int_eq(apr_dbd_query(conn.driver, conn.handle, &nrows, sql), 0);
    ck_assert_int_eq(nrows, 1);
}

/* ----------------------------------------------------------------------
 * Replays
 */

START_TEST(issued_request_replayed)
{
    testmsg_device_t *dev = testmsg_device(pool, "a.example");
    scep_outcome_t first = enroll("T1", dev, "a.example"), again;

    ck_assert_int_eq(first.kind, SCEP_OUTCOME_ISSUED);
    ck_assert(logged("SCEP207", "a.example"));
    ck_assert_str_eq(status_of("T1"), SCEP_TXN_ISSUED);
    again = enroll("T1", dev, "a.example");
    ck_assert_int_eq(again.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_str_eq(serial_of(again.cert), serial_of(first.cert));
    ck_assert(logged("SCEP204", serial_of(first.cert)));
    /* the replay is answered before the password: spent once */
    ck_assert_int_eq(spends, 1);
}
END_TEST

START_TEST(replay_with_another_key_or_request_refused)
{
    testmsg_device_t *dev = testmsg_device(pool, "b.example");
    scep_outcome_t o;

    ck_assert_int_eq(enroll("T2", dev, "b.example").kind, SCEP_OUTCOME_ISSUED);
    o = enroll("T2", testmsg_device(pool, "b.example"), "b.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert(logged("SCEP203", "PKCSReq for transaction T2 refused"));
    o = enroll("T2", dev, "other.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert(logged("SCEP250", NULL));
    ck_assert_str_eq(status_of("T2"), SCEP_TXN_ISSUED);
}
END_TEST

START_TEST(issued_request_beyond_cache_refused)
{
    testmsg_device_t *dev = testmsg_device(pool, "c.example");
    scep_outcome_t o;

    conf.cache_request_minutes = -1;
    ck_assert_int_eq(enroll("T3", dev, "c.example").kind, SCEP_OUTCOME_ISSUED);
    o = enroll("T3", dev, "c.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NONE);
    ck_assert(logged("SCEP216", "GetCert with serial number"));
}
END_TEST

START_TEST(unknown_poll_refused)
{
    scep_outcome_t o = poll_as("NONE", testmsg_device(pool, "d.example"), "d.example");

    assert_refused(&o, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_FAIL_TO_GET_ID);
    ck_assert(logged("SCEP210", "CertPoll for transaction NONE"));
}
END_TEST

/* ----------------------------------------------------------------------
 * Held requests
 */

START_TEST(held_request_approved)
{
    testmsg_device_t *dev = testmsg_device(pool, "h.example");
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_outcome_t o, resent;
    scep_txn_t *txn;

    conf.standalone = 1;
    ck_assert_int_eq(enroll("H1", dev, "h.example").kind, SCEP_OUTCOME_HELD);
    ck_assert(logged("SCEP265", "from 192.0.2.1"));
    ck_assert_int_eq(poll_as("H1", dev, "h.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(enroll("H1", dev, "h.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(scep_enroll_approve(&env, "H1", "alice", &prob), APR_SUCCESS);
    ck_assert(logged("SCEP221", "approved by alice"));
    ck_assert_int_eq(scep_enroll_approve(&env, "H1", "alice", &prob), APR_EEXIST);
    ck_assert_int_eq(scep_enroll_approve(&env, "NONE", "alice", &prob), APR_NOTFOUND);
    o = poll_as("H1", dev, "h.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(store->find_transaction(store, pool, "H1", &txn), APR_SUCCESS);
    ck_assert_str_eq(serial_of(o.cert), txn->serial);
    ck_assert_str_eq(txn->decided_by, "alice");
    /* an approved request's certificate outlives SCEPCacheRequest */
    conf.cache_request_minutes = -1;
    resent = enroll("H1", dev, "h.example");
    ck_assert_int_eq(resent.kind, SCEP_OUTCOME_ISSUED);
}
END_TEST

START_TEST(approved_by_scepctl_issued_at_the_next_poll)
{
    testmsg_device_t *dev = testmsg_device(pool, "s.example");
    scep_outcome_t o;

    conf.standalone = 1;
    ck_assert_int_eq(enroll("S1", dev, "s.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(
        store->decide(store, pool, "S1", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "bob", NULL),
        APR_SUCCESS);
    o = poll_as("S1", dev, "s.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert(logged("SCEP217", "approved by bob"));
    ck_assert_str_eq(status_of("S1"), SCEP_TXN_ISSUED);
}
END_TEST

START_TEST(held_request_denied)
{
    testmsg_device_t *dev = testmsg_device(pool, "x.example");
    scep_outcome_t o;

    conf.standalone = 1;
    ck_assert_int_eq(enroll("D1", dev, "x.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(scep_enroll_deny(&env, "D1", "carol", "not ours"), APR_SUCCESS);
    ck_assert(logged("SCEP222", "denied by carol: not ours"));
    ck_assert_int_eq(scep_enroll_deny(&env, "D1", "carol", "again"), APR_EEXIST);
    o = poll_as("D1", dev, "x.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert_str_eq(o.problem.text, "not ours");
    ck_assert(logged("SCEP205", NULL));
    /* the refused transaction answers the same to a resent request */
    o = enroll("D1", dev, "x.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert_str_eq(o.problem.text, "not ours");
}
END_TEST

START_TEST(approval_the_template_refuses_now)
{
    testmsg_device_t *dev = testmsg_device(pool, "m.example");
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_outcome_t o;

    conf.signature_template = "Manual";
    ck_assert_int_eq(enroll("M1", dev, "m.example").kind, SCEP_OUTCOME_HELD);
    ck_assert(logged("SCEP262", "template Manual"));
    /* the template now takes EC keys only */
    manual->key_types = SCEP_KEYTYPE_EC;
    ck_assert_int_eq(scep_enroll_approve(&env, "M1", "dave", &prob), APR_EINVAL);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert(logged("SCEP220", "approved by dave cannot be issued"));
    ck_assert_str_eq(status_of("M1"), SCEP_TXN_REJECTED);
    o = poll_as("M1", dev, "m.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert_str_eq(o.problem.text, prob.text);
}
END_TEST

START_TEST(held_request_expires)
{
    testmsg_device_t *dev = testmsg_device(pool, "e.example");
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_outcome_t o;

    conf.standalone = 1;
    ck_assert_int_eq(enroll("E1", dev, "e.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(enroll("E2", testmsg_device(pool, "f.example"), "f.example").kind,
                     SCEP_OUTCOME_HELD);
    ck_assert_int_eq(enroll("E3", testmsg_device(pool, "g.example"), "g.example").kind,
                     SCEP_OUTCOME_HELD);
    set_created("E1", "2000-01-01T00:00:00Z");
    set_created("E2", "2000-01-01T00:00:00Z");
    set_created("E3", "2000-01-01T00:00:00Z");
    o = poll_as("E1", dev, "e.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert(logged("SCEP219", "waited 7 days"));
    ck_assert_str_eq(status_of("E1"), SCEP_TXN_EXPIRED);
    ck_assert_int_eq(scep_enroll_approve(&env, "E2", "alice", &prob), APR_EEXIST);
    ck_assert_str_eq(status_of("E2"), SCEP_TXN_EXPIRED);
    ck_assert_int_eq(scep_enroll_expire_pending(&env), APR_SUCCESS);
    ck_assert_str_eq(status_of("E3"), SCEP_TXN_EXPIRED);
}
END_TEST

/* ----------------------------------------------------------------------
 * Races, records, the CA backend
 */

START_TEST(concurrent_record_answers_what_it_recorded)
{
    testmsg_device_t *dev = testmsg_device(pool, "r.example");
    scep_outcome_t o;

    racing = *store;
    racing.record = record_after_another;
    served = &racing;
    /* the other worker held what this one would issue */
    race_status = SCEP_TXN_PENDING;
    o = enroll("R1", dev, "r.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_HELD);
    ck_assert_str_eq(status_of("R1"), SCEP_TXN_PENDING);
    /* the other worker issued: its certificate is the answer */
    race_status = SCEP_TXN_ISSUED;
    o = enroll("R2", testmsg_device(pool, "q.example"), "q.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_str_eq(serial_of(o.cert), race_serial);
    ck_assert_str_eq(status_of("R2"), SCEP_TXN_ISSUED);
}
END_TEST

START_TEST(records_down_refused_after_the_signer_check)
{
    testmsg_device_t *dev = testmsg_device(pool, "u.example");
    scep_outcome_t o;

    /* signed by another key than the CSR's: refused before the records */
    o = request(SCEP_MSG_PKCSREQ, "U1", testmsg_device(pool, "u.example"), dev, "u.example",
                PASSWORD);
    assert_refused(&o, SCEP_FAIL_BAD_MESSAGE_CHECK, SCEP_EVENT_FAIL_DECODE_X509_REQUEST);
    ck_assert(logged("SCEP209", NULL));
    ck_assert_int_eq(records_asked, 0);
    records_down = 1;
    o = enroll("U1", dev, "u.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NONE);
    ck_assert_ptr_nonnull(strstr(o.problem.text, "records cannot be reached"));
    ck_assert_int_eq(spends, 0);
}
END_TEST

/* Every outcome becomes a CertRep: a fault a FAILURE too, never an HTTP
 * error; an issued certificate comes first, the CA after it on request. */
START_TEST(outcome_as_certrep)
{
    const scep_pki_t *pki = testmsg_pki();
    scep_ca_backend_t broken = { NULL, refusing_issue, no_crl };
    scep_outcome_t o = enroll("R1", testmsg_device(pool, "r.example"), "r.example");
    scep_reply_t reply;

    scep_enroll_reply(pool, pki, 0, &o, &reply);
    ck_assert_int_eq(reply.status, SCEP_STATUS_SUCCESS);
    ck_assert_int_eq(sk_X509_num(reply.certs), 1);
    ck_assert_ptr_eq(sk_X509_value(reply.certs, 0), o.cert);
    scep_enroll_reply(pool, pki, 1, &o, &reply);
    ck_assert_int_eq(sk_X509_num(reply.certs), 2 + (pki->chain ? sk_X509_num(pki->chain) : 0));
    ck_assert_ptr_eq(sk_X509_value(reply.certs, 0), o.cert);
    ck_assert_ptr_eq(sk_X509_value(reply.certs, 1), pki->ca_cert);
    env.ca = &broken;
    o = enroll("R2", testmsg_device(pool, "r2.example"), "r2.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    scep_enroll_reply(pool, pki, 0, &o, &reply);
    ck_assert_int_eq(reply.status, SCEP_STATUS_FAILURE);
    ck_assert_int_eq(reply.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_ptr_nonnull(strstr(reply.fail_text, "its log says why"));
    /* a fault that names what failed tells the device so */
    o.problem.text = "the challenge program failed; nothing was issued, try again later";
    scep_enroll_reply(pool, pki, 0, &o, &reply);
    ck_assert_str_eq(reply.fail_text, o.problem.text);
    o = (scep_outcome_t){ .kind = SCEP_OUTCOME_HELD };
    scep_enroll_reply(pool, pki, 0, &o, &reply);
    ck_assert_int_eq(reply.status, SCEP_STATUS_PENDING);
}
END_TEST

START_TEST(failing_ca_backend_records_nothing)
{
    static char refuse[] = "refuse";
    scep_ca_backend_t refusing = { refuse, refusing_issue, no_crl };
    scep_ca_backend_t broken = { NULL, refusing_issue, no_crl };
    scep_outcome_t o;

    env.ca = &refusing;
    o = enroll("C1", testmsg_device(pool, "ca.example"), "ca.example");
    assert_refused(&o, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_SUBMIT);
    ck_assert_str_eq(o.problem.text, "the CA does not like it");
    ck_assert(logged("SCEP206", "the CA does not like it (NDES event 31)"));
    ck_assert_ptr_null(status_of("C1"));
    env.ca = &broken;
    o = enroll("C2", testmsg_device(pool, "ca.example"), "ca.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    ck_assert_ptr_null(status_of("C2"));
    /* GetCRL of a backend without a CRL: event 44 */
    o = get(SCEP_MSG_GETCRL, X509_get_subject_name(testmsg_pki()->ca_cert),
            X509_get0_serialNumber(testmsg_pki()->ca_cert));
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_GETCRL_FAILED);
    ck_assert(logged("SCEP234", "no CRL here"));
}
END_TEST

/* ----------------------------------------------------------------------
 * The password rule
 */

START_TEST(password_rule)
{
    testmsg_device_t *dev = testmsg_device(pool, "p.example");
    scep_outcome_t o;

    o = request(SCEP_MSG_PKCSREQ, "P1", dev, dev, "p.example", NULL);
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NO_PASSWORD);
    ck_assert(logged("SCEP201", "(NDES event 28)"));
    o = request(SCEP_MSG_PKCSREQ, "P1", dev, dev, "p.example", "wrong");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert(logged("SCEP201", "(NDES event 29)"));
    ck_assert_int_eq(spends, 0);
    ck_assert_ptr_null(status_of("P1"));
    password_fault = 1;
    o = enroll("P1", dev, "p.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    ck_assert_ptr_null(status_of("P1"));
    /* SCEPEnforcePassword Off: no password asked */
    conf.challenge_checks = NULL;
    o = request(SCEP_MSG_PKCSREQ, "P1", dev, dev, "p.example", NULL);
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
}
END_TEST

/* ----------------------------------------------------------------------
 * Challenge checks (scep_challenge.h): the methods combined, with fakes
 */

/* A fake method: its answer, how often it was asked, what it was told. */
typedef enum { FAKE_ALLOW, FAKE_DENY, FAKE_FAULT } fake_answer_t;
typedef struct fake_method_t {
    fake_answer_t answer;
    int asked;
    scep_challenge_facts_t facts; /* the last request's */
} fake_method_t;

static apr_status_t fake_check(scep_challenge_check_t *cc, apr_pool_t *p,
                               const scep_challenge_facts_t *facts, scep_problem_t *prob)
{
    fake_method_t *fake = cc->baton;

    (void)p;
    fake->asked++;
    fake->facts = *facts;
    switch (fake->answer) {
    case FAKE_ALLOW:
        return APR_SUCCESS;
    case FAKE_DENY:
        return scep_problem(prob, APR_EACCES, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD,
                            apr_pstrcat(pool, cc->name, " says no", NULL));
    default:
        return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                            apr_pstrcat(pool, cc->name, " timed out", NULL));
    }
}

static fake_method_t fake_webhook, fake_program;
static scep_challenge_check_t webhook_check = { "webhook", &fake_webhook, fake_check };
static scep_challenge_check_t program_check = { "program", &fake_program, fake_check };

/* The checks of setup() plus the two fakes, asked by list. */
static void check_with(const scep_challenge_list_t *list)
{
    fake_webhook = (fake_method_t){ FAKE_ALLOW, 0, { 0 } };
    fake_program = (fake_method_t){ FAKE_ALLOW, 0, { 0 } };
    checks.by_method[SCEP_CHALLENGE_METHOD_WEBHOOK] = &webhook_check;
    checks.by_method[SCEP_CHALLENGE_METHOD_PROGRAM] = &program_check;
    conf.challenge_checks = list;
}

START_TEST(challenge_password_then_program)
{
    static const scep_challenge_list_t list = {
        2, { SCEP_CHALLENGE_METHOD_PASSWORD, SCEP_CHALLENGE_METHOD_PROGRAM }
    };
    testmsg_device_t *dev = testmsg_device(pool, "c.example");
    scep_outcome_t o;

    check_with(&list);
    /* the password allows: the program is not asked */
    o = enroll("CP1", dev, "c.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(spends, 1);
    ck_assert_int_eq(fake_program.asked, 0);
    ck_assert(logged("SCEP287", "CP1: the challenge check password allowed it"));
    /* a wrong password: the program decides, and allows */
    o = request(SCEP_MSG_PKCSREQ, "CP2", dev, dev, "c.example", "wrong");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(fake_program.asked, 1);
    ck_assert(logged("SCEP287", "CP2: the challenge check program allowed it"));
    /* both refuse: the answer is the last method's refusal */
    fake_program.answer = FAKE_DENY;
    o = request(SCEP_MSG_PKCSREQ, "CP3", dev, dev, "c.example", "wrong");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_str_eq(o.problem.text, "program says no");
    ck_assert(logged("SCEP201", "CP3 refused: program says no (NDES event 29)"));
    /* one line for the refusal: the template chosen is not logged yet */
    ck_assert(!logged("SCEP262", "CP3"));
    ck_assert(logged("SCEP262", "CP2"));
    ck_assert_ptr_null(status_of("CP3"));
    /* no password at all: the program still decides (event of its refusal) */
    o = request(SCEP_MSG_PKCSREQ, "CP4", dev, dev, "c.example", NULL);
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_int_eq(fake_program.asked, 3);
    /* the password store's fault: closed at once, the program not asked */
    password_fault = 1;
    fake_program.answer = FAKE_ALLOW;
    o = request(SCEP_MSG_PKCSREQ, "CP5", dev, dev, "c.example", "wrong");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    ck_assert_int_eq(fake_program.asked, 3);
    ck_assert(logged("SCEP288", "CP5: the challenge check password could not decide (broken): "
                                "nothing was issued (NDES event 29)"));
    ck_assert_ptr_null(status_of("CP5"));
}
END_TEST

START_TEST(challenge_program_alone)
{
    static const scep_challenge_list_t list = { 1, { SCEP_CHALLENGE_METHOD_PROGRAM } };
    testmsg_device_t *dev = testmsg_device(pool, "c.example");
    scep_outcome_t o;

    check_with(&list);
    o = request(SCEP_MSG_PKCSREQ, "CA1", dev, dev, "c.example", "mdm-challenge");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    /* what it was told; the password store was not asked */
    ck_assert_int_eq(spends, 0);
    ck_assert_str_eq(fake_program.facts.challenge, "mdm-challenge");
    ck_assert_str_eq(fake_program.facts.transaction_id, "CA1");
    ck_assert_str_eq(fake_program.facts.message_type, "PKCSReq");
    ck_assert_str_eq(fake_program.facts.template_name, SCEP_BUILTIN_TEMPLATE);
    ck_assert_str_eq(fake_program.facts.client_addr, "192.0.2.1");
    ck_assert_int_eq(fake_program.facts.key_usage, 0x80);
    ck_assert_ptr_nonnull(fake_program.facts.csr);
    ck_assert(strncmp(fake_program.facts.spender, "CA1|", 4) == 0);
    /* even the right password does not pass without the program */
    fake_program.answer = FAKE_DENY;
    o = enroll("CA2", dev, "c.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_int_eq(spends, 0);
    ck_assert_ptr_null(status_of("CA2"));
    /* a fault fails closed */
    fake_program.answer = FAKE_FAULT;
    o = enroll("CA3", dev, "c.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    ck_assert(logged("SCEP288", "program could not decide (program timed out)"));
    /* the device learns which check failed */
    ck_assert_str_eq(o.problem.text, "program timed out; nothing was issued, try again later");
    ck_assert_ptr_null(status_of("CA3"));
    /* a listed method without a check cannot allow */
    fake_program.answer = FAKE_ALLOW;
    checks.by_method[SCEP_CHALLENGE_METHOD_PROGRAM] = NULL;
    o = enroll("CA4", dev, "c.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    ck_assert(logged("SCEP288", "the challenge check program is not configured"));
    ck_assert_ptr_null(status_of("CA4"));
}
END_TEST

START_TEST(challenge_fault_never_passes_on)
{
    static const scep_challenge_list_t list = {
        3,
        { SCEP_CHALLENGE_METHOD_WEBHOOK, SCEP_CHALLENGE_METHOD_PROGRAM,
          SCEP_CHALLENGE_METHOD_PASSWORD },
    };
    testmsg_device_t *dev = testmsg_device(pool, "c.example");
    scep_outcome_t o;

    check_with(&list);
    fake_webhook.answer = FAKE_FAULT;
    o = enroll("CF1", dev, "c.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    ck_assert_int_eq(fake_program.asked, 0);
    ck_assert_int_eq(spends, 0);
    /* a refusal passes on: webhook, then program, then the password */
    fake_webhook.answer = FAKE_DENY;
    fake_program.answer = FAKE_DENY;
    o = enroll("CF2", dev, "c.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(fake_webhook.asked, 2);
    ck_assert_int_eq(fake_program.asked, 1);
    ck_assert_int_eq(spends, 1);
    /* the program's fault after the webhook's refusal: closed */
    fake_program.answer = FAKE_FAULT;
    o = enroll("CF3", dev, "c.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    ck_assert_int_eq(spends, 1);
}
END_TEST

START_TEST(challenge_by_template)
{
    static const scep_challenge_list_t server = { 1, { SCEP_CHALLENGE_METHOD_PASSWORD } };
    static const scep_challenge_list_t program = { 1, { SCEP_CHALLENGE_METHOD_PROGRAM } };
    testmsg_device_t *dev = testmsg_device(pool, "t.example");
    scep_outcome_t o;

    check_with(&server);
    /* keyUsage digitalSignature: the Manual template, checked by the program */
    conf.signature_template = "Manual";
    manual->challenge_checks = &program;
    o = request(SCEP_MSG_PKCSREQ, "CT1", dev, dev, "t.example", "wrong");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_HELD);
    ck_assert_str_eq(fake_program.facts.template_name, "Manual");
    ck_assert_int_eq(spends, 0);
    /* the server's password does not help under that template */
    fake_program.answer = FAKE_DENY;
    o = enroll("CT2", dev, "t.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_int_eq(spends, 0);
    /* the challenge comes before the template's policy: a device refused
     * by both learns the challenge's refusal only */
    manual->key_types = SCEP_KEYTYPE_EC;
    o = enroll("CT3", dev, "t.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_str_eq(o.problem.text, "program says no");
    ck_assert(!logged("SCEP263", "CT3"));
    fake_program.answer = FAKE_ALLOW;
    o = enroll("CT4", dev, "t.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_REFUSED);
    ck_assert(logged("SCEP263", "CT4"));
    /* without a list of its own, a template uses the server's */
    manual->challenge_checks = NULL;
    manual->key_types = SCEP_KEYTYPE_RSA | SCEP_KEYTYPE_EC;
    fake_program.asked = 0;
    o = enroll("CT5", dev, "t.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(fake_program.asked, 0);
    ck_assert_int_eq(spends, 1);
}
END_TEST

/* ----------------------------------------------------------------------
 * Renewal
 */

/* The device holding the certificate issued to dev: it signs a renewal. */
static testmsg_device_t *holder_of(const testmsg_device_t *dev, X509 *cert)
{
    testmsg_device_t *holder = apr_pcalloc(pool, sizeof(*holder));

    holder->key = dev->key;
    holder->cert = cert;
    return holder;
}

START_TEST(renewal_rules)
{
    testmsg_device_t *dev = testmsg_device(pool, "n.example");
    testmsg_device_t *next = testmsg_device(pool, "n.example");
    testmsg_device_t *holder;
    const scep_pki_t *pki = testmsg_pki();
    X509 *stranger;
    scep_outcome_t o;

    o = enroll("N1", dev, "n.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    holder = holder_of(dev, o.cert);
    /* a new key, no password */
    o = request(SCEP_MSG_RENEWALREQ, "N2", holder, next, "n.example", NULL);
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert(logged("SCEP240", serial_of(holder->cert)));
    ck_assert_int_eq(spends, 1);
    /* other names: refused unless the rule is off */
    o = request(SCEP_MSG_RENEWALREQ, "N3", holder, next, "other.example", NULL);
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NO_PASSWORD);
    ck_assert(logged("SCEP239", "differs from the signer's"));
    conf.renewal_subject_match = 0;
    o = request(SCEP_MSG_RENEWALREQ, "N4", holder, next, "other.example", NULL);
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    /* a certificate of this CA that the records do not know */
    stranger =
        testutil_cert(pool, "/CN=n.example", dev->key, NULL, 0, 0, pki->ca_cert, pki->ca_key);
    o = request(SCEP_MSG_RENEWALREQ, "N5", holder_of(dev, stranger), next, "n.example", NULL);
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NO_PASSWORD);
    ck_assert(logged("SCEP237", "not issued through this service"));
    /* a revoked one */
    ck_assert_int_eq(store->revoke(store, pool, serial_of(holder->cert), 1), APR_SUCCESS);
    o = request(SCEP_MSG_RENEWALREQ, "N6", holder, next, "n.example", NULL);
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NO_PASSWORD);
    ck_assert(logged("SCEP238", "is revoked"));
    /* a self-signed signer does not verify against this CA */
    o = request(SCEP_MSG_RENEWALREQ, "N7", dev, next, "n.example", NULL);
    assert_refused(&o, SCEP_FAIL_BAD_MESSAGE_CHECK, SCEP_EVENT_NO_PASSWORD);
    ck_assert(logged("SCEP236", "does not verify"));
}
END_TEST

START_TEST(renewal_not_challenge_checked)
{
    static const scep_challenge_list_t list = { 1, { SCEP_CHALLENGE_METHOD_PROGRAM } };
    testmsg_device_t *dev = testmsg_device(pool, "r.example");
    testmsg_device_t *next = testmsg_device(pool, "r.example");
    scep_outcome_t o;

    check_with(&list);
    o = request(SCEP_MSG_PKCSREQ, "CR1", dev, dev, "r.example", "mdm");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    fake_program.answer = FAKE_FAULT;
    o = request(SCEP_MSG_RENEWALREQ, "CR2", holder_of(dev, o.cert), next, "r.example", NULL);
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(fake_program.asked, 1);
}
END_TEST

/* ----------------------------------------------------------------------
 * GetCert, GetCRL
 */

START_TEST(getcert_and_getcrl)
{
    const X509_NAME *ca = X509_get_subject_name(testmsg_pki()->ca_cert);
    X509_NAME *other = testutil_name(pool, "/CN=Another CA");
    scep_outcome_t issued = enroll("G1", testmsg_device(pool, "k.example"), "k.example"), o;
    ASN1_INTEGER *unknown = ASN1_INTEGER_new();

    SCEP_OWN(pool, unknown, ASN1_INTEGER_free);
    ASN1_INTEGER_set(unknown, 4242);
    o = get(SCEP_MSG_GETCERT, ca, X509_get0_serialNumber(issued.cert));
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(X509_cmp(o.cert, issued.cert), 0);
    ck_assert(logged("SCEP232", NULL));
    o = get(SCEP_MSG_GETCERT, ca, unknown);
    assert_refused(&o, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_FAIL_TO_GET_CERT_FROM_NUMBER);
    ck_assert(logged("SCEP231", NULL));
    records_asked = 0;
    o = get(SCEP_MSG_GETCERT, other, unknown);
    assert_refused(&o, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_NOMATCH_ISSUERNAME_SERIALNUMBER);
    ck_assert(logged("SCEP230", "Another CA"));
    o = get(SCEP_MSG_GETCRL, other, unknown);
    assert_refused(&o, SCEP_FAIL_BAD_CERT_ID, SCEP_EVENT_NOMATCH_ISSUERNAME_SERIALNUMBER);
    ck_assert(logged("SCEP233", NULL));
    /* issuers are checked before the records are asked */
    ck_assert_int_eq(records_asked, 0);
    ck_assert_int_eq(store->revoke(store, pool, serial_of(issued.cert), 1), APR_SUCCESS);
    o = get(SCEP_MSG_GETCRL, ca, unknown);
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_ptr_nonnull(o.crl);
    ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(o.crl)), 1);
    ck_assert(logged("SCEP235", "with 1 revoked"));
}
END_TEST

/* ----------------------------------------------------------------------
 * Requests an external CA holds
 */

static const char *ca_state; /* the stateful helper's state directory */

/* The external CA: helpers/stateful around local-submit, whose certificates
 * (FETCH-ROOTS) are the chain of what it issues; behind helpers/verify-csr
 * (a CA that verifies the CSR's signature) when verifying. */
static void external_ca_verifying(int verifying)
{
    const char *dir = testutil_tempdir(pool);
    const char *local[] = { LOCAL_SUBMIT, "-d", dir, NULL };
    const char **argv = apr_pcalloc(pool, 5 * sizeof(*argv));
    scep_ca_helper_conf_t fetch = { .argv = local, .log = remember_line };
    scep_ca_helper_conf_t *helper = apr_pcalloc(pool, sizeof(*helper));
    STACK_OF(X509) *roots = NULL;

    ca_state = testutil_tempdir(pool);
    ck_assert_int_eq(scep_ca_helper_fetch_roots(scep_ca_helper(pool, &fetch), pool, &roots),
                     APR_SUCCESS);
    if (verifying) {
        *argv++ = HELPERS_DIR "/verify-csr";
    }
    argv[0] = HELPERS_DIR "/stateful";
    argv[1] = dir;
    argv[2] = ca_state;
    helper->argv = verifying ? argv - 1 : argv;
    helper->ca_chain = roots;
    helper->log = remember_line;
    env.ca = scep_ca_helper(pool, helper);
}

static void external_ca(void)
{
    external_ca_verifying(0);
}

/* What the CA answers to operation ("submit", "poll") from now on. */
static void ca_answers(const char *operation, const char *answer)
{
    FILE *f = fopen(testutil_path(pool, ca_state, operation), "w");

    ck_assert_ptr_nonnull(f);
    fputs(answer, f);
    fclose(f);
}

/* How many times the helper ran. */
static int ca_runs(void)
{
    FILE *f = fopen(testutil_path(pool, ca_state, "runs"), "r");
    int n = 0, c;

    while (f && (c = fgetc(f)) != EOF) {
        n += c == '\n';
    }
    if (f) {
        fclose(f);
    }
    return n;
}

static scep_txn_t *record_of(const char *txid)
{
    scep_txn_t *txn = NULL;

    ck_assert_int_eq(store->find_transaction(store, pool, txid, &txn), APR_SUCCESS);
    return txn;
}

/* The CA's advice has passed: the next poll is due. */
static void make_due(const char *txid)
{
    int nrows;
    const char *sql = apr_psprintf(pool,
                                   "UPDATE scep_request SET ca_poll_at = %" APR_TIME_T_FMT
                                   " WHERE transaction_id = '%s'",
                                   apr_time_sec(apr_time_now()) - 1, txid);

    ck_assert_int_eq(apr_dbd_query(conn.driver, conn.handle, &nrows, sql), 0);
    ck_assert_int_eq(nrows, 1);
}

/* A new request the CA holds: PENDING, recorded with the helper's cookie
 * and its advice (7 s). */
static testmsg_device_t *held_at_ca(const char *txid, const char *cn)
{
    testmsg_device_t *dev = testmsg_device(pool, cn);
    int runs = ca_runs();
    apr_time_t before = apr_time_now();
    scep_txn_t *txn;

    ck_assert_int_eq(enroll(txid, dev, cn).kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), runs + 1);
    txn = record_of(txid);
    ck_assert_str_eq(txn->status, SCEP_TXN_PENDING);
    ck_assert_str_eq(txn->ca_ticket, apr_psprintf(pool, "cookie %d", runs + 1));
    ck_assert_int_ge(apr_time_sec(txn->ca_poll_at), apr_time_sec(before) + 7);
    ck_assert_int_le(apr_time_sec(txn->ca_poll_at), apr_time_sec(apr_time_now()) + 7);
    ck_assert_ptr_nonnull(txn->csr_pem);
    ck_assert(logged("SCEP241", txid));
    return dev;
}

static void assert_key_of(X509 *cert, const testmsg_device_t *dev)
{
    ck_assert_ptr_nonnull(cert);
    ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(cert), dev->key), 1);
}

START_TEST(ca_holds_then_issues_when_polled)
{
    testmsg_device_t *dev;
    scep_outcome_t o, again;
    scep_txn_t *txn;

    external_ca();
    dev = held_at_ca("C1", "c1.example");
    /* not due: PENDING without asking the CA */
    ck_assert_int_eq(poll_as("C1", dev, "c1.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 1);
    /* a resent request is answered as held, the CA not asked */
    make_due("C1");
    ck_assert_int_eq(enroll("C1", dev, "c1.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 1);
    ck_assert_int_eq(spends, 1);
    /* due, still waiting: asked with the cookie, a new one recorded */
    o = poll_as("C1", dev, "c1.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 2);
    ck_assert_str_eq(record_of("C1")->ca_ticket, "cookie 2");
    ck_assert(logged("SCEP245", "C1"));
    /* due, issued */
    ca_answers("poll", "issue");
    make_due("C1");
    o = poll_as("C1", dev, "c1.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    assert_key_of(o.cert, dev);
    ck_assert_int_eq(ca_runs(), 3);
    txn = record_of("C1");
    ck_assert_str_eq(txn->status, SCEP_TXN_ISSUED);
    ck_assert_str_eq(txn->serial, serial_of(o.cert));
    ck_assert_str_eq(txn->decided_by, SCEP_DECIDED_BY_CA);
    ck_assert_ptr_null(txn->ca_ticket);
    ck_assert_ptr_null(txn->csr_pem);
    ck_assert(logged("SCEP243", serial_of(o.cert)));
    /* polled again: the recorded certificate, the CA not asked */
    again = poll_as("C1", dev, "c1.example");
    ck_assert_int_eq(again.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_str_eq(serial_of(again.cert), serial_of(o.cert));
    ck_assert_int_eq(ca_runs(), 3);
}
END_TEST

START_TEST(ca_rejects_when_polled)
{
    testmsg_device_t *dev;
    scep_outcome_t o;
    scep_txn_t *txn;

    external_ca();
    dev = held_at_ca("C2", "c2.example");
    ca_answers("poll", "reject");
    make_due("C2");
    o = poll_as("C2", dev, "c2.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_SUBMIT);
    ck_assert_ptr_nonnull(strstr(o.problem.text, "the CA's officer refused it"));
    txn = record_of("C2");
    ck_assert_str_eq(txn->status, SCEP_TXN_REJECTED);
    ck_assert_str_eq(txn->decided_by, SCEP_DECIDED_BY_CA);
    ck_assert_ptr_nonnull(strstr(txn->reason, "the CA's officer refused it"));
    ck_assert_ptr_null(txn->ca_ticket);
    ck_assert(logged("SCEP244", "(NDES event 31)"));
    ck_assert(logged("SCEP252", "CertPoll for transaction C2 refused"));
    /* the rejection stays */
    o = poll_as("C2", dev, "c2.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert_int_eq(ca_runs(), 2);
}
END_TEST

START_TEST(ca_fault_when_polled_waits)
{
    testmsg_device_t *dev;
    scep_txn_t *txn;

    external_ca();
    dev = held_at_ca("C3", "c3.example");
    ca_answers("poll", "unreachable");
    make_due("C3");
    ck_assert_int_eq(poll_as("C3", dev, "c3.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 2);
    ck_assert(logged("SCEP246", "C3"));
    /* the same cookie, asked again after the default wait */
    txn = record_of("C3");
    ck_assert_str_eq(txn->status, SCEP_TXN_PENDING);
    ck_assert_str_eq(txn->ca_ticket, "cookie 1");
    ck_assert_int_ge(apr_time_sec(txn->ca_poll_at), apr_time_sec(apr_time_now()) + 50);
}
END_TEST

/* A store whose find_transaction() lets another process claim the poll
 * of a request the CA holds right after this one read the record. */
static apr_status_t find_then_claimed_elsewhere(scep_store_t *s, apr_pool_t *p, const char *txid,
                                                scep_txn_t **txn)
{
    apr_status_t rv = store->find_transaction(store, p, txid, txn);
    apr_time_t seen = rv == APR_SUCCESS ? (*txn)->ca_poll_at : 0;

    (void)s;
    if (seen) {
        ck_assert_int_eq(store->claim_ca_poll(store, p, txid, seen, seen + apr_time_from_sec(300)),
                         APR_SUCCESS);
    }
    return rv;
}

/* Two processes claim a due poll: one asks the CA. */
START_TEST(ca_poll_claimed_once)
{
    testmsg_device_t *dev;
    scep_outcome_t o;

    external_ca();
    dev = held_at_ca("C4", "c4.example");
    ca_answers("poll", "issue");
    make_due("C4");
    racing = *store;
    racing.find_transaction = find_then_claimed_elsewhere;
    served = &racing;
    ck_assert_int_eq(poll_as("C4", dev, "c4.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 1);
    /* the claim's time has not come */
    served = store;
    ck_assert_int_eq(poll_as("C4", dev, "c4.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 1);
    /* the claimer died: due again after it */
    make_due("C4");
    o = poll_as("C4", dev, "c4.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    assert_key_of(o.cert, dev);
    ck_assert_int_eq(ca_runs(), 2);
}
END_TEST

/* The background round asks about the due requests, no device polling. */
START_TEST(background_round_asks_the_due_ones)
{
    int asked = -1;
    scep_txn_t *txn;

    external_ca();
    held_at_ca("C5", "c5.example");
    held_at_ca("C6", "c6.example");
    ca_answers("poll", "issue");
    make_due("C5");
    ck_assert_int_eq(scep_enroll_poll_ca(&env, &asked), APR_SUCCESS);
    ck_assert_int_eq(asked, 1);
    ck_assert_int_eq(ca_runs(), 3);
    txn = record_of("C5");
    ck_assert_str_eq(txn->status, SCEP_TXN_ISSUED);
    ck_assert_ptr_nonnull(txn->cert_pem);
    ck_assert_ptr_null(txn->ca_ticket);
    ck_assert_str_eq(record_of("C6")->status, SCEP_TXN_PENDING);
    /* nothing due: nothing asked */
    ck_assert_int_eq(scep_enroll_poll_ca(&env, &asked), APR_SUCCESS);
    ck_assert_int_eq(asked, 0);
    ck_assert_int_eq(ca_runs(), 3);
    /* expired by SCEPRefreshPeriod: not asked, expired */
    make_due("C6");
    set_created("C6", "2020-01-01T00:00:00Z");
    ck_assert_int_eq(scep_enroll_poll_ca(&env, &asked), APR_SUCCESS);
    ck_assert_int_eq(asked, 0);
    ck_assert_int_eq(ca_runs(), 3);
    ck_assert_str_eq(record_of("C6")->status, SCEP_TXN_EXPIRED);
    ck_assert_ptr_null(record_of("C6")->ca_ticket);
    /* the records down */
    records_down = 1;
    ck_assert_int_eq(scep_enroll_poll_ca(&env, &asked), APR_EGENERAL);
    ck_assert_int_eq(asked, 0);
}
END_TEST

/* The CA decides a request it holds: a manager can deny it, not approve. */
START_TEST(approval_of_a_request_the_ca_holds_refused)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_txn_t *txn;

    external_ca();
    held_at_ca("C7", "c7.example");
    held_at_ca("C8", "c8.example");
    ck_assert_int_eq(scep_enroll_approve(&env, "C7", "alice", &prob), APR_EBUSY);
    ck_assert(logged("SCEP249", "alice"));
    txn = record_of("C7");
    ck_assert_str_eq(txn->status, SCEP_TXN_PENDING);
    ck_assert_str_eq(txn->ca_ticket, "cookie 1");
    ck_assert_int_eq(ca_runs(), 2);
    ck_assert_int_eq(scep_enroll_deny(&env, "C7", "alice", "not ours"), APR_SUCCESS);
    txn = record_of("C7");
    ck_assert_str_eq(txn->status, SCEP_TXN_REJECTED);
    ck_assert_str_eq(txn->decided_by, "alice");
    ck_assert_ptr_null(txn->ca_ticket);
    /* the built-in CA configured since: a manager may approve, it issues */
    env.ca = scep_ca_builtin(pool, &ca_conf);
    ck_assert(!scep_enroll_at_ca(&env, record_of("C8")));
    make_due("C8");
    ck_assert_int_eq(scep_enroll_approve(&env, "C8", "bob", &prob), APR_SUCCESS);
    txn = record_of("C8");
    ck_assert_str_eq(txn->status, SCEP_TXN_ISSUED);
    ck_assert_str_eq(txn->decided_by, "bob");
    ck_assert_ptr_null(txn->ca_ticket);
    ck_assert_int_eq(ca_runs(), 2);
}
END_TEST

/* Without poll() (the built-in CA configured since), a request the CA held
 * stays held: PENDING, nobody asked. */
START_TEST(request_the_ca_held_waits_without_poll)
{
    testmsg_device_t *dev;
    int asked = -1;

    external_ca();
    dev = held_at_ca("C9", "c9.example");
    make_due("C9");
    env.ca = scep_ca_builtin(pool, &ca_conf);
    ck_assert_int_eq(poll_as("C9", dev, "c9.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(scep_enroll_poll_ca(&env, &asked), APR_SUCCESS);
    ck_assert_int_eq(asked, 0);
    ck_assert_int_eq(ca_runs(), 1);
    ck_assert_str_eq(record_of("C9")->status, SCEP_TXN_PENDING);
}
END_TEST

/* SCEPCAType Standalone: a manager approves, then the CA holds it. */
START_TEST(standalone_approval_submitted_to_the_ca)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    testmsg_device_t *dev = testmsg_device(pool, "s1.example");
    testmsg_device_t *dev2 = testmsg_device(pool, "s2.example");
    scep_outcome_t o;
    scep_txn_t *txn;

    conf.standalone = 1;
    external_ca();
    ck_assert_int_eq(enroll("S1", dev, "s1.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 0);
    ck_assert_ptr_null(record_of("S1")->ca_ticket);
    ck_assert_int_eq(scep_enroll_approve(&env, "S1", "alice", &prob), APR_EINCOMPLETE);
    ck_assert(logged("SCEP242", "approved by alice"));
    ck_assert_int_eq(ca_runs(), 1);
    txn = record_of("S1");
    ck_assert_str_eq(txn->status, SCEP_TXN_PENDING);
    ck_assert_str_eq(txn->ca_ticket, "cookie 1");
    ck_assert_str_eq(txn->decided_by, "alice");
    ck_assert(scep_enroll_at_ca(&env, txn));
    /* the CA issues at the device's next due poll; alice stays the approver */
    ca_answers("poll", "issue");
    make_due("S1");
    o = poll_as("S1", dev, "s1.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    assert_key_of(o.cert, dev);
    txn = record_of("S1");
    ck_assert_str_eq(txn->status, SCEP_TXN_ISSUED);
    ck_assert_str_eq(txn->decided_by, "alice");
    /* approved by scepctl: submitted at the device's next poll */
    ca_answers("poll", "wait");
    ck_assert_int_eq(enroll("S2", dev2, "s2.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(
        store->decide(store, pool, "S2", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "carol", NULL),
        APR_SUCCESS);
    ck_assert_int_eq(poll_as("S2", dev2, "s2.example").kind, SCEP_OUTCOME_HELD);
    ck_assert(logged("SCEP242", "approved by carol"));
    txn = record_of("S2");
    ck_assert_str_eq(txn->status, SCEP_TXN_PENDING);
    ck_assert_str_eq(txn->ca_ticket, "cookie 3");
    ck_assert_int_eq(ca_runs(), 3);
}
END_TEST

/* A held request the CA holds expires after SCEPRefreshPeriod as any. */
START_TEST(request_the_ca_holds_expires)
{
    testmsg_device_t *dev;
    scep_outcome_t o;

    external_ca();
    dev = held_at_ca("E1", "e1.example");
    make_due("E1");
    set_created("E1", "2020-01-01T00:00:00Z");
    o = poll_as("E1", dev, "e1.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert(logged("SCEP219", "SCEPRefreshPeriod"));
    ck_assert_str_eq(record_of("E1")->status, SCEP_TXN_EXPIRED);
    ck_assert_ptr_null(record_of("E1")->ca_ticket);
    ck_assert_int_eq(ca_runs(), 1);
}
END_TEST

/* A CA refusing at once, or failing, records nothing (as before tickets). */
START_TEST(ca_refusal_and_fault_at_submission)
{
    scep_outcome_t o;

    external_ca();
    ca_answers("submit", "reject");
    o = enroll("R1", testmsg_device(pool, "r1.example"), "r1.example");
    assert_refused(&o, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_SUBMIT);
    ck_assert_ptr_null(status_of("R1"));
    ca_answers("submit", "unreachable");
    o = enroll("R2", testmsg_device(pool, "r2.example"), "r2.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_FAULT);
    ck_assert_ptr_null(status_of("R2"));
}
END_TEST

/* ----------------------------------------------------------------------
 * The device's CSR sealed for an external CA
 */

static X509 *cert_of_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);

    BIO_free(bio);
    ck_assert_ptr_nonnull(cert);
    SCEP_OWN(pool, cert, X509_free);
    return cert;
}

/* The CSR the CA got last (helpers/stateful leaves it) is the device's as
 * it sent it (der), and its signature verifies. */
static void assert_ca_got(const unsigned char *der, apr_size_t len)
{
    char *pem;
    apr_size_t pem_len;
    const char *why = NULL;
    X509_REQ *csr;
    unsigned char *got = NULL;
    int n;

    ck_assert_msg(scep_read_file(pool, testutil_path(pool, ca_state, "csr"), 1 << 20, &pem,
                                 &pem_len, &why) == APR_SUCCESS,
                  "%s", why);
    csr = testutil_csr_of_pem(pool, pem);
    ck_assert_int_eq(X509_REQ_verify(csr, X509_REQ_get0_pubkey(csr)), 1);
    n = i2d_X509_REQ(csr, &got);
    ck_assert_int_eq(n, (int)len);
    ck_assert_int_eq(memcmp(got, der, len), 0);
    OPENSSL_free(got);
}

/* 1 when the bytes of text are anywhere in the database's files. */
static int in_database_files(const char *text)
{
    const char *suffixes[] = { "", "-wal", "-journal" };
    apr_size_t n = strlen(text), len, i, j;
    const char *why;
    char *data;

    for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (scep_read_file(pool, apr_pstrcat(pool, db_file, suffixes[i], NULL), 64 << 20, &data,
                           &len, &why) != APR_SUCCESS) {
            continue;
        }
        for (j = 0; j + n <= len; j++) {
            if (memcmp(data + j, text, n) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* Held for a manager or by the CA under an external CA, a request keeps
 * the device's CSR sealed (not in the clear: no challenge password in the
 * database's files); under the built-in CA, nothing is sealed. */
START_TEST(held_csr_sealed_under_an_external_ca)
{
    const char *ids[] = { "P2", "P3" };
    scep_txn_t *txn;
    X509_REQ *at_rest;
    int i;

    conf.standalone = 1;
    ck_assert_int_eq(enroll("P1", testmsg_device(pool, "p1.example"), "p1.example").kind,
                     SCEP_OUTCOME_HELD);
    ck_assert_ptr_null(record_of("P1")->csr_sealed);
    external_ca();
    ck_assert_int_eq(enroll("P2", testmsg_device(pool, "p2.example"), "p2.example").kind,
                     SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 0);
    conf.standalone = 0;
    held_at_ca("P3", "p3.example");
    for (i = 0; i < 2; i++) {
        txn = record_of(ids[i]);
        ck_assert_ptr_nonnull(txn->csr_sealed);
        ck_assert_int_eq(strncmp(txn->csr_sealed, "-----BEGIN CMS-----", 19), 0);
        /* the CSR at rest stays as it was: no password, no valid signature */
        at_rest = testutil_csr_of_pem(pool, txn->csr_pem);
        ck_assert_int_lt(X509_REQ_get_attr_by_NID(at_rest, NID_pkcs9_challengePassword, -1), 0);
        ck_assert_int_ne(X509_REQ_verify(at_rest, X509_REQ_get0_pubkey(at_rest)), 1);
    }
    ck_assert(!in_database_files(PASSWORD));
    ck_assert(in_database_files("p3.example")); /* what the search finds */
}
END_TEST

/* poll() gets the device's CSR as it came, signature intact, from the
 * sealed copy, which is gone once the request is decided. */
START_TEST(ca_polled_with_the_devices_csr)
{
    testmsg_device_t *dev;
    const unsigned char *der;
    apr_size_t len;
    scep_outcome_t o;
    scep_txn_t *txn;
    int asked;

    external_ca();
    dev = held_at_ca("V1", "v1.example");
    der = sent_csr;
    len = sent_csr_len;
    assert_ca_got(der, len);
    ca_answers("poll", "issue");
    make_due("V1");
    o = poll_as("V1", dev, "v1.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(ca_runs(), 2);
    assert_ca_got(der, len);
    txn = record_of("V1");
    ck_assert_ptr_null(txn->csr_sealed);
    ck_assert_ptr_null(txn->csr_pem);
    /* wiped by the CA's rejection, a denial and expiry too */
    held_at_ca("V2", "v2.example");
    held_at_ca("V3", "v3.example");
    held_at_ca("V4", "v4.example");
    ca_answers("poll", "reject");
    make_due("V2");
    ck_assert_int_eq(scep_enroll_poll_ca(&env, &asked), APR_SUCCESS);
    ck_assert_int_eq(scep_enroll_deny(&env, "V3", "alice", "no"), APR_SUCCESS);
    set_created("V4", "2020-01-01T00:00:00Z");
    ck_assert_int_eq(scep_enroll_expire_pending(&env), APR_SUCCESS);
    ck_assert_str_eq(record_of("V2")->status, SCEP_TXN_REJECTED);
    ck_assert_str_eq(record_of("V3")->status, SCEP_TXN_REJECTED);
    ck_assert_str_eq(record_of("V4")->status, SCEP_TXN_EXPIRED);
    ck_assert_ptr_null(record_of("V2")->csr_sealed);
    ck_assert_ptr_null(record_of("V3")->csr_sealed);
    ck_assert_ptr_null(record_of("V4")->csr_sealed);
}
END_TEST

/* A CA that verifies the CSR's signature (helpers/verify-csr) issues from
 * the sealed copy, and refuses the CSR at rest. */
START_TEST(verifying_ca_issues_from_the_sealed_csr)
{
    testmsg_device_t *dev, *dev2;
    scep_outcome_t o;
    int nrows;

    external_ca_verifying(1);
    dev = held_at_ca("W1", "w1.example");
    dev2 = held_at_ca("W2", "w2.example");
    ca_answers("poll", "issue");
    make_due("W1");
    o = poll_as("W1", dev, "w1.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    assert_key_of(o.cert, dev);
    /* the CSR at rest alone (as before the seal) is refused by such a CA */
    ck_assert_int_eq(apr_dbd_query(conn.driver, conn.handle, &nrows,
                                   "UPDATE scep_request SET csr_sealed = NULL"
                                   " WHERE transaction_id = 'W2'"),
                     0);
    make_due("W2");
    o = poll_as("W2", dev2, "w2.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_REFUSED);
    ck_assert_msg(strstr(o.problem.text, "signature does not verify"), "%s", o.problem.text);
    ck_assert_int_eq(ca_runs(), 3);
}
END_TEST

/* SCEPCAType Standalone in front of a CA that verifies the CSR's
 * signature: a manager's approval (and scepctl's, at the device's next
 * message) is issued. */
START_TEST(standalone_approval_by_a_verifying_ca)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    testmsg_device_t *dev = testmsg_device(pool, "sv1.example");
    testmsg_device_t *dev2 = testmsg_device(pool, "sv2.example");
    scep_outcome_t o;
    scep_txn_t *txn;

    conf.standalone = 1;
    external_ca_verifying(1);
    ca_answers("submit", "issue");
    ck_assert_int_eq(enroll("SV1", dev, "sv1.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(ca_runs(), 0);
    ck_assert_int_eq(scep_enroll_approve(&env, "SV1", "alice", &prob), APR_SUCCESS);
    ck_assert(logged("SCEP221", "approved by alice"));
    txn = record_of("SV1");
    ck_assert_str_eq(txn->status, SCEP_TXN_ISSUED);
    ck_assert_ptr_null(txn->csr_sealed);
    assert_key_of(cert_of_pem(txn->cert_pem), dev);
    ck_assert_int_eq(ca_runs(), 1);
    ck_assert_int_eq(enroll("SV2", dev2, "sv2.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(
        store->decide(store, pool, "SV2", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "carol", NULL),
        APR_SUCCESS);
    ck_assert_ptr_nonnull(record_of("SV2")->csr_sealed);
    o = poll_as("SV2", dev2, "sv2.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    assert_key_of(o.cert, dev2);
    ck_assert_ptr_null(record_of("SV2")->csr_sealed);
    ck_assert_int_eq(ca_runs(), 2);
}
END_TEST

static void set_sealed(const char *txid, const char *sealed)
{
    int nrows;
    const char *sql = apr_psprintf(pool,
                                   "UPDATE scep_request SET csr_sealed = '%s'"
                                   " WHERE transaction_id = '%s'",
                                   sealed, txid);

    ck_assert_int_eq(apr_dbd_query(conn.driver, conn.handle, &nrows, sql), 0);
    ck_assert_int_eq(nrows, 1);
}

/* A sealed CSR that does not open (the RA encryption key replaced since,
 * or the copy altered) or is another request's is not given to the CA:
 * the request stays held, logged, until a manager denies it. */
START_TEST(sealed_csr_that_does_not_open_stays_held)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    testmsg_device_t *dev;
    scep_txn_t *txn;
    const char *sealed;
    char *altered;

    external_ca();
    dev = held_at_ca("K1", "k1.example");
    conf.standalone = 1;
    ck_assert_int_eq(enroll("K2", testmsg_device(pool, "k2.example"), "k2.example").kind,
                     SCEP_OUTCOME_HELD);
    conf.pki = testutil_pki_load(pool, testutil_pki_create(pool), 1);
    ca_answers("poll", "issue");
    ca_answers("submit", "issue");
    make_due("K1");
    ck_assert_int_eq(poll_as("K1", dev, "k1.example").kind, SCEP_OUTCOME_HELD);
    ck_assert(logged("SCEP253", "transaction K1"));
    ck_assert(logged("SCEP246", "transaction K1"));
    txn = record_of("K1");
    ck_assert_str_eq(txn->status, SCEP_TXN_PENDING);
    ck_assert_str_eq(txn->ca_ticket, "cookie 1");
    ck_assert_int_eq(scep_enroll_approve(&env, "K2", "alice", &prob), APR_EGENERAL);
    ck_assert(logged("SCEP253", "transaction K2"));
    ck_assert_str_eq(record_of("K2")->status, SCEP_TXN_PENDING);
    ck_assert_int_eq(ca_runs(), 1);
    ck_assert_int_eq(scep_enroll_deny(&env, "K1", "alice", "RA key replaced"), APR_SUCCESS);
    ck_assert_int_eq(scep_enroll_deny(&env, "K2", "alice", "RA key replaced"), APR_SUCCESS);
    ck_assert_ptr_null(record_of("K1")->csr_sealed);
    ck_assert_ptr_null(record_of("K2")->csr_sealed);
    /* the key of the seal again: an altered copy, another request's copy */
    conf.pki = testmsg_pki();
    ck_assert_int_eq(enroll("K3", testmsg_device(pool, "k3.example"), "k3.example").kind,
                     SCEP_OUTCOME_HELD);
    ck_assert_int_eq(enroll("K4", testmsg_device(pool, "k4.example"), "k4.example").kind,
                     SCEP_OUTCOME_HELD);
    sealed = record_of("K3")->csr_sealed;
    altered = apr_pstrdup(pool, sealed);
    altered[strlen(altered) / 2] = altered[strlen(altered) / 2] == 'A' ? 'B' : 'A';
    set_sealed("K3", altered);
    set_sealed("K4", sealed);
    ck_assert_int_eq(scep_enroll_approve(&env, "K3", "alice", &prob), APR_EGENERAL);
    ck_assert(logged("SCEP253", "transaction K3"));
    ck_assert_int_eq(scep_enroll_approve(&env, "K4", "alice", &prob), APR_EGENERAL);
    ck_assert(logged("SCEP254", "transaction K4"));
    ck_assert_int_eq(ca_runs(), 1);
}
END_TEST

/* Servers sharing the records: a ticket is asked about by the backend that
 * made it (its name recorded), never by another server's. */
START_TEST(ticket_asked_about_by_its_own_backend)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    testmsg_device_t *dev;
    int asked = -1;

    external_ca();
    env.ca->name = "helper a.example:443";
    dev = held_at_ca("N1", "n1.example");
    ck_assert_str_eq(record_of("N1")->ca_backend, "helper a.example:443");
    ca_answers("poll", "issue");
    make_due("N1");
    env.ca->name = "helper b.example:443";
    ck_assert_int_eq(poll_as("N1", dev, "n1.example").kind, SCEP_OUTCOME_HELD);
    ck_assert(logged("SCEP255", "held by helper a.example:443, not by this server's helper "
                                "b.example:443"));
    ck_assert_int_eq(scep_enroll_poll_ca(&env, &asked), APR_SUCCESS);
    ck_assert_int_eq(asked, 0);
    ck_assert_int_eq(ca_runs(), 1);
    ck_assert_str_eq(record_of("N1")->status, SCEP_TXN_PENDING);
    /* the CA decides there: no approval here either */
    ck_assert_int_eq(scep_enroll_approve(&env, "N1", "alice", &prob), APR_EBUSY);
    env.ca->name = "helper a.example:443";
    ck_assert_int_eq(scep_enroll_poll_ca(&env, &asked), APR_SUCCESS);
    ck_assert_int_eq(asked, 1);
    ck_assert_str_eq(record_of("N1")->status, SCEP_TXN_ISSUED);
    ck_assert_ptr_null(record_of("N1")->ca_backend);
    /* a Standalone approval names the approving server's backend */
    conf.standalone = 1;
    ck_assert_int_eq(enroll("N2", testmsg_device(pool, "n2.example"), "n2.example").kind,
                     SCEP_OUTCOME_HELD);
    ck_assert_ptr_null(record_of("N2")->ca_backend);
    ck_assert_int_eq(scep_enroll_approve(&env, "N2", "alice", &prob), APR_EINCOMPLETE);
    ck_assert_str_eq(record_of("N2")->ca_backend, "helper a.example:443");
}
END_TEST

/* ----------------------------------------------------------------------
 * Decisions told from answers that repeat them (mod_status's figures)
 */

START_TEST(repeated_answers_told_from_decisions)
{
    testmsg_device_t *dev = testmsg_device(pool, "n.example");
    testmsg_device_t *held = testmsg_device(pool, "p.example");
    testmsg_device_t *ctl = testmsg_device(pool, "q.example");
    testmsg_device_t *denied = testmsg_device(pool, "w.example");
    testmsg_device_t *late = testmsg_device(pool, "v.example");
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_outcome_t o;

    o = enroll("N1", dev, "n.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(o.repeated, 0);
    o = enroll("N1", dev, "n.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(o.repeated, 1);
    /* another key: a refusal of this message, decided now */
    o = enroll("N1", testmsg_device(pool, "n.example"), "n.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_REFUSED);
    ck_assert_int_eq(o.repeated, 0);
    conf.standalone = 1;
    o = enroll("N2", held, "p.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(o.repeated, 0);
    ck_assert_int_eq(poll_as("N2", held, "p.example").repeated, 1);
    ck_assert_int_eq(enroll("N2", held, "p.example").repeated, 1);
    /* issued by a manager's approval (counted there): the poll repeats it */
    ck_assert_int_eq(scep_enroll_approve(&env, "N2", "alice", &prob), APR_SUCCESS);
    o = poll_as("N2", held, "p.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(o.repeated, 1);
    /* approved by scepctl: issued at the poll, decided now */
    ck_assert_int_eq(enroll("N3", ctl, "q.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(
        store->decide(store, pool, "N3", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "bob", NULL),
        APR_SUCCESS);
    o = poll_as("N3", ctl, "q.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_ISSUED);
    ck_assert_int_eq(o.repeated, 0);
    /* denied (counted by the manager page): the poll repeats the refusal */
    ck_assert_int_eq(enroll("N4", denied, "w.example").kind, SCEP_OUTCOME_HELD);
    ck_assert_int_eq(scep_enroll_deny(&env, "N4", "carol", "no"), APR_SUCCESS);
    o = poll_as("N4", denied, "w.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_REFUSED);
    ck_assert_int_eq(o.repeated, 1);
    /* expired while held: no new refusal either */
    ck_assert_int_eq(enroll("N5", late, "v.example").kind, SCEP_OUTCOME_HELD);
    set_created("N5", "2000-01-01T00:00:00Z");
    o = poll_as("N5", late, "v.example");
    ck_assert_int_eq(o.kind, SCEP_OUTCOME_REFUSED);
    ck_assert(logged("SCEP219", "N5"));
    ck_assert_int_eq(o.repeated, 1);
}
END_TEST

Suite *scep_enroll_suite(void);

Suite *scep_enroll_suite(void)
{
    Suite *s = suite_create("enroll");
    TCase *tc = testutil_case(s, "replays", setup, teardown);

    tcase_add_test(tc, issued_request_replayed);
    tcase_add_test(tc, replay_with_another_key_or_request_refused);
    tcase_add_test(tc, issued_request_beyond_cache_refused);
    tcase_add_test(tc, unknown_poll_refused);
    tc = testutil_case(s, "held", setup, teardown);
    tcase_add_test(tc, held_request_approved);
    tcase_add_test(tc, approved_by_scepctl_issued_at_the_next_poll);
    tcase_add_test(tc, held_request_denied);
    tcase_add_test(tc, approval_the_template_refuses_now);
    tcase_add_test(tc, held_request_expires);
    tc = testutil_case(s, "external CA", setup, teardown);
    tcase_add_test(tc, ca_holds_then_issues_when_polled);
    tcase_add_test(tc, ca_rejects_when_polled);
    tcase_add_test(tc, ca_fault_when_polled_waits);
    tcase_add_test(tc, ca_poll_claimed_once);
    tcase_add_test(tc, background_round_asks_the_due_ones);
    tcase_add_test(tc, approval_of_a_request_the_ca_holds_refused);
    tcase_add_test(tc, request_the_ca_held_waits_without_poll);
    tcase_add_test(tc, standalone_approval_submitted_to_the_ca);
    tcase_add_test(tc, request_the_ca_holds_expires);
    tcase_add_test(tc, ca_refusal_and_fault_at_submission);
    tcase_add_test(tc, held_csr_sealed_under_an_external_ca);
    tcase_add_test(tc, ca_polled_with_the_devices_csr);
    tcase_add_test(tc, verifying_ca_issues_from_the_sealed_csr);
    tcase_add_test(tc, standalone_approval_by_a_verifying_ca);
    tcase_add_test(tc, sealed_csr_that_does_not_open_stays_held);
    tcase_add_test(tc, ticket_asked_about_by_its_own_backend);
    tc = testutil_case(s, "faults", setup, teardown);
    tcase_add_test(tc, concurrent_record_answers_what_it_recorded);
    tcase_add_test(tc, records_down_refused_after_the_signer_check);
    tcase_add_test(tc, failing_ca_backend_records_nothing);
    tcase_add_test(tc, outcome_as_certrep);
    tc = testutil_case(s, "rules", setup, teardown);
    tcase_add_test(tc, password_rule);
    tcase_add_test(tc, challenge_password_then_program);
    tcase_add_test(tc, challenge_program_alone);
    tcase_add_test(tc, challenge_fault_never_passes_on);
    tcase_add_test(tc, challenge_by_template);
    tcase_add_test(tc, renewal_not_challenge_checked);
    tcase_add_test(tc, renewal_rules);
    tcase_add_test(tc, getcert_and_getcrl);
    tc = testutil_case(s, "repeated", setup, teardown);
    tcase_add_test(tc, repeated_answers_told_from_decisions);
    return s;
}
