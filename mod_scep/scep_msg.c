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
 * Parsing a device's pkiMessage (RFC 8894 section 3): the outer CMS
 * SignedData is read (BER or DER), its SCEP attributes taken, its signature
 * verified against the certificate it carries, the inner EnvelopedData
 * decrypted with the RA encryption key, and the messageData decoded by
 * message type.
 *
 * Order matters for the answer a device gets: once the transactionID and
 * senderNonce are known every problem can be a signed CertRep FAILURE
 * (an envelope that cannot be opened too: the device learns why); before
 * that only HTTP 400 is possible.
 */

#include <limits.h>

#include <apr_strings.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep.h"
#include "scep_algs.h"
#include "scep_oids.h"

/* Longest transactionID we accept: real ones are hex hashes or UUIDs. */
#define SCEP_MAX_TRANSACTION_ID 255
#define SCEP_DEFAULT_MAX_NONCE 64

/* IssuerAndSubject (RFC 8894 section 3.3.3), the body of a CertPoll. */
typedef struct scep_issuer_and_subject_st {
    X509_NAME *issuer;
    X509_NAME *subject;
} SCEP_ISSUER_AND_SUBJECT;

ASN1_SEQUENCE(SCEP_ISSUER_AND_SUBJECT) = {
    ASN1_SIMPLE(SCEP_ISSUER_AND_SUBJECT, issuer, X509_NAME),
    ASN1_SIMPLE(SCEP_ISSUER_AND_SUBJECT, subject, X509_NAME),
} static_ASN1_SEQUENCE_END(SCEP_ISSUER_AND_SUBJECT)

static apr_status_t fail(scep_problem_t *prob, scep_fail_info_t fail_info, int event,
                         const char *text)
{
    return scep_problem(prob, APR_EINVAL, fail_info, event, text);
}

/* The single value of a signed attribute, or NULL when absent or repeated. */
static ASN1_TYPE *signed_attr_value(CMS_SignerInfo *si, const ASN1_OBJECT *oid)
{
    X509_ATTRIBUTE *attr;
    int pos = CMS_signed_get_attr_by_OBJ(si, oid, -1);

    if (pos < 0 || CMS_signed_get_attr_by_OBJ(si, oid, pos) >= 0) {
        return NULL;
    }
    attr = CMS_signed_get_attr(si, pos);
    if (!attr || X509_ATTRIBUTE_count(attr) != 1) {
        return NULL;
    }
    return X509_ATTRIBUTE_get0_type(attr, 0);
}

/* A string attribute as text. PrintableString by the RFC; clients are
 * lenient about the string type, so are we, but not about its characters:
 * the value is echoed in replies and written to logs. */
static const char *printable_attr(apr_pool_t *p, CMS_SignerInfo *si, const ASN1_OBJECT *oid)
{
    ASN1_TYPE *value = signed_attr_value(si, oid);
    const ASN1_STRING *str;
    const unsigned char *data;
    int len, i;

    if (!value || (value->type != V_ASN1_PRINTABLESTRING && value->type != V_ASN1_UTF8STRING &&
                   value->type != V_ASN1_IA5STRING)) {
        return NULL;
    }
    str = value->value.asn1_string;
    data = ASN1_STRING_get0_data(str);
    len = ASN1_STRING_length(str);
    if (len <= 0 || len > SCEP_MAX_TRANSACTION_ID) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] > 0x7e) {
            return NULL;
        }
    }
    return apr_pstrmemdup(p, (const char *)data, (apr_size_t)len);
}

static int parse_message_type(const char *text)
{
    int value;

    return scep_parse_int(text, 0, 255, &value) ? value : -1;
}

static int known_request_type(int type)
{
    return type == SCEP_MSG_PKCSREQ || type == SCEP_MSG_RENEWALREQ || type == SCEP_MSG_CERTPOLL ||
           type == SCEP_MSG_GETCERT || type == SCEP_MSG_GETCRL;
}

/* Reads transactionID, senderNonce and messageType: after this a FAILURE
 * CertRep can be built, so problems found later can go back to the device. */
