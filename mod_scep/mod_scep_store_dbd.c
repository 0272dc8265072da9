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
 * The records (scep_store_t) on mod_dbd: SQLite by default, any apr_dbd
 * driver in principle, so the SQL stays portable (TEXT for PEM and times,
 * no BLOBs, %s placeholders that apr_dbd turns into ? or $n).
 *
 * Each connection is made ready at its first use in a child: driver
 * settings, the schema migrated to the version this module needs, and the
 * statements prepared and kept in the connection's `prepared` hash.
 * ap_dbd_prepare() is not used: it prepares when mod_dbd opens the
 * connection, before the schema exists. Nothing happens in the parent,
 * which runs as root and would create a database file the children cannot
 * write.
 *
 * Concurrent children may reach an old schema together: the migration runs
 * in one transaction that takes the database's write lock first (SQLite's
 * BEGIN IMMEDIATE, a PostgreSQL advisory lock), re-reads the version and
 * only then applies what is missing, so the loser of the race finds nothing
 * left to do. The CREATEs say IF NOT EXISTS for databases made by hand.
 *
 * Every select asks for random access (SELECT_BUFFERED): apr_dbd's pgsql
 * driver reports a failed query only then (row by row, it takes the error
 * for the end of the rows, and pauses 0.1 s at every empty result); the
 * sqlite3 driver reads all rows either way. Rows start NULL: the pgsql
 * driver reuses a row it is given. Reading the rows to the end frees them,
 * and with pgsql the values they returned: entry_or_null() copies.
 */

#include <stdlib.h>
#include <string.h>

#include <apr_dbd.h>
#include <apr_hash.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <httpd.h>
#include <http_log.h>
#include <mod_dbd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mod_scep_private.h"

/* ----------------------------------------------------------------------
 * Schema
 */

typedef struct migration_t {
    int version;
    const char *const *statements; /* NULL-terminated */
} migration_t;

static const char *const schema_v1[] = {
    "CREATE TABLE IF NOT EXISTS scep_request ("
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
    NULL
};

/* Applied in order; a new schema version is a new entry at the end. */
static const migration_t migrations[] = {
    { 1, schema_v1 },
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))
#define SCHEMA_VERSION (migrations[MIGRATION_COUNT - 1].version)

/* What differs between databases. */
typedef struct setup_statement_t {
    const char *sql;
    int optional;                     /* a failure is logged, not fatal */
} setup_statement_t;

