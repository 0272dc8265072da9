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

/* scep_store_sql(): the records on a real SQLite database through apr_dbd,
 * as scepctl opens them (the module's use runs in the integration tests,
 * on SQLite and PostgreSQL). */

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include <check.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "scep.h"
#include "testutil.h"

static apr_pool_t *pool;
static scep_pki_t *pki;
static EVP_PKEY *device_key;
static const char *db_file;
static scep_sql_conn_t conn;
static const char *last_error; /* the store's last failure message */
static int failures;           /* lines at warning or worse */
static int renewals;           /* connections the store asked renew() for */
static int renew_read_only;    /* renew() gives connections that refuse writes too */

static void remember_failure(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    if (level <= SCEP_LOG_WARNING) {
        last_error = apr_pstrdup(pool, msg);
        failures++;
    }
}

/* apr_dbd leaves closing to its caller (mod_dbd does it in Apache).
 * Registered before the store prepares its statements, it runs after their
 * cleanups (a pool runs the last registered first). */
static apr_status_t close_connection(void *data)
{
    (void)data;
    return apr_dbd_close(conn.driver, conn.handle);
}

/* Before a fork: SQLite connections must not cross one (a child that
 * inherits it leaves it open, which valgrind counts); open_connection()
 * after. */
static void close_before_fork(void)
{
    apr_pool_cleanup_run(pool, NULL, close_connection);
}

/* A forked child's own pool, in which it opens its own connection, and its
 * end, which closes that connection before the child exits: valgrind counts
 * what a process leaves open. */
static apr_pool_t *child_pool_enter(void)
{
    apr_pool_t *outer = pool;

    apr_pool_create(&pool, outer);
    return outer;
}

static void child_pool_leave(apr_pool_t *outer)
{
    apr_pool_destroy(pool);
    pool = outer;
}

static void open_connection(void)
{
    const char *error = NULL;

    ck_assert_int_eq(apr_dbd_get_driver(pool, "sqlite3", &conn.driver), APR_SUCCESS);
    ck_assert_msg(apr_dbd_open_ex(conn.driver, pool, db_file, &conn.handle, &error) == APR_SUCCESS,
                  "%s", error ? error : "cannot open");
    apr_pool_cleanup_register(pool, NULL, close_connection, apr_pool_cleanup_null);
    conn.prepared = apr_hash_make(pool);
    conn.renew = NULL;
}

static apr_status_t close_handle(void *data)
{
    return apr_dbd_close(conn.driver, data);
}

/* Makes handle refuse every write, as an SQLite file opened while it was
 * read-only does (SQLITE_READONLY) for the connection's life. */
static void refuse_writes(apr_dbd_t *handle)
{
    int nrows;

    ck_assert_int_eq(apr_dbd_query(conn.driver, handle, &nrows, "PRAGMA query_only = 1"), 0);
}

/* scep_sql_renew_fn: a new connection to the same file. */
static apr_status_t renew(void *baton, scep_sql_conn_t *c)
{
    apr_dbd_t *handle = NULL;

    (void)baton;
    renewals++;
    ck_assert_int_eq(apr_dbd_open(c->driver, pool, db_file, &handle), APR_SUCCESS);
    apr_pool_cleanup_register(pool, handle, close_handle, apr_pool_cleanup_null);
    if (renew_read_only) {
        refuse_writes(handle);
    }
    c->handle = handle;
    c->prepared = apr_hash_make(pool);
    return APR_SUCCESS;
}

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    ck_assert_int_eq(apr_dbd_init(pool), APR_SUCCESS);
    pki = testutil_pki_load(pool, testutil_pki_create(pool), 0);
    device_key = testutil_rsa_key(pool);
    db_file = testutil_path(pool, testutil_tempdir(pool), "scep.db");
    last_error = NULL;
    failures = renewals = renew_read_only = 0;
    open_connection();
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static scep_store_t *open_store(void)
{
    scep_store_t *store = NULL;

    ck_assert_msg(scep_store_sql(pool, &conn, remember_failure, NULL, &store) == APR_SUCCESS, "%s",
                  last_error ? last_error : "the store did not open");
    return store;
}

static void exec(const char *sql)
{
    int nrows;

    ck_assert_msg(apr_dbd_query(conn.driver, conn.handle, &nrows, sql) == 0, "%s: %s", sql,
                  apr_dbd_error(conn.driver, conn.handle, 1));
}

/* The first column of the first row of a query, NULL for none or SQL NULL. */
static const char *value_of(const char *sql)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *value = NULL, *v;

    ck_assert_int_eq(apr_dbd_select(conn.driver, pool, conn.handle, &res, sql, 1), 0);
    while (apr_dbd_get_row(conn.driver, pool, res, &row, -1) == 0) {
        v = apr_dbd_get_entry(conn.driver, row, 0);
        if (!value && v) {
            value = apr_pstrdup(pool, v);
        }
    }
    return value;
}

static X509_REQ *csr_for(const char *cn, const char *san)
{
    return testutil_csr(pool, device_key, apr_pstrcat(pool, "/CN=", cn, NULL), NULL, NULL, san,
                        NULL);
}

static X509 *issue(X509_REQ *csr)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509 *cert = NULL;

    ck_assert_msg(scep_ca_issue(pool, pki, csr, NULL, &cert, &prob) == APR_SUCCESS, "%s",
                  prob.text);
    return cert;
}

static scep_txn_t request_of(const char *id, const char *status, X509_REQ *csr)
{
    scep_txn_t txn = { 0 };

    txn.transaction_id = id;
    txn.key_id = scep_key_id(pool, X509_REQ_get_X509_PUBKEY(csr));
    txn.signer_key_id = txn.key_id;
    txn.csr_digest = scep_csr_digest(pool, csr);
    txn.status = status;
    txn.subject = scep_name_text(pool, X509_REQ_get_subject_name(csr));
    txn.template_name = "IPSECIntermediateOffline";
    txn.san = scep_csr_san_text(pool, csr);
    txn.key_desc = scep_key_desc(pool, device_key);
    txn.client_addr = "192.0.2.1";
    txn.message_type = 19;
    return txn;
}

static scep_txn_t *find(scep_store_t *store, const char *id)
{
    scep_txn_t *txn = NULL;

    ck_assert_int_eq(store->find_transaction(store, pool, id, &txn), APR_SUCCESS);
    return txn;
}

START_TEST(new_database_gets_the_current_schema)
{
    scep_store_t *store = open_store();
    scep_txn_t *txn = NULL;

    ck_assert_str_eq(value_of("SELECT MAX(version) FROM scep_schema"), "6");
    ck_assert_int_eq(store->find_transaction(store, pool, "NONE", &txn), APR_NOTFOUND);
    ck_assert_ptr_null(txn);
    /* a second store on the same connection finds it ready */
    open_store();
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_schema"), "6");
}
END_TEST

/* A database of the first release: its rows stay readable, the new columns
 * are added empty, and its key ids (digests of the key bits alone) are
 * marked as such (schema version 3). */
