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

/* scep_ca_issue(): the built-in CA. */

#include <string.h>

#include <apr_thread_proc.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include <check.h>

#include "scep.h"
#include "testutil.h"

#define DAY apr_time_from_sec(86400)
#define OID_CLIENT_AUTH "1.3.6.1.5.5.7.3.2"
#define THREADS 4
#define ISSUES_PER_THREAD 10

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static X509 *issue(const scep_pki_t *pki, X509_REQ *csr, const scep_issue_opts_t *opts)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509 *cert = NULL;

    ck_assert_msg(scep_ca_issue(pool, pki, csr, opts, &cert, &prob) == APR_SUCCESS, "%s",
                  prob.text);
    ck_assert_ptr_nonnull(cert);
    return cert;
}

static void expect_refusal(const scep_pki_t *pki, X509_REQ *csr, int event, const char *needle)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509 *cert = (X509 *)1;

    ck_assert_int_ne(scep_ca_issue(pool, pki, csr, NULL, &cert, &prob), APR_SUCCESS);
    ck_assert_ptr_null(cert);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, event);
    ck_assert_msg(prob.text && strstr(prob.text, needle), "\"%s\" not in \"%s\"", needle,
                  prob.text ? prob.text : "(null)");
}

/* A simple-mode PKI: its CA key issues. */
static const scep_pki_t *test_pki(void)
{
    return testutil_pki_load(pool, testutil_pki_create(pool), 0);
}

static X509_EXTENSION *ext_of(X509 *cert, int nid)
{
    int at = X509_get_ext_by_NID(cert, nid, -1);

    ck_assert_msg(at >= 0, "no %s", OBJ_nid2sn(nid));
    return X509_get_ext(cert, at);
}

static X509_EXTENSION *csr_ext_of(X509_REQ *csr, int nid)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    int at = X509v3_get_ext_by_NID(exts, nid, -1);
    X509_EXTENSION *ext;

    ck_assert_msg(at >= 0, "CSR has no %s", OBJ_nid2sn(nid));
    ext = X509_EXTENSION_dup(sk_X509_EXTENSION_value(exts, at));
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    SCEP_OWN(pool, ext, X509_EXTENSION_free);
    return ext;
}

static void assert_same_ext(X509_EXTENSION *got, X509_EXTENSION *want)
{
    ck_assert_int_eq(X509_EXTENSION_get_critical(got), X509_EXTENSION_get_critical(want));
    ck_assert_int_eq(
        ASN1_OCTET_STRING_cmp(X509_EXTENSION_get_data(got), X509_EXTENSION_get_data(want)), 0);
}

static apr_time_t time_of(const ASN1_TIME *t)
{
    apr_time_t when = 0;

    ck_assert_int_eq(scep_x509_time_get(t, &when), APR_SUCCESS);
    return when;
}

static void assert_near(apr_time_t got, apr_time_t want)
{
    apr_time_t diff = got > want ? got - want : want - got;

    ck_assert_msg(diff <= apr_time_from_sec(5), "%" APR_TIME_T_FMT " s off", apr_time_sec(diff));
}

START_TEST(copies_subject_and_requested_extensions)
{
    const scep_pki_t *pki = test_pki();
    X509_REQ *csr = testutil_csr(pool, testutil_rsa_key(pool), "/CN=device 1/O=Example",
                                 "critical,digitalSignature,keyEncipherment", "clientAuth",
                                 "DNS:dev1.example,IP:192.0.2.1", "secret");
    X509 *cert = issue(pki, csr, NULL);

    ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(cert), X509_REQ_get_subject_name(csr)), 0);
    ck_assert_int_eq(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(pki->ca_cert)),
                     0);
    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    ck_assert(scep_x509_has_eku(cert, OID_CLIENT_AUTH));
    assert_same_ext(ext_of(cert, NID_key_usage), csr_ext_of(csr, NID_key_usage));
    ck_assert_int_eq(X509_EXTENSION_get_critical(ext_of(cert, NID_key_usage)), 1);
    assert_same_ext(ext_of(cert, NID_ext_key_usage), csr_ext_of(csr, NID_ext_key_usage));
    assert_same_ext(ext_of(cert, NID_subject_alt_name), csr_ext_of(csr, NID_subject_alt_name));
    ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(cert), X509_REQ_get0_pubkey(csr)), 1);
    ck_assert_int_eq(X509_get_version(cert), X509_VERSION_3);
}
END_TEST

