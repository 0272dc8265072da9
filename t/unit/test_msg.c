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
#include "testutil.h"

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
    ASN1_INTEGER *serial = ASN1_INTEGER_new();
    unsigned char *body;
    apr_size_t len;

    ck_assert_int_eq(ASN1_INTEGER_set(serial, 4242), 1);
    body = testmsg_issuer_and_serial(pool, issuer, serial, &len);
    ASN1_INTEGER_free(serial);
    ck_assert_ptr_nonnull(body);

    testmsg_defaults(&opts, body, len);
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

/* A refusal after the transactionID is known: a CertRep FAILURE with this
 * failInfo and event, and a text that contains needle. */
static void expect_failure(const testmsg_device_t *signer, const testmsg_opts_t *opts,
                           const scep_parse_opts_t *popts, scep_fail_info_t fail_info, int event,
                           const char *needle)
{
    apr_size_t len;
    unsigned char *der = testmsg_build(pool, signer, opts, &len);
    scep_request_t *req = NULL;
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    ck_assert_int_eq(scep_request_parse(pool, testmsg_pki(), der, len, popts, &req, &prob),
                     APR_EINVAL);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(prob.fail_info, fail_info);
    ck_assert_int_eq(prob.event, event);
    ck_assert_msg(prob.text && strstr(prob.text, needle), "\"%s\" not in \"%s\"", needle,
                  prob.text ? prob.text : "(null)");
}

/* The device's certificate with another key in it: same issuer and serial,
 * so the SignerInfo names it, but the message was signed with the device's
 * key (a key nobody could sign with has to be refused unverified). */
static X509 *cert_with_key(EVP_PKEY *key)
{
    X509 *cert = X509_dup(dev->cert);

    ck_assert_ptr_nonnull(cert);
    SCEP_OWN(pool, cert, X509_free);
    ck_assert(X509_set_pubkey(cert, key));
    /* signing again is what makes OpenSSL encode the changed certificate */
    ck_assert(X509_sign(cert, dev->key, EVP_sha256()) > 0);
    return cert;
}

/* 300 bits */
#define HUGE_EXPONENT "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"

START_TEST(signer_key_beyond_limits_refused_before_verifying)
{
    testmsg_device_t *explicit_ec =
        testmsg_device_with_key(pool, "explicit", testutil_keygen(pool, "EC", "P-256", 1));
    testmsg_opts_t opts;

    testmsg_defaults(&opts, csr, csr_len);
    opts.carried_cert = cert_with_key(testutil_rsa_public(pool, "RSA", 65536, "10001"));
    expect_failure(dev, &opts, &strict, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                   "the signer certificate's key is refused: an RSA modulus of 65536 bits is "
                   "larger than the 16384 this server accepts");
    opts.carried_cert = cert_with_key(testutil_rsa_public(pool, "RSA", 2048, HUGE_EXPONENT));
    expect_failure(dev, &opts, &strict, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                   "an RSA public exponent of 300 bits is larger than the 256");
    /* a real key, which signed the message itself */
    testmsg_defaults(&opts, csr, csr_len);
    expect_failure(explicit_ec, &opts, &strict, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                   "explicit curve parameters");
}
END_TEST

/* Nothing can be sent back to these keys: refused whatever the message.
 * OpenSSL 3.0 cannot sign CMS with Ed25519, so that certificate is carried
 * by a message the device signed; an RSA-PSS key signs for real (and would
 * verify: a certificate issued that its device could not receive). */
START_TEST(signer_that_cannot_receive_a_reply_is_refused)
{
    const int message_types[] = { SCEP_MSG_PKCSREQ, SCEP_MSG_GETCERT, SCEP_MSG_CERTPOLL };
    testmsg_device_t *pss =
        testmsg_device_with_key(pool, "pss", testutil_keygen(pool, "RSA-PSS", NULL, 0));
    testmsg_opts_t opts;
    size_t i;

    for (i = 0; i < sizeof(message_types) / sizeof(*message_types); i++) {
        testmsg_defaults(&opts, csr, csr_len);
        opts.message_type = message_types[i];
        expect_failure(pss, &opts, &strict, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                       "the signer certificate's key is refused: a reply cannot be encrypted to "
                       "a key of type rsassaPss (only RSA and EC keys can receive one)");
        opts.carried_cert = cert_with_key(testutil_keygen(pool, "ED25519", NULL, 0));
        expect_failure(dev, &opts, &strict, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                       "a reply cannot be encrypted to a key of type ED25519");
    }
}
END_TEST

/* A DER CSR for key, signed by signer with md. */
static unsigned char *csr_signed(EVP_PKEY *key, EVP_PKEY *signer, const EVP_MD *md, apr_size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char *der = NULL, *copy;
    int n;

    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)"keys", -1, -1, 0);
    ck_assert(X509_REQ_set_subject_name(req, name));
    ck_assert(X509_REQ_set_pubkey(req, key));
    ck_assert(X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_ASC,
                                        (const unsigned char *)"s3cret", -1));
    ck_assert(X509_REQ_sign(req, signer, md) > 0);
    ck_assert_int_gt(n = i2d_X509_REQ(req, &der), 0);
    copy = apr_pmemdup(pool, der, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(der);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return copy;
}

START_TEST(csr_key_beyond_limits_refused_before_verifying)
{
    testmsg_opts_t opts;
    apr_size_t len;
    unsigned char *big =
        csr_signed(testutil_rsa_public(pool, "RSA", 65536, "10001"), dev->key, EVP_sha256(), &len);

    testmsg_defaults(&opts, big, len);
    expect_failure(dev, &opts, &strict, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                   "the certificate request's key is refused: an RSA modulus of 65536 bits");
    big = csr_signed(testutil_rsa_public(pool, "RSA", 3072, HUGE_EXPONENT), dev->key, EVP_sha256(),
                     &len);
    testmsg_defaults(&opts, big, len);
    expect_failure(dev, &opts, &strict, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                   "an RSA public exponent of 300 bits");
}
END_TEST

/* The CSR's signature follows the CMS digest's rule (md5_refused_by_default). */
START_TEST(csr_signed_with_md5_refused_by_default)
{
    testmsg_opts_t opts;
    scep_problem_t prob;
    scep_request_t *req;
    apr_size_t len;
    unsigned char *md5 = csr_signed(dev->key, dev->key, EVP_md5(), &len);

    testmsg_defaults(&opts, md5, len);
    expect_failure(dev, &opts, &strict, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                   "the certificate request is signed with MD5, which is not accepted");
    req = parse(&opts, &legacy, APR_SUCCESS, &prob);
    ck_assert_int_eq(req->legacy_alg, 1);
    /* what the CMS layer accepts, the CSR may use too */
    testmsg_defaults(&opts, csr_signed(dev->key, dev->key, EVP_sha1(), &len), len);
    req = parse(&opts, &strict, APR_SUCCESS, &prob);
    ck_assert_int_eq(req->legacy_alg, 0);
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
    tcase_add_test(tc, signer_key_beyond_limits_refused_before_verifying);
    tcase_add_test(tc, signer_that_cannot_receive_a_reply_is_refused);
    tcase_add_test(tc, csr_key_beyond_limits_refused_before_verifying);
    tcase_add_test(tc, csr_signed_with_md5_refused_by_default);
    suite_add_tcase(s, tc);
    return s;
}
