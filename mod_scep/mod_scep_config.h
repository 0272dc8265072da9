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
 * Per-server configuration of mod_scep: the directives of HACKING.md's
 * table, defined once in one table (SCEP_DIRECTIVES), and the server
 * record they fill.
 */
#ifndef mod_scep_mod_scep_config_h
#define mod_scep_mod_scep_config_h

#include <httpd.h>
#include <http_config.h>

#include <apr_ldap.h>

#include "scep.h"
#include "scep_algs.h"
#include "scep_ca_cmp.h"
#include "scep_challenge.h"
#include "scep_enroll.h"
#include "scep_password.h"
#include "scep_webhook.h"

/* Directive names, for the table below and for the error messages of the
 * other files, so the two cannot drift apart. */
#define SCEP_CA_CERTIFICATE_FILE "SCEPCACertificateFile"
#define SCEP_CA_KEY_FILE "SCEPCAKeyFile"
#define SCEP_CA_CHAIN_FILE "SCEPCAChainFile"
#define SCEP_RA_CERTIFICATE "SCEPRACertificate"
#define SCEP_GETCACERT_INCLUDE_ROOT "SCEPGetCACertIncludeRoot"
#define SCEP_ENFORCE_PASSWORD "SCEPEnforcePassword"
#define SCEP_CHALLENGE_PASSWORD_FILE "SCEPChallengePasswordFile"
#define SCEP_ALLOW_LEGACY_ALGORITHMS "SCEPAllowLegacyAlgorithms"
#define SCEP_HASH_ALGORITHM "SCEPHashAlgorithm"
#define SCEP_CERTIFICATE_VALIDITY "SCEPCertificateValidity"
#define SCEP_CERTREP_INCLUDE_CHAIN "SCEPCertRepIncludeChain"
#define SCEP_MAX_REQUEST_SIZE "SCEPMaxRequestSize"
#define SCEP_PASSWORD_MAX "SCEPPasswordMax"
#define SCEP_PASSWORD_VALIDITY "SCEPPasswordValidity"
#define SCEP_PASSWORD_LENGTH "SCEPPasswordLength"
#define SCEP_USE_SINGLE_PASSWORD "SCEPUseSinglePassword"
#define SCEP_SINGLE_PASSWORD_FILE "SCEPSinglePasswordFile"
#define SCEP_SECRET_KEY_FILE "SCEPSecretKeyFile"
#define SCEP_PASSWORD_STORE "SCEPPasswordStore"
#define SCEP_PASSWORD_VDIR "SCEPPasswordVDir"
#define SCEP_ADMIN_ALLOW_HTTP "SCEPAdminAllowHTTP"
#define SCEP_CA_TYPE "SCEPCAType"
#define SCEP_SIGNATURE_TEMPLATE "SCEPSignatureTemplate"
#define SCEP_ENCRYPTION_TEMPLATE "SCEPEncryptionTemplate"
#define SCEP_GENERAL_PURPOSE_TEMPLATE "SCEPGeneralPurposeTemplate"
#define SCEP_TEMPLATE_ENROLL_GROUP "SCEPTemplateEnrollGroup"
#define SCEP_CA_ADMIN_GROUP "SCEPCAAdminGroup"
#define SCEP_LDAP_URL "SCEPLDAPURL"
#define SCEP_LDAP_BIND_DN "SCEPLDAPBindDN"
#define SCEP_LDAP_BIND_PASSWORD "SCEPLDAPBindPassword"
#define SCEP_NEXT_CA_CERTIFICATE_FILE "SCEPNextCACertificateFile"
#define SCEP_DISABLE_RENEWAL_SUBJECT_NAME_MATCH "SCEPDisableRenewalSubjectNameMatch"
#define SCEP_CRL_URL "SCEPCRLURL"
#define SCEP_CRL_VALIDITY "SCEPCRLValidity"
#define SCEP_REFRESH_PERIOD "SCEPRefreshPeriod"
#define SCEP_CACHE_REQUEST "SCEPCacheRequest"
#define SCEP_TEMPLATE_SECTION "<SCEPTemplate"
#define SCEP_CA_MANAGER_GROUP "SCEPCAManagerGroup"
#define SCEP_CA_BACKEND "SCEPCABackend"
#define SCEP_CMP_SERVER "SCEPCMPServer"
#define SCEP_CMP_TRUST_FILE "SCEPCMPTrustFile"
#define SCEP_CMP_SECRET_FILE "SCEPCMPSecretFile"
#define SCEP_CMP_REFERENCE "SCEPCMPReference"
#define SCEP_CMP_TLS_CA_FILE "SCEPCMPTLSCAFile"
#define SCEP_CMP_TIMEOUT "SCEPCMPTimeout"
#define SCEP_CMP_TRANSACTION_TIMEOUT "SCEPCMPTransactionTimeout"
#define SCEP_CA_HELPER "SCEPCAHelper"
#define SCEP_CA_HELPER_TIMEOUT "SCEPCAHelperTimeout"
#define SCEP_CA_POLL_INTERVAL "SCEPCAPollInterval"
#define SCEP_EXTERNAL_CRL "SCEPExternalCRL"
#define SCEP_EXTERNAL_CRL_REFRESH "SCEPExternalCRLRefresh"
#define SCEP_CHALLENGE_CHECK "SCEPChallengeCheck"
#define SCEP_CHALLENGE_PROGRAM "SCEPChallengeProgram"
#define SCEP_CHALLENGE_PROGRAM_TIMEOUT "SCEPChallengeProgramTimeout"
#define SCEP_CHALLENGE_WEBHOOK "SCEPChallengeWebhook"
#define SCEP_CHALLENGE_WEBHOOK_SECRET_FILE "SCEPChallengeWebhookSecretFile"
#define SCEP_CHALLENGE_WEBHOOK_ID "SCEPChallengeWebhookID"
#define SCEP_WEBHOOK_CA_FILE "SCEPWebhookCAFile"
#define SCEP_WEBHOOK_CLIENT_CERT "SCEPWebhookClientCert"
#define SCEP_WEBHOOK_CLIENT_KEY "SCEPWebhookClientKey"
#define SCEP_WEBHOOK_TIMEOUT "SCEPWebhookTimeout"
#define SCEP_NOTIFY_WEBHOOK "SCEPNotifyWebhook"
#define SCEP_NOTIFY_WEBHOOK_SECRET_FILE "SCEPNotifyWebhookSecretFile"
/* issue 16: the audit log (mod_scep_audit.c) */
#define SCEP_AUDIT_LOG "SCEPAuditLog"
/* keys in a PKCS#11 token (mod_scep_pkcs11.c) */
#define SCEP_PKCS11_MODULE "SCEPPKCS11Module"
#define SCEP_PKCS11_PIN_FILE "SCEPPKCS11PINFile"

