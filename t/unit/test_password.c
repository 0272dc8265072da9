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

/* scep_password.c: the one-time password cache with a fake clock, and the
 * encrypted single password with its key file. */

#include <string.h> /* memmem: _GNU_SOURCE comes from configure */
#include <sys/stat.h>

#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <check.h>

#include "scep.h"
#include "scep_password.h"
#include "testutil.h"

#define T0 apr_time_from_sec(1700000000)
#define VALIDITY apr_time_from_sec(3600)
#define KU_GENERAL 0xa0
#define KU_ENCRYPT 0x20
#define KU_SIGN 0x80
#define KU_ABSENT (-1)

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static scep_pwcache_t *new_cache(int capacity, void **block)
{
    scep_pwcache_t *cache = NULL;
    void *mem = apr_palloc(pool, scep_pwcache_size(capacity));

    ck_assert_int_eq(scep_pwcache_init(mem, capacity, &cache), APR_SUCCESS);
    ck_assert_int_eq(scep_pwcache_capacity(cache), capacity);
    if (block) {
        *block = mem;
    }
    return cache;
}

static const char *issue_at(scep_pwcache_t *cache, apr_time_t now, int max)
{
    scep_pwcache_opts_t opts = { max, VALIDITY, 8 };
    const char *password = NULL;
    apr_time_t expires = 0;

    ck_assert_int_eq(scep_pwcache_issue(cache, pool, now, &opts, &password, &expires), APR_SUCCESS);
    ck_assert_ptr_nonnull(password);
    ck_assert(expires == now + VALIDITY);
    return password;
}

static const char *issue(scep_pwcache_t *cache)
{
    return issue_at(cache, T0, scep_pwcache_capacity(cache));
}

/* Each use is another request unless a test names the spender. */
static const char *next_spender(void)
{
    static int n;

    return apr_psprintf(pool, "TXN%d|KEY", ++n);
}

static void use_as(scep_pwcache_t *cache, apr_time_t now, const char *password, int ku,
                   const char *spender)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    ck_assert_msg(scep_pwcache_use(cache, now, password, ku, spender, &prob) == APR_SUCCESS,
                  "keyUsage 0x%x refused: %s", ku, prob.text ? prob.text : "");
}

static void use_ok_at(scep_pwcache_t *cache, apr_time_t now, const char *password, int ku)
{
    use_as(cache, now, password, ku, next_spender());
}

static void use_ok(scep_pwcache_t *cache, const char *password, int ku)
{
    use_ok_at(cache, T0, password, ku);
}

/* Refused with event; returns the failInfoText. */
static const char *refused_as(scep_pwcache_t *cache, apr_time_t now, const char *password, int ku,
                              const char *spender, int event)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    ck_assert_msg(scep_pwcache_use(cache, now, password, ku, spender, &prob) != APR_SUCCESS,
                  "keyUsage 0x%x accepted", ku);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, event);
    ck_assert_ptr_nonnull(prob.text);
    return prob.text;
}

static const char *use_refused_at(scep_pwcache_t *cache, apr_time_t now, const char *password,
                                  int ku, int event)
{
    return refused_as(cache, now, password, ku, next_spender(), event);
}

static const char *use_refused(scep_pwcache_t *cache, const char *password, int ku, int event)
{
    return use_refused_at(cache, T0, password, ku, event);
}

START_TEST(passwords_are_upper_hex_and_distinct)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *seen[5];
    int i, j;

    for (i = 0; i < 5; i++) {
        seen[i] = issue(cache);
        ck_assert_uint_eq(strlen(seen[i]), 16);
        for (j = 0; j < 16; j++) {
            ck_assert_msg(apr_isxdigit(seen[i][j]) && !apr_islower(seen[i][j]), "%s", seen[i]);
        }
        for (j = 0; j < i; j++) {
            ck_assert_str_ne(seen[i], seen[j]);
        }
    }
    ck_assert_int_eq(scep_pwcache_in_use(cache, T0), 5);
}
END_TEST

