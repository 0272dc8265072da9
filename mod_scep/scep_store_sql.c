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
 * The records (scep_store_t) on an apr_dbd connection: SQLite by default,
 * PostgreSQL for several servers, any apr_dbd driver in principle, so the
 * SQL stays portable (TEXT for PEM and times, no BLOBs, %s placeholders
 * that apr_dbd turns into ? or $n). The module gets its connections from
 * mod_dbd (mod_scep_store_dbd.c), scepctl opens its own: both run this.
 *
 * Each connection is made ready at its first use: driver settings, the
 * schema migrated to the version this code needs, and the statements
 * prepared and kept in the connection's `prepared` hash (mod_dbd's
 * ap_dbd_prepare() is not used: it prepares when mod_dbd opens the
 * connection, before the schema exists). In the module this happens in a
 * child, never in the parent, which runs as root and would create a
 * database file the children cannot write.
 *
 * Concurrent children may reach an old schema together: the migration runs
 * in one transaction that takes the database's write lock first (SQLite's
 * BEGIN IMMEDIATE, a PostgreSQL advisory lock), re-reads the version and
 * only then applies what is missing, so the loser of the race finds nothing
 * left to do. The CREATEs say IF NOT EXISTS for databases made by hand.
 *
 * A connection can fail and stay failed while its database is fine again:
 * a PostgreSQL session ends with a server restart (and apr_dbd's PQreset
 * on the next check leaves a session without the prepared statements), an
 * SQLite file opened while it could not be written stays read-only for the
 * connection's life, a transaction whose COMMIT failed may be left open.
 * So an operation that fails is tried once more on a new connection, got
 * from the connection's owner (scep_sql_conn_t.renew; mod_dbd's connection
 * is replaced in its pool, mod_scep_store_dbd.c) and readied like the
 * first: the first request after a fault is fixed succeeds, and one that
 * meets the fault still logs one line. Once per store (a request): a fault
 * that outlasts the new connection costs one attempt, not one per
 * statement. A failed transaction is rolled back as a whole before that.
 *
 * Every select asks for random access (SELECT_BUFFERED): apr_dbd's pgsql
 * driver reports a failed query only then (row by row, it takes the error
 * for the end of the rows, and pauses 0.1 s at every empty result); the
 * sqlite3 driver reads all rows either way. Rows start NULL: the pgsql
 * driver reuses a row it is given. Reading the rows to the end frees them,
 * and with pgsql the values they returned: entry_or_null() copies.
 */

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_dbd.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "scep.h"

/* ----------------------------------------------------------------------
 * Schema
 */

struct sql_store_t;

typedef struct migration_t {
    int version;
    const char *const *statements; /* NULL-terminated */
    /* then what SQL cannot do, in the same transaction; 0 or an error */
    int (*convert)(const struct sql_store_t *st);
} migration_t;

static const char *const schema_v1[] = { "CREATE TABLE IF NOT EXISTS scep_request ("
                                         " transaction_id TEXT PRIMARY KEY,"
                                         " key_id TEXT NOT NULL,"
                                         " status TEXT NOT NULL,"
                                         " subject TEXT,"
                                         " message_type INTEGER,"
                                         " serial TEXT,"
                                         " reason TEXT,"
                                         " client_addr TEXT,"
                                         " created TEXT NOT NULL,"
                                         " updated TEXT NOT NULL)",
                                         "CREATE TABLE IF NOT EXISTS scep_cert ("
                                         " serial TEXT PRIMARY KEY,"
                                         " transaction_id TEXT,"
                                         " subject TEXT NOT NULL,"
                                         " issuer TEXT NOT NULL,"
                                         " not_before TEXT NOT NULL,"
                                         " not_after TEXT NOT NULL,"
                                         " cert_pem TEXT NOT NULL,"
                                         " revoked_at TEXT,"
                                         " revocation_reason INTEGER,"
                                         " created TEXT NOT NULL)",
                                         NULL };

/* Pending approval: what a held request needs to be issued later and what
 * a CA manager sees of it. */
static const char *const schema_v2[] = {
    "ALTER TABLE scep_request ADD COLUMN signer_key_id TEXT",
    "ALTER TABLE scep_request ADD COLUMN template TEXT",
    "ALTER TABLE scep_request ADD COLUMN csr_pem TEXT",
    "ALTER TABLE scep_request ADD COLUMN san TEXT",
    "ALTER TABLE scep_request ADD COLUMN key_desc TEXT",
    "ALTER TABLE scep_request ADD COLUMN decided_by TEXT",
    "CREATE INDEX IF NOT EXISTS scep_request_status ON scep_request (status, created)",
    "CREATE INDEX IF NOT EXISTS scep_cert_created ON scep_cert (created)",
    NULL
};

/* Transaction binding: key ids digest the whole SubjectPublicKeyInfo now,
 * where those of older rows digest the key bits alone. The old ids cannot
 * be computed again (the signer's key is not kept), so they are marked, and
 * compared as what they are (mod_scep_pkiop.c); a request remembers the
 * digest of its CSR, so that a resent transactionID with another CSR is
 * refused (NULL in older rows: not known). */
static const char *const schema_v3_transaction_binding[] = {
    "UPDATE scep_request SET key_id = '" SCEP_KEY_ID_BITS_PREFIX "' || key_id,"
    " signer_key_id = '" SCEP_KEY_ID_BITS_PREFIX "' || signer_key_id",
    "ALTER TABLE scep_request ADD COLUMN csr_digest TEXT", NULL
};

/* No secret at rest: a held request keeps its CSR without the challenge
 * password (scep_csr_pem_at_rest(), strip_held_csrs() for the CSRs kept
 * whole before), and a decided request keeps none. */
static const char *const schema_v4_no_secrets[] = {
    "UPDATE scep_request SET csr_pem = NULL WHERE status NOT IN ('pending', 'approved')", NULL
};

/* Requests an external CA holds: the backend's ticket, the backend that
 * holds it, and when to ask the CA again, in seconds since the epoch
 * (BIGINT: PostgreSQL's INTEGER ends in 2038; SQLite reads it as INTEGER);
 * the device's CSR sealed for the CA while held (scep_csr_seal()). */
static const char *const schema_v5_ca_tickets[] = {
    "ALTER TABLE scep_request ADD COLUMN ca_ticket TEXT",
    "ALTER TABLE scep_request ADD COLUMN ca_poll_at BIGINT",
    "ALTER TABLE scep_request ADD COLUMN ca_backend TEXT",
    "ALTER TABLE scep_request ADD COLUMN csr_sealed TEXT",
    "CREATE INDEX IF NOT EXISTS scep_request_ca_poll ON scep_request (ca_poll_at)",
    NULL
};

/* Several servers, one service (times in seconds since the epoch):
 * - scep_password: the one-time passwords of SCEPPasswordStore sql, each
 *   as its HMAC under a key derived from the shared SCEPSecretKeyFile (hex,
 *   never the password), with the halves it served (scep_password.h's
 *   rule) and the HMACs of the requests that spent them;
 * - scep_secret: what all servers share sealed with that key (the single
 *   password);
 * - scep_crl: the CRLs the service signed, by issuer (the series: the CA
 *   certificate's SHA-256, scep_crl_issuer(), so that a rollover starts a
 *   new one) and cRLNumber, with how many revoked certificates the records
 *   held when it was signed (a count that only grows: more means a newer
 *   list is due);
 * - scep_service: what each CA's service is, the digests of its CA and RA
 *   certificates, which every server must present to start. */
static const char *const schema_v6_service[] = {
    "CREATE TABLE IF NOT EXISTS scep_password ("
    " mac TEXT PRIMARY KEY,"
    " issued_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL,"
    " served INTEGER NOT NULL DEFAULT 0,"
    " spender_sign TEXT,"
    " spender_encrypt TEXT)",
    "CREATE INDEX IF NOT EXISTS scep_password_expires ON scep_password (expires_at)",
    "CREATE TABLE IF NOT EXISTS scep_secret ("
    " name TEXT PRIMARY KEY,"
    " sealed TEXT NOT NULL,"
    " updated BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS scep_crl ("
    " issuer TEXT NOT NULL,"
    " crl_number BIGINT NOT NULL,"
    " this_update BIGINT NOT NULL,"
    " next_update BIGINT NOT NULL,"
    " revoked_count BIGINT NOT NULL,"
    " crl_pem TEXT NOT NULL,"
    " PRIMARY KEY (issuer, crl_number))",
    "CREATE INDEX IF NOT EXISTS scep_cert_revoked ON scep_cert (revoked_at)",
    "CREATE TABLE IF NOT EXISTS scep_service ("
    " issuer TEXT PRIMARY KEY,"
    " ca_sha256 TEXT NOT NULL,"
    " ra_sha256 TEXT NOT NULL,"
    " recorded BIGINT NOT NULL)",
    NULL
};

static int strip_held_csrs(const struct sql_store_t *st);

/* Applied in order; a new schema version is a new entry at the end. */
static const migration_t migrations[] = {
    { 1, schema_v1, NULL },
    { 2, schema_v2, NULL },
    { 3, schema_v3_transaction_binding, NULL },
    { 4, schema_v4_no_secrets, strip_held_csrs },
    { 5, schema_v5_ca_tickets, NULL },
    { 6, schema_v6_service, NULL },
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))
#define SCHEMA_VERSION (migrations[MIGRATION_COUNT - 1].version)

/* What differs between databases. */
typedef struct setup_statement_t {
    const char *sql;
    int optional; /* a failure is logged, not fatal */
} setup_statement_t;

typedef struct driver_quirks_t {
    const char *name;                    /* apr_dbd_name() */
    const setup_statement_t *on_connect; /* run once per connection, may return rows */
    const char *migration_lock;          /* first statement of the migration transaction */
    /* once per connection, before on_connect; failures are logged, not fatal */
    void (*on_connect_fn)(const struct sql_store_t *st);
    /* transactions begun and ended by statements, not apr_dbd's functions */
    int plain_transactions;
    /* in a transaction, serializes what the servers of a service do one at
     * a time until its end: this, which (SERVICE_LOCK_*) and ")"; NULL:
     * the transaction's own write lock does (SQLite's BEGIN IMMEDIATE) */
    const char *service_lock;
} driver_quirks_t;

/* SQLite: wait for a busy database instead of failing at once (several
 * children write), and WAL so readers do not block the writer. apr_dbd's
 * sqlite3 driver starts transactions with BEGIN IMMEDIATE, which takes the
 * write lock: no extra lock statement. WAL is kept in the database file:
 * when children open a new database together only one of them can switch
 * it, the others find it "locked" and get WAL from the one that won. */
