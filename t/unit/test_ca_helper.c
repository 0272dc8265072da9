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

/* The certmonger CA helper backend (scep_ca_helper.c) against real
 * helpers: certmonger's local-submit, and the scripts of t/unit/helpers/
 * for the answers local-submit never gives. */

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/wait.h>

#include <check.h>

#include <apr_strings.h>

#include "scep_ca_helper.h"
#include "scep_x509.h"
#include "testutil.h"

#define LOCAL_SUBMIT "/usr/lib/certmonger/local-submit"
/* Makefile.am gives the absolute path; make tidy, which compiles without
 * the Makefile's flags, this one. */
#ifndef HELPERS_DIR
#define HELPERS_DIR "t/unit/helpers"
#endif

static apr_pool_t *pool;
static const char *dir;      /* local-submit's data directory */
static const char *last_log; /* the newest line logged */

/* What the test's issue() and poll() got from the CA. */
static struct {
    X509 *cert;
    scep_ca_ticket_t ticket;
    scep_problem_t prob;
} got;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
    dir = testutil_tempdir(pool);
    last_log = NULL;
    memset(&got, 0, sizeof(got));
    got.prob.fail_info = SCEP_FAIL_NONE;
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static void keep_log(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    (void)level;
    last_log = apr_pstrdup(pool, msg);
}

static scep_ca_helper_conf_t *conf_of(const char *const *argv)
{
    scep_ca_helper_conf_t *conf = apr_pcalloc(pool, sizeof(*conf));

    conf->argv = argv;
    conf->log = keep_log;
    return conf;
}

static const char *script(const char *name)
{
    return apr_pstrcat(pool, HELPERS_DIR "/", name, NULL);
}

/* A backend running the script name with arguments a1 and a2 (may be
 * NULL), checking results against local-submit's CA. */
static scep_ca_backend_t *script_ca(const char *name, const char *a1, const char *a2,
                                    STACK_OF(X509) *chain)
{
    const char **argv = apr_pcalloc(pool, 4 * sizeof(*argv));
    scep_ca_helper_conf_t *conf;

    argv[0] = script(name);
    argv[1] = a1;
    argv[2] = a1 ? a2 : NULL;
    conf = conf_of(argv);
    conf->ca_chain = chain;
    return scep_ca_helper(pool, conf);
}

/* local-submit's CA certificates through FETCH-ROOTS. */
static scep_ca_backend_t *local_ca(STACK_OF(X509) *chain);

static STACK_OF(X509) *local_roots(void)
{
    STACK_OF(X509) *roots = NULL;

    ck_assert_int_eq(scep_ca_helper_fetch_roots(local_ca(NULL), pool, &roots), APR_SUCCESS);
    return roots;
}

static X509_REQ *new_csr(const char *subject)
{
    return testutil_csr(pool, testutil_rsa_key(pool), subject, NULL, NULL, NULL, NULL);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    while (readdir(d)) {
        n++;
    }
    closedir(d);
    return n;
}

/* No child is left to reap: every helper was waited for. */
static void assert_no_child(void)
{
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}

/* The backend of local-submit in dir, checked against chain. */
static scep_ca_backend_t *local_ca(STACK_OF(X509) *chain)
{
    const char **argv = apr_pcalloc(pool, 4 * sizeof(*argv));
    scep_ca_helper_conf_t *conf;

    argv[0] = LOCAL_SUBMIT;
    argv[1] = "-d";
    argv[2] = dir;
    conf = conf_of(argv);
    conf->ca_chain = chain;
    return scep_ca_helper(pool, conf);
}

/* ca->issue() of csr under tmpl, its answer in got. */
static apr_status_t issue(scep_ca_backend_t *ca, X509_REQ *csr, const scep_template_t *tmpl)
{
    return ca->issue(ca, pool, csr, tmpl, &got.cert, &got.ticket, &got.prob);
}

/* ca->poll() of got.ticket for csr, its answer in got. */
static apr_status_t poll_ticket(scep_ca_backend_t *ca, X509_REQ *csr)
{
    return ca->poll(ca, pool, csr, NULL, &got.ticket, &got.cert, &got.prob);
}

