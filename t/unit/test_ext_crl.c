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

/* scep_ext_crl_parse() (an external CA's CRL, verified) and
 * scep_ca_with_crl() (a backend whose crl() is the site's). */

#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <check.h>

#include "scep_ext_crl.h"
#include "testpki.h" /* pool, pki, setup(), teardown() */

static void openssl_free(void *data)
{
    OPENSSL_free(data);
}

/* A CRL of pki's CA (scep_crl_build()) as DER. */
static unsigned char *ca_crl_der(int *len)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_crl_opts_t opts = { EVP_sha256(), 24, 0 };
    apr_array_header_t *revoked = apr_array_make(pool, 1, sizeof(scep_revoked_t));
    scep_revoked_t *entry = apr_array_push(revoked);
    X509_CRL *crl = NULL;
    unsigned char *der = NULL;

    entry->serial = "1234ABCD";
    entry->revoked_at = apr_time_now();
    entry->reason = 1;
    ck_assert_msg(scep_crl_build(pool, pki, revoked, &opts, &crl, &prob) == APR_SUCCESS, "%s",
                  prob.text);
    *len = i2d_X509_CRL(crl, &der);
    ck_assert_int_gt(*len, 0);
    SCEP_OWN(pool, der, openssl_free);
    return der;
}

/* A CRL naming issuer, signed with key. */
static unsigned char *crl_signed_by(const char *issuer, EVP_PKEY *key, int *len)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
    unsigned char *der = NULL;

    ck_assert_ptr_nonnull(crl);
    ck_assert_int_eq(X509_CRL_set_version(crl, 1), 1);
    ck_assert_int_eq(X509_CRL_set_issuer_name(crl, testutil_name(pool, issuer)), 1);
    ck_assert_int_eq(X509_CRL_set1_lastUpdate(crl, now), 1);
    ck_assert_int_gt(X509_CRL_sign(crl, key, EVP_sha256()), 0);
    *len = i2d_X509_CRL(crl, &der);
    ck_assert_int_gt(*len, 0);
    SCEP_OWN(pool, der, openssl_free);
    ASN1_TIME_free(now);
    X509_CRL_free(crl);
    return der;
}

static const char *ca_subject(void)
{
    char *subject = X509_NAME_oneline(X509_get_subject_name(pki->ca_cert), NULL, 0);

    SCEP_OWN(pool, subject, openssl_free);
    return subject;
}

static apr_status_t parse(const unsigned char *data, apr_size_t len, X509_CRL **crl,
                          scep_problem_t *prob)
{
    return scep_ext_crl_parse(pool, data, len, pki->ca_cert, crl, prob);
}

/* The problem of data refused (no CRL). */
static scep_problem_t refused(const unsigned char *data, apr_size_t len)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *crl = NULL;

    ck_assert_int_eq(parse(data, len, &crl, &prob), APR_EINVAL);
    ck_assert_ptr_null(crl);
    return prob;
}

START_TEST(der_crl_of_the_ca_is_accepted)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *crl = NULL;
    int len;
    unsigned char *der = ca_crl_der(&len);

    ck_assert_msg(parse(der, (apr_size_t)len, &crl, &prob) == APR_SUCCESS, "%s", prob.text);
    ck_assert_ptr_nonnull(crl);
    ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1);
}
END_TEST

START_TEST(pem_crl_of_the_ca_is_accepted)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *crl = NULL, *from_der;
    int len;
    const unsigned char *der = ca_crl_der(&len);
    BIO *mem = BIO_new(BIO_s_mem());
    char *pem;
    long pem_len;

    from_der = d2i_X509_CRL(NULL, &der, len);
    ck_assert_ptr_nonnull(from_der);
    ck_assert_int_eq(PEM_write_bio_X509_CRL(mem, from_der), 1);
    pem_len = BIO_get_mem_data(mem, &pem);
    ck_assert_msg(parse((unsigned char *)pem, (apr_size_t)pem_len, &crl, &prob) == APR_SUCCESS,
                  "%s", prob.text);
    ck_assert_int_eq(X509_CRL_cmp(crl, from_der), 0);
    BIO_free(mem);
    X509_CRL_free(from_der);
}
END_TEST

START_TEST(crl_of_another_ca_is_refused)
{
    int len;
    unsigned char *der = crl_signed_by("/CN=Another CA", testutil_rsa_key(pool), &len);
    scep_problem_t prob = refused(der, (apr_size_t)len);

    ck_assert_int_eq(prob.event, SCEP_EVENT_GETCRL_FAILED);
    ck_assert_ptr_nonnull(strstr(prob.text, "issued by another CA"));
}
END_TEST

