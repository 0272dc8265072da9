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

/* scep_password_sql.c: the one-time passwords of a service in its records,
 * on a real SQLite file shared by several connections ("servers") and, for
 * the race, by several processes; the single password in scep_secret. The
 * module's use on PostgreSQL runs in t/integration/test_service.py. */

#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include <check.h>

#include "scep.h"
#include "scep_password.h"
#include "testutil.h"

#define KU_GENERAL 0xa0
#define KU_ENCRYPT 0x20
#define KU_SIGN 0x80
/* processes spending one password at once */
#define RACERS 8

static apr_pool_t *pool;
static const char *db_file, *lock_file;
static const apr_dbd_driver_t *driver;
static unsigned char secret[SCEP_SECRET_KEY_LEN];
static const char *last_error;

static void remember_failure(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    if (level <= SCEP_LOG_WARNING) {
        last_error = apr_pstrdup(pool, msg);
    }
}

/* The writers' lock of one database across processes, as the module's
 * global mutex "scep-sqlite": an fcntl lock on a file of the test's. */
static apr_status_t lock_acquire(void *baton)
{
    return apr_file_lock(baton, APR_FLOCK_EXCLUSIVE);
}

static apr_status_t lock_release(void *baton)
{
    return apr_file_unlock(baton);
}

static apr_status_t close_handle(void *data)
{
    return apr_dbd_close(driver, data);
}

/* A server's records: a connection of its own to the shared file. */
static scep_store_t *open_records(void)
{
    scep_sql_conn_t conn = { 0 };
    scep_sql_lock_t *lock = apr_pcalloc(pool, sizeof(*lock));
    apr_file_t *f = NULL;
    scep_store_t *store = NULL;
    const char *error = NULL;

    ck_assert_int_eq(apr_file_open(&f, lock_file, APR_FOPEN_CREATE | APR_FOPEN_WRITE,
                                   APR_FPROT_OS_DEFAULT, pool),
                     APR_SUCCESS);
    lock->acquire = lock_acquire;
    lock->release = lock_release;
    lock->baton = f;
    conn.driver = driver;
    ck_assert_msg(apr_dbd_open_ex(driver, pool, db_file, &conn.handle, &error) == APR_SUCCESS, "%s",
                  error ? error : "cannot open");
    apr_pool_cleanup_register(pool, conn.handle, close_handle, apr_pool_cleanup_null);
    conn.prepared = apr_hash_make(pool);
    conn.write_lock = lock;
    ck_assert_msg(scep_store_sql(pool, &conn, remember_failure, NULL, &store) == APR_SUCCESS, "%s",
                  last_error ? last_error : "the store did not open");
    return store;
}

static scep_store_t *records_of(void *baton)
{
    return baton;
}

/* A server's password store on records, under the key of key_secret. */
static scep_password_store_t *passwords_under(scep_store_t *records,
                                              const unsigned char *key_secret, int max)
{
    scep_password_sql_conf_t conf;

    ck_assert_int_eq(scep_password_sql_key(key_secret, conf.mac_key), APR_SUCCESS);
    conf.opts.max = max;
    conf.opts.validity = apr_time_from_sec(3600);
    conf.opts.length = 8;
    return scep_password_sql(pool, &conf, records_of, records);
}

static scep_password_store_t *passwords_at(scep_store_t *records, int max)
{
    return passwords_under(records, secret, max);
}