static const setup_statement_t sqlite3_on_connect[] = {
    /* Short: SQLite waits out a busy database while apr_dbd's per-process
     * lock is held, so the thread holding the write lock (under the event
     * MPM, in the same process) could not commit for as long. apr_dbd
     * retries busy statements itself with that lock released. */
    { "PRAGMA busy_timeout = 50", 0 },
    { "PRAGMA journal_mode = WAL", 1 },
    { NULL, 0 }
};

/* PostgreSQL: libpq prints the server's notices on stderr, which is
 * Apache's error log, as lines of their own ("relation ... already exists,
 * skipping" for a CREATE ... IF NOT EXISTS): only warnings and errors are
 * sent. Transactions do not lock tables; an advisory lock held until the
 * end of the migration transaction serializes migrations. The key is an
 * arbitrary constant ("SCEP" in ASCII); signing a CRL takes another
 * ("SCRL"). */
static const setup_statement_t pgsql_on_connect[] = { { "SET client_min_messages = warning", 0 },
                                                      { NULL, 0 } };

static void sqlite3_files_private(const struct sql_store_t *st);

/* PostgreSQL's transactions are begun and ended by statements: apr_dbd's
 * pgsql driver (apr-util 1.6) dereferences a NULL transaction when BEGIN
 * fails, as on a connection whose server restarted, and the worker
 * crashes (test_faults.py::test_database_restarted_under_load). */
static const driver_quirks_t driver_quirks[] = {
    { "sqlite3", sqlite3_on_connect, NULL, sqlite3_files_private, 0, NULL },
    { "pgsql", pgsql_on_connect, "SELECT pg_advisory_xact_lock(1396917584)", NULL, 1,
      "SELECT pg_advisory_xact_lock(1396917584, " },
};

static const driver_quirks_t generic_quirks = { "generic", NULL, NULL, NULL, 0, NULL };

/* What the service lock serializes (the second key of PostgreSQL's
 * two-key advisory locks, a key space apart from the migrations' lock). */
enum { SERVICE_LOCK_PASSWORDS = 1, SERVICE_LOCK_CRL = 2 };

static const driver_quirks_t *quirks_of(const scep_sql_conn_t *conn)
{
    const char *name = apr_dbd_name(conn->driver);
    apr_size_t i;

    for (i = 0; i < sizeof(driver_quirks) / sizeof(driver_quirks[0]); i++) {
        if (!strcmp(driver_quirks[i].name, name)) {
            return &driver_quirks[i];
        }
    }
    return &generic_quirks;
}

/* ----------------------------------------------------------------------
 * Statements, prepared once per connection
 */

enum {
    STMT_FIND_TRANSACTION,
    STMT_INSERT_REQUEST,
    STMT_INSERT_CERT,
    STMT_RECORD_HELD_ISSUED,
    STMT_DECIDE,
    STMT_EXPIRE_PENDING,
    STMT_HOLD_AT_CA,
    STMT_CLAIM_CA_POLL,
    STMT_LIST_CA_DUE,
    STMT_LIST_REQUESTS,
    STMT_LIST_REQUESTS_IN,
    STMT_FIND_CERT,
    STMT_LIST_CERTS,
    STMT_LIST_REVOKED,
    STMT_REVOKE,
    STMT_PASSWORD_PURGE,
    STMT_PASSWORD_WAITING,
    STMT_PASSWORD_INSERT,
    STMT_PASSWORD_SPEND,
    STMT_PASSWORD_FIND,
    STMT_SECRET_GET,
    STMT_SECRET_ADD,
    STMT_SECRET_SET,
    STMT_LATEST_CRL,
    STMT_INSERT_CRL,
    STMT_PRUNE_CRLS,
    STMT_FIND_SERVICE,
    STMT_INSERT_SERVICE,
    STMT_REPLACE_SERVICE,
    STMT_COUNT
};

typedef struct statement_t {
    const char *label; /* key in the connection's prepared hash */
    const char *sql;
} statement_t;

/* The columns txn_of_row() reads, in its order. */
#define REQUEST_COLUMNS \
    "r.transaction_id, r.key_id, r.status, r.subject, r.serial, r.reason, r.message_type," \
    " c.cert_pem, r.signer_key_id, r.template, r.csr_pem, r.san, r.key_desc, r.client_addr," \
    " r.decided_by, r.created, r.updated, r.csr_digest, r.ca_ticket, r.ca_poll_at," \
    " r.ca_backend, r.csr_sealed" \
    " FROM scep_request r LEFT JOIN scep_cert c ON c.serial = r.serial"

/* The columns cert_of_row() reads, in its order. */
#define CERT_COLUMNS \
    "serial, cert_pem, revoked_at, revocation_reason, subject, transaction_id, not_before," \
    " not_after FROM scep_cert"

/* %d marks an INTEGER column, %lld a BIGINT one: PostgreSQL types the
 * parameter from it. A state change out of the held states clears the
 * ticket and the CSRs (an approval keeps the CSRs: the request is issued
 * from them); a request the CA holds is not approved (the CA decides). */
static const statement_t statements[STMT_COUNT] = {
    { "mod_scep_find_transaction", "SELECT " REQUEST_COLUMNS " WHERE r.transaction_id = %s" },
    { "mod_scep_insert_request",
      "INSERT INTO scep_request (transaction_id, key_id, status, subject, message_type,"
      " serial, reason, client_addr, created, updated, signer_key_id, template, csr_pem, san,"
      " key_desc, csr_digest, ca_ticket, ca_poll_at, ca_backend, csr_sealed)"
      " VALUES (%s, %s, %s, %s, %d, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %lld, %s,"
      " %s)" },
    { "mod_scep_insert_cert",
      "INSERT INTO scep_cert (serial, transaction_id, subject, issuer, not_before, not_after,"
      " cert_pem, created)"
      " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)" },
    { "mod_scep_record_held_issued",
      "UPDATE scep_request SET status = 'issued', serial = %s, updated = %s,"
      " decided_by = COALESCE(%s, decided_by), csr_pem = NULL, csr_sealed = NULL,"
      " ca_ticket = NULL, ca_poll_at = NULL, ca_backend = NULL"
      " WHERE transaction_id = %s AND status IN ('pending', 'approved')" },
    { "mod_scep_decide",
      "UPDATE scep_request SET status = %s, decided_by = %s, reason = %s, updated = %s,"
      " csr_pem = CASE WHEN %s = 'approved' THEN csr_pem END,"
      " csr_sealed = CASE WHEN %s = 'approved' THEN csr_sealed END, ca_ticket = NULL,"
      " ca_poll_at = NULL, ca_backend = NULL"
      " WHERE transaction_id = %s AND status = %s"
      " AND (ca_ticket IS NULL OR %s <> 'approved')" },
    { "mod_scep_expire_pending",
      "UPDATE scep_request SET status = 'expired', reason = %s, updated = %s, csr_pem = NULL,"
      " csr_sealed = NULL, ca_ticket = NULL, ca_poll_at = NULL, ca_backend = NULL"
      " WHERE status = 'pending' AND created < %s" },
    { "mod_scep_hold_at_ca",
      "UPDATE scep_request SET status = 'pending', ca_ticket = %s, ca_backend = %s,"
      " ca_poll_at = %lld, updated = %s, decided_by = COALESCE(%s, decided_by)"
      " WHERE transaction_id = %s AND status IN ('pending', 'approved')" },
    { "mod_scep_claim_ca_poll",
      "UPDATE scep_request SET ca_poll_at = %lld"
      " WHERE transaction_id = %s AND status = 'pending' AND ca_ticket IS NOT NULL"
      " AND ca_poll_at = %lld" },
    { "mod_scep_list_ca_due",
      "SELECT " REQUEST_COLUMNS " WHERE r.status = 'pending' AND r.ca_ticket IS NOT NULL"
      " AND COALESCE(r.ca_backend, '') = COALESCE(%s, '') AND r.ca_poll_at <= %lld"
      " ORDER BY r.ca_poll_at, r.transaction_id LIMIT %d" },
    { "mod_scep_list_requests",
      "SELECT " REQUEST_COLUMNS " ORDER BY r.created DESC, r.transaction_id LIMIT %d" },
    { "mod_scep_list_requests_in", "SELECT " REQUEST_COLUMNS " WHERE r.status = %s"
                                   " ORDER BY r.created DESC, r.transaction_id LIMIT %d" },
    { "mod_scep_find_cert", "SELECT " CERT_COLUMNS " WHERE serial = %s" },
    { "mod_scep_list_certs",
      "SELECT " CERT_COLUMNS " WHERE LOWER(subject) LIKE %s ESCAPE '!' OR serial LIKE %s ESCAPE '!'"
      " ORDER BY created DESC, serial LIMIT %d" },
    { "mod_scep_list_revoked", "SELECT serial, revoked_at, revocation_reason FROM scep_cert"
                               " WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial" },
    { "mod_scep_revoke", "UPDATE scep_cert SET revoked_at = %s, revocation_reason = %d"
                         " WHERE serial = %s AND revoked_at IS NULL" },
    { "mod_scep_password_purge", "DELETE FROM scep_password WHERE expires_at <= %lld" },
    { "mod_scep_password_waiting",
      "SELECT COUNT(*) FROM scep_password WHERE expires_at > %lld AND served <> %d" },
    { "mod_scep_password_insert",
      "INSERT INTO scep_password (mac, issued_at, expires_at, served) VALUES (%s, %lld, %lld, 0)" },
    /* The whole use rule's race in one statement: it changes the row only
     * while none of the halves asked was served, so of two servers spending
     * the same half at once one changes it and the other changes nothing.
     * A half not asked keeps its spender (NULL for it). */
    { "mod_scep_password_spend",
      "UPDATE scep_password SET served = served | %d,"
      " spender_sign = COALESCE(%s, spender_sign), spender_encrypt = COALESCE(%s, spender_encrypt)"
      " WHERE mac = %s AND expires_at > %lld AND (served & %d) = 0" },
    { "mod_scep_password_find",
      "SELECT expires_at, served, spender_sign, spender_encrypt FROM scep_password"
      " WHERE mac = %s" },
    { "mod_scep_secret_get", "SELECT sealed FROM scep_secret WHERE name = %s" },
    /* ON CONFLICT: PostgreSQL 9.5, SQLite 3.24 */
    { "mod_scep_secret_add", "INSERT INTO scep_secret (name, sealed, updated) VALUES (%s, %s, %lld)"
                             " ON CONFLICT (name) DO NOTHING" },
    { "mod_scep_secret_set",
      "INSERT INTO scep_secret (name, sealed, updated) VALUES (%s, %s, %lld)"
      " ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated = excluded.updated" },
    /* the newest CRL with the number of revoked certificates now, in one
     * statement (one snapshot) */
    { "mod_scep_latest_crl", "SELECT crl_number, this_update, next_update, revoked_count, crl_pem,"
                             " (SELECT COUNT(*) FROM scep_cert WHERE revoked_at IS NOT NULL)"
                             " FROM scep_crl WHERE issuer = %s ORDER BY crl_number DESC LIMIT 1" },
    { "mod_scep_insert_crl",
      "INSERT INTO scep_crl (issuer, crl_number, this_update, next_update, revoked_count,"
      " crl_pem) VALUES (%s, %lld, %lld, %lld, %lld, %s)" },
    /* all but the newest few of a series */
    { "mod_scep_prune_crls",
      "DELETE FROM scep_crl WHERE issuer = %s AND crl_number < (SELECT MIN(crl_number) FROM"
      " (SELECT crl_number FROM scep_crl WHERE issuer = %s"
      " ORDER BY crl_number DESC LIMIT %d) kept)" },
    { "mod_scep_find_service", "SELECT issuer, ca_sha256, ra_sha256, recorded FROM scep_service"
                               " WHERE issuer = %s" },
    /* No row when the CA's service is recorded: a first server that lost
     * the race fails on the primary key instead, and reads the winner's. */
    { "mod_scep_insert_service", "INSERT INTO scep_service (issuer, ca_sha256, ra_sha256, recorded)"
                                 " SELECT %s, %s, %s, %lld WHERE NOT EXISTS"
                                 " (SELECT 1 FROM scep_service WHERE issuer = %s)" },
    { "mod_scep_replace_service",
      "UPDATE scep_service SET ca_sha256 = %s, ra_sha256 = %s, recorded = %lld WHERE issuer = %s" },
};