typedef struct driver_quirks_t {
    const char *name;                 /* apr_dbd_name() */
    const setup_statement_t *on_connect; /* run once per connection, may return rows */
    const char *migration_lock;       /* first statement of the migration transaction */
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
 * arbitrary constant ("SCEP" in ASCII). */
static const setup_statement_t pgsql_on_connect[] = {
    { "SET client_min_messages = warning", 0 },
    { NULL, 0 }
};

static const driver_quirks_t driver_quirks[] = {
    { "sqlite3", sqlite3_on_connect, NULL },
    { "pgsql", pgsql_on_connect, "SELECT pg_advisory_xact_lock(1396917584)" },
};

static const driver_quirks_t generic_quirks = { "generic", NULL, NULL };

static const driver_quirks_t *quirks_of(const ap_dbd_t *dbd)
{
    const char *name = apr_dbd_name(dbd->driver);
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
    STMT_FIND_CERT,
    STMT_LIST_REVOKED,
    STMT_REVOKE,
    STMT_COUNT
};

typedef struct statement_t {
    const char *label; /* key in the connection's prepared hash */
    const char *sql;
} statement_t;

/* %d marks the INTEGER column: PostgreSQL types the parameter from it. */
static const statement_t statements[STMT_COUNT] = {
    { "mod_scep_find_transaction",
      "SELECT r.transaction_id, r.key_id, r.status, r.subject, r.serial, r.reason,"
      " r.message_type, c.cert_pem"
      " FROM scep_request r LEFT JOIN scep_cert c ON c.serial = r.serial"
      " WHERE r.transaction_id = %s" },
    { "mod_scep_insert_request",
      "INSERT INTO scep_request (transaction_id, key_id, status, subject, message_type,"
      " serial, reason, client_addr, created, updated)"
      " VALUES (%s, %s, %s, %s, %d, %s, %s, %s, %s, %s)" },
    { "mod_scep_insert_cert",
      "INSERT INTO scep_cert (serial, transaction_id, subject, issuer, not_before, not_after,"
      " cert_pem, created)"
      " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)" },
    { "mod_scep_find_cert",
      "SELECT serial, cert_pem, revoked_at, revocation_reason FROM scep_cert"
      " WHERE serial = %s" },
    { "mod_scep_list_revoked",
      "SELECT serial, revoked_at, revocation_reason FROM scep_cert"
      " WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial" },
    { "mod_scep_revoke",
      "UPDATE scep_cert SET revoked_at = %s, revocation_reason = %d"
      " WHERE serial = %s AND revoked_at IS NULL" },
};

typedef struct dbd_store_t {
    scep_store_t store;
    request_rec *r;   /* for the log */
    ap_dbd_t *dbd;
} dbd_store_t;

/* apr_dbd_select()'s seek argument: random access, see the top. */
#define SELECT_BUFFERED 1

static apr_dbd_prepared_t *prepared(const dbd_store_t *st, int which)
{
    return apr_hash_get(st->dbd->prepared, statements[which].label, APR_HASH_KEY_STRING);
}

/* The driver's text of the last error, on one line: PostgreSQL's has a
 * line for the error, one for DETAIL and ends in a newline. */
static const char *dbd_error(apr_pool_t *p, const ap_dbd_t *dbd, int err)
{
    const char *text = apr_dbd_error(dbd->driver, dbd->handle, err);
    char *line, *c;
    apr_size_t len;

    if (!text || !*text) {
        return "unknown database error";
    }
    line = apr_pstrdup(p, text);
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

/* Runs a statement that may return rows (PRAGMA does), discarding them. */
static int run_select(apr_pool_t *p, ap_dbd_t *dbd, const char *sql)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int err = apr_dbd_select(dbd->driver, p, dbd->handle, &res, sql, SELECT_BUFFERED);

    while (!err && apr_dbd_get_row(dbd->driver, p, res, &row, -1) == 0) {
    }
    return err;
}

static apr_status_t run_on_connect(request_rec *r, ap_dbd_t *dbd, const driver_quirks_t *quirks)
{
    const setup_statement_t *stmt;
    int err;

    for (stmt = quirks->on_connect; stmt && stmt->sql; stmt++) {
        if ((err = run_select(r->pool, dbd, stmt->sql)) == 0) {
            continue;
        }
        if (stmt->optional) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SCEPLOGNO(310)
                          "database setup '%s' left to another process: %s", stmt->sql,
                          dbd_error(r->pool, dbd, err));
            continue;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(301)
                      "database setup '%s' failed: %s (NDES event 23)", stmt->sql,
                      dbd_error(r->pool, dbd, err));
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* The schema version recorded in the database; 0 for a new database. */
static int read_schema_version(apr_pool_t *p, ap_dbd_t *dbd, int *version)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *value;
    int err;

    *version = 0;
    err = apr_dbd_select(dbd->driver, p, dbd->handle, &res,
                         "SELECT MAX(version) FROM scep_schema", SELECT_BUFFERED);
    while (!err && apr_dbd_get_row(dbd->driver, p, res, &row, -1) == 0) {
        value = apr_dbd_get_entry(dbd->driver, row, 0);
        if (value && *value) {
            *version = atoi(value);
        }
    }
    return err;
}

static int apply_migration(apr_pool_t *p, ap_dbd_t *dbd, const migration_t *m)
{
    const char *const *sql;
    int nrows, err = 0;

    for (sql = m->statements; *sql && !err; sql++) {
        err = apr_dbd_query(dbd->driver, dbd->handle, &nrows, *sql);
    }
    if (!err) {
        err = apr_dbd_query(dbd->driver, dbd->handle, &nrows,
                            apr_psprintf(p, "INSERT INTO scep_schema (version) VALUES (%d)",
                                         m->version));
    }
    return err;
}

