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

/* scep_pki_load(): the "Service Startup" rules and the GetCACert body. */

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include <apr_strings.h>

#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include <check.h>

#include "scep.h"
#include "testutil.h"

#define DAY apr_time_from_sec(86400)

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* Loads conf and expects a failure with event, whose text mentions
 * every one of the NULL-terminated needles. */
static void expect_failure(const scep_pki_config_t *conf, int event, ...)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_pki_t *pki = (scep_pki_t *)1;
    const char *needle;
    va_list ap;

    ck_assert_int_ne(scep_pki_load(pool, conf, &pki, &prob), APR_SUCCESS);
    ck_assert_ptr_null(pki);
    ck_assert_ptr_nonnull(prob.text);
    ck_assert_msg(prob.event == event, "event %d, expected %d: %s", prob.event, event, prob.text);
    va_start(ap, event);
    while ((needle = va_arg(ap, const char *)) != NULL) {
        ck_assert_msg(strstr(prob.text, needle) != NULL, "\"%s\" not in \"%s\"", needle, prob.text);
    }
    va_end(ap);
}

/* Adds an RA candidate certificate (written as name.crt with a new key as
 * name.key) issued by the test CA. */
static X509 *add_ra(scep_pki_config_t *conf, const testutil_pki_t *tp, const char *name,
                    const scep_x509_exts_t *exts, apr_time_t not_before, apr_time_t not_after)
{
    EVP_PKEY *key = testutil_rsa_key(pool);
    X509 *cert = testutil_cert(pool, "/CN=Extra RA", key, exts, not_before, not_after, tp->ca_cert,
                               tp->ca_key);

    testutil_add_ra(conf,
                    testutil_write_cert(pool, tp->dir, apr_pstrcat(pool, name, ".crt", NULL), cert),
                    testutil_write_key(pool, tp->dir, apr_pstrcat(pool, name, ".key", NULL), key));
    return cert;
}

/* Candidates: the test PKI's encryption RA and one signing RA cert. */
static scep_pki_config_t *config_with_sign_ra(const testutil_pki_t *tp,
                                              const scep_x509_exts_t *exts)
{
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 0);

    testutil_add_ra(conf, tp->ra_enc_cert_file, tp->ra_enc_key_file);
    add_ra(conf, tp, "odd-sign", exts, 0, 0);
    return conf;
}

static apr_time_t not_after_of(X509 *cert)
{
    apr_time_t when = 0;

    ck_assert_int_eq(scep_x509_time_get(X509_get0_notAfter(cert), &when), APR_SUCCESS);
    return when;
}

/* The certificates of a GetCACert x-x509-ca-ra-cert body, in order. */
static STACK_OF(X509) *bundle_certs(const scep_pki_t *pki)
{
    const unsigned char *der = pki->getcacert_body;
    PKCS7 *p7 = d2i_PKCS7(NULL, &der, (long)pki->getcacert_len);
    STACK_OF(X509) *certs;

    ck_assert_ptr_nonnull(p7);
    ck_assert_ptr_eq(der, pki->getcacert_body + pki->getcacert_len);
    ck_assert(PKCS7_type_is_signed(p7));
    /* degenerate: no signers, no content */
    ck_assert_int_eq(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
    ck_assert(PKCS7_type_is_data(p7->d.sign->contents));
    ck_assert_ptr_null(p7->d.sign->contents->d.data);
    certs = X509_chain_up_ref(p7->d.sign->cert);
    PKCS7_free(p7);
    return certs;
}

static void assert_same_cert(X509 *got, X509 *want, const char *what)
{
    ck_assert_msg(got && X509_cmp(got, want) == 0, "%s is not the expected certificate", what);
}

START_TEST(loads_separate_ra)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_t *pki = testutil_pki_load(pool, tp, 1);
    apr_time_t sign_end = not_after_of(tp->ra_sign_cert);
    apr_time_t enc_end = not_after_of(tp->ra_enc_cert);

    ck_assert_int_eq(pki->separate_ra, 1);
    assert_same_cert(pki->ca_cert, tp->ca_cert, "CA");
    assert_same_cert(pki->ra_sign_cert, tp->ra_sign_cert, "RA signing");
    assert_same_cert(pki->ra_enc_cert, tp->ra_enc_cert, "RA encryption");
    ck_assert_int_eq(EVP_PKEY_eq(pki->ra_sign_key, tp->ra_sign_key), 1);
    ck_assert_int_eq(EVP_PKEY_eq(pki->ra_enc_key, tp->ra_enc_key), 1);
    ck_assert_int_eq(EVP_PKEY_eq(pki->ca_key, tp->ca_key), 1);
    ck_assert_int_eq(sk_X509_num(pki->chain), 0);
    ck_assert_str_eq(pki->ca_thumbprint, scep_cert_thumbprint(pool, tp->ca_cert));
    ck_assert_uint_eq(strlen(pki->ca_thumbprint), 40);
    ck_assert(pki->ra_not_after == (sign_end < enc_end ? sign_end : enc_end));
    ck_assert_int_eq(pki->ra_skipped->nelts, 0);
}
END_TEST