/* CRLs of a series kept, the newest among them: older ones are of no use
 * to a server (what a relying party fetched a moment ago stays visible). */
#define CRLS_KEPT 4

typedef struct sql_store_t {
    scep_store_t store;
    scep_sql_conn_t conn;
    scep_log_fn *log;
    void *log_baton;
    apr_pool_t *pool;        /* for messages */
    int ready;               /* conn went through make_ready() */
    int renewed;             /* conn was replaced once: no second time */
    const char *setup_error; /* once it is final */
} sql_store_t;

/* What a statement on a connection that could not be readied returns
 * (apr_dbd's drivers return SQLite's and PostgreSQL's codes, all >= -1). */
#define NOT_READY (-1000)

/* apr_dbd_select()'s seek argument: random access, see the top. */
#define SELECT_BUFFERED 1

static void store_log_at(const sql_store_t *st, const char *file, int line, int level,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* fmt starts with its SCEPLOGNO() tag. */
static void store_log_at(const sql_store_t *st, const char *file, int line, int level,
                         const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    st->log(st->log_baton, file, line, level, apr_pvsprintf(st->pool, fmt, ap));
    va_end(ap);
}
#define store_log(st, ...) store_log_at(st, SCEP_LOG_MARK, __VA_ARGS__)

static apr_dbd_prepared_t *prepared(const sql_store_t *st, int which)
{
    return apr_hash_get(st->conn.prepared, statements[which].label, APR_HASH_KEY_STRING);
}

/* The driver's text of the last error, on one line: PostgreSQL's has a
 * line for the error, one for DETAIL and ends in a newline. */
static const char *dbd_error(const sql_store_t *st, int err)
{
    const char *text = err == NOT_READY ? "the new database connection could not be set up"
                                        : apr_dbd_error(st->conn.driver, st->conn.handle, err);
    char *line, *c;
    apr_size_t len;

    if (!text || !*text) {
        return "unknown database error";
    }
    line = apr_pstrdup(st->pool, text);
    for (c = line; *c; c++) {
        if (*c == '\n' || *c == '\r' || *c == '\t') {
            *c = ' ';
        }
    }
    for (len = strlen(line); len > 0 && line[len - 1] == ' '; len--) {
        line[len - 1] = '\0';
    }
    return line;
}

/* ----------------------------------------------------------------------
 * Connection setup: driver settings, migrations, statements
 */

static void setup_failed(sql_store_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Kept, not logged: a new connection may still succeed (scep_store_sql()).
 * fmt starts with its SCEPLOGNO() tag. */
static void setup_failed(sql_store_t *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    st->setup_error = apr_pvsprintf(st->pool, fmt, ap);
    va_end(ap);
}

/* Runs a statement that may return rows (PRAGMA does), discarding them. */
static int run_select(const sql_store_t *st, const char *sql)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int err =
        apr_dbd_select(st->conn.driver, st->pool, st->conn.handle, &res, sql, SELECT_BUFFERED);

    while (!err && apr_dbd_get_row(st->conn.driver, st->pool, res, &row, -1) == 0) {
    }
    return err;
}

static int run_query(const sql_store_t *st, const char *sql)
{
    int nrows;

    return apr_dbd_query(st->conn.driver, st->conn.handle, &nrows, sql);
}

/* SQLite makes its files with the process's umask (0644 under Apache),
 * and the records hold what devices asked for and what was decided: the
 * database and the files beside it are made the owner's alone. The WAL and
 * shared-memory files SQLite makes later take the database file's mode;
 * those made already (by an older version, or by a connection that got
 * here first) are changed here too. */
static void make_private(const sql_store_t *st, const char *path)
{
    apr_finfo_t finfo;
    apr_status_t rv = apr_stat(&finfo, path, APR_FINFO_PROT, st->pool);
    apr_fileperms_t owner = APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE;
    char err[120];

    if (rv == APR_SUCCESS && (finfo.protection & ~owner) != 0) {
        rv = apr_file_perms_set(path, finfo.protection & owner);
    }
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)) {
        store_log(
            st, SCEP_LOG_WARNING,
            SCEPLOGNO(331) "cannot make the database file %s private to its owner (mode 0600): %s",
            path, apr_strerror(rv, err, sizeof(err)));
    }
}

static void sqlite3_files_private(const sql_store_t *st)
{
    static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *file = NULL;
    apr_size_t i;

    /* rows of (seq, name, file); an in-memory database has no file */
    if (apr_dbd_select(st->conn.driver, st->pool, st->conn.handle, &res, "PRAGMA database_list",
                       SELECT_BUFFERED) == 0) {
        while (apr_dbd_get_row(st->conn.driver, st->pool, res, &row, -1) == 0) {
            const char *name = apr_dbd_get_entry(st->conn.driver, row, 1);
            const char *path = apr_dbd_get_entry(st->conn.driver, row, 2);

            if (name && !strcmp(name, "main") && path && *path) {
                file = apr_pstrdup(st->pool, path);
            }
        }
    }
    for (i = 0; file && i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        make_private(st, apr_pstrcat(st->pool, file, suffixes[i], NULL));
    }
}

static apr_status_t run_on_connect(sql_store_t *st, const driver_quirks_t *quirks)
{
    const setup_statement_t *stmt;
    int err;

    if (quirks->on_connect_fn) {
        quirks->on_connect_fn(st);
    }
    for (stmt = quirks->on_connect; stmt && stmt->sql; stmt++) {
        if ((err = run_select(st, stmt->sql)) == 0) {
            continue;
        }
        if (stmt->optional) {
            store_log(st, SCEP_LOG_DEBUG,
                      SCEPLOGNO(310) "database setup '%s' left to another process: %s", stmt->sql,
                      dbd_error(st, err));
            continue;
        }
        setup_failed(st, SCEPLOGNO(301) "database setup '%s' failed: %s%s", stmt->sql,
                     dbd_error(st, err), scep_event_text(SCEP_EVENT_FAIL_CERT_REQ));
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* The int that is the whole of text (decimal); fallback when text is NULL
 * or anything else. */
static int int_of(const char *text, int fallback)
{
    int value;

    return scep_parse_int(text, INT_MIN, INT_MAX, &value) ? value : fallback;
}

/* The schema version recorded in the database; 0 for a new database. */
static int read_schema_version(const sql_store_t *st, int *version)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int err;

    *version = 0;
    err = apr_dbd_select(st->conn.driver, st->pool, st->conn.handle, &res,
                         "SELECT MAX(version) FROM scep_schema", SELECT_BUFFERED);
    while (!err && apr_dbd_get_row(st->conn.driver, st->pool, res, &row, -1) == 0) {
        /* NULL from an empty table; the column is an INTEGER. */
        *version = int_of(apr_dbd_get_entry(st->conn.driver, row, 0), 0);
    }
    return err;
}

static int apply_migration(const sql_store_t *st, const migration_t *m)
{
    const char *const *sql;
    int err = 0;

    for (sql = m->statements; *sql && !err; sql++) {
        err = run_query(st, *sql);
    }
    if (!err && m->convert) {
        err = m->convert(st);
    }
    if (!err) {
        err = run_query(st, apr_psprintf(st->pool, "INSERT INTO scep_schema (version) VALUES (%d)",
                                         m->version));
    }
    return err;
}

/* Inside the locked transaction: what is missing since `version`. */
static int apply_missing_migrations(const sql_store_t *st, const driver_quirks_t *quirks)
{
    int version, i, err = 0;

    if (quirks->migration_lock) {
        err = run_select(st, quirks->migration_lock);
    }
    if (!err) {
        err = run_query(st, "CREATE TABLE IF NOT EXISTS scep_schema (version INTEGER NOT NULL)");
    }
    if (!err) {
        err = read_schema_version(st, &version);
    }
    for (i = 0; i < MIGRATION_COUNT && !err; i++) {
        if (migrations[i].version > version) {
            err = apply_migration(st, &migrations[i]);
            if (!err) {
                store_log(st, SCEP_LOG_NOTICE,
                          SCEPLOGNO(302) "database schema migrated to version %d",
                          migrations[i].version);
            }
        }
    }
    return err;
}

/* Ends a transaction, rolling back when err says a statement failed;
 * returns the first error. */
/* A transaction of the store: apr_dbd's, or one begun by a statement
 * (driver_quirks_t.plain_transactions). */
typedef struct sql_txn_t {
    apr_dbd_transaction_t *dbd;
    int plain_open;
} sql_txn_t;

static int begin_transaction(const sql_store_t *st, apr_pool_t *p, sql_txn_t *txn)
{
    int nrows = 0, err;

    txn->dbd = NULL;
    txn->plain_open = 0;
    if (!quirks_of(&st->conn)->plain_transactions) {
        return apr_dbd_transaction_start(st->conn.driver, p, st->conn.handle, &txn->dbd);
    }
    err = apr_dbd_query(st->conn.driver, st->conn.handle, &nrows, "BEGIN");
    txn->plain_open = !err;
    return err;
}

/* Commits, or rolls back when err (which it returns then); a transaction
 * that was not begun is left alone. */
static int end_transaction(const sql_store_t *st, sql_txn_t *txn, int err)
{
    int nrows = 0, end_err;

    if (txn->plain_open) {
        end_err =
            apr_dbd_query(st->conn.driver, st->conn.handle, &nrows, err ? "ROLLBACK" : "COMMIT");
        txn->plain_open = 0;
        return err ? err : end_err;
    }
    if (!txn->dbd) {
        return err;
    }
    if (err) {
        apr_dbd_transaction_mode_set(st->conn.driver, txn->dbd, APR_DBD_TRANSACTION_ROLLBACK);
    }
    end_err = apr_dbd_transaction_end(st->conn.driver, st->pool, txn->dbd);
    return err ? err : end_err;
}

/* Writers take turns when the connection has a write lock: on SQLite a
 * second writer would otherwise wait in SQLite's busy handler while apr_dbd
 * holds its connection lock, and the first could not commit. */
static apr_status_t lock_writes(const sql_store_t *st)
{
    const scep_sql_lock_t *lock = st->conn.write_lock;
    apr_status_t rv = lock ? lock->acquire(lock->baton) : APR_SUCCESS;

    if (rv != APR_SUCCESS) {
        char err[120];

        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(316) "cannot take the database's write lock: %s",
                  apr_strerror(rv, err, sizeof(err)));
    }
    return rv;
}