/* Inside the locked transaction: what is missing since `version`. */
static int apply_missing_migrations(request_rec *r, ap_dbd_t *dbd,
                                    const driver_quirks_t *quirks)
{
    int nrows, version, i, err = 0;

    if (quirks->migration_lock) {
        err = run_select(r->pool, dbd, quirks->migration_lock);
    }
    if (!err) {
        err = apr_dbd_query(dbd->driver, dbd->handle, &nrows,
                            "CREATE TABLE IF NOT EXISTS scep_schema (version INTEGER NOT NULL)");
    }
    if (!err) {
        err = read_schema_version(r->pool, dbd, &version);
    }
    for (i = 0; i < MIGRATION_COUNT && !err; i++) {
        if (migrations[i].version > version) {
            err = apply_migration(r->pool, dbd, &migrations[i]);
            if (!err) {
                ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, SCEPLOGNO(302)
                              "database schema migrated to version %d", migrations[i].version);
            }
        }
    }
    return err;
}

/* Ends a transaction, rolling back when err says a statement failed;
 * returns the first error. */
static int end_transaction(ap_dbd_t *dbd, apr_pool_t *p, apr_dbd_transaction_t *trans, int err)
{
    int end_err;

    if (!trans) {
        return err;
    }
    if (err) {
        apr_dbd_transaction_mode_set(dbd->driver, trans, APR_DBD_TRANSACTION_ROLLBACK);
    }
    end_err = apr_dbd_transaction_end(dbd->driver, p, trans);
    return err ? err : end_err;
}

/* One migration transaction; on failure *error holds the driver's text. */
static int migrate_once(request_rec *r, ap_dbd_t *dbd, const driver_quirks_t *quirks,
                        const char **error)
{
    apr_dbd_transaction_t *trans = NULL;
    int err;

    err = apr_dbd_transaction_start(dbd->driver, r->pool, dbd->handle, &trans);
    if (!err) {
        err = apply_missing_migrations(r, dbd, quirks);
    }
    if (err) {
        /* Read before the rollback replaces it. */
        *error = dbd_error(r->pool, dbd, err);
    }
    err = end_transaction(dbd, r->pool, trans, err);
    if (err && !*error) {
        *error = dbd_error(r->pool, dbd, err);
    }
    return err;
}

/* Children that open a new database at the same moment race to create it.
 * The loser's SQLite connection then answers "database schema has changed"
 * once; the next attempt reads the schema the winner made. */
#define MIGRATION_ATTEMPTS 3

static apr_status_t migrate(request_rec *r, ap_dbd_t *dbd, const driver_quirks_t *quirks)
{
    const char *error = NULL;
    int version, attempt;

    for (attempt = 0; attempt < MIGRATION_ATTEMPTS; attempt++) {
        /* The common case, without taking the write lock. A failure here is
         * normal for a new database (no scep_schema yet). */
        if (read_schema_version(r->pool, dbd, &version) == 0 && version >= SCHEMA_VERSION) {
            return APR_SUCCESS;
        }
        error = NULL;
        if (migrate_once(r, dbd, quirks, &error) == 0) {
            return APR_SUCCESS;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(303)
                  "cannot migrate the database schema to version %d: %s (NDES event 23)",
                  SCHEMA_VERSION, error);
    return APR_EGENERAL;
}

static apr_status_t prepare_statements(request_rec *r, ap_dbd_t *dbd)
{
    apr_pool_t *pool = apr_hash_pool_get(dbd->prepared);
    apr_dbd_prepared_t *stmt;
    int i, err;

    for (i = 0; i < STMT_COUNT; i++) {
        stmt = NULL;
        err = apr_dbd_prepare(dbd->driver, pool, dbd->handle, statements[i].sql,
                              statements[i].label, &stmt);
        if (err) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(304)
                          "cannot prepare %s: %s (NDES event 23)", statements[i].label,
                          dbd_error(r->pool, dbd, err));
            return APR_EGENERAL;
        }
        apr_hash_set(dbd->prepared, statements[i].label, APR_HASH_KEY_STRING, stmt);
    }
    return APR_SUCCESS;
}

/* Statements are prepared last and in order, so the last one being in the
 * hash means the connection went through all of the setup. */
static apr_status_t make_ready(request_rec *r, ap_dbd_t *dbd)
{
    const driver_quirks_t *quirks;
    apr_status_t rv;

    if (apr_hash_get(dbd->prepared, statements[STMT_COUNT - 1].label, APR_HASH_KEY_STRING)) {
        return APR_SUCCESS;
    }
    quirks = quirks_of(dbd);
    if ((rv = run_on_connect(r, dbd, quirks)) == APR_SUCCESS
        && (rv = migrate(r, dbd, quirks)) == APR_SUCCESS) {
        rv = prepare_statements(r, dbd);
    }
    return rv;
}

