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

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "scep_oids.h"
#include "scep_x509.h"
#include "testmsg.h"
#include "testutil.h"

static const unsigned char default_nonce[16] = "0123456789abcdef";

static X509_NAME *name_of(const char *cn)
{
    X509_NAME *name = X509_NAME_new();

    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    return name;
}

static X509_NAME *pool_name(apr_pool_t *p, const char *cn)
{
    X509_NAME *name = name_of(cn);

    SCEP_OWN(p, name, X509_NAME_free);
    return name;
}

static void unload_provider(OSSL_PROVIDER *provider)
{
    OSSL_PROVIDER_unload(provider);
}

const scep_pki_t *testmsg_pki(void)
{
    static scep_pki_t *pki;
    apr_pool_t *p;

    if (pki) {
        return pki;
    }
    apr_pool_create(&p, NULL); /* lives until apr_terminate() */
    /* Single DES lives in OpenSSL 3's legacy provider, as in the module. */
    SCEP_OWN(p, OSSL_PROVIDER_load(NULL, "legacy"), unload_provider);
    SCEP_OWN(p, OSSL_PROVIDER_load(NULL, "default"), unload_provider);
    pki = apr_pcalloc(p, sizeof(*pki));
    pki->ca_key = testutil_rsa_key(p);
    pki->ra_sign_key = testutil_rsa_key(p);
    pki->ra_enc_key = testutil_rsa_key(p);
    if (scep_x509_ca_create(p, pki->ca_key, pool_name(p, "testmsg CA"), 365, &pki->ca_cert, NULL) ||
        scep_x509_ra_create(p, pki->ca_cert, pki->ca_key, pki->ra_sign_key,
                            pool_name(p, "testmsg RA"), SCEP_RA_SIGN, 365, &pki->ra_sign_cert,
                            NULL) ||
        scep_x509_ra_create(p, pki->ca_cert, pki->ca_key, pki->ra_enc_key,
                            pool_name(p, "testmsg RA"), SCEP_RA_ENCRYPT, 365, &pki->ra_enc_cert,
                            NULL)) {
        return NULL;
    }
    pki->chain = sk_X509_new_null();
    SCEP_OWN(p, pki->chain, OPENSSL_sk_free);
    pki->separate_ra = 1;
    return pki;
}

testmsg_device_t *testmsg_device(apr_pool_t *p, const char *subject)
{
    return testmsg_device_with_key(p, subject, testutil_rsa_key(p));
}

testmsg_device_t *testmsg_device_with_key(apr_pool_t *p, const char *subject, EVP_PKEY *key)
{
    testmsg_device_t *dev = apr_pcalloc(p, sizeof(*dev));
    X509_NAME *name = name_of(subject);

    dev->key = key;
    dev->cert = X509_new();
    X509_set_version(dev->cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(dev->cert), 1);
    X509_set_subject_name(dev->cert, name);
    X509_set_issuer_name(dev->cert, name);
    X509_gmtime_adj(X509_getm_notBefore(dev->cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(dev->cert), 3600);
    X509_set_pubkey(dev->cert, dev->key);
    /* Ed25519 signs without a separate digest. */
    X509_sign(dev->cert, dev->key, EVP_PKEY_is_a(dev->key, "ED25519") ? NULL : EVP_sha256());
    X509_NAME_free(name);
    SCEP_OWN(p, dev->cert, X509_free);
    return dev;
}

unsigned char *testmsg_csr(apr_pool_t *p, const testmsg_device_t *dev, const char *subject,
                           const char *challenge, const char *key_usage, apr_size_t *len)
{
    X509_REQ *csr = X509_REQ_new();
    X509_NAME *name = name_of(subject);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    unsigned char *der = NULL, *copy;
    int n;

    X509_REQ_set_subject_name(csr, name);
    X509_REQ_set_pubkey(csr, dev->key);
    if (challenge) {
        X509_REQ_add1_attr_by_NID(csr, NID_pkcs9_challengePassword, MBSTRING_ASC,
                                  (const unsigned char *)challenge, -1);
    }
    if (key_usage) {
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, key_usage));
        X509_REQ_add_extensions(csr, exts);
    }
    X509_REQ_sign(csr, dev->key, EVP_sha256());
    n = i2d_X509_REQ(csr, &der);
    copy = apr_pmemdup(p, der, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(name);
    X509_REQ_free(csr);
    return copy;
}

void testmsg_defaults(testmsg_opts_t *opts, const unsigned char *content, apr_size_t len)
{
    memset(opts, 0, sizeof(*opts));
    opts->message_type = SCEP_MSG_PKCSREQ;
    opts->transaction_id = "testmsg-txid";
    opts->nonce = default_nonce;
    opts->nonce_len = sizeof(default_nonce);
    opts->cipher = EVP_aes_128_cbc();
    opts->md = EVP_sha256();
    opts->recipient = testmsg_pki()->ra_enc_cert;
    opts->content = content;
    opts->content_len = len;
}

