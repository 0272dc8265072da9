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

/* Certificate templates: scep_policy_check() and issuance under a template
 * by scep_ca_issue(). */

#include <string.h>

#include <apr_strings.h>

#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <check.h>

#include "scep.h"
#include "testutil.h"

#define DAY apr_time_from_sec(86400)
#define OID_IPSEC_IKE_INTERMEDIATE "1.3.6.1.5.5.8.2.2"
#define OID_CLIENT_AUTH "1.3.6.1.5.5.7.3.2"

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

static void expect_allowed(const scep_template_t *tmpl, X509_REQ *csr)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    ck_assert_msg(scep_policy_check(pool, tmpl, csr, &prob) == APR_SUCCESS, "refused: %s",
                  prob.text);
}

/* Refused with badRequest, event 23 and a text that contains needle. */
static void expect_refused(const scep_template_t *tmpl, X509_REQ *csr, const char *needle)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };

    ck_assert_int_ne(scep_policy_check(pool, tmpl, csr, &prob), APR_SUCCESS);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAIL_CERT_REQ);
    ck_assert_msg(prob.text && strstr(prob.text, needle), "\"%s\" not in \"%s\"", needle,
                  prob.text ? prob.text : "(null)");
}

static X509_REQ *csr_with_san(EVP_PKEY *key, const char *san)
{
    return testutil_csr(pool, key, "/CN=device", NULL, NULL, san, NULL);
}

static EVP_PKEY *rsa_1024(void)
{
    EVP_PKEY *key = EVP_RSA_gen(1024);

    ck_assert_ptr_nonnull(key);
    SCEP_OWN(pool, key, EVP_PKEY_free);
    return key;
}

/* Ed25519 signs without a separate digest, which testutil_csr() always
 * names: this request is made by hand. */
static X509_REQ *ed25519_csr(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    X509_REQ *csr = X509_REQ_new();

    ck_assert_ptr_nonnull(key);
    SCEP_OWN(pool, key, EVP_PKEY_free);
    SCEP_OWN(pool, csr, X509_REQ_free);
    ck_assert(X509_REQ_set_subject_name(csr, testutil_name(pool, "/CN=edwards")));
    ck_assert(X509_REQ_set_pubkey(csr, key));
    ck_assert(X509_REQ_sign(csr, key, NULL) > 0);
    return csr;
}

/* A CSR for key as the server reads it: encoded and decoded again, so that
 * the SPKI is what a device would send. Signed with another key (the policy
 * does not verify signatures; the message layer did): key may be public only. */
static X509_REQ *csr_for(EVP_PKEY *key)
{
    X509_REQ *csr = X509_REQ_new();
    unsigned char *der = NULL;
    const unsigned char *cursor;
    int len;

    ck_assert(X509_REQ_set_subject_name(csr, testutil_name(pool, "/CN=keys")));
    ck_assert(X509_REQ_set_pubkey(csr, key));
    ck_assert(X509_REQ_sign(csr, testutil_ec_key(pool), EVP_sha256()) > 0);
    ck_assert_int_gt(len = i2d_X509_REQ(csr, &der), 0);
    X509_REQ_free(csr);
    cursor = der;
    csr = d2i_X509_REQ(NULL, &cursor, len);
    OPENSSL_free(der);
    ck_assert_ptr_nonnull(csr);
    SCEP_OWN(pool, csr, X509_REQ_free);
    return csr;
}

START_TEST(builtin_is_ndes_ipsec_offline)
{
    scep_template_t *tmpl = scep_template_builtin(pool);
    char oid[64];

    ck_assert_str_eq(tmpl->name, "IPSECIntermediateOffline");
    /* NDES's digitalSignature keyEncipherment for RSA (builtin_issues_by_key_type) */
    ck_assert_int_eq(tmpl->key_usage, SCEP_KU_BY_KEY_TYPE);
    ck_assert_int_eq(tmpl->ext_key_usage->nelts, 1);
    OBJ_obj2txt(oid, sizeof(oid), APR_ARRAY_IDX(tmpl->ext_key_usage, 0, ASN1_OBJECT *), 1);
    ck_assert_str_eq(oid, OID_IPSEC_IKE_INTERMEDIATE);
    ck_assert_uint_eq(tmpl->san_types, SCEP_SAN_ALL);
    ck_assert_ptr_null(tmpl->subject_nids);
    ck_assert_int_eq(tmpl->validity_days, 0);
    ck_assert_int_eq(tmpl->issuance, SCEP_ISSUANCE_AUTO);
}
END_TEST

