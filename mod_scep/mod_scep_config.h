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
 * table, their names defined once, and the server record they fill.
 */
#ifndef mod_scep_mod_scep_config_h
#define mod_scep_mod_scep_config_h

#include <httpd.h>
#include <http_config.h>

#include <apr_ldap.h>

#include "scep.h"

/* Directive names: used by the command table and in error messages, so the
 * two cannot drift apart. */
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
/* The CA manager page (mod_scep_manager.c). */
#define SCEP_CA_MANAGER_GROUP "SCEPCAManagerGroup"

/* NDES's default template for every key usage ("IPSec (Offline request)"). */
#define SCEP_DEFAULT_TEMPLATE "IPSECIntermediateOffline"

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

/* Bounds of the numeric directives. */
#define SCEP_VALIDITY_DAYS_MAX 36500
#define SCEP_MAX_REQUEST_SIZE_MIN 1024
#define SCEP_MAX_REQUEST_SIZE_MAX 16777216 /* 16 MiB, an int for "%d" */
#define SCEP_PASSWORD_MAX_MAX 100000
#define SCEP_PASSWORD_VALIDITY_MAX (7 * 24 * 60)
#define SCEP_PASSWORD_LENGTH_MIN 4
#define SCEP_PASSWORD_LENGTH_MAX 64
#define SCEP_CRL_VALIDITY_HOURS_MAX 8784       /* 366 days */
#define SCEP_REFRESH_PERIOD_MAX 3650           /* days */
#define SCEP_CACHE_REQUEST_MAX (366 * 24 * 60) /* minutes */

/*
 * The configured members, one line each: X(type, name, unset, default).
 * The list is expanded for the struct, for create (every member starts
 * "unset"), for merge (a virtual host's value wins when set) and for the
 * defaults applied once the configuration is complete, so a new member
 * cannot be forgotten in any of them (mod_auth_openidc's scheme).
 * A default expression may use the pool `p` it is applied with.
 */
#define MOD_SCEP_SRV_CONF_MEMBERS(X) \
    X(const char *, ca_cert_file, NULL, NULL) \
    X(const char *, ca_key_file, NULL, NULL) \
    X(const char *, ca_chain_file, NULL, NULL) \
    X(apr_array_header_t *, ra_files, NULL, apr_array_make(p, 0, sizeof(scep_ra_file_t))) \
    X(int, include_root, -1, 1) \
    X(int, enforce_password, -1, 1) \
    X(const char *, challenge_file, NULL, NULL) \
    X(int, allow_legacy, -1, 0) \
    X(const EVP_MD *, hash_md, NULL, EVP_sha256()) \
    X(int, validity_days, -1, 365) \
    X(int, certrep_include_chain, -1, 0) \
    X(apr_size_t, max_request_size, 0, 65536) \
    X(int, password_max, -1, 5) \
    X(int, password_validity, -1, 60) \
    X(int, password_length, -1, 8) \
    X(int, use_single_password, -1, 0) \
    X(const char *, single_password_file, NULL, NULL) \
    X(const char *, secret_key_file, NULL, NULL) \
    X(const char *, password_vdir, NULL, "/certsrv/mscep_admin") \
    X(int, admin_allow_http, -1, 0) \
    X(int, ca_type, -1, SCEP_CA_ENTERPRISE) \
    X(const char *, signature_template, NULL, SCEP_DEFAULT_TEMPLATE) \
    X(const char *, encryption_template, NULL, SCEP_DEFAULT_TEMPLATE) \
    X(const char *, general_purpose_template, NULL, SCEP_DEFAULT_TEMPLATE) \
    X(apr_table_t *, template_groups, NULL, apr_table_make(p, 3)) \
    X(const char *, ca_admin_group, NULL, NULL) \
    X(apr_ldap_url_desc_t *, ldap_url, NULL, NULL) \
    X(int, ldap_security, -1, SCEP_LDAP_PLAIN) \
    X(const char *, ldap_bind_dn, NULL, NULL) \
    X(const char *, ldap_bind_password, NULL, NULL) \
    X(const char *, next_ca_cert_file, NULL, NULL) \
    X(int, disable_renewal_subject_match, -1, 0) \
    X(const char *, crl_url, NULL, NULL) \
    X(int, crl_validity_hours, -1, 7 * 24) \
    X(int, refresh_period_days, -1, 7) \
    X(int, cache_request_minutes, -1, 20) \
    X(apr_array_header_t *, templates, NULL, apr_array_make(p, 0, sizeof(void *))) \
    /* the CA manager page */ \
    X(const char *, ca_manager_group, NULL, NULL)

typedef struct mod_scep_srv_conf_t {
#define MOD_SCEP_CONF_DECLARE(type, name, unset, dflt) type name;
    MOD_SCEP_SRV_CONF_MEMBERS(MOD_SCEP_CONF_DECLARE)
#undef MOD_SCEP_CONF_DECLARE

    /* Set when the configuration is checked at startup, never merged: */
    int enabled;                       /* this server has SCEPCACertificateFile */
    scep_pki_t *pki;                   /* CA and RA certificates and keys, loaded once */
    const char *challenge;             /* the static challenge password, NULL if none */
    const unsigned char *next_ca_body; /* GetNextCACert reply, NULL: no rollover */
    apr_size_t next_ca_len;
} mod_scep_srv_conf_t;

extern const command_rec mod_scep_cmds[];

/* <SCEPTemplate NAME> ... </SCEPTemplate>: a certificate template, its
 * directives parsed from the section's children (mod_scep_template.c). */
const char *mod_scep_template_section(cmd_parms *cmd, void *dconf, const char *arg);

void *mod_scep_create_srv_conf(apr_pool_t *p, server_rec *s);
void *mod_scep_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);

/* Replaces every member still unset after merging by its default. */
void mod_scep_conf_apply_defaults(apr_pool_t *p, mod_scep_srv_conf_t *conf);

#endif /* mod_scep_mod_scep_config_h */
