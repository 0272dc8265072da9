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
 * Key and certificate creation (scep_x509.c): keys, the CA and RA
 * certificates scepctl sets up, CSRs, PEM files, and the certificate checks
 * shared by the PKI loader and scepctl. Part of the httpd-free core; the
 * built-in CA (scep_ca.c) builds on the same certificate pieces.
 *
 * Everything returned is owned by the pool passed in. Failures fill a
 * scep_problem_t with a text (no fail_info, no event: callers that have one
 * set it).
 */
#ifndef mod_scep_scep_x509_h
#define mod_scep_scep_x509_h

#include <apr_pools.h>
#include <apr_time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep.h"

/* EKU "Certificate Request Agent" that NDES requires of both RA certificates. */
#define SCEP_OID_CERT_REQUEST_AGENT "1.3.6.1.4.1.311.20.2.1"

typedef enum { SCEP_KEY_RSA, SCEP_KEY_EC } scep_key_type_t;

/* Generates a key: RSA with `bits` bits, or EC on P-256 (bits 256) or
 * P-384 (bits 384). */
apr_status_t scep_x509_key_generate(apr_pool_t *p, scep_key_type_t type, int bits, EVP_PKEY **key,
                                    scep_problem_t *prob);

/* Parses a subject in OpenSSL's "/CN=x/O=y" form; "\/" is a literal '/'
 * and "\\" a literal backslash inside a value. */
apr_status_t scep_x509_name_parse(apr_pool_t *p, const char *text, X509_NAME **name,
                                  scep_problem_t *prob);

/* Extensions in OpenSSL's configuration syntax (X509V3_EXT_conf_nid), e.g.
 * key_usage = "critical,digitalSignature"; NULL leaves an extension out. */
typedef struct scep_x509_exts_t {
    const char *basic_constraints;
    const char *key_usage;
    const char *ext_key_usage;
    const char *subject_alt_name;
} scep_x509_exts_t;

/* How far back certificates and CRLs are dated: devices whose clocks are a
 * little behind still accept them, and so does a check right after they
 * were made (time(), which X509_verify_cert uses, reads a coarser clock than
 * apr_time_now() and can still be in the previous second). */
#define SCEP_X509_CLOCK_SKEW apr_time_from_sec(5 * 60)

/* What a created certificate looks like besides subject and key. */
typedef struct scep_x509_profile_t {
    scep_x509_exts_t exts;
    apr_time_t not_before; /* 0: now less SCEP_X509_CLOCK_SKEW */
    apr_time_t not_after;  /* 0: not_before + days */
    int days;
    const EVP_MD *md; /* NULL: SHA-256 */
} scep_x509_profile_t;

/* Creates a certificate for `key`'s public key, signed by issuer_key.
 * issuer_cert NULL makes it self-signed (issuer_key is then key's private
 * half). Adds the profile's extensions, SKI and AKI. */
apr_status_t scep_x509_cert_create(apr_pool_t *p, const scep_x509_profile_t *profile,
                                   const X509_NAME *subject, EVP_PKEY *key, X509 *issuer_cert,
                                   EVP_PKEY *issuer_key, X509 **cert, scep_problem_t *prob);

/* The extensions of a CA certificate as scepctl makes them. */
const scep_x509_exts_t *scep_x509_ca_exts(void);

/* A self-signed CA certificate: basicConstraints critical CA:TRUE, keyUsage
 * critical keyCertSign, cRLSign, digitalSignature; SKI, AKI; SHA-256. */
apr_status_t scep_x509_ca_create(apr_pool_t *p, EVP_PKEY *key, const X509_NAME *subject, int days,
                                 X509 **cert, scep_problem_t *prob);

typedef enum {
    SCEP_RA_SIGN,   /* signs CertReps: keyUsage digitalSignature */
    SCEP_RA_ENCRYPT /* devices encrypt to it: keyUsage keyEncipherment, dataEncipherment */
} scep_ra_role_t;

/* The extensions of an RA certificate or of the CSR for one: keyUsage
 * (critical) for the role, EKU Certificate Request Agent, CA:FALSE. */
const scep_x509_exts_t *scep_x509_ra_exts(scep_ra_role_t role);

/* An RA certificate for ra_key issued by the CA (SHA-256), valid for days
 * but never after the CA. */
apr_status_t scep_x509_ra_create(apr_pool_t *p, X509 *ca_cert, EVP_PKEY *ca_key, EVP_PKEY *ra_key,
                                 const X509_NAME *subject, scep_ra_role_t role, int days,
                                 X509 **cert, scep_problem_t *prob);