/* SCEPCAType: who may get passwords (white paper, "The Enrollment Process"). */
typedef enum {
    SCEP_CA_ENTERPRISE = 1, /* enroll permission on the three templates */
    SCEP_CA_STANDALONE = 2  /* membership of the CA administrators group */
} scep_ca_type_t;

/* How SCEPLDAPURL connects (mod_authnz_ldap's AuthLDAPURL second argument). */
typedef enum {
    SCEP_LDAP_PLAIN = 1,
    SCEP_LDAP_SSL = 2, /* ldaps:// */
    SCEP_LDAP_STARTTLS = 3
} scep_ldap_security_t;

/* SCEPCABackend: who issues the certificates. */
typedef enum {
    SCEP_BACKEND_BUILTIN = 1, /* the CA key in Apache (SCEPCAKeyFile) */
    SCEP_BACKEND_CMP = 2,     /* an external CA over CMP */
    SCEP_BACKEND_HELPER = 3   /* an external CA through a certmonger CA helper */
} scep_backend_kind_t;

/* SCEPPasswordStore: where the one-time passwords live. */
typedef enum {
    SCEP_PASSWORD_STORE_SHM = 1, /* shared memory: one server's */
    SCEP_PASSWORD_STORE_SQL = 2  /* the records database: a service of several servers */
} scep_password_store_kind_t;