static unsigned char *to_der(apr_pool_t *p, CMS_ContentInfo *cms, apr_size_t *len)
{
    unsigned char *der = NULL, *copy;
    int n = i2d_CMS_ContentInfo(cms, &der);

    copy = apr_pmemdup(p, der, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(der);
    return copy;
}

static unsigned char *bio_bytes(apr_pool_t *p, BIO *bio, apr_size_t *len)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);

    *len = (apr_size_t)n;
    return apr_pmemdup(p, data, (apr_size_t)n);
}

static CMS_ContentInfo *envelope(const testmsg_opts_t *opts)
{
    BIO *in = BIO_new_mem_buf(opts->content, (int)opts->content_len);
    CMS_ContentInfo *env = CMS_encrypt(NULL, NULL, opts->cipher, CMS_BINARY | CMS_PARTIAL);
    CMS_RecipientInfo *ri;

    ri = CMS_add1_recipient_cert(env, opts->recipient, opts->oaep ? CMS_KEY_PARAM : 0);
    if (opts->oaep) {
        EVP_PKEY_CTX_set_rsa_padding(CMS_RecipientInfo_get0_pkey_ctx(ri), RSA_PKCS1_OAEP_PADDING);
    }
    CMS_final(env, in, NULL, CMS_BINARY);
    BIO_free(in);
    return env;
}

static void add_attrs(CMS_SignerInfo *si, const testmsg_opts_t *opts)
{
    const scep_oids_t *oids = scep_oids();
    char type[16];

    snprintf(type, sizeof(type), "%d", opts->message_type);
    CMS_signed_add1_attr_by_OBJ(si, oids->message_type, V_ASN1_PRINTABLESTRING, type,
                                (int)strlen(type));
    if (opts->transaction_id) {
        CMS_signed_add1_attr_by_OBJ(si, oids->transaction_id, V_ASN1_PRINTABLESTRING,
                                    opts->transaction_id, (int)strlen(opts->transaction_id));
    }
    if (opts->nonce_len >= 0) {
        CMS_signed_add1_attr_by_OBJ(si, oids->sender_nonce, V_ASN1_OCTET_STRING, opts->nonce,
                                    opts->nonce_len);
    }
}

unsigned char *testmsg_issuer_and_serial(apr_pool_t *p, const X509_NAME *issuer,
                                         const ASN1_INTEGER *serial, apr_size_t *len)
{
    PKCS7_ISSUER_AND_SERIAL *ias = PKCS7_ISSUER_AND_SERIAL_new();
    unsigned char *der = NULL, *body = NULL;
    int n = 0;

    if (ias && X509_NAME_set(&ias->issuer, (X509_NAME *)issuer) &&
        ASN1_STRING_copy(ias->serial, serial)) {
        n = i2d_PKCS7_ISSUER_AND_SERIAL(ias, &der);
    }
    if (n > 0) {
        body = apr_pmemdup(p, der, (apr_size_t)n);
        *len = (apr_size_t)n;
    }
    OPENSSL_free(der);
    PKCS7_ISSUER_AND_SERIAL_free(ias);
    return body;
}

unsigned char *testmsg_build(apr_pool_t *p, const testmsg_device_t *dev, const testmsg_opts_t *opts,
                             apr_size_t *len)
{
    unsigned int flags = CMS_BINARY | CMS_NOSMIMECAP | CMS_PARTIAL;
    CMS_ContentInfo *env = envelope(opts);
    CMS_ContentInfo *cms;
    CMS_SignerInfo *si;
    apr_size_t env_len;
    unsigned char *env_der = to_der(p, env, &env_len);
    BIO *content = BIO_new_mem_buf(env_der, (int)env_len);
    BIO *out = BIO_new(BIO_s_mem());
    unsigned char *der;

    cms = CMS_sign(NULL, NULL, NULL, NULL, flags | (opts->ber ? CMS_STREAM : 0));
    si = CMS_add1_signer(cms, dev->cert, dev->key, opts->md,
                         CMS_BINARY | CMS_NOSMIMECAP | (opts->carried_cert ? CMS_NOCERTS : 0));
    if (opts->carried_cert) {
        CMS_add1_cert(cms, opts->carried_cert);
    }
    add_attrs(si, opts);
    if (opts->ber) {
        /* Streaming output is BER with indefinite lengths, as jscep and
         * Apple devices send it. */
        i2d_CMS_bio_stream(out, cms, content, CMS_BINARY | CMS_STREAM);
        der = bio_bytes(p, out, len);
    }
    else {
        CMS_final(cms, content, NULL, CMS_BINARY);
        der = to_der(p, cms, len);
    }
    BIO_free(out);
    BIO_free(content);
    CMS_ContentInfo_free(cms);
    CMS_ContentInfo_free(env);
    return der;
}

static const char *string_attr(apr_pool_t *p, CMS_SignerInfo *si, const ASN1_OBJECT *oid, int type)
{
    ASN1_STRING *s = CMS_signed_get0_data_by_OBJ(si, oid, -3, type);

    return s ? apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(s),
                              (apr_size_t)ASN1_STRING_length(s))
             : NULL;
}