static const char *sha256_of(const unsigned char *data, int len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(EVP_Digest(data, (size_t)len, md, &md_len, EVP_sha256(), NULL), 1);
    return scep_hex(pool, md, md_len);
}

/* scep_key_id(): SHA-256 of the whole DER SubjectPublicKeyInfo;
 * scep_key_bits_id(): of the subjectPublicKey bits alone. */
static void assert_key_id(const X509_PUBKEY *spki)
{
    unsigned char *der = NULL;
    const unsigned char *bits = NULL;
    int len = i2d_X509_PUBKEY(spki, &der), bits_len = 0;

    ck_assert_str_eq(scep_key_id(pool, spki), sha256_of(der, len));
    OPENSSL_free(der);
    ck_assert_int_eq(X509_PUBKEY_get0_param(NULL, &bits, &bits_len, NULL, spki), 1);
    ck_assert_str_eq(scep_key_bits_id(pool, spki), sha256_of(bits, bits_len));
}

static X509_REQ *decoded_csr(EVP_PKEY *key)
{
    X509_REQ *csr = testutil_csr(pool, key, "/CN=key id", NULL, NULL, NULL, NULL);
    unsigned char *der = NULL;
    const unsigned char *cursor;
    int len = i2d_X509_REQ(csr, &der);
    X509_REQ *decoded;

    cursor = der;
    decoded = d2i_X509_REQ(NULL, &cursor, len);
    OPENSSL_free(der);
    ck_assert_ptr_nonnull(decoded);
    SCEP_OWN(pool, decoded, X509_REQ_free);
    return decoded;
}

START_TEST(key_id_is_the_spki_digest)
{
    EVP_PKEY *rsa = testutil_rsa_key(pool), *ec = testutil_ec_key(pool);
    scep_pki_t *pki = testutil_pki_load(pool, testutil_pki_create(pool), 0);

    assert_key_id(X509_REQ_get_X509_PUBKEY(decoded_csr(rsa)));
    assert_key_id(X509_REQ_get_X509_PUBKEY(decoded_csr(ec)));
    assert_key_id(X509_get_X509_PUBKEY(pki->ca_cert));
    ck_assert_ptr_null(scep_key_id(pool, NULL));
    ck_assert_ptr_null(scep_key_bits_id(pool, NULL));
}
END_TEST

/* A copy of spki whose AlgorithmIdentifier has other parameters around
 * the same key bits. */
static X509_PUBKEY *with_params(const X509_PUBKEY *spki, int nid, int ptype, void *pval)
{
    X509_PUBKEY *copy = X509_PUBKEY_dup(spki);
    X509_ALGOR *algor = NULL;

    ck_assert_ptr_nonnull(copy);
    SCEP_OWN(pool, copy, X509_PUBKEY_free);
    ck_assert_int_eq(X509_PUBKEY_get0_param(NULL, NULL, NULL, &algor, copy), 1);
    ck_assert_int_eq(X509_ALGOR_set0(algor, OBJ_nid2obj(nid), ptype, pval), 1);
    return copy;
}

/* The explicit parameters of P-256 as an ASN1_STRING (a SEQUENCE). */
static ASN1_STRING *explicit_p256(void)
{
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    ASN1_STRING *params = ASN1_STRING_new();
    unsigned char *der = NULL;
    int len;

    EC_GROUP_set_asn1_flag(group, OPENSSL_EC_EXPLICIT_CURVE);
    len = i2d_ECPKParameters(group, &der);
    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(ASN1_STRING_set(params, der, len), 1);
    OPENSSL_free(der);
    EC_GROUP_free(group);
    return params;
}