START_TEST(version_1_database_is_migrated)
{
    scep_store_t *store;
    scep_txn_t *txn;

    exec("CREATE TABLE scep_schema (version INTEGER NOT NULL)");
    exec("INSERT INTO scep_schema (version) VALUES (1)");
    exec("CREATE TABLE scep_request (transaction_id TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
         " status TEXT NOT NULL, subject TEXT, message_type INTEGER, serial TEXT, reason TEXT,"
         " client_addr TEXT, created TEXT NOT NULL, updated TEXT NOT NULL)");
    exec("CREATE TABLE scep_cert (serial TEXT PRIMARY KEY, transaction_id TEXT,"
         " subject TEXT NOT NULL, issuer TEXT NOT NULL, not_before TEXT NOT NULL,"
         " not_after TEXT NOT NULL, cert_pem TEXT NOT NULL, revoked_at TEXT,"
         " revocation_reason INTEGER, created TEXT NOT NULL)");
    exec("INSERT INTO scep_request VALUES ('OLD', 'K', 'rejected', 'CN=old', 19, NULL,"
         " 'no', '10.0.0.1', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')");
    store = open_store();
    ck_assert_str_eq(value_of("SELECT MAX(version) FROM scep_schema"), "6");
    txn = find(store, "OLD");
    ck_assert_str_eq(txn->status, SCEP_TXN_REJECTED);
    ck_assert_str_eq(txn->reason, "no");
    ck_assert_str_eq(txn->key_id, SCEP_KEY_ID_BITS_PREFIX "K");
    ck_assert_ptr_null(txn->signer_key_id);
    ck_assert_ptr_null(txn->csr_digest);
    ck_assert_ptr_null(txn->template_name);
    ck_assert_int_eq(apr_time_sec(txn->created), 1735689600);
    /* no CA holds it */
    ck_assert_ptr_null(txn->ca_ticket);
    ck_assert_int_eq(txn->ca_poll_at, 0);
}
END_TEST

static int mode_of(const char *path)
{
    struct stat st;

    ck_assert_msg(stat(path, &st) == 0, "%s is missing", path);
    return (int)(st.st_mode & 07777);
}

/* SQLite makes its files with the umask (0644 here and under Apache): the
 * store makes them the owner's alone, the WAL files SQLite makes later
 * included, and a file left open to others by an older version too. */
START_TEST(database_files_are_private)
{
    const char *wal = apr_pstrcat(pool, db_file, "-wal", NULL);
    const char *shm = apr_pstrcat(pool, db_file, "-shm", NULL);

    apr_file_t *f;

    ck_assert_int_eq(mode_of(db_file) & 0044, 0044);
    /* an empty WAL left by an older version */
    ck_assert_int_eq(
        apr_file_open(&f, wal, APR_FOPEN_CREATE | APR_FOPEN_WRITE,
                      APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD | APR_FPROT_WREAD, pool),
        APR_SUCCESS);
    apr_file_close(f);
    ck_assert_int_eq(mode_of(wal), 0644);
    open_store();
    ck_assert_int_eq(mode_of(db_file), 0600);
    ck_assert_int_eq(mode_of(wal), 0600);
    ck_assert_int_eq(mode_of(shm), 0600);
}
END_TEST

/* The schema of version 2, as exec() statements. */
static void create_version_2(void)
{
    exec("CREATE TABLE scep_schema (version INTEGER NOT NULL)");
    exec("INSERT INTO scep_schema (version) VALUES (1)");
    exec("INSERT INTO scep_schema (version) VALUES (2)");
    exec("CREATE TABLE scep_request (transaction_id TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
         " status TEXT NOT NULL, subject TEXT, message_type INTEGER, serial TEXT, reason TEXT,"
         " client_addr TEXT, created TEXT NOT NULL, updated TEXT NOT NULL, signer_key_id TEXT,"
         " template TEXT, csr_pem TEXT, san TEXT, key_desc TEXT, decided_by TEXT)");
    exec("CREATE TABLE scep_cert (serial TEXT PRIMARY KEY, transaction_id TEXT,"
         " subject TEXT NOT NULL, issuer TEXT NOT NULL, not_before TEXT NOT NULL,"
         " not_after TEXT NOT NULL, cert_pem TEXT NOT NULL, revoked_at TEXT,"
         " revocation_reason INTEGER, created TEXT NOT NULL)");
}

static void insert_v2_request(const char *id, const char *status, const char *csr_pem)
{
    exec(apr_psprintf(pool,
                      "INSERT INTO scep_request (transaction_id, key_id, status, created, updated,"
                      " csr_pem) VALUES ('%s', 'K', '%s', '2025-01-01T00:00:00Z',"
                      " '2025-01-01T00:00:00Z', '%s')",
                      id, status, csr_pem));
}

/* Version 2 kept held CSRs whole, challenge password included, and kept
 * them after the decision: version 4 strips the one and drops the other. */
START_TEST(version_2_database_loses_its_challenge_passwords)
{
    X509_REQ *csr = testutil_csr(pool, device_key, "/CN=v2.example.test", NULL, NULL,
                                 "DNS:v2.example.test", "V2-Challenge-Secret");
    const char *whole = scep_csr_pem(pool, csr);
    scep_store_t *store;
    scep_txn_t *txn;
    X509_REQ *kept;
    BIO *bio;

    create_version_2();
    insert_v2_request("P", SCEP_TXN_PENDING, whole);
    insert_v2_request("A", SCEP_TXN_APPROVED, whole);
    insert_v2_request("R", SCEP_TXN_REJECTED, whole);
    insert_v2_request("E", SCEP_TXN_EXPIRED, whole);
    insert_v2_request("I", SCEP_TXN_ISSUED, whole);
    insert_v2_request("G", SCEP_TXN_PENDING, "garbage");
    store = open_store();
    ck_assert_str_eq(value_of("SELECT MAX(version) FROM scep_schema"), "6");
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_request WHERE csr_pem IS NOT NULL"), "2");
    ck_assert_str_eq(find(store, "P")->csr_pem, scep_csr_pem_at_rest(pool, csr));
    txn = find(store, "A");
    bio = BIO_new_mem_buf(txn->csr_pem, -1);
    kept = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ck_assert_ptr_nonnull(kept);
    ck_assert_int_eq(X509_REQ_get_attr_by_NID(kept, NID_pkcs9_challengePassword, -1), -1);
    ck_assert_str_eq(scep_name_text(pool, X509_REQ_get_subject_name(kept)), "CN=v2.example.test");
    X509_REQ_free(kept);
    ck_assert_ptr_null(find(store, "R")->csr_pem);
    ck_assert_ptr_null(find(store, "I")->csr_pem);
    /* what cannot be read is dropped, not kept with its secret */
    ck_assert_ptr_null(find(store, "G")->csr_pem);
    ck_assert_str_eq(last_error,
                     "SCEP330: migration: the CSR of held request G cannot be read: removed "
                     "(the request can only be denied)");
    ck_assert_ptr_null(value_of("SELECT transaction_id FROM scep_request"
                                " WHERE csr_pem LIKE '%V2-Challenge%'"));
}
END_TEST

