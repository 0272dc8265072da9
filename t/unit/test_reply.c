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

/* CertReps as a device reads them: signature, attributes, envelope. */

#include <string.h>

#include <apr_pools.h>

#include <check.h>

#include "scep.h"
#include "testmsg.h"
#include "testutil.h"

static apr_pool_t *pool;
static testmsg_device_t *dev;

/* Once per suite, before Check forks for each test: RSA keys are slow. */
static void setup(void)
{
    apr_pool_create(&pool, NULL);
    ck_assert_ptr_nonnull(testmsg_pki());
    dev = testmsg_device(pool, "device.example");
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* A parsed request as the module would hold it. */
static scep_request_t *request(const EVP_CIPHER *cipher, const EVP_MD *md)
{
    testmsg_opts_t opts;
    apr_size_t csr_len, len;
    unsigned char *csr = testmsg_csr(pool, dev, "device.example", NULL, NULL, &csr_len);
    unsigned char *der;
    scep_parse_opts_t popts = { 1, 0 };
    scep_request_t *req;

    testmsg_defaults(&opts, csr, csr_len);
    opts.cipher = cipher;
    opts.md = md;
    der = testmsg_build(pool, dev, &opts, &len);
    ck_assert_int_eq(scep_request_parse(pool, testmsg_pki(), der, len, &popts, &req, NULL),
                     APR_SUCCESS);
    return req;
}

static testmsg_certrep_t *build_and_read(const scep_request_t *req, const scep_reply_t *reply)
{
    testmsg_certrep_t *rep = apr_pcalloc(pool, sizeof(*rep));
    unsigned char *der;
    apr_size_t len;

    ck_assert_int_eq(scep_certrep_build(pool, testmsg_pki(), req, reply, &der, &len, NULL),
                     APR_SUCCESS);
    ck_assert_int_eq(testmsg_read_certrep(pool, der, len, dev, rep), 1);
    ck_assert_int_eq(rep->signature_ok, 1);
    ck_assert_int_eq(rep->message_type, SCEP_MSG_CERTREP);
    ck_assert_str_eq(rep->transaction_id, req->transaction_id);
    ck_assert_int_eq(ASN1_OCTET_STRING_cmp(rep->recipient_nonce, req->sender_nonce), 0);
    ck_assert_int_eq(ASN1_STRING_length(rep->sender_nonce), 16);
    ck_assert_int_ne(ASN1_OCTET_STRING_cmp(rep->sender_nonce, req->sender_nonce), 0);
    ck_assert_int_eq(rep->digest_nid, EVP_MD_get_type(req->digest));
    return rep;
}

static void assert_success_mirrors(const EVP_CIPHER *cipher, const EVP_MD *md)
{
    scep_request_t *req = request(cipher, md);
    STACK_OF(X509) *certs = sk_X509_new_null();
    scep_reply_t reply = { SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, certs, NULL };
    testmsg_certrep_t *rep;

    sk_X509_push(certs, dev->cert);
    rep = build_and_read(req, &reply);
    ck_assert_int_eq(rep->status, SCEP_STATUS_SUCCESS);
    ck_assert_int_eq(rep->fail_info, -1);
    ck_assert_int_eq(rep->detached, 0);
    ck_assert_int_eq(rep->cipher_nid, EVP_CIPHER_get_nid(cipher));
    ck_assert_ptr_nonnull(rep->certs);
    ck_assert_int_eq(sk_X509_num(rep->certs), 1);
    ck_assert_int_eq(X509_cmp(sk_X509_value(rep->certs, 0), dev->cert), 0);
    sk_X509_free(certs);
}

START_TEST(success_mirrors_request_algorithms)
{
    assert_success_mirrors(EVP_aes_128_cbc(), EVP_sha256());
    assert_success_mirrors(EVP_aes_256_cbc(), EVP_sha512());
    assert_success_mirrors(EVP_des_ede3_cbc(), EVP_sha1());
    assert_success_mirrors(EVP_des_cbc(), EVP_sha1());
}
END_TEST

/* An EC signer gets its reply by key agreement (ECDH), which a device
 * decrypts like the RSA one: scep_key_undeliverable() lets EC pass. (The
 * reader's cipher_nid comes from OpenSSL's PKCS7 API, which cannot read a
 * KeyAgreeRecipientInfo: not checked here.) */
START_TEST(ec_signer_gets_a_reply_it_can_decrypt)
{
    testmsg_device_t *rsa_dev = dev;
    const char *curves[] = { "P-256", "P-384", "P-521" };
    STACK_OF(X509) *certs = sk_X509_new_null();
    scep_reply_t reply = { SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, certs, NULL };
    testmsg_certrep_t *rep;
    size_t i;

    for (i = 0; i < sizeof(curves) / sizeof(*curves); i++) {
        dev =
            testmsg_device_with_key(pool, "ec.example", testutil_keygen(pool, "EC", curves[i], 0));
        sk_X509_push(certs, dev->cert);
        rep = build_and_read(request(EVP_aes_256_cbc(), EVP_sha256()), &reply);
        ck_assert_int_eq(rep->status, SCEP_STATUS_SUCCESS);
        ck_assert_msg(rep->certs && sk_X509_num(rep->certs) == 1, "%s: not decrypted", curves[i]);
        ck_assert_int_eq(X509_cmp(sk_X509_value(rep->certs, 0), dev->cert), 0);
        sk_X509_pop(certs);
    }
    sk_X509_free(certs);
    dev = rsa_dev;
}
END_TEST

/* FAILURE and PENDING carry no pkcsPKIEnvelope, but an (empty) eContent
 * that OpenSSL's PKCS7 verification, used by certmonger, insists on. */
static void assert_no_envelope(const testmsg_certrep_t *rep)
{
    ck_assert_int_eq(rep->detached, 0);
    ck_assert_uint_eq(rep->content_len, 0);
}

START_TEST(failure_carries_fail_info_and_text)
{
    scep_request_t *req = request(EVP_aes_128_cbc(), EVP_sha256());
    scep_reply_t reply = { SCEP_STATUS_FAILURE, SCEP_FAIL_BAD_REQUEST, "no such thing", NULL,
                           NULL };
    testmsg_certrep_t *rep = build_and_read(req, &reply);

    ck_assert_int_eq(rep->status, SCEP_STATUS_FAILURE);
    ck_assert_int_eq(rep->fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_str_eq(rep->fail_text, "no such thing");
    assert_no_envelope(rep);
}
END_TEST

START_TEST(pending_has_no_content)
{
    scep_request_t *req = request(EVP_aes_128_cbc(), EVP_sha256());
    scep_reply_t reply = { SCEP_STATUS_PENDING, SCEP_FAIL_NONE, NULL, NULL, NULL };
    testmsg_certrep_t *rep = build_and_read(req, &reply);

    ck_assert_int_eq(rep->status, SCEP_STATUS_PENDING);
    ck_assert_int_eq(rep->fail_info, -1);
    assert_no_envelope(rep);
}
END_TEST

START_TEST(capabilities)
{
    ck_assert_str_eq(scep_capabilities(pool, 0),
                     "POSTPKIOperation\nSHA-1\nSHA-224\nSHA-256\nSHA-384\nSHA-512\nAES\nDES3\n"
                     "SCEPStandard\n");
    ck_assert_ptr_nonnull(strstr(scep_capabilities(pool, SCEP_CAP_RENEWAL), "\nRenewal\n"));
    ck_assert_ptr_nonnull(
        strstr(scep_capabilities(pool, SCEP_CAP_NEXT_CA_CERT), "\nGetNextCACert\n"));
}
END_TEST

START_TEST(certs_only_has_no_content_and_no_signers)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    unsigned char *der;
    const unsigned char *cursor;
    apr_size_t len;
    CMS_ContentInfo *cms;
    STACK_OF(X509) *back;

    sk_X509_push(certs, dev->cert);
    ck_assert_int_eq(scep_certs_only(pool, certs, NULL, &der, &len), APR_SUCCESS);
    cursor = der;
    cms = d2i_CMS_ContentInfo(NULL, &cursor, (long)len);
    ck_assert_ptr_nonnull(cms);
    ck_assert_int_eq(CMS_is_detached(cms), 1);
    ck_assert_int_eq(sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)), 0);
    back = CMS_get1_certs(cms);
    ck_assert_int_eq(sk_X509_num(back), 1);
    sk_X509_pop_free(back, X509_free);
    CMS_ContentInfo_free(cms);
    sk_X509_free(certs);
}
END_TEST