/* The same EC point under another curve, or under P-256 spelt out as
 * explicit parameters, is another key id (it would poll the P-256 key's
 * transactions otherwise), though the bits are the same. */
START_TEST(key_id_binds_the_domain_parameters)
{
    const X509_PUBKEY *named = X509_REQ_get_X509_PUBKEY(decoded_csr(testutil_ec_key(pool)));
    const X509_PUBKEY *others[] = {
        with_params(named, NID_X9_62_id_ecPublicKey, V_ASN1_OBJECT, OBJ_nid2obj(NID_secp256k1)),
        with_params(named, NID_X9_62_id_ecPublicKey, V_ASN1_SEQUENCE, explicit_p256()),
    };
    apr_size_t i;

    for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        ck_assert_str_ne(scep_key_id(pool, others[i]), scep_key_id(pool, named));
        ck_assert_str_eq(scep_key_bits_id(pool, others[i]), scep_key_bits_id(pool, named));
    }
}
END_TEST

/* rsaEncryption's NULL parameters written or left out: one key, one id;
 * other parameters are another id. */
START_TEST(key_id_reads_absent_rsa_parameters_as_null)
{
    const X509_PUBKEY *with_null = X509_REQ_get_X509_PUBKEY(decoded_csr(testutil_rsa_key(pool)));
    X509_PUBKEY *without = with_params(with_null, NID_rsaEncryption, V_ASN1_UNDEF, NULL);
    ASN1_STRING *seq = ASN1_STRING_new();

    ck_assert_int_eq(ASN1_STRING_set(seq, "\x30\x00", 2), 1);
    ck_assert_str_eq(scep_key_id(pool, without), scep_key_id(pool, with_null));
    ck_assert_str_ne(
        scep_key_id(pool, with_params(with_null, NID_rsaEncryption, V_ASN1_SEQUENCE, seq)),
        scep_key_id(pool, with_null));
}
END_TEST

/* scep_csr_digest(): the same for the same request signed again or with
 * another password; another for another subject, extension or key. */
START_TEST(csr_digest_names_the_request)
{
    EVP_PKEY *key = testutil_ec_key(pool), *other = testutil_ec_key(pool);
    const char *first = scep_csr_digest(
        pool, testutil_csr(pool, key, "/CN=digest", NULL, NULL, "DNS:a.example", "one"));

    ck_assert_ptr_nonnull(first);
    ck_assert_str_eq(scep_csr_digest(pool, testutil_csr(pool, key, "/CN=digest", NULL, NULL,
                                                        "DNS:a.example", "one")),
                     first);
    ck_assert_str_eq(scep_csr_digest(pool, testutil_csr(pool, key, "/CN=digest", NULL, NULL,
                                                        "DNS:a.example", "two")),
                     first);
    ck_assert_str_ne(scep_csr_digest(pool, testutil_csr(pool, key, "/CN=other", NULL, NULL,
                                                        "DNS:a.example", "one")),
                     first);
    ck_assert_str_ne(scep_csr_digest(pool, testutil_csr(pool, key, "/CN=digest", NULL, NULL,
                                                        "DNS:b.example", "one")),
                     first);
    ck_assert_str_ne(scep_csr_digest(pool, testutil_csr(pool, key, "/CN=digest", "digitalSignature",
                                                        NULL, "DNS:a.example", "one")),
                     first);
    ck_assert_str_ne(scep_csr_digest(pool, testutil_csr(pool, other, "/CN=digest", NULL, NULL,
                                                        "DNS:a.example", "one")),
                     first);
    ck_assert_ptr_null(scep_csr_digest(pool, NULL));
}
END_TEST

START_TEST(loads_simple_mode)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_t *pki = testutil_pki_load(pool, tp, 0);
    unsigned char *der = NULL;
    int len = i2d_X509(tp->ca_cert, &der);

    ck_assert_int_eq(pki->separate_ra, 0);
    ck_assert_ptr_eq(pki->ra_sign_cert, pki->ca_cert);
    ck_assert_ptr_eq(pki->ra_enc_cert, pki->ca_cert);
    ck_assert_ptr_eq(pki->ra_sign_key, pki->ca_key);
    ck_assert_ptr_eq(pki->ra_enc_key, pki->ca_key);
    ck_assert(pki->ra_not_after == not_after_of(tp->ca_cert));
    ck_assert_str_eq(pki->getcacert_type, "application/x-x509-ca-cert");
    ck_assert_uint_eq(pki->getcacert_len, (apr_size_t)len);
    ck_assert_mem_eq(pki->getcacert_body, der, (size_t)len);
    OPENSSL_free(der);
}
END_TEST

