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

/* The names and usages a CSR asks for (scep_names.c): each refusal, and
 * that the certificate the CA issues holds our encoding, not the CSR's. */

#include <string.h>

#include <apr_strings.h>

#include <openssl/x509v3.h>

#include <check.h>

#include "scep.h"
#include "scep_names.h"
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

/* A subject of one attribute whose value has exactly this type and these
 * bytes, as a device may encode it. */
static X509_NAME *raw_name(int nid, int type, const char *bytes, int len)
{
    X509_NAME *name = X509_NAME_new();

    SCEP_OWN(pool, name, X509_NAME_free);
    ck_assert(
        X509_NAME_add_entry_by_NID(name, nid, type, (const unsigned char *)bytes, len, -1, 0));
    return name;
}

static void free_general_names(GENERAL_NAMES *names)
{
    GENERAL_NAMES_free(names);
}

/* A subjectAltName of one name of type holding these bytes (an otherName:
 * a UPN of value_type). */
static GENERAL_NAMES *raw_san(int type, int value_type, const char *bytes, int len)
{
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_STRING *s = ASN1_STRING_type_new(value_type);
    ASN1_TYPE *any;

    SCEP_OWN(pool, names, free_general_names);
    ck_assert(s && ASN1_STRING_set(s, bytes, len));
    if (type == GEN_OTHERNAME) {
        any = ASN1_TYPE_new();
        ASN1_TYPE_set(any, value_type, s);
        ck_assert(GENERAL_NAME_set0_othername(gn, OBJ_nid2obj(NID_ms_upn), any));
    }
    else {
        GENERAL_NAME_set0_value(gn, type, s);
    }
    ck_assert(sk_GENERAL_NAME_push(names, gn) > 0);
    return names;
}

static void free_ext_list(STACK_OF(X509_EXTENSION) *list)
{
    sk_X509_EXTENSION_pop_free(list, X509_EXTENSION_free);
}

/* A CSR with this subject (NULL: empty), subjectAltName (NULL: none) and
 * extra extensions in OpenSSL's configuration syntax. The subject's
 * entries are added one by one: a name whose value does not convert to
 * UTF-8 cannot be copied whole (OpenSSL's canonical encoding fails), and
 * such a CSR is then not signed either; the parser of a device's request
 * refuses it before us, which these tests pass by. */
static X509_REQ *csr_of(X509_NAME *subject, GENERAL_NAMES *san, const char *ku, const char *eku)
{
    EVP_PKEY *key = testutil_ec_key(pool);
    X509_REQ *csr = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    int i;

    SCEP_OWN(pool, csr, X509_REQ_free);
    SCEP_OWN(pool, exts, free_ext_list);
    for (i = 0; subject && i < X509_NAME_entry_count(subject); i++) {
        ck_assert(X509_NAME_add_entry(
            X509_REQ_get_subject_name(csr), X509_NAME_get_entry(subject, i), -1,
            i > 0 && X509_NAME_ENTRY_set(X509_NAME_get_entry(subject, i)) ==
                         X509_NAME_ENTRY_set(X509_NAME_get_entry(subject, i - 1))
                ? -1
                : 0));
    }
    if (san) {
        sk_X509_EXTENSION_push(exts, X509V3_EXT_i2d(NID_subject_alt_name, 0, san));
    }
    if (ku) {
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, ku));
    }
    if (eku) {
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage, eku));
    }
    ck_assert(X509_REQ_set_pubkey(csr, key));
    ck_assert(sk_X509_EXTENSION_num(exts) == 0 || X509_REQ_add_extensions(csr, exts));
    X509_REQ_sign(csr, key, EVP_sha256());
    return csr;
}

static scep_names_t expect_names(X509_REQ *csr, unsigned int flags)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_names_t names;

    ck_assert_msg(scep_names_from_csr(pool, csr, flags, &names, &prob) == APR_SUCCESS,
                  "refused: %s", prob.text);
    return names;
}

/* Refused with badRequest, the event and a text that contains needle. */
static void expect_refused(X509_REQ *csr, unsigned int flags, int event, const char *needle)
{
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    scep_names_t names;

    ck_assert_msg(scep_names_from_csr(pool, csr, flags, &names, &prob) != APR_SUCCESS,
                  "accepted, expected \"%s\"", needle);
    ck_assert_int_eq(prob.fail_info, SCEP_FAIL_BAD_REQUEST);
    ck_assert_int_eq(prob.event, event);
    ck_assert_msg(prob.text && strstr(prob.text, needle), "\"%s\" not in \"%s\"", needle,
                  prob.text ? prob.text : "(null)");
}