/* The request's SubjectPublicKeyInfo is the certificate's, byte for byte,
 * RSA and EC alike, and the certificate's key is usable as one. */
static void assert_same_spki(EVP_PKEY *key)
{
    X509_REQ *csr = testutil_csr(pool, key, "/CN=spki", NULL, NULL, NULL, NULL);
    X509 *cert = issue(test_pki(), csr, NULL);
    unsigned char *want = NULL, *got = NULL;
    int want_len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(csr), &want);
    int got_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &got);

    ck_assert_int_gt(want_len, 0);
    ck_assert_int_eq(got_len, want_len);
    ck_assert_mem_eq(got, want, (size_t)want_len);
    ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(cert), key), 1);
    OPENSSL_free(want);
    OPENSSL_free(got);
}

START_TEST(copies_the_public_key_as_requested)
{
    assert_same_spki(testutil_rsa_key(pool));
    assert_same_spki(testutil_ec_key(pool));
}
END_TEST

START_TEST(adds_no_key_usage_when_none_requested)
{
    const scep_pki_t *pki = test_pki();
    X509 *cert = issue(
        pki, testutil_csr(pool, testutil_rsa_key(pool), "/CN=bare", NULL, NULL, NULL, NULL), NULL);

    ck_assert_int_lt(X509_get_ext_by_NID(cert, NID_key_usage, -1), 0);
    ck_assert_int_lt(X509_get_ext_by_NID(cert, NID_ext_key_usage, -1), 0);
    ck_assert_int_lt(X509_get_ext_by_NID(cert, NID_subject_alt_name, -1), 0);
    /* basicConstraints, SKI, AKI */
    ck_assert_int_eq(X509_get_ext_count(cert), 3);
}
END_TEST

/* basicConstraints CA:TRUE is never copied; keyCertSign is refused when
 * the request's usages would be copied, and left out under a template. */
START_TEST(ignores_requested_ca_rights)
{
    const scep_pki_t *pki = test_pki();
    EVP_PKEY *key = testutil_rsa_key(pool);
    scep_x509_exts_t exts = { "critical,CA:TRUE", "critical,keyCertSign", NULL, NULL };
    scep_issue_opts_t opts = { 0, NULL, scep_template_new(pool, "Default"), NULL };
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_REQ *csr = NULL;
    X509 *cert;

    ck_assert_int_eq(scep_x509_csr_create(pool, key, testutil_name(pool, "/CN=greedy"), &exts, NULL,
                                          &csr, &prob),
                     APR_SUCCESS);
    expect_refusal(pki, csr, SCEP_EVENT_FAIL_CERT_REQ, "keyCertSign");
    cert = issue(pki, csr, &opts);
    ck_assert_int_eq(X509_check_ca(cert), 0);
    ck_assert_int_eq(X509_get_extension_flags(cert) & EXFLAG_CA, 0);
    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    /* keyUsage, extendedKeyUsage, basicConstraints, SKI, AKI */
    ck_assert_int_eq(X509_get_ext_count(cert), 5);
}
END_TEST

START_TEST(serials_are_random_positive_128_bit)
{
    const scep_pki_t *pki = test_pki();
    X509_REQ *csr = testutil_csr(pool, testutil_rsa_key(pool), "/CN=same", NULL, NULL, NULL, NULL);
    BIGNUM *serials[20];
    int longest = 0;
    int i, j;

    for (i = 0; i < 20; i++) {
        serials[i] = ASN1_INTEGER_to_BN(X509_get0_serialNumber(issue(pki, csr, NULL)), NULL);
        ck_assert_ptr_nonnull(serials[i]);
        ck_assert(!BN_is_negative(serials[i]) && !BN_is_zero(serials[i]));
        ck_assert_int_le(BN_num_bits(serials[i]), 128);
        longest = BN_num_bits(serials[i]) > longest ? BN_num_bits(serials[i]) : longest;
        for (j = 0; j < i; j++) {
            ck_assert_int_ne(BN_cmp(serials[i], serials[j]), 0);
        }
    }
    /* All 20 shorter than 121 bits: odds 2^-140 for 127 random bits. */
    ck_assert_int_gt(longest, 120);
    for (i = 0; i < 20; i++) {
        BN_free(serials[i]);
    }
}
END_TEST