START_TEST(simple_mode_needs_ca_key)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 0);

    conf->ca_key_file = NULL;
    expect_failure(conf, SCEP_EVENT_FAILED_RA_CERT, "no CA key", NULL);
}
END_TEST

START_TEST(refuses_group_readable_key)
{
    testutil_pki_t *tp = testutil_pki_create(pool);

    ck_assert_int_eq(chmod(tp->ca_key_file, 0640), 0);
    expect_failure(testutil_pki_config(pool, tp, 1), SCEP_EVENT_FAILED_CA_CERT, tp->ca_key_file,
                   "0640", NULL);
}
END_TEST

START_TEST(refuses_world_readable_ra_key)
{
    testutil_pki_t *tp = testutil_pki_create(pool);

    ck_assert_int_eq(chmod(tp->ra_enc_key_file, 0604), 0);
    expect_failure(testutil_pki_config(pool, tp, 1), SCEP_EVENT_FAILED_RA_CERT, tp->ra_enc_key_file,
                   "0604", NULL);
}
END_TEST

START_TEST(refuses_missing_ca_cert)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 1);

    conf->ca_cert_file = testutil_path(pool, tp->dir, "missing.crt");
    expect_failure(conf, SCEP_EVENT_FAILED_CA_CERT, conf->ca_cert_file, NULL);
}
END_TEST

START_TEST(refuses_mismatched_ca_key)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 1);

    conf->ca_key_file = tp->ra_sign_key_file;
    expect_failure(conf, SCEP_EVENT_FAILED_CA_CERT, "does not match", tp->ra_sign_key_file, NULL);
}
END_TEST

START_TEST(refuses_ra_with_wrong_key_usage)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_x509_exts_t exts = *scep_x509_ra_exts(SCEP_RA_SIGN);

    exts.key_usage = "critical,keyAgreement";
    expect_failure(config_with_sign_ra(tp, &exts), SCEP_EVENT_FAILED_RA_CERT,
                   "no valid RA signing certificate", "odd-sign.crt", "keyUsage", NULL);
}
END_TEST

START_TEST(refuses_ra_without_eku)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_x509_exts_t exts = *scep_x509_ra_exts(SCEP_RA_SIGN);

    exts.ext_key_usage = "clientAuth";
    expect_failure(config_with_sign_ra(tp, &exts), SCEP_EVENT_FAILED_RA_CERT, "odd-sign.crt",
                   "Certificate Request Agent", NULL);
}
END_TEST

START_TEST(refuses_ra_from_another_ca)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    /* Same name as the real CA: only the key tells them apart. */
    EVP_PKEY *other_key = testutil_rsa_key(pool);
    X509 *other_ca = testutil_cert(pool, "/CN=Test CA/O=mod_scep tests", other_key,
                                   scep_x509_ca_exts(), 0, 0, NULL, NULL);
    EVP_PKEY *ra_key = testutil_rsa_key(pool);
    X509 *ra = testutil_cert(pool, "/CN=Foreign RA", ra_key, scep_x509_ra_exts(SCEP_RA_SIGN), 0, 0,
                             other_ca, other_key);
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 0);

    testutil_add_ra(conf, testutil_write_cert(pool, tp->dir, "foreign.crt", ra),
                    testutil_write_key(pool, tp->dir, "foreign.key", ra_key));
    testutil_add_ra(conf, tp->ra_enc_cert_file, tp->ra_enc_key_file);
    expect_failure(conf, SCEP_EVENT_FAILED_RA_CERT, "foreign.crt", "not issued by the CA", NULL);
}
END_TEST

START_TEST(refuses_ra_key_mismatch)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 0);

    testutil_add_ra(conf, tp->ra_sign_cert_file, tp->ra_enc_key_file);
    testutil_add_ra(conf, tp->ra_enc_cert_file, tp->ra_enc_key_file);
    expect_failure(conf, SCEP_EVENT_FAILED_RA_CERT, "does not match", tp->ra_sign_cert_file, NULL);
}
END_TEST