START_TEST(issued_request_and_certificate_are_recorded_together)
{
    scep_store_t *store = open_store();
    X509_REQ *csr = csr_for("a.example.test", "DNS:a.example.test,IP:192.0.2.7");
    X509 *cert = issue(csr);
    scep_txn_t txn = request_of("T1", SCEP_TXN_ISSUED, csr), *found;
    scep_cert_record_t *rec;
    const char *serial = scep_serial_hex(pool, X509_get0_serialNumber(cert));

    ck_assert_int_eq(store->record(store, pool, &txn, cert), APR_SUCCESS);
    found = find(store, "T1");
    ck_assert_str_eq(found->status, SCEP_TXN_ISSUED);
    ck_assert_str_eq(found->serial, serial);
    ck_assert_str_eq(found->san, "DNS:a.example.test, IP Address:192.0.2.7");
    ck_assert_str_eq(found->key_desc, "RSA 2048");
    ck_assert_str_eq(found->template_name, "IPSECIntermediateOffline");
    ck_assert_str_eq(found->client_addr, "192.0.2.1");
    ck_assert_str_eq(found->key_id, txn.key_id);
    ck_assert_str_eq(found->csr_digest, scep_csr_digest(pool, csr));
    ck_assert_ptr_nonnull(found->cert_pem);
    ck_assert_int_ne(found->created, 0);
    ck_assert_int_eq(store->find_cert(store, pool, serial, &rec), APR_SUCCESS);
    ck_assert_str_eq(rec->subject, "CN=a.example.test");
    ck_assert_str_eq(rec->transaction_id, "T1");
    ck_assert_int_eq(rec->revoked_at, 0);
    ck_assert_int_gt(rec->not_after, rec->not_before);
    /* the same transaction again: the first record stays */
    ck_assert_int_eq(store->record(store, pool, &txn, issue(csr)), APR_EEXIST);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_cert"), "1");
}
END_TEST

START_TEST(held_request_is_approved_then_issued_once)
{
    scep_store_t *store = open_store();
    X509_REQ *csr = csr_for("held.example.test", NULL);
    scep_txn_t txn = request_of("H1", SCEP_TXN_PENDING, csr), *found;

    txn.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\n...";
    ck_assert_int_eq(store->record(store, pool, &txn, NULL), APR_SUCCESS);
    found = find(store, "H1");
    ck_assert_str_eq(found->status, SCEP_TXN_PENDING);
    ck_assert_ptr_null(found->serial);
    ck_assert_ptr_null(found->cert_pem);
    ck_assert_str_eq(found->csr_pem, txn.csr_pem);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_cert"), "0");

    ck_assert_int_eq(
        store->decide(store, pool, "H1", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "alice", NULL),
        APR_SUCCESS);
    ck_assert_str_eq(find(store, "H1")->decided_by, "alice");
    /* approved: the CSR stays until it is issued */
    ck_assert_str_eq(find(store, "H1")->csr_pem, txn.csr_pem);
    /* issued with the approver kept, and nothing of the request left */
    ck_assert_int_eq(store->record_held_issued(store, pool, "H1", issue(csr), NULL), APR_SUCCESS);
    found = find(store, "H1");
    ck_assert_str_eq(found->status, SCEP_TXN_ISSUED);
    ck_assert_str_eq(found->decided_by, "alice");
    ck_assert_ptr_nonnull(found->cert_pem);
    ck_assert_ptr_null(found->csr_pem);
    /* a second issuance (a concurrent poll) changes nothing */
    ck_assert_int_eq(store->record_held_issued(store, pool, "H1", issue(csr), "bob"), APR_EEXIST);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_cert"), "1");
    ck_assert_str_eq(find(store, "H1")->decided_by, "alice");
    ck_assert_int_eq(store->record_held_issued(store, pool, "NONE", issue(csr), "bob"),
                     APR_NOTFOUND);
}
END_TEST

START_TEST(decisions_need_the_expected_state)
{
    scep_store_t *store = open_store();
    X509_REQ *csr = csr_for("d.example.test", NULL);
    scep_txn_t txn = request_of("D1", SCEP_TXN_PENDING, csr);

    txn.csr_pem = scep_csr_pem_at_rest(pool, csr);
    ck_assert_int_eq(store->record(store, pool, &txn, NULL), APR_SUCCESS);
    ck_assert_int_eq(
        store->decide(store, pool, "D1", SCEP_TXN_PENDING, SCEP_TXN_REJECTED, "bob", "not ours"),
        APR_SUCCESS);
    ck_assert_str_eq(find(store, "D1")->reason, "not ours");
    ck_assert_ptr_null(find(store, "D1")->csr_pem);
    ck_assert_int_eq(
        store->decide(store, pool, "D1", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "eve", NULL),
        APR_EEXIST);
    ck_assert_str_eq(find(store, "D1")->status, SCEP_TXN_REJECTED);
    ck_assert_int_eq(store->record_held_issued(store, pool, "D1", issue(csr), "eve"), APR_EEXIST);
    ck_assert_int_eq(
        store->decide(store, pool, "NONE", SCEP_TXN_PENDING, SCEP_TXN_REJECTED, "bob", "x"),
        APR_NOTFOUND);
}
END_TEST

START_TEST(old_pending_requests_expire)
{
    scep_store_t *store = open_store();
    X509_REQ *csr = csr_for("e.example.test", NULL);
    scep_txn_t old = request_of("OLD", SCEP_TXN_PENDING, csr);
    scep_txn_t fresh = request_of("NEW", SCEP_TXN_PENDING, csr);
    apr_array_header_t *list;

    old.csr_pem = fresh.csr_pem = scep_csr_pem_at_rest(pool, csr);
    ck_assert_int_eq(store->record(store, pool, &old, NULL), APR_SUCCESS);
    ck_assert_int_eq(store->record(store, pool, &fresh, NULL), APR_SUCCESS);
    exec("UPDATE scep_request SET created = '2020-01-01T00:00:00Z' WHERE transaction_id = 'OLD'");
    ck_assert_int_eq(
        store->expire_pending(store, pool, apr_time_now() - apr_time_from_sec(3600), "too old"),
        APR_SUCCESS);
    ck_assert_str_eq(find(store, "OLD")->status, SCEP_TXN_EXPIRED);
    ck_assert_str_eq(find(store, "OLD")->reason, "too old");
    ck_assert_ptr_null(find(store, "OLD")->csr_pem);
    ck_assert_ptr_nonnull(find(store, "NEW")->csr_pem);
    ck_assert_str_eq(find(store, "NEW")->status, SCEP_TXN_PENDING);
    ck_assert_int_eq(store->list_requests(store, pool, SCEP_TXN_PENDING, 10, &list), APR_SUCCESS);
    ck_assert_int_eq(list->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(list, 0, scep_txn_t *)->transaction_id, "NEW");
    ck_assert_int_eq(store->list_requests(store, pool, NULL, 10, &list), APR_SUCCESS);
    ck_assert_int_eq(list->nelts, 2);
    /* newest first */
    ck_assert_str_eq(APR_ARRAY_IDX(list, 0, scep_txn_t *)->transaction_id, "NEW");
    ck_assert_int_eq(store->list_requests(store, pool, NULL, 1, &list), APR_SUCCESS);
    ck_assert_int_eq(list->nelts, 1);
}
END_TEST

/* A request the external CA holds (schema 5): recorded with its ticket,
 * claimed by one poller, its ticket replaced, listed when due, cleared by
 * its issuance or rejection; a manager cannot approve it. */