static void cn_refused(int type, const char *bytes, int len, int event, const char *needle)
{
    expect_refused(csr_of(raw_name(NID_commonName, type, bytes, len), NULL, NULL, NULL), 0, event,
                   needle);
}

static void dns_refused(const char *dns, unsigned int flags, const char *needle)
{
    expect_refused(csr_of(testutil_name(pool, "/CN=d"),
                          raw_san(GEN_DNS, V_ASN1_IA5STRING, dns, (int)strlen(dns)), NULL, NULL),
                   flags, SCEP_EVENT_FAIL_CERT_REQ, needle);
}

static void dns_allowed(const char *dns, unsigned int flags)
{
    expect_names(csr_of(testutil_name(pool, "/CN=d"),
                        raw_san(GEN_DNS, V_ASN1_IA5STRING, dns, (int)strlen(dns)), NULL, NULL),
                 flags);
}

/* The type and UTF-8 of the only value of nid in name. */
static const ASN1_STRING *value_of(const X509_NAME *name, int nid)
{
    int at = X509_NAME_get_index_by_NID(name, nid, -1);

    ck_assert_int_ge(at, 0);
    return X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
}

static void assert_value(const X509_NAME *name, int nid, int type, const char *text)
{
    const ASN1_STRING *value = value_of(name, nid);

    ck_assert_int_eq(ASN1_STRING_type(value), type);
    ck_assert_int_eq(ASN1_STRING_length(value), (int)strlen(text));
    ck_assert_mem_eq(ASN1_STRING_get0_data(value), text, strlen(text));
}

START_TEST(subject_strings_are_encoded_by_type)
{
    /* "Dévice" as a BMPString, "abc" as a T61String, "DE" as a UTF8String */
    static const char bmp[] = { 0, 'D', 0, (char)0xe9, 0, 'v', 0, 'i', 0, 'c', 0, 'e' };
    X509_NAME *subject = raw_name(NID_commonName, V_ASN1_BMPSTRING, bmp, sizeof(bmp));
    scep_names_t names;

    ck_assert(X509_NAME_add_entry_by_NID(subject, NID_organizationName, V_ASN1_T61STRING,
                                         (const unsigned char *)"abc", 3, -1, 0));
    ck_assert(X509_NAME_add_entry_by_NID(subject, NID_countryName, V_ASN1_UTF8STRING,
                                         (const unsigned char *)"DE", 2, -1, 0));
    ck_assert(X509_NAME_add_entry_by_NID(subject, NID_pkcs9_emailAddress, V_ASN1_UTF8STRING,
                                         (const unsigned char *)"a@example.test", 14, -1, 0));
    ck_assert(X509_NAME_add_entry_by_NID(subject, NID_domainComponent, V_ASN1_PRINTABLESTRING,
                                         (const unsigned char *)"example", 7, -1, 0));
    /* a multi-valued RDN: with the DC before it */
    ck_assert(X509_NAME_add_entry_by_NID(subject, NID_userId, V_ASN1_UTF8STRING,
                                         (const unsigned char *)"u1", 2, -1, -1));
    names = expect_names(csr_of(subject, NULL, NULL, NULL), 0);
    assert_value(names.subject, NID_commonName, V_ASN1_UTF8STRING, "D\xc3\xa9vice");
    assert_value(names.subject, NID_organizationName, V_ASN1_PRINTABLESTRING, "abc");
    assert_value(names.subject, NID_countryName, V_ASN1_PRINTABLESTRING, "DE");
    assert_value(names.subject, NID_pkcs9_emailAddress, V_ASN1_IA5STRING, "a@example.test");
    assert_value(names.subject, NID_domainComponent, V_ASN1_IA5STRING, "example");
    assert_value(names.subject, NID_userId, V_ASN1_PRINTABLESTRING, "u1");
    ck_assert_int_eq(X509_NAME_entry_count(names.subject), 6);
    ck_assert_int_eq(X509_NAME_ENTRY_set(X509_NAME_get_entry(names.subject, 5)),
                     X509_NAME_ENTRY_set(X509_NAME_get_entry(names.subject, 4)));
    ck_assert_int_ne(X509_NAME_ENTRY_set(X509_NAME_get_entry(names.subject, 4)),
                     X509_NAME_ENTRY_set(X509_NAME_get_entry(names.subject, 3)));
    ck_assert_ptr_null(names.san);
}
END_TEST