START_TEST(crl_with_the_ca_name_and_another_key_is_refused)
{
    int len;
    unsigned char *der = crl_signed_by(ca_subject(), testutil_rsa_key(pool), &len);
    scep_problem_t prob = refused(der, (apr_size_t)len);

    ck_assert_ptr_nonnull(strstr(prob.text, "signature"));
}
END_TEST

START_TEST(tampered_crl_is_refused)
{
    int len;
    unsigned char *der = ca_crl_der(&len);

    der[len - 5] ^= 0x01; /* inside the signature value */
    refused(der, (apr_size_t)len);
}
END_TEST

START_TEST(garbage_is_refused)
{
    static const unsigned char junk[] = "-----BEGIN X509 CRL-----\nnot base64\n";

    ck_assert_ptr_nonnull(
        strstr(refused(junk, sizeof(junk) - 1).text, "neither a PEM nor a DER CRL"));
    refused((const unsigned char *)"\x30\x03\x02\x01\x01", 5);
}
END_TEST

static apr_status_t fixed_source(void *baton, apr_pool_t *p, X509_CRL **crl, scep_problem_t *prob)
{
    (void)p;
    (void)prob;
    *crl = baton;
    return APR_SUCCESS;
}

/* fixed_source's scep_crl_source_exit_fn: forgets the CRL it gave. */
static void forget_fixed(void *baton)
{
    X509_CRL_free(baton);
}

static scep_ca_backend_t *builtin(void)
{
    scep_ca_builtin_conf_t bc = { pki, 30, EVP_sha256(), NULL, 24 };

    return scep_ca_builtin(pool, &bc);
}

START_TEST(without_a_source_getcrl_is_refused_with_event_44)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_ca_backend_t *ca = scep_ca_with_crl(pool, builtin(), NULL, NULL, NULL);
    X509_CRL *crl = NULL;

    ck_assert_int_ne(ca->crl(ca, pool, NULL, &crl, &prob), APR_SUCCESS);
    ck_assert_ptr_null(crl);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, SCEP_EVENT_GETCRL_FAILED);
    ck_assert_ptr_nonnull(strstr(prob.text, "no CRL is configured for the external CA"));
    ck_assert_ptr_null(ca->poll);         /* the built-in CA holds nothing */
    ck_assert_ptr_null(ca->process_exit); /* nor keeps anything per process */
}
END_TEST

START_TEST(the_source_answers_getcrl_and_issue_is_the_inner_backends)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *mine = X509_CRL_new(), *crl = NULL;
    scep_ca_backend_t *ca = scep_ca_with_crl(pool, builtin(), fixed_source, forget_fixed, mine);
    EVP_PKEY *key = testutil_rsa_key(pool);
    X509_REQ *csr = testutil_csr(pool, key, "/CN=device", NULL, NULL, NULL, NULL);
    scep_ca_ticket_t ticket = { NULL, 0 };
    X509 *cert = NULL;

    ck_assert_int_eq(ca->crl(ca, pool, NULL, &crl, &prob), APR_SUCCESS);
    ck_assert_ptr_eq(crl, mine);
    ck_assert_msg(ca->issue(ca, pool, csr, NULL, &cert, &ticket, &prob) == APR_SUCCESS, "%s",
                  prob.text);
    ck_assert_int_eq(X509_check_issued(pki->ca_cert, cert), X509_V_OK);
    /* the source frees what it kept: valgrind and LeakSanitizer see mine freed */
    ck_assert_ptr_nonnull(ca->process_exit);
    ca->process_exit(ca);
}
END_TEST

Suite *scep_ext_crl_suite(void);

Suite *scep_ext_crl_suite(void)
{
    Suite *s = suite_create("ext_crl");
    TCase *tc = testutil_case(s, "core", setup, teardown);

    tcase_add_test(tc, der_crl_of_the_ca_is_accepted);
    tcase_add_test(tc, pem_crl_of_the_ca_is_accepted);
    tcase_add_test(tc, crl_of_another_ca_is_refused);
    tcase_add_test(tc, crl_with_the_ca_name_and_another_key_is_refused);
    tcase_add_test(tc, tampered_crl_is_refused);
    tcase_add_test(tc, garbage_is_refused);
    tcase_add_test(tc, without_a_source_getcrl_is_refused_with_event_44);
    tcase_add_test(tc, the_source_answers_getcrl_and_issue_is_the_inner_backends);
    return s;
}