static apr_status_t read_scep_attributes(apr_pool_t *p, CMS_SignerInfo *si,
                                         const scep_parse_opts_t *opts, scep_request_t *req,
                                         scep_problem_t *prob)
{
    const scep_oids_t *oids = scep_oids();
    ASN1_TYPE *nonce;
    apr_size_t max_nonce = opts->max_nonce_len ? opts->max_nonce_len : SCEP_DEFAULT_MAX_NONCE;

    req->transaction_id = printable_attr(p, si, oids->transaction_id);
    if (!req->transaction_id) {
        return fail(prob, SCEP_FAIL_NONE, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                    "missing, repeated or non-printable transactionID attribute");
    }
    nonce = signed_attr_value(si, oids->sender_nonce);
    req->message_type = parse_message_type(printable_attr(p, si, oids->message_type));

    if (!nonce || nonce->type != V_ASN1_OCTET_STRING ||
        ASN1_STRING_length(nonce->value.octet_string) == 0) {
        return fail(prob, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                    "missing or empty senderNonce attribute");
    }
    if ((apr_size_t)ASN1_STRING_length(nonce->value.octet_string) > max_nonce) {
        /* Not echoed: a reply must not carry whatever size the sender chose. */
        return fail(prob, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                    "senderNonce attribute is too long");
    }
    req->sender_nonce = ASN1_OCTET_STRING_dup(nonce->value.octet_string);
    SCEP_OWN(p, req->sender_nonce, ASN1_OCTET_STRING_free);
    if (!known_request_type(req->message_type)) {
        return fail(prob, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_BAD_MESSAGE_TYPE,
                    "missing or unsupported messageType attribute");
    }
    return APR_SUCCESS;
}

/* The digests RFC 8894 allows, SHA-1 and SHA-2; MD5 only with
 * allow_legacy (*legacy is then set). One rule for the CMS signature and the
 * CSR's own: a device may not get through one what the other refuses. */
static int digest_allowed(int nid, const scep_parse_opts_t *opts, int *legacy)
{
    switch (nid) {
    case NID_sha1:
    case NID_sha224:
    case NID_sha256:
    case NID_sha384:
    case NID_sha512:
        return 1;
    case NID_md5:
        if (opts->allow_legacy) {
            *legacy = 1;
        }
        return opts->allow_legacy;
    default:
        return 0;
    }
}

static apr_status_t check_digest(CMS_SignerInfo *si, const scep_parse_opts_t *opts,
                                 scep_request_t *req, scep_problem_t *prob)
{
    X509_ALGOR *digest_alg = NULL;
    const ASN1_OBJECT *oid;
    int nid;

    CMS_SignerInfo_get0_algs(si, NULL, NULL, &digest_alg, NULL);
    X509_ALGOR_get0(&oid, NULL, NULL, digest_alg);
    nid = OBJ_obj2nid(oid);
    if (!digest_allowed(nid, opts, &req->legacy_alg)) {
        return fail(prob, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                    nid == NID_md5 ? "MD5 is not accepted (RFC 8894 forbids it; see "
                                     "SCEPAllowLegacyAlgorithms)"
                                   : "unsupported message digest algorithm");
    }
    req->digest = scep_md(nid);
    return APR_SUCCESS;
}

/* The signer certificate's key, before CMS_verify() computes anything with
 * it: within the server-wide limits (an oversized modulus or exponent costs
 * nothing to refuse), and one a reply can be encrypted to, so that nothing
 * is issued or recorded for a device that could not read its answer.
 * CMS_set1_signers_certs() finds the certificate CMS_verify() then uses. */