static void unlock_writes(const sql_store_t *st)
{
    const scep_sql_lock_t *lock = st->conn.write_lock;

    if (lock) {
        lock->release(lock->baton);
    }
}

#define NO_WRITE_LOCK "no write lock"

/* One migration transaction, under the write lock; on failure *error
 * holds the driver's text. Without the lock, the connections that a new
 * database's first requests open together each waited out SQLite's busy
 * handler while holding apr_dbd's lock, between every statement of the
 * migrating one: seconds for the whole schema. */
static int migrate_once(const sql_store_t *st, const driver_quirks_t *quirks, const char **error)
{
    sql_txn_t trans;
    int err;

    if (lock_writes(st) != APR_SUCCESS) {
        *error = NO_WRITE_LOCK;
        return -1;
    }
    err = begin_transaction(st, st->pool, &trans);
    if (!err) {
        err = apply_missing_migrations(st, quirks);
    }
    if (err) {
        /* Read before the rollback replaces it. */
        *error = dbd_error(st, err);
    }
    err = end_transaction(st, &trans, err);
    if (err && !*error) {
        *error = dbd_error(st, err);
    }
    unlock_writes(st);
    return err;
}

/* Children that open a new database at the same moment race to create it.
 * The loser's SQLite connection then answers "database schema has changed"
 * once; the next attempt reads the schema the winner made. */
#define MIGRATION_ATTEMPTS 3

static apr_status_t migrate(sql_store_t *st, const driver_quirks_t *quirks)
{
    const char *error = NULL;
    int version, attempt;

    for (attempt = 0; attempt < MIGRATION_ATTEMPTS; attempt++) {
        /* The common case, without taking the write lock. A failure here is
         * normal for a new database (no scep_schema yet). */
        if (read_schema_version(st, &version) == 0 && version >= SCHEMA_VERSION) {
            return APR_SUCCESS;
        }
        error = NULL;
        if (migrate_once(st, quirks, &error) == 0) {
            return APR_SUCCESS;
        }
    }
    setup_failed(st, SCEPLOGNO(303) "cannot migrate the database schema to version %d: %s%s",
                 SCHEMA_VERSION, error, scep_event_text(SCEP_EVENT_FAIL_CERT_REQ));
    return APR_EGENERAL;
}

static apr_status_t prepare_statements(sql_store_t *st)
{
    apr_pool_t *pool = apr_hash_pool_get(st->conn.prepared);
    apr_dbd_prepared_t *stmt;
    int i, err;

    for (i = 0; i < STMT_COUNT; i++) {
        stmt = NULL;
        err = apr_dbd_prepare(st->conn.driver, pool, st->conn.handle, statements[i].sql,
                              statements[i].label, &stmt);
        if (err) {
            setup_failed(st, SCEPLOGNO(304) "cannot prepare %s: %s%s", statements[i].label,
                         dbd_error(st, err), scep_event_text(SCEP_EVENT_FAIL_CERT_REQ));
            return APR_EGENERAL;
        }
        apr_hash_set(st->conn.prepared, statements[i].label, APR_HASH_KEY_STRING, stmt);
    }
    return APR_SUCCESS;
}

/* Statements are prepared last and in order, so the last one being in the
 * hash means the connection went through all of the setup. A failure is in
 * st->setup_error. */
static apr_status_t make_ready(sql_store_t *st)
{
    const driver_quirks_t *quirks;
    apr_status_t rv = APR_SUCCESS;

    if (!prepared(st, STMT_COUNT - 1)) {
        quirks = quirks_of(&st->conn);
        if ((rv = run_on_connect(st, quirks)) == APR_SUCCESS &&
            (rv = migrate(st, quirks)) == APR_SUCCESS) {
            rv = prepare_statements(st);
        }
    }
    st->ready = rv == APR_SUCCESS;
    return rv;
}

/* After a failure that may be the connection's own: a new connection from
 * conn.renew, readied like the first. 1 when the store has one to try
 * again on; at most once per store. */
static int renewed(sql_store_t *st, const char *failure)
{
    if (!st->conn.renew || st->renewed) {
        return 0;
    }
    st->renewed = 1;
    store_log(st, SCEP_LOG_DEBUG,
              SCEPLOGNO(344) "replacing the database connection after a failure: %s", failure);
    if (st->conn.renew(st->conn.renew_baton, &st->conn) != APR_SUCCESS) {
        return 0;
    }
    return make_ready(st) == APR_SUCCESS;
}

/* ----------------------------------------------------------------------
 * Values
 */

/* A copy in p of a row's value: the pgsql driver's values live in its
 * result, freed when the rows have been read. Drivers return NULL or ""
 * for SQL NULL: both mean "none" here. */
static const char *entry_or_null(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row, int col)
{
    const char *value = apr_dbd_get_entry(st->conn.driver, row, col);

    return value && *value ? apr_pstrdup(p, value) : NULL;
}

static const char *iso8601_of_tm(apr_pool_t *p, int year, int mon, int mday, int hour, int min,
                                 int sec)
{
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", year, mon, mday, hour, min, sec);
}

static const char *iso8601_of(apr_pool_t *p, apr_time_t when)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, when);
    return iso8601_of_tm(p, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
}

static const char *iso8601_now(apr_pool_t *p)
{
    return iso8601_of(p, apr_time_now());
}

static const char *iso8601_of_asn1(apr_pool_t *p, const ASN1_TIME *t)
{
    struct tm tm;

    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        return NULL;
    }
    return iso8601_of_tm(p, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
}

/* The decimal number of the n digits at text. */
static int digits_value(const char *text, int n)
{
    int value = 0;

    while (n-- > 0) {
        value = value * 10 + (*text++ - '0');
    }
    return value;
}

/* The times written by iso8601_of_tm(); 0 when text is not one. Digits
 * are checked by position, so no field can overflow. */
static apr_time_t time_of_iso8601(const char *text)
{
    static const char layout[] = "0000-00-00T00:00:00Z";
    apr_time_exp_t tm = { 0 };
    apr_time_t when;
    apr_size_t i;

    if (!text || strlen(text) != sizeof(layout) - 1) {
        return 0;
    }
    for (i = 0; i < sizeof(layout) - 1; i++) {
        if (layout[i] == '0' ? !apr_isdigit(text[i]) : text[i] != layout[i]) {
            return 0;
        }
    }
    tm.tm_year = digits_value(text, 4) - 1900;
    tm.tm_mon = digits_value(text + 5, 2) - 1;
    tm.tm_mday = digits_value(text + 8, 2);
    tm.tm_hour = digits_value(text + 11, 2);
    tm.tm_min = digits_value(text + 14, 2);
    tm.tm_sec = digits_value(text + 17, 2);
    return apr_time_exp_gmt_get(&when, &tm) == APR_SUCCESS ? when : 0;
}

/* A time in seconds since the epoch (ca_poll_at) as the column holds it,
 * and back; 0 (none) for NULL or anything else. */
static const char *seconds_of(apr_pool_t *p, apr_time_t when)
{
    return apr_psprintf(p, "%" APR_TIME_T_FMT, apr_time_sec(when));
}

static apr_time_t time_of_seconds(const char *text)
{
    apr_int64_t seconds;
    char *end;

    if (!text) {
        return 0;
    }
    seconds = apr_strtoi64(text, &end, 10);
    return *end || seconds <= 0 ? 0 : apr_time_from_sec(seconds);
}

/* A BIGINT column (a cRLNumber, a count); 0 for NULL or anything else. */
static apr_int64_t int64_of(const char *text)
{
    apr_int64_t value;
    char *end;

    if (!text) {
        return 0;
    }
    value = apr_strtoi64(text, &end, 10);
    return *end ? 0 : value;
}

static const char *int64_text(apr_pool_t *p, apr_int64_t value)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, value);
}

/* The revocation_reason column; anything but a code counts as none. */
static int reason_of(const char *text)
{
    int reason = int_of(text, SCEP_CRL_REASON_NONE);

    return scep_crl_reason_valid(reason) ? reason : SCEP_CRL_REASON_NONE;
}

/* The columns of scep_cert, from the certificate. */
typedef struct cert_row_t {
    const char *serial;
    const char *subject;
    const char *issuer;
    const char *not_before;
    const char *not_after;
    const char *pem;
} cert_row_t;

static apr_status_t cert_row_of(apr_pool_t *p, X509 *cert, cert_row_t *row)
{
    row->serial = scep_serial_hex(p, X509_get0_serialNumber(cert));
    row->subject = scep_utf8_text(p, scep_name_text(p, X509_get_subject_name(cert)));
    row->issuer = scep_utf8_text(p, scep_name_text(p, X509_get_issuer_name(cert)));
    row->not_before = iso8601_of_asn1(p, X509_get0_notBefore(cert));
    row->not_after = iso8601_of_asn1(p, X509_get0_notAfter(cert));
    row->pem = scep_cert_pem(p, cert);
    return row->serial && row->subject && row->issuer && row->not_before && row->not_after &&
                   row->pem
               ? APR_SUCCESS
               : APR_ENOMEM;
}

