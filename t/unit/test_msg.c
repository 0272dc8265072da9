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

/* Parsing pkiMessages: what is accepted, and how each refusal is answered. */

#include <string.h>

#include <apr_pools.h>
#include <apr_strings.h>

#include <check.h>

#include "scep.h"
#include "testmsg.h"

static apr_pool_t *pool;
static testmsg_device_t *dev;
static unsigned char *csr;
static apr_size_t csr_len;
static scep_parse_opts_t strict = { 0, 0 };
static scep_parse_opts_t legacy = { 1, 0 };

/* Once per suite, before Check forks for each test: RSA keys are slow. */
static void setup(void)
{
    apr_pool_create(&pool, NULL);
    ck_assert_ptr_nonnull(testmsg_pki());
    dev = testmsg_device(pool, "device.example");
    csr = testmsg_csr(pool, dev, "device.example", "s3cret", "digitalSignature,keyEncipherment",
                      &csr_len);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static scep_request_t *parse(const testmsg_opts_t *opts, const scep_parse_opts_t *popts,
                             apr_status_t expect_rv, scep_problem_t *prob)
{
    apr_size_t len;
    unsigned char *der = testmsg_build(pool, dev, opts, &len);
    scep_request_t *req = NULL;

    ck_assert_int_eq(scep_request_parse(pool, testmsg_pki(), der, len, popts, &req, prob),
                     expect_rv);
    return req;
}

static void assert_pkcsreq(const scep_request_t *req, int cipher_nid, int md_nid)
{
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(req->message_type, SCEP_MSG_PKCSREQ);
    ck_assert_str_eq(req->transaction_id, "testmsg-txid");
    ck_assert_int_eq(ASN1_STRING_length(req->sender_nonce), 16);
    ck_assert_int_eq(EVP_CIPHER_get_nid(req->cipher), cipher_nid);
    ck_assert_int_eq(EVP_MD_get_type(req->digest), md_nid);
    ck_assert_ptr_nonnull(req->csr);
    ck_assert_str_eq(req->challenge, "s3cret");
    ck_assert_int_eq(req->signer_is_csr_key, 1);
    ck_assert_int_eq(X509_cmp(req->signer_cert, dev->cert), 0);
    ck_assert_int_eq(scep_csr_key_usage(req->csr), 0xa0);
}

START_TEST(pkcsreq_aes128_sha256)
{
    testmsg_opts_t opts;
    scep_problem_t prob;

    testmsg_defaults(&opts, csr, csr_len);
    assert_pkcsreq(parse(&opts, &strict, APR_SUCCESS, &prob), NID_aes_128_cbc, NID_sha256);
}
END_TEST

START_TEST(pkcsreq_other_algorithms)
{
    testmsg_opts_t opts;
    scep_problem_t prob;

    testmsg_defaults(&opts, csr, csr_len);
    opts.cipher = EVP_des_ede3_cbc();
    opts.md = EVP_sha1();
    assert_pkcsreq(parse(&opts, &strict, APR_SUCCESS, &prob), NID_des_ede3_cbc, NID_sha1);
    opts.cipher = EVP_aes_256_cbc();
    opts.md = EVP_sha512();
    assert_pkcsreq(parse(&opts, &strict, APR_SUCCESS, &prob), NID_aes_256_cbc, NID_sha512);
    opts.cipher = EVP_aes_192_cbc();
    opts.oaep = 1;
    assert_pkcsreq(parse(&opts, &strict, APR_SUCCESS, &prob), NID_aes_192_cbc, NID_sha512);
}
END_TEST

START_TEST(pkcsreq_ber)
{
    testmsg_opts_t opts;
    scep_problem_t prob;
    apr_size_t len;
    unsigned char *der;

    testmsg_defaults(&opts, csr, csr_len);
    opts.ber = 1;
    der = testmsg_build(pool, dev, &opts, &len);
    /* 0x30 0x80: a SEQUENCE of indefinite length. */
    ck_assert_int_eq(der[0], 0x30);
    ck_assert_int_eq(der[1], 0x80);
    assert_pkcsreq(parse(&opts, &strict, APR_SUCCESS, &prob), NID_aes_128_cbc, NID_sha256);
}
END_TEST

START_TEST(single_des_refused_by_default)
{
    testmsg_opts_t opts;
    scep_problem_t prob;
    scep_request_t *req;

    testmsg_defaults(&opts, csr, csr_len);
    opts.cipher = EVP_des_cbc();
    opts.md = EVP_sha1();
    req = parse(&opts, &strict, APR_EINVAL, &prob);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_ALG);
    ck_assert_ptr_nonnull(strstr(prob.text, "single DES"));

    req = parse(&opts, &legacy, APR_SUCCESS, &prob);
    ck_assert_int_eq(req->legacy_alg, 1);
    ck_assert_int_eq(EVP_CIPHER_get_nid(req->cipher), NID_des_cbc);
}
END_TEST