START_TEST(local_submit_issues_for_the_csr_key_chained_to_its_ca)
{
    STACK_OF(X509) *roots = local_roots();
    scep_ca_backend_t *ca = local_ca(roots);
    X509_REQ *csr = new_csr("/CN=device 1");
    X509_CRL *crl = NULL;
    int fds = open_fds(), error;
    const char *reason;

    ck_assert_int_eq(sk_X509_num(roots), 1);
    ck_assert_int_eq(issue(ca, csr, scep_template_new(pool, "Machine")), APR_SUCCESS);
    ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(got.cert), X509_REQ_get0_pubkey(csr)), 1);
    ck_assert_int_eq(scep_x509_verify(got.cert, roots, NULL, 0, &error, &reason), APR_SUCCESS);
    ck_assert_int_eq(open_fds(), fds);
    assert_no_child();
    ck_assert_ptr_null(last_log);
    /* no CRL from a helper yet */
    ck_assert_int_eq(ca->crl(ca, pool, NULL, &crl, &got.prob), APR_ENOTIMPL);
    ck_assert_int_eq(got.prob.event, SCEP_EVENT_GETCRL_FAILED);
}
END_TEST

START_TEST(waiting_gives_a_ticket_and_poll_issues)
{
    STACK_OF(X509) *roots = local_roots();
    scep_ca_backend_t *ca = script_ca("wait-then-issue", dir, NULL, roots);
    X509_REQ *csr = new_csr("/CN=patient");

    ck_assert_int_eq(issue(ca, csr, NULL), APR_EINCOMPLETE);
    ck_assert_ptr_null(got.cert);
    ck_assert_str_eq(got.ticket.text, "cookie 42");
    ck_assert_int_eq(got.ticket.retry_after, 7);
    ck_assert_int_eq(poll_ticket(ca, csr), APR_SUCCESS);
    ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(got.cert), X509_REQ_get0_pubkey(csr)), 1);
    ck_assert_ptr_null(last_log);
}
END_TEST