START_TEST(length_gives_twice_the_hex_digits)
{
    const char *password = NULL;

    ck_assert_int_eq(scep_password_generate(pool, 4, &password), APR_SUCCESS);
    ck_assert_uint_eq(strlen(password), 8);
    ck_assert_int_eq(scep_password_generate(pool, 64, &password), APR_SUCCESS);
    ck_assert_uint_eq(strlen(password), 128);
    ck_assert_int_eq(scep_password_generate(pool, 3, &password), APR_EINVAL);
    ck_assert_int_eq(scep_password_generate(pool, 65, &password), APR_EINVAL);
}
END_TEST

START_TEST(general_purpose_once)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *pw = issue(cache);

    use_ok(cache, pw, KU_GENERAL);
    use_refused(cache, pw, KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
    use_refused(cache, pw, KU_SIGN, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_int_eq(scep_pwcache_in_use(cache, T0), 0);
}
END_TEST

START_TEST(absent_key_usage_is_general_purpose)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *pw = issue(cache);

    use_ok(cache, pw, KU_ABSENT);
    use_refused(cache, pw, KU_ENCRYPT, SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

START_TEST(encryption_and_signing_once_each)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *pw = issue(cache);

    use_ok(cache, pw, KU_ENCRYPT);
    ck_assert_int_eq(scep_pwcache_in_use(cache, T0), 1);
    use_ok(cache, pw, KU_SIGN);
    ck_assert_int_eq(scep_pwcache_in_use(cache, T0), 0);
    use_refused(cache, pw, KU_ENCRYPT, SCEP_EVENT_INVALID_PASSWORD);
    use_refused(cache, pw, KU_SIGN, SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

START_TEST(same_half_twice_is_event_43)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *pw = issue(cache), *pw2 = issue(cache);

    use_ok(cache, pw, KU_ENCRYPT);
    use_refused(cache, pw, KU_ENCRYPT, SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    /* The refusal spent nothing: the other half still works. */
    use_ok(cache, pw, KU_SIGN);

    use_ok(cache, pw2, KU_SIGN);
    use_refused(cache, pw2, KU_SIGN, SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    use_ok(cache, pw2, KU_ENCRYPT);
}
END_TEST

START_TEST(general_purpose_after_a_half_is_event_43)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *pw = issue(cache);

    use_ok(cache, pw, KU_SIGN);
    use_refused(cache, pw, KU_GENERAL, SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    use_refused(cache, pw, KU_ABSENT, SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    use_ok(cache, pw, KU_ENCRYPT);
}
END_TEST

/* Only digitalSignature and keyEncipherment count; neither is general. */
START_TEST(other_key_usage_bits)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *general = issue(cache), *halves = issue(cache), *neither = issue(cache);

    use_ok(cache, general, 0xa8);
    use_refused(cache, general, KU_SIGN, SCEP_EVENT_INVALID_PASSWORD);

    use_ok(cache, halves, 0x88);
    use_refused(cache, halves, KU_SIGN, SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    use_ok(cache, halves, 0x30);
    use_refused(cache, halves, KU_ENCRYPT, SCEP_EVENT_INVALID_PASSWORD);

    use_ok(cache, neither, 0x08);
    use_refused(cache, neither, KU_ENCRYPT, SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

START_TEST(unknown_expired_and_used_look_alike)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *expired = issue(cache), *used = issue(cache);
    const char *t_unknown, *t_expired, *t_used;

    use_ok(cache, used, KU_GENERAL);
    t_unknown = use_refused(cache, "0123456789ABCDEF", KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
    t_expired =
        use_refused_at(cache, T0 + VALIDITY, expired, KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
    t_used = use_refused(cache, used, KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_str_eq(t_unknown, t_expired);
    ck_assert_str_eq(t_unknown, t_used);
    use_refused(cache, "", KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

START_TEST(valid_until_just_before_expiry)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *pw = issue(cache), *late = issue(cache);

    use_ok_at(cache, T0 + VALIDITY - 1, pw, KU_GENERAL);
    use_refused_at(cache, T0 + VALIDITY, late, KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
    /* An expired password stays refused even if the clock went back. */
    use_refused(cache, late, KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

START_TEST(full_cache_is_enospc)
{
    scep_pwcache_t *cache = new_cache(2, NULL);
    scep_pwcache_opts_t opts = { 2, VALIDITY, 8 };
    const char *pw = issue(cache), *password = (const char *)1;
    apr_time_t expires = 0;

    issue(cache);
    ck_assert_int_eq(scep_pwcache_in_use(cache, T0), 2);
    ck_assert_int_eq(scep_pwcache_issue(cache, pool, T0, &opts, &password, &expires), APR_ENOSPC);
    ck_assert_ptr_null(password);
    /* A spent password makes room. */
    use_ok(cache, pw, KU_GENERAL);
    issue(cache);
}
END_TEST

START_TEST(max_below_capacity_limits)
{
    scep_pwcache_t *cache = new_cache(10, NULL);
    scep_pwcache_opts_t opts = { 3, VALIDITY, 8 };
    const char *password = NULL;
    apr_time_t expires = 0;

    issue_at(cache, T0, 3);
    issue_at(cache, T0, 3);
    issue_at(cache, T0, 3);
    ck_assert_int_eq(scep_pwcache_issue(cache, pool, T0, &opts, &password, &expires), APR_ENOSPC);
}
END_TEST

START_TEST(expired_entries_make_room)
{
    scep_pwcache_t *cache = new_cache(2, NULL);
    const char *old = issue(cache);

    issue(cache);
    ck_assert_int_eq(scep_pwcache_in_use(cache, T0 + VALIDITY), 0);
    issue_at(cache, T0 + VALIDITY, 2);
    issue_at(cache, T0 + VALIDITY, 2);
    use_refused_at(cache, T0 + VALIDITY, old, KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

/* The block (which the server puts in shared memory) holds HMACs only. */
START_TEST(block_holds_no_password)
{
    void *block = NULL;
    scep_pwcache_t *cache = new_cache(5, &block);
    const char *pw = issue(cache);
    apr_size_t size = scep_pwcache_size(5);

    ck_assert_ptr_null(memmem(block, size, pw, strlen(pw)));
    /* Not even half of it. */
    ck_assert_ptr_null(memmem(block, size, pw, strlen(pw) / 2));
    use_ok(cache, pw, KU_ENCRYPT);
    ck_assert_ptr_null(memmem(block, size, pw, strlen(pw) / 2));
}
END_TEST

START_TEST(move_keeps_passwords_and_retires_the_old_block)
{
    scep_pwcache_t *small = new_cache(2, NULL), *big = new_cache(4, NULL);
    scep_pwcache_opts_t opts = { 2, VALIDITY, 8 };
    const char *half = issue(small), *whole = issue(small), *password = NULL;
    apr_time_t expires = 0;

    use_ok(small, half, KU_ENCRYPT);
    scep_pwcache_move(big, small);
    ck_assert_int_eq(scep_pwcache_capacity(small), 0);
    use_refused(small, whole, KU_GENERAL, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_int_eq(scep_pwcache_issue(small, pool, T0, &opts, &password, &expires), APR_ENOSPC);

    ck_assert_int_eq(scep_pwcache_in_use(big, T0), 2);
    use_refused(big, half, KU_ENCRYPT, SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    use_ok(big, half, KU_SIGN);
    use_ok(big, whole, KU_GENERAL);
    issue_at(big, T0, 4);
}
END_TEST

/* A device whose reply was lost sends the same request again: it passes,
 * half or whole password; another request does not. */
START_TEST(the_same_request_passes_again)
{
    scep_pwcache_t *cache = new_cache(5, NULL);
    const char *whole = issue(cache), *halves = issue(cache);

    use_as(cache, T0, whole, KU_GENERAL, "A|K1");
    use_as(cache, T0 + 1, whole, KU_GENERAL, "A|K1");
    refused_as(cache, T0, whole, KU_GENERAL, "A|K2", SCEP_EVENT_INVALID_PASSWORD);
    refused_as(cache, T0, whole, KU_GENERAL, "B|K1", SCEP_EVENT_INVALID_PASSWORD);

    use_as(cache, T0, halves, KU_SIGN, "S|K");
    use_as(cache, T0, halves, KU_SIGN, "S|K");
    refused_as(cache, T0, halves, KU_SIGN, "T|K", SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD);
    use_as(cache, T0, halves, KU_ENCRYPT, "E|K");
    use_as(cache, T0, halves, KU_SIGN, "S|K");
    use_as(cache, T0, halves, KU_ENCRYPT, "E|K");
    refused_as(cache, T0, halves, KU_GENERAL, "S|K", SCEP_EVENT_INVALID_PASSWORD);
    /* not beyond the password's life */
    refused_as(cache, T0 + VALIDITY, halves, KU_SIGN, "S|K", SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_int_eq(scep_pwcache_in_use(cache, T0), 0);
}
END_TEST

/* A used-up password is remembered for retries only until its slot is
 * needed for a new one. */
START_TEST(used_up_passwords_give_way)
{
    scep_pwcache_t *cache = new_cache(2, NULL);
    const char *first = issue(cache), *second = issue(cache);

    use_as(cache, T0, first, KU_GENERAL, "A|K");
    use_as(cache, T0, second, KU_GENERAL, "B|K");
    issue(cache);
    issue(cache);
    ck_assert_int_eq(scep_pwcache_in_use(cache, T0), 2);
    refused_as(cache, T0, first, KU_GENERAL, "A|K", SCEP_EVENT_INVALID_PASSWORD);
}
END_TEST

START_TEST(equal_compares_whole_strings)
{
    ck_assert(scep_password_equal("secret", "secret"));
    ck_assert(!scep_password_equal("secret", "secreT"));
    ck_assert(!scep_password_equal("secret", "secret2"));
    ck_assert(!scep_password_equal("secret", "secre"));
    ck_assert(!scep_password_equal("secret", ""));
    ck_assert(scep_password_equal("", ""));
}
END_TEST

/* ---------------------------------------------------------------------- */

static void fixed_key(unsigned char *key)
{
    apr_size_t i;

    for (i = 0; i < SCEP_SECRET_KEY_LEN; i++) {
        key[i] = (unsigned char)(i * 37 + 11);
    }
}

static const char *seal(const unsigned char *key, const char *password)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *sealed = NULL;

    ck_assert_msg(scep_single_password_seal(pool, key, password, &sealed, &prob) == APR_SUCCESS,
                  "%s", prob.text);
    return sealed;
}

static void open_fails_with_49(const unsigned char *key, const char *sealed)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *password = (const char *)1;

    ck_assert_int_ne(scep_single_password_open(pool, key, sealed, &password, &prob), APR_SUCCESS);
    ck_assert_ptr_null(password);
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAILED_DECRYPT_PASSWORD);
}

START_TEST(seal_round_trip)
{
    unsigned char key[SCEP_SECRET_KEY_LEN];
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *sealed, *again, *password = NULL;

    fixed_key(key);
    sealed = seal(key, "Manufacturing-Line-7");
    ck_assert_msg(strncmp(sealed, "SCEPPW1:", 8) == 0, "%s", sealed);
    ck_assert_ptr_null(strstr(sealed, "Manufacturing"));
    ck_assert_int_eq(scep_single_password_open(pool, key, sealed, &password, &prob), APR_SUCCESS);
    ck_assert_str_eq(password, "Manufacturing-Line-7");
    /* A fresh IV every time. */
    again = seal(key, "Manufacturing-Line-7");
    ck_assert_str_ne(sealed, again);
}
END_TEST

START_TEST(seal_refuses_empty_and_long)
{
    unsigned char key[SCEP_SECRET_KEY_LEN];
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *sealed = NULL;
    char long_pw[300];

    fixed_key(key);
    memset(long_pw, 'x', sizeof(long_pw) - 1);
    long_pw[sizeof(long_pw) - 1] = '\0';
    ck_assert_int_eq(scep_single_password_seal(pool, key, "", &sealed, &prob), APR_EINVAL);
    ck_assert_int_eq(scep_single_password_seal(pool, key, long_pw, &sealed, &prob), APR_EINVAL);
}
END_TEST

START_TEST(wrong_key_does_not_open)
{
    unsigned char key[SCEP_SECRET_KEY_LEN], other[SCEP_SECRET_KEY_LEN];

    fixed_key(key);
    memcpy(other, key, sizeof(other));
    other[5] ^= 1;
    open_fails_with_49(other, seal(key, "password"));
}
END_TEST

START_TEST(tampered_or_foreign_text_does_not_open)
{
    unsigned char key[SCEP_SECRET_KEY_LEN];
    char *sealed;
    apr_size_t at;

    fixed_key(key);
    sealed = apr_pstrdup(pool, seal(key, "password"));
    for (at = strlen("SCEPPW1:"); at < strlen(sealed) - 2; at += 5) {
        char *copy = apr_pstrdup(pool, sealed);

        copy[at] = copy[at] == 'A' ? 'B' : 'A';
        open_fails_with_49(key, copy);
    }
    open_fails_with_49(key, sealed + 1);
    open_fails_with_49(key, apr_pstrcat(pool, "SCEPPW2", sealed + 7, NULL));
    open_fails_with_49(key, "SCEPPW1:");
    open_fails_with_49(key, "SCEPPW1:not base64!");
    open_fails_with_49(key, apr_pstrndup(pool, sealed, strlen(sealed) - 4));
    open_fails_with_49(key, "password");
}
END_TEST

static unsigned int file_mode(const char *file)
{
    struct stat st;

    ck_assert_int_eq(stat(file, &st), 0);
    return st.st_mode & 07777;
}

START_TEST(key_file_is_private_and_never_replaced)
{
    const char *dir = testutil_tempdir(pool), *file = testutil_path(pool, dir, "secret.key");
    unsigned char key[SCEP_SECRET_KEY_LEN], again[SCEP_SECRET_KEY_LEN];
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    ck_assert_int_eq(scep_secret_key_create(pool, file, &prob), APR_SUCCESS);
    ck_assert_uint_eq(file_mode(file), 0600);
    ck_assert_int_eq(scep_secret_key_read(pool, file, key, &prob), APR_SUCCESS);
    ck_assert(APR_STATUS_IS_EEXIST(scep_secret_key_create(pool, file, &prob)));
    ck_assert_int_eq(scep_secret_key_read(pool, file, again, &prob), APR_SUCCESS);
    ck_assert_mem_eq(key, again, sizeof(key));

    ck_assert_int_eq(chmod(file, 0640), 0);
    ck_assert_int_ne(scep_secret_key_read(pool, file, key, &prob), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(prob.text, "0600"));
    ck_assert_int_eq(chmod(file, 0604), 0);
    ck_assert_int_ne(scep_secret_key_read(pool, file, key, &prob), APR_SUCCESS);
}
END_TEST

START_TEST(key_file_of_wrong_size_refused)
{
    const char *dir = testutil_tempdir(pool), *file = testutil_path(pool, dir, "short.key");
    unsigned char key[SCEP_SECRET_KEY_LEN];
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    apr_file_t *f = NULL;

    ck_assert_int_eq(apr_file_open(&f, file, APR_FOPEN_CREATE | APR_FOPEN_WRITE,
                                   APR_FPROT_UREAD | APR_FPROT_UWRITE, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(apr_file_puts("too short", f), APR_SUCCESS);
    apr_file_close(f);
    ck_assert_int_ne(scep_secret_key_read(pool, file, key, &prob), APR_SUCCESS);
    ck_assert_int_ne(scep_secret_key_read(pool, testutil_path(pool, dir, "missing"), key, &prob),
                     APR_SUCCESS);
}
END_TEST

START_TEST(password_file_round_trip)
{
    const char *dir = testutil_tempdir(pool);
    const char *key_file = testutil_path(pool, dir, "k"), *file = testutil_path(pool, dir, "p");
    unsigned char key[SCEP_SECRET_KEY_LEN];
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *password = NULL;
    char buf[256] = "";
    apr_file_t *f = NULL;
    apr_size_t len = sizeof(buf) - 1;

    ck_assert_int_eq(scep_secret_key_create(pool, key_file, &prob), APR_SUCCESS);
    ck_assert_int_eq(scep_secret_key_read(pool, key_file, key, &prob), APR_SUCCESS);
    ck_assert_int_eq(scep_single_password_write(pool, file, key, "first", &prob), APR_SUCCESS);
    ck_assert_int_eq(scep_single_password_write(pool, file, key, "second-one", &prob), APR_SUCCESS);
    ck_assert_uint_eq(file_mode(file), 0600);
    ck_assert_int_eq(scep_single_password_read(pool, file, key, &password, &prob), APR_SUCCESS);
    ck_assert_str_eq(password, "second-one");

    ck_assert_int_eq(apr_file_open(&f, file, APR_FOPEN_READ, 0, pool), APR_SUCCESS);
    apr_file_read(f, buf, &len);
    apr_file_close(f);
    ck_assert_ptr_null(strstr(buf, "second"));

    ck_assert_int_eq(chmod(file, 0644), 0);
    ck_assert_int_ne(scep_single_password_read(pool, file, key, &password, &prob), APR_SUCCESS);
}
END_TEST

START_TEST(damaged_password_file_is_event_49)
{
    const char *dir = testutil_tempdir(pool), *file = testutil_path(pool, dir, "p");
    unsigned char key[SCEP_SECRET_KEY_LEN];
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *password = NULL;
    apr_file_t *f = NULL;

    fixed_key(key);
    ck_assert_int_eq(apr_file_open(&f, file, APR_FOPEN_CREATE | APR_FOPEN_WRITE,
                                   APR_FPROT_UREAD | APR_FPROT_UWRITE, pool),
                     APR_SUCCESS);
    ck_assert_int_eq(apr_file_puts("SCEPPW1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", f),
                     APR_SUCCESS);
    apr_file_close(f);
    ck_assert_int_ne(scep_single_password_read(pool, file, key, &password, &prob), APR_SUCCESS);
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAILED_DECRYPT_PASSWORD);
    ck_assert_ptr_nonnull(strstr(prob.text, file));
}
END_TEST

Suite *scep_password_suite(void);

Suite *scep_password_suite(void)
{
    Suite *s = suite_create("password");
    TCase *cache = tcase_create("cache");
    TCase *single = tcase_create("single");

    tcase_add_checked_fixture(cache, setup, teardown);
    tcase_add_test(cache, passwords_are_upper_hex_and_distinct);
    tcase_add_test(cache, length_gives_twice_the_hex_digits);
    tcase_add_test(cache, general_purpose_once);
    tcase_add_test(cache, absent_key_usage_is_general_purpose);
    tcase_add_test(cache, encryption_and_signing_once_each);
    tcase_add_test(cache, same_half_twice_is_event_43);
    tcase_add_test(cache, general_purpose_after_a_half_is_event_43);
    tcase_add_test(cache, other_key_usage_bits);
    tcase_add_test(cache, unknown_expired_and_used_look_alike);
    tcase_add_test(cache, valid_until_just_before_expiry);
    tcase_add_test(cache, full_cache_is_enospc);
    tcase_add_test(cache, max_below_capacity_limits);
    tcase_add_test(cache, expired_entries_make_room);
    tcase_add_test(cache, block_holds_no_password);
    tcase_add_test(cache, move_keeps_passwords_and_retires_the_old_block);
    tcase_add_test(cache, the_same_request_passes_again);
    tcase_add_test(cache, used_up_passwords_give_way);
    tcase_add_test(cache, equal_compares_whole_strings);
    suite_add_tcase(s, cache);

    tcase_add_checked_fixture(single, setup, teardown);
    tcase_add_test(single, seal_round_trip);
    tcase_add_test(single, seal_refuses_empty_and_long);
    tcase_add_test(single, wrong_key_does_not_open);
    tcase_add_test(single, tampered_or_foreign_text_does_not_open);
    tcase_add_test(single, key_file_is_private_and_never_replaced);
    tcase_add_test(single, key_file_of_wrong_size_refused);
    tcase_add_test(single, password_file_round_trip);
    tcase_add_test(single, damaged_password_file_is_event_49);
    suite_add_tcase(s, single);
    return s;
}
