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
 * PKCS#11 keys (scep_key_pkcs11.c) against a real SoftHSM2 token made for
 * each test in its own SOFTHSM2_CONF directory (softhsm2-util), with an
 * RSA key made in the token by OpenSC's pkcs11-tool: loaded by its URI
 * through scep_read_private_key(), it signs what its public half verifies,
 * in this process and in a child forked after the load (Apache's parent
 * loads, its children sign); a wrong PIN, a missing object, a PIN in the
 * URI and a missing module are refused with a text that never holds the
 * PIN. Skipped (passing, with a note) where SoftHSM2 is not installed.
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include <openssl/evp.h>

#include "scep.h"
#include "scep_key_pkcs11.h"
#include "testutil.h"

#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define PIN "4711-pin"
#define URI "pkcs11:token=scep-unit;object=ca-key;type=private"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static int have_softhsm(void)
{
    return access(SOFTHSM_MODULE, R_OK) == 0 && access("/usr/bin/softhsm2-util", X_OK) == 0 &&
           access("/usr/bin/pkcs11-tool", X_OK) == 0;
}

/* Runs a program (no shell), its output discarded; it must succeed. */
static void run(const char *const argv[])
{
    int status = -1;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) {
            _exit(126);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "failed: %s", argv[0]);
}

/* The token and its key, made by SoftHSM2's and OpenSC's tools. */
static const char *const init_token[] = {
    "softhsm2-util", "--init-token", "--free", "--label", "scep-unit",
    "--so-pin",      "0000-so",      "--pin",  PIN,       NULL
};
static const char *const make_key[] = {
    "pkcs11-tool",  "--module",   SOFTHSM_MODULE, "--token-label",
    "scep-unit",    "--login",    "--pin",        PIN,
    "--keypairgen", "--key-type", "rsa:2048",     "--label",
    "ca-key",       "--id",       "01",           NULL
};

/* A token "scep-unit" (user PIN PIN) holding an RSA key "ca-key", in a
 * directory of the test's own. */
static void make_token(apr_pool_t *p)
{
    const char *dir = testutil_tempdir(p);
    const char *conf = testutil_path(p, dir, "softhsm2.conf");
    const char *tokens = testutil_path(p, dir, "tokens");
    FILE *f;

    ck_assert_int_eq(apr_dir_make(tokens, APR_FPROT_OS_DEFAULT, p), APR_SUCCESS);
    f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens);
    fclose(f);
    setenv("SOFTHSM2_CONF", conf, 1);
    run(init_token);
    run(make_key);
}

