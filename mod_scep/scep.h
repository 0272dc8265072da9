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
 * The httpd-free core of mod_scep: SCEP (RFC 8894) messages, replies, the
 * built-in CA and the PKI it runs on. Nothing here includes httpd headers,
 * so the core is unit-tested and reused by the scepctl tool without a
 * server. Functions report failures in a scep_problem_t that the caller
 * logs (with the NDES event ID) and, where a message was parsed, turns
 * into a signed CertRep FAILURE.
 *
 * Every OpenSSL object handed out by the core is owned by the pool it was
 * created in (a cleanup frees it), so callers never free them by hand.
 */
#ifndef mod_scep_scep_h
#define mod_scep_scep_h

#include <apr_dbd.h>
#include <apr_global_mutex.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* ----------------------------------------------------------------------
 * Problems: what went wrong, for the log and for the CertRep.
 */

/* failInfo values (RFC 8894 section 3.2.1.4). */
typedef enum {
    SCEP_FAIL_NONE = -1,
    SCEP_FAIL_BAD_ALG = 0,
    SCEP_FAIL_BAD_MESSAGE_CHECK = 1,
    SCEP_FAIL_BAD_REQUEST = 2,
    SCEP_FAIL_BAD_TIME = 3,
    SCEP_FAIL_BAD_CERT_ID = 4
} scep_fail_info_t;

/* RFC 8894's name of a failInfo ("badRequest"...); NULL for SCEP_FAIL_NONE. */
const char *scep_fail_info_name(scep_fail_info_t fail_info);

/* NDES event IDs (white paper, "Error Events") used in our log lines: one
 * list, for the enum and for scep_event_text(). */
#define SCEP_EVENTS(X) \
    X(SCEP_EVENT_FAILED_TO_LOAD, 2) \
    X(SCEP_EVENT_NO_PASSWORD_TEMPLATE, 6) \
    X(SCEP_EVENT_GET_CA_CERT_FAILED, 7) \
    X(SCEP_EVENT_FAILED_CA_INFO, 8) \
    X(SCEP_EVENT_FAILED_CA_CERT, 9) \
    X(SCEP_EVENT_FAILED_RA_CERT, 10) \
    X(SCEP_EVENT_NO_OPERATION, 11) \
    X(SCEP_EVENT_NO_MESSAGE, 12) \
    X(SCEP_EVENT_FAIL_TO_ENCRYPT, 13) \
    X(SCEP_EVENT_FAIL_TO_SIGN, 14) \
    X(SCEP_EVENT_FAIL_TO_CONVERT, 15) \
    X(SCEP_EVENT_FAIL_TO_DECODE, 16) \
    X(SCEP_EVENT_FAIL_TO_RETRIEVE_INFO, 17) \
    X(SCEP_EVENT_FAIL_TO_DECRYPT_INNER, 18) \
    X(SCEP_EVENT_FAIL_TO_GET_CERT_FROM_NUMBER, 19) \
    X(SCEP_EVENT_FAIL_CERT_REQ, 23) \
    X(SCEP_EVENT_FAIL_NAME_NUMBER_FROM_MESSAGE, 24) \
    X(SCEP_EVENT_FAIL_TO_GET_ID, 25) \
    X(SCEP_EVENT_NO_PASSWORD, 28) \
    X(SCEP_EVENT_INVALID_PASSWORD, 29) \
    X(SCEP_EVENT_FAIL_SUBMIT, 31) \
    X(SCEP_EVENT_RA_EXPIRE, 34) \
    X(SCEP_EVENT_RA_CLOSE_TO_EXPIRE, 35) \
    X(SCEP_EVENT_BAD_MESSAGE_TYPE, 38) \
    X(SCEP_EVENT_NO_KEY_USAGE, 39) \
    X(SCEP_EVENT_NO_PASSWORD_STANDALONE, 41) \
    X(SCEP_EVENT_FAIL_DECODE_X509_REQUEST, 42) \
    X(SCEP_EVENT_INVALID_USAGE_FOR_PASSWORD, 43) \
    X(SCEP_EVENT_GETCRL_FAILED, 44) \
    X(SCEP_EVENT_NOMATCH_ISSUERNAME_SERIALNUMBER, 45) \
    X(SCEP_EVENT_FAILED_HASH_ALGORITHM, 46) \
    X(SCEP_EVENT_FAILED_DECRYPT_PASSWORD, 49)

enum {
    SCEP_EVENT_NONE = 0,
#define SCEP_EVENT_VALUE(name, id) name = (id),
    SCEP_EVENTS(SCEP_EVENT_VALUE)
#undef SCEP_EVENT_VALUE
};

/* " (NDES event N)" for an event of the list, "" for SCEP_EVENT_NONE (and
 * for a number that is none of them): how every log line names its event,
 * as its last words. A static string. */
const char *scep_event_text(int event);

typedef struct scep_problem_t {
    scep_fail_info_t fail_info; /* SCEP_FAIL_NONE: no CertRep FAILURE possible */
    int event;                  /* NDES event ID, SCEP_EVENT_NONE if none */
    const char *text;           /* for the log and failInfoText: never a secret */
} scep_problem_t;

/* Fills prob (when not NULL) and returns rv, so callers can write
 * `return scep_problem(prob, APR_EINVAL, SCEP_FAIL_BAD_REQUEST, 42, "...")`. */
apr_status_t scep_problem(scep_problem_t *prob, apr_status_t rv, scep_fail_info_t fail_info,
                          int event, const char *text);

/* Registers a cleanup on p that frees the object with the given function. */
void scep_pool_own(apr_pool_t *p, void *obj, void (*free_fn)(void *));
#define SCEP_OWN(p, obj, fn) scep_pool_own((p), (obj), (void (*)(void *))(fn))

/* Upper-case hex of a buffer, on p. */
const char *scep_hex(apr_pool_t *p, const unsigned char *buf, apr_size_t len);
/* SHA-1 thumbprint of a certificate as NDES shows it: 40 upper-case hex digits. */
const char *scep_cert_thumbprint(apr_pool_t *p, X509 *cert);
/* SHA-256 of a certificate's DER: 64 upper-case hex digits. */
const char *scep_cert_sha256(apr_pool_t *p, X509 *cert);
/* SHA-256 hex of the whole DER SubjectPublicKeyInfo (X509_REQ_get_X509_PUBKEY(),
 * X509_get_X509_PUBKEY()), algorithm and parameters included (rsaEncryption's
 * absent parameters read as NULL): how a transaction is tied to its key. */
