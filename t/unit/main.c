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
 * Runs the Check suites of the core's unit tests and reports them as TAP on
 * stdout (for automake's TAP driver), ending with Check's usual summary
 * line as a TAP comment. Check's environment variables apply: CK_RUN_SUITE
 * and CK_RUN_CASE select what runs, CK_FORK=no runs the tests in-process
 * (for a debugger or valgrind).
 */

#include <stdio.h>
#include <stdlib.h>

#include <apr_general.h>

#include <check.h>

/* One suite per t/unit/test_<name>.c. */
Suite *scep_get_suite(void);
Suite *scep_msg_suite(void);
Suite *scep_reply_suite(void);
Suite *scep_ca_suite(void);
Suite *scep_ca_helper_suite(void);
Suite *scep_ca_cmp_suite(void);
Suite *scep_crl_suite(void);
Suite *scep_pki_suite(void);
Suite *scep_password_suite(void);
Suite *scep_password_sql_suite(void);
Suite *scep_policy_suite(void);
Suite *scep_names_suite(void);
Suite *scep_store_suite(void);
Suite *scep_enroll_suite(void);
Suite *scep_mutex_suite(void);
Suite *scep_util_suite(void);
Suite *scep_ext_crl_suite(void);
Suite *scep_challenge_suite(void);
Suite *scep_notify_suite(void);
Suite *scep_webhook_suite(void);
Suite *scep_stats_suite(void);
Suite *scep_audit_suite(void);
Suite *scep_key_pkcs11_suite(void);
Suite *scep_algs_suite(void);

static Suite *(*const suites[])(void) = {
    scep_get_suite,          scep_msg_suite,       scep_reply_suite,      scep_ca_suite,
    scep_pki_suite,          scep_password_suite,  scep_policy_suite,     scep_names_suite,
    scep_crl_suite,          scep_store_suite,     scep_enroll_suite,     scep_mutex_suite,
    scep_util_suite,         scep_ca_helper_suite, scep_ca_cmp_suite,     scep_ext_crl_suite,
    scep_password_sql_suite, scep_challenge_suite, scep_notify_suite,     scep_webhook_suite,
    scep_stats_suite,        scep_audit_suite,     scep_key_pkcs11_suite, scep_algs_suite,
};

int main(void)
{
    SRunner *runner;
    TestResult **results;
    int run, failures = 0, errors = 0, i;
    size_t n;

    if (apr_initialize() != APR_SUCCESS) {
        fprintf(stderr, "apr_initialize failed\n");
        return EXIT_FAILURE;
    }

    runner = srunner_create(NULL);
    for (n = 0; n < sizeof(suites) / sizeof(suites[0]); n++) {
        srunner_add_suite(runner, suites[n]());
    }
    srunner_set_tap(runner, "-");
    srunner_run_all(runner, CK_SILENT);

    run = srunner_ntests_run(runner);
    results = srunner_results(runner);
    for (i = 0; i < run; i++) {
        switch (tr_rtype(results[i])) {
        case CK_FAILURE:
            failures++;
            break;
        case CK_ERROR:
            errors++;
            break;
        default:
            break;
        }
    }
    free(results);
    srunner_free(runner);

    printf("# %d%%: Checks: %d, Failures: %d, Errors: %d\n",
           run ? (run - failures - errors) * 100 / run : 0, run, failures, errors);
    /* Before exit(), not from atexit(): pools own OpenSSL objects, and
     * OpenSSL's own exit handler would run first. */
    apr_terminate();
    return (run > 0 && failures == 0 && errors == 0) ? EXIT_SUCCESS : EXIT_FAILURE;
}