START_TEST(allows_what_the_template_allows)
{
    scep_template_t *tmpl = scep_template_builtin(pool);

    expect_allowed(tmpl, testutil_csr(pool, testutil_rsa_key(pool), "/CN=a/O=b/OU=c",
                                      "critical,digitalSignature", "clientAuth",
                                      "DNS:a.example,IP:192.0.2.1,email:a@example.test,"
                                      "URI:http://a.example/,"
                                      "otherName:msUPN;UTF8:a@example.test",
                                      "secret"));
    expect_allowed(tmpl, csr_with_san(testutil_ec_key(pool), NULL));
}
END_TEST

START_TEST(refuses_san_types_not_allowed)
{
    scep_template_t *tmpl = scep_template_new(pool, "DnsOnly");

    tmpl->san_types = SCEP_SAN_DNS | SCEP_SAN_IP;
    expect_allowed(tmpl, csr_with_san(testutil_ec_key(pool), "DNS:a.example,IP:192.0.2.1"));
    expect_refused(tmpl, csr_with_san(testutil_ec_key(pool), "DNS:a.example,URI:http://a/"),
                   "subjectAltName type URI is not allowed by template DnsOnly");
    expect_refused(tmpl, csr_with_san(testutil_ec_key(pool), "email:a@example.test"),
                   "subjectAltName type EMAIL is not allowed");
    expect_refused(tmpl, csr_with_san(testutil_ec_key(pool), "otherName:msUPN;UTF8:a@example.test"),
                   "subjectAltName type UPN is not allowed");
}
END_TEST

START_TEST(refuses_san_types_no_template_allows)
{
    scep_template_t *tmpl = scep_template_builtin(pool);

    expect_refused(tmpl, csr_with_san(testutil_ec_key(pool), "RID:1.2.3.4"),
                   "subjectAltName type registeredID is not allowed");
    expect_refused(tmpl, csr_with_san(testutil_ec_key(pool), "otherName:1.2.3.4;UTF8:x"),
                   "subjectAltName type otherName is not allowed");
}
END_TEST

START_TEST(refuses_small_rsa_keys)
{
    scep_template_t *tmpl = scep_template_new(pool, "Strong");

    expect_refused(tmpl, csr_with_san(rsa_1024(), NULL),
                   "RSA key of 1024 bits is below the 2048 the template Strong requires");
    tmpl->min_rsa_bits = 1024;
    expect_allowed(tmpl, csr_with_san(rsa_1024(), NULL));
    tmpl->min_rsa_bits = 3072;
    expect_refused(tmpl, csr_with_san(testutil_rsa_key(pool), NULL),
                   "RSA key of 2048 bits is below the 3072");
}
END_TEST

START_TEST(refuses_large_rsa_keys)
{
    scep_template_t *tmpl = scep_template_new(pool, "Bounded");

    expect_allowed(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 8192, "10001")));
    expect_refused(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 8200, "10001")),
                   "RSA key of 8200 bits is above the 8192 the template Bounded allows");
    tmpl->max_rsa_bits = 4096;
    expect_refused(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 4097, "10001")),
                   "RSA key of 4097 bits is above the 4096 the template Bounded allows");
    ck_assert_int_eq(scep_template_builtin(pool)->max_rsa_bits, 8192);
}
END_TEST

START_TEST(refuses_rsa_exponents_out_of_range)
{
    scep_template_t *tmpl = scep_template_builtin(pool);
    const char *exponent = "is not an odd number from 65537 to 2^256-1 is not allowed by "
                           "template IPSECIntermediateOffline";
    const char *max_e = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF";

    expect_allowed(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 2048, "10001")));
    expect_allowed(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 2048, max_e)));
    expect_refused(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 2048, "3")), exponent);
    expect_refused(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 2048, "FFFF")), exponent);
    expect_refused(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 2048, "10002")), exponent);
    expect_allowed(tmpl, csr_for(testutil_rsa_public(pool, "RSA", 2048, "1FFFFFFFFFFFFFFFFF")));
    expect_refused(
        tmpl, csr_for(testutil_rsa_public(pool, "RSA", 2048, apr_pstrcat(pool, "1", max_e, NULL))),
        exponent);
}
END_TEST