/* A CSR signed by key (SHA-256) asking for exts in its extensionRequest
 * (exts may be NULL), with a challengePassword unless challenge is NULL. */
apr_status_t scep_x509_csr_create(apr_pool_t *p, EVP_PKEY *key, const X509_NAME *subject,
                                  const scep_x509_exts_t *exts, const char *challenge,
                                  X509_REQ **csr, scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * Building blocks of a certificate, shared with the built-in CA.
 */

/* A new unsigned version 3 certificate: random serial, names, validity and
 * public key set. */
apr_status_t scep_x509_cert_new(apr_pool_t *p, const X509_NAME *subject, const X509_NAME *issuer,
                                EVP_PKEY *pubkey, apr_time_t not_before, apr_time_t not_after,
                                X509 **cert, scep_problem_t *prob);

/* The same for a certificate request: the subject given (the CA's
 * encoding of the request's) and the request's public key (its
 * SubjectPublicKeyInfo, without OpenSSL 3's encoder and decoder round trip
 * for RSA keys). */
apr_status_t scep_x509_cert_new_for_csr(apr_pool_t *p, X509_REQ *csr, const X509_NAME *subject,
                                        const X509_NAME *issuer, apr_time_t not_before,
                                        apr_time_t not_after, X509 **cert, scep_problem_t *prob);

/* Adds one extension given in configuration syntax. issuer_cert NULL means
 * the certificate issues itself. */
apr_status_t scep_x509_cert_add_ext(apr_pool_t *p, X509 *cert, X509 *issuer_cert, int nid,
                                    const char *value, scep_problem_t *prob);

/* Adds SKI (hash of the key) and AKI (the issuer's key identifier; the
 * issuer's name and serial when the issuer certificate has no SKI). */
apr_status_t scep_x509_cert_add_key_ids(apr_pool_t *p, X509 *cert, X509 *issuer_cert,
                                        scep_problem_t *prob);

/* Signs with key and md (NULL: SHA-256). */
apr_status_t scep_x509_cert_sign(apr_pool_t *p, X509 *cert, EVP_PKEY *key, const EVP_MD *md,
                                 scep_problem_t *prob);

/* A random positive non-zero serial of up to 128 bits (top bit cleared). */
apr_status_t scep_x509_random_serial(apr_pool_t *p, ASN1_INTEGER **serial, scep_problem_t *prob);

/* ----------------------------------------------------------------------
 * Checks.
 */

/* keyUsage bits (KU_DIGITAL_SIGNATURE, KU_KEY_ENCIPHERMENT, ...), 0 when
 * the certificate has no keyUsage extension. */
uint32_t scep_x509_key_usage(X509 *cert);

/* Whether the certificate's extendedKeyUsage lists the dotted OID. */
int scep_x509_has_eku(X509 *cert, const char *oid);

/* Why cert cannot serve as an RA certificate in role, NULL when it can
 * (keyUsage bit of the role, EKU Certificate Request Agent). */
const char *scep_x509_ra_unfit(X509 *cert, scep_ra_role_t role);

/* Verifies cert at the current time, purpose any, up to a certificate of
 * anchors, through untrusted (may be NULL). partial: an anchor need not be
 * self-signed. On failure *error is the X509_V_ERR_* code and *reason
 * OpenSSL's text for it. */
apr_status_t scep_x509_verify(X509 *cert, STACK_OF(X509) *anchors, STACK_OF(X509) *untrusted,
                              int partial, int *error, const char **reason);

/* An ASN1_TIME as apr_time_t. */
apr_status_t scep_x509_time_get(const ASN1_TIME *t, apr_time_t *when);

/* ----------------------------------------------------------------------
 * Files and error texts.
 */

/* The reason text of the newest OpenSSL error (left in the queue for the
 * caller to log). */
const char *scep_x509_openssl_error(void);

/* Writes certificates (one after the other) / a certificate / a CSR as PEM
 * (mode 0644), replacing the file atomically (written aside, then renamed). */
apr_status_t scep_x509_write_certs(apr_pool_t *p, const char *file, STACK_OF(X509) *certs,
                                   scep_problem_t *prob);
apr_status_t scep_x509_write_cert(apr_pool_t *p, const char *file, X509 *cert,
                                  scep_problem_t *prob);
apr_status_t scep_x509_write_csr(apr_pool_t *p, const char *file, X509_REQ *csr,
                                 scep_problem_t *prob);

/* Writes a private key as unencrypted PKCS#8 PEM into a new file created
 * with mode 0600; fails if the file exists. */
apr_status_t scep_x509_write_key(apr_pool_t *p, const char *file, EVP_PKEY *key,
                                 scep_problem_t *prob);

#endif /* mod_scep_scep_x509_h */