START_TEST(expired_ra_is_event_34)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 0);
    apr_time_t now = apr_time_now();

    testutil_add_ra(conf, tp->ra_sign_cert_file, tp->ra_sign_key_file);
    add_ra(conf, tp, "old-enc", scep_x509_ra_exts(SCEP_RA_ENCRYPT), now - 400 * DAY, now - DAY);
    expect_failure(conf, SCEP_EVENT_RA_EXPIRE, "no valid RA encryption certificate", "old-enc.crt",
                   "expired", NULL);
}
END_TEST

START_TEST(unfit_candidate_is_skipped_when_another_serves)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 1);
    apr_time_t now = apr_time_now();
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_pki_t *pki = NULL;

    add_ra(conf, tp, "old-enc", scep_x509_ra_exts(SCEP_RA_ENCRYPT), now - 400 * DAY, now - DAY);
    ck_assert_int_eq(scep_pki_load(pool, conf, &pki, &prob), APR_SUCCESS);
    assert_same_cert(pki->ra_enc_cert, tp->ra_enc_cert, "RA encryption");
    ck_assert_int_eq(pki->ra_skipped->nelts, 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(pki->ra_skipped, 0, const char *), "old-enc.crt"));
}
END_TEST

/* The newest of two valid signing certificates wins whatever the order. */
static void check_newest_wins(int newest_first)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_config_t *conf = testutil_pki_config(pool, tp, 0);
    const scep_x509_exts_t *exts = scep_x509_ra_exts(SCEP_RA_SIGN);
    apr_time_t now = apr_time_now();
    apr_time_t end = now + 300 * DAY;
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_pki_t *pki = NULL;
    X509 *older, *newer;

    if (newest_first) {
        newer = add_ra(conf, tp, "new-sign", exts, now - DAY, end);
        older = add_ra(conf, tp, "old-sign", exts, now - 2 * DAY, end);
    }
    else {
        older = add_ra(conf, tp, "old-sign", exts, now - 2 * DAY, end);
        newer = add_ra(conf, tp, "new-sign", exts, now - DAY, end);
    }
    testutil_add_ra(conf, tp->ra_enc_cert_file, tp->ra_enc_key_file);
    ck_assert_int_eq(scep_pki_load(pool, conf, &pki, &prob), APR_SUCCESS);
    assert_same_cert(pki->ra_sign_cert, newer, "RA signing");
    ck_assert_int_ne(X509_cmp(pki->ra_sign_cert, older), 0);
    ck_assert_int_eq(EVP_PKEY_eq(pki->ra_sign_key, X509_get0_pubkey(newer)), 1);
}

START_TEST(newest_ra_wins)
{
    check_newest_wins(0);
    check_newest_wins(1);
}
END_TEST

START_TEST(getcacert_lists_ra_certs_first)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_t *pki = testutil_pki_load(pool, tp, 1);
    STACK_OF(X509) *certs;

    ck_assert_str_eq(pki->getcacert_type, "application/x-x509-ca-ra-cert");
    certs = bundle_certs(pki);
    ck_assert_int_eq(sk_X509_num(certs), 3);
    assert_same_cert(sk_X509_value(certs, 0), tp->ra_enc_cert, "first");
    assert_same_cert(sk_X509_value(certs, 1), tp->ra_sign_cert, "second");
    assert_same_cert(sk_X509_value(certs, 2), tp->ca_cert, "third");
    sk_X509_pop_free(certs, X509_free);
}
END_TEST

START_TEST(getcacert_parses_as_cms)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    scep_pki_t *pki = testutil_pki_load(pool, tp, 1);
    const unsigned char *der = pki->getcacert_body;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &der, (long)pki->getcacert_len);
    STACK_OF(X509) *certs;

    ck_assert_ptr_nonnull(cms);
    ck_assert_int_eq(OBJ_obj2nid(CMS_get0_type(cms)), NID_pkcs7_signed);
    certs = CMS_get1_certs(cms);
    ck_assert_int_eq(sk_X509_num(certs), 3);
    assert_same_cert(sk_X509_value(certs, 0), tp->ra_enc_cert, "first");
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
}
END_TEST