START_TEST(refuses_curves_not_allowed)
{
    scep_template_t *tmpl = scep_template_new(pool, "Curvy");

    expect_allowed(tmpl, csr_for(testutil_keygen(pool, "EC", "P-384", 0)));
    expect_allowed(tmpl, csr_for(testutil_keygen(pool, "EC", "P-521", 0)));
    expect_refused(tmpl, csr_for(testutil_keygen(pool, "EC", "secp256k1", 0)),
                   "EC curve secp256k1 is not allowed by template Curvy");
    expect_refused(tmpl, csr_for(testutil_keygen(pool, "EC", "P-192", 0)),
                   "EC curve P-192 is not allowed by template Curvy");
    /* A listed curve still meets the minimum size. */
    APR_ARRAY_PUSH(tmpl->curves, int) = scep_curve_nid("P-192");
    expect_refused(tmpl, csr_for(testutil_keygen(pool, "EC", "P-192", 0)),
                   "EC key of 192 bits is below the 256 the template Curvy requires");
    tmpl->min_ec_bits = 192;
    expect_allowed(tmpl, csr_for(testutil_keygen(pool, "EC", "P-192", 0)));
}
END_TEST

START_TEST(refuses_explicit_curve_parameters)
{
    expect_refused(scep_template_builtin(pool), csr_for(testutil_keygen(pool, "EC", "P-256", 1)),
                   "EC key with explicit curve parameters is not allowed (RFC 5480: named "
                   "curves only) by template IPSECIntermediateOffline");
}
END_TEST

START_TEST(refuses_rsa_pss_keys)
{
    expect_refused(scep_template_builtin(pool),
                   csr_for(testutil_rsa_public(pool, "RSA-PSS", 2048, "10001")),
                   "key type RSA-PSS is not allowed");
}
END_TEST

START_TEST(refuses_key_types_not_allowed)
{
    scep_template_t *tmpl = scep_template_new(pool, "RsaOnly");

    tmpl->key_types = SCEP_KEYTYPE_RSA;
    expect_allowed(tmpl, csr_with_san(testutil_rsa_key(pool), NULL));
    expect_refused(tmpl, csr_with_san(testutil_ec_key(pool), NULL),
                   "key type EC is not allowed by template RsaOnly");
    tmpl->key_types = SCEP_KEYTYPE_RSA | SCEP_KEYTYPE_EC;
    expect_refused(tmpl, ed25519_csr(), "key type ED25519 is not allowed");
}
END_TEST

START_TEST(refuses_subject_attributes_not_allowed)
{
    scep_template_t *tmpl = scep_template_new(pool, "CnOnly");

    tmpl->subject_nids = apr_array_make(pool, 2, sizeof(int));
    APR_ARRAY_PUSH(tmpl->subject_nids, int) = NID_commonName;
    APR_ARRAY_PUSH(tmpl->subject_nids, int) = NID_organizationName;
    expect_allowed(tmpl,
                   testutil_csr(pool, testutil_ec_key(pool), "/CN=a/O=b", NULL, NULL, NULL, NULL));
    expect_refused(tmpl,
                   testutil_csr(pool, testutil_ec_key(pool), "/CN=a/OU=b", NULL, NULL, NULL, NULL),
                   "subject attribute organizationalUnitName is not allowed by template CnOnly");
}
END_TEST

START_TEST(refuses_ca_rights_and_unknown_critical_extensions)
{
    scep_template_t *tmpl = scep_template_builtin(pool);
    EVP_PKEY *key = testutil_ec_key(pool);
    scep_x509_exts_t ca = { "critical,CA:TRUE", NULL, NULL, NULL };
    scep_x509_exts_t not_ca = { "critical,CA:FALSE", NULL, NULL, NULL };
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509_REQ *csr = NULL;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();

    ck_assert_int_eq(
        scep_x509_csr_create(pool, key, testutil_name(pool, "/CN=ca"), &ca, NULL, &csr, &prob),
        APR_SUCCESS);
    expect_refused(tmpl, csr, "extension basicConstraints with CA:TRUE is not allowed");
    ck_assert_int_eq(
        scep_x509_csr_create(pool, key, testutil_name(pool, "/CN=ee"), &not_ca, NULL, &csr, &prob),
        APR_SUCCESS);
    expect_allowed(tmpl, csr);
    /* a critical policy constraint the CA would drop */
    csr = X509_REQ_new();
    SCEP_OWN(pool, csr, X509_REQ_free);
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_policy_constraints,
                                                     "critical,requireExplicitPolicy:0"));
    ck_assert(X509_REQ_set_subject_name(csr, testutil_name(pool, "/CN=odd")));
    ck_assert(X509_REQ_set_pubkey(csr, key));
    ck_assert(X509_REQ_add_extensions(csr, exts));
    ck_assert(X509_REQ_sign(csr, key, EVP_sha256()) > 0);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    expect_refused(tmpl, csr, "critical extension X509v3 Policy Constraints is not allowed");
}
END_TEST

