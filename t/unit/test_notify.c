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

/* The notifications' JSON (scep_notify.c): what an MDM reads of each
 * decision, checked against the certificate and the CSR themselves. Their
 * sending is tested end to end (t/integration/test_notify.py). */

#include <string.h>

#include <check.h>

#include <apr_strings.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "scep_notify.h"
#include "testutil.h"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* The JSON document of facts, parsed back; fails the test when it is not. */
static json_t *body_of(const scep_notify_facts_t *facts)
{
    const char *body = NULL;
    apr_size_t len = 0;
    json_error_t err;
    json_t *doc;

    ck_assert_int_eq(scep_notify_body(pool, facts, &body, &len), APR_SUCCESS);
    ck_assert_uint_eq(strlen(body), len);
    ck_assert_msg(!strchr(body, '\n'), "one line: %s", body);
    doc = json_loadb(body, len, 0, &err);
    ck_assert_msg(doc != NULL, "not JSON (%s): %s", err.text, body);
    return doc;
}

static const char *text_at(json_t *doc, const char *key)
{
    json_t *value = json_object_get(doc, key);

    ck_assert_msg(json_is_string(value), "%s is not a string", key);
    return json_string_value(value);
}

/* The bytes of a base64 value (no line breaks, padded), on the pool. */
static const unsigned char *decoded(json_t *doc, const char *key, int *len)
{
    const char *b64 = text_at(doc, key);
    apr_size_t b64_len = strlen(b64);
    unsigned char *der = apr_palloc(pool, b64_len);
    int n = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)b64_len);

    ck_assert_int_gt(n, 0);
    while (b64_len > 0 && b64[b64_len - 1] == '=') {
        b64_len--;
        n--;
    }
    *len = n;
    return der;
}

static X509_REQ *csr_with_challenge(const char *challenge)
{
    return testutil_csr(pool, testutil_ec_key(pool), "/CN=device-7/O=Notify Tests",
                        "critical,digitalSignature", NULL, NULL, challenge);
}

static scep_request_t request(int type, X509_REQ *csr)
{
    scep_request_t req = { 0 };

    req.message_type = type;
    req.transaction_id = "4A6F3C2B";
    req.csr = csr;
    return req;
}

START_TEST(issued_names_the_certificate_the_device_got)
{
    X509_REQ *csr = csr_with_challenge("0123456789ABCDEF");
    X509 *cert = testutil_issue(pool, csr, NULL, 30);
    scep_request_t req = request(SCEP_MSG_PKCSREQ, csr);
    scep_outcome_t outcome = {
        SCEP_OUTCOME_ISSUED, cert, NULL, { SCEP_FAIL_NONE, 0, NULL }, "Workstation"
    };
    scep_reply_t reply = { SCEP_STATUS_SUCCESS, SCEP_FAIL_BAD_REQUEST, NULL, NULL, NULL };
    scep_notify_facts_t facts = { "scep.example", &req,        &outcome,
                                  &reply,         "192.0.2.7", apr_time_from_sec(1700000000) };
    json_t *doc = body_of(&facts), *c = json_object_get(doc, "x509Certificate");
    const unsigned char *der;
    int len;
    X509 *got;

    ck_assert_str_eq(text_at(doc, "provisionerName"), "scep.example");
    ck_assert_str_eq(text_at(doc, "timestamp"), "2023-11-14T22:13:20Z");
    ck_assert_str_eq(text_at(doc, "outcome"), "issued");
    ck_assert_str_eq(text_at(doc, "scepMessageType"), "PKCSReq");
    ck_assert_str_eq(text_at(doc, "scepTransactionID"), "4A6F3C2B");
    ck_assert_str_eq(text_at(doc, "template"), "Workstation");
    ck_assert_str_eq(text_at(doc, "clientAddress"), "192.0.2.7");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(text_at(c, "serialNumber"),
                     scep_serial_hex(pool, X509_get0_serialNumber(cert)));
    ck_assert_str_eq(text_at(c, "sha1Thumbprint"), scep_cert_thumbprint(pool, cert));
    ck_assert_str_eq(text_at(c, "sha256Thumbprint"), scep_cert_sha256(pool, cert));
    ck_assert_str_eq(text_at(c, "subject"), "O=Notify Tests,CN=device-7");
    ck_assert_str_eq(text_at(c, "issuer"), scep_name_text(pool, X509_get_issuer_name(cert)));
    ck_assert_int_eq(strlen(text_at(c, "notAfter")), strlen("2023-11-14T22:13:20Z"));
    ck_assert_int_eq(strlen(text_at(c, "notBefore")), strlen("2023-11-14T22:13:20Z"));
    der = decoded(c, "raw", &len);
    got = d2i_X509(NULL, &der, len);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(X509_cmp(got, cert), 0);
    X509_free(got);
    ck_assert_ptr_null(json_object_get(doc, "scepFailInfo"));
    ck_assert_ptr_null(json_object_get(doc, "scepErrorDescription"));
    json_decref(doc);
}
END_TEST

