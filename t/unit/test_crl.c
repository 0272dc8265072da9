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

/* scep_crl_build(): the built-in CA's CRL. */

#include <string.h>

#include <openssl/x509v3.h>

#include <check.h>

#include "scep.h"
#include "testpki.h" /* pool, pki, setup(), teardown() */

#define HOUR apr_time_from_sec(3600)

static void add_revoked(apr_array_header_t *list, const char *serial, apr_time_t when, int reason)
{
    scep_revoked_t *entry = apr_array_push(list);

    entry->serial = serial;
    entry->revoked_at = when;
    entry->reason = reason;
}

static X509_CRL *build(const apr_array_header_t *revoked, const scep_crl_opts_t *opts)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *crl = NULL;

    ck_assert_msg(scep_crl_build(pool, pki, revoked, opts, &crl, &prob) == APR_SUCCESS, "%s",
                  prob.text);
    ck_assert_ptr_nonnull(crl);
    return crl;
}

static apr_time_t crl_time(const ASN1_TIME *t)
{
    apr_time_t when = 0;

    ck_assert_int_eq(scep_x509_time_get(t, &when), APR_SUCCESS);
    return when;
}

static X509_REVOKED *entry_of(X509_CRL *crl, const char *hex)
{
    STACK_OF(X509_REVOKED) *entries = X509_CRL_get_REVOKED(crl);
    int i;

    for (i = 0; i < sk_X509_REVOKED_num(entries); i++) {
        X509_REVOKED *entry = sk_X509_REVOKED_value(entries, i);
        const char *serial = scep_serial_hex(pool, X509_REVOKED_get0_serialNumber(entry));

        if (serial && !strcmp(serial, hex)) {
            return entry;
        }
    }
    return NULL;
}

/* The entry's reasonCode, -1 when it has none. */
static int reason_of(X509_REVOKED *entry)
{
    ASN1_ENUMERATED *code = X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, NULL, NULL);
    int reason = code ? (int)ASN1_ENUMERATED_get(code) : -1;

    ASN1_ENUMERATED_free(code);
    return reason;
}

START_TEST(empty_crl_is_v2_signed_by_the_ca)
{
    apr_time_t now = apr_time_now();
    X509_CRL *crl = build(NULL, NULL);
    apr_time_t last = crl_time(X509_CRL_get0_lastUpdate(crl));
    apr_time_t next = crl_time(X509_CRL_get0_nextUpdate(crl));

    ck_assert_int_eq(X509_CRL_get_version(crl), 1);
    ck_assert_int_eq(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(pki->ca_cert)),
                     0);
    ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(pki->ca_cert)), 1);
    ck_assert_int_eq(X509_CRL_get_signature_nid(crl), NID_sha256WithRSAEncryption);
    /* no entries: OpenSSL keeps no list at all (num -1) */
    ck_assert_int_le(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 0);
    /* thisUpdate a little in the past for slow clocks; nextUpdate 168 h on */
    ck_assert(last <= now && last > now - HOUR);
    ck_assert(next >= now + 168 * HOUR - apr_time_from_sec(5));
    ck_assert(next <= now + 168 * HOUR + apr_time_from_sec(5));
}
END_TEST

START_TEST(entries_have_serial_date_and_reason)
{
    apr_array_header_t *revoked = apr_array_make(pool, 3, sizeof(scep_revoked_t));
    apr_time_t when = apr_time_from_sec(1700000000);
    X509_CRL *crl;
    X509_REVOKED *entry;

    add_revoked(revoked, "0A1B2C3D4E5F", when, CRL_REASON_KEY_COMPROMISE);
    add_revoked(revoked, "77", when + HOUR, SCEP_CRL_REASON_NONE);
    add_revoked(revoked, "0123456789ABCDEF0123456789ABCDEF", when, CRL_REASON_UNSPECIFIED);
    add_revoked(revoked, "05", when, CRL_REASON_SUPERSEDED);
    crl = build(revoked, NULL);
    ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 4);

    entry = entry_of(crl, "0A1B2C3D4E5F");
    ck_assert_ptr_nonnull(entry);
    ck_assert(crl_time(X509_REVOKED_get0_revocationDate(entry)) == when);
    ck_assert_int_eq(reason_of(entry), CRL_REASON_KEY_COMPROMISE);

    entry = entry_of(crl, "77");
    ck_assert_ptr_nonnull(entry);
    ck_assert(crl_time(X509_REVOKED_get0_revocationDate(entry)) == when + HOUR);
    ck_assert_int_eq(reason_of(entry), -1);

    /* RFC 5280: unspecified is left out rather than written */
    entry = entry_of(crl, "0123456789ABCDEF0123456789ABCDEF");
    ck_assert_ptr_nonnull(entry);
    ck_assert_int_eq(reason_of(entry), -1);

    ck_assert_int_eq(reason_of(entry_of(crl, "05")), CRL_REASON_SUPERSEDED);
    ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(pki->ca_cert)), 1);
}
END_TEST