START_TEST(refuses_nul_and_control_characters)
{
    cn_refused(V_ASN1_UTF8STRING, "evil\0.example", 13, SCEP_EVENT_FAIL_CERT_REQ, "NUL");
    cn_refused(V_ASN1_IA5STRING, "a\nb", 3, SCEP_EVENT_FAIL_CERT_REQ, "control");
    cn_refused(V_ASN1_UTF8STRING, "a\x7f", 2, SCEP_EVENT_FAIL_CERT_REQ, "control");
    /* U+0085, a C1 control */
    cn_refused(V_ASN1_UTF8STRING, "a\xc2\x85", 3, SCEP_EVENT_FAIL_CERT_REQ, "control");
    cn_refused(V_ASN1_BMPSTRING, "\0a\0\0", 4, SCEP_EVENT_FAIL_CERT_REQ, "NUL");
    cn_refused(V_ASN1_UTF8STRING, "", 0, SCEP_EVENT_FAIL_CERT_REQ, "empty");
    expect_refused(csr_of(testutil_name(pool, "/CN=u"),
                          raw_san(GEN_OTHERNAME, V_ASN1_UTF8STRING, "a\0@example.test", 15), NULL,
                          NULL),
                   0, SCEP_EVENT_FAIL_CERT_REQ, "UPN holds a NUL");
    expect_refused(csr_of(testutil_name(pool, "/CN=e"),
                          raw_san(GEN_EMAIL, V_ASN1_IA5STRING, "a\r@b", 4), NULL, NULL),
                   0, SCEP_EVENT_FAIL_CERT_REQ, "rfc822Name holds a space or a control character");
    expect_refused(csr_of(testutil_name(pool, "/CN=u"),
                          raw_san(GEN_URI, V_ASN1_IA5STRING, "http://a/\x1b", 10), NULL, NULL),
                   0, SCEP_EVENT_FAIL_CERT_REQ, "URI holds a space or a control character");
    expect_refused(csr_of(testutil_name(pool, "/CN=d"),
                          raw_san(GEN_DNS, V_ASN1_IA5STRING, "a\0b.example", 11), NULL, NULL),
                   0, SCEP_EVENT_FAIL_CERT_REQ, "is not a host name");
}
END_TEST

static const char *repeat(char c, int n)
{
    char *s = apr_palloc(pool, (apr_size_t)n + 1);

    memset(s, c, (size_t)n);
    s[n] = '\0';
    return s;
}

static void attribute_refused(int nid, const char *value, const char *needle)
{
    expect_refused(
        csr_of(raw_name(nid, V_ASN1_UTF8STRING, value, (int)strlen(value)), NULL, NULL, NULL), 0,
        SCEP_EVENT_FAIL_CERT_REQ, needle);
}

static void attribute_allowed(int nid, const char *value)
{
    expect_names(
        csr_of(raw_name(nid, V_ASN1_UTF8STRING, value, (int)strlen(value)), NULL, NULL, NULL), 0);
}

