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

#include "scep.h"

/* Directive names: used by the command table and in error messages, so the
 * two cannot drift apart. */
#define SCEP_CA_CERTIFICATE_FILE     "SCEPCACertificateFile"
#define SCEP_CA_KEY_FILE             "SCEPCAKeyFile"
#define SCEP_CA_CHAIN_FILE           "SCEPCAChainFile"
#define SCEP_RA_CERTIFICATE          "SCEPRACertificate"
#define SCEP_GETCACERT_INCLUDE_ROOT  "SCEPGetCACertIncludeRoot"
#define SCEP_ENFORCE_PASSWORD        "SCEPEnforcePassword"
#define SCEP_CHALLENGE_PASSWORD_FILE "SCEPChallengePasswordFile"
#define SCEP_ALLOW_LEGACY_ALGORITHMS "SCEPAllowLegacyAlgorithms"
#define SCEP_HASH_ALGORITHM          "SCEPHashAlgorithm"
#define SCEP_CERTIFICATE_VALIDITY    "SCEPCertificateValidity"
#define SCEP_CERTREP_INCLUDE_CHAIN   "SCEPCertRepIncludeChain"
#define SCEP_MAX_REQUEST_SIZE        "SCEPMaxRequestSize"

/* Bounds of the numeric directives. */
#define SCEP_VALIDITY_DAYS_MAX       36500
#define SCEP_MAX_REQUEST_SIZE_MIN    1024
#define SCEP_MAX_REQUEST_SIZE_MAX    (16 * 1024 * 1024)

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
    X(apr_size_t, max_request_size, 0, 65536)

typedef struct mod_scep_srv_conf_t {
#define MOD_SCEP_CONF_DECLARE(type, name, unset, dflt) type name;
    MOD_SCEP_SRV_CONF_MEMBERS(MOD_SCEP_CONF_DECLARE)
#undef MOD_SCEP_CONF_DECLARE

    /* Set when the configuration is checked at startup, never merged: */
    int enabled;          /* this server has SCEPCACertificateFile */
    scep_pki_t *pki;      /* CA and RA certificates and keys, loaded once */
    const char *challenge; /* the static challenge password, NULL if none */
} mod_scep_srv_conf_t;

extern const command_rec mod_scep_cmds[];

void *mod_scep_create_srv_conf(apr_pool_t *p, server_rec *s);
void *mod_scep_merge_srv_conf(apr_pool_t *p, void *basev, void *addv);

/* Replaces every member still unset after merging by its default. */
void mod_scep_conf_apply_defaults(apr_pool_t *p, mod_scep_srv_conf_t *conf);

#endif /* mod_scep_mod_scep_config_h */
