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

/* Challenge checks (scep_challenge.c): the method lists and the rule that
 * combines them; the program method (scep_challenge_program.c) against
 * the real script t/unit/helpers/challenge. The engine's use of them is in
 * test_enroll.c. */

#include <signal.h>
#include <string.h>

#include <check.h>

#include <apr_strings.h>

#include "scep_challenge_program.h"
#include "testutil.h"

/* Makefile.am gives the absolute path; make tidy, which compiles without
 * the Makefile's flags, this one. */
#ifndef HELPERS_DIR
#define HELPERS_DIR "t/unit/helpers"
#endif
#define PROGRAM HELPERS_DIR "/challenge"

static apr_pool_t *pool;
static apr_array_header_t *lines; /* what the program check logged */
static X509_REQ *csr;
static scep_challenge_facts_t facts;
static scep_problem_t prob;

static void keep_line(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    ck_assert_int_eq(level, SCEP_LOG_ERR);
    APR_ARRAY_PUSH(lines, const char *) = apr_pstrdup(pool, msg);
}

static const char *last_line(void)
{
    return lines->nelts ? APR_ARRAY_IDX(lines, lines->nelts - 1, const char *) : "";
}

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    lines = apr_array_make(pool, 4, sizeof(const char *));
    /* as httpd's MPMs do: a program that closed its input is no signal */
    signal(SIGPIPE, SIG_IGN);
    csr = testutil_csr(pool, testutil_rsa_key(pool), "/CN=dev.example", "digitalSignature", NULL,
                       NULL, "mdm-challenge-1");
    facts = (scep_challenge_facts_t){ .csr = csr,
                                      .challenge = "mdm-challenge-1",
                                      .transaction_id = "TX-1",
                                      .message_type = "PKCSReq",
                                      .template_name = "Devices",
                                      .client_addr = "192.0.2.7",
                                      .key_usage = 0x80,
                                      .spender = "TX-1|key" };
    prob = (scep_problem_t){ SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* ----------------------------------------------------------------------
 * Lists and the rule
 */

START_TEST(list_parsed)
{
    scep_challenge_list_t list = { 0, { SCEP_CHALLENGE_METHOD_PASSWORD } };

    ck_assert_int_eq(scep_challenge_list_add(&list, "Program"), APR_SUCCESS);
    ck_assert_int_eq(scep_challenge_list_add(&list, "password"), APR_SUCCESS);
    ck_assert_int_eq(scep_challenge_list_add(&list, "PROGRAM"), APR_EEXIST);
    ck_assert_int_eq(scep_challenge_list_add(&list, "ldap"), APR_EINVAL);
    ck_assert_int_eq(scep_challenge_list_add(&list, "webhook"), APR_SUCCESS);
    ck_assert_int_eq(list.count, 3);
    ck_assert_int_eq(list.method[0], SCEP_CHALLENGE_METHOD_PROGRAM);
    ck_assert_int_eq(list.method[1], SCEP_CHALLENGE_METHOD_PASSWORD);
    ck_assert_int_eq(list.method[2], SCEP_CHALLENGE_METHOD_WEBHOOK);
    ck_assert_str_eq(scep_challenge_method_name(SCEP_CHALLENGE_METHOD_WEBHOOK), "webhook");
}
END_TEST

/* A password store that knows one password, and counts its uses. */
static int uses;

static apr_status_t use_one(scep_password_store_t *ps, apr_pool_t *p, const char *challenge,
                            int key_usage, const char *spender, scep_problem_t *pr)
{
    (void)ps;
    (void)p;
    uses++;
    ck_assert_int_eq(key_usage, 0x80);
    ck_assert_str_eq(spender, "TX-1|key");
    if (!challenge) {
        return scep_problem(pr, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_NO_PASSWORD, "none");
    }
    return strcmp(challenge, "mdm-challenge-1")
               ? scep_problem(pr, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD,
                              "unknown")
               : APR_SUCCESS;
}

START_TEST(run_by_the_rule)
{
    static const scep_challenge_list_t none = { 0, { SCEP_CHALLENGE_METHOD_PASSWORD } };
    static const scep_challenge_list_t both = {
        2, { SCEP_CHALLENGE_METHOD_PASSWORD, SCEP_CHALLENGE_METHOD_PROGRAM }
    };
    static const char *const deny[] = { PROGRAM, "deny", NULL };
    scep_password_store_t ps = { NULL, use_one, NULL, NULL };
    scep_challenge_program_conf_t pc = { deny, 0, 0, keep_line, NULL };
    scep_challenge_checks_t checks = { .by_method = {
                                           [SCEP_CHALLENGE_METHOD_PASSWORD] =
                                               scep_challenge_password(pool, &ps),
                                           [SCEP_CHALLENGE_METHOD_PROGRAM] =
                                               scep_challenge_program(pool, &pc),
                                       } };
    const char *decider = "unset";

    uses = 0;
    /* no list: nothing asked, allowed */
    ck_assert_int_eq(scep_challenge_run(&none, &checks, pool, &facts, &prob, &decider),
                     APR_SUCCESS);
    ck_assert_ptr_null(decider);
    ck_assert_int_eq(uses, 0);
    /* the password allows */
    ck_assert_int_eq(scep_challenge_run(&both, &checks, pool, &facts, &prob, &decider),
                     APR_SUCCESS);
    ck_assert_str_eq(decider, "password");
    /* its refusal passes to the program, whose refusal is the answer */
    facts.challenge = NULL;
    ck_assert_int_ne(scep_challenge_run(&both, &checks, pool, &facts, &prob, &decider),
                     APR_SUCCESS);
    ck_assert_str_eq(decider, "program");
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, SCEP_EVENT_INVALID_PASSWORD);
    ck_assert_str_eq(prob.text,
                     "the challenge program refused the request: device TX-1 is not enrolled");
    ck_assert_int_eq(uses, 2);
    /* a listed method without its check: a fault, named */
    checks.by_method[SCEP_CHALLENGE_METHOD_PROGRAM] = NULL;
    ck_assert_int_ne(scep_challenge_run(&both, &checks, pool, &facts, &prob, &decider),
                     APR_SUCCESS);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_NONE);
    ck_assert_str_eq(prob.text, "the challenge check program is not configured");
}
END_TEST