START_TEST(validity_starts_before_now_and_lasts_the_days)
{
    const scep_pki_t *pki = test_pki();
    scep_issue_opts_t opts = { 30, NULL };
    apr_time_t now = apr_time_now();
    X509 *cert = issue(
        pki, testutil_csr(pool, testutil_rsa_key(pool), "/CN=v", NULL, NULL, NULL, NULL), &opts);

    assert_near(time_of(X509_get0_notBefore(cert)), now - apr_time_from_sec(300));
    assert_near(time_of(X509_get0_notAfter(cert)), now + 30 * DAY);
}
END_TEST

/* scepctl setup's CA and RA certificates: dated back like issued ones, so a
 * check right after setup cannot find them not yet valid (time() may still
 * be in the second before apr_time_now()'s). */
START_TEST(self_made_ca_and_ra_start_before_now)
{
    EVP_PKEY *ca_key = testutil_rsa_key(pool);
    X509_NAME *name = testutil_name(pool, "/CN=Setup CA");
    apr_time_t now = apr_time_now();
    X509 *ca = NULL, *ra = NULL;

    ck_assert_int_eq(scep_x509_ca_create(pool, ca_key, name, 10, &ca, NULL), APR_SUCCESS);
    ck_assert_int_eq(scep_x509_ra_create(pool, ca, ca_key, testutil_rsa_key(pool),
                                         testutil_name(pool, "/CN=Setup RA"), SCEP_RA_SIGN, 5, &ra,
                                         NULL),
                     APR_SUCCESS);
    assert_near(time_of(X509_get0_notBefore(ca)), now - SCEP_X509_CLOCK_SKEW);
    assert_near(time_of(X509_get0_notAfter(ca)), now - SCEP_X509_CLOCK_SKEW + 10 * DAY);
    assert_near(time_of(X509_get0_notBefore(ra)), now - SCEP_X509_CLOCK_SKEW);
    assert_near(time_of(X509_get0_notAfter(ra)), now + 5 * DAY);
}
END_TEST

START_TEST(default_validity_is_365_days)
{
    const scep_pki_t *pki = test_pki();
    apr_time_t now = apr_time_now();
    X509 *cert = issue(
        pki, testutil_csr(pool, testutil_rsa_key(pool), "/CN=v", NULL, NULL, NULL, NULL), NULL);

    assert_near(time_of(X509_get0_notAfter(cert)), now + 365 * DAY);
}
END_TEST

START_TEST(validity_capped_at_ca_not_after)
{
    EVP_PKEY *ca_key = testutil_rsa_key(pool);
    scep_pki_t pki = { 0 };
    scep_issue_opts_t opts = { 365, NULL };
    X509 *cert;

    pki.ca_key = ca_key;
    pki.ca_cert = testutil_cert(pool, "/CN=Short CA", ca_key, scep_x509_ca_exts(), 0,
                                apr_time_now() + 10 * DAY, NULL, NULL);
    cert = issue(&pki, testutil_csr(pool, testutil_rsa_key(pool), "/CN=v", NULL, NULL, NULL, NULL),
                 &opts);
    ck_assert_int_eq(ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(pki.ca_cert)),
                     0);
}
END_TEST