/* root -> issuing CA (intermediate) -> RA certificates. */
typedef struct tiered_t {
    X509 *root;
    X509 *ca;
    X509 *sign;
    X509 *enc;
    scep_pki_config_t *conf;
} tiered_t;

static X509 *tiered_ra(tiered_t *t, const char *dir, const char *name, scep_ra_role_t role,
                       EVP_PKEY *ca_key)
{
    EVP_PKEY *key = testutil_rsa_key(pool);
    X509 *cert =
        testutil_cert(pool, "/CN=Tier RA", key, scep_x509_ra_exts(role), 0, 0, t->ca, ca_key);

    testutil_add_ra(t->conf,
                    testutil_write_cert(pool, dir, apr_pstrcat(pool, name, ".crt", NULL), cert),
                    testutil_write_key(pool, dir, apr_pstrcat(pool, name, ".key", NULL), key));
    return cert;
}

static tiered_t *tiered_pki(int with_chain)
{
    tiered_t *t = apr_pcalloc(pool, sizeof(*t));
    const char *dir = testutil_tempdir(pool);
    EVP_PKEY *root_key = testutil_rsa_key(pool);
    EVP_PKEY *ca_key = testutil_rsa_key(pool);

    t->root = testutil_cert(pool, "/CN=Tier Root", root_key, scep_x509_ca_exts(), 0, 0, NULL, NULL);
    t->ca = testutil_cert(pool, "/CN=Tier Issuing CA", ca_key, scep_x509_ca_exts(), 0, 0, t->root,
                          root_key);
    t->conf = apr_pcalloc(pool, sizeof(*t->conf));
    t->conf->ca_cert_file = testutil_write_cert(pool, dir, "ca.crt", t->ca);
    t->conf->ca_key_file = testutil_write_key(pool, dir, "ca.key", ca_key);
    t->conf->ca_chain_file =
        with_chain ? testutil_write_cert(pool, dir, "root.crt", t->root) : NULL;
    t->conf->ra_files = apr_array_make(pool, 2, sizeof(scep_ra_file_t));
    t->conf->include_root = 1;
    t->sign = tiered_ra(t, dir, "ra-sign", SCEP_RA_SIGN, ca_key);
    t->enc = tiered_ra(t, dir, "ra-enc", SCEP_RA_ENCRYPT, ca_key);
    return t;
}

START_TEST(getcacert_includes_chain_and_root)
{
    tiered_t *t = tiered_pki(1);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_pki_t *pki = NULL;
    STACK_OF(X509) *certs;

    ck_assert_msg(scep_pki_load(pool, t->conf, &pki, &prob) == APR_SUCCESS, "%s", prob.text);
    ck_assert_int_eq(sk_X509_num(pki->chain), 1);
    certs = bundle_certs(pki);
    ck_assert_int_eq(sk_X509_num(certs), 4);
    assert_same_cert(sk_X509_value(certs, 0), t->enc, "first");
    assert_same_cert(sk_X509_value(certs, 1), t->sign, "second");
    assert_same_cert(sk_X509_value(certs, 2), t->ca, "third");
    assert_same_cert(sk_X509_value(certs, 3), t->root, "fourth");
    sk_X509_pop_free(certs, X509_free);
}
END_TEST

START_TEST(getcacert_leaves_root_out_when_asked)
{
    tiered_t *t = tiered_pki(1);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_pki_t *pki = NULL;
    STACK_OF(X509) *certs;

    t->conf->include_root = 0;
    ck_assert_msg(scep_pki_load(pool, t->conf, &pki, &prob) == APR_SUCCESS, "%s", prob.text);
    certs = bundle_certs(pki);
    ck_assert_int_eq(sk_X509_num(certs), 3);
    assert_same_cert(sk_X509_value(certs, 2), t->ca, "last");
    sk_X509_pop_free(certs, X509_free);
}
END_TEST

START_TEST(intermediate_ca_needs_chain)
{
    tiered_t *t = tiered_pki(0);

    expect_failure(t->conf, SCEP_EVENT_FAILED_CA_CERT, "not self-signed", NULL);
}
END_TEST