START_TEST(request_held_by_the_ca)
{
    scep_store_t *store = open_store();
    X509_REQ *csr = csr_for("ca.example.test", NULL);
    scep_txn_t txn = request_of("CA1", SCEP_TXN_PENDING, csr), other = txn, *found;
    apr_time_t due = apr_time_from_sec(apr_time_sec(apr_time_now()) - 5);
    apr_time_t later = due + apr_time_from_sec(3600);
    apr_array_header_t *list;

    txn.csr_pem = other.csr_pem = scep_csr_pem_at_rest(pool, csr);
    txn.ca_ticket = "cookie 1";
    txn.ca_poll_at = due;
    ck_assert_int_eq(store->record(store, pool, &txn, NULL), APR_SUCCESS);
    other.transaction_id = "MANAGER";
    ck_assert_int_eq(store->record(store, pool, &other, NULL), APR_SUCCESS);
    found = find(store, "CA1");
    ck_assert_str_eq(found->ca_ticket, "cookie 1");
    ck_assert_int_eq(found->ca_poll_at, due);
    ck_assert_str_eq(value_of("SELECT ca_poll_at FROM scep_request WHERE transaction_id = 'CA1'"),
                     apr_psprintf(pool, "%" APR_TIME_T_FMT, apr_time_sec(due)));
    ck_assert_ptr_null(find(store, "MANAGER")->ca_ticket);
    /* due: listed, the manager's one never */
    ck_assert_int_eq(store->list_ca_due(store, pool, NULL, apr_time_now(), 10, &list), APR_SUCCESS);
    ck_assert_int_eq(list->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(list, 0, scep_txn_t *)->transaction_id, "CA1");
    ck_assert_int_eq(store->list_ca_due(store, pool, NULL, due - apr_time_from_sec(1), 10, &list),
                     APR_SUCCESS);
    ck_assert_int_eq(list->nelts, 0);
    /* two claims of what both read: one wins */
    ck_assert_int_eq(store->claim_ca_poll(store, pool, "CA1", due, later), APR_SUCCESS);
    ck_assert_int_eq(store->claim_ca_poll(store, pool, "CA1", due, later), APR_EEXIST);
    ck_assert_int_eq(find(store, "CA1")->ca_poll_at, later);
    ck_assert_int_eq(store->claim_ca_poll(store, pool, "MANAGER", 0, later), APR_EEXIST);
    ck_assert_int_eq(store->list_ca_due(store, pool, NULL, apr_time_now(), 10, &list), APR_SUCCESS);
    ck_assert_int_eq(list->nelts, 0);
    /* still waiting: a new ticket */
    ck_assert_int_eq(store->hold_at_ca(store, pool, "CA1", "cookie 2", NULL, due, NULL),
                     APR_SUCCESS);
    found = find(store, "CA1");
    ck_assert_str_eq(found->ca_ticket, "cookie 2");
    ck_assert_int_eq(found->ca_poll_at, due);
    ck_assert_ptr_null(found->decided_by);
    /* the CA decides: no manager's approval */
    ck_assert_int_eq(
        store->decide(store, pool, "CA1", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "eve", NULL),
        APR_EEXIST);
    ck_assert_str_eq(find(store, "CA1")->status, SCEP_TXN_PENDING);
    /* issued: the ticket is gone */
    ck_assert_int_eq(store->record_held_issued(store, pool, "CA1", issue(csr), SCEP_DECIDED_BY_CA),
                     APR_SUCCESS);
    found = find(store, "CA1");
    ck_assert_str_eq(found->status, SCEP_TXN_ISSUED);
    ck_assert_str_eq(found->decided_by, SCEP_DECIDED_BY_CA);
    ck_assert_ptr_null(found->ca_ticket);
    ck_assert_int_eq(found->ca_poll_at, 0);
    ck_assert_int_eq(store->hold_at_ca(store, pool, "CA1", "cookie 3", NULL, due, NULL),
                     APR_EEXIST);
    ck_assert_int_eq(store->hold_at_ca(store, pool, "NONE", "cookie 3", NULL, due, NULL),
                     APR_NOTFOUND);
    /* an approved request submitted by its approver, then rejected by the CA */
    ck_assert_int_eq(
        store->decide(store, pool, "MANAGER", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "alice", NULL),
        APR_SUCCESS);
    ck_assert_int_eq(store->hold_at_ca(store, pool, "MANAGER", "cookie 4", NULL, due, "alice"),
                     APR_SUCCESS);
    found = find(store, "MANAGER");
    ck_assert_str_eq(found->status, SCEP_TXN_PENDING);
    ck_assert_str_eq(found->decided_by, "alice");
    ck_assert_int_eq(store->decide(store, pool, "MANAGER", SCEP_TXN_PENDING, SCEP_TXN_REJECTED,
                                   SCEP_DECIDED_BY_CA, "the CA says no"),
                     APR_SUCCESS);
    found = find(store, "MANAGER");
    ck_assert_str_eq(found->status, SCEP_TXN_REJECTED);
    ck_assert_str_eq(found->reason, "the CA says no");
    ck_assert_ptr_null(found->ca_ticket);
    ck_assert_ptr_null(found->csr_pem);
}
END_TEST

/* An old request the CA holds expires as any held one, its ticket gone. */
START_TEST(request_held_by_the_ca_expires)
{
    scep_store_t *store = open_store();
    X509_REQ *csr = csr_for("old.example.test", NULL);
    scep_txn_t txn = request_of("OLDCA", SCEP_TXN_PENDING, csr);
    apr_array_header_t *list;

    txn.csr_pem = scep_csr_pem_at_rest(pool, csr);
    txn.ca_ticket = "cookie";
    txn.ca_poll_at = apr_time_now();
    ck_assert_int_eq(store->record(store, pool, &txn, NULL), APR_SUCCESS);
    exec("UPDATE scep_request SET created = '2020-01-01T00:00:00Z'");
    ck_assert_int_eq(store->expire_pending(store, pool, apr_time_now(), "too old"), APR_SUCCESS);
    ck_assert_str_eq(find(store, "OLDCA")->status, SCEP_TXN_EXPIRED);
    ck_assert_ptr_null(find(store, "OLDCA")->ca_ticket);
    ck_assert_int_eq(store->list_ca_due(store, pool, NULL, apr_time_now(), 10, &list), APR_SUCCESS);
    ck_assert_int_eq(list->nelts, 0);
}
END_TEST

/* A request held under an external CA: the backend named with its ticket,
 * each server listing the due tickets of its own; the device's CSR sealed
 * (opaque to the store), kept by an approval, cleared by every decision. */
static void record_held_at(scep_store_t *store, const char *id, const char *backend,
                           const char *ticket)
{
    X509_REQ *csr = csr_for(apr_pstrcat(pool, id, ".example.test", NULL), NULL);
    scep_txn_t txn = request_of(id, SCEP_TXN_PENDING, csr);

    txn.csr_pem = scep_csr_pem_at_rest(pool, csr);
    txn.csr_sealed = apr_pstrcat(pool, "sealed ", id, NULL);
    txn.ca_ticket = ticket;
    txn.ca_backend = backend;
    txn.ca_poll_at = apr_time_from_sec(apr_time_sec(apr_time_now()) - 5);
    ck_assert_int_eq(store->record(store, pool, &txn, NULL), APR_SUCCESS);
}