/* ----------------------------------------------------------------------
 * The program method
 */

/* The program check running argv ("PROGRAM", what) with these limits. */
static apr_status_t run_program(const char *what, const char *arg, apr_interval_time_t time_limit,
                                apr_size_t output_limit)
{
    const char **argv = apr_pcalloc(pool, 4 * sizeof(*argv));
    scep_challenge_program_conf_t pc = { argv, time_limit, output_limit, keep_line, NULL };
    scep_challenge_check_t *cc;

    argv[0] = PROGRAM;
    argv[1] = what;
    argv[2] = arg;
    cc = scep_challenge_program(pool, &pc);
    ck_assert_str_eq(cc->name, "program");
    return cc->check(cc, pool, &facts, &prob);
}

/* A fault: no failInfo, one line logged. */
static void assert_fault(apr_status_t rv, const char *logged)
{
    ck_assert_int_ne(rv, APR_SUCCESS);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_NONE);
    ck_assert_int_eq(lines->nelts, 1);
    ck_assert_msg(strstr(last_line(), logged), "logged: %s", last_line());
}

START_TEST(program_allows)
{
    ck_assert_int_eq(run_program("allow", NULL, 0, 0), APR_SUCCESS);
    ck_assert_int_eq(lines->nelts, 0);
}
END_TEST

/* What the program wrote into dir/name. */
static char *read_back(const char *dir, const char *name, apr_size_t *len)
{
    const char *why = NULL;
    char *data = NULL;

    ck_assert_msg(scep_read_file(pool, testutil_path(pool, dir, name), 65536, &data, len, &why) ==
                      APR_SUCCESS,
                  "%s", why);
    return data;
}