/* A signature by key over data that the key's public half verifies. */
static int signs(EVP_PKEY *key)
{
    static const unsigned char data[] = "a CertRep's signed attributes";
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok;

    ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
         EVP_DigestSign(ctx, sig, &sig_len, data, sizeof(data)) == 1;
    EVP_MD_CTX_free(ctx);
    ctx = EVP_MD_CTX_new();
    ok = ok && ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
         EVP_DigestVerify(ctx, sig, sig_len, data, sizeof(data)) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

START_TEST(uri_attributes_are_decoded)
{
    const char *value = NULL;

    ck_assert(scep_key_is_pkcs11("pkcs11:object=a"));
    ck_assert(scep_key_is_pkcs11("PKCS11:object=a"));
    ck_assert(!scep_key_is_pkcs11("/etc/scep/ca.key"));
    ck_assert(!scep_key_is_pkcs11(NULL));
    ck_assert_int_eq(scep_pkcs11_uri_attr(pool, "pkcs11:token=My%20HSM;object=ca", "token", &value),
                     APR_SUCCESS);
    ck_assert_str_eq(value, "My HSM");
    ck_assert_int_eq(
        scep_pkcs11_uri_attr(pool, "pkcs11:token=t;object=ca?pin-value=1", "object", &value),
        APR_SUCCESS);
    ck_assert_str_eq(value, "ca");
    ck_assert_int_eq(scep_pkcs11_uri_attr(pool, "pkcs11:token=t?module-path=/m&pin-value=1",
                                          "pin-value", &value),
                     APR_SUCCESS);
    ck_assert_str_eq(value, "1");
    ck_assert_int_eq(scep_pkcs11_uri_attr(pool, "pkcs11:token=t", "object", &value), APR_SUCCESS);
    ck_assert_ptr_null(value);
    /* a name that only ends like the attribute's is another attribute */
    ck_assert_int_eq(scep_pkcs11_uri_attr(pool, "pkcs11:xobject=a", "object", &value), APR_SUCCESS);
    ck_assert_ptr_null(value);
    ck_assert_int_eq(scep_pkcs11_uri_attr(pool, "pkcs11:object=a%2", "object", &value), APR_EINVAL);
    ck_assert_int_eq(scep_pkcs11_uri_attr(pool, "file:object=a", "object", &value), APR_EINVAL);
}
END_TEST

START_TEST(uris_with_a_pin_or_without_an_object_are_refused)
{
    const char *why;

    ck_assert_ptr_null(scep_key_pkcs11_unfit(pool, URI));
    ck_assert_ptr_null(scep_key_pkcs11_unfit(pool, "pkcs11:id=%01"));
    why = scep_key_pkcs11_unfit(pool, "pkcs11:object=ca?pin-value=secret-pin");
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_nonnull(strstr(why, "PIN file"));
    ck_assert_ptr_null(strstr(why, "secret-pin"));
    ck_assert_ptr_nonnull(scep_key_pkcs11_unfit(pool, "pkcs11:object=ca?pin-source=file:/p"));
    ck_assert_ptr_nonnull(scep_key_pkcs11_unfit(pool, "pkcs11:object=ca?module-path=/x.so"));
    ck_assert_ptr_nonnull(strstr(scep_key_pkcs11_unfit(pool, "pkcs11:token=t"), "no object"));
    ck_assert_ptr_nonnull(scep_key_pkcs11_unfit(pool, "pkcs11:object=ca;type=cert"));
    ck_assert_ptr_nonnull(scep_key_pkcs11_unfit(pool, "pkcs11:object=c%zz"));
}
END_TEST

/* What a check in a process of its own says: NULL when it held. */
#define CHECK(cond, text) \
    do { \
        if (!(cond)) { \
            return (text); \
        } \
    } while (0)

/* The token's tests run in a process of their own: SoftHSM2 and libp11
 * keep a module initialized and its login for the life of a process
 * (under valgrind every test runs in one), and each test has a token of
 * its own. The body's failure text comes back through a pipe. */
static void in_own_process(const char *(*body)(apr_pool_t *p))
{
    char text[512] = "";
    int fds[2], status = -1;
    ssize_t got;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        apr_pool_t *p = NULL;
        const char *failed;

        close(fds[0]);
        apr_pool_create(&p, NULL);
        failed = body(p);
        if (failed && write(fds[1], failed, strlen(failed)) < 0) {
            _exit(2);
        }
        apr_pool_destroy(p); /* the token's directory */
        _exit(failed ? 1 : 0);
    }
    close(fds[1]);
    got = read(fds[0], text, sizeof(text) - 1);
    text[got > 0 ? got : 0] = '\0';
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
                  text[0] ? text : "the test's process failed");
}

static const char *signs_here_and_after_a_fork(apr_pool_t *p)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    EVP_PKEY *key = NULL;
    int status = -1, i, ok = 1;
    pid_t pid;

    make_token(p);
    CHECK(scep_key_pkcs11_configure(p, SOFTHSM_MODULE, PIN, &prob) == APR_SUCCESS, prob.text);
    CHECK(scep_read_private_key(p, URI, &key, &prob) == APR_SUCCESS, prob.text);
    CHECK(EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA, "not an RSA key");
    CHECK(EVP_PKEY_get_bits(key) == 2048, "not 2048 bits");
    CHECK(signs(key), "the key does not sign");
    /* Apache's parent loads the key, its children sign: libp11 logs in
     * again in the child, with the PIN it kept. */
    pid = fork();
    CHECK(pid >= 0, "no fork");
    if (pid == 0) {
        for (i = 0; i < 3; i++) {
            ok &= signs(key);
        }
        _exit(ok ? 0 : 1);
    }
    CHECK(waitpid(pid, &status, 0) == pid, "no child");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the forked child could not sign");
    CHECK(signs(key), "the key does not sign after the fork");
    return NULL;
}