START_TEST(rejection_is_a_refusal_with_the_helpers_message)
{
    scep_ca_backend_t *ca = script_ca("reject", NULL, NULL, NULL);

    ck_assert_int_eq(issue(ca, new_csr("/CN=no"), scep_template_new(pool, "Web\x1b")), APR_EINVAL);
    ck_assert_int_eq(got.prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(got.prob.event, SCEP_EVENT_FAIL_SUBMIT);
    ck_assert_str_eq(got.prob.text,
                     "the CA rejected the request: profile Web\\x1B is not allowed\\nsee "
                     "the\\tpolicy");
}
END_TEST

/* A helper status that is a fault: logged with tag and words. */
static void assert_fault(const char *name, const char *a1, const char *a2, const char *tag,
                         const char *words)
{
    scep_ca_backend_t *ca = script_ca(name, a1, a2, NULL);
    int fds = open_fds();

    ck_assert_int_eq(issue(ca, new_csr("/CN=f"), NULL), APR_EGENERAL);
    ck_assert_int_eq(got.prob.fail_info, SCEP_FAIL_NONE);
    ck_assert_ptr_null(got.cert);
    ck_assert_ptr_nonnull(last_log);
    ck_assert_msg(!strncmp(last_log, tag, strlen(tag)) && strstr(last_log, words), "%s", last_log);
    ck_assert_int_eq(open_fds(), fds);
    assert_no_child();
}

START_TEST(unreachable_and_underconfigured_are_faults)
{
    assert_fault("unreachable", NULL, NULL, "SCEP284: ",
                 "cannot reach the CA (3): nothing was issued: "
                 "\"connection refused\"");
    assert_fault("underconfigured", NULL, NULL, "SCEP284: ", "is not configured enough (4)");
    assert_fault("no-such-helper", NULL, NULL, "SCEP280: ", "cannot be started");
}
END_TEST

/* The script name, which never answers, stopped after a time limit of 1 s:
 * how long it took. */
static apr_interval_time_t stop_sleeper(const char *name)
{
    scep_ca_backend_t *ca = script_ca(name, NULL, NULL, NULL);
    X509_REQ *csr = new_csr("/CN=slow"); /* key generation is not the helper's time */
    apr_time_t start = apr_time_now();

    ((scep_ca_helper_conf_t *)ca->baton)->time_limit = apr_time_from_sec(1);
    ck_assert_int_eq(issue(ca, csr, NULL), APR_EGENERAL);
    ck_assert_int_eq(got.prob.fail_info, SCEP_FAIL_NONE);
    ck_assert_msg(strstr(last_log, "SCEP281: ") && strstr(last_log, "time limit"), "%s", last_log);
    assert_no_child();
    return apr_time_now() - start;
}

START_TEST(a_helper_past_its_time_is_killed)
{
    /* SIGTERM ends it at once */
    ck_assert_int_lt(stop_sleeper("sleep"), apr_time_from_sec(1) + apr_time_from_sec(2));
}
END_TEST

START_TEST(a_helper_ignoring_sigterm_gets_sigkill)
{
    apr_interval_time_t took = stop_sleeper("stubborn");

    /* the time limit, the 2 s of grace after SIGTERM, then SIGKILL */
    ck_assert_int_ge(took, apr_time_from_sec(3));
    ck_assert_int_lt(took, apr_time_from_sec(5));
}
END_TEST

START_TEST(a_helper_past_its_output_limit_is_stopped)
{
    assert_fault("flood", NULL, NULL, "SCEP281: ", "wrote more than 1048576 bytes");
}
END_TEST

START_TEST(a_certificate_for_another_key_is_refused)
{
    STACK_OF(X509) *roots = local_roots();
    const char *other = testutil_path(pool, dir, "other.csr");
    scep_ca_backend_t *ca;

    ck_assert_int_eq(scep_x509_write_csr(pool, other, new_csr("/CN=other"), NULL), APR_SUCCESS);
    ca = script_ca("other-key", other, dir, roots);
    ck_assert_int_eq(issue(ca, new_csr("/CN=mine"), NULL), APR_EINVAL);
    ck_assert_ptr_null(got.cert);
    ck_assert_int_eq(got.prob.event, SCEP_EVENT_FAIL_SUBMIT);
    ck_assert_str_eq(got.prob.text, "the CA returned a certificate for another key");
}
END_TEST

START_TEST(a_certificate_of_another_ca_is_refused)
{
    const char *first = dir;
    STACK_OF(X509) *elsewhere;
    scep_ca_backend_t *ca = script_ca("wait-then-issue", first, NULL, NULL);

    got.ticket.text = "cookie 42";
    dir = testutil_tempdir(pool); /* another local-submit CA */
    elsewhere = local_roots();
    ((scep_ca_helper_conf_t *)ca->baton)->ca_chain = elsewhere;
    ck_assert_int_eq(poll_ticket(ca, new_csr("/CN=x")), APR_EINVAL);
    ck_assert_ptr_null(got.cert);
    ck_assert_int_eq(got.prob.event, SCEP_EVENT_FAIL_SUBMIT);
    ck_assert_msg(strstr(got.prob.text, "does not chain to the configured CA"), "%s",
                  got.prob.text);
}
END_TEST

START_TEST(the_helpers_environment_is_only_what_is_set)
{
    scep_ca_backend_t *ca = script_ca("print-env", NULL, NULL, NULL);

    setenv("SCEP_SECRET_OF_APACHE", "leaked", 1);
    ck_assert_int_eq(issue(ca, new_csr("/CN=env/O=Example"), scep_template_new(pool, "Machine")),
                     APR_EINVAL);
    ck_assert_str_eq(got.prob.text, "the CA rejected the request: "
                                    "CERTMONGER_CA_PROFILE CERTMONGER_CSR CERTMONGER_KEY_TYPE "
                                    "CERTMONGER_OPERATION CERTMONGER_REQ_SUBJECT CERTMONGER_SPKI "
                                    "PATH PWD \\n"
                                    "PATH=/usr/sbin:/usr/bin:/sbin:/bin\\n"
                                    "OP=SUBMIT\\n"
                                    "SUBJECT=O=Example,CN=env\\n"
                                    "PROFILE=Machine\\n"
                                    "KEY=RSA\\n"
                                    "-----BEGIN CERTIFICATE REQUEST-----\\n"
                                    "SPKI=30820122300D060");
}
END_TEST

/* The certificate of the formats helper printed as format: the one for
 * the CSR's key, whatever else came with it. */
static void assert_issued_as(const char *format)
{
    STACK_OF(X509) *roots = local_roots();
    scep_ca_backend_t *ca = script_ca("formats", dir, format, roots);
    X509_REQ *csr = new_csr("/CN=formats");

    ck_assert_msg(issue(ca, csr, NULL) == APR_SUCCESS, "%s: %s", format,
                  last_log ? last_log : got.prob.text);
    ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(got.cert), X509_REQ_get0_pubkey(csr)), 1);
}

START_TEST(der_and_pkcs7_answers_are_read)
{
    assert_issued_as("der");
    assert_issued_as("pkcs7");
    assert_issued_as("pkcs7-der");
}
END_TEST