static const char *due_ids(scep_store_t *store, const char *backend)
{
    apr_array_header_t *list;
    const char *ids = "";
    int i;

    ck_assert_int_eq(store->list_ca_due(store, pool, backend, apr_time_now(), 10, &list),
                     APR_SUCCESS);
    for (i = 0; i < list->nelts; i++) {
        ids = apr_pstrcat(pool, ids, i ? " " : "",
                          APR_ARRAY_IDX(list, i, scep_txn_t *)->transaction_id, NULL);
    }
    return ids;
}

START_TEST(held_request_keeps_its_backend_and_sealed_csr)
{
    scep_store_t *store = open_store();
    scep_txn_t *found;

    record_held_at(store, "A1", "helper a.example:443", "cookie a1");
    record_held_at(store, "A2", "helper a.example:443", "cookie a2");
    record_held_at(store, "B1", "cmp b.example:443", "cookie b1");
    record_held_at(store, "N1", NULL, "cookie n1");
    /* held for a manager: no ticket, no backend even when one is given */
    record_held_at(store, "M1", "helper a.example:443", NULL);
    found = find(store, "A1");
    ck_assert_str_eq(found->ca_backend, "helper a.example:443");
    ck_assert_str_eq(found->csr_sealed, "sealed A1");
    ck_assert_ptr_null(find(store, "N1")->ca_backend);
    ck_assert_ptr_null(find(store, "M1")->ca_backend);
    ck_assert_str_eq(find(store, "M1")->csr_sealed, "sealed M1");
    /* each backend's due tickets, the unnamed ones for an unnamed backend */
    ck_assert_str_eq(due_ids(store, "helper a.example:443"), "A1 A2");
    ck_assert_str_eq(due_ids(store, "cmp b.example:443"), "B1");
    ck_assert_str_eq(due_ids(store, NULL), "N1");
    ck_assert_str_eq(due_ids(store, "helper c.example:443"), "");
    /* a new ticket names its backend again (due after B1); the sealed CSR
     * stays */
    ck_assert_int_eq(store->hold_at_ca(store, pool, "N1", "cookie n2", "cmp b.example:443",
                                       apr_time_from_sec(apr_time_sec(apr_time_now()) - 1), NULL),
                     APR_SUCCESS);
    ck_assert_str_eq(due_ids(store, "cmp b.example:443"), "B1 N1");
    ck_assert_str_eq(find(store, "N1")->csr_sealed, "sealed N1");
    /* an approval keeps the CSRs, which are issued from */
    ck_assert_int_eq(
        store->decide(store, pool, "M1", SCEP_TXN_PENDING, SCEP_TXN_APPROVED, "alice", NULL),
        APR_SUCCESS);
    ck_assert_str_eq(find(store, "M1")->csr_sealed, "sealed M1");
    /* every decision clears them with the ticket and its backend */
    ck_assert_int_eq(store->record_held_issued(store, pool, "A1",
                                               issue(csr_for("A1.example.test", NULL)),
                                               SCEP_DECIDED_BY_CA),
                     APR_SUCCESS);
    ck_assert_int_eq(store->decide(store, pool, "A2", SCEP_TXN_PENDING, SCEP_TXN_REJECTED,
                                   SCEP_DECIDED_BY_CA, "no"),
                     APR_SUCCESS);
    ck_assert_int_eq(store->decide(store, pool, "M1", SCEP_TXN_APPROVED, SCEP_TXN_REJECTED, "bob",
                                   "changed my mind"),
                     APR_SUCCESS);
    exec("UPDATE scep_request SET created = '2020-01-01T00:00:00Z' WHERE transaction_id = 'B1'");
    ck_assert_int_eq(
        store->expire_pending(store, pool, apr_time_now() - apr_time_from_sec(3600), "too old"),
        APR_SUCCESS);
    ck_assert_str_eq(find(store, "B1")->status, SCEP_TXN_EXPIRED);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_request WHERE csr_sealed IS NOT NULL"
                              " OR ca_backend IS NOT NULL"),
                     "1");
    found = find(store, "N1");
    ck_assert_str_eq(found->csr_sealed, "sealed N1");
    ck_assert_str_eq(found->ca_backend, "cmp b.example:443");
}
END_TEST

static void record_issued(scep_store_t *store, const char *id, const char *cn)
{
    X509_REQ *csr = csr_for(cn, NULL);
    scep_txn_t txn = request_of(id, SCEP_TXN_ISSUED, csr);

    ck_assert_int_eq(store->record(store, pool, &txn, issue(csr)), APR_SUCCESS);
}

static int count_certs(scep_store_t *store, const char *search)
{
    apr_array_header_t *list = NULL;

    ck_assert_int_eq(store->list_certs(store, pool, search, 100, &list), APR_SUCCESS);
    return list->nelts;
}

/* The search is a substring, any case; LIKE's own characters are literal. */
START_TEST(certificates_are_searched_by_subject_and_serial)
{
    scep_store_t *store = open_store();
    scep_cert_record_t *rec;
    apr_array_header_t *list;

    record_issued(store, "S1", "router-1.example.test");
    record_issued(store, "S2", "Router_2.example.test");
    record_issued(store, "S3", "phone 100%.example.test");
    ck_assert_int_eq(count_certs(store, NULL), 3);
    ck_assert_int_eq(count_certs(store, "ROUTER"), 2);
    ck_assert_int_eq(count_certs(store, "r_2"), 1);
    ck_assert_int_eq(count_certs(store, "_"), 1);
    ck_assert_int_eq(count_certs(store, "%"), 1);
    ck_assert_int_eq(count_certs(store, "!"), 0);
    ck_assert_int_eq(count_certs(store, "nothing"), 0);
    ck_assert_int_eq(store->list_certs(store, pool, NULL, 100, &list), APR_SUCCESS);
    rec = APR_ARRAY_IDX(list, 0, scep_cert_record_t *);
    ck_assert_int_eq(count_certs(store, rec->serial + 2), 1);
    ck_assert_int_eq(count_certs(store, apr_pstrdup(pool, rec->serial)), 1);
}
END_TEST

START_TEST(revocation_keeps_the_first_reason)
{
    scep_store_t *store = open_store();
    apr_array_header_t *list;
    scep_cert_record_t *rec;

    record_issued(store, "R1", "r.example.test");
    ck_assert_int_eq(store->list_certs(store, pool, NULL, 1, &list), APR_SUCCESS);
    rec = APR_ARRAY_IDX(list, 0, scep_cert_record_t *);
    ck_assert_int_eq(store->revoke(store, pool, rec->serial, 7), APR_EINVAL);
    ck_assert_int_eq(store->revoke(store, pool, rec->serial, scep_crl_reason_of("superseded")),
                     APR_SUCCESS);
    ck_assert_int_eq(store->revoke(store, pool, rec->serial, 1), APR_EEXIST);
    ck_assert_int_eq(store->find_cert(store, pool, rec->serial, &rec), APR_SUCCESS);
    ck_assert_int_eq(rec->reason, 4);
    ck_assert_int_ne(rec->revoked_at, 0);
    ck_assert_int_eq(store->list_revoked(store, pool, &list), APR_SUCCESS);
    ck_assert_int_eq(list->nelts, 1);
    ck_assert_int_eq(store->revoke(store, pool, "00", 1), APR_NOTFOUND);
}
END_TEST