static void setup(void)
{
    const char *dir;
    int i;

    apr_pool_create(&pool, NULL);
    ck_assert_int_eq(apr_dbd_init(pool), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_get_driver(pool, "sqlite3", &driver), APR_SUCCESS);
    dir = testutil_tempdir(pool);
    db_file = testutil_path(pool, dir, "scep.db");
    lock_file = testutil_path(pool, dir, "writers.lock");
    for (i = 0; i < SCEP_SECRET_KEY_LEN; i++) {
        secret[i] = (unsigned char)(i * 7 + 1);
    }
    last_error = NULL;
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* The one value of a query on the shared file (made by a store first). */
static const char *value_of(const char *sql)
{
    apr_dbd_t *handle = NULL;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *value = NULL;

    ck_assert_int_eq(apr_dbd_open(driver, pool, db_file, &handle), APR_SUCCESS);
    ck_assert_int_eq(apr_dbd_select(driver, pool, handle, &res, sql, 1), 0);
    while (apr_dbd_get_row(driver, pool, res, &row, -1) == 0) {
        value = apr_pstrdup(pool, apr_dbd_get_entry(driver, row, 0));
    }
    apr_dbd_close(driver, handle);
    return value;
}

static void exec(const char *sql)
{
    apr_dbd_t *handle = NULL;
    int nrows;

    ck_assert_int_eq(apr_dbd_open(driver, pool, db_file, &handle), APR_SUCCESS);
    ck_assert_msg(apr_dbd_query(driver, handle, &nrows, sql) == 0, "%s", sql);
    apr_dbd_close(driver, handle);
}

static const char *issue(scep_password_store_t *ps, int *waiting)
{
    const char *password = NULL;
    apr_time_t expires = 0;
    int ignored;

    ck_assert_int_eq(ps->issue(ps, pool, &password, &expires, waiting ? waiting : &ignored),
                     APR_SUCCESS);
    ck_assert_int_eq((int)strlen(password), 16);
    ck_assert(expires > apr_time_now());
    return password;
}

static apr_status_t use(scep_password_store_t *ps, const char *password, int key_usage,
                        const char *spender, scep_problem_t *prob)
{
    memset(prob, 0, sizeof(*prob));
    return ps->use(ps, pool, password, key_usage, spender, prob);
}

static void expect_accepted(scep_password_store_t *ps, const char *password, int key_usage,
                            const char *spender)
{
    scep_problem_t prob;

    ck_assert_msg(use(ps, password, key_usage, spender, &prob) == APR_SUCCESS, "refused: %s",
                  prob.text ? prob.text : "(no text)");
}

static void expect_refused(scep_password_store_t *ps, const char *password, int key_usage,
                           const char *spender, int event)
{
    scep_problem_t prob;

    ck_assert_int_eq(use(ps, password, key_usage, spender, &prob), APR_EACCES);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, event);
}

/* The passwords' key is derived: neither the secret key's bytes nor
 * another secret's key. */
START_TEST(hmac_key_is_derived_from_the_secret_key)
{
    unsigned char key[SCEP_PASSWORD_MAC_LEN], again[SCEP_PASSWORD_MAC_LEN];
    unsigned char other_secret[SCEP_SECRET_KEY_LEN], other[SCEP_PASSWORD_MAC_LEN];

    ck_assert_int_eq(scep_password_sql_key(secret, key), APR_SUCCESS);
    ck_assert_int_eq(scep_password_sql_key(secret, again), APR_SUCCESS);
    memcpy(other_secret, secret, sizeof(other_secret));
    other_secret[0] ^= 1;
    ck_assert_int_eq(scep_password_sql_key(other_secret, other), APR_SUCCESS);
    ck_assert(memcmp(key, again, sizeof(key)) == 0);
    ck_assert(memcmp(key, secret, sizeof(key)) != 0);
    ck_assert(memcmp(key, other, sizeof(key)) != 0);
}
END_TEST

/* Each label its own key (the CA manager page's form tokens never share
 * the passwords' key), the same at every server with the same secret. */
START_TEST(each_label_derives_a_key_of_its_own)
{
    unsigned char passwords[SCEP_PASSWORD_MAC_LEN], forms[32], again[32];

    ck_assert_int_eq(scep_password_sql_key(secret, passwords), APR_SUCCESS);
    ck_assert_int_eq(scep_secret_key_derive(secret, "form tokens", forms, sizeof(forms)),
                     APR_SUCCESS);
    ck_assert_int_eq(scep_secret_key_derive(secret, "form tokens", again, sizeof(again)),
                     APR_SUCCESS);
    ck_assert(memcmp(forms, again, sizeof(forms)) == 0);
    ck_assert(memcmp(forms, passwords, sizeof(forms)) != 0);
    ck_assert(memcmp(forms, secret, sizeof(forms)) != 0);
}
END_TEST