/* ----------------------------------------------------------------------
 * Values
 */

/* A copy in p of a row's value: the pgsql driver's values live in its
 * result, freed when the rows have been read. Drivers return NULL or ""
 * for SQL NULL: both mean "none" here. */
static const char *entry_or_null(apr_pool_t *p, const ap_dbd_t *dbd, apr_dbd_row_t *row,
                                 int col)
{
    const char *value = apr_dbd_get_entry(dbd->driver, row, col);

    return value && *value ? apr_pstrdup(p, value) : NULL;
}

static const char *iso8601_of_tm(apr_pool_t *p, int year, int mon, int mday, int hour, int min,
                                 int sec)
{
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", year, mon, mday, hour, min, sec);
}

static const char *iso8601_now(apr_pool_t *p)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, apr_time_now());
    return iso8601_of_tm(p, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
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

static const char *cert_pem(apr_pool_t *p, X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *pem = NULL;
    char *data;
    long len;

    if (bio && PEM_write_bio_X509(bio, cert)) {
        len = BIO_get_mem_data(bio, &data);
        pem = apr_pstrmemdup(p, data, (apr_size_t)len);
    }
    BIO_free(bio);
    return pem;
}

/* The columns of scep_cert, from the certificate; the caller's serial,
 * subject and PEM take precedence so both tables agree with what it holds. */
typedef struct cert_row_t {
    const char *serial;
    const char *subject;
    const char *issuer;
    const char *not_before;
    const char *not_after;
    const char *pem;
} cert_row_t;

static apr_status_t cert_row_of(apr_pool_t *p, const scep_txn_t *txn, X509 *cert,
                                cert_row_t *row)
{
    row->serial = txn->serial ? txn->serial : scep_serial_hex(p, X509_get0_serialNumber(cert));
    row->subject = txn->subject ? txn->subject : scep_name_text(p, X509_get_subject_name(cert));
    row->issuer = scep_name_text(p, X509_get_issuer_name(cert));
    row->not_before = iso8601_of_asn1(p, X509_get0_notBefore(cert));
    row->not_after = iso8601_of_asn1(p, X509_get0_notAfter(cert));
    row->pem = txn->cert_pem ? txn->cert_pem : cert_pem(p, cert);
    return row->serial && row->subject && row->issuer && row->not_before && row->not_after
                   && row->pem
               ? APR_SUCCESS
               : APR_ENOMEM;
}

/* ----------------------------------------------------------------------
 * scep_store_t
 */

static apr_status_t find_transaction(scep_store_t *store, apr_pool_t *p,
                                     const char *transaction_id, scep_txn_t **txn)
{
    dbd_store_t *st = store->baton;
    ap_dbd_t *dbd = st->dbd;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *args[] = { transaction_id };
    const char *type;
    scep_txn_t *found = NULL;
    int err;

    *txn = NULL;
    err = apr_dbd_pselect(dbd->driver, p, dbd->handle, &res, prepared(st, STMT_FIND_TRANSACTION),
                          SELECT_BUFFERED, 1, args);
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, st->r, SCEPLOGNO(305)
                      "cannot look up transaction %s: %s (NDES event 23)", transaction_id,
                      dbd_error(p, dbd, err));
        return APR_EGENERAL;
    }
    /* The primary key allows one row; reading to the end frees the result. */
    while (apr_dbd_get_row(dbd->driver, p, res, &row, -1) == 0) {
        if (found) {
            continue;
        }
        found = apr_pcalloc(p, sizeof(*found));
        found->transaction_id = entry_or_null(p, dbd, row, 0);
        found->key_id = entry_or_null(p, dbd, row, 1);
        found->status = entry_or_null(p, dbd, row, 2);
        found->subject = entry_or_null(p, dbd, row, 3);
        found->serial = entry_or_null(p, dbd, row, 4);
        found->reason = entry_or_null(p, dbd, row, 5);
        type = entry_or_null(p, dbd, row, 6);
        found->message_type = type ? atoi(type) : 0;
        found->cert_pem = entry_or_null(p, dbd, row, 7);
    }
    *txn = found;
    return found ? APR_SUCCESS : APR_NOTFOUND;
}