START_TEST(a_bare_cookie_is_a_ticket_without_delay)
{
    scep_ca_backend_t *ca = script_ca("formats", dir, "wait", NULL);

    ck_assert_int_eq(issue(ca, new_csr("/CN=w"), NULL), APR_EINCOMPLETE);
    ck_assert_str_eq(got.ticket.text, "only a cookie");
    ck_assert_int_eq(got.ticket.retry_after, 0);
}
END_TEST

START_TEST(waiting_without_a_cookie_or_other_statuses_are_faults)
{
    assert_fault("formats", dir, "empty-wait", "SCEP283: ", "without a cookie");
    assert_fault("formats", dir, "unsupported", "SCEP284: ", "exited with status 6");
}
END_TEST

START_TEST(fetch_roots_reads_every_certificate)
{
    const char **argv = apr_pcalloc(pool, 4 * sizeof(*argv));
    STACK_OF(X509) *roots = NULL;

    argv[0] = script("formats");
    argv[1] = dir;
    argv[2] = testutil_tempdir(pool);
    ck_assert_msg(scep_ca_helper_fetch_roots(scep_ca_helper(pool, conf_of(argv)), pool, &roots) ==
                      APR_SUCCESS,
                  "%s", last_log ? last_log : "(nothing logged)");
    ck_assert_int_eq(sk_X509_num(roots), 2);
    ck_assert_int_ne(X509_cmp(sk_X509_value(roots, 0), sk_X509_value(roots, 1)), 0);
}
END_TEST

START_TEST(fetch_roots_without_a_certificate_fails)
{
    STACK_OF(X509) *roots = NULL;

    ck_assert_int_eq(
        scep_ca_helper_fetch_roots(script_ca("unreachable", NULL, NULL, NULL), pool, &roots),
        APR_EGENERAL);
    ck_assert_ptr_null(roots);
    ck_assert_msg(strstr(last_log, "SCEP285: ") && strstr(last_log, "status 3"), "%s", last_log);
}
END_TEST

START_TEST(identify_says_what_the_helper_is)
{
    const char *text = NULL;

    ck_assert_int_eq(scep_ca_helper_identify(local_ca(NULL), pool, &text), APR_SUCCESS);
    ck_assert_msg(strstr(text, "Local Signing Authority") && !strchr(text, '\n'), "%s", text);
    ck_assert_int_eq(
        scep_ca_helper_identify(script_ca("formats", dir, "unsupported", NULL), pool, &text),
        APR_ENOTIMPL);
    ck_assert_ptr_null(text);
    ck_assert_int_eq(
        scep_ca_helper_identify(script_ca("unreachable", NULL, NULL, NULL), pool, &text),
        APR_EGENERAL);
    ck_assert_msg(strstr(last_log, "SCEP286: ") && strstr(last_log, "status 3"), "%s", last_log);
}
END_TEST

Suite *scep_ca_helper_suite(void);

Suite *scep_ca_helper_suite(void)
{
    Suite *s = suite_create("ca_helper");
    TCase *tc = testutil_case(s, "ca_helper", setup, teardown);

    tcase_add_test(tc, local_submit_issues_for_the_csr_key_chained_to_its_ca);
    tcase_add_test(tc, waiting_gives_a_ticket_and_poll_issues);
    tcase_add_test(tc, rejection_is_a_refusal_with_the_helpers_message);
    tcase_add_test(tc, unreachable_and_underconfigured_are_faults);
    tcase_add_test(tc, a_helper_past_its_time_is_killed);
    tcase_add_test(tc, a_helper_ignoring_sigterm_gets_sigkill);
    tcase_add_test(tc, a_helper_past_its_output_limit_is_stopped);
    tcase_add_test(tc, a_certificate_for_another_key_is_refused);
    tcase_add_test(tc, a_certificate_of_another_ca_is_refused);
    tcase_add_test(tc, the_helpers_environment_is_only_what_is_set);
    tcase_add_test(tc, der_and_pkcs7_answers_are_read);
    tcase_add_test(tc, a_bare_cookie_is_a_ticket_without_delay);
    tcase_add_test(tc, waiting_without_a_cookie_or_other_statuses_are_faults);
    tcase_add_test(tc, fetch_roots_reads_every_certificate);
    tcase_add_test(tc, fetch_roots_without_a_certificate_fails);
    tcase_add_test(tc, identify_says_what_the_helper_is);
    return s;
}