static STACK_OF(X509) *pair(X509 *first, X509 *second)
{
    STACK_OF(X509) *certs = sk_X509_new_null();

    sk_X509_push(certs, first);
    sk_X509_push(certs, second);
    return certs;
}

static void assert_pair(STACK_OF(X509) *back, X509 *first, X509 *second)
{
    ck_assert_int_eq(sk_X509_num(back), 2);
    ck_assert_int_eq(X509_cmp(sk_X509_value(back, 0), first), 0);
    ck_assert_int_eq(X509_cmp(sk_X509_value(back, 1), second), 0);
}

static void assert_certs_only_keeps(X509 *first, X509 *second)
{
    STACK_OF(X509) *certs = pair(first, second);
    unsigned char *der;
    const unsigned char *cursor;
    apr_size_t len;
    CMS_ContentInfo *cms;
    STACK_OF(X509) *back;

    ck_assert_int_eq(scep_certs_only(pool, certs, NULL, &der, &len), APR_SUCCESS);
    cursor = der;
    cms = d2i_CMS_ContentInfo(NULL, &cursor, (long)len);
    ck_assert_ptr_nonnull(cms);
    back = CMS_get1_certs(cms);
    assert_pair(back, first, second);
    sk_X509_pop_free(back, X509_free);
    CMS_ContentInfo_free(cms);
    sk_X509_free(certs);
}