START_TEST(md5_refused_by_default)
{
    testmsg_opts_t opts;
    scep_problem_t prob;
    scep_request_t *req;

    testmsg_defaults(&opts, csr, csr_len);
    opts.md = EVP_md5();
    req = parse(&opts, &strict, APR_EINVAL, &prob);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_ALG);
    ck_assert_ptr_nonnull(strstr(prob.text, "MD5"));
    req = parse(&opts, &legacy, APR_SUCCESS, &prob);
    ck_assert_int_eq(req->legacy_alg, 1);
}
END_TEST

START_TEST(garbage_is_http_400)
{
    static const unsigned char junk[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };
    scep_request_t *req = (scep_request_t *)1;
    scep_problem_t prob;

    ck_assert_int_ne(
        scep_request_parse(pool, testmsg_pki(), junk, sizeof(junk), &strict, &req, &prob),
        APR_SUCCESS);
    ck_assert_ptr_null(req);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_NONE);
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAIL_TO_DECODE);
}
END_TEST

START_TEST(envelope_for_another_recipient_is_bad_message_check)
{
    testmsg_opts_t opts;
    scep_problem_t prob;

    testmsg_defaults(&opts, csr, csr_len);
    opts.recipient = dev->cert;
    /* signed and addressed: a FAILURE CertRep can say why */
    ck_assert_ptr_nonnull(parse(&opts, &strict, APR_EINVAL, &prob));
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_MESSAGE_CHECK);
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAIL_TO_DECRYPT_INNER);
}
END_TEST

START_TEST(tampered_signature_is_bad_message_check)
{
    testmsg_opts_t opts;
    scep_problem_t prob;
    scep_request_t *req = NULL;
    apr_size_t len;
    unsigned char *der;

    testmsg_defaults(&opts, csr, csr_len);
    der = testmsg_build(pool, dev, &opts, &len);
    der[len - 10] ^= 0x01; /* inside the signature value, the last field */
    ck_assert_int_ne(scep_request_parse(pool, testmsg_pki(), der, len, &strict, &req, &prob),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_MESSAGE_CHECK);
}
END_TEST

START_TEST(missing_transaction_id_is_http_400)
{
    testmsg_opts_t opts;
    scep_problem_t prob;

    testmsg_defaults(&opts, csr, csr_len);
    opts.transaction_id = NULL;
    ck_assert_ptr_null(parse(&opts, &strict, APR_EINVAL, &prob));
    opts.transaction_id = "tab\there";
    ck_assert_ptr_null(parse(&opts, &strict, APR_EINVAL, &prob));
}
END_TEST

START_TEST(unknown_message_type_is_bad_request)
{
    testmsg_opts_t opts;
    scep_problem_t prob;
    scep_request_t *req;

    testmsg_defaults(&opts, csr, csr_len);
    opts.message_type = 99;
    req = parse(&opts, &strict, APR_EINVAL, &prob);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, SCEP_EVENT_BAD_MESSAGE_TYPE);
}
END_TEST

START_TEST(bad_nonces_are_bad_request)
{
    static const unsigned char big[65] = { 0 };
    testmsg_opts_t opts;
    scep_problem_t prob;
    scep_request_t *req;

    testmsg_defaults(&opts, csr, csr_len);
    opts.nonce_len = 0;
    req = parse(&opts, &strict, APR_EINVAL, &prob);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    opts.nonce = big;
    opts.nonce_len = sizeof(big);
    req = parse(&opts, &strict, APR_EINVAL, &prob);
    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_null(req->sender_nonce); /* never echoed */
    opts.nonce_len = -1;
    req = parse(&opts, &strict, APR_EINVAL, &prob);
    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_null(req->sender_nonce);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
}
END_TEST