START_TEST(eku_names_and_oids_are_accepted)
{
    scep_template_t *tmpl = scep_template_new(pool, "Named");

    ck_assert_int_eq(scep_template_add_eku(pool, tmpl, "clientAuth"), APR_SUCCESS);
    ck_assert_int_eq(scep_template_add_eku(pool, tmpl, "1.3.6.1.5.5.8.2.2"), APR_SUCCESS);
    ck_assert_int_eq(scep_template_add_eku(pool, tmpl, "no such usage"), APR_EINVAL);
    /* after the default clientAuth */
    ck_assert_int_eq(tmpl->ext_key_usage->nelts, 3);
}
END_TEST

/* FromRequest copies the request's usages but those a template must name:
 * refused, not dropped. */
START_TEST(from_request_refuses_ca_usages)
{
    scep_template_t *tmpl = scep_template_new(pool, "PassThrough");
    EVP_PKEY *key = testutil_ec_key(pool);

    tmpl->key_usage = SCEP_KU_FROM_REQUEST;
    tmpl->ext_key_usage = NULL;
    expect_allowed(tmpl,
                   testutil_csr(pool, key, "/CN=a", "digitalSignature", "clientAuth", NULL, NULL));
    expect_refused(
        tmpl, testutil_csr(pool, key, "/CN=a", "digitalSignature,keyCertSign", NULL, NULL, NULL),
        "keyUsage keyCertSign or cRLSign");
    expect_refused(tmpl, testutil_csr(pool, key, "/CN=a", "cRLSign", NULL, NULL, NULL),
                   "template PassThrough copies the request's usages");
    expect_refused(tmpl, testutil_csr(pool, key, "/CN=a", NULL, "anyExtendedKeyUsage", NULL, NULL),
                   "extendedKeyUsage anyExtendedKeyUsage");
    expect_refused(tmpl,
                   testutil_csr(pool, key, "/CN=a", NULL, "clientAuth,OCSPSigning", NULL, NULL),
                   "extendedKeyUsage OCSPSigning");
    /* a template that sets the usages ignores what the request asks */
    expect_allowed(
        scep_template_new(pool, "Default"),
        testutil_csr(pool, key, "/CN=a", "keyCertSign", "anyExtendedKeyUsage", NULL, NULL));
}
END_TEST

/* Names the CA cannot encode are refused by the policy already (event 23),
 * wildcards only where the template allows them. */
START_TEST(refuses_names_and_wildcards)
{
    scep_template_t *tmpl = scep_template_new(pool, "Web");
    EVP_PKEY *key = testutil_ec_key(pool);
    X509_REQ *csr = csr_with_san(key, NULL);
    X509_NAME *long_cn = X509_NAME_new();
    unsigned char cn[65];

    /* testutil_name() holds to OpenSSL's bounds: made by hand (the policy
     * does not check the signature) */
    memset(cn, 'c', sizeof(cn));
    ck_assert(X509_NAME_add_entry_by_NID(long_cn, NID_commonName, V_ASN1_UTF8STRING, cn, sizeof(cn),
                                         -1, 0));
    ck_assert(X509_REQ_set_subject_name(csr, long_cn));
    X509_NAME_free(long_cn);
    expect_refused(tmpl, csr, "commonName is 65 characters long");
    expect_refused(tmpl, csr_with_san(key, "DNS:a..b"), "dNSName \"a..b\" has an empty label");
    expect_refused(tmpl, csr_with_san(key, "DNS:*.example.com"), "wildcard");
    tmpl->wildcard_dns = 1;
    expect_allowed(tmpl, csr_with_san(key, "DNS:*.example.com"));
}
END_TEST