/* The records hold the password's HMAC under the derived key, never the
 * password, and the spender likewise. */
START_TEST(records_hold_hmacs_only)
{
    scep_store_t *records = open_records();
    scep_password_store_t *ps = passwords_at(records, 5);
    const char *password = issue(ps, NULL);
    unsigned char key[SCEP_PASSWORD_MAC_LEN], mac[SCEP_PASSWORD_MAC_LEN];
    const char *row;

    expect_accepted(ps, password, KU_SIGN, "T-1|key");
    ck_assert_int_eq(scep_password_sql_key(secret, key), APR_SUCCESS);
    ck_assert(scep_password_mac(key, password, mac));
    ck_assert_str_eq(value_of("SELECT mac FROM scep_password"), scep_hex(pool, mac, sizeof(mac)));
    ck_assert(scep_password_mac(key, "T-1|key", mac));
    ck_assert_str_eq(value_of("SELECT spender_sign FROM scep_password"),
                     scep_hex(pool, mac, sizeof(mac)));
    ck_assert_ptr_null(value_of("SELECT spender_encrypt FROM scep_password"));
    row = value_of("SELECT mac || issued_at || expires_at || served || spender_sign"
                   " FROM scep_password");
    ck_assert_ptr_null(strstr(row, password));
    ck_assert_ptr_null(strcasestr(row, "T-1|key"));
}
END_TEST

/* A password from one server enrolls at another, once. */
START_TEST(password_from_one_server_is_spent_at_another)
{
    scep_password_store_t *a = passwords_at(open_records(), 5);
    scep_password_store_t *b = passwords_at(open_records(), 5);
    const char *password = issue(a, NULL);

    expect_accepted(b, password, KU_GENERAL, "T-1|key");
    expect_refused(a, password, KU_GENERAL, "T-2|key", SCEP_EVENT_INVALID_PASSWORD);
    expect_refused(b, password, KU_GENERAL, "T-2|key", SCEP_EVENT_INVALID_PASSWORD);
    /* the same request again, at either server, while the password lives */
    expect_accepted(a, password, KU_GENERAL, "T-1|key");
    expect_accepted(b, password, KU_GENERAL, "T-1|key");
}
END_TEST

/* NDES's halves across servers: one signing and one encryption request,
 * each half once; a general-purpose request after one half is event 43. */