/* A row of REQUEST_COLUMNS. */
static scep_txn_t *txn_of_row(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    scep_txn_t *txn = apr_pcalloc(p, sizeof(*txn));

    txn->transaction_id = entry_or_null(p, st, row, 0);
    txn->key_id = entry_or_null(p, st, row, 1);
    txn->status = entry_or_null(p, st, row, 2);
    txn->subject = entry_or_null(p, st, row, 3);
    txn->serial = entry_or_null(p, st, row, 4);
    txn->reason = entry_or_null(p, st, row, 5);
    txn->message_type = int_of(entry_or_null(p, st, row, 6), 0);
    txn->cert_pem = entry_or_null(p, st, row, 7);
    txn->signer_key_id = entry_or_null(p, st, row, 8);
    txn->template_name = entry_or_null(p, st, row, 9);
    txn->csr_pem = entry_or_null(p, st, row, 10);
    txn->san = entry_or_null(p, st, row, 11);
    txn->key_desc = entry_or_null(p, st, row, 12);
    txn->client_addr = entry_or_null(p, st, row, 13);
    txn->decided_by = entry_or_null(p, st, row, 14);
    txn->created = time_of_iso8601(entry_or_null(p, st, row, 15));
    txn->updated = time_of_iso8601(entry_or_null(p, st, row, 16));
    txn->csr_digest = entry_or_null(p, st, row, 17);
    txn->ca_ticket = entry_or_null(p, st, row, 18);
    txn->ca_poll_at = time_of_seconds(entry_or_null(p, st, row, 19));
    txn->ca_backend = entry_or_null(p, st, row, 20);
    txn->csr_sealed = entry_or_null(p, st, row, 21);
    return txn;
}

/* A row of CERT_COLUMNS. */
static scep_cert_record_t *cert_of_row(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    scep_cert_record_t *rec = apr_pcalloc(p, sizeof(*rec));

    rec->serial = entry_or_null(p, st, row, 0);
    rec->cert_pem = entry_or_null(p, st, row, 1);
    rec->revoked_at = time_of_iso8601(entry_or_null(p, st, row, 2));
    rec->reason = reason_of(entry_or_null(p, st, row, 3));
    rec->subject = entry_or_null(p, st, row, 4);
    rec->transaction_id = entry_or_null(p, st, row, 5);
    rec->not_before = time_of_iso8601(entry_or_null(p, st, row, 6));
    rec->not_after = time_of_iso8601(entry_or_null(p, st, row, 7));
    return rec;
}

/* ----------------------------------------------------------------------
 * Queries
 */

typedef void *row_reader_fn(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row);

static void *read_txn(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    return txn_of_row(p, st, row);
}

static void *read_cert(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    return cert_of_row(p, st, row);
}

static void *read_revoked(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    scep_revoked_t *entry = apr_pcalloc(p, sizeof(*entry));

    entry->serial = entry_or_null(p, st, row, 0);
    entry->revoked_at = time_of_iso8601(entry_or_null(p, st, row, 1));
    entry->reason = reason_of(entry_or_null(p, st, row, 2));
    return entry;
}

/* A row of STMT_LATEST_CRL (the issuer is the caller's). */
static void *read_crl(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    scep_crl_record_t *crl = apr_pcalloc(p, sizeof(*crl));

    crl->number = int64_of(entry_or_null(p, st, row, 0));
    crl->this_update = time_of_seconds(entry_or_null(p, st, row, 1));
    crl->next_update = time_of_seconds(entry_or_null(p, st, row, 2));
    crl->revoked_count = int64_of(entry_or_null(p, st, row, 3));
    crl->pem = entry_or_null(p, st, row, 4);
    crl->revoked_now = int64_of(entry_or_null(p, st, row, 5));
    return crl;
}

static int select_once(const sql_store_t *st, apr_pool_t *p, int which, int nargs,
                       const char **args, row_reader_fn *read, apr_array_header_t **rows,
                       const char **error)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int err = NOT_READY;

    *rows = apr_array_make(p, 8, sizeof(void *));
    if (st->ready) {
        err = apr_dbd_pselect(st->conn.driver, p, st->conn.handle, &res, prepared(st, which),
                              SELECT_BUFFERED, nargs, args);
    }
    if (err) {
        *error = dbd_error(st, err);
        return err;
    }
    while (apr_dbd_get_row(st->conn.driver, p, res, &row, -1) == 0) {
        APR_ARRAY_PUSH(*rows, void *) = read(p, st, row);
    }
    return 0;
}

/* Runs a prepared select and reads every row (to the end, which frees the
 * result) into *rows, an array of what read() makes; the driver's error
 * text in *error on failure. */
static int select_rows(sql_store_t *st, apr_pool_t *p, int which, int nargs, const char **args,
                       row_reader_fn *read, apr_array_header_t **rows, const char **error)
{
    int err = select_once(st, p, which, nargs, args, read, rows, error);

    if (err && renewed(st, *error)) {
        err = select_once(st, p, which, nargs, args, read, rows, error);
    }
    return err;
}

/* The first row of a select by primary key; APR_NOTFOUND when none. */
static apr_status_t select_one(sql_store_t *st, apr_pool_t *p, int which, const char *key,
                               row_reader_fn *read, void **found, const char **error)
{
    apr_array_header_t *rows;
    const char *args[] = { key };

    *found = NULL;
    if (select_rows(st, p, which, 1, args, read, &rows, error)) {
        return APR_EGENERAL;
    }
    if (rows->nelts == 0) {
        return APR_NOTFOUND;
    }
    *found = APR_ARRAY_IDX(rows, 0, void *);
    return APR_SUCCESS;
}

static int pquery(const sql_store_t *st, apr_pool_t *p, int which, int nargs, const char **args,
                  int *nrows)
{
    *nrows = 0;
    if (!st->ready) {
        return NOT_READY;
    }
    return apr_dbd_pquery(st->conn.driver, p, st->conn.handle, nrows, prepared(st, which), nargs,
                          args);
}

static int locked_pquery_once(const sql_store_t *st, apr_pool_t *p, int which, int nargs,
                              const char **args, int *nrows, const char **error)
{
    int err;

    *nrows = 0;
    if (lock_writes(st) != APR_SUCCESS) {
        *error = NO_WRITE_LOCK;
        return -1;
    }
    err = pquery(st, p, which, nargs, args, nrows);
    *error = err ? dbd_error(st, err) : NULL;
    unlock_writes(st);
    return err;
}

/* One write statement under the write lock; the driver's error text in
 * *error on failure. */
static int locked_pquery(sql_store_t *st, apr_pool_t *p, int which, int nargs, const char **args,
                         int *nrows, const char **error)
{
    int err = locked_pquery_once(st, p, which, nargs, args, nrows, error);

    if (err && renewed(st, *error)) {
        err = locked_pquery_once(st, p, which, nargs, args, nrows, error);
    }
    return err;
}

/* ----------------------------------------------------------------------
 * Migration 4: the CSRs of held requests without their challenge password
 */

typedef struct held_csr_t {
    const char *transaction_id;
    const char *pem;
} held_csr_t;

/* The CSR as it is kept from now on; NULL when it cannot be read (the
 * request can then only be denied). */
static const char *csr_at_rest(apr_pool_t *p, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_REQ *csr = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
    const char *at_rest = csr ? scep_csr_pem_at_rest(p, csr) : NULL;

    X509_REQ_free(csr);
    BIO_free(bio);
    return at_rest;
}

static int update_held_csr(const sql_store_t *st, const held_csr_t *held)
{
    const char *pem = csr_at_rest(st->pool, held->pem);
    const char *id =
        apr_dbd_escape(st->conn.driver, st->pool, held->transaction_id, st->conn.handle);

    if (!pem) {
        store_log(
            st, SCEP_LOG_WARNING,
            SCEPLOGNO(
                330) "migration: the CSR of held request %s cannot be read: removed (the request "
                     "can only be denied)",
            scep_escape_text(st->pool, held->transaction_id, 0));
    }
    return run_query(
        st, pem ? apr_psprintf(st->pool,
                               "UPDATE scep_request SET csr_pem = '%s' WHERE transaction_id = '%s'",
                               apr_dbd_escape(st->conn.driver, st->pool, pem, st->conn.handle), id)
                : apr_psprintf(st->pool,
                               "UPDATE scep_request SET csr_pem = NULL WHERE transaction_id = '%s'",
                               id));
}

/* Every held CSR is read first, then rewritten: a driver may not take
 * statements while a select's rows are open. */
static int strip_held_csrs(const sql_store_t *st)
{
    apr_array_header_t *held = apr_array_make(st->pool, 8, sizeof(held_csr_t));
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    held_csr_t *h;
    int i, err;

    err = apr_dbd_select(st->conn.driver, st->pool, st->conn.handle, &res,
                         "SELECT transaction_id, csr_pem FROM scep_request"
                         " WHERE csr_pem IS NOT NULL",
                         SELECT_BUFFERED);
    while (!err && apr_dbd_get_row(st->conn.driver, st->pool, res, &row, -1) == 0) {
        h = apr_array_push(held);
        h->transaction_id = entry_or_null(st->pool, st, row, 0);
        h->pem = entry_or_null(st->pool, st, row, 1);
    }
    for (i = 0; !err && i < held->nelts; i++) {
        h = &APR_ARRAY_IDX(held, i, held_csr_t);
        if (h->transaction_id && h->pem) {
            err = update_held_csr(st, h);
        }
    }
    return err;
}

/* ----------------------------------------------------------------------
 * scep_store_t
 */

static apr_status_t find_transaction(scep_store_t *store, apr_pool_t *p, const char *transaction_id,
                                     scep_txn_t **txn)
{
    sql_store_t *st = store->baton;
    const char *error = NULL;
    apr_status_t rv =
        select_one(st, p, STMT_FIND_TRANSACTION, transaction_id, read_txn, (void **)txn, &error);

    if (rv == APR_EGENERAL) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(305) "cannot look up transaction %s: %s%s",
                  transaction_id, error, scep_event_text(SCEP_EVENT_FAIL_CERT_REQ));
    }
    return rv;
}

