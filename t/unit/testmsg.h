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
 * The device side of SCEP for unit tests: building pkiMessages (with every
 * option a hostile or old client may pick) and reading CertReps. Built on
 * OpenSSL's CMS API directly, not on the core's reply code, so that the
 * core is checked against an independent reading.
 */
#ifndef mod_scep_testmsg_h
#define mod_scep_testmsg_h

#include <apr_pools.h>

#include <openssl/cms.h>

#include "scep.h"

/* A device: key and the self-signed certificate it signs requests with. */
typedef struct testmsg_device_t {
    EVP_PKEY *key;
    X509 *cert;
} testmsg_device_t;

/* An in-memory PKI with separate RA certificates (made once per process,
 * with OpenSSL's legacy provider loaded for single DES). */
const scep_pki_t *testmsg_pki(void);
/* A fresh RSA-2048 device whose self-signed certificate names subject. */
testmsg_device_t *testmsg_device(apr_pool_t *p, const char *subject);
/* A device with this key (any type that signs). */
testmsg_device_t *testmsg_device_with_key(apr_pool_t *p, const char *subject, EVP_PKEY *key);

typedef struct testmsg_opts_t {
    int message_type;             /* default PKCSReq */
    const char *transaction_id;   /* default "testmsg-txid" */
    const unsigned char *nonce;   /* default 16 fixed bytes */
    int nonce_len;                /* -1: no senderNonce attribute */
    const EVP_CIPHER *cipher;     /* default AES-128-CBC */
    const EVP_MD *md;             /* default SHA-256 */
    int oaep;                     /* RSAES-OAEP key transport */
    int ber;                      /* indefinite-length BER outer encoding */
    X509 *recipient;              /* default the RA encryption certificate */
    X509 *carried_cert;           /* carried instead of the device's certificate: the
                                   * SignerInfo names it when issuer and serial are the same */
    const unsigned char *content; /* messageData DER */
    apr_size_t content_len;
} testmsg_opts_t;

/* Defaults for a PKCSReq carrying csr_der. */
void testmsg_defaults(testmsg_opts_t *opts, const unsigned char *content, apr_size_t len);

/* The DER IssuerAndSerialNumber of GetCert and GetCRL's messageData; NULL
 * when OpenSSL fails. */
unsigned char *testmsg_issuer_and_serial(apr_pool_t *p, const X509_NAME *issuer,
                                         const ASN1_INTEGER *serial, apr_size_t *len);

/* The DER (or BER) pkiMessage signed by the device. */
unsigned char *testmsg_build(apr_pool_t *p, const testmsg_device_t *dev, const testmsg_opts_t *opts,
                             apr_size_t *len);

/* A DER CSR of the device's key with an optional challenge and keyUsage. */
unsigned char *testmsg_csr(apr_pool_t *p, const testmsg_device_t *dev, const char *subject,
                           const char *challenge, const char *key_usage, apr_size_t *len);

/* What testmsg_certrep_t has for a number attribute that is not one. */
#define TESTMSG_NOT_A_NUMBER (-2)

typedef struct testmsg_certrep_t {
    int signature_ok;
    int message_type; /* -1 when absent */
    int status;       /* -1 when absent */
    int fail_info;    /* -1 when absent */
    const char *fail_text;
    const char *transaction_id;
    ASN1_OCTET_STRING *sender_nonce;
    ASN1_OCTET_STRING *recipient_nonce;
    int digest_nid;
    int detached;           /* no eContent at all */
    apr_size_t content_len; /* length of the signed content */
    int cipher_nid;         /* SUCCESS: content-encryption of the envelope */
    STACK_OF(X509) *certs;  /* SUCCESS: decrypted certificates, in order */
} testmsg_certrep_t;

/* Reads a CertRep as a device would; returns 0 when it cannot be parsed. */
int testmsg_read_certrep(apr_pool_t *p, const unsigned char *der, apr_size_t len,
                         const testmsg_device_t *dev, testmsg_certrep_t *rep);

#endif /* mod_scep_testmsg_h */