const char *scep_key_id(apr_pool_t *p, const X509_PUBKEY *spki);
/* SHA-256 hex of the subjectPublicKey bits alone: the key id of records made
 * before schema version 3 (SCEP_KEY_ID_BITS_PREFIX), compared only for them. */
const char *scep_key_bits_id(apr_pool_t *p, const X509_PUBKEY *spki);
#define SCEP_KEY_ID_BITS_PREFIX "bits:"
/* SHA-256 hex of a CSR's subject, key (as scep_key_id() reads it) and
 * attributes but the challenge password: what makes a resent request the same
 * request, whatever its signature and password. */
const char *scep_csr_digest(apr_pool_t *p, const X509_REQ *csr);
/* One-line RFC 2253 name, on p. */
const char *scep_name_text(apr_pool_t *p, const X509_NAME *name);
/* PEM text of a certificate / a CRL / a CSR on p, NULL on failure. */
const char *scep_cert_pem(apr_pool_t *p, X509 *cert);
const char *scep_crl_pem(apr_pool_t *p, X509_CRL *crl);
const char *scep_csr_pem(apr_pool_t *p, X509_REQ *csr);
/* PEM of csr as the records keep a held request: without challengePassword
 * attributes and with an empty signature (so it does not verify). */
const char *scep_csr_pem_at_rest(apr_pool_t *p, X509_REQ *csr);
/* The device's CSR as it came (DER, signature and challengePassword
 * intact) sealed for the records of a request held for an external CA: a
 * CMS (Auth)EnvelopedData with AES-256-GCM to the certificate `to` (the RA
 * encryption certificate), as PEM ("CMS"), on p; NULL on failure (OpenSSL's
 * queue says why). */
const char *scep_csr_seal(apr_pool_t *p, X509_REQ *csr, X509 *to);
/* The CSR of scep_csr_seal()'s PEM, opened with key (the RA encryption
 * key), on p; NULL when it does not open (another key, altered) or does
 * not read. */
X509_REQ *scep_csr_unseal(apr_pool_t *p, const char *sealed, EVP_PKEY *key);
/* The length (1 to 4) of the UTF-8 character text starts with, its code
 * point in *code; 0 when the bytes there are not one (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
apr_size_t scep_utf8_char(const char *text, unsigned long *code);
/* text (NULL too) with every byte that is not part of a UTF-8 character
 * replaced by U+FFFD: the records' text of a device's names (OpenSSL prints
 * a UPN's or a BMPString's bytes as they are; PostgreSQL refuses text that
 * is not UTF-8). */
const char *scep_utf8_text(apr_pool_t *p, const char *text);
/* 1 for the code points a terminal or a line-oriented reader acts on: C0,
 * DEL and C1 controls. */
int scep_char_is_control(unsigned long code);
/* text from a device or the records, safe to show on a terminal, in a
 * line of a list or a log, on a page: tab, newline and carriage return as
 * \t \n \r, other control characters (C0, DEL, C1) and bytes that are not
 * UTF-8 as \xNN (upper-case hex, one per byte); all else (printable ASCII,
 * valid UTF-8) as it is. With SCEP_ESCAPE_BACKSLASH a backslash becomes \\,
 * so that the text can be restored (scepctl's lists, for scripts); without,
 * it stands for itself (pages and logs, for people: RFC 2253 names are full
 * of backslashes). */
#define SCEP_ESCAPE_BACKSLASH 1
const char *scep_escape_text(apr_pool_t *p, const char *text, int flags);
/* A time as RFC 3339 UTC text, whole seconds: YYYY-MM-DDTHH:MM:SSZ, on p
 * (the pages' JSON and the notifications). */
const char *scep_time_text(apr_pool_t *p, apr_time_t t);
/* 1 when text is a decimal number in [min, max] and nothing else (no sign
 * but '-', no space), which then is in *value; 0 otherwise (text NULL too). */
int scep_parse_int(const char *text, int min, int max, int *value);
/* apr_global_mutex_lock for mutexes that are never held together, trying
 * again while fcntl locks report a deadlock that is not one. */
apr_status_t scep_global_mutex_lock(apr_global_mutex_t *mutex);

/* "FILE: <APR error text>", on p. */
const char *scep_file_error(apr_pool_t *p, const char *file, apr_status_t rv);
/* Reads the whole of a regular file of at most max bytes into *data
 * (NUL-terminated after its *len bytes), on p. On failure *why, on p,
 * names the file and what is wrong: it cannot be opened or read (the APR
 * status), it is not a regular file or larger than max (APR_EINVAL). */
apr_status_t scep_read_file(apr_pool_t *p, const char *file, apr_size_t max, char **data,
                            apr_size_t *len, const char **why);
/* scep_read_file() for a file holding a key or a password, with the one
 * rule of every such file: its owner's alone. A file that group or others
 * may access at all (any permission bit but the owner's) is refused with
 * APR_EACCES and a *why naming the file, its mode and the fix (chmod 600).
 * The mode is checked on the open file, not on the name. The caller
 * cleanses *data when done. */
apr_status_t scep_read_private_file(apr_pool_t *p, const char *file, apr_size_t max, char **data,
                                    apr_size_t *len, const char **why);

/* ----------------------------------------------------------------------
 * The PKI: CA and RA certificates and keys, loaded once at startup
 * (scep_pki.c).
 */

typedef struct scep_pki_config_t {
    const char *ca_cert_file;     /* PEM: the issuing CA certificate */
    const char *ca_key_file;      /* PEM: its key (built-in CA) */
    const char *ca_chain_file;    /* PEM: intermediates/root above the CA, may be NULL */
    apr_array_header_t *ra_files; /* of scep_ra_file_t; empty: the CA key acts as RA */
    int include_root;             /* GetCACert lists the root too (default on) */
} scep_pki_config_t;