static int insert_request(dbd_store_t *st, apr_pool_t *p, const scep_txn_t *txn,
                          const char *serial, const char *client_addr, const char *now)
{
    const char *args[] = {
        txn->transaction_id, txn->key_id, "issued", txn->subject,
        txn->message_type ? apr_itoa(p, txn->message_type) : NULL,
        serial, NULL, client_addr, now, now
    };
    int nrows;

    return apr_dbd_pquery(st->dbd->driver, p, st->dbd->handle, &nrows,
                          prepared(st, STMT_INSERT_REQUEST), 10, args);
}

static int insert_cert(dbd_store_t *st, apr_pool_t *p, const char *transaction_id,
                       const cert_row_t *row, const char *now)
{
    const char *args[] = {
        row->serial, transaction_id, row->subject, row->issuer, row->not_before,
        row->not_after, row->pem, now
    };
    int nrows;

    return apr_dbd_pquery(st->dbd->driver, p, st->dbd->handle, &nrows,
                          prepared(st, STMT_INSERT_CERT), 8, args);
}

/* After a failed insert: did a concurrent request record the transaction
 * first? Asked instead of decoding each driver's constraint error codes. */
static int already_recorded(scep_store_t *store, apr_pool_t *p, const char *transaction_id)
{
    scep_txn_t *txn;

    return find_transaction(store, p, transaction_id, &txn) == APR_SUCCESS;
}

static apr_status_t record_issued(scep_store_t *store, apr_pool_t *p, const scep_txn_t *txn,
                                  X509 *cert, const char *client_addr)
{
    dbd_store_t *st = store->baton;
    ap_dbd_t *dbd = st->dbd;
    apr_dbd_transaction_t *trans = NULL;
    const char *now = iso8601_now(p), *error = NULL;
    cert_row_t row;
    apr_status_t rv;
    int err;

    if ((rv = cert_row_of(p, txn, cert, &row)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, st->r, SCEPLOGNO(306)
                      "cannot describe the certificate of transaction %s for the records "
                      "(NDES event 31)", txn->transaction_id);
        mod_scep_rlog_openssl(st->r, APLOG_ERR);
        goto leave;
    }
    err = apr_dbd_transaction_start(dbd->driver, p, dbd->handle, &trans);
    if (!err) {
        err = insert_request(st, p, txn, row.serial, client_addr, now);
    }
    if (!err) {
        err = insert_cert(st, p, txn->transaction_id, &row, now);
    }
    if (err) {
        error = dbd_error(p, dbd, err);
    }
    if ((err = end_transaction(dbd, p, trans, err)) == 0) {
        goto leave;
    }
    if (already_recorded(store, p, txn->transaction_id)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, st->r, SCEPLOGNO(307)
                      "transaction %s was recorded by a concurrent request",
                      txn->transaction_id);
        rv = APR_EEXIST;
        goto leave;
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, st->r, SCEPLOGNO(308)
                  "cannot record certificate %s of transaction %s: %s (NDES event 31)",
                  row.serial, txn->transaction_id, error ? error : dbd_error(p, dbd, err));
    rv = APR_EGENERAL;
leave:
    return rv;
}

/* The times written by iso8601_of_tm(); 0 when text is not one. */
static apr_time_t time_of_iso8601(const char *text)
{
    apr_time_exp_t tm = { 0 };
    apr_time_t when;
    int n = 0;

    if (!text
        || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6
        || text[n] != '\0') {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return apr_time_exp_gmt_get(&when, &tm) == APR_SUCCESS ? when : 0;
}

/* The revocation_reason column; anything but a code counts as none. */
static int reason_of(const char *text)
{
    char *end;
    apr_int64_t reason;

    if (!text) {
        return SCEP_CRL_REASON_NONE;
    }
    reason = apr_strtoi64(text, &end, 10);
    return *end == '\0' && reason == (int)reason && scep_crl_reason_valid((int)reason)
               ? (int)reason
               : SCEP_CRL_REASON_NONE;
}

static apr_status_t find_cert(scep_store_t *store, apr_pool_t *p, const char *serial,
                              scep_cert_record_t **rec)
{
    dbd_store_t *st = store->baton;
    ap_dbd_t *dbd = st->dbd;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *args[] = { serial };
    scep_cert_record_t *found = NULL;
    int err;

    *rec = NULL;
    err = apr_dbd_pselect(dbd->driver, p, dbd->handle, &res, prepared(st, STMT_FIND_CERT),
                          SELECT_BUFFERED, 1, args);
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, st->r, SCEPLOGNO(340)
                      "cannot look up certificate %s: %s (NDES event 19)", serial,
                      dbd_error(p, dbd, err));
        return APR_EGENERAL;
    }
    /* serial is the primary key; reading to the end frees the result. */
    while (apr_dbd_get_row(dbd->driver, p, res, &row, -1) == 0) {
        if (found) {
            continue;
        }
        found = apr_pcalloc(p, sizeof(*found));
        found->serial = entry_or_null(p, dbd, row, 0);
        found->cert_pem = entry_or_null(p, dbd, row, 1);
        found->revoked_at = time_of_iso8601(entry_or_null(p, dbd, row, 2));
        found->reason = reason_of(entry_or_null(p, dbd, row, 3));
    }
    *rec = found;
    return found ? APR_SUCCESS : APR_NOTFOUND;
}