static int insert_request(const sql_store_t *st, apr_pool_t *p, const scep_txn_t *txn,
                          const char *status, const char *serial, const char *now)
{
    const char *args[] = { txn->transaction_id,
                           txn->key_id,
                           status,
                           txn->subject,
                           txn->message_type ? apr_itoa(p, txn->message_type) : NULL,
                           serial,
                           txn->reason,
                           txn->client_addr,
                           now,
                           now,
                           txn->signer_key_id,
                           txn->template_name,
                           txn->csr_pem,
                           txn->san,
                           txn->key_desc,
                           txn->csr_digest,
                           txn->ca_ticket,
                           txn->ca_ticket ? seconds_of(p, txn->ca_poll_at) : NULL,
                           txn->ca_ticket ? txn->ca_backend : NULL,
                           txn->csr_sealed };
    int nrows;

    return pquery(st, p, STMT_INSERT_REQUEST, 20, args, &nrows);
}

static int insert_cert(const sql_store_t *st, apr_pool_t *p, const char *transaction_id,
                       const cert_row_t *row, const char *now)
{
    const char *args[] = { row->serial,     transaction_id, row->subject, row->issuer,
                           row->not_before, row->not_after, row->pem,     now };
    int nrows;

    return pquery(st, p, STMT_INSERT_CERT, 8, args, &nrows);
}

/* After a failed insert: did a concurrent request record the transaction
 * first? Asked instead of decoding each driver's constraint error codes;
 * quietly (the insert's failure is what is logged). */
static int already_recorded(sql_store_t *st, apr_pool_t *p, const char *transaction_id)
{
    const char *error;
    void *txn;

    return select_one(st, p, STMT_FIND_TRANSACTION, transaction_id, read_txn, &txn, &error) ==
           APR_SUCCESS;
}

static apr_status_t describe_cert(sql_store_t *st, apr_pool_t *p, const char *transaction_id,
                                  X509 *cert, cert_row_t *row)
{
    if (cert_row_of(p, cert, row) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    store_log(st, SCEP_LOG_ERR,
              SCEPLOGNO(306) "cannot describe the certificate of transaction %s for the records%s",
              transaction_id, scep_event_text(SCEP_EVENT_FAIL_SUBMIT));
    return APR_EGENERAL;
}

/* The request, and its certificate when row is not NULL, in one
 * transaction; a failed statement rolls back both. */
static int record_once(const sql_store_t *st, apr_pool_t *p, const scep_txn_t *txn,
                       const cert_row_t *row, const char *now, const char **error)
{
    sql_txn_t trans;
    int err;

    if (lock_writes(st) != APR_SUCCESS) {
        *error = NO_WRITE_LOCK;
        return -1;
    }
    err = begin_transaction(st, p, &trans);
    if (!err) {
        err = insert_request(st, p, txn, row ? SCEP_TXN_ISSUED : txn->status,
                             row ? row->serial : NULL, now);
    }
    if (!err && row) {
        err = insert_cert(st, p, txn->transaction_id, row, now);
    }
    /* Read before a rollback replaces it. */
    *error = err ? dbd_error(st, err) : NULL;
    err = end_transaction(st, &trans, err);
    if (err && !*error) {
        *error = dbd_error(st, err);
    }
    unlock_writes(st);
    return err;
}

static apr_status_t record(scep_store_t *store, apr_pool_t *p, const scep_txn_t *txn, X509 *cert)
{
    sql_store_t *st = store->baton;
    const char *now = iso8601_now(p), *error = NULL;
    cert_row_t row = { 0 };
    int err;

    if (cert && describe_cert(st, p, txn->transaction_id, cert, &row) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    err = record_once(st, p, txn, cert ? &row : NULL, now, &error);
    /* A connection whose transaction failed is in doubt (a COMMIT that
     * failed may leave its transaction open, and its reads would see what
     * is not committed): the concurrent copy is looked for, and the
     * transaction tried again, on a new one. */
    if (err && renewed(st, error) && !already_recorded(st, p, txn->transaction_id)) {
        err = record_once(st, p, txn, cert ? &row : NULL, now, &error);
    }
    if (err == 0) {
        return APR_SUCCESS;
    }
    if (already_recorded(st, p, txn->transaction_id)) {
        store_log(st, SCEP_LOG_DEBUG,
                  SCEPLOGNO(307) "transaction %s was recorded by a concurrent request",
                  txn->transaction_id);
        return APR_EEXIST;
    }
    store_log(st, SCEP_LOG_ERR, SCEPLOGNO(308) "cannot record transaction %s: %s%s",
              txn->transaction_id, error, scep_event_text(SCEP_EVENT_FAIL_SUBMIT));
    return APR_EGENERAL;
}

/* NOTFOUND or EEXIST for a state change that changed nothing. */
static apr_status_t why_unchanged(scep_store_t *store, apr_pool_t *p, const char *transaction_id)
{
    scep_txn_t *txn;
    apr_status_t rv = find_transaction(store, p, transaction_id, &txn);

    return rv == APR_SUCCESS ? APR_EEXIST : rv;
}

/* The held request marked issued and its certificate recorded, in one
 * transaction; *changed 0 when the request was not held (decided meanwhile,
 * or unknown), which changes nothing. */
static int record_held_issued_once(const sql_store_t *st, apr_pool_t *p, const char **args,
                                   const cert_row_t *row, int *changed, const char **error)
{
    sql_txn_t trans;
    int nrows = 0, err;

    *changed = 0;
    if (lock_writes(st) != APR_SUCCESS) {
        *error = NO_WRITE_LOCK;
        return -1;
    }
    err = begin_transaction(st, p, &trans);
    if (!err) {
        err = pquery(st, p, STMT_RECORD_HELD_ISSUED, 4, args, &nrows);
    }
    if (!err && nrows != 1) {
        end_transaction(st, &trans, -1);
        unlock_writes(st);
        return 0;
    }
    if (!err) {
        *changed = 1;
        err = insert_cert(st, p, args[3], row, args[1]);
    }
    /* The text is read before a rollback replaces it. */
    *error = err ? dbd_error(st, err) : NULL;
    err = end_transaction(st, &trans, err);
    if (err && !*error) {
        *error = dbd_error(st, err);
    }
    unlock_writes(st);
    return err;
}

static apr_status_t record_held_issued(scep_store_t *store, apr_pool_t *p,
                                       const char *transaction_id, X509 *cert, const char *who)
{
    sql_store_t *st = store->baton;
    const char *error = NULL;
    const char *args[] = { NULL, iso8601_now(p), who, transaction_id };
    cert_row_t row;
    int changed, err;

    if (describe_cert(st, p, transaction_id, cert, &row) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    args[0] = row.serial;
    err = record_held_issued_once(st, p, args, &row, &changed, &error);
    if (err && renewed(st, error)) {
        err = record_held_issued_once(st, p, args, &row, &changed, &error);
    }
    if (err) {
        store_log(st, SCEP_LOG_ERR,
                  SCEPLOGNO(311) "cannot record certificate %s of transaction %s: %s%s", row.serial,
                  transaction_id, error, scep_event_text(SCEP_EVENT_FAIL_SUBMIT));
        return APR_EGENERAL;
    }
    return changed ? APR_SUCCESS : why_unchanged(store, p, transaction_id);
}

static apr_status_t decide(scep_store_t *store, apr_pool_t *p, const char *transaction_id,
                           const char *from, const char *to, const char *who, const char *reason)
{
    sql_store_t *st = store->baton;
    /* an approved request keeps its CSR until it is issued */
    const char *args[] = { to, who, reason, iso8601_now(p), to, to, transaction_id, from, to };
    const char *error = NULL;
    int nrows, err = locked_pquery(st, p, STMT_DECIDE, 9, args, &nrows, &error);

    if (err) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(312) "cannot change transaction %s from %s to %s: %s",
                  transaction_id, from, to, error);
        return APR_EGENERAL;
    }
    return nrows == 1 ? APR_SUCCESS : why_unchanged(store, p, transaction_id);
}

static apr_status_t expire_pending(scep_store_t *store, apr_pool_t *p, apr_time_t before,
                                   const char *reason)
{
    sql_store_t *st = store->baton;
    const char *args[] = { reason, iso8601_now(p), iso8601_of(p, before) };
    const char *error = NULL;
    int nrows, err = locked_pquery(st, p, STMT_EXPIRE_PENDING, 3, args, &nrows, &error);

    if (err) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(313) "cannot expire pending requests: %s", error);
        return APR_EGENERAL;
    }
    if (nrows > 0) {
        store_log(st, SCEP_LOG_NOTICE,
                  SCEPLOGNO(314) "%d pending requests expired without a decision", nrows);
    }
    return APR_SUCCESS;
}

static apr_status_t hold_at_ca(scep_store_t *store, apr_pool_t *p, const char *transaction_id,
                               const char *ticket, const char *backend, apr_time_t poll_at,
                               const char *who)
{
    sql_store_t *st = store->baton;
    const char *args[] = { ticket,         backend, seconds_of(p, poll_at),
                           iso8601_now(p), who,     transaction_id };
    const char *error = NULL;
    int nrows, err = locked_pquery(st, p, STMT_HOLD_AT_CA, 6, args, &nrows, &error);

    if (err) {
        store_log(st, SCEP_LOG_ERR,
                  SCEPLOGNO(347) "cannot record the CA's ticket of transaction %s: %s%s",
                  transaction_id, error, scep_event_text(SCEP_EVENT_FAIL_SUBMIT));
        return APR_EGENERAL;
    }
    return nrows == 1 ? APR_SUCCESS : why_unchanged(store, p, transaction_id);
}

static apr_status_t claim_ca_poll(scep_store_t *store, apr_pool_t *p, const char *transaction_id,
                                  apr_time_t seen, apr_time_t next)
{
    sql_store_t *st = store->baton;
    const char *args[] = { seconds_of(p, next), transaction_id, seconds_of(p, seen) };
    const char *error = NULL;
    int nrows, err = locked_pquery(st, p, STMT_CLAIM_CA_POLL, 3, args, &nrows, &error);

    if (err) {
        store_log(st, SCEP_LOG_ERR,
                  SCEPLOGNO(348) "cannot claim the next poll of transaction %s at the CA: %s",
                  transaction_id, error);
        return APR_EGENERAL;
    }
    return nrows == 1 ? APR_SUCCESS : APR_EEXIST;
}