/* The webhook's owner is told of the request, not of its password: the
 * CSR is the one the records keep. */
START_TEST(request_goes_without_its_challenge)
{
    X509_REQ *csr = csr_with_challenge("0123456789ABCDEF");
    scep_request_t req = request(SCEP_MSG_PKCSREQ, csr);
    scep_outcome_t outcome = { SCEP_OUTCOME_HELD, NULL, NULL, { SCEP_FAIL_NONE, 0, NULL }, NULL };
    scep_reply_t reply = { SCEP_STATUS_PENDING, SCEP_FAIL_BAD_REQUEST, NULL, NULL, NULL };
    scep_notify_facts_t facts = { "scep.example", &req, &outcome, &reply, NULL, apr_time_now() };
    json_t *doc = body_of(&facts), *r = json_object_get(doc, "x509CertificateRequest");
    const unsigned char *der;
    int len;
    X509_REQ *got;

    ck_assert_str_eq(text_at(doc, "outcome"), "held");
    ck_assert(json_is_null(json_object_get(doc, "template")));
    ck_assert(json_is_null(json_object_get(doc, "clientAddress")));
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(text_at(r, "subject"), "O=Notify Tests,CN=device-7");
    der = decoded(r, "raw", &len);
    got = d2i_X509_REQ(NULL, &der, len);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(X509_REQ_get_attr_by_NID(got, NID_pkcs9_challengePassword, -1), -1);
    ck_assert_int_eq(X509_NAME_cmp(X509_REQ_get_subject_name(got), X509_REQ_get_subject_name(csr)),
                     0);
    ck_assert_int_eq(EVP_PKEY_eq(X509_REQ_get0_pubkey(got), X509_REQ_get0_pubkey(csr)), 1);
    X509_REQ_free(got);
    ck_assert_ptr_null(json_object_get(doc, "x509Certificate"));
    ck_assert_ptr_null(json_object_get(doc, "scepFailInfo"));
    json_decref(doc);
}
END_TEST

START_TEST(refused_says_fail_info_and_text)
{
    scep_request_t req = request(SCEP_MSG_CERTPOLL, NULL);
    scep_outcome_t outcome = {
        SCEP_OUTCOME_REFUSED, NULL, NULL, { SCEP_FAIL_BAD_CERT_ID, 0, "no such request" }, NULL
    };
    scep_reply_t reply = { SCEP_STATUS_FAILURE, SCEP_FAIL_BAD_CERT_ID,
                           "no request with this "
                           "transactionID is known",
                           NULL, NULL };
    scep_notify_facts_t facts = { "scep.example", &req, &outcome, &reply, "::1", apr_time_now() };
    json_t *doc = body_of(&facts);

    ck_assert_str_eq(text_at(doc, "outcome"), "refused");
    ck_assert_str_eq(text_at(doc, "scepMessageType"), "CertPoll");
    ck_assert_str_eq(text_at(doc, "scepFailInfo"), "badCertId");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "scepErrorCode")), 4);
    ck_assert_str_eq(text_at(doc, "scepErrorDescription"),
                     "no request with this transactionID is known");
    ck_assert_ptr_null(json_object_get(doc, "x509CertificateRequest"));
    ck_assert_ptr_null(json_object_get(doc, "x509Certificate"));
    json_decref(doc);
}
END_TEST