START_TEST(reads_several_certs)
{
    testutil_pki_t *tp = testutil_pki_create(pool);
    const char *both = testutil_path(pool, tp->dir, "both.pem");
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    STACK_OF(X509) *certs = NULL;
    BIO *bio = BIO_new_file(both, "w");

    ck_assert_ptr_nonnull(bio);
    ck_assert(PEM_write_bio_X509(bio, tp->ca_cert) && PEM_write_bio_X509(bio, tp->ra_enc_cert));
    BIO_free(bio);
    ck_assert_int_eq(scep_read_certs(pool, both, &certs, &prob), APR_SUCCESS);
    ck_assert_int_eq(sk_X509_num(certs), 2);
    assert_same_cert(sk_X509_value(certs, 1), tp->ra_enc_cert, "second");
    ck_assert_int_ne(scep_read_certs(pool, tp->ca_key_file, &certs, &prob), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(prob.text, tp->ca_key_file));
}
END_TEST

START_TEST(parses_subjects_with_escapes)
{
    X509_NAME *name = testutil_name(pool, "/CN=a\\/b/O=Acme\\\\Labs/C=DE");
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_NAME *bad = NULL;

    ck_assert_str_eq(scep_name_text(pool, name), "C=DE,O=Acme\\\\Labs,CN=a/b");
    ck_assert_int_ne(scep_x509_name_parse(pool, "CN=x", &bad, &prob), APR_SUCCESS);
    ck_assert_int_ne(scep_x509_name_parse(pool, "/CN=x/", &bad, &prob), APR_SUCCESS);
    ck_assert_int_ne(scep_x509_name_parse(pool, "/NOSUCHTYPE=x", &bad, &prob), APR_SUCCESS);
    ck_assert_ptr_nonnull(strstr(prob.text, "NOSUCHTYPE"));
}
END_TEST

START_TEST(writes_keys_private_and_never_over_others)
{
    const char *dir = testutil_tempdir(pool);
    EVP_PKEY *key = testutil_ec_key(pool);
    const char *file = testutil_write_key(pool, dir, "k.key", key);
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    EVP_PKEY *read = NULL;
    struct stat st;

    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_ne(scep_x509_write_key(pool, file, testutil_ec_key(pool), &prob), APR_SUCCESS);
    ck_assert_int_eq(scep_read_private_key(pool, file, &read, &prob), APR_SUCCESS);
    ck_assert_int_eq(EVP_PKEY_eq(read, key), 1);
}
END_TEST

Suite *scep_pki_suite(void);

Suite *scep_pki_suite(void)
{
    Suite *s = suite_create("pki");
    TCase *tc = testutil_case(s, "load", setup, teardown);

    tcase_add_test(tc, loads_separate_ra);
    tcase_add_test(tc, loads_simple_mode);
    tcase_add_test(tc, key_id_is_the_spki_digest);
    tcase_add_test(tc, key_id_binds_the_domain_parameters);
    tcase_add_test(tc, key_id_reads_absent_rsa_parameters_as_null);
    tcase_add_test(tc, csr_digest_names_the_request);
    tcase_add_test(tc, simple_mode_needs_ca_key);
    tcase_add_test(tc, refuses_group_readable_key);
    tcase_add_test(tc, refuses_world_readable_ra_key);
    tcase_add_test(tc, refuses_missing_ca_cert);
    tcase_add_test(tc, refuses_mismatched_ca_key);
    tcase_add_test(tc, refuses_ra_with_wrong_key_usage);
    tcase_add_test(tc, refuses_ra_without_eku);
    tcase_add_test(tc, refuses_ra_from_another_ca);
    tcase_add_test(tc, refuses_ra_key_mismatch);
    tcase_add_test(tc, expired_ra_is_event_34);
    tcase_add_test(tc, unfit_candidate_is_skipped_when_another_serves);
    tcase_add_test(tc, newest_ra_wins);
    tcase_add_test(tc, intermediate_ca_needs_chain);
    tcase_add_test(tc, reads_several_certs);
    tcase_add_test(tc, parses_subjects_with_escapes);
    tcase_add_test(tc, writes_keys_private_and_never_over_others);

    tc = testutil_case(s, "getcacert", setup, teardown);
    tcase_add_test(tc, getcacert_lists_ra_certs_first);
    tcase_add_test(tc, getcacert_parses_as_cms);
    tcase_add_test(tc, getcacert_includes_chain_and_root);
    tcase_add_test(tc, getcacert_leaves_root_out_when_asked);
    return s;
}