static apr_status_t check_signer_key(apr_pool_t *p, CMS_ContentInfo *cms, scep_problem_t *prob)
{
    STACK_OF(X509) *signers = NULL;
    const X509_PUBKEY *spki;
    const char *why = NULL;

    if (CMS_set1_signers_certs(cms, NULL, 0) >= 0) {
        signers = CMS_get0_signers(cms);
    }
    /* No certificate or several: CMS_verify() and verify_signature() say so. */
    if (sk_X509_num(signers) == 1) {
        spki = X509_get_X509_PUBKEY(sk_X509_value(signers, 0));
        why = scep_key_unusable(p, spki);
        why = why ? why : scep_key_undeliverable(p, spki);
    }
    sk_X509_free(signers);
    return why ? fail(prob, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                      apr_pstrcat(p, "the signer certificate's key is refused: ", why, NULL))
               : APR_SUCCESS;
}

/* Verifies the CMS signature with the certificate the message carries (a
 * device's self-signed one is not chained anywhere) and returns the signed
 * content: the pkcsPKIEnvelope. */
static apr_status_t verify_signature(apr_pool_t *p, CMS_ContentInfo *cms, scep_request_t *req,
                                     BIO **content, scep_problem_t *prob)
{
    STACK_OF(X509) *signers = NULL;
    BIO *out = BIO_new(BIO_s_mem());
    apr_status_t rv = APR_SUCCESS;

    if (!out) {
        return fail(prob, SCEP_FAIL_NONE, SCEP_EVENT_FAIL_TO_DECODE, "out of memory");
    }
    if (CMS_verify(cms, NULL, NULL, NULL, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
        rv = fail(prob, SCEP_FAIL_BAD_MESSAGE_CHECK, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                  "the message signature does not verify with the signer certificate it carries");
        goto leave;
    }
    signers = CMS_get0_signers(cms);
    if (!signers || sk_X509_num(signers) != 1) {
        rv = fail(prob, SCEP_FAIL_BAD_MESSAGE_CHECK, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                  "the message must have exactly one signer certificate");
        goto leave;
    }
    req->signer_cert = sk_X509_value(signers, 0);
    X509_up_ref(req->signer_cert);
    SCEP_OWN(p, req->signer_cert, X509_free);
    *content = out;
    out = NULL;

leave:
    sk_X509_free(signers);
    BIO_free(out);
    return rv;
}

static const EVP_CIPHER *allowed_cipher(int nid, int allow_legacy, int *legacy)
{
    switch (nid) {
    case NID_aes_128_cbc:
    case NID_aes_192_cbc:
    case NID_aes_256_cbc:
    case NID_des_ede3_cbc:
        return scep_cipher(nid);
    case NID_des_cbc:
        *legacy = 1;
        return allow_legacy ? scep_cipher(nid) : NULL;
    default:
        return NULL;
    }
}

/* The content-encryption algorithm of the envelope. The CMS API has no
 * accessor for it, the PKCS#7 structures (same ASN.1) expose it. */
static int envelope_cipher_nid(const unsigned char *der, long len)
{
    const unsigned char *cursor = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &cursor, len);
    int nid = NID_undef;

    if (p7 && PKCS7_type_is_enveloped(p7) && p7->d.enveloped && p7->d.enveloped->enc_data) {
        nid = OBJ_obj2nid(p7->d.enveloped->enc_data->algorithm->algorithm);
    }
    PKCS7_free(p7);
    return nid;
}