START_TEST(crl_reason_names)
{
    ck_assert_int_eq(scep_crl_reason_of("keyCompromise"), 1);
    ck_assert_int_eq(scep_crl_reason_of("KEYCOMPROMISE"), 1);
    ck_assert_int_eq(scep_crl_reason_of("10"), 10);
    ck_assert_int_eq(scep_crl_reason_of("7"), SCEP_CRL_REASON_NONE);
    ck_assert_int_eq(scep_crl_reason_of("11"), SCEP_CRL_REASON_NONE);
    ck_assert_int_eq(scep_crl_reason_of("-1"), SCEP_CRL_REASON_NONE);
    ck_assert_int_eq(scep_crl_reason_of("bogus"), SCEP_CRL_REASON_NONE);
    ck_assert_int_eq(scep_crl_reason_of(""), SCEP_CRL_REASON_NONE);
    ck_assert_str_eq(scep_crl_reason_name(9), "privilegeWithdrawn");
    ck_assert_ptr_null(scep_crl_reason_name(7));
    ck_assert_ptr_null(scep_crl_reason_name(SCEP_CRL_REASON_NONE));
    ck_assert(scep_crl_reason_final(1));
    ck_assert(scep_crl_reason_final(9));
    ck_assert(!scep_crl_reason_final(6));
    ck_assert(!scep_crl_reason_final(8));
    ck_assert(!scep_crl_reason_final(10));
    ck_assert(!scep_crl_reason_final(SCEP_CRL_REASON_NONE));
}
END_TEST

/* What a server with these certificates presents (the RA's: the CA's in
 * simple mode). */
static scep_service_t *service_of(const scep_pki_t *with)
{
    scep_service_t *svc =
        scep_service_of(pool, with->ca_cert, with->ra_sign_cert, with->ra_enc_cert);

    ck_assert_ptr_nonnull(svc);
    return svc;
}

START_TEST(first_server_records_the_service_the_next_ones_match)
{
    testutil_pki_t *files = testutil_pki_create(pool);
    scep_service_t *ours = service_of(testutil_pki_load(pool, files, 1)), *theirs = NULL;
    int first = 0;

    ck_assert_int_eq(strlen(ours->ca_sha256), 64);
    ck_assert_int_eq(strlen(ours->ra_sha256), 129);
    ck_assert_str_eq(ours->issuer, scep_name_text(pool, X509_get_subject_name(pki->ca_cert)));
    ck_assert_int_eq(scep_service_check(pool, open_store(), ours, &theirs, &first), APR_SUCCESS);
    ck_assert_int_eq(first, 1);
    /* the next server, its own connection, the same files */
    ck_assert_int_eq(scep_service_check(pool, open_store(),
                                        service_of(testutil_pki_load(pool, files, 1)), &theirs,
                                        &first),
                     APR_SUCCESS);
    ck_assert_int_eq(first, 0);
    ck_assert_str_eq(theirs->ra_sha256, ours->ra_sha256);
    ck_assert_int_ne(theirs->recorded, 0);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_service"), "1");
    ck_assert_int_eq(failures, 0);
}
END_TEST

START_TEST(other_certificates_are_another_service)
{
    testutil_pki_t *files = testutil_pki_create(pool);
    const scep_pki_t *with_ra = testutil_pki_load(pool, files, 1);
    scep_service_t *ours = service_of(with_ra),
                   *simple = service_of(testutil_pki_load(pool, files, 0));
    scep_service_t *other_ca = service_of(testutil_pki_load(pool, testutil_pki_create(pool), 1));
    scep_service_t *theirs = NULL;
    scep_store_t *store = open_store();
    const char *why;
    int first = 0;

    ck_assert_int_eq(scep_service_check(pool, store, ours, &theirs, &first), APR_SUCCESS);
    /* the same CA, the CA acting as RA: other RA certificates */
    ck_assert_int_eq(scep_service_check(pool, store, simple, &theirs, &first), APR_EMISMATCH);
    ck_assert_int_eq(first, 0);
    ck_assert_str_eq(theirs->ra_sha256, ours->ra_sha256);
    why = scep_service_difference(pool, simple, theirs);
    ck_assert_msg(strstr(why, "RA certificates") && !strstr(why, "CA certificate"), "%s", why);
    ck_assert_msg(strstr(why, ours->ra_sha256), "%s", why);
    /* another CA key under the same name: both differ */
    ck_assert_str_eq(other_ca->issuer, ours->issuer);
    ck_assert_int_eq(scep_service_check(pool, store, other_ca, &theirs, &first), APR_EMISMATCH);
    why = scep_service_difference(pool, other_ca, theirs);
    ck_assert_msg(strstr(why, "CA certificate SHA-256") && strstr(why, "; RA"), "%s", why);
    /* nothing was changed by the refusals; a rollover records on purpose */
    ck_assert_int_eq(scep_service_check(pool, store, ours, &theirs, &first), APR_SUCCESS);
    ck_assert_int_eq(store->record_service(store, pool, other_ca, 0), APR_EEXIST);
    ck_assert_int_eq(store->record_service(store, pool, other_ca, 1), APR_SUCCESS);
    ck_assert_int_eq(scep_service_check(pool, store, other_ca, &theirs, &first), APR_SUCCESS);
    ck_assert_int_eq(scep_service_check(pool, store, ours, &theirs, &first), APR_EMISMATCH);
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* A server's start in a child, on its own connection. 0: the same service,
 * 1: recorded it first, 2: else. */
static int check_service_in_child(const scep_service_t *ours)
{
    apr_pool_t *outer = child_pool_enter();
    scep_service_t *theirs = NULL;
    int first = 0, result;

    open_connection();
    result =
        scep_service_check(pool, open_store(), ours, &theirs, &first) != APR_SUCCESS ? 2 : first;
    child_pool_leave(outer);
    return result;
}

/* Servers starting together, each its own connection (a process each):
 * one records the service, the others find it, and none is refused. */
START_TEST(servers_starting_together_record_one_service)
{
    enum { SERVERS = 4 };
    scep_service_t *ours = service_of(pki);
    pid_t pids[SERVERS];
    int i, status, firsts = 0;

    open_store(); /* the schema first, as the module's first request makes it */
    close_before_fork();
    for (i = 0; i < SERVERS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            _exit(check_service_in_child(ours));
        }
    }
    for (i = 0; i < SERVERS; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) < 2, "server %d: status %d", i,
                      status);
        firsts += WEXITSTATUS(status);
    }
    open_connection();
    ck_assert_int_eq(firsts, 1);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_service"), "1");
}
END_TEST

/* A CA of another name is another service on the same database (virtual
 * hosts with a CA each): recorded beside the first. */
START_TEST(each_ca_has_its_own_service)
{
    scep_service_t *ours = service_of(pki), *theirs = NULL;
    scep_service_t *other = apr_pmemdup(pool, ours, sizeof(*ours));
    scep_store_t *store = open_store();
    int first = 0;

    other->issuer = "CN=Another CA";
    other->ca_sha256 = "00";
    ck_assert_int_eq(scep_service_check(pool, store, ours, &theirs, &first), APR_SUCCESS);
    ck_assert_int_eq(scep_service_check(pool, store, other, &theirs, &first), APR_SUCCESS);
    ck_assert_int_eq(first, 1);
    ck_assert_int_eq(store->find_service(store, pool, "CN=Nobody", &theirs), APR_NOTFOUND);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_service"), "2");
}
END_TEST

/* A connection that cannot write (opened while the file was read-only):
 * the write is tried again on a new connection, which the store readies,
 * and nothing is logged. */