START_TEST(refuses_lengths_beyond_rfc5280)
{
    attribute_allowed(NID_commonName, repeat('a', 64));
    attribute_refused(NID_commonName, repeat('a', 65), "65 characters long, more than the 64");
    /* characters, not octets */
    attribute_allowed(NID_commonName, apr_pstrcat(pool, repeat('a', 62), "\xc3\xa9\xc3\xa9", NULL));
    attribute_refused(NID_organizationName, repeat('o', 65), "more than the 64");
    attribute_refused(NID_organizationalUnitName, repeat('u', 65), "more than the 64");
    attribute_allowed(NID_localityName, repeat('l', 128));
    attribute_refused(NID_localityName, repeat('l', 129), "more than the 128");
    attribute_refused(NID_stateOrProvinceName, repeat('s', 129), "more than the 128");
    attribute_refused(NID_serialNumber, repeat('1', 65), "more than the 64");
    attribute_refused(NID_countryName, "DEU", "more than the 2");
    attribute_refused(NID_countryName, "D1", "two letters");
    attribute_refused(NID_pkcs9_emailAddress, apr_pstrcat(pool, repeat('m', 250), "@b.test", NULL),
                      "more than the 255");
    attribute_refused(NID_streetAddress, repeat('x', 129), "more than the 128");
    dns_allowed(apr_pstrcat(pool, repeat('a', 63), ".example", NULL), 0);
    dns_refused(apr_pstrcat(pool, repeat('a', 64), ".example", NULL), 0, "longer than 63");
    dns_refused(apr_pstrcat(pool, repeat('a', 50), ".", repeat('b', 50), ".", repeat('c', 50), ".",
                            repeat('d', 50), ".", repeat('e', 50), ".example", NULL),
                0, "longer than 253");
}
END_TEST

START_TEST(refuses_strings_invalid_in_their_type)
{
    static const char surrogate[] = { (char)0xd8, 0, 0, 'a' };

    cn_refused(V_ASN1_PRINTABLESTRING, "a@b", 3, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
               "not a valid PRINTABLESTRING");
    cn_refused(V_ASN1_IA5STRING, "caf\xe9", 4, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
               "not a valid IA5STRING");
    /* an overlong '/' and a lone continuation byte */
    cn_refused(V_ASN1_UTF8STRING, "a\xc0\xaf", 3, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
               "not a valid UTF8STRING");
    cn_refused(V_ASN1_UTF8STRING, "a\x80", 2, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
               "not a valid UTF8STRING");
    /* BMPStrings of odd length and UniversalStrings of other than 4n octets
     * OpenSSL's decoder refuses already: a surrogate it lets pass */
    cn_refused(V_ASN1_BMPSTRING, surrogate, 4, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
               "not a valid BMPSTRING");
    cn_refused(V_ASN1_UNIVERSALSTRING, "\0\x11\0\0", 4, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
               "not a valid UNIVERSALSTRING");
    attribute_refused(NID_serialNumber, "n\xc3\xa9", "must be a PrintableString");
    attribute_refused(NID_pkcs9_emailAddress, "\xc3\xa9@b.test", "7-bit");
    expect_refused(csr_of(testutil_name(pool, "/CN=d"),
                          raw_san(GEN_DNS, V_ASN1_IA5STRING, "b\xfc.example", 10), NULL, NULL),
                   0, SCEP_EVENT_FAIL_DECODE_X509_REQUEST, "dNSName is not a valid IA5String");
    expect_refused(csr_of(testutil_name(pool, "/CN=u"),
                          raw_san(GEN_OTHERNAME, V_ASN1_BMPSTRING, "\0a", 2), NULL, NULL),
                   0, SCEP_EVENT_FAIL_DECODE_X509_REQUEST, "UPN is not a valid UTF8String");
}
END_TEST

START_TEST(dns_names_are_host_names)
{
    dns_allowed("a.example", 0);
    dns_allowed("xn--bcher-kva.example", 0);
    dns_allowed("a-b.c0", 0);
    dns_allowed("localhost", 0);
    dns_refused("a..b", 0, "dNSName \"a..b\" has an empty label");
    dns_refused("example.com.", 0, "empty label");
    dns_refused("-a.example", 0, "hyphen");
    dns_refused("a-.example", 0, "hyphen");
    dns_refused("a_b.example", 0, "not a host name");
    dns_refused("a b.example", 0, "not a host name");
    dns_refused("", 0, "is empty");
    dns_refused("*.example.com", 0, "wildcard, which the template does not allow");
    dns_allowed("*.example.com", SCEP_NAMES_WILDCARD);
    dns_refused("*.com", SCEP_NAMES_WILDCARD, "wildcard over a top-level domain");
    dns_refused("a.*.example", SCEP_NAMES_WILDCARD, "not a host name");
    dns_refused("*.*.example", SCEP_NAMES_WILDCARD, "not a host name");
    dns_refused("*a.example", SCEP_NAMES_WILDCARD, "not a host name");
}
END_TEST