static apr_status_t decrypt_envelope(const scep_pki_t *pki, BIO *signed_content,
                                     const scep_parse_opts_t *opts, scep_request_t *req,
                                     BIO **plain, scep_problem_t *prob)
{
    const unsigned char *der;
    long len = BIO_get_mem_data(signed_content, (char **)&der);
    const unsigned char *cursor = der;
    CMS_ContentInfo *env = NULL;
    BIO *out = NULL;
    apr_status_t rv = APR_SUCCESS;
    int nid;

    env = d2i_CMS_ContentInfo(NULL, &cursor, len);
    if (!env || OBJ_obj2nid(CMS_get0_type(env)) != NID_pkcs7_enveloped) {
        rv = fail(prob, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_TO_DECRYPT_INNER,
                  "the signed content is not a CMS EnvelopedData");
        goto leave;
    }
    nid = envelope_cipher_nid(der, len);
    req->cipher = allowed_cipher(nid, opts->allow_legacy, &req->legacy_alg);
    if (!req->cipher) {
        rv = fail(prob, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_TO_DECRYPT_INNER,
                  nid == NID_des_cbc ? "single DES is not accepted (RFC 8894 forbids it; see "
                                       "SCEPAllowLegacyAlgorithms)"
                                     : "unsupported content-encryption algorithm");
        goto leave;
    }
    out = BIO_new(BIO_s_mem());
    if (!out || CMS_decrypt(env, pki->ra_enc_key, pki->ra_enc_cert, NULL, out, CMS_BINARY) != 1) {
        /* One answer for a wrong recipient, a key transport that does not
         * decrypt and content that does not: CMS_decrypt() goes on with a
         * random key after a failed RSA decryption (no padding oracle). */
        rv = fail(prob, SCEP_FAIL_BAD_MESSAGE_CHECK, SCEP_EVENT_FAIL_TO_DECRYPT_INNER,
                  "the envelope cannot be decrypted with the RA encryption key");
        goto leave;
    }
    *plain = out;
    out = NULL;

leave:
    BIO_free(out);
    CMS_ContentInfo_free(env);
    return rv;
}

static const char *csr_challenge(apr_pool_t *p, X509_REQ *csr)
{
    int pos = X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1);
    X509_ATTRIBUTE *attr = pos >= 0 ? X509_REQ_get_attr(csr, pos) : NULL;
    ASN1_TYPE *value = attr ? X509_ATTRIBUTE_get0_type(attr, 0) : NULL;
    unsigned char *utf8 = NULL;
    const char *challenge = NULL;
    int len;

    if (!value || value->type == V_ASN1_OBJECT || value->type == V_ASN1_NULL ||
        value->type == V_ASN1_BOOLEAN) {
        return NULL;
    }
    len = ASN1_STRING_to_UTF8(&utf8, value->value.asn1_string);
    if (len >= 0) {
        challenge = apr_pstrmemdup(p, (const char *)utf8, (apr_size_t)len);
        OPENSSL_cleanse(utf8, (size_t)len);
    }
    OPENSSL_free(utf8);
    return challenge;
}

static void free_pss_params(RSA_PSS_PARAMS *params)
{
    RSA_PSS_PARAMS_free(params);
}

/* The digest of an RSASSA-PSS signature: its hashAlgorithm, SHA-1 when
 * absent (RFC 4055), and the MGF1 hash must be the same (every encoder
 * writes them equal). NID_undef when the parameters do not decode. */
static int pss_digest_nid(apr_pool_t *p, const X509_ALGOR *alg)
{
    RSA_PSS_PARAMS *params = NULL;
    int ptype, md, mgf_md;
    const void *pval;
    const ASN1_OBJECT *oid;

    X509_ALGOR_get0(&oid, &ptype, &pval, alg);
    if (ptype == V_ASN1_SEQUENCE) {
        params = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS), alg->parameter);
        SCEP_OWN(p, params, free_pss_params);
    }
    if (!params) {
        return NID_undef;
    }
    md = params->hashAlgorithm ? OBJ_obj2nid(params->hashAlgorithm->algorithm) : NID_sha1;
    mgf_md = params->maskHash ? OBJ_obj2nid(params->maskHash->algorithm) : NID_sha1;
    return md == mgf_md ? md : NID_undef;
}

/* The CSR's own signature algorithm, by the rule of the CMS digest
 * (digest_allowed()); algorithms without a separate digest (Ed25519) are
 * left to the template, which decides on the key type. */
