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

/*
 * CertRep messages (RFC 8894 section 3.3.2) and the GetCACaps body.
 *
 * A CertRep is a SignedData by the RA signing key whose signed attributes
 * carry the SCEP status. On SUCCESS its content is an EnvelopedData, to the
 * key that signed the request, of a degenerate certs-only SignedData holding
 * the certificate (or CRL). On PENDING and FAILURE the content is empty.
 * The digest and the content-encryption algorithm mirror the request's: old
 * devices can only read what they can write.
 */

#include <limits.h>
#include <string.h>

#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>

#include "scep.h"
#include "scep_algs.h"
#include "scep_oids.h"

#define SCEP_NONCE_LEN 16

static apr_status_t fail_to(scep_problem_t *prob, int event, const char *text)
{
    return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, event, text);
}

static apr_status_t cms_to_der(apr_pool_t *p, CMS_ContentInfo *cms, unsigned char **der,
                               apr_size_t *len)
{
    unsigned char *buf = NULL;
    int n = i2d_CMS_ContentInfo(cms, &buf);

    if (n <= 0) {
        return APR_EGENERAL;
    }
    *der = apr_pmemdup(p, buf, (apr_size_t)n);
    *len = (apr_size_t)n;
    OPENSSL_free(buf);
    return APR_SUCCESS;
}

/* Built with the PKCS7 API because it encodes the certificates in the order
 * given, while OpenSSL's CMS API sorts the SET OF by encoding (DER) and would
 * put a CA certificate that encodes shorter before the issued one: clients
 * keep the first certificate of a CertRep (micromdm's scepclient) or encrypt
 * to the first of GetCACert's. A SET OF in any order is valid BER, and what
 * clients decode; it is not signed. */
apr_status_t scep_certs_only(apr_pool_t *p, STACK_OF(X509) *certs, X509_CRL *crl,
                             unsigned char **der, apr_size_t *len)
{
    PKCS7 *p7 = PKCS7_new();
    unsigned char *buf = NULL;
    int n = 0;
    int ok;
    int i;

    /* Detached: a degenerate SignedData has no eContent. */
    ok = p7 && PKCS7_set_type(p7, NID_pkcs7_signed) && PKCS7_content_new(p7, NID_pkcs7_data) &&
         PKCS7_set_detached(p7, 1) && (!crl || PKCS7_add_crl(p7, crl));
    for (i = 0; ok && i < sk_X509_num(certs); i++) {
        ok = PKCS7_add_certificate(p7, sk_X509_value(certs, i));
    }
    if (ok && (n = i2d_PKCS7(p7, &buf)) > 0) {
        *der = apr_pmemdup(p, buf, (apr_size_t)n);
        *len = (apr_size_t)n;
    }
    OPENSSL_free(buf);
    PKCS7_free(p7);
    return n > 0 ? APR_SUCCESS : APR_EGENERAL;
}

/* The pkcsPKIEnvelope of a SUCCESS, encrypted to the request's signer. */
static BIO *success_envelope(apr_pool_t *p, const scep_request_t *req, const scep_reply_t *reply)
{
    STACK_OF(X509) *recipients = sk_X509_new_null();
    const EVP_CIPHER *cipher = req->cipher ? req->cipher : scep_cipher(NID_aes_128_cbc);
    CMS_ContentInfo *env = NULL;
    BIO *payload = NULL;
    BIO *out = NULL;
    unsigned char *der;
    apr_size_t len;

    if (!recipients || !sk_X509_push(recipients, req->signer_cert) ||
        scep_certs_only(p, reply->certs, reply->crl, &der, &len) != APR_SUCCESS || len > INT_MAX ||
        !(payload = BIO_new_mem_buf(der, (int)len))) {
        goto leave;
    }
    env = CMS_encrypt(recipients, payload, cipher, CMS_BINARY);
    out = env ? BIO_new(BIO_s_mem()) : NULL;
    if (out && i2d_CMS_bio(out, env) <= 0) {
        BIO_free(out);
        out = NULL;
    }

leave:
    CMS_ContentInfo_free(env);
    BIO_free(payload);
    sk_X509_free(recipients);
    return out;
}

/* With a length of -1 OpenSSL would take text for an ASN1_STRING. */
static int add_string(CMS_SignerInfo *si, const ASN1_OBJECT *oid, int type, const char *text)
{
    return CMS_signed_add1_attr_by_OBJ(si, oid, type, text, (int)strlen(text));
}

static int add_printable(CMS_SignerInfo *si, const ASN1_OBJECT *oid, const char *text)
{
    return add_string(si, oid, V_ASN1_PRINTABLESTRING, text);
}

static int add_octets(CMS_SignerInfo *si, const ASN1_OBJECT *oid, const unsigned char *data,
                      int len)
{
    return CMS_signed_add1_attr_by_OBJ(si, oid, V_ASN1_OCTET_STRING, data, len);
}