START_TEST(key_identifiers_link_to_the_ca)
{
    const scep_pki_t *pki = test_pki();
    X509 *cert = issue(
        pki, testutil_csr(pool, testutil_rsa_key(pool), "/CN=ids", NULL, NULL, NULL, NULL), NULL);
    unsigned char hash[EVP_MAX_MD_SIZE];
    unsigned int hash_len = 0;
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);

    ck_assert_ptr_nonnull(X509_get0_subject_key_id(pki->ca_cert));
    ck_assert_ptr_nonnull(X509_get0_authority_key_id(cert));
    ck_assert_int_eq(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert),
                                           X509_get0_subject_key_id(pki->ca_cert)),
                     0);
    /* RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits */
    ck_assert_int_eq(X509_pubkey_digest(cert, EVP_sha1(), hash, &hash_len), 1);
    ck_assert_ptr_nonnull(ski);
    ck_assert_int_eq(ASN1_STRING_length(ski), (int)hash_len);
    ck_assert_mem_eq(ASN1_STRING_get0_data(ski), hash, hash_len);
}
END_TEST

START_TEST(verifies_against_the_ca)
{
    const scep_pki_t *pki = test_pki();
    X509 *cert = issue(
        pki, testutil_csr(pool, testutil_ec_key(pool), "/CN=ec device", NULL, NULL, NULL, NULL),
        NULL);
    STACK_OF(X509) *anchors = sk_X509_new_null();
    const char *reason = NULL;

    sk_X509_push(anchors, pki->ca_cert);
    ck_assert_int_eq(X509_verify(cert, X509_get0_pubkey(pki->ca_cert)), 1);
    ck_assert_msg(scep_x509_verify(cert, anchors, NULL, 0, NULL, &reason) == APR_SUCCESS, "%s",
                  reason);
    ck_assert_int_eq(X509_check_issued(pki->ca_cert, cert), X509_V_OK);
    ck_assert_int_eq(X509_get_signature_nid(cert), NID_sha256WithRSAEncryption);
    sk_X509_free(anchors);
}
END_TEST

START_TEST(sha1_is_selectable)
{
    const scep_pki_t *pki = test_pki();
    scep_issue_opts_t opts = { 0, EVP_sha1() };
    X509 *cert = issue(
        pki, testutil_csr(pool, testutil_rsa_key(pool), "/CN=old", NULL, NULL, NULL, NULL), &opts);

    ck_assert_int_eq(X509_get_signature_nid(cert), NID_sha1WithRSAEncryption);
    ck_assert_int_eq(X509_verify(cert, X509_get0_pubkey(pki->ca_cert)), 1);
}
END_TEST

START_TEST(refuses_without_ca_key)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_t pki = { 0 };

    pki.ca_cert = tp->ca_cert;
    expect_refusal(&pki, testutil_csr(pool, tp->ra_sign_key, "/CN=x", NULL, NULL, NULL, NULL),
                   SCEP_EVENT_FAIL_SUBMIT, "no CA key");
}
END_TEST

START_TEST(refuses_when_ca_expired)
{
    EVP_PKEY *ca_key = testutil_rsa_key(pool);
    apr_time_t now = apr_time_now();
    scep_pki_t pki = { 0 };

    pki.ca_key = ca_key;
    pki.ca_cert = testutil_cert(pool, "/CN=Old CA", ca_key, scep_x509_ca_exts(), now - 20 * DAY,
                                now - DAY, NULL, NULL);
    expect_refusal(&pki, testutil_csr(pool, ca_key, "/CN=x", NULL, NULL, NULL, NULL),
                   SCEP_EVENT_FAIL_SUBMIT, "expired");
}
END_TEST

START_TEST(refuses_duplicate_requested_extension)
{
    const scep_pki_t *pki = test_pki();
    EVP_PKEY *key = testutil_rsa_key(pool);
    X509_REQ *csr = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    int i;

    SCEP_OWN(pool, csr, X509_REQ_free);
    for (i = 0; i < 2; i++) {
        sk_X509_EXTENSION_push(exts,
                               X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "digitalSignature"));
    }
    ck_assert(X509_REQ_set_subject_name(csr, testutil_name(pool, "/CN=twice")));
    ck_assert(X509_REQ_set_pubkey(csr, key));
    ck_assert(X509_REQ_add_extensions(csr, exts));
    ck_assert(X509_REQ_sign(csr, key, EVP_sha256()) > 0);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    expect_refusal(pki, csr, SCEP_EVENT_FAIL_DECODE_X509_REQUEST, "twice");
}
END_TEST