static apr_status_t check_csr_signature_alg(apr_pool_t *p, const scep_parse_opts_t *opts,
                                            scep_request_t *req, scep_problem_t *prob)
{
    const X509_ALGOR *alg = NULL;
    const ASN1_OBJECT *oid;
    int sig_nid, md_nid = NID_undef, pkey_nid = NID_undef;

    X509_REQ_get0_signature(req->csr, NULL, &alg);
    X509_ALGOR_get0(&oid, NULL, NULL, alg);
    sig_nid = OBJ_obj2nid(oid);
    if (sig_nid == NID_rsassaPss) {
        md_nid = pss_digest_nid(p, alg);
    }
    else if (!OBJ_find_sigid_algs(sig_nid, &md_nid, &pkey_nid)) {
        md_nid = -1;
    }
    else if (md_nid == NID_undef && pkey_nid != NID_undef) {
        return APR_SUCCESS;
    }
    if (!digest_allowed(md_nid, opts, &req->legacy_alg)) {
        return fail(prob, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                    md_nid == NID_md5
                        ? "the certificate request is signed with MD5, which is not accepted "
                          "(RFC 8894 forbids it; see SCEPAllowLegacyAlgorithms)"
                        : "the certificate request's signature algorithm is not supported");
    }
    return APR_SUCCESS;
}

/* The CSR's key and signature algorithm are checked before its signature,
 * like the signer's: refusing costs nothing whatever the key. */
static apr_status_t parse_csr(apr_pool_t *p, const unsigned char *der, long len,
                              const scep_parse_opts_t *opts, scep_request_t *req,
                              scep_problem_t *prob)
{
    const unsigned char *cursor = der;
    const char *why;
    EVP_PKEY *key;
    apr_status_t rv;

    req->csr = d2i_X509_REQ(NULL, &cursor, len);
    if (!req->csr) {
        return fail(prob, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                    "the messageData is not a PKCS#10 certificate request");
    }
    SCEP_OWN(p, req->csr, X509_REQ_free);
    why = scep_key_unusable(p, X509_REQ_get_X509_PUBKEY(req->csr));
    if (why) {
        return fail(prob, SCEP_FAIL_BAD_ALG, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                    apr_pstrcat(p, "the certificate request's key is refused: ", why, NULL));
    }
    if ((rv = check_csr_signature_alg(p, opts, req, prob)) != APR_SUCCESS) {
        return rv;
    }
    key = X509_REQ_get0_pubkey(req->csr);
    if (!key || X509_REQ_verify(req->csr, key) != 1) {
        return fail(prob, SCEP_FAIL_BAD_MESSAGE_CHECK, SCEP_EVENT_FAIL_DECODE_X509_REQUEST,
                    "the certificate request's own signature does not verify");
    }
    req->signer_is_csr_key = EVP_PKEY_eq(X509_get0_pubkey(req->signer_cert), key) == 1;
    req->challenge = csr_challenge(p, req->csr);
    return APR_SUCCESS;
}

static apr_status_t parse_issuer_and_serial(apr_pool_t *p, const unsigned char *der, long len,
                                            scep_request_t *req, scep_problem_t *prob)
{
    const unsigned char *cursor = der;
    PKCS7_ISSUER_AND_SERIAL *ias = d2i_PKCS7_ISSUER_AND_SERIAL(NULL, &cursor, len);

    if (!ias) {
        return fail(prob, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_NAME_NUMBER_FROM_MESSAGE,
                    "the messageData is not an IssuerAndSerialNumber");
    }
    req->issuer = X509_NAME_dup(ias->issuer);
    req->serial = ASN1_INTEGER_dup(ias->serial);
    PKCS7_ISSUER_AND_SERIAL_free(ias);
    SCEP_OWN(p, req->issuer, X509_NAME_free);
    SCEP_OWN(p, req->serial, ASN1_INTEGER_free);
    return APR_SUCCESS;
}

static apr_status_t parse_issuer_and_subject(apr_pool_t *p, const unsigned char *der, long len,
                                             scep_request_t *req, scep_problem_t *prob)
{
    const unsigned char *cursor = der;
    const ASN1_ITEM *item = ASN1_ITEM_rptr(SCEP_ISSUER_AND_SUBJECT);
    SCEP_ISSUER_AND_SUBJECT *ias =
        (SCEP_ISSUER_AND_SUBJECT *)ASN1_item_d2i(NULL, &cursor, len, item);

    if (!ias) {
        return fail(prob, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_FAIL_TO_GET_ID,
                    "the messageData is not an IssuerAndSubject");
    }
    req->issuer = X509_NAME_dup(ias->issuer);
    req->subject = X509_NAME_dup(ias->subject);
    ASN1_item_free((ASN1_VALUE *)ias, item);
    SCEP_OWN(p, req->issuer, X509_NAME_free);
    SCEP_OWN(p, req->subject, X509_NAME_free);
    return APR_SUCCESS;
}