START_TEST(a_token_key_signs_here_and_after_a_fork)
{
    if (!have_softhsm()) {
        fprintf(stderr, "# skipped: SoftHSM2 or OpenSC not installed\n");
        return;
    }
    in_own_process(signs_here_and_after_a_fork);
}
END_TEST

static const char *wrong_pin_and_missing_object(apr_pool_t *p)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    EVP_PKEY *key = NULL;

    make_token(p);
    CHECK(scep_key_pkcs11_configure(p, SOFTHSM_MODULE, "9999-wrong", &prob) == APR_SUCCESS,
          prob.text);
    CHECK(scep_read_private_key(p, URI, &key, &prob) != APR_SUCCESS, "a wrong PIN was taken");
    CHECK(!key, "a key despite the failure");
    CHECK(strstr(prob.text, URI), prob.text);
    CHECK(!strstr(prob.text, "9999-wrong"), "the PIN is in the message");
    CHECK(scep_key_pkcs11_configure(p, SOFTHSM_MODULE, PIN, &prob) == APR_SUCCESS, prob.text);
    CHECK(scep_read_private_key(p, "pkcs11:token=scep-unit;object=nothing-here", &key, &prob) !=
              APR_SUCCESS,
          "a missing object was found");
    CHECK(strstr(prob.text, "object=nothing-here"), prob.text);
    CHECK(!strstr(prob.text, PIN), "the PIN is in the message");
    return NULL;
}

START_TEST(a_wrong_pin_or_a_missing_object_is_refused_without_the_pin)
{
    if (!have_softhsm()) {
        fprintf(stderr, "# skipped: SoftHSM2 or OpenSC not installed\n");
        return;
    }
    in_own_process(wrong_pin_and_missing_object);
}
END_TEST

START_TEST(a_uri_needs_a_module_and_no_pin)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    EVP_PKEY *key = NULL;

    /* nothing configured: each test's configuration goes with its pool */
    ck_assert_int_ne(scep_read_private_key(pool, URI, &key, &prob), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(prob.text, "SCEPPKCS11Module"));
    ck_assert_int_ne(scep_read_private_key(pool, "pkcs11:object=ca?pin-value=1234", &key, &prob),
                     APR_SUCCESS);
    ck_assert_ptr_null(strstr(prob.text, "1234"));
}
END_TEST

START_TEST(the_pin_file_is_private_and_read_to_its_first_line)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    const char *dir = testutil_tempdir(pool);
    const char *file = testutil_path(pool, dir, "pin");
    const char *pin = NULL;
    FILE *f = fopen(file, "w");

    ck_assert_ptr_nonnull(f);
    fputs(PIN "\r\nsecond line\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(file, 0640), 0);
    ck_assert_int_eq(scep_key_pkcs11_read_pin(pool, file, &pin, &prob), APR_EACCES);
    ck_assert_ptr_null(pin);
    ck_assert_int_eq(chmod(file, 0600), 0);
    ck_assert_int_eq(scep_key_pkcs11_read_pin(pool, file, &pin, &prob), APR_SUCCESS);
    ck_assert_str_eq(pin, PIN);
}
END_TEST

Suite *scep_key_pkcs11_suite(void);
Suite *scep_key_pkcs11_suite(void)
{
    Suite *s = suite_create("key_pkcs11");
    TCase *tc = testutil_case(s, "uri", setup, teardown);

    tcase_add_test(tc, uri_attributes_are_decoded);
    tcase_add_test(tc, uris_with_a_pin_or_without_an_object_are_refused);
    tcase_add_test(tc, a_uri_needs_a_module_and_no_pin);
    tcase_add_test(tc, the_pin_file_is_private_and_read_to_its_first_line);
    tc = testutil_case(s, "softhsm", setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_token_key_signs_here_and_after_a_fork);
    tcase_add_test(tc, a_wrong_pin_or_a_missing_object_is_refused_without_the_pin);
    return s;
}