START_TEST(halves_are_spent_once_across_servers)
{
    scep_password_store_t *a = passwords_at(open_records(), 5);
    scep_password_store_t *b = passwords_at(open_records(), 5);
    const char *password = issue(a, NULL), *other = issue(b, NULL);

    expect_accepted(a, password, KU_SIGN, "T-S|key");
    expect_refused(b, password, KU_SIGN, "T-S2|key", SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    expect_refused(b, password, KU_GENERAL, "T-G|key", SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    expect_accepted(b, password, KU_SIGN, "T-S|key");
    expect_accepted(b, password, KU_ENCRYPT, "T-E|key");
    expect_refused(a, password, KU_ENCRYPT, "T-E2|key", SCEP_EVENT_INVALID_PASSWORD);
    expect_accepted(a, password, KU_ENCRYPT, "T-E|key");
    /* no keyUsage is general purpose: both halves */
    expect_accepted(b, other, -1, "T-N|key");
    expect_refused(a, other, KU_SIGN, "T-S3|key", SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

/* Unknown passwords and passwords under another secret key are event 29. */
START_TEST(unknown_password_and_other_key_are_refused)
{
    scep_store_t *records = open_records();
    scep_password_store_t *a = passwords_at(records, 5);
    unsigned char other_secret[SCEP_SECRET_KEY_LEN];
    scep_password_store_t *stranger;
    const char *password = issue(a, NULL);

    memcpy(other_secret, secret, sizeof(other_secret));
    other_secret[5] ^= 0x80;
    stranger = passwords_under(open_records(), other_secret, 5);
    expect_refused(a, "0123456789ABCDEF", KU_GENERAL, "T-1|key", SCEP_EVENT_INVALID_PASSWORD);
    expect_refused(stranger, password, KU_GENERAL, "T-1|key", SCEP_EVENT_INVALID_PASSWORD);
    expect_accepted(a, password, KU_GENERAL, "T-1|key");
}
END_TEST

/* SCEPPasswordMax counts the waiting passwords of the whole service; a
 * used-up one makes room, and so does an expired one, which is purged. */
START_TEST(password_max_counts_every_server)
{
    scep_password_store_t *a = passwords_at(open_records(), 2);
    scep_password_store_t *b = passwords_at(open_records(), 2);
    const char *password = NULL, *first;
    apr_time_t expires;
    int waiting = 0;

    first = issue(a, &waiting);
    ck_assert_int_eq(waiting, 1);
    issue(b, &waiting);
    ck_assert_int_eq(waiting, 2);
    ck_assert_int_eq(a->issue(a, pool, &password, &expires, &waiting), APR_ENOSPC);
    ck_assert_int_eq(b->issue(b, pool, &password, &expires, &waiting), APR_ENOSPC);
    ck_assert_ptr_null(password);
    ck_assert_int_eq(waiting, 2);
    /* a half spent: still waiting for its other half */
    expect_accepted(b, first, KU_SIGN, "T-S|key");
    ck_assert_int_eq(a->waiting(a, pool, &waiting), APR_SUCCESS);
    ck_assert_int_eq(waiting, 2);
    expect_accepted(a, first, KU_ENCRYPT, "T-E|key");
    ck_assert_int_eq(b->waiting(b, pool, &waiting), APR_SUCCESS);
    ck_assert_int_eq(waiting, 1);
    issue(b, &waiting);
    ck_assert_int_eq(waiting, 2);
    /* an expired password neither waits nor stays */
    exec("UPDATE scep_password SET expires_at = 1000 WHERE served = 0");
    ck_assert_int_eq(a->waiting(a, pool, &waiting), APR_SUCCESS);
    ck_assert_int_eq(waiting, 0);
    issue(a, &waiting);
    ck_assert_int_eq(waiting, 1);
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_password WHERE expires_at = 1000"), "0");
}
END_TEST

/* An expired password is refused (event 29), even to its own request. */
START_TEST(expired_password_is_refused)
{
    scep_password_store_t *a = passwords_at(open_records(), 5);
    const char *password = issue(a, NULL), *spent = issue(a, NULL);

    expect_accepted(a, spent, KU_GENERAL, "T-1|key");
    exec("UPDATE scep_password SET expires_at = 1000");
    expect_refused(a, password, KU_GENERAL, "T-2|key", SCEP_EVENT_INVALID_PASSWORD);
    expect_refused(a, spent, KU_GENERAL, "T-1|key", SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

/* One password, RACERS processes with their own connections spending it
 * at once for different requests: exactly one wins, the others get event
 * 29. Exit status of a racer: 0 accepted, 1 refused with event 29, 2 else. */
static int race(const char *password, int i)
{
    scep_password_store_t *ps = passwords_at(open_records(), 5);
    scep_problem_t prob;
    apr_status_t rv = use(ps, password, KU_GENERAL, apr_psprintf(pool, "T-%d|key", i), &prob);

    if (rv == APR_SUCCESS) {
        return 0;
    }
    return rv == APR_EACCES && prob.event == SCEP_EVENT_INVALID_PASSWORD ? 1 : 2;
}

/* A racer's life, in a pool of its own, which closes its connection before
 * it exits (valgrind counts what a process leaves open; the test's pool,
 * inherited, would remove the test's directory). */
static void racer(const char *password, int i)
{
    apr_pool_t *outer = pool;
    int result;

    apr_pool_create(&pool, outer);
    result = race(password, i);
    apr_pool_destroy(pool);
    _exit(result);
}

/* A password issued by a connection closed before the racers fork: SQLite
 * connections must not cross a fork. */
static const char *issued_and_closed(void)
{
    apr_pool_t *outer = pool;
    const char *password;

    apr_pool_create(&pool, outer);
    password = apr_pstrdup(outer, issue(passwords_at(open_records(), 5), NULL));
    apr_pool_destroy(pool);
    pool = outer;
    return password;
}

START_TEST(racing_servers_spend_a_password_once)
{
    const char *password = issued_and_closed();
    pid_t pids[RACERS];
    int i, status, won = 0, refused = 0;

    for (i = 0; i < RACERS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            racer(password, i);
        }
    }
    for (i = 0; i < RACERS; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status));
        won += WEXITSTATUS(status) == 0;
        refused += WEXITSTATUS(status) == 1;
    }
    ck_assert_int_eq(won, 1);
    ck_assert_int_eq(refused, RACERS - 1);
    open_records();
    ck_assert_str_eq(value_of("SELECT served FROM scep_password"), "3");
}
END_TEST

/* The single password: made by the first server, read by the others,
 * sealed in the records (never in clear), replaced for all by _set(). */
START_TEST(single_password_is_shared_sealed)
{
    scep_store_t *a = open_records(), *b = open_records();
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *made = NULL, *read = NULL, *sealed;

    ck_assert_int_eq(scep_single_password_sql(pool, a, secret, 8, &made, &prob), APR_SUCCESS);
    ck_assert_int_eq((int)strlen(made), 16);
    ck_assert_int_eq(scep_single_password_sql(pool, b, secret, 8, &read, &prob), APR_SUCCESS);
    ck_assert_str_eq(read, made);
    sealed = value_of("SELECT sealed FROM scep_secret WHERE name = 'single-password'");
    ck_assert_ptr_nonnull(sealed);
    ck_assert_ptr_null(strstr(sealed, made));
    ck_assert_int_eq(scep_single_password_sql_set(pool, b, secret, "NEW-SINGLE", &prob),
                     APR_SUCCESS);
    ck_assert_int_eq(scep_single_password_sql(pool, a, secret, 8, &read, &prob), APR_SUCCESS);
    ck_assert_str_eq(read, "NEW-SINGLE");
    ck_assert_str_eq(value_of("SELECT COUNT(*) FROM scep_secret"), "1");
}
END_TEST

/* Under another secret key it does not open: event 49. */
START_TEST(single_password_under_another_key_is_event_49)
{
    scep_store_t *a = open_records();
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    unsigned char other_secret[SCEP_SECRET_KEY_LEN];
    const char *made = NULL, *read = NULL;

    ck_assert_int_eq(scep_single_password_sql(pool, a, secret, 8, &made, &prob), APR_SUCCESS);
    memcpy(other_secret, secret, sizeof(other_secret));
    other_secret[31] ^= 1;
    ck_assert_int_ne(scep_single_password_sql(pool, open_records(), other_secret, 8, &read, &prob),
                     APR_SUCCESS);
    ck_assert_ptr_null(read);
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAILED_DECRYPT_PASSWORD);
}
END_TEST

Suite *scep_password_sql_suite(void);

Suite *scep_password_sql_suite(void)
{
    Suite *s = suite_create("password_sql");
    TCase *tc = testutil_case(s, "sqlite", setup, teardown);

    tcase_add_test(tc, hmac_key_is_derived_from_the_secret_key);
    tcase_add_test(tc, each_label_derives_a_key_of_its_own);
    tcase_add_test(tc, records_hold_hmacs_only);
    tcase_add_test(tc, password_from_one_server_is_spent_at_another);
    tcase_add_test(tc, halves_are_spent_once_across_servers);
    tcase_add_test(tc, unknown_password_and_other_key_are_refused);
    tcase_add_test(tc, password_max_counts_every_server);
    tcase_add_test(tc, expired_password_is_refused);
    tcase_add_test(tc, racing_servers_spend_a_password_once);
    tcase_add_test(tc, single_password_is_shared_sealed);
    tcase_add_test(tc, single_password_under_another_key_is_event_49);
    return s;
}