typedef struct scep_ra_file_t {
    const char *cert_file;
    const char *key_file;
} scep_ra_file_t;

typedef struct scep_pki_t {
    X509 *ca_cert;
    EVP_PKEY *ca_key;      /* NULL when no built-in CA key is configured */
    STACK_OF(X509) *chain; /* certificates above ca_cert, nearest first */
    X509 *ra_sign_cert;    /* signs CertReps: the CA itself in simple mode */
    EVP_PKEY *ra_sign_key;
    X509 *ra_enc_cert; /* devices encrypt to it: the CA itself in simple mode */
    EVP_PKEY *ra_enc_key;
    int separate_ra;           /* RA certificates distinct from the CA */
    const char *ca_thumbprint; /* scep_cert_thumbprint(ca_cert) */
    /* The GetCACert reply, built once. */
    const char *getcacert_type; /* application/x-x509-ca-ra-cert or application/x-x509-ca-cert */
    const unsigned char *getcacert_body;
    apr_size_t getcacert_len;
    apr_time_t ra_not_after;        /* earliest expiry of the RA certificates in use */
    apr_array_header_t *ra_skipped; /* of const char *: unfit RA candidates passed over,
                                     * "FILE: why" (for a warning) */
} scep_pki_t;

/* Loads and checks everything by the white paper's "Service Startup" rules:
 * RA signing certificate with keyUsage digitalSignature, RA encryption
 * certificate with keyUsage keyEncipherment, both with EKU Certificate
 * Request Agent, private key present and matching, issued by the CA with a
 * valid chain, not expired; among several candidates the most recently
 * issued (latest notBefore) wins. Failures name the file and the reason
 * (event 9 for the CA, 10 for the RA, 34 when expired). */
apr_status_t scep_pki_load(apr_pool_t *p, const scep_pki_config_t *conf, scep_pki_t **pki,
                           scep_problem_t *prob);

/* Reads a PEM private key; refuses one readable by group or others. A
 * pkcs11: URI instead of a file names a key in a token (scep_key_pkcs11.h). */
apr_status_t scep_read_private_key(apr_pool_t *p, const char *file, EVP_PKEY **key,
                                   scep_problem_t *prob);
/* Reads all PEM certificates of a file. */
apr_status_t scep_read_certs(apr_pool_t *p, const char *file, STACK_OF(X509) **certs,
                             scep_problem_t *prob);