static apr_status_t list_revoked(scep_store_t *store, apr_pool_t *p,
                                 apr_array_header_t **revoked)
{
    dbd_store_t *st = store->baton;
    ap_dbd_t *dbd = st->dbd;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    scep_revoked_t *entry;
    apr_array_header_t *list = apr_array_make(p, 16, sizeof(scep_revoked_t));
    int err;

    *revoked = NULL;
    err = apr_dbd_pselect(dbd->driver, p, dbd->handle, &res, prepared(st, STMT_LIST_REVOKED),
                          SELECT_BUFFERED, 0, NULL);
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, st->r, SCEPLOGNO(341)
                      "cannot list the revoked certificates: %s (NDES event 44)",
                      dbd_error(p, dbd, err));
        return APR_EGENERAL;
    }
    while (apr_dbd_get_row(dbd->driver, p, res, &row, -1) == 0) {
        entry = apr_array_push(list);
        entry->serial = entry_or_null(p, dbd, row, 0);
        entry->revoked_at = time_of_iso8601(entry_or_null(p, dbd, row, 1));
        entry->reason = reason_of(entry_or_null(p, dbd, row, 2));
    }
    *revoked = list;
    return APR_SUCCESS;
}

static apr_status_t revoke_cert(scep_store_t *store, apr_pool_t *p, const char *serial,
                                int reason)
{
    dbd_store_t *st = store->baton;
    ap_dbd_t *dbd = st->dbd;
    const char *args[] = { iso8601_now(p), apr_itoa(p, reason), serial };
    scep_cert_record_t *rec;
    apr_status_t rv;
    int nrows = 0, err;

    if (!scep_crl_reason_valid(reason)) {
        return APR_EINVAL;
    }
    err = apr_dbd_pquery(dbd->driver, p, dbd->handle, &nrows, prepared(st, STMT_REVOKE), 3,
                         args);
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, st->r, SCEPLOGNO(342)
                      "cannot revoke certificate %s: %s", serial, dbd_error(p, dbd, err));
        return APR_EGENERAL;
    }
    if (nrows == 1) {
        return APR_SUCCESS;
    }
    /* Nothing changed: unknown, or revoked before (the first reason stays). */
    rv = find_cert(store, p, serial, &rec);
    return rv == APR_SUCCESS ? APR_EEXIST : rv;
}

scep_store_t *mod_scep_store_dbd(request_rec *r)
{
    APR_OPTIONAL_FN_TYPE(ap_dbd_acquire) *acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    ap_dbd_t *dbd = acquire ? acquire(r) : NULL;
    dbd_store_t *st;

    if (!dbd) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(309)
                      "no database connection from mod_dbd: check DBDriver and DBDParams "
                      "(NDES event 23)");
        return NULL;
    }
    if (make_ready(r, dbd) != APR_SUCCESS) {
        return NULL;
    }
    st = apr_pcalloc(r->pool, sizeof(*st));
    st->r = r;
    st->dbd = dbd;
    st->store.find_transaction = find_transaction;
    st->store.record_issued = record_issued;
    st->store.find_cert = find_cert;
    st->store.list_revoked = list_revoked;
    st->store.revoke = revoke_cert;
    st->store.baton = st;
    return &st->store;
}