typedef struct issuer_job_t {
    const scep_pki_t *pki;
    X509_REQ *csr;
    BIGNUM *serials[ISSUES_PER_THREAD];
    int failures;
} issuer_job_t;

/* Issues on its own pool, as a worker thread does with its request pool.
 * Returns rather than calling apr_thread_exit(): its pthread_exit() trips
 * AddressSanitizer in sanitizer builds, and the join needs no status. */
static void *APR_THREAD_FUNC issue_many(apr_thread_t *thread, void *data)
{
    issuer_job_t *job = data;
    apr_pool_t *p;
    X509 *cert;
    int i;

    apr_pool_create(&p, NULL);
    for (i = 0; i < ISSUES_PER_THREAD; i++) {
        cert = NULL;
        if (scep_ca_issue(p, job->pki, job->csr, NULL, &cert, NULL) != APR_SUCCESS ||
            X509_verify(cert, X509_get0_pubkey(job->pki->ca_cert)) != 1) {
            job->failures++;
        }
        job->serials[i] = cert ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL) : NULL;
    }
    apr_pool_destroy(p);
    (void)thread;
    return NULL;
}

START_TEST(issues_concurrently)
{
    const scep_pki_t *pki = test_pki();
    issuer_job_t jobs[THREADS];
    apr_thread_t *threads[THREADS];
    apr_status_t thread_rv;
    int i, j, k;

    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < THREADS; i++) {
        jobs[i].pki = pki;
        jobs[i].csr = testutil_csr(pool, testutil_ec_key(pool), "/CN=busy", "digitalSignature",
                                   NULL, NULL, NULL);
        ck_assert_int_eq(apr_thread_create(&threads[i], NULL, issue_many, &jobs[i], pool),
                         APR_SUCCESS);
    }
    for (i = 0; i < THREADS; i++) {
        apr_thread_join(&thread_rv, threads[i]);
        ck_assert_int_eq(jobs[i].failures, 0);
    }
    for (i = 0; i < THREADS * ISSUES_PER_THREAD; i++) {
        for (j = i + 1; j < THREADS * ISSUES_PER_THREAD; j++) {
            k = BN_cmp(jobs[i / ISSUES_PER_THREAD].serials[i % ISSUES_PER_THREAD],
                       jobs[j / ISSUES_PER_THREAD].serials[j % ISSUES_PER_THREAD]);
            ck_assert_int_ne(k, 0);
        }
    }
    for (i = 0; i < THREADS * ISSUES_PER_THREAD; i++) {
        BN_free(jobs[i / ISSUES_PER_THREAD].serials[i % ISSUES_PER_THREAD]);
    }
}
END_TEST

Suite *scep_ca_suite(void);

Suite *scep_ca_suite(void)
{
    Suite *s = suite_create("ca");
    TCase *tc = tcase_create("issue");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, copies_subject_and_requested_extensions);
    tcase_add_test(tc, copies_the_public_key_as_requested);
    tcase_add_test(tc, adds_no_key_usage_when_none_requested);
    tcase_add_test(tc, ignores_requested_ca_rights);
    tcase_add_test(tc, serials_are_random_positive_128_bit);
    tcase_add_test(tc, validity_starts_before_now_and_lasts_the_days);
    tcase_add_test(tc, default_validity_is_365_days);
    tcase_add_test(tc, self_made_ca_and_ra_start_before_now);
    tcase_add_test(tc, validity_capped_at_ca_not_after);
    tcase_add_test(tc, key_identifiers_link_to_the_ca);
    tcase_add_test(tc, verifies_against_the_ca);
    tcase_add_test(tc, sha1_is_selectable);
    tcase_add_test(tc, refuses_without_ca_key);
    tcase_add_test(tc, refuses_when_ca_expired);
    tcase_add_test(tc, refuses_duplicate_requested_extension);
    tcase_add_test(tc, issues_concurrently);
    suite_add_tcase(s, tc);
    return s;
}