/* Largest SCEPCertificateValidity and <SCEPTemplate>'s Validity. */
#define SCEP_VALIDITY_DAYS_MAX 36500

/*
 * The kinds of directive: (C type of the member, its "unset" value, httpd's
 * argument form, how a virtual host's value meets the main server's).
 * REPLACE: the virtual host's value wins when it set one, else the main
 * server's; UNION: the main server's entries, then the virtual host's.
 */
#define SCEP_KIND_FILE (const char *, NULL, TAKE1, REPLACE)
#define SCEP_KIND_STRING (const char *, NULL, TAKE1, REPLACE)
#define SCEP_KIND_FLAG (int, -1, FLAG, REPLACE)
#define SCEP_KIND_INT (int, -1, TAKE1, REPLACE)
#define SCEP_KIND_SIZE (apr_size_t, 0, TAKE1, REPLACE)
#define SCEP_KIND_ENUM (int, -1, TAKE1, REPLACE)
#define SCEP_KIND_DIGEST (const EVP_MD *, NULL, TAKE1, REPLACE)
#define SCEP_KIND_FILE_PAIRS (apr_array_header_t *, NULL, TAKE2, REPLACE)
#define SCEP_KIND_GROUPS (apr_table_t *, NULL, TAKE2, UNION)
#define SCEP_KIND_LDAP_URL (apr_ldap_url_desc_t *, NULL, TAKE12, REPLACE)
#define SCEP_KIND_SECTION (apr_array_header_t *, NULL, RAW_ARGS, REPLACE)
#define SCEP_KIND_ARGV (const char *const *, NULL, RAW_ARGS, REPLACE)
#define SCEP_KIND_CHALLENGE_LIST (const scep_challenge_list_t *, NULL, RAW_ARGS, REPLACE)

#define SCEP_KIND_TYPE(kind) SCEP_KIND_PICK(SCEP_KIND_TYPE_, SCEP_KIND_##kind)
#define SCEP_KIND_UNSET(kind) SCEP_KIND_PICK(SCEP_KIND_UNSET_, SCEP_KIND_##kind)
#define SCEP_KIND_ARGS(kind) SCEP_KIND_PICK(SCEP_KIND_ARGS_, SCEP_KIND_##kind)
#define SCEP_KIND_MERGE(kind) SCEP_KIND_PICK(SCEP_KIND_MERGE_, SCEP_KIND_##kind)
#define SCEP_KIND_PICK(pick, tuple) pick tuple
#define SCEP_KIND_TYPE_(type, unset, args, merge) type
#define SCEP_KIND_UNSET_(type, unset, args, merge) unset
#define SCEP_KIND_ARGS_(type, unset, args, merge) args
#define SCEP_KIND_MERGE_(type, unset, args, merge) merge

/*
 * The directives, one row each (HACKING.md's directive table documents
 * them; t/check_conf_directives.sh fails when a row is missing there, in
 * README or in conf.d/scep.conf):
 *
 *   X(NAME, member, kind, setter, scope, min, max, unit, default, help)
 *
 * NAME: the macro of the directive's name; member: what it sets in
 * mod_scep_srv_conf_t; kind: above; setter: the function that parses it
 * (set_file, set_string, set_flag, set_int and set_size of
 * mod_scep_config.c read the row; others parse what is special and check
 * their scope themselves); scope: SERVER (main server or virtual host) or
 * GLOBAL (main server only: the password cache is one for the whole
 * server, as NDES's is); min, max, unit: the bounds of INT and SIZE (0, 0,
 * NULL otherwise), named in their error message; default: applied at
 * startup to what is still unset after merging (an expression that may
 * use the pool `p`); help: httpd -L's text.
 *
 * The table is expanded for the struct's members, create (every member
 * unset), merge (by kind), the defaults, the bounds and the command table,
 * so a directive cannot be forgotten in any of them (mod_auth_openidc's
 * scheme).
 */