START_TEST(program_gets_facts_and_csr)
{
    const char *dir = testutil_tempdir(pool);
    unsigned char *der = NULL;
    int len = i2d_X509_REQ(csr, &der);
    char *env, *input;
    apr_size_t env_len, input_len;

    ck_assert_int_eq(run_program("record", dir, 0, 0), APR_SUCCESS);
    env = read_back(dir, "env", &env_len);
    /* exactly these, nothing of the caller's environment */
    ck_assert_str_eq(env, "PATH=/usr/bin:/bin\n"
                          "TRANSACTIONID=TX-1\n"
                          "SCEP_CHALLENGE=mdm-challenge-1\n"
                          "SCEP_MESSAGE_TYPE=PKCSReq\n"
                          "SCEP_TEMPLATE=Devices\n"
                          "SCEP_CLIENT_ADDRESS=192.0.2.7\n");
    /* the CSR in DER, as micromdm's verifier reads it */
    input = read_back(dir, "stdin", &input_len);
    ck_assert_uint_eq(input_len, (apr_size_t)len);
    ck_assert(memcmp(input, der, input_len) == 0);
    OPENSSL_free(der);
    /* no challenge: no SCEP_CHALLENGE at all */
    facts.challenge = NULL;
    ck_assert_int_eq(run_program("record", dir, 0, 0), APR_SUCCESS);
    env = read_back(dir, "env", &env_len);
    ck_assert_ptr_null(strstr(env, "SCEP_CHALLENGE"));
}
END_TEST

START_TEST(program_denies)
{
    ck_assert_int_eq(run_program("deny", NULL, 0, 0), APR_EACCES);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, SCEP_EVENT_INVALID_PASSWORD);
    /* the first line only */
    ck_assert_str_eq(prob.text,
                     "the challenge program refused the request: device TX-1 is not enrolled");
    ck_assert_int_eq(lines->nelts, 0);
    /* stderr when stdout is empty, escaped */
    ck_assert_int_eq(run_program("deny-stderr", NULL, 0, 0), APR_EACCES);
    ck_assert_str_eq(prob.text, "the challenge program refused the request: refused\\tby policy");
}
END_TEST

START_TEST(program_faults)
{
    assert_fault(run_program("fault", NULL, 0, 0),
                 "SCEP290: transaction TX-1: challenge program " PROGRAM
                 " exited with status 2: \"database down\"; nothing was issued");
    ck_assert_str_eq(prob.text, "the challenge program failed");
    lines->nelts = 0;
    assert_fault(run_program("killed", NULL, 0, 0), "was killed by a signal");
    lines->nelts = 0;
    assert_fault(run_program("unknown-word", NULL, 0, 0), "exited with status 3");
}
END_TEST

START_TEST(program_bounded)
{
    apr_time_t start = apr_time_now();

    assert_fault(run_program("sleep", NULL, apr_time_from_msec(500), 0),
                 "ran past its time limit, stopped after");
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_sec(5));
    lines->nelts = 0;
    assert_fault(run_program("flood", NULL, 0, 4096), "wrote more than 4096 bytes");
}
END_TEST

START_TEST(program_cannot_start)
{
    static const char *const argv[] = { HELPERS_DIR "/no-such-program", NULL };
    scep_challenge_program_conf_t pc = { argv, 0, 0, keep_line, NULL };
    scep_challenge_check_t *cc = scep_challenge_program(pool, &pc);

    assert_fault(cc->check(cc, pool, &facts, &prob), "SCEP289: challenge program");
    ck_assert_str_eq(prob.text, "the challenge program cannot be started");
}
END_TEST

Suite *scep_challenge_suite(void);

Suite *scep_challenge_suite(void)
{
    Suite *s = suite_create("challenge");
    TCase *tc = testutil_case(s, "rule", setup, teardown);

    tcase_add_test(tc, list_parsed);
    tcase_add_test(tc, run_by_the_rule);
    tc = testutil_case(s, "program", setup, teardown);
    tcase_add_test(tc, program_allows);
    tcase_add_test(tc, program_gets_facts_and_csr);
    tcase_add_test(tc, program_denies);
    tcase_add_test(tc, program_faults);
    tcase_add_test(tc, program_bounded);
    tcase_add_test(tc, program_cannot_start);
    return s;
}