/* The two certificates differ, so one of the two orders is not the DER
 * order of a SET OF, which OpenSSL's CMS encoder would impose. */
START_TEST(certs_only_keeps_the_order)
{
    assert_certs_only_keeps(dev->cert, testmsg_pki()->ca_cert);
    assert_certs_only_keeps(testmsg_pki()->ca_cert, dev->cert);
}
END_TEST

/* SCEPCertRepIncludeChain On: the issued certificate stays first whichever
 * encodes shorter (clients keep the first). */
static void assert_success_keeps(X509 *first, X509 *second)
{
    scep_request_t *req = request(EVP_aes_128_cbc(), EVP_sha256());
    STACK_OF(X509) *certs = pair(first, second);
    scep_reply_t reply = { SCEP_STATUS_SUCCESS, SCEP_FAIL_NONE, NULL, certs, NULL };
    testmsg_certrep_t *rep = build_and_read(req, &reply);

    ck_assert_int_eq(rep->status, SCEP_STATUS_SUCCESS);
    assert_pair(rep->certs, first, second);
    sk_X509_free(certs);
}

START_TEST(success_keeps_the_order_of_the_chain)
{
    assert_success_keeps(dev->cert, testmsg_pki()->ca_cert);
    assert_success_keeps(testmsg_pki()->ca_cert, dev->cert);
}
END_TEST

Suite *scep_reply_suite(void);

Suite *scep_reply_suite(void)
{
    Suite *s = suite_create("reply");
    TCase *tc = tcase_create("certrep");

    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, success_mirrors_request_algorithms);
    tcase_add_test(tc, ec_signer_gets_a_reply_it_can_decrypt);
    tcase_add_test(tc, failure_carries_fail_info_and_text);
    tcase_add_test(tc, pending_has_no_content);
    tcase_add_test(tc, capabilities);
    tcase_add_test(tc, certs_only_has_no_content_and_no_signers);
    tcase_add_test(tc, certs_only_keeps_the_order);
    tcase_add_test(tc, success_keeps_the_order_of_the_chain);
    suite_add_tcase(s, tc);
    return s;
}