START_TEST(failed_write_is_tried_again_on_a_new_connection)
{
    scep_store_t *store;
    X509_REQ *csr = csr_for("renewed.example.test", NULL);
    scep_txn_t txn = request_of("T-RENEW", SCEP_TXN_ISSUED, csr);

    conn.renew = renew;
    store = open_store();
    refuse_writes(conn.handle);
    ck_assert_int_eq(store->record(store, pool, &txn, issue(csr)), APR_SUCCESS);
    ck_assert_int_eq(renewals, 1);
    ck_assert_int_eq(failures, 0);
    ck_assert_str_eq(find(store, "T-RENEW")->status, SCEP_TXN_ISSUED);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_cert"), "1");
}
END_TEST

/* A fault that outlasts the new connection: one line, nothing half
 * written, and no second new connection for the same store. */
START_TEST(fault_outlasting_the_new_connection_is_logged_once)
{
    scep_store_t *store;
    X509_REQ *csr = csr_for("readonly.example.test", NULL);
    scep_txn_t txn = request_of("T-RO", SCEP_TXN_ISSUED, csr);

    conn.renew = renew;
    renew_read_only = 1;
    store = open_store();
    refuse_writes(conn.handle);
    ck_assert_int_eq(store->record(store, pool, &txn, issue(csr)), APR_EGENERAL);
    ck_assert_int_eq(renewals, 1);
    ck_assert_int_eq(failures, 1);
    ck_assert_msg(strstr(last_error, "cannot record transaction T-RO: ") &&
                      strstr(last_error, "(NDES event 31)"),
                  "%s", last_error);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_request"), "0");
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_cert"), "0");
    ck_assert_int_eq(store->revoke(store, pool, "01", 1), APR_EGENERAL);
    ck_assert_int_eq(renewals, 1);
    ck_assert_int_eq(failures, 2);
}
END_TEST

/* A connection that fails its setup (here: a new database it cannot
 * migrate) is replaced before the store is handed out, quietly. */
START_TEST(connection_failing_its_setup_is_replaced)
{
    scep_store_t *store;

    conn.renew = renew;
    refuse_writes(conn.handle);
    store = open_store();
    ck_assert_int_eq(renewals, 1);
    ck_assert_int_eq(failures, 0);
    ck_assert_str_eq(value_of("SELECT MAX(version) FROM scep_schema"), "6");
    ck_assert_ptr_nonnull(store);
}
END_TEST

/* Without renew, a failure is final: one line. */
START_TEST(failure_without_renew_is_logged_once)
{
    scep_store_t *store = open_store();
    X509_REQ *csr = csr_for("final.example.test", NULL);
    scep_txn_t txn = request_of("T-FINAL", SCEP_TXN_ISSUED, csr);

    refuse_writes(conn.handle);
    ck_assert_int_eq(store->record(store, pool, &txn, issue(csr)), APR_EGENERAL);
    ck_assert_int_eq(failures, 1);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_request"), "0");
}
END_TEST

/* ----------------------------------------------------------------------
 * The service's CRL (scep_crl_current() on the records)
 */

static X509_CRL *current_crl_valid(scep_store_t *store, int hours)
{
    scep_crl_opts_t opts = { EVP_sha256(), hours, 0 };
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *crl = NULL;

    ck_assert_msg(scep_crl_current(pool, pki, &opts, store, &crl, &prob) == APR_SUCCESS, "%s",
                  prob.text ? prob.text : last_error);
    ck_assert_ptr_nonnull(crl);
    ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(pki->ca_cert)), 1);
    return crl;
}

static X509_CRL *current_crl(scep_store_t *store)
{
    return current_crl_valid(store, 24);
}

static apr_int64_t crl_number_of(X509_CRL *crl)
{
    ASN1_INTEGER *number = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    int64_t value = 0;

    ck_assert_ptr_nonnull(number);
    ck_assert(ASN1_INTEGER_get_int64(&value, number));
    ASN1_INTEGER_free(number);
    return value;
}

static int crl_entries(X509_CRL *crl)
{
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);

    return revoked ? sk_X509_REVOKED_num(revoked) : 0;
}

/* The DER of a CRL, as the scep-crl URL serves it. */
static const char *crl_der_hex(X509_CRL *crl)
{
    unsigned char *der = NULL;
    int len = i2d_X509_CRL(crl, &der);
    const char *hex;

    ck_assert_int_gt(len, 0);
    hex = scep_hex(pool, der, (apr_size_t)len);
    OPENSSL_free(der);
    return hex;
}

static const char *revoke_one(scep_store_t *store, const char *id)
{
    scep_cert_record_t *rec;
    apr_array_header_t *list;

    record_issued(store, id, apr_pstrcat(pool, id, ".example.test", NULL));
    ck_assert_int_eq(store->list_certs(store, pool, id, 1, &list), APR_SUCCESS);
    rec = APR_ARRAY_IDX(list, 0, scep_cert_record_t *);
    ck_assert_int_eq(store->revoke(store, pool, rec->serial, CRL_REASON_KEY_COMPROMISE),
                     APR_SUCCESS);
    return rec->serial;
}

/* The records on a connection of their own, as another server has. */
static scep_store_t *open_other_store(void)
{
    scep_sql_conn_t other = conn;
    scep_store_t *store = NULL;

    renew(NULL, &other);
    ck_assert_msg(scep_store_sql(pool, &other, remember_failure, NULL, &store) == APR_SUCCESS, "%s",
                  last_error ? last_error : "the store did not open");
    return store;
}

/* A fresh CRL is served as it was signed, by any connection; a revocation
 * makes the next one, which lists it, with a greater number. */