static apr_status_t parse_message_data(apr_pool_t *p, BIO *plain, const scep_parse_opts_t *opts,
                                       scep_request_t *req, scep_problem_t *prob)
{
    const unsigned char *der;
    long len = BIO_get_mem_data(plain, (char **)&der);

    switch (req->message_type) {
    case SCEP_MSG_PKCSREQ:
    case SCEP_MSG_RENEWALREQ:
        return parse_csr(p, der, len, opts, req, prob);
    case SCEP_MSG_CERTPOLL:
        return parse_issuer_and_subject(p, der, len, req, prob);
    default: /* GetCert, GetCRL */
        return parse_issuer_and_serial(p, der, len, req, prob);
    }
}

static CMS_SignerInfo *only_signer_info(CMS_ContentInfo *cms)
{
    STACK_OF(CMS_SignerInfo) *infos = CMS_get0_SignerInfos(cms);

    return infos && sk_CMS_SignerInfo_num(infos) == 1 ? sk_CMS_SignerInfo_value(infos, 0) : NULL;
}

apr_status_t scep_request_parse(apr_pool_t *p, const scep_pki_t *pki, const unsigned char *der,
                                apr_size_t len, const scep_parse_opts_t *opts,
                                scep_request_t **preq, scep_problem_t *prob)
{
    const unsigned char *cursor = der;
    CMS_ContentInfo *cms = NULL;
    CMS_SignerInfo *si;
    BIO *signed_content = NULL, *plain = NULL;
    scep_request_t *req = apr_pcalloc(p, sizeof(*req));
    scep_problem_t local;
    apr_status_t rv;

    if (!prob) {
        prob = &local;
    }
    scep_problem(prob, APR_SUCCESS, SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL);
    req->message_type = -1;
    cms = len <= LONG_MAX ? d2i_CMS_ContentInfo(NULL, &cursor, (long)len) : NULL;
    if (!cms || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        rv = fail(prob, SCEP_FAIL_NONE, SCEP_EVENT_FAIL_TO_DECODE,
                  "the message is not a CMS SignedData");
        goto leave;
    }
    si = only_signer_info(cms);
    if (!si) {
        rv = fail(prob, SCEP_FAIL_NONE, SCEP_EVENT_FAIL_TO_RETRIEVE_INFO,
                  "the message must have exactly one SignerInfo");
        goto leave;
    }
    if ((rv = read_scep_attributes(p, si, opts, req, prob)) != APR_SUCCESS ||
        (rv = check_digest(si, opts, req, prob)) != APR_SUCCESS ||
        (rv = check_signer_key(p, cms, prob)) != APR_SUCCESS ||
        (rv = verify_signature(p, cms, req, &signed_content, prob)) != APR_SUCCESS ||
        (rv = decrypt_envelope(pki, signed_content, opts, req, &plain, prob)) != APR_SUCCESS) {
        goto leave;
    }
    rv = parse_message_data(p, plain, opts, req, prob);

leave:
    /* A problem without failInfo (nothing to answer to) is answered with
     * HTTP 400, not a CertRep. */
    *preq = (rv == APR_SUCCESS || prob->fail_info != SCEP_FAIL_NONE) ? req : NULL;
    BIO_free(plain);
    BIO_free(signed_content);
    CMS_ContentInfo_free(cms);
    return rv;
}

int scep_csr_key_usage(X509_REQ *csr)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    ASN1_BIT_STRING *usage;
    int bits = -1;

    usage = exts ? X509V3_get_d2i(exts, NID_key_usage, NULL, NULL) : NULL;
    if (usage) {
        bits = ASN1_STRING_length(usage) > 0 ? ASN1_STRING_get0_data(usage)[0] : 0;
        ASN1_BIT_STRING_free(usage);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return bits;
}