static int add_scep_attributes(CMS_SignerInfo *si, const scep_request_t *req,
                               const scep_reply_t *reply, apr_pool_t *p)
{
    const scep_oids_t *oids = scep_oids();
    unsigned char nonce[SCEP_NONCE_LEN];
    int ok;

    if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
        return 0;
    }
    ok = add_printable(si, oids->message_type, apr_itoa(p, SCEP_MSG_CERTREP)) &&
         add_printable(si, oids->pki_status, apr_itoa(p, reply->status)) &&
         add_printable(si, oids->transaction_id, req->transaction_id) &&
         add_octets(si, oids->sender_nonce, nonce, sizeof(nonce));
    if (ok && req->sender_nonce) {
        ok = add_octets(si, oids->recipient_nonce, ASN1_STRING_get0_data(req->sender_nonce),
                        ASN1_STRING_length(req->sender_nonce));
    }
    if (ok && reply->status == SCEP_STATUS_FAILURE) {
        ok = add_printable(si, oids->fail_info, apr_itoa(p, reply->fail_info));
        if (ok && reply->fail_text) {
            ok = add_string(si, oids->fail_info_text, V_ASN1_UTF8STRING, reply->fail_text);
        }
    }
    return ok;
}

apr_status_t scep_certrep_build(apr_pool_t *p, const scep_pki_t *pki, const scep_request_t *req,
                                const scep_reply_t *reply, unsigned char **der, apr_size_t *len,
                                scep_problem_t *prob)
{
    const EVP_MD *md = req->digest ? req->digest : scep_md(NID_sha256);
    unsigned int flags = CMS_BINARY | CMS_NOSMIMECAP;
    CMS_ContentInfo *cms = NULL;
    CMS_SignerInfo *si;
    BIO *content = NULL;
    apr_status_t rv = APR_SUCCESS;

    if (reply->status == SCEP_STATUS_SUCCESS) {
        content = success_envelope(p, req, reply);
        if (!content) {
            rv = fail_to(prob, SCEP_EVENT_FAIL_TO_ENCRYPT,
                         "cannot encrypt the reply to the requester's certificate");
            goto leave;
        }
    }
    else {
        /* No pkcsPKIEnvelope (RFC 8894 section 3.3.2), but an empty eContent
         * rather than none: certmonger verifies replies with OpenSSL's PKCS7
         * API, which refuses a SignedData without content ("no content"). */
        content = BIO_new_mem_buf("", 0);
    }
    cms = CMS_sign(NULL, NULL, NULL, NULL, flags | CMS_PARTIAL);
    si = cms ? CMS_add1_signer(cms, pki->ra_sign_cert, pki->ra_sign_key, md, flags) : NULL;
    if (!si || !add_scep_attributes(si, req, reply, p) || !content ||
        CMS_final(cms, content, NULL, flags) != 1) {
        rv = fail_to(prob, SCEP_EVENT_FAIL_TO_SIGN, "cannot sign the reply with the RA key");
        goto leave;
    }
    if (cms_to_der(p, cms, der, len) != APR_SUCCESS) {
        rv = fail_to(prob, SCEP_EVENT_FAIL_TO_SIGN, "cannot encode the reply");
    }

leave:
    BIO_free(content);
    CMS_ContentInfo_free(cms);
    return rv;
}

apr_status_t scep_next_ca_body(apr_pool_t *p, const scep_pki_t *pki, X509 *next_ca,
                               const EVP_MD *md, unsigned char **der, apr_size_t *len,
                               scep_problem_t *prob)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    X509 *signer = pki->ca_key ? pki->ca_cert : pki->ra_sign_cert;
    EVP_PKEY *key = pki->ca_key ? pki->ca_key : pki->ra_sign_key;
    unsigned int flags = CMS_BINARY | CMS_NOSMIMECAP;
    CMS_ContentInfo *cms = NULL;
    CMS_SignerInfo *si;
    BIO *content = NULL;
    unsigned char *inner;
    apr_size_t inner_len;
    apr_status_t rv = APR_SUCCESS;

    if (!certs || !sk_X509_push(certs, next_ca) ||
        scep_certs_only(p, certs, NULL, &inner, &inner_len) != APR_SUCCESS || inner_len > INT_MAX ||
        !(content = BIO_new_mem_buf(inner, (int)inner_len))) {
        rv = fail_to(prob, SCEP_EVENT_FAIL_TO_SIGN, "cannot encode the next CA certificate");
        goto leave;
    }
    cms = CMS_sign(NULL, NULL, NULL, NULL, flags | CMS_PARTIAL);
    si = cms ? CMS_add1_signer(cms, signer, key, md ? md : scep_md(NID_sha256), flags) : NULL;
    if (!si || CMS_final(cms, content, NULL, flags) != 1 ||
        cms_to_der(p, cms, der, len) != APR_SUCCESS) {
        rv = fail_to(prob, SCEP_EVENT_FAIL_TO_SIGN,
                     pki->ca_key ? "cannot sign the next CA certificate with the CA key"
                                 : "cannot sign the next CA certificate with the RA key");
    }
leave:
    CMS_ContentInfo_free(cms);
    BIO_free(content);
    sk_X509_free(certs);
    return rv;
}

const char *scep_capabilities(apr_pool_t *p, unsigned int caps)
{
    /* RFC 8894 asks for the exact case; keywords implied by SCEPStandard are
     * listed too because older clients only look for them. Every digest
     * scep_request_parse() accepts is listed (MD5 is legacy, never offered):
     * SHA-224 and SHA-384 are no RFC 8894 keywords, but sscep and others
     * pick them when offered, and clients ignore keywords they do not know. */
    return apr_pstrcat(p, "POSTPKIOperation\n", (caps & SCEP_CAP_RENEWAL) ? "Renewal\n" : "",
                       (caps & SCEP_CAP_NEXT_CA_CERT) ? "GetNextCACert\n" : "",
                       "SHA-1\nSHA-224\nSHA-256\nSHA-384\nSHA-512\nAES\nDES3\nSCEPStandard\n",
                       NULL);
}