START_TEST(kept_crl_is_served_until_a_revocation)
{
    scep_store_t *store = open_store();
    X509_CRL *first = current_crl(store), *again, *after;
    const char *serial;

    ck_assert_int_eq(crl_entries(first), 0);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_crl"), "1");
    again = current_crl(store);
    ck_assert_str_eq(crl_der_hex(again), crl_der_hex(first));
    again = current_crl(open_other_store());
    ck_assert_str_eq(crl_der_hex(again), crl_der_hex(first));
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_crl"), "1");

    serial = revoke_one(store, "K1");
    after = current_crl(store);
    ck_assert_int_eq(crl_entries(after), 1);
    ck_assert_str_eq(scep_serial_hex(pool, X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(
                                               X509_CRL_get_REVOKED(after), 0))),
                     serial);
    ck_assert_int_gt(crl_number_of(after), crl_number_of(first));
    ck_assert_str_eq(value_of("SELECT revoked_count FROM scep_crl ORDER BY crl_number DESC"), "1");
    ck_assert_str_eq(crl_der_hex(current_crl(store)), crl_der_hex(after));
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* Past the middle of its validity the next is signed; numbers go on from
 * the newest even when it is ahead of this clock (another server's). */
START_TEST(numbers_increase_past_a_clock_ahead)
{
    scep_store_t *store = open_store();
    X509_CRL *first = current_crl(store), *next;
    apr_int64_t ahead = crl_number_of(first) + APR_INT64_C(3600000000);

    exec(apr_psprintf(pool,
                      "UPDATE scep_crl SET crl_number = %" APR_INT64_T_FMT
                      ", this_update = this_update - 13 * 3600,"
                      " next_update = next_update - 13 * 3600",
                      ahead));
    next = current_crl(store);
    ck_assert_int_eq(crl_number_of(next), ahead + 1);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_crl"), "2");
    /* not past the middle yet: served */
    exec("UPDATE scep_crl SET this_update = this_update - 11 * 3600,"
         " next_update = next_update - 11 * 3600 WHERE crl_number = (SELECT MAX(crl_number) FROM "
         "scep_crl)");
    ck_assert_str_eq(crl_der_hex(current_crl(store)), crl_der_hex(next));
}
END_TEST

/* Another SCEPCRLValidity takes effect at the next GetCRL. */
START_TEST(changed_validity_takes_effect)
{
    scep_store_t *store = open_store();
    X509_CRL *first = current_crl(store), *longer;

    ck_assert_str_eq(crl_der_hex(current_crl_valid(store, 24)), crl_der_hex(first));
    longer = current_crl_valid(store, 48);
    ck_assert_int_gt(crl_number_of(longer), crl_number_of(first));
    ck_assert_str_eq(crl_der_hex(current_crl_valid(store, 48)), crl_der_hex(longer));
    ck_assert_int_gt(crl_number_of(current_crl_valid(store, 12)), crl_number_of(longer));
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_crl"), "3");
}
END_TEST

/* Of a series, the newest few are kept; another CA certificate is another
 * series. */
START_TEST(old_crls_are_dropped)
{
    scep_store_t *store = open_store();
    int i;

    for (i = 0; i < 7; i++) {
        current_crl(store);
        revoke_one(store, apr_psprintf(pool, "P%d", i));
    }
    ck_assert_int_eq(crl_entries(current_crl(store)), 7);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_crl"), "4");
    ck_assert_str_eq(value_of("SELECT MIN(revoked_count) FROM scep_crl"), "4");
    ck_assert_str_eq(value_of("SELECT DISTINCT issuer FROM scep_crl"), scep_crl_issuer(pool, pki));
}
END_TEST

/* A kept CRL that the CA's key does not verify is never served: the next
 * one replaces it. */
START_TEST(kept_crl_that_does_not_verify_is_replaced)
{
    scep_store_t *store = open_store();
    X509_CRL *first = current_crl(store), *next;
    scep_pki_t *other = testutil_pki_load(pool, testutil_pki_create(pool), 0);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *foreign = NULL;

    ck_assert_int_eq(scep_crl_build(pool, other, NULL, NULL, &foreign, &prob), APR_SUCCESS);
    exec(apr_psprintf(pool, "UPDATE scep_crl SET crl_pem = '%s'", scep_crl_pem(pool, foreign)));
    next = current_crl(store);
    ck_assert_int_gt(crl_number_of(next), crl_number_of(first));
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_crl"), "2");
}
END_TEST

START_TEST(no_crl_without_the_ca_key)
{
    scep_store_t *store = open_store();
    scep_pki_t without_key = *pki;
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *crl = NULL;

    without_key.ca_key = NULL;
    ck_assert_int_eq(scep_crl_current(pool, &without_key, NULL, store, &crl, &prob), APR_ENOTIMPL);
    ck_assert_ptr_null(crl);
    ck_assert_int_eq(prob.event, SCEP_EVENT_GETCRL_FAILED);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_crl"), "0");
}
END_TEST

#define SIGNERS 6

/* In a child: its own connection, the current CRL's number on out. */
static void serve_crl_in_child(int go, int out)
{
    apr_pool_t *outer = child_pool_enter();
    char byte;
    scep_store_t *store;
    X509_CRL *crl;

    store = open_other_store();
    ck_assert_int_eq(read(go, &byte, 1), 0); /* closed: all start together */
    crl = current_crl(store);
    dprintf(out, "%" APR_INT64_T_FMT "\n", crl_number_of(crl));
    child_pool_leave(outer);
    _exit(failures ? 2 : 0);
}

/* Servers that find no fresh CRL at the same moment: one signs, the others
 * serve what it signed. */
START_TEST(concurrent_signers_make_one_crl)
{
    int go[2], out[2], i, status;
    pid_t pids[SIGNERS];
    char line[64];
    const char *first = NULL;
    FILE *numbers;

    current_crl(open_store());
    exec("UPDATE scep_crl SET this_update = this_update - 100 * 3600,"
         " next_update = next_update - 100 * 3600");
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(out), 0);
    close_before_fork();
    for (i = 0; i < SIGNERS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(out[0]);
            serve_crl_in_child(go[0], out[1]);
        }
    }
    close(go[0]);
    close(out[1]);
    close(go[1]);
    for (i = 0; i < SIGNERS; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "signer %d failed", i);
    }
    open_connection();
    numbers = fdopen(out[0], "r");
    for (i = 0; fgets(line, sizeof(line), numbers); i++) {
        if (!first) {
            first = apr_pstrdup(pool, line);
        }
        ck_assert_str_eq(line, first);
    }
    fclose(numbers);
    ck_assert_int_eq(i, SIGNERS);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_crl"), "2");
}
END_TEST

Suite *scep_store_suite(void);

Suite *scep_store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("sqlite");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, new_database_gets_the_current_schema);
    tcase_add_test(tc, version_1_database_is_migrated);
    tcase_add_test(tc, version_2_database_loses_its_challenge_passwords);
    tcase_add_test(tc, database_files_are_private);
    tcase_add_test(tc, issued_request_and_certificate_are_recorded_together);
    tcase_add_test(tc, held_request_is_approved_then_issued_once);
    tcase_add_test(tc, decisions_need_the_expected_state);
    tcase_add_test(tc, old_pending_requests_expire);
    tcase_add_test(tc, request_held_by_the_ca);
    tcase_add_test(tc, request_held_by_the_ca_expires);
    tcase_add_test(tc, held_request_keeps_its_backend_and_sealed_csr);
    tcase_add_test(tc, certificates_are_searched_by_subject_and_serial);
    tcase_add_test(tc, revocation_keeps_the_first_reason);
    tcase_add_test(tc, first_server_records_the_service_the_next_ones_match);
    tcase_add_test(tc, other_certificates_are_another_service);
    tcase_add_test(tc, each_ca_has_its_own_service);
    tcase_add_test(tc, servers_starting_together_record_one_service);
    tcase_add_test(tc, failed_write_is_tried_again_on_a_new_connection);
    tcase_add_test(tc, fault_outlasting_the_new_connection_is_logged_once);
    tcase_add_test(tc, connection_failing_its_setup_is_replaced);
    tcase_add_test(tc, failure_without_renew_is_logged_once);
    suite_add_tcase(s, tc);
    tc = tcase_create("crl");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, kept_crl_is_served_until_a_revocation);
    tcase_add_test(tc, numbers_increase_past_a_clock_ahead);
    tcase_add_test(tc, changed_validity_takes_effect);
    tcase_add_test(tc, old_crls_are_dropped);
    tcase_add_test(tc, kept_crl_that_does_not_verify_is_replaced);
    tcase_add_test(tc, no_crl_without_the_ca_key);
    tcase_add_test(tc, concurrent_signers_make_one_crl);
    suite_add_tcase(s, tc);
    tc = tcase_create("reasons");
    tcase_add_test(tc, crl_reason_names);
    suite_add_tcase(s, tc);
    return s;
}