START_TEST(signer_key_differs_from_csr_key)
{
    testmsg_device_t *other = testmsg_device(pool, "other");
    testmsg_opts_t opts;
    scep_problem_t prob;
    apr_size_t len;
    unsigned char *der;
    scep_request_t *req;

    testmsg_defaults(&opts, csr, csr_len);
    der = testmsg_build(pool, other, &opts, &len);
    ck_assert_int_eq(scep_request_parse(pool, testmsg_pki(), der, len, &strict, &req, &prob),
                     APR_SUCCESS);
    ck_assert_int_eq(req->signer_is_csr_key, 0);
}
END_TEST

START_TEST(csr_with_bad_signature)
{
    testmsg_opts_t opts;
    scep_problem_t prob;
    scep_request_t *req;
    unsigned char *bad = apr_pmemdup(pool, csr, csr_len);

    bad[csr_len - 5] ^= 0x01;
    testmsg_defaults(&opts, bad, csr_len);
    req = parse(&opts, &strict, APR_EINVAL, &prob);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_MESSAGE_CHECK);
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAIL_DECODE_X509_REQUEST);
}
END_TEST

START_TEST(certpoll_and_getcert_bodies)
{
    testmsg_opts_t opts;
    scep_problem_t prob;
    scep_request_t *req;
    X509_NAME *issuer = X509_get_subject_name(testmsg_pki()->ca_cert);
    PKCS7_ISSUER_AND_SERIAL *ias = PKCS7_ISSUER_AND_SERIAL_new();
    unsigned char *der = NULL, *body;
    int n;

    X509_NAME_set(&ias->issuer, issuer);
    ASN1_INTEGER_set(ias->serial, 4242);
    n = i2d_PKCS7_ISSUER_AND_SERIAL(ias, &der);
    body = apr_pmemdup(pool, der, (apr_size_t)n);
    OPENSSL_free(der);
    PKCS7_ISSUER_AND_SERIAL_free(ias);

    testmsg_defaults(&opts, body, (apr_size_t)n);
    opts.message_type = SCEP_MSG_GETCERT;
    req = parse(&opts, &strict, APR_SUCCESS, &prob);
    ck_assert_int_eq(X509_NAME_cmp(req->issuer, issuer), 0);
    ck_assert_int_eq(ASN1_INTEGER_get(req->serial), 4242);

    /* A CSR is no IssuerAndSubject. */
    testmsg_defaults(&opts, csr, csr_len);
    opts.message_type = SCEP_MSG_CERTPOLL;
    req = parse(&opts, &strict, APR_EINVAL, &prob);
    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_null(req->subject);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
}
END_TEST

Suite *scep_msg_suite(void);

Suite *scep_msg_suite(void)
{
    Suite *s = suite_create("msg");
    TCase *tc = tcase_create("parse");

    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, pkcsreq_aes128_sha256);
    tcase_add_test(tc, pkcsreq_other_algorithms);
    tcase_add_test(tc, pkcsreq_ber);
    tcase_add_test(tc, single_des_refused_by_default);
    tcase_add_test(tc, md5_refused_by_default);
    tcase_add_test(tc, garbage_is_http_400);
    tcase_add_test(tc, envelope_for_another_recipient_is_bad_message_check);
    tcase_add_test(tc, tampered_signature_is_bad_message_check);
    tcase_add_test(tc, missing_transaction_id_is_http_400);
    tcase_add_test(tc, unknown_message_type_is_bad_request);
    tcase_add_test(tc, bad_nonces_are_bad_request);
    tcase_add_test(tc, signer_key_differs_from_csr_key);
    tcase_add_test(tc, csr_with_bad_signature);
    tcase_add_test(tc, certpoll_and_getcert_bodies);
    suite_add_tcase(s, tc);
    return s;
}