/* A fault is a FAILURE to the device: the MDM reads what the device read. */
START_TEST(fault_says_what_the_device_was_answered)
{
    scep_request_t req = request(SCEP_MSG_RENEWALREQ, csr_with_challenge(NULL));
    scep_outcome_t outcome = {
        SCEP_OUTCOME_FAULT, NULL, NULL, { SCEP_FAIL_NONE, 0, NULL }, "Workstation"
    };
    scep_reply_t reply;
    scep_notify_facts_t facts = { "scep.example", &req, &outcome, &reply, NULL, apr_time_now() };
    json_t *doc;

    scep_enroll_reply(pool, NULL, 0, &outcome, &reply);
    doc = body_of(&facts);
    ck_assert_str_eq(text_at(doc, "outcome"), "fault");
    ck_assert_str_eq(text_at(doc, "scepMessageType"), "RenewalReq");
    ck_assert_str_eq(text_at(doc, "scepFailInfo"), "badRequest");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "scepErrorCode")), 2);
    ck_assert_str_eq(text_at(doc, "scepErrorDescription"), reply.fail_text);
    json_decref(doc);
}
END_TEST

/* A device's bytes that are not UTF-8 do not keep the MDM from hearing. */
START_TEST(text_that_is_not_utf8_is_replaced)
{
    scep_request_t req = request(SCEP_MSG_CERTPOLL, NULL);
    scep_outcome_t outcome = { SCEP_OUTCOME_HELD, NULL, NULL, { SCEP_FAIL_NONE, 0, NULL }, NULL };
    scep_reply_t reply = { SCEP_STATUS_PENDING, SCEP_FAIL_BAD_REQUEST, NULL, NULL, NULL };
    scep_notify_facts_t facts = { "scep.example", &req, &outcome, &reply, NULL, apr_time_now() };
    json_t *doc;

    req.transaction_id = "AB\xff"
                         "CD";
    doc = body_of(&facts);
    ck_assert_str_eq(text_at(doc, "scepTransactionID"), "AB\xef\xbf\xbd"
                                                        "CD");
    json_decref(doc);
}
END_TEST

START_TEST(only_decisions_are_notified)
{
    scep_request_t req = request(SCEP_MSG_PKCSREQ, NULL);

    ck_assert(scep_notify_wanted(&req));
    req.message_type = SCEP_MSG_RENEWALREQ;
    ck_assert(scep_notify_wanted(&req));
    req.message_type = SCEP_MSG_CERTPOLL;
    ck_assert(scep_notify_wanted(&req));
    req.message_type = SCEP_MSG_GETCERT;
    ck_assert(!scep_notify_wanted(&req));
    req.message_type = SCEP_MSG_GETCRL;
    ck_assert(!scep_notify_wanted(&req));
}
END_TEST

Suite *scep_notify_suite(void);

Suite *scep_notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = testutil_case(s, "body", setup, teardown);

    tcase_add_test(tc, issued_names_the_certificate_the_device_got);
    tcase_add_test(tc, request_goes_without_its_challenge);
    tcase_add_test(tc, refused_says_fail_info_and_text);
    tcase_add_test(tc, fault_says_what_the_device_was_answered);
    tcase_add_test(tc, text_that_is_not_utf8_is_replaced);
    tcase_add_test(tc, only_decisions_are_notified);
    return s;
}