/* The number in a PrintableString attribute, as RFC 8894 writes them
 * ("19"): -1 when the attribute is absent, TESTMSG_NOT_A_NUMBER when it is
 * not only decimal digits. */
static int number_attr(apr_pool_t *p, CMS_SignerInfo *si, const ASN1_OBJECT *oid)
{
    const char *text = string_attr(p, si, oid, V_ASN1_PRINTABLESTRING);
    char *end;
    long value;

    if (!text) {
        return -1;
    }
    errno = 0;
    value = strtol(text, &end, 10);
    return errno == 0 && apr_isdigit(*text) && *end == '\0' && value <= INT_MAX
               ? (int)value
               : TESTMSG_NOT_A_NUMBER;
}

static ASN1_OCTET_STRING *octets_attr(apr_pool_t *p, CMS_SignerInfo *si, const ASN1_OBJECT *oid)
{
    ASN1_OCTET_STRING *s = CMS_signed_get0_data_by_OBJ(si, oid, -3, V_ASN1_OCTET_STRING);

    s = s ? ASN1_OCTET_STRING_dup(s) : NULL;
    SCEP_OWN(p, s, ASN1_OCTET_STRING_free);
    return s;
}

static int envelope_cipher(const unsigned char *der, long len)
{
    PKCS7 *p7 = d2i_PKCS7(NULL, &der, len);
    int nid = p7 ? OBJ_obj2nid(p7->d.enveloped->enc_data->algorithm->algorithm) : NID_undef;

    PKCS7_free(p7);
    return nid;
}

static void free_certs(STACK_OF(X509) *certs)
{
    sk_X509_pop_free(certs, X509_free);
}

static void read_success(apr_pool_t *p, BIO *content, const testmsg_device_t *dev,
                         testmsg_certrep_t *rep)
{
    const unsigned char *der, *cursor;
    long len = BIO_get_mem_data(content, (char **)&der);
    CMS_ContentInfo *env, *certs_only = NULL;
    BIO *plain = BIO_new(BIO_s_mem());

    rep->cipher_nid = envelope_cipher(der, len);
    cursor = der;
    env = d2i_CMS_ContentInfo(NULL, &cursor, len);
    if (env && CMS_decrypt(env, dev->key, dev->cert, NULL, plain, CMS_BINARY) == 1) {
        len = BIO_get_mem_data(plain, (char **)&der);
        certs_only = d2i_CMS_ContentInfo(NULL, &der, len);
        rep->certs = certs_only ? CMS_get1_certs(certs_only) : NULL;
        SCEP_OWN(p, rep->certs, free_certs);
    }
    CMS_ContentInfo_free(certs_only);
    CMS_ContentInfo_free(env);
    BIO_free(plain);
}

int testmsg_read_certrep(apr_pool_t *p, const unsigned char *der, apr_size_t len,
                         const testmsg_device_t *dev, testmsg_certrep_t *rep)
{
    const scep_oids_t *oids = scep_oids();
    const unsigned char *cursor = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &cursor, (long)len);
    STACK_OF(X509) *ra = sk_X509_new_null();
    BIO *content = BIO_new(BIO_s_mem()), *empty = BIO_new_mem_buf("", 0);
    CMS_SignerInfo *si;
    X509_ALGOR *digest;
    const ASN1_OBJECT *oid;

    memset(rep, 0, sizeof(*rep));
    rep->fail_info = -1;
    if (!cms || sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1) {
        return 0;
    }
    rep->detached = CMS_is_detached(cms);
    sk_X509_push(ra, testmsg_pki()->ra_sign_cert);
    rep->signature_ok = CMS_verify(cms, ra, NULL, rep->detached ? empty : NULL, content,
                                   CMS_NO_SIGNER_CERT_VERIFY | CMS_NOINTERN | CMS_BINARY) == 1;
    si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    CMS_SignerInfo_get0_algs(si, NULL, NULL, &digest, NULL);
    X509_ALGOR_get0(&oid, NULL, NULL, digest);
    rep->digest_nid = OBJ_obj2nid(oid);
    rep->message_type = number_attr(p, si, oids->message_type);
    rep->status = number_attr(p, si, oids->pki_status);
    rep->fail_info = number_attr(p, si, oids->fail_info);
    rep->fail_text = string_attr(p, si, oids->fail_info_text, V_ASN1_UTF8STRING);
    rep->transaction_id = string_attr(p, si, oids->transaction_id, V_ASN1_PRINTABLESTRING);
    rep->sender_nonce = octets_attr(p, si, oids->sender_nonce);
    rep->recipient_nonce = octets_attr(p, si, oids->recipient_nonce);
    rep->content_len = (apr_size_t)BIO_pending(content);
    if (rep->signature_ok && rep->status == SCEP_STATUS_SUCCESS) {
        read_success(p, content, dev, rep);
    }
    BIO_free(empty);
    BIO_free(content);
    sk_X509_free(ra);
    CMS_ContentInfo_free(cms);
    return 1;
}