static apr_status_t list_ca_due(scep_store_t *store, apr_pool_t *p, const char *backend,
                                apr_time_t now, int limit, apr_array_header_t **txns)
{
    sql_store_t *st = store->baton;
    const char *args[] = { backend, seconds_of(p, now), apr_itoa(p, limit) };
    const char *error = NULL;

    if (select_rows(st, p, STMT_LIST_CA_DUE, 3, args, read_txn, txns, &error)) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(349) "cannot list the requests the CA holds: %s",
                  error);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t list_requests(scep_store_t *store, apr_pool_t *p, const char *status, int limit,
                                  apr_array_header_t **txns)
{
    sql_store_t *st = store->baton;
    const char *args[] = { status, apr_itoa(p, limit) };
    const char *error = NULL;

    if (status ? select_rows(st, p, STMT_LIST_REQUESTS_IN, 2, args, read_txn, txns, &error)
               : select_rows(st, p, STMT_LIST_REQUESTS, 1, args + 1, read_txn, txns, &error)) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(315) "cannot list the requests: %s", error);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t find_cert(scep_store_t *store, apr_pool_t *p, const char *serial,
                              scep_cert_record_t **rec)
{
    sql_store_t *st = store->baton;
    const char *error = NULL;
    apr_status_t rv = select_one(st, p, STMT_FIND_CERT, serial, read_cert, (void **)rec, &error);

    if (rv == APR_EGENERAL) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(340) "cannot look up certificate %s: %s%s", serial,
                  error, scep_event_text(SCEP_EVENT_FAIL_TO_GET_CERT_FROM_NUMBER));
    }
    return rv;
}

/* A LIKE pattern matching text anywhere, with LIKE's own characters
 * escaped by '!' (the statement's ESCAPE). */
static const char *like_pattern(apr_pool_t *p, const char *text, int upper)
{
    char *pattern = apr_palloc(p, 2 * strlen(text) + 3), *out = pattern;

    *out++ = '%';
    for (; *text; text++) {
        if (*text == '%' || *text == '_' || *text == '!') {
            *out++ = '!';
        }
        *out++ = (char)(upper ? apr_toupper(*text) : apr_tolower(*text));
    }
    *out++ = '%';
    *out = '\0';
    return pattern;
}

static apr_status_t list_certs(scep_store_t *store, apr_pool_t *p, const char *search, int limit,
                               apr_array_header_t **certs)
{
    sql_store_t *st = store->baton;
    const char *args[] = { like_pattern(p, search ? search : "", 0),
                           like_pattern(p, search ? search : "", 1), apr_itoa(p, limit) };
    const char *error = NULL;

    if (select_rows(st, p, STMT_LIST_CERTS, 3, args, read_cert, certs, &error)) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(343) "cannot list the certificates: %s", error);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* scep_crl_build() takes the entries themselves, not pointers. */
static apr_array_header_t *revoked_entries(apr_pool_t *p, const apr_array_header_t *rows)
{
    apr_array_header_t *revoked = apr_array_make(p, rows->nelts, sizeof(scep_revoked_t));
    int i;

    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(revoked, scep_revoked_t) = *APR_ARRAY_IDX(rows, i, scep_revoked_t *);
    }
    return revoked;
}

static apr_status_t list_revoked(scep_store_t *store, apr_pool_t *p, apr_array_header_t **revoked)
{
    sql_store_t *st = store->baton;
    apr_array_header_t *rows;
    const char *error = NULL;

    *revoked = NULL;
    if (select_rows(st, p, STMT_LIST_REVOKED, 0, NULL, read_revoked, &rows, &error)) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(341) "cannot list the revoked certificates: %s%s",
                  error, scep_event_text(SCEP_EVENT_GETCRL_FAILED));
        return APR_EGENERAL;
    }
    *revoked = revoked_entries(p, rows);
    return APR_SUCCESS;
}

static apr_status_t revoke_cert(scep_store_t *store, apr_pool_t *p, const char *serial, int reason)
{
    sql_store_t *st = store->baton;
    const char *args[] = { iso8601_now(p), apr_itoa(p, reason), serial };
    const char *error = NULL;
    scep_cert_record_t *rec;
    apr_status_t rv;
    int nrows = 0, err;

    if (!scep_crl_reason_valid(reason)) {
        return APR_EINVAL;
    }
    err = locked_pquery(st, p, STMT_REVOKE, 3, args, &nrows, &error);
    if (err) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(342) "cannot revoke certificate %s: %s", serial,
                  error);
        return APR_EGENERAL;
    }
    if (nrows == 1) {
        return APR_SUCCESS;
    }
    /* Nothing changed: unknown, or revoked before (the first reason stays). */
    rv = find_cert(store, p, serial, &rec);
    return rv == APR_SUCCESS ? APR_EEXIST : rv;
}

/* ----------------------------------------------------------------------
 * One-time passwords and shared secrets (SCEPPasswordStore sql)
 */

static int take_service_lock(const sql_store_t *st, int which)
{
    const char *lock = quirks_of(&st->conn)->service_lock;

    return lock ? run_select(st, apr_pstrcat(st->pool, lock, apr_itoa(st->pool, which), ")", NULL))
                : 0;
}

static void *read_count(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    int *count = apr_palloc(p, sizeof(*count));

    *count = int_of(entry_or_null(p, st, row, 0), 0);
    return count;
}

static void *read_password(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    scep_password_row_t *pw = apr_pcalloc(p, sizeof(*pw));

    pw->expires = time_of_seconds(entry_or_null(p, st, row, 0));
    pw->served = int_of(entry_or_null(p, st, row, 1), 0);
    pw->spender_sign = entry_or_null(p, st, row, 2);
    pw->spender_encrypt = entry_or_null(p, st, row, 3);
    return pw;
}

static void *read_text(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    return (void *)entry_or_null(p, st, row, 0);
}

/* Passwords neither expired at now (seconds) nor used up. */
static int count_waiting(const sql_store_t *st, apr_pool_t *p, const char *now, int *waiting,
                         const char **error)
{
    const char *args[] = { now, apr_itoa(p, SCEP_PASSWORD_SERVED_ALL) };
    apr_array_header_t *rows;
    int err = select_once(st, p, STMT_PASSWORD_WAITING, 2, args, read_count, &rows, error);

    *waiting = !err && rows->nelts > 0 ? *APR_ARRAY_IDX(rows, 0, int *) : 0;
    return err;
}

/* args: mac, now, expires. The count and the insert under the service's
 * lock: two servers issuing at once cannot both see room for one more. */
static int password_add_once(const sql_store_t *st, apr_pool_t *p, const char **args, int max,
                             int *waiting, int *added, const char **error)
{
    sql_txn_t trans;
    int nrows = 0, err;

    *added = 0;
    *error = NULL;
    if (lock_writes(st) != APR_SUCCESS) {
        *error = NO_WRITE_LOCK;
        return -1;
    }
    err = begin_transaction(st, p, &trans);
    if (!err) {
        err = take_service_lock(st, SERVICE_LOCK_PASSWORDS);
    }
    if (!err) {
        err = pquery(st, p, STMT_PASSWORD_PURGE, 1, args + 1, &nrows);
    }
    if (!err) {
        err = count_waiting(st, p, args[1], waiting, error);
    }
    if (!err && *waiting < max) {
        err = pquery(st, p, STMT_PASSWORD_INSERT, 3, args, &nrows);
        *added = !err;
    }
    /* Read before a rollback replaces it. */
    if (err && !*error) {
        *error = dbd_error(st, err);
    }
    err = end_transaction(st, &trans, err);
    if (err && !*error) {
        *error = dbd_error(st, err);
    }
    unlock_writes(st);
    *added = *added && !err;
    *waiting += *added;
    return err;
}

static apr_status_t password_add(scep_store_t *store, apr_pool_t *p, const char *mac,
                                 apr_time_t now, apr_time_t expires, int max, int *waiting)
{
    sql_store_t *st = store->baton;
    const char *args[] = { mac, seconds_of(p, now), seconds_of(p, expires) };
    const char *error = NULL;
    int added = 0, err = password_add_once(st, p, args, max, waiting, &added, &error);

    if (err && renewed(st, error)) {
        err = password_add_once(st, p, args, max, waiting, &added, &error);
    }
    if (err) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(360) "cannot add a one-time password: %s", error);
        return APR_EGENERAL;
    }
    return added ? APR_SUCCESS : APR_ENOSPC;
}

static apr_status_t password_waiting(scep_store_t *store, apr_pool_t *p, apr_time_t now,
                                     int *waiting)
{
    sql_store_t *st = store->baton;
    const char *error = NULL;
    int err = count_waiting(st, p, seconds_of(p, now), waiting, &error);

    if (err && renewed(st, error)) {
        err = count_waiting(st, p, seconds_of(p, now), waiting, &error);
    }
    if (err) {
        store_log(st, SCEP_LOG_ERR,
                  SCEPLOGNO(361) "cannot count the one-time passwords waiting: %s", error);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t password_spend(scep_store_t *store, apr_pool_t *p, const char *mac,
                                   apr_time_t now, int halves, const char *spender)
{
    sql_store_t *st = store->baton;
    const char *args[] = { apr_itoa(p, halves),
                           halves & SCEP_PASSWORD_SERVED_SIGN ? spender : NULL,
                           halves & SCEP_PASSWORD_SERVED_ENCRYPT ? spender : NULL,
                           mac,
                           seconds_of(p, now),
                           apr_itoa(p, halves) };
    const char *error = NULL;
    int nrows = 0, err = locked_pquery(st, p, STMT_PASSWORD_SPEND, 6, args, &nrows, &error);

    if (err) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(362) "cannot spend a one-time password: %s%s", error,
                  scep_event_text(SCEP_EVENT_FAIL_CERT_REQ));
        return APR_EGENERAL;
    }
    return nrows == 1 ? APR_SUCCESS : APR_EEXIST;
}

static apr_status_t password_find(scep_store_t *store, apr_pool_t *p, const char *mac,
                                  scep_password_row_t **row)
{
    sql_store_t *st = store->baton;
    const char *error = NULL;
    apr_status_t rv =
        select_one(st, p, STMT_PASSWORD_FIND, mac, read_password, (void **)row, &error);

    if (rv == APR_EGENERAL) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(363) "cannot look up a one-time password: %s%s",
                  error, scep_event_text(SCEP_EVENT_FAIL_CERT_REQ));
    }
    return rv;
}

static apr_status_t secret_get(scep_store_t *store, apr_pool_t *p, const char *name,
                               const char **sealed)
{
    sql_store_t *st = store->baton;
    const char *error = NULL;
    apr_status_t rv = select_one(st, p, STMT_SECRET_GET, name, read_text, (void **)sealed, &error);

    if (rv == APR_EGENERAL) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(364) "cannot read the shared secret %s: %s", name,
                  error);
    }
    return rv;
}