#define SCEP_DIRECTIVES(X) \
    X(SCEP_CA_CERTIFICATE_FILE, ca_cert_file, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "PEM certificate of the issuing CA; enables SCEP in this server") \
    X(SCEP_CA_KEY_FILE, ca_key_file, FILE, set_key_file, SERVER, 0, 0, NULL, NULL, \
      "PEM private key of the built-in CA (mode 0600), or a pkcs11: URI naming it in a " \
      "token") \
    X(SCEP_CA_CHAIN_FILE, ca_chain_file, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "PEM certificates above the CA (intermediates, root)") \
    X(SCEP_RA_CERTIFICATE, ra_files, FILE_PAIRS, set_ra_certificate, SERVER, 0, 0, NULL, \
      apr_array_make(p, 0, sizeof(scep_ra_file_t)), \
      "CERTFILE KEYFILE: an RA certificate candidate and its key (repeatable); " \
      "without any, the CA key acts as RA") \
    X(SCEP_GETCACERT_INCLUDE_ROOT, include_root, FLAG, set_flag, SERVER, 0, 0, NULL, 1, \
      "On|Off: GetCACert lists the root certificate (default On)") \
    X(SCEP_ENFORCE_PASSWORD, enforce_password, FLAG, set_flag, SERVER, 0, 0, NULL, 1, \
      "On|Off: requests need a challenge password (default On)") \
    X(SCEP_CHALLENGE_PASSWORD_FILE, challenge_file, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "file whose first line is the static challenge password") \
    X(SCEP_ALLOW_LEGACY_ALGORITHMS, allow_legacy, FLAG, set_flag, SERVER, 0, 0, NULL, 0, \
      "On|Off: accept single DES and MD5, forbidden by RFC 8894 (default Off)") \
    X(SCEP_HASH_ALGORITHM, hash_md, DIGEST, set_hash_algorithm, SERVER, 0, 0, NULL, \
      scep_md(NID_sha256), \
      "SHA256|SHA384|SHA512|SHA1: signature hash of issued certificates " \
      "(default SHA256)") \
    X(SCEP_CERTIFICATE_VALIDITY, validity_days, INT, set_int, SERVER, 1, SCEP_VALIDITY_DAYS_MAX, \
      "days", 365, "days of validity of issued certificates (default 365)") \
    X(SCEP_CERTREP_INCLUDE_CHAIN, certrep_include_chain, FLAG, set_flag, SERVER, 0, 0, NULL, 0, \
      "On|Off: SUCCESS replies carry the CA chain (default Off)") \
    /* below the minimum no pkiMessage fits; above the maximum (16 MiB) a \
     * request would hold too much memory, as bodies are kept whole */ \
    X(SCEP_MAX_REQUEST_SIZE, max_request_size, SIZE, set_size, SERVER, 1024, 16777216, "bytes", \
      65536, "largest PKIOperation message in bytes (default 65536)") \
    X(SCEP_PASSWORD_MAX, password_max, INT, set_int, GLOBAL, 1, 100000, "passwords", 5, \
      "most one-time passwords waiting to be used, server-wide (default 5)") \
    X(SCEP_PASSWORD_VALIDITY, password_validity, INT, set_int, GLOBAL, 1, 7 * 24 * 60, "minutes", \
      60, "minutes a one-time password stays valid (default 60)") \
    X(SCEP_PASSWORD_LENGTH, password_length, INT, set_int, GLOBAL, SCEP_PASSWORD_BYTES_MIN, \
      SCEP_PASSWORD_BYTES_MAX, "bytes", 8, \
      "bytes of randomness in a password, shown as twice as many hex digits " \
      "(default 8)") \
    X(SCEP_USE_SINGLE_PASSWORD, use_single_password, FLAG, set_flag, GLOBAL, 0, 0, NULL, 0, \
      "On|Off: one password for all devices, NDES's single-password " \
      "mode (default Off)") \
    X(SCEP_SINGLE_PASSWORD_FILE, single_password_file, FILE, set_file, GLOBAL, 0, 0, NULL, NULL, \
      "where the single password is kept, encrypted with " SCEP_SECRET_KEY_FILE) \
    X(SCEP_SECRET_KEY_FILE, secret_key_file, FILE, set_file, GLOBAL, 0, 0, NULL, NULL, \
      "key file (mode 0600, created when missing) protecting secrets " \
      "kept at rest") \
    X(SCEP_PASSWORD_STORE, password_store, ENUM, set_password_store, GLOBAL, 0, 0, NULL, \
      SCEP_PASSWORD_STORE_SHM, \
      "shm|sql: one-time passwords in shared memory (one server) or in the " \
      "records database, shared by the servers of a service (default shm)") \
    X(SCEP_PASSWORD_VDIR, password_vdir, STRING, set_string, SERVER, 0, 0, NULL, \
      "/certsrv/mscep_admin", \
      "URL path at or below which passwords are handed out; /: anywhere " \
      "(default /certsrv/mscep_admin)") \
    X(SCEP_ADMIN_ALLOW_HTTP, admin_allow_http, FLAG, set_flag, SERVER, 0, 0, NULL, 0, \
      "On|Off: hand out passwords over plain HTTP too (default Off)") \
    X(SCEP_CA_TYPE, ca_type, ENUM, set_ca_type, SERVER, 0, 0, NULL, SCEP_CA_ENTERPRISE, \
      "Enterprise|Standalone: who may get passwords (default Enterprise)") \
    X(SCEP_SIGNATURE_TEMPLATE, signature_template, STRING, set_string, SERVER, 0, 0, NULL, \
      SCEP_BUILTIN_TEMPLATE, \
      "template for keyUsage digitalSignature (default " SCEP_BUILTIN_TEMPLATE ")") \
    X(SCEP_ENCRYPTION_TEMPLATE, encryption_template, STRING, set_string, SERVER, 0, 0, NULL, \
      SCEP_BUILTIN_TEMPLATE, \
      "template for keyUsage keyEncipherment (default " SCEP_BUILTIN_TEMPLATE ")") \
    X(SCEP_GENERAL_PURPOSE_TEMPLATE, general_purpose_template, STRING, set_string, SERVER, 0, 0, \
      NULL, SCEP_BUILTIN_TEMPLATE, \
      "template for both key usages or none (default " SCEP_BUILTIN_TEMPLATE ")") \
    /* also filled by <SCEPTemplate>'s EnrollGroup; a virtual host adds its \
     * lines to the main server's (HACKING.md, "Templates") */ \
    X(SCEP_TEMPLATE_ENROLL_GROUP, template_groups, GROUPS, set_template_group, SERVER, 0, 0, NULL, \
      apr_table_make(p, 3), \
      "TEMPLATE GROUP-DN: members of the LDAP group may enroll with the template " \
      "(repeatable)") \
    X(SCEP_CA_ADMIN_GROUP, ca_admin_group, STRING, set_string, SERVER, 0, 0, NULL, NULL, \
      "GROUP-DN: the CA administrators (SCEPCAType Standalone)") \
    /* also sets ldap_security (MOD_SCEP_CONF_ALSO_SET) */ \
    X(SCEP_LDAP_URL, ldap_url, LDAP_URL, set_ldap_url, SERVER, 0, 0, NULL, NULL, \
      "ldap[s]://host[:port]/basedn?attr?scope?filter [NONE|SSL|STARTTLS]: where " \
      "administrators' group memberships are checked; unset: no check") \
    X(SCEP_LDAP_BIND_DN, ldap_bind_dn, STRING, set_string, SERVER, 0, 0, NULL, NULL, \
      "DN to bind as for the LDAP checks (default anonymous)") \
    X(SCEP_LDAP_BIND_PASSWORD, ldap_bind_password, STRING, set_string, SERVER, 0, 0, NULL, NULL, \
      "password for " SCEP_LDAP_BIND_DN) \
    X(SCEP_NEXT_CA_CERTIFICATE_FILE, next_ca_cert_file, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "PEM certificate of the next CA (rollover), served by " \
      "GetNextCACert") \
    X(SCEP_DISABLE_RENEWAL_SUBJECT_NAME_MATCH, disable_renewal_subject_match, FLAG, set_flag, \
      SERVER, 0, 0, NULL, 0, \
      "On|Off: a renewal may ask for another subject and subjectAltName than its " \
      "signer certificate's (default Off)") \
    X(SCEP_CRL_URL, crl_url, STRING, set_crl_url, SERVER, 0, 0, NULL, NULL, \
      "http:// URL of the CRL, put into issued certificates' CRL distribution " \
      "points (default none)") \
    X(SCEP_CRL_VALIDITY, crl_validity_hours, INT, set_int, SERVER, 1, 8784 /* 366 days */, \
      "hours", 7 * 24, "hours from a CRL's thisUpdate to its nextUpdate (default 168)") \
    X(SCEP_REFRESH_PERIOD, refresh_period_days, INT, set_int, SERVER, 1, 3650, "days", 7, \
      "days a request waits for a CA manager's decision before it expires " \
      "(default 7)") \
    X(SCEP_CACHE_REQUEST, cache_request_minutes, INT, set_int, SERVER, 1, 366 * 24 * 60, \
      "minutes", 20, \
      "minutes an issued certificate answers retries of its transaction " \
      "(default 20)") \
    /* the CA manager page */ \
    X(SCEP_CA_MANAGER_GROUP, ca_manager_group, STRING, set_string, SERVER, 0, 0, NULL, NULL, \
      "GROUP-DN: the CA managers, who may use the manager page (approve, deny, " \
      "revoke)") \
    X(SCEP_TEMPLATE_SECTION, templates, SECTION, mod_scep_template_section, SERVER, 0, 0, NULL, \
      apr_array_make(p, 0, sizeof(void *)), \
      "<SCEPTemplate NAME> ... </SCEPTemplate>: a certificate template (its " \
      "directives: README, conf.d/scep.conf)") \
    /* an external CA (HACKING.md, "CA backends") */ \
    X(SCEP_CA_BACKEND, ca_backend, ENUM, set_ca_backend, SERVER, 0, 0, NULL, SCEP_BACKEND_BUILTIN, \
      "builtin|cmp|helper: who issues certificates: the CA key in Apache, an " \
      "external CA over CMP or through a certmonger CA helper (default builtin)") \
    X(SCEP_CMP_SERVER, cmp_server, STRING, set_cmp_server, SERVER, 0, 0, NULL, NULL, \
      "http:// or https:// URL of the external CA's CMP server") \
    X(SCEP_CMP_TRUST_FILE, cmp_trust_file, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "PEM trust anchors of the CA's CMP signer (signed answers)") \
    X(SCEP_CMP_SECRET_FILE, cmp_secret_file, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "file (mode 0600) whose first line is the CMP MAC secret; unset: " \
      "requests are signed with the RA signing certificate") \
    X(SCEP_CMP_REFERENCE, cmp_reference, STRING, set_string, SERVER, 0, 0, NULL, NULL, \
      "the CMP MAC secret's reference (senderKID)") \
    X(SCEP_CMP_TLS_CA_FILE, cmp_tls_ca_file, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "PEM trust anchors of an https:// CMP server's TLS certificate") \
    X(SCEP_CMP_TIMEOUT, cmp_timeout, INT, set_int, SERVER, 1, SCEP_CA_CMP_MAX_MSG_TIMEOUT, \
      "seconds", 30, "seconds for one CMP message exchange (default 30)") \
    X(SCEP_CMP_TRANSACTION_TIMEOUT, cmp_transaction_timeout, INT, set_int, SERVER, 1, \
      SCEP_CA_CMP_MAX_TOTAL_TIMEOUT, "seconds", SCEP_CA_CMP_MAX_TOTAL_TIMEOUT, \
      "seconds a CMP transaction may last, polling included (default 604800)") \
    X(SCEP_CA_HELPER, ca_helper_argv, ARGV, set_ca_helper, SERVER, 0, 0, NULL, NULL, \
      "/ABSOLUTE/PATH [ARGS...]: the certmonger CA helper, run without a shell") \
    X(SCEP_CA_HELPER_TIMEOUT, ca_helper_timeout, INT, set_int, SERVER, 1, 3600, "seconds", 30, \
      "seconds a CA helper may run (default 30)") \
    X(SCEP_CA_POLL_INTERVAL, ca_poll_interval, INT, set_int, SERVER, 1, 86400, "seconds", 60, \
      "seconds between each child's rounds over the requests the external CA " \
      "holds (default 60)") \
    X(SCEP_EXTERNAL_CRL, external_crl, STRING, set_external_crl, SERVER, 0, 0, NULL, NULL, \
      "FILE (PEM or DER) or http:// URL (DER) of the external CA's CRL, served " \
      "by GetCRL") \
    X(SCEP_EXTERNAL_CRL_REFRESH, external_crl_refresh_minutes, INT, set_int, SERVER, 1, \
      7 * 24 * 60, "minutes", 60, \
      "minutes a fetched " SCEP_EXTERNAL_CRL " is served before it is read again " \
      "(default 60)") \
    /* challenge checks (scep_challenge.h); unset: password, or none with \
     * SCEPEnforcePassword Off (mod_scep_challenge.c); the timeout first, \
     * beside the number above in the record */ \
    X(SCEP_CHALLENGE_PROGRAM_TIMEOUT, challenge_program_timeout, INT, set_int, SERVER, 1, 600, \
      "seconds", 10, "seconds a challenge check program may run (default 10)") \
    X(SCEP_CHALLENGE_CHECK, challenge_checks, CHALLENGE_LIST, set_challenge_check, SERVER, 0, 0, \
      NULL, NULL, \
      "password|webhook|program ...: the methods that check a PKCSReq's " \
      "challenge, in order: the first that allows, allows (default password)") \
    X(SCEP_CHALLENGE_PROGRAM, challenge_program_argv, ARGV, set_challenge_program, SERVER, 0, 0, \
      NULL, NULL, "/ABSOLUTE/PATH [ARGS...]: the challenge check program, run without a shell") \
    /* the MDM's webhooks (HACKING.md, "Webhooks") */ \
    X(SCEP_CHALLENGE_WEBHOOK, challenge_webhook_url, STRING, set_webhook_url, SERVER, 0, 0, NULL, \
      NULL, \
      "https:// URL (http:// to loopback only) of the challenge method webhook, " \
      "step-ca's SCEPCHALLENGE contract") \
    X(SCEP_CHALLENGE_WEBHOOK_SECRET_FILE, challenge_webhook_secret_file, FILE, set_file, SERVER, \
      0, 0, NULL, NULL, \
      "file (mode 0600) whose first line is the webhook's base64 secret, which " \
      "signs each request (X-Smallstep-Signature); unset: unsigned") \
    X(SCEP_CHALLENGE_WEBHOOK_ID, challenge_webhook_id, STRING, set_string, SERVER, 0, 0, NULL, \
      NULL, "X-Smallstep-Webhook-ID of the challenge webhook (default the server name)") \
    X(SCEP_WEBHOOK_CA_FILE, webhook_ca_file, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "PEM trust anchors of the webhooks' https:// servers (default the " \
      "system's)") \
    X(SCEP_WEBHOOK_CLIENT_CERT, webhook_client_cert, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "PEM client certificate presented to the webhooks' servers") \
    X(SCEP_WEBHOOK_CLIENT_KEY, webhook_client_key, FILE, set_file, SERVER, 0, 0, NULL, NULL, \
      "PEM key (mode 0600, unencrypted) of " SCEP_WEBHOOK_CLIENT_CERT) \
    /* notifications (mod_scep_notify.c) */ \
    X(SCEP_NOTIFY_WEBHOOK, notify_webhook, STRING, set_webhook_url, SERVER, 0, 0, NULL, NULL, \
      "https:// URL (http:// to a loopback address) to which each decision on a " \
      "PKCSReq, RenewalReq or CertPoll is POSTed as JSON (default none)") \
    X(SCEP_NOTIFY_WEBHOOK_SECRET_FILE, notify_secret_file, FILE, set_file, SERVER, 0, 0, NULL, \
      NULL, \
      "file (mode 0600) whose first line is the base64 secret signing the " \
      "notifications (X-Smallstep-Signature); unset: unsigned") \
    X(SCEP_WEBHOOK_TIMEOUT, webhook_timeout, INT, set_int, SERVER, 1, SCEP_WEBHOOK_MAX_TIMEOUT, \
      "seconds", SCEP_WEBHOOK_DEFAULT_TIMEOUT, \
      "seconds for one whole exchange with a webhook (default 5)") \
    /* the audit log (mod_scep_audit.c) */ \
    X(SCEP_AUDIT_LOG, audit_log, STRING, mod_scep_audit_set_log, SERVER, 0, 0, NULL, NULL, \
      "FILE or \"|COMMAND\": one JSON line per decision (issued, refused, held, " \
      "approved, denied, revoked, password issued), like CustomLog (default none)") \
    /* keys in a PKCS#11 token (mod_scep_pkcs11.c, scep_key_pkcs11.h) */ \
    X(SCEP_PKCS11_MODULE, pkcs11_module, FILE, set_file, GLOBAL, 0, 0, NULL, NULL, \
      "the PKCS#11 module (shared object) of the token holding pkcs11: keys") \
    X(SCEP_PKCS11_PIN_FILE, pkcs11_pin_file, FILE, set_file, GLOBAL, 0, 0, NULL, NULL, \
      "file (mode 0600) whose first line is the token's user PIN")