START_TEST(validity_and_hash_follow_the_options)
{
    scep_crl_opts_t opts = { EVP_sha384(), 24, 0 };
    apr_time_t now = apr_time_now();
    X509_CRL *crl = build(NULL, &opts);
    apr_time_t next = crl_time(X509_CRL_get0_nextUpdate(crl));

    ck_assert_int_eq(X509_CRL_get_signature_nid(crl), NID_sha384WithRSAEncryption);
    ck_assert(next >= now + 24 * HOUR - apr_time_from_sec(5));
    ck_assert(next <= now + 24 * HOUR + apr_time_from_sec(5));
}
END_TEST

START_TEST(crl_number_increases_and_aki_names_the_ca_key)
{
    X509_CRL *first = build(NULL, NULL), *second;
    ASN1_INTEGER *n1 = X509_CRL_get_ext_d2i(first, NID_crl_number, NULL, NULL), *n2;
    AUTHORITY_KEYID *aki = X509_CRL_get_ext_d2i(first, NID_authority_key_identifier, NULL, NULL);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(pki->ca_cert);

    apr_sleep(apr_time_from_msec(2));
    second = build(NULL, NULL);
    n2 = X509_CRL_get_ext_d2i(second, NID_crl_number, NULL, NULL);
    ck_assert_ptr_nonnull(n1);
    ck_assert_ptr_nonnull(n2);
    ck_assert_int_gt(ASN1_INTEGER_cmp(n2, n1), 0);
    ck_assert_ptr_nonnull(aki);
    ck_assert_ptr_nonnull(ski);
    ck_assert_int_eq(ASN1_OCTET_STRING_cmp(aki->keyid, ski), 0);
    ASN1_INTEGER_free(n1);
    ASN1_INTEGER_free(n2);
    AUTHORITY_KEYID_free(aki);
}
END_TEST

static void expect_refusal(const apr_array_header_t *revoked, const char *needle)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_CRL *crl = (X509_CRL *)1;

    ck_assert_int_ne(scep_crl_build(pool, pki, revoked, NULL, &crl, &prob), APR_SUCCESS);
    ck_assert_ptr_null(crl);
    ck_assert_int_eq(prob.event, SCEP_EVENT_GETCRL_FAILED);
    ck_assert_msg(prob.text && strstr(prob.text, needle), "'%s' lacks '%s'", prob.text, needle);
}

START_TEST(refuses_without_ca_key)
{
    scep_pki_t without_key = *pki;

    pki = &without_key;
    pki->ca_key = NULL;
    expect_refusal(NULL, "no CA key");
    ck_assert_int_eq(
        scep_crl_build(pool, pki, NULL, NULL, &(X509_CRL *){ NULL }, &(scep_problem_t){ 0 }),
        APR_ENOTIMPL);
}
END_TEST

START_TEST(refuses_a_serial_that_is_not_hex)
{
    apr_array_header_t *revoked = apr_array_make(pool, 1, sizeof(scep_revoked_t));

    add_revoked(revoked, "not-hex", apr_time_now(), CRL_REASON_KEY_COMPROMISE);
    expect_refusal(revoked, "not-hex");
}
END_TEST

START_TEST(serial_hex_and_reason_codes)
{
    ASN1_INTEGER *serial = ASN1_INTEGER_new();

    ck_assert(ASN1_INTEGER_set_int64(serial, 0xABCDEF));
    ck_assert_str_eq(scep_serial_hex(pool, serial), "ABCDEF");
    ASN1_INTEGER_free(serial);
    ck_assert_ptr_null(scep_serial_hex(pool, NULL));
    ck_assert(scep_crl_reason_valid(CRL_REASON_UNSPECIFIED));
    ck_assert(scep_crl_reason_valid(CRL_REASON_AA_COMPROMISE));
    ck_assert(!scep_crl_reason_valid(7));
    ck_assert(!scep_crl_reason_valid(11));
    ck_assert(!scep_crl_reason_valid(SCEP_CRL_REASON_NONE));
}
END_TEST

Suite *scep_crl_suite(void);

Suite *scep_crl_suite(void)
{
    Suite *s = suite_create("crl");
    TCase *tc = testutil_case(s, "build", setup, teardown);

    tcase_add_test(tc, empty_crl_is_v2_signed_by_the_ca);
    tcase_add_test(tc, entries_have_serial_date_and_reason);
    tcase_add_test(tc, validity_and_hash_follow_the_options);
    tcase_add_test(tc, crl_number_increases_and_aki_names_the_ca_key);
    tcase_add_test(tc, refuses_without_ca_key);
    tcase_add_test(tc, refuses_a_serial_that_is_not_hex);
    tcase_add_test(tc, serial_hex_and_reason_codes);
    return s;
}