static int ext_critical(X509 *cert, int nid)
{
    int at = X509_get_ext_by_NID(cert, nid, -1);

    ck_assert_msg(at >= 0, "no %s", OBJ_nid2sn(nid));
    return X509_EXTENSION_get_critical(X509_get_ext(cert, at));
}

START_TEST(template_replaces_requested_usages)
{
    X509_REQ *csr =
        testutil_csr(pool, testutil_rsa_key(pool), "/CN=ipsec", "critical,digitalSignature",
                     "clientAuth", "DNS:ipsec.example", NULL);
    X509 *cert = testutil_issue(pool, csr, scep_template_builtin(pool), 365);

    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    ck_assert_int_eq(ext_critical(cert, NID_key_usage), 1);
    ck_assert(scep_x509_has_eku(cert, OID_IPSEC_IKE_INTERMEDIATE));
    ck_assert(!scep_x509_has_eku(cert, OID_CLIENT_AUTH));
    ck_assert_int_eq(ext_critical(cert, NID_ext_key_usage), 0);
    ck_assert_int_ge(X509_get_ext_by_NID(cert, NID_subject_alt_name, -1), 0);
    /* exactly one of each */
    ck_assert_int_lt(
        X509_get_ext_by_NID(cert, NID_key_usage, X509_get_ext_by_NID(cert, NID_key_usage, -1)), 0);
    ck_assert_int_lt(X509_get_ext_by_NID(cert, NID_ext_key_usage,
                                         X509_get_ext_by_NID(cert, NID_ext_key_usage, -1)),
                     0);
}
END_TEST

START_TEST(template_adds_usages_to_a_bare_request)
{
    scep_template_t *tmpl = scep_template_new(pool, "Sign");
    X509 *cert;

    tmpl->key_usage = X509v3_KU_DIGITAL_SIGNATURE | X509v3_KU_NON_REPUDIATION;
    ck_assert_int_eq(scep_template_add_eku(pool, tmpl, "emailProtection"), APR_SUCCESS);
    cert = testutil_issue(
        pool, testutil_csr(pool, testutil_ec_key(pool), "/CN=bare", NULL, NULL, NULL, NULL), tmpl,
        30);
    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION);
    ck_assert(scep_x509_has_eku(cert, "1.3.6.1.5.5.7.3.4"));
}
END_TEST

/* A template that names no usages: keyUsage by the key's type (no
 * keyEncipherment for EC), EKU clientAuth, whatever the request asks. */
/* The built-in template issues NDES's usages to an RSA key, and an EC key
 * keyAgreement in the place of keyEncipherment. */
START_TEST(builtin_issues_by_key_type)
{
    scep_template_t *tmpl = scep_template_builtin(pool);
    X509 *cert = testutil_issue(
        pool, testutil_csr(pool, testutil_rsa_key(pool), "/CN=rsa", NULL, NULL, NULL, NULL), tmpl,
        30);

    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    cert = testutil_issue(
        pool, testutil_csr(pool, testutil_ec_key(pool), "/CN=ec", NULL, NULL, NULL, NULL), tmpl,
        30);
    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT);
}
END_TEST

/* keyUsage a key cannot honour is refused, set by the template or copied
 * from the request: keyEncipherment or dataEncipherment on an EC key,
 * keyAgreement on an RSA key (RFC 5480, RFC 3279). */
START_TEST(refuses_usages_the_key_cannot_honour)
{
    scep_template_t *tmpl = scep_template_new(pool, "Fixed");
    scep_template_t *copy = scep_template_new(pool, "Copy");

    tmpl->key_usage = X509v3_KU_DIGITAL_SIGNATURE | X509v3_KU_KEY_ENCIPHERMENT;
    expect_refused(tmpl, csr_with_san(testutil_ec_key(pool), NULL),
                   "keyUsage keyEncipherment cannot be given to a key of type EC");
    expect_allowed(tmpl, csr_with_san(testutil_rsa_key(pool), NULL));
    tmpl->key_usage = X509v3_KU_KEY_AGREEMENT;
    expect_refused(tmpl, csr_with_san(testutil_rsa_key(pool), NULL),
                   "keyUsage keyAgreement cannot be given to a key of type RSA");
    expect_allowed(tmpl, csr_with_san(testutil_ec_key(pool), NULL));
    copy->key_usage = SCEP_KU_FROM_REQUEST;
    expect_refused(
        copy,
        testutil_csr(pool, testutil_ec_key(pool), "/CN=ec", "dataEncipherment", NULL, NULL, NULL),
        "keyUsage dataEncipherment cannot be given to a key of type EC");
    expect_allowed(copy, testutil_csr(pool, testutil_ec_key(pool), "/CN=ec",
                                      "digitalSignature,keyAgreement", NULL, NULL, NULL));
}
END_TEST