/* Members that a directive of the table sets besides its own member:
 * X(type, member, unset, default), merged like REPLACE. */
#define MOD_SCEP_CONF_ALSO_SET(X) X(int, ldap_security, -1, SCEP_LDAP_PLAIN) /* SCEPLDAPURL */

typedef struct mod_scep_srv_conf_t {
#define MOD_SCEP_CONF_MEMBER(type, member) type member;
#define MOD_SCEP_CONF_DECLARE(name, member, kind, setter, scope, min, max, unit, dflt, help) \
    MOD_SCEP_CONF_MEMBER(SCEP_KIND_TYPE(kind), member)
    SCEP_DIRECTIVES(MOD_SCEP_CONF_DECLARE)
#undef MOD_SCEP_CONF_DECLARE
#define MOD_SCEP_CONF_DECLARE_ALSO(type, member, unset, dflt) MOD_SCEP_CONF_MEMBER(type, member)
    MOD_SCEP_CONF_ALSO_SET(MOD_SCEP_CONF_DECLARE_ALSO)
#undef MOD_SCEP_CONF_DECLARE_ALSO
#undef MOD_SCEP_CONF_MEMBER

    /* Set when the configuration is checked at startup, never merged: */
    int enabled;                       /* this server has SCEPCACertificateFile */
    scep_pki_t *pki;                   /* CA and RA certificates and keys, loaded once */
    const char *challenge;             /* the static challenge password, NULL if none */
    const unsigned char *next_ca_body; /* GetNextCACert reply, NULL: no rollover */
    apr_size_t next_ca_len;
    scep_ca_backend_t *ca;  /* SCEPCABackend's, built once */
    scep_webhook_t *notify; /* SCEPNotifyWebhook's, built once; NULL: none */
    /* The checks of SCEPChallengeWebhook and SCEPChallengeProgram, built
     * once; NULL when not configured (the engine's env gets them). */
    scep_challenge_check_t *challenge_webhook;
    scep_challenge_check_t *challenge_program;
    /* In each process: 1 once the records confirmed this server's service
     * (mod_scep_store_dbd.c), read and set atomically by the threads. */
    volatile apr_uint32_t service_checked;
} mod_scep_srv_conf_t;

extern const command_rec mod_scep_cmds[];

/* <SCEPTemplate NAME> ... </SCEPTemplate>: a certificate template, its
 * directives parsed from the section's children (mod_scep_template.c). */
const char *mod_scep_template_section(cmd_parms *cmd, void *dconf, const char *arg);

/* SCEPAuditLog: a file relative to ServerRoot, or "|command" as CustomLog
 * (mod_scep_audit.c). */
const char *mod_scep_audit_set_log(cmd_parms *cmd, void *dconf, const char *arg);

void *mod_scep_create_srv_conf(apr_pool_t *p, server_rec *s);
void *mod_scep_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);

/* Replaces every member still unset after merging by its default. */
void mod_scep_conf_apply_defaults(apr_pool_t *p, mod_scep_srv_conf_t *conf);

#endif /* mod_scep_mod_scep_config_h */