static apr_status_t secret_put(scep_store_t *store, apr_pool_t *p, const char *name,
                               const char *sealed, int replace)
{
    sql_store_t *st = store->baton;
    const char *args[] = { name, sealed, seconds_of(p, apr_time_now()) };
    const char *error = NULL;
    int nrows = 0, err = locked_pquery(st, p, replace ? STMT_SECRET_SET : STMT_SECRET_ADD, 3, args,
                                       &nrows, &error);

    if (err) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(365) "cannot record the shared secret %s: %s", name,
                  error);
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t latest_crl(scep_store_t *store, apr_pool_t *p, const char *issuer,
                               scep_crl_record_t **crl)
{
    sql_store_t *st = store->baton;
    const char *error = NULL;
    apr_status_t rv = select_one(st, p, STMT_LATEST_CRL, issuer, read_crl, (void **)crl, &error);

    if (rv == APR_SUCCESS) {
        (*crl)->issuer = issuer;
    }
    else if (rv == APR_EGENERAL) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(370) "cannot read the newest CRL of the CA: %s%s",
                  error, scep_event_text(SCEP_EVENT_GETCRL_FAILED));
    }
    return rv;
}

/* One renew_crl(): what it is asked and what came of it. */
typedef struct crl_renewal_t {
    const char *issuer;
    const scep_crl_signer_t *signer;
    scep_crl_record_t *crl;   /* served: the one read again, or made */
    int made;                 /* crl was signed here */
    apr_status_t sign_status; /* sign()'s failure */
} crl_renewal_t;

static int keep_crl(const sql_store_t *st, apr_pool_t *p, const scep_crl_record_t *made,
                    const char **error)
{
    const char *row[] = { made->issuer,
                          int64_text(p, made->number),
                          seconds_of(p, made->this_update),
                          seconds_of(p, made->next_update),
                          int64_text(p, made->revoked_count),
                          made->pem };
    const char *prune[] = { made->issuer, made->issuer, apr_itoa(p, CRLS_KEPT) };
    int nrows, err = pquery(st, p, STMT_INSERT_CRL, 6, row, &nrows);

    if (!err) {
        err = pquery(st, p, STMT_PRUNE_CRLS, 3, prune, &nrows);
    }
    *error = err ? dbd_error(st, err) : NULL;
    return err;
}

/* Inside the transaction: the lock, the newest read again, and the next
 * signed and kept unless the newest is fresh. */
static int renew_crl_locked(const sql_store_t *st, apr_pool_t *p, crl_renewal_t *r,
                            const char **error)
{
    const char *key[] = { r->issuer };
    apr_array_header_t *rows;
    scep_crl_record_t *latest = NULL, *made;
    int err = st->ready ? 0 : NOT_READY;

    if (!err && (err = take_service_lock(st, SERVICE_LOCK_CRL))) {
        *error = dbd_error(st, err);
    }
    if (err || (err = select_once(st, p, STMT_LATEST_CRL, 1, key, read_crl, &rows, error))) {
        return err;
    }
    if (rows->nelts > 0) {
        latest = APR_ARRAY_IDX(rows, 0, scep_crl_record_t *);
        latest->issuer = r->issuer;
        if (r->signer->fresh(r->signer->baton, latest)) {
            r->crl = latest; /* signed by another server while this one waited */
            return 0;
        }
    }
    if ((err = select_once(st, p, STMT_LIST_REVOKED, 0, NULL, read_revoked, &rows, error))) {
        return err;
    }
    made = apr_pcalloc(p, sizeof(*made));
    r->sign_status = r->signer->sign(r->signer->baton, p, latest, revoked_entries(p, rows), made);
    if (r->sign_status != APR_SUCCESS) {
        *error = "the CRL was not signed";
        return -1;
    }
    made->issuer = r->issuer;
    made->revoked_count = made->revoked_now = rows->nelts;
    if (!(err = keep_crl(st, p, made, error))) {
        r->crl = made;
        r->made = 1;
    }
    return err;
}

/* One signer at a time: the write lock (SQLite: the writers' mutex, then
 * BEGIN IMMEDIATE) or the advisory lock (PostgreSQL), held to the end of
 * the transaction. */
static int renew_crl_once(const sql_store_t *st, apr_pool_t *p, crl_renewal_t *r,
                          const char **error)
{
    sql_txn_t trans;
    int err;

    r->crl = NULL;
    r->made = 0;
    r->sign_status = APR_SUCCESS;
    *error = NULL;
    if (lock_writes(st) != APR_SUCCESS) {
        *error = NO_WRITE_LOCK;
        return -1;
    }
    err = begin_transaction(st, p, &trans);
    if (err) {
        *error = dbd_error(st, err);
    }
    else {
        /* its error text is read before a rollback replaces it */
        err = renew_crl_locked(st, p, r, error);
    }
    err = end_transaction(st, &trans, err);
    if (err && !*error) {
        *error = dbd_error(st, err);
    }
    unlock_writes(st);
    return err;
}

static apr_status_t renew_crl(scep_store_t *store, apr_pool_t *p, const char *issuer,
                              const scep_crl_signer_t *signer, scep_crl_record_t **crl)
{
    sql_store_t *st = store->baton;
    crl_renewal_t r = { issuer, signer, NULL, 0, APR_SUCCESS };
    const char *error = NULL;
    int err = renew_crl_once(st, p, &r, &error);

    if (err && r.sign_status == APR_SUCCESS && renewed(st, error)) {
        err = renew_crl_once(st, p, &r, &error);
    }
    *crl = err ? NULL : r.crl;
    if (r.sign_status != APR_SUCCESS) {
        return r.sign_status;
    }
    if (err) {
        store_log(st, SCEP_LOG_ERR, SCEPLOGNO(371) "cannot keep the next CRL of the CA: %s%s",
                  error, scep_event_text(SCEP_EVENT_GETCRL_FAILED));
        return APR_EGENERAL;
    }
    if (r.made) {
        store_log(st, SCEP_LOG_INFO,
                  SCEPLOGNO(372) "CRL number %" APR_INT64_T_FMT
                                 " signed and kept, listing %" APR_INT64_T_FMT
                                 " revoked certificates",
                  r.crl->number, r.crl->revoked_count);
    }
    return APR_SUCCESS;
}

/* ----------------------------------------------------------------------
 * The service (several servers, one database)
 */

static void *read_service(apr_pool_t *p, const sql_store_t *st, apr_dbd_row_t *row)
{
    scep_service_t *svc = apr_pcalloc(p, sizeof(*svc));

    svc->issuer = entry_or_null(p, st, row, 0);
    svc->ca_sha256 = entry_or_null(p, st, row, 1);
    svc->ra_sha256 = entry_or_null(p, st, row, 2);
    svc->recorded = time_of_seconds(entry_or_null(p, st, row, 3));
    return svc;
}

static apr_status_t find_service(scep_store_t *store, apr_pool_t *p, const char *issuer,
                                 scep_service_t **svc)
{
    sql_store_t *st = store->baton;
    const char *error = NULL;
    apr_status_t rv =
        select_one(st, p, STMT_FIND_SERVICE, issuer, read_service, (void **)svc, &error);

    if (rv == APR_EGENERAL) {
        store_log(st, SCEP_LOG_ERR,
                  SCEPLOGNO(380) "cannot read the service recorded for CA '%s': %s",
                  scep_escape_text(p, issuer, SCEP_ESCAPE_BACKSLASH), error);
    }
    return rv;
}

/* Inserts svc, or (replace) updates its CA's row; *nrows: rows changed. */
static int write_service(sql_store_t *st, apr_pool_t *p, const scep_service_t *svc, int replace,
                         int *nrows, const char **error)
{
    const char *now = seconds_of(p, apr_time_now());
    const char *insert[] = { svc->issuer, svc->ca_sha256, svc->ra_sha256, now, svc->issuer };
    const char *update[] = { svc->ca_sha256, svc->ra_sha256, now, svc->issuer };
    int err = 0;

    if (replace) {
        err = locked_pquery(st, p, STMT_REPLACE_SERVICE, 4, update, nrows, error);
    }
    if (!err && *nrows == 0) {
        err = locked_pquery(st, p, STMT_INSERT_SERVICE, 5, insert, nrows, error);
    }
    return err;
}

static apr_status_t record_service(scep_store_t *store, apr_pool_t *p, const scep_service_t *svc,
                                   int replace)
{
    sql_store_t *st = store->baton;
    scep_service_t *found;
    const char *error = NULL;
    int nrows = 0;

    if (write_service(st, p, svc, replace, &nrows, &error) == 0) {
        return nrows == 1 ? APR_SUCCESS : APR_EEXIST;
    }
    /* A concurrent first server recorded it meanwhile (found by reading
     * again, as a concurrent duplicate request is). */
    if (!replace && find_service(store, p, svc->issuer, &found) == APR_SUCCESS) {
        return APR_EEXIST;
    }
    store_log(st, SCEP_LOG_ERR, SCEPLOGNO(381) "cannot record the service of CA '%s': %s",
              scep_escape_text(p, svc->issuer, SCEP_ESCAPE_BACKSLASH), error);
    return APR_EGENERAL;
}

apr_status_t scep_store_sql(apr_pool_t *p, const scep_sql_conn_t *conn, scep_log_fn *log,
                            void *log_baton, scep_store_t **store)
{
    sql_store_t *st = apr_pcalloc(p, sizeof(*st));
    apr_status_t rv;

    st->conn = *conn;
    st->log = log;
    st->log_baton = log_baton;
    st->pool = p;
    st->store.baton = st;
    st->store.find_transaction = find_transaction;
    st->store.record = record;
    st->store.record_held_issued = record_held_issued;
    st->store.decide = decide;
    st->store.expire_pending = expire_pending;
    st->store.hold_at_ca = hold_at_ca;
    st->store.claim_ca_poll = claim_ca_poll;
    st->store.list_ca_due = list_ca_due;
    st->store.list_requests = list_requests;
    st->store.find_cert = find_cert;
    st->store.list_certs = list_certs;
    st->store.list_revoked = list_revoked;
    st->store.revoke = revoke_cert;
    st->store.password_add = password_add;
    st->store.password_waiting = password_waiting;
    st->store.password_spend = password_spend;
    st->store.password_find = password_find;
    st->store.secret_get = secret_get;
    st->store.secret_put = secret_put;
    st->store.latest_crl = latest_crl;
    st->store.renew_crl = renew_crl;
    st->store.find_service = find_service;
    st->store.record_service = record_service;
    *store = NULL;
    rv = make_ready(st);
    if (rv != APR_SUCCESS && renewed(st, st->setup_error)) {
        rv = APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        store_log(st, SCEP_LOG_ERR, "%s", st->setup_error);
        return rv;
    }
    *store = &st->store;
    return APR_SUCCESS;
}