START_TEST(default_template_grants_safe_usages)
{
    scep_template_t *tmpl = scep_template_new(pool, "Default");
    X509 *cert = testutil_issue(pool,
                                testutil_csr(pool, testutil_rsa_key(pool), "/CN=rsa",
                                             "critical,keyCertSign,cRLSign,digitalSignature",
                                             "anyExtendedKeyUsage,OCSPSigning", NULL, NULL),
                                tmpl, 30);

    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    ck_assert(scep_x509_has_eku(cert, OID_CLIENT_AUTH));
    ck_assert(!scep_x509_has_eku(cert, "2.5.29.37.0"));
    ck_assert(!scep_x509_has_eku(cert, "1.3.6.1.5.5.7.3.9"));
    ck_assert_int_eq(X509_check_ca(cert), 0);
    cert = testutil_issue(
        pool, testutil_csr(pool, testutil_ec_key(pool), "/CN=ec", NULL, NULL, NULL, NULL), tmpl,
        30);
    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT);
    ck_assert(scep_x509_has_eku(cert, OID_CLIENT_AUTH));
}
END_TEST

START_TEST(from_request_template_copies_usages)
{
    X509_REQ *csr = testutil_csr(pool, testutil_rsa_key(pool), "/CN=asis",
                                 "critical,keyEncipherment", "clientAuth", NULL, NULL);
    scep_template_t *tmpl = scep_template_new(pool, "AsRequested");
    X509 *cert;

    tmpl->key_usage = SCEP_KU_FROM_REQUEST;
    tmpl->ext_key_usage = NULL;
    cert = testutil_issue(pool, csr, tmpl, 365);
    ck_assert_uint_eq(scep_x509_key_usage(cert), KU_KEY_ENCIPHERMENT);
    ck_assert(scep_x509_has_eku(cert, OID_CLIENT_AUTH));
}
END_TEST

Suite *scep_policy_suite(void);

Suite *scep_policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *check = tcase_create("check");
    TCase *issue = tcase_create("issue by template");

    tcase_add_checked_fixture(check, setup, teardown);
    tcase_add_test(check, builtin_is_ndes_ipsec_offline);
    tcase_add_test(check, allows_what_the_template_allows);
    tcase_add_test(check, refuses_san_types_not_allowed);
    tcase_add_test(check, refuses_san_types_no_template_allows);
    tcase_add_test(check, refuses_small_rsa_keys);
    tcase_add_test(check, refuses_large_rsa_keys);
    tcase_add_test(check, refuses_rsa_exponents_out_of_range);
    tcase_add_test(check, refuses_curves_not_allowed);
    tcase_add_test(check, refuses_explicit_curve_parameters);
    tcase_add_test(check, refuses_rsa_pss_keys);
    tcase_add_test(check, refuses_key_types_not_allowed);
    tcase_add_test(check, refuses_subject_attributes_not_allowed);
    tcase_add_test(check, refuses_ca_rights_and_unknown_critical_extensions);
    tcase_add_test(check, eku_names_and_oids_are_accepted);
    tcase_add_test(check, from_request_refuses_ca_usages);
    tcase_add_test(check, refuses_names_and_wildcards);
    suite_add_tcase(s, check);
    tcase_add_checked_fixture(issue, setup, teardown);
    tcase_add_test(issue, template_replaces_requested_usages);
    tcase_add_test(issue, template_adds_usages_to_a_bare_request);
    tcase_add_test(issue, from_request_template_copies_usages);
    tcase_add_test(issue, default_template_grants_safe_usages);
    tcase_add_test(issue, builtin_issues_by_key_type);
    tcase_add_test(issue, refuses_usages_the_key_cannot_honour);
    suite_add_tcase(s, issue);
    return s;
}