START_TEST(other_san_values)
{
    X509_NAME *cn = testutil_name(pool, "/CN=x");

    expect_refused(
        csr_of(cn, raw_san(GEN_IPADD, V_ASN1_OCTET_STRING, "\xc0\0\2\1\1", 5), NULL, NULL), 0,
        SCEP_EVENT_FAIL_DECODE_X509_REQUEST, "iPAddress has 5 octets");
    expect_names(csr_of(cn, raw_san(GEN_IPADD, V_ASN1_OCTET_STRING, "\xc0\0\2\1", 4), NULL, NULL),
                 0);
    expect_names(
        csr_of(cn, raw_san(GEN_IPADD, V_ASN1_OCTET_STRING, repeat('\1', 16), 16), NULL, NULL), 0);
    expect_refused(csr_of(cn, raw_san(GEN_EMAIL, V_ASN1_IA5STRING, "nobody", 6), NULL, NULL), 0,
                   SCEP_EVENT_FAIL_CERT_REQ, "not an address");
    expect_refused(csr_of(cn, raw_san(GEN_URI, V_ASN1_IA5STRING, "a/b", 3), NULL, NULL), 0,
                   SCEP_EVENT_FAIL_CERT_REQ, "not an absolute URI");
    expect_names(csr_of(cn, raw_san(GEN_URI, V_ASN1_IA5STRING, "urn:x-a:1", 9), NULL, NULL), 0);
    expect_refused(
        testutil_csr(pool, testutil_ec_key(pool), "/CN=x", NULL, NULL, "RID:1.2.3.4", NULL), 0,
        SCEP_EVENT_FAIL_CERT_REQ, "a type the CA does not issue");
}
END_TEST

START_TEST(empty_names)
{
    GENERAL_NAMES *none = sk_GENERAL_NAME_new_null();
    scep_names_t names;

    SCEP_OWN(pool, none, free_general_names);
    expect_refused(csr_of(NULL, NULL, NULL, NULL), 0, SCEP_EVENT_FAIL_CERT_REQ,
                   "the subject is empty and there is no subjectAltName");
    expect_refused(csr_of(testutil_name(pool, "/CN=x"), none, NULL, NULL), 0,
                   SCEP_EVENT_FAIL_DECODE_X509_REQUEST, "subjectAltName names nothing");
    names = expect_names(
        csr_of(NULL, raw_san(GEN_DNS, V_ASN1_IA5STRING, "a.example", 9), NULL, NULL), 0);
    ck_assert_int_eq(X509_NAME_entry_count(names.subject), 0);
    ck_assert_int_eq(sk_GENERAL_NAME_num(names.san), 1);
}
END_TEST

/* The certificate holds our encoding: a BMPString commonName comes out as
 * UTF8String, a UTF8String one that fits as PrintableString, and the
 * subjectAltName is built again (critical under an empty subject). */
START_TEST(issued_names_are_ours)
{
    static const char bmp[] = { 0, 'D', 0, (char)0xe9 };
    X509_NAME *subject = raw_name(NID_commonName, V_ASN1_BMPSTRING, bmp, sizeof(bmp));
    GENERAL_NAMES *san = raw_san(GEN_OTHERNAME, V_ASN1_UTF8STRING, "u@example.test", 14);
    X509 *cert;
    GENERAL_NAMES *got;
    int crit = -1;

    ck_assert(X509_NAME_add_entry_by_NID(subject, NID_organizationName, V_ASN1_UTF8STRING,
                                         (const unsigned char *)"Example", 7, -1, 0));
    cert = testutil_issue(pool, csr_of(subject, san, NULL, NULL), NULL, 0);
    assert_value(X509_get_subject_name(cert), NID_commonName, V_ASN1_UTF8STRING, "D\xc3\xa9");
    assert_value(X509_get_subject_name(cert), NID_organizationName, V_ASN1_PRINTABLESTRING,
                 "Example");
    got = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(crit, 0);
    ck_assert_int_eq(GENERAL_NAME_cmp(sk_GENERAL_NAME_value(got, 0), sk_GENERAL_NAME_value(san, 0)),
                     0);
    GENERAL_NAMES_free(got);

    cert = testutil_issue(
        pool, csr_of(NULL, raw_san(GEN_DNS, V_ASN1_IA5STRING, "a.example", 9), NULL, NULL), NULL,
        0);
    ck_assert_int_eq(X509_NAME_entry_count(X509_get_subject_name(cert)), 0);
    got = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(crit, 1);
    GENERAL_NAMES_free(got);
}
END_TEST