/* Reads a PEM file that must hold exactly one certificate. */
apr_status_t scep_read_cert(apr_pool_t *p, const char *file, X509 **cert, scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * Public keys a device sends (scep_key.c), read without computing with them.
 */

/* Server-wide limits on every key a message carries (the signer
 * certificate's and the CSR's), checked before any operation with it:
 * OpenSSL's own ceiling for RSA operations, and the CA/Browser Forum's
 * largest public exponent (2^256-1). Templates may only be stricter. */
#define SCEP_MAX_RSA_BITS 16384
#define SCEP_MAX_RSA_EXPONENT_BITS 256

/* NULL when the key is within the server-wide limits: RSA (rsaEncryption
 * or RSASSA-PSS) of at most SCEP_MAX_RSA_BITS with an exponent of at most
 * SCEP_MAX_RSA_EXPONENT_BITS, EC on a named curve (RFC 5480: explicit
 * parameters refused), another type of at most SCEP_MAX_RSA_BITS; else
 * why not, for a failInfoText. Nothing is computed with the key. */
const char *scep_key_unusable(apr_pool_t *p, const X509_PUBKEY *spki);

/* NULL when a CertRep can be encrypted to a certificate with this key
 * (RSA: key transport, EC: key agreement); else why not (RSASSA-PSS, DSA,
 * Ed25519, ... keys only sign). */
const char *scep_key_undeliverable(apr_pool_t *p, const X509_PUBKEY *spki);

/* The named curve (NID) of an EC SPKI; NID_undef when it is not EC or its
 * parameters are not a namedCurve OID. */
int scep_key_curve(const X509_PUBKEY *spki);

/* The NID of a curve OpenSSL can compute on, by NIST name ("P-256") or
 * OpenSSL name ("prime256v1", "secp256k1"); NID_undef for others. And the
 * name a refusal shows: the NIST one where there is one. */
int scep_curve_nid(const char *name);
const char *scep_curve_name(int nid);

/* ----------------------------------------------------------------------
 * Requests (scep_msg.c): the pkiMessage a device sent.
 */

typedef enum {
    SCEP_MSG_CERTREP = 3,
    SCEP_MSG_RENEWALREQ = 17,
    SCEP_MSG_PKCSREQ = 19,
    SCEP_MSG_CERTPOLL = 20,
    SCEP_MSG_GETCERT = 21,
    SCEP_MSG_GETCRL = 22
} scep_msg_type_t;

/* RFC 8894's name of a messageType ("PKCSReq"...); NULL for another number. */
const char *scep_message_type_name(int type);

typedef enum {
    SCEP_STATUS_SUCCESS = 0,
    SCEP_STATUS_FAILURE = 2,
    SCEP_STATUS_PENDING = 3
} scep_pki_status_t;

typedef struct scep_request_t {
    int message_type;           /* scep_msg_type_t, or what the device sent */
    const char *transaction_id; /* NULL until parsed */
    ASN1_OCTET_STRING *sender_nonce;
    X509 *signer_cert;        /* the certificate that signed the message */
    const EVP_MD *digest;     /* the digest the device signed with */
    const EVP_CIPHER *cipher; /* the envelope's content-encryption algorithm */
    int legacy_alg;           /* single DES or MD5 was used */
    /* messageData, decrypted: */
    X509_REQ *csr;         /* PKCSReq, RenewalReq */
    X509_NAME *issuer;     /* CertPoll, GetCert, GetCRL */
    X509_NAME *subject;    /* CertPoll */
    ASN1_INTEGER *serial;  /* GetCert, GetCRL */
    const char *challenge; /* the CSR's challengePassword, NULL if none */
    int signer_is_csr_key; /* the message was signed with the CSR's key */
} scep_request_t;

typedef struct scep_parse_opts_t {
    int allow_legacy; /* accept single DES and MD5 (RFC 8894 forbids them) */
    apr_size_t max_nonce_len;
} scep_parse_opts_t;

/* Parses, verifies and decrypts a pkiMessage (BER or DER).
 * On failure *req is still set when enough was parsed to answer with a
 * CertRep FAILURE (transactionID, senderNonce, messageType known), and
 * prob->fail_info says which; otherwise *req is NULL and the caller answers
 * HTTP 400. */
apr_status_t scep_request_parse(apr_pool_t *p, const scep_pki_t *pki, const unsigned char *der,
                                apr_size_t len, const scep_parse_opts_t *opts, scep_request_t **req,
                                scep_problem_t *prob);

/* The CSR's keyUsage bits as NDES reads them (0x80 digitalSignature,
 * 0x20 keyEncipherment), or -1 when the CSR has no keyUsage extension. */
int scep_csr_key_usage(X509_REQ *csr);

/* Decodes the `message` of a GET PKIOperation after URL unescaping,
 * leniently: '+' turned into ' ', raw newlines, the base64url alphabet,
 * missing padding. */
apr_status_t scep_decode_get_message(apr_pool_t *p, const char *text, unsigned char **der,
                                     apr_size_t *len);

/* ----------------------------------------------------------------------
 * Replies (scep_reply.c).
 */

typedef struct scep_reply_t {
    scep_pki_status_t status;
    scep_fail_info_t fail_info; /* FAILURE only */
    const char *fail_text;      /* FAILURE only, optional */
    STACK_OF(X509) *certs;      /* SUCCESS: the issued certificate first */
    X509_CRL *crl;              /* SUCCESS of GetCRL */
} scep_reply_t;

/* Builds a CertRep for req, signed by the RA signing key with req's digest,
 * the SUCCESS payload enveloped to req's signer with req's cipher. DER. */
apr_status_t scep_certrep_build(apr_pool_t *p, const scep_pki_t *pki, const scep_request_t *req,
                                const scep_reply_t *reply, unsigned char **der, apr_size_t *len,
                                scep_problem_t *prob);

/* A degenerate certs-only SignedData (no signers, no content) holding
 * certs, in their order, and, when not NULL, crl: the GetCACert body and a
 * SUCCESS payload. */
apr_status_t scep_certs_only(apr_pool_t *p, STACK_OF(X509) *certs, X509_CRL *crl,
                             unsigned char **der, apr_size_t *len);

/* The GetNextCACert body (RFC 8894 section 4.7.1): a SignedData whose
 * content is a degenerate certs-only SignedData holding next_ca, signed
 * with md by the current CA key, or by the RA signing key when the CA key
 * is not here (an RA in front of an external CA). Failures have event 14. */
apr_status_t scep_next_ca_body(apr_pool_t *p, const scep_pki_t *pki, X509 *next_ca,
                               const EVP_MD *md, unsigned char **der, apr_size_t *len,
                               scep_problem_t *prob);

/* Capabilities that depend on configuration (RFC 8894 section 3.5.2). */
#define SCEP_CAP_RENEWAL 0x01
#define SCEP_CAP_NEXT_CA_CERT 0x02

/* GetCACaps body: what always works, plus the SCEP_CAP_* flags given. */
const char *scep_capabilities(apr_pool_t *p, unsigned int caps);

/* ----------------------------------------------------------------------
 * Certificate templates (scep_policy.c): what a certificate issued under a
 * template looks like and what a CSR may ask for, NDES's templates.
 */

/* subjectAltName types a template lets pass from the CSR. */
#define SCEP_SAN_DNS 0x01
#define SCEP_SAN_IP 0x02
#define SCEP_SAN_EMAIL 0x04
#define SCEP_SAN_URI 0x08
#define SCEP_SAN_UPN 0x10 /* otherName Microsoft UPN */
#define SCEP_SAN_ALL 0x1f

/* Key types a template accepts. */
#define SCEP_KEYTYPE_RSA 0x01
#define SCEP_KEYTYPE_EC 0x02

/* key_usage of a template: copy the CSR's keyUsage. */
#define SCEP_KU_FROM_REQUEST (-1)
/* key_usage of a template that names none: by the key's type (scep_ca.c):
 * RSA digitalSignature keyEncipherment, EC digitalSignature keyAgreement,
 * others digitalSignature. */
#define SCEP_KU_BY_KEY_TYPE (-2)

typedef enum {
    SCEP_ISSUANCE_AUTO = 1,  /* issued at once */
    SCEP_ISSUANCE_MANUAL = 2 /* held for a CA manager */
} scep_issuance_t;

typedef struct scep_template_t {
    const char *name;
    int validity_days; /* 0: the server's SCEPCertificateValidity */
    int key_usage; /* X509v3_KU_* bits set (critical), SCEP_KU_FROM_REQUEST, SCEP_KU_BY_KEY_TYPE */
    apr_array_header_t *ext_key_usage; /* of ASN1_OBJECT *: EKU set; NULL: the CSR's */
    apr_array_header_t *subject_nids;  /* of int: subject attributes allowed; NULL: any */
    unsigned int san_types;            /* SCEP_SAN_* that may pass; others are refused */
    int wildcard_dns;                  /* a dNSName may be a wildcard ("*.example.com") */
    int min_rsa_bits;                  /* smallest RSA modulus accepted (MinimumKeySize) */
    int max_rsa_bits;                  /* largest RSA modulus accepted (MaximumKeySize) */
    int min_ec_bits;                   /* smallest EC key (curve order bits) accepted */
    apr_array_header_t *curves;        /* of int: EC named curves accepted (NIDs) */
    unsigned int key_types;            /* SCEP_KEYTYPE_* accepted */
    scep_issuance_t issuance;
    const char *enroll_group; /* LDAP group DN with enroll permission, NULL if none */
    /* ChallengeCheck: the methods a PKCSReq under this template is checked
     * by (scep_challenge.h), in place of the server's; NULL: the server's. */
    const struct scep_challenge_list_t *challenge_checks;
} scep_template_t;

#define SCEP_BUILTIN_TEMPLATE "IPSECIntermediateOffline"

/* The built-in IPSECIntermediateOffline template (NDES's "IPSec (Offline
 * request)"), made on p: EKU IP security IKE intermediate, keyUsage
 * digitalSignature and keyEncipherment, subject and subjectAltName from the
 * request, the keys of scep_template_new(), issued at once, validity from
 * the server (one year by default). */
scep_template_t *scep_template_builtin(apr_pool_t *p);

/* The template of that name (any case) in templates (of scep_template_t *),
 * NULL if none (or name is NULL). */
scep_template_t *scep_template_find(const apr_array_header_t *templates, const char *name);

/* Adds an extendedKeyUsage OID (dotted, or a name OpenSSL knows such as
 * "clientAuth") to the template's list; APR_EINVAL if it is neither. */
apr_status_t scep_template_add_eku(apr_pool_t *p, scep_template_t *tmpl, const char *oid);

/* A template with the defaults of a configured one: keyUsage by the key's
 * type (SCEP_KU_BY_KEY_TYPE), EKU clientAuth, any subject, every
 * subjectAltName type but no wildcard dNSName, RSA of 2048 to 8192 bits or
 * EC of at least 256 bits on P-256, P-384 or P-521, issued at once,
 * validity from the server. */
scep_template_t *scep_template_new(apr_pool_t *p, const char *name);

/* Whether csr asks only for what tmpl allows: key type, size, RSA public
 * exponent (odd, 65537 to 2^256-1) and EC named curve (RFC 5480), subject
 * attributes, subjectAltName types, names the CA can encode
 * (scep_names_from_csr()), with FromRequest no keyCertSign, cRLSign,
 * OCSPSigning or anyExtendedKeyUsage, no basicConstraints CA:TRUE, no
 * critical extension the CA would drop. A refusal is badRequest (NDES event
 * 23, 42 for a malformed CSR) with a text that says what was refused. The
 * CSR's signature is not checked here (the message layer did). */
apr_status_t scep_policy_check(apr_pool_t *p, const scep_template_t *tmpl, X509_REQ *csr,
                               scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * The built-in CA (scep_ca.c).
 */

typedef struct scep_issue_opts_t {
    int validity_days;           /* default 365 */
    const EVP_MD *md;            /* SHA-256 unless SCEPHashAlgorithm says otherwise */
    const scep_template_t *tmpl; /* keyUsage, EKU, wildcards; NULL: the CSR's usages */
    const char *crl_url;         /* http:// URL for the CRL distribution points; NULL: none */
} scep_issue_opts_t;

/* Issues a certificate from a verified CSR that scep_policy_check()
 * allowed: subject and subjectAltName as requested, encoded by
 * scep_names_from_csr() (subjectAltName critical when the subject is
 * empty); keyUsage and extendedKeyUsage as opts->tmpl sets them, else
 * decoded from the extensionRequest and encoded again (keyCertSign, cRLSign,
 * OCSPSigning and anyExtendedKeyUsage refused); basicConstraints CA:FALSE;
 * random positive 128-bit serial; AKI and SKI; signed by pki->ca_key. */
apr_status_t scep_ca_issue(apr_pool_t *p, const scep_pki_t *pki, X509_REQ *csr,
                           const scep_issue_opts_t *opts, X509 **cert, scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * The built-in CA's CRL (scep_crl.c).
 */

/* The records (below), where the service keeps its CRLs. */
typedef struct scep_store_t scep_store_t;

/* No CRLReason recorded: the CRL entry has no reasonCode extension. */
#define SCEP_CRL_REASON_NONE (-1)
/* The highest CRLReason code (aACompromise). */
#define SCEP_CRL_REASON_MAX 10

typedef struct scep_revoked_t {
    const char *serial; /* hex, as the records keep it */
    apr_time_t revoked_at;
    int reason; /* CRLReason code, or SCEP_CRL_REASON_NONE */
} scep_revoked_t;

typedef struct scep_crl_opts_t {
    const EVP_MD *md;   /* SCEPHashAlgorithm */
    int validity_hours; /* nextUpdate = thisUpdate + this (SCEPCRLValidity) */
    /* the cRLNumber is at least this (the previous CRL's plus one), else
     * the time of issue in microseconds; 0: the time */
    apr_int64_t min_number;
} scep_crl_opts_t;

/* A CRL the service signed, as the records keep it (scep_crl): the
 * issuer's series (scep_crl_issuer()), its cRLNumber, its thisUpdate and
 * nextUpdate, how many revoked certificates it lists (the records held
 * that many when it was signed), and the CRL in PEM. revoked_now: read with
 * it, how many the records hold revoked now (more: it is out of date). */
typedef struct scep_crl_record_t {
    const char *issuer;
    apr_int64_t number;
    apr_time_t this_update;
    apr_time_t next_update;
    apr_int64_t revoked_count;
    apr_int64_t revoked_now;
    const char *pem;
} scep_crl_record_t;

/* Who signs the next CRL of a series for scep_store_t.renew_crl(). */
typedef struct scep_crl_signer_t {
    void *baton;
    /* 1 when latest (read again under the lock) is to be served as it is */
    int (*fresh)(void *baton, const scep_crl_record_t *latest);
    /* The next CRL after latest (NULL: the first) listing revoked (of
     * scep_revoked_t): fills made's number, times and pem. Another status
     * than APR_SUCCESS is the signer's own failure (it keeps the why). */
    apr_status_t (*sign)(void *baton, apr_pool_t *p, const scep_crl_record_t *latest,
                         const apr_array_header_t *revoked, scep_crl_record_t *made);
} scep_crl_signer_t;

/* Upper-case hex of a serial number, as BN_bn2hex writes it: the form the
 * records keep serials in. NULL when it cannot be converted. */
const char *scep_serial_hex(apr_pool_t *p, const ASN1_INTEGER *serial);

/* 1 for the CRLReason codes of RFC 5280 section 5.3.1 (0-10 but 7). */
int scep_crl_reason_valid(int reason);

/* RFC 5280's name of a CRLReason code ("keyCompromise"), NULL for none;
 * and the code of a name (any case) or number, SCEP_CRL_REASON_NONE when
 * text is neither. */
const char *scep_crl_reason_name(int reason);
int scep_crl_reason_of(const char *text);

/* 1 for the reasons a CA manager may revoke with: a revocation here is
 * final, so not certificateHold (meant to be lifted) nor removeFromCRL
 * (delta CRLs only), and not aACompromise (attribute authorities). */
int scep_crl_reason_final(int reason);

/* A v2 CRL of pki's CA, signed with its key: thisUpdate now, nextUpdate
 * validity_hours later, one entry per revoked (of scep_revoked_t) with its
 * reasonCode, and the cRLNumber (the time of issue in microseconds, so that
 * numbers increase without a counter to keep, or min_number when that is
 * more) and authorityKeyIdentifier extensions. Failures have event 44. */
apr_status_t scep_crl_build(apr_pool_t *p, const scep_pki_t *pki, const apr_array_header_t *revoked,
                            const scep_crl_opts_t *opts, X509_CRL **crl, scep_problem_t *prob);

/* From thisUpdate to nextUpdate: opts' validity_hours, 168 without. */
apr_time_t scep_crl_validity(const scep_crl_opts_t *opts);

/* The series of CRLs of pki's CA in the records: the hex SHA-256 of its
 * certificate (a new CA certificate, even with the same name, starts a new
 * series signed by its own key). NULL when it cannot be computed. */
const char *scep_crl_issuer(apr_pool_t *p, const scep_pki_t *pki);

/* The CRL of pki's CA that the service serves (scep_crl_shared.c): the
 * newest in store while it is fresh (no revocation since it was signed,
 * not past the middle of its validity), else the next one, signed by one
 * server at a time (scep_store_t.renew_crl()) and kept for the others.
 * Failures: as scep_crl_build()'s (event 44), or the store's (logged by
 * it; prob->text NULL). */
apr_status_t scep_crl_current(apr_pool_t *p, const scep_pki_t *pki, const scep_crl_opts_t *opts,
                              scep_store_t *store, X509_CRL **crl, scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * Durable records: the scep_store_t interface, small so that other
 * backends (a CMP-fronted external CA, a shared cluster) can come later.
 * scep_store_sql.c implements it on any apr_dbd connection; the module gets
 * its connections from mod_dbd, scepctl opens its own.
 */

/* A request's state. pending -> approved (by scepctl; issued at the next
 * poll) -> issued; pending -> issued (a manager approved on the page);
 * pending -> rejected; pending -> expired (SCEPRefreshPeriod). */
#define SCEP_TXN_PENDING "pending"
#define SCEP_TXN_APPROVED "approved"
#define SCEP_TXN_ISSUED "issued"
#define SCEP_TXN_REJECTED "rejected"
#define SCEP_TXN_EXPIRED "expired"
/* decided_by of a request the external CA issued or rejected (no manager
 * approved it first) */
#define SCEP_DECIDED_BY_CA "CA"

typedef struct scep_txn_t {
    const char *transaction_id;
    const char *key_id;        /* scep_key_id() of the CSR's key (older rows: see
                                * SCEP_KEY_ID_BITS_PREFIX) */
    const char *signer_key_id; /* of the message signer's key (differs for renewals) */
    const char *csr_digest;    /* scep_csr_digest() of the request; NULL in older rows */
    const char *status;        /* SCEP_TXN_* */
    const char *subject;
    const char *serial;        /* hex, issued only */
    const char *cert_pem;      /* issued only */
    const char *reason;        /* rejected/expired: why */
    const char *template_name; /* the certificate template chosen */
    const char *csr_pem;       /* held requests: the CSR at rest (scep_csr_pem_at_rest()) */
    /* held requests under an external CA (schema 5): the device's CSR as
     * it came, scep_csr_seal()ed to the RA encryption certificate, for the
     * CA; NULL otherwise, and once decided */
    const char *csr_sealed;
    const char *san;      /* "DNS:a.example, IP Address:10.0.0.1"; NULL if none */
    const char *key_desc; /* "RSA 2048", "EC prime256v1" */
    const char *client_addr;
    const char *decided_by; /* the manager who approved or rejected; "CA" for the CA */
    /* Held by an external CA (schema 5): the backend's ticket (opaque) and
     * when to ask the CA again; NULL and 0 for a request no CA holds. */
    const char *ca_ticket;
    apr_time_t ca_poll_at;
    const char *ca_backend; /* the name of the backend that holds the ticket
                             * (scep_ca_backend_t.name); NULL: unnamed */
    apr_time_t created;
    apr_time_t updated;
    int message_type; /* scep_msg_type_t of the request, 0 if not known */
} scep_txn_t;

/* A certificate in the records. */
typedef struct scep_cert_record_t {
    const char *serial; /* hex */
    const char *cert_pem;
    const char *subject;
    const char *transaction_id;
    apr_time_t not_before;
    apr_time_t not_after;
    apr_time_t revoked_at; /* 0: not revoked */
    int reason;            /* CRLReason when revoked, SCEP_CRL_REASON_NONE if not given */
} scep_cert_record_t;

/* What one enrollment service is, wherever its servers run (several
 * Apache servers on one database): its CA by name, and the SHA-256
 * (scep_cert_sha256()) of its CA certificate and of the RA certificates in
 * use. A server that presents others would answer devices as another
 * service (scep_service.c). */
typedef struct scep_service_t {
    const char *issuer;    /* the CA's subject as scep_name_text() writes it (scep_cert.issuer) */
    const char *ca_sha256; /* the CA certificate */
    const char *ra_sha256; /* "SIGNING ENCRYPTION": the RA certificates (the CA's in simple mode) */
    apr_time_t recorded;   /* when the records took it; 0 when not from the records */
} scep_service_t;
/* The halves of a one-time password (scep_password.h's use rule): the
 * signing key's, the encryption key's; a general-purpose key takes both. */
#define SCEP_PASSWORD_SERVED_SIGN 0x1
#define SCEP_PASSWORD_SERVED_ENCRYPT 0x2
#define SCEP_PASSWORD_SERVED_ALL (SCEP_PASSWORD_SERVED_SIGN | SCEP_PASSWORD_SERVED_ENCRYPT)

/* A one-time password as the records keep it (SCEPPasswordStore sql). */
typedef struct scep_password_row_t {
    apr_time_t expires;
    int served;                  /* SCEP_PASSWORD_SERVED_* halves used */
    const char *spender_sign;    /* hex HMAC of the request that used each half */
    const char *spender_encrypt; /* (NULL: not used) */
} scep_password_row_t;

/* The service these certificates make (ra_sign and ra_enc: the RA
 * certificates in use, the CA's own in simple mode), on p; NULL when a
 * digest fails (OpenSSL's queue holds why). */
scep_service_t *scep_service_of(apr_pool_t *p, X509 *ca, X509 *ra_sign, X509 *ra_enc);
/* 1 when a and b present the same certificates. */
int scep_service_same(const scep_service_t *a, const scep_service_t *b);
/* ours against the service the records hold for its CA, which ours
 * becomes when there is none yet (*first set): APR_SUCCESS the same,
 * APR_EMISMATCH another (*recorded is it), else a fault (logged by the
 * store). */
apr_status_t scep_service_check(apr_pool_t *p, scep_store_t *store, const scep_service_t *ours,
                                scep_service_t **recorded, int *first);
/* What differs between ours and the recorded service, in words, on p. */
const char *scep_service_difference(apr_pool_t *p, const scep_service_t *ours,
                                    const scep_service_t *recorded);

struct scep_store_t {
    void *baton;
    /* APR_NOTFOUND when the transaction is unknown. */
    apr_status_t (*find_transaction)(scep_store_t *store, apr_pool_t *p, const char *transaction_id,
                                     scep_txn_t **txn);
    /* Records a new request in txn->status (with its ticket when the CA
     * holds it) with, when cert is given, its certificate, atomically; APR_EEXIST when the transaction is already
     * recorded (a concurrent replay won). */
    apr_status_t (*record)(scep_store_t *store, apr_pool_t *p, const scep_txn_t *txn, X509 *cert);
    /* A held (pending or approved) request gets its certificate: the state
     * change and the certificate atomically; who (NULL: keep the recorded
     * one) is the deciding manager; its CSRs and ticket are cleared.
     * APR_EEXIST when it is not held any more. */
    apr_status_t (*record_held_issued)(scep_store_t *store, apr_pool_t *p,
                                       const char *transaction_id, X509 *cert, const char *who);
    /* Moves a request from one state to another (approve, reject, expire one)
     * with who decided and why, clearing a ticket and, but for an approval,
     * the CSRs; APR_NOTFOUND when
     * unknown, APR_EEXIST when it is not in state `from` any more or is
     * to be approved while the CA holds it (the CA decides). */
    apr_status_t (*decide)(scep_store_t *store, apr_pool_t *p, const char *transaction_id,
                           const char *from, const char *to, const char *who, const char *reason);
    /* A held request the external CA holds: its ticket, the backend that
     * holds it (NULL: unnamed) and the time of the next poll replaced, and
     * pending (an approved one was submitted, by who: NULL keeps the
     * recorded one); APR_EEXIST when it is not held any more. */
    apr_status_t (*hold_at_ca)(scep_store_t *store, apr_pool_t *p, const char *transaction_id,
                               const char *ticket, const char *backend, apr_time_t poll_at,
                               const char *who);
    /* Claims the poll of a request the CA holds, so that one process asks:
     * its poll time moves from seen (as read) to next; APR_EEXIST when it
     * is not seen any more (another process claimed it, or it was
     * decided). Times in whole seconds. */
    apr_status_t (*claim_ca_poll)(scep_store_t *store, apr_pool_t *p, const char *transaction_id,
                                  apr_time_t seen, apr_time_t next);
    /* Held requests with a ticket of backend (NULL: those of no name) whose
     * poll time is at most now, the earliest first, at most limit. */
    apr_status_t (*list_ca_due)(scep_store_t *store, apr_pool_t *p, const char *backend,
                                apr_time_t now, int limit, apr_array_header_t **txns);
    /* Every request pending since before `before` becomes expired (its CSRs
     * and ticket cleared). */
    apr_status_t (*expire_pending)(scep_store_t *store, apr_pool_t *p, apr_time_t before,
                                   const char *reason);
    /* Requests (scep_txn_t *) in a state (NULL: any), newest first, at most limit. */
    apr_status_t (*list_requests)(scep_store_t *store, apr_pool_t *p, const char *status, int limit,
                                  apr_array_header_t **txns);
    /* The certificate with this serial (hex as scep_serial_hex() writes it);
     * APR_NOTFOUND when this CA never issued it. */
    apr_status_t (*find_cert)(scep_store_t *store, apr_pool_t *p, const char *serial,
                              scep_cert_record_t **rec);
    /* Certificates (scep_cert_record_t *) whose subject or serial contains
     * search (case-insensitive; NULL: all), newest first, at most limit. */
    apr_status_t (*list_certs)(scep_store_t *store, apr_pool_t *p, const char *search, int limit,
                               apr_array_header_t **certs);
    /* Every revoked certificate, as scep_revoked_t, oldest revocation first. */
    apr_status_t (*list_revoked)(scep_store_t *store, apr_pool_t *p, apr_array_header_t **revoked);
    /* Revokes a certificate with a CRLReason code (RFC 5280 section 5.3.1);
     * APR_NOTFOUND when unknown, APR_EEXIST when already revoked (the first
     * reason stays), APR_EINVAL for a reason scep_crl_reason_valid() refuses. */
    apr_status_t (*revoke)(scep_store_t *store, apr_pool_t *p, const char *serial, int reason);
    /* The service recorded for the CA named issuer; APR_NOTFOUND when none. */
    apr_status_t (*find_service)(scep_store_t *store, apr_pool_t *p, const char *issuer,
                                 scep_service_t **svc);
    /* Records svc as its CA's service, recorded now: APR_EEXIST when one is
     * recorded already (a concurrent first server too), unless replace. */
    apr_status_t (*record_service)(scep_store_t *store, apr_pool_t *p, const scep_service_t *svc,
                                   int replace);

    /* The one-time passwords of SCEPPasswordStore sql (schema 6), each by
     * mac, the hex HMAC of the password (scep_password_sql.c); times in
     * whole seconds. */
    /* Purges the expired passwords, then adds mac valid until expires
     * unless max passwords wait already (APR_ENOSPC, nothing added): one
     * transaction, serialized across the service (PostgreSQL: an advisory
     * lock; SQLite: its write lock), so max holds for every server at once.
     * *waiting: the passwords waiting afterwards. */
    apr_status_t (*password_add)(scep_store_t *store, apr_pool_t *p, const char *mac,
                                 apr_time_t now, apr_time_t expires, int max, int *waiting);
    /* Passwords neither expired at now nor used up. */
    apr_status_t (*password_waiting)(scep_store_t *store, apr_pool_t *p, apr_time_t now,
                                     int *waiting);
    /* Spends the halves (SCEP_PASSWORD_SERVED_*) of mac for spender (its
     * hex HMAC) in one conditional UPDATE: APR_SUCCESS when it did;
     * APR_EEXIST when nothing changed (unknown, expired at now, or one of
     * the halves served before): password_find() tells which. */
    apr_status_t (*password_spend)(scep_store_t *store, apr_pool_t *p, const char *mac,
                                   apr_time_t now, int halves, const char *spender);
    /* The row of mac, to word a refusal; APR_NOTFOUND when none. */
    apr_status_t (*password_find)(scep_store_t *store, apr_pool_t *p, const char *mac,
                                  scep_password_row_t **row);
    /* What the servers share sealed (scep_secret): the value of name, or
     * APR_NOTFOUND. */
    apr_status_t (*secret_get)(scep_store_t *store, apr_pool_t *p, const char *name,
                               const char **sealed);
    /* Records sealed as name: replace 0 keeps a value recorded before (the
     * first server's), 1 replaces it. */
    apr_status_t (*secret_put)(scep_store_t *store, apr_pool_t *p, const char *name,
                               const char *sealed, int replace);

    /* The newest CRL of issuer's series with the records' revoked count
     * now; APR_NOTFOUND when none was kept. */
    apr_status_t (*latest_crl)(scep_store_t *store, apr_pool_t *p, const char *issuer,
                               scep_crl_record_t **crl);
    /* The next CRL of issuer's series, one signer at a time across the
     * service: in one transaction under a lock of the database, the newest
     * is read again; when signer->fresh() takes it (another server signed
     * it meanwhile) it is *crl, else signer->sign() makes the next from
     * the revoked certificates, which is kept (with the few newest before
     * it, older ones dropped) and is *crl. APR_EGENERAL: the records
     * failed (logged); another error is sign()'s, nothing kept. */
    apr_status_t (*renew_crl)(scep_store_t *store, apr_pool_t *p, const char *issuer,
                              const scep_crl_signer_t *signer, scep_crl_record_t **crl);
};

/* Log levels of the store's messages: syslog's, as httpd's APLOG_* are. */
#define SCEP_LOG_ERR 3
#define SCEP_LOG_WARNING 4
#define SCEP_LOG_NOTICE 5
#define SCEP_LOG_INFO 6
#define SCEP_LOG_DEBUG 7

/* Every log line of the module starts with its own tag, "SCEPnnn: ",
 * written literally at the call (SCEPLOGNO(301) "text"): a third-party
 * module must not use httpd's AHnnnnn. Three digits, unique across the
 * tree (t/check_lognos.sh); ranges in HACKING.md. */
#define SCEPLOGNO(n) "SCEP" #n ": "

/* Where the core's messages go: msg starts with its SCEPLOGNO() tag; file
 * and line are the caller's (SCEP_LOG_MARK), as httpd's APLOG_MARK. */
typedef void scep_log_fn(void *baton, const char *file, int line, int level, const char *msg);
#define SCEP_LOG_MARK __FILE__, __LINE__

/* Drains OpenSSL's error queue into log, one line per entry (mod_ssl's
 * ssl_log_ssl_error shape), at the caller's file and line. */
void scep_log_openssl(scep_log_fn *log, void *baton, const char *file, int line, int level);

/* A lock that writers of one database take in turn (the module: a global
 * mutex for SQLite, which has one writer at a time anyway). */
typedef struct scep_sql_lock_t {
    apr_status_t (*acquire)(void *baton);
    apr_status_t (*release)(void *baton);
    void *baton;
} scep_sql_lock_t;

typedef struct scep_sql_conn_t scep_sql_conn_t;

/* Replaces a connection that failed by a new one of the same database:
 * sets conn->handle and conn->prepared (a hash of the new connection, which
 * the store fills); on an error conn is left as it was. */
typedef apr_status_t scep_sql_renew_fn(void *baton, scep_sql_conn_t *conn);

/* An apr_dbd connection: prepared holds its statements by label and lives
 * as long as the connection (mod_dbd's ap_dbd_t has one); write_lock, when
 * not NULL, is held around every write; renew, when not NULL, replaces the
 * connection after a failure (else a failure is final). */
struct scep_sql_conn_t {
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;
    const scep_sql_lock_t *write_lock;
    scep_sql_renew_fn *renew;
    void *renew_baton;
};

/* The records on conn. Its first use readies the connection: driver
 * settings, the schema migrated to this version, statements prepared.
 * An operation whose statement or transaction fails is tried once more on
 * a connection from conn's renew (once per store: the first failure may be
 * the connection's own, such as a restarted server or a file opened
 * read-only); only what still fails is logged, one line, before an error
 * is returned. */
apr_status_t scep_store_sql(apr_pool_t *p, const scep_sql_conn_t *conn, scep_log_fn *log,
                            void *log_baton, scep_store_t **store);

/* What the records keep of a key ("RSA 2048", "EC prime256v1") and of a
 * request's subjectAltName ("DNS:a.example, IP Address:10.0.0.1"; NULL
 * when there is none): for the CA manager's page. */
const char *scep_key_desc(apr_pool_t *p, EVP_PKEY *key);
const char *scep_csr_san_text(apr_pool_t *p, X509_REQ *csr);

#endif /* mod_scep_scep_h */