START_TEST(ca_refuses_what_policy_refuses)
{
    scep_issue_opts_t opts = { 0, NULL, NULL, NULL };
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    X509 *cert = NULL;

    ck_assert_int_ne(scep_ca_issue(pool, testutil_pki_load(pool, testutil_pki_create(pool), 0),
                                   csr_of(raw_name(NID_commonName, V_ASN1_UTF8STRING, "a\0b", 3),
                                          NULL, NULL, NULL),
                                   &opts, &cert, &prob),
                     APR_SUCCESS);
    ck_assert_ptr_null(cert);
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAIL_CERT_REQ);
}
END_TEST

static STACK_OF(X509_EXTENSION) *exts_of(X509_REQ *csr)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);

    SCEP_OWN(pool, exts, free_ext_list);
    return exts;
}

START_TEST(requested_usages)
{
    X509_NAME *cn = testutil_name(pool, "/CN=x");
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    apr_array_header_t *oids;
    int bits;

    ck_assert_int_eq(
        scep_requested_key_usage(pool, exts_of(csr_of(cn, NULL, NULL, NULL)), &bits, &prob),
        APR_SUCCESS);
    ck_assert_int_eq(bits, -1);
    ck_assert_int_eq(
        scep_requested_key_usage(
            pool, exts_of(csr_of(cn, NULL, "digitalSignature,decipherOnly", NULL)), &bits, &prob),
        APR_SUCCESS);
    ck_assert_int_eq(bits, X509v3_KU_DIGITAL_SIGNATURE | X509v3_KU_DECIPHER_ONLY);
    ck_assert_int_eq(
        scep_requested_key_usage(
            pool, exts_of(csr_of(cn, NULL, "digitalSignature,keyCertSign", NULL)), &bits, &prob),
        APR_EACCES);
    ck_assert_ptr_nonnull(strstr(prob.text, "keyCertSign"));
    ck_assert_int_eq(
        scep_requested_key_usage(pool, exts_of(csr_of(cn, NULL, "cRLSign", NULL)), &bits, &prob),
        APR_EACCES);
    ck_assert_int_eq(scep_requested_eku(pool, exts_of(csr_of(cn, NULL, NULL, NULL)), &oids, &prob),
                     APR_SUCCESS);
    ck_assert_ptr_null(oids);
    ck_assert_int_eq(scep_requested_eku(pool, exts_of(csr_of(cn, NULL, NULL, "clientAuth,1.2.3.4")),
                                        &oids, &prob),
                     APR_SUCCESS);
    ck_assert_int_eq(oids->nelts, 2);
    ck_assert_int_eq(scep_requested_eku(pool,
                                        exts_of(csr_of(cn, NULL, NULL, "clientAuth,OCSPSigning")),
                                        &oids, &prob),
                     APR_EACCES);
    ck_assert_ptr_nonnull(strstr(prob.text, "OCSPSigning"));
    ck_assert_int_eq(scep_requested_eku(pool,
                                        exts_of(csr_of(cn, NULL, NULL, "anyExtendedKeyUsage")),
                                        &oids, &prob),
                     APR_EACCES);
    ck_assert_ptr_nonnull(strstr(prob.text, "anyExtendedKeyUsage"));
    ck_assert_int_eq(prob.event, SCEP_EVENT_FAIL_CERT_REQ);
}
END_TEST

Suite *scep_names_suite(void);

Suite *scep_names_suite(void)
{
    Suite *s = suite_create("names");
    TCase *tc = tcase_create("names");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, subject_strings_are_encoded_by_type);
    tcase_add_test(tc, refuses_nul_and_control_characters);
    tcase_add_test(tc, refuses_lengths_beyond_rfc5280);
    tcase_add_test(tc, refuses_strings_invalid_in_their_type);
    tcase_add_test(tc, dns_names_are_host_names);
    tcase_add_test(tc, other_san_values);
    tcase_add_test(tc, empty_names);
    tcase_add_test(tc, issued_names_are_ours);
    tcase_add_test(tc, ca_refuses_what_policy_refuses);
    tcase_add_test(tc, requested_usages);
    suite_add_tcase(s, tc);
    return s;
}
