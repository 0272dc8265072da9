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
 * scepctl: sets up the PKI mod_scep runs on (what the NDES setup wizard
 * does): a CA and the two RA certificates, or RA keys and CSRs for an
 * external CA and the installation of what it returns, or, with a
 * certmonger CA helper, the whole round (the CA's certificates, the RA
 * requests submitted, the answers installed); check-ca asks an external CA
 * (helper or CMP) whether it answers.
 *
 * Files in DIR: ca.crt, ca.key, ra-sign.crt, ra-sign.key, ra-enc.crt,
 * ra-enc.key (keys mode 0600), ra-sign.csr, ra-enc.csr (--external),
 * ca-chain.crt (--ca-helper: the certificates above an intermediate). A key
 * is never overwritten; a re-run keeps what exists and makes what is
 * missing. Both RA certificates get the same subject, as NDES gives its
 * two service certificates; keyUsage tells them apart.
 *
 * It also keeps the single password of NDES's single-password mode
 * (SCEPUseSinglePassword): encrypted with a 0600 secret key file, as the
 * server reads it (scep_password.h).
 *
 * It also reads and changes the records the server keeps (list, approve,
 * deny, revoke), through the same store code as the server.
 *
 * Exit codes: 0 done, 1 error (message on stderr), 2 usage.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_dbd.h>
#include <apr_env.h>
#include <apr_file_info.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_file_io.h>
#include <apr_network_io.h>
#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_user.h>

#include <openssl/crypto.h>

#include "mod_scep_version.h"
#include "scep.h"
#include "scep_audit.h"
#include "scep_ca_cmp.h"
#include "scep_ca_helper.h"
#include "scep_key_pkcs11.h"
#include "scep_password.h"
#include "scep_x509.h"
#include "scepctl_pkcs11.h"

#define EXIT_OK 0
#define EXIT_ERROR 1
#define EXIT_USAGE 2

#define DEFAULT_CA_SUBJECT "/CN=mod_scep CA"
#define DEFAULT_RA_SUBJECT "/CN=mod_scep RA"
#define DEFAULT_CA_DAYS 3650
#define DEFAULT_RA_DAYS 730
#define DEFAULT_RSA_BITS 2048
#define DEFAULT_EC_BITS 256
#define MAX_RSA_BITS 16384
#define MAX_DAYS 36500
#define DEFAULT_PASSWORD_BYTES 8
/* Longest single password read from standard input, newline included. */
#define PASSWORD_LINE_MAX 258
/* Seconds an external CA has for one answer (the servers' defaults). */
#define CA_TIMEOUT 30
/* Largest CMP secret file, read whole. */
#define SECRET_FILE_MAX 4096

#define DIR_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE)

static const char usage_text[] =
    "usage:\n"
    "  scepctl --version\n"
    "      prints \"scepctl (mod_scep) VERSION\"\n"
    "  scepctl setup -d DIR [--ca-subject \"/CN=.../O=...\"] [--ra-subject \"/CN=...\"]\n"
    "                       [--key-type rsa|ec] [--key-bits N] [--ca-days N] [--ra-days N]\n"
    "                       [--pkcs11-module MODULE --pin-file FILE\n"
    "                        [--ca-key pkcs11:token=T;object=O] [--ra-key-prefix pkcs11:...]]\n"
    "      makes DIR/ca.crt, ca.key, ra-sign.crt, ra-sign.key, ra-enc.crt, ra-enc.key;\n"
    "      keeps what exists. --key-type applies to the CA and the signing RA; the\n"
    "      encryption RA key is always RSA (devices encrypt to it by RSA key transport).\n"
    "      --ca-key: the CA key in a PKCS#11 token (made there, RSA, when the token\n"
    "      has no private key of that object label) instead of ca.key;\n"
    "      --ra-key-prefix: the RA keys in the token, the URI's object label with\n"
    "      -sign and -enc appended; the PIN is the first line of FILE (mode 0600).\n"
    "  scepctl setup -d DIR --external [--ra-subject \"/CN=...\"] [--key-bits N]\n"
    "                       [--ca-helper \"/PATH/HELPER ARGS\" [--ca-profile NAME]]\n"
    "      makes DIR/ra-sign.key, ra-sign.csr, ra-enc.key, ra-enc.csr for an external CA;\n"
    "      with --ca-helper (a certmonger CA helper, run without a shell) also asks\n"
    "      it for the CA's certificates (FETCH-ROOTS), submits the CSRs (as profile\n"
    "      NAME) and installs the answers as install-ra does: DIR/ca.crt (the\n"
    "      issuing CA), ca-chain.crt (above it, when it is no root), ra-sign.crt,\n"
    "      ra-enc.crt; RA certificates that still fit that CA are kept\n"
    "  scepctl install-ra -d DIR --ca-cert FILE --sign-cert FILE --enc-cert FILE\n"
    "      checks the certificates the external CA returned and installs them as\n"
    "      DIR/ca.crt, ra-sign.crt, ra-enc.crt\n"
    "  scepctl check-ca --ca-helper \"/PATH/HELPER ARGS\"\n"
    "  scepctl check-ca --cmp-server URL -d DIR [--cmp-trust FILE]\n"
    "                   [--cmp-secret-file FILE --cmp-reference NAME] [--cmp-tls-ca FILE]\n"
    "      asks the external CA whether it answers: the helper's IDENTIFY and\n"
    "      FETCH-ROOTS; a CMP general message, protected by the RA signing\n"
    "      certificate of DIR or the MAC secret (first line of FILE, mode 0600),\n"
    "      the answer checked against DIR/ca.crt's CA and the --cmp-trust anchors;\n"
    "      exit 0 only when the CA answered\n"
    "  scepctl thumbprint FILE\n"
    "      prints the SHA-1 thumbprint of the certificate in FILE\n"
    "  scepctl single-password --key KEYFILE (--file FILE | --db PARAMS [--db-driver D])\n"
    "                          [--set PASSWORD|- | --generate [--length BYTES]] [--show]\n"
    "      the single password (SCEPSecretKeyFile, SCEPSinglePasswordFile): makes\n"
    "      KEYFILE (0600) when missing; --set writes PASSWORD (\"-\": the first line\n"
    "      of standard input, which other users cannot see in the process list),\n"
    "      --generate a random one of BYTES bytes (default 8) as upper-case hex;\n"
    "      otherwise checks that FILE decrypts. --show prints the password alone.\n"
    "      --db: the service's single password in the records (SCEPPasswordStore\n"
    "      sql; made as a server makes it when none is recorded), for every server\n"
    "  scepctl secret-key --key KEYFILE\n"
    "      makes a new secret key file (0600), never replacing one: with\n"
    "      SCEPPasswordStore sql, copy it to every server of the service\n"
    "  scepctl list --db PARAMS [--db-driver sqlite3|pgsql] [--status STATE|all]\n"
    "               [--certs [--search TEXT]] [--limit N]\n"
    "      requests (default: pending) or, with --certs, issued certificates, newest\n"
    "      first, one per line, tab-separated, under a header line starting with #\n"
    "  scepctl approve --db PARAMS [--db-driver D] [--by NAME] TRANSACTION-ID\n"
    "      approves a pending request: its device's next poll receives the certificate\n"
    "  scepctl deny --db PARAMS [--db-driver D] [--by NAME] --reason TEXT TRANSACTION-ID\n"
    "  scepctl revoke --db PARAMS [--db-driver D] [--reason CRLREASON] SERIAL\n"
    "      approve, deny, revoke: --audit-log FILE appends the decision's JSON line\n"
    "      to FILE (the server's SCEPAuditLog), user: the login name (sudo's user)\n"
    "      CRLREASON: a code or name (keyCompromise, superseded, ...; default\n"
    "      unspecified; not certificateHold: a revocation is final).\n"
    "      PARAMS are DBDParams (SQLite: the database file); the driver defaults to\n"
    "      sqlite3. Run as root, scepctl acts as the owner of a SQLite file.\n"
    "  scepctl service --db PARAMS [--db-driver D] --ca-cert FILE\n"
    "                  [--sign-cert FILE --enc-cert FILE] [--record]\n"
    "      compares these certificates (the RA's in use; none: the CA acts as RA)\n"
    "      with the enrollment service the records hold for the CA, which every\n"
    "      server on the database must present: exit 0 the same, 1 other or none.\n"
    "      --record makes them the service (after a rollover, once every server\n"
    "      has the new files; servers with the old ones then stop at their start).\n";

enum {
    OPT_DIR = 'd',
    OPT_HELP = 'h',
    OPT_CA_SUBJECT = 256,
    OPT_RA_SUBJECT,
    OPT_KEY_TYPE,
    OPT_KEY_BITS,
    OPT_CA_DAYS,
    OPT_RA_DAYS,
    OPT_EXTERNAL,
    OPT_CA_CERT,
    OPT_SIGN_CERT,
    OPT_ENC_CERT,
    OPT_KEY,
    OPT_FILE,
    OPT_SET,
    OPT_GENERATE,
    OPT_LENGTH,
    OPT_SHOW,
    OPT_DB,
    OPT_DB_DRIVER,
    OPT_STATUS,
    OPT_CERTS,
    OPT_SEARCH,
    OPT_LIMIT,
    OPT_BY,
    OPT_REASON,
    OPT_CA_HELPER,
    OPT_CA_PROFILE,
    OPT_CMP_SERVER,
    OPT_CMP_TRUST,
    OPT_CMP_SECRET_FILE,
    OPT_CMP_REFERENCE,
    OPT_CMP_TLS_CA,
    OPT_RECORD,
    OPT_AUDIT_LOG,
    /* keys in a PKCS#11 token */
    OPT_PKCS11_MODULE,
    OPT_PIN_FILE,
    OPT_CA_KEY,
    OPT_RA_KEY_PREFIX
};

static const apr_getopt_option_t setup_options[] = {
    { "dir", OPT_DIR, 1, "directory of the PKI files" },
    { "ca-subject", OPT_CA_SUBJECT, 1, "CA subject" },
    { "ra-subject", OPT_RA_SUBJECT, 1, "RA subject" },
    { "key-type", OPT_KEY_TYPE, 1, "rsa or ec" },
    { "key-bits", OPT_KEY_BITS, 1, "RSA modulus or EC curve size" },
    { "ca-days", OPT_CA_DAYS, 1, "CA validity" },
    { "ra-days", OPT_RA_DAYS, 1, "RA validity" },
    { "external", OPT_EXTERNAL, 0, "RA keys and CSRs for an external CA" },
    { "ca-helper", OPT_CA_HELPER, 1, "certmonger CA helper issuing the RA certificates" },
    { "ca-profile", OPT_CA_PROFILE, 1, "the CA's profile for the RA certificates" },
    { "pkcs11-module", OPT_PKCS11_MODULE, 1, "PKCS#11 module of the token holding keys" },
    { "pin-file", OPT_PIN_FILE, 1, "file whose first line is the token's PIN (0600)" },
    { "ca-key", OPT_CA_KEY, 1, "pkcs11: URI of the CA key in the token" },
    { "ra-key-prefix", OPT_RA_KEY_PREFIX, 1, "pkcs11: URI of the RA keys (object -sign/-enc)" },
    { "help", OPT_HELP, 0, "this text" },
    { NULL, 0, 0, NULL }
};

static const apr_getopt_option_t check_ca_options[] = {
    { "dir", OPT_DIR, 1, "directory of the PKI files (CMP)" },
    { "ca-helper", OPT_CA_HELPER, 1, "certmonger CA helper" },
    { "cmp-server", OPT_CMP_SERVER, 1, "URL of the CA's CMP server" },
    { "cmp-trust", OPT_CMP_TRUST, 1, "trust anchors of the CMP server's signer" },
    { "cmp-secret-file", OPT_CMP_SECRET_FILE, 1, "file holding the CMP MAC secret" },
    { "cmp-reference", OPT_CMP_REFERENCE, 1, "the MAC secret's reference" },
    { "cmp-tls-ca", OPT_CMP_TLS_CA, 1, "trust anchors of an https server" },
    { "help", OPT_HELP, 0, "this text" },
    { NULL, 0, 0, NULL }
};

static const apr_getopt_option_t install_options[] = {
    { "dir", OPT_DIR, 1, "directory of the PKI files" },
    { "ca-cert", OPT_CA_CERT, 1, "the external CA's certificate" },
    { "sign-cert", OPT_SIGN_CERT, 1, "the RA signing certificate" },
    { "enc-cert", OPT_ENC_CERT, 1, "the RA encryption certificate" },
    { "help", OPT_HELP, 0, "this text" },
    { NULL, 0, 0, NULL }
};

static const apr_getopt_option_t secret_key_options[] = { { "key", OPT_KEY, 1,
                                                            "the secret key file" },
                                                          { "help", OPT_HELP, 0, "this text" },
                                                          { NULL, 0, 0, NULL } };

static const apr_getopt_option_t single_password_options[] = {
    { "key", OPT_KEY, 1, "the secret key file" },
    { "file", OPT_FILE, 1, "the encrypted single password file" },
    { "db", OPT_DB, 1, "DBDParams of the records (SCEPPasswordStore sql)" },
    { "db-driver", OPT_DB_DRIVER, 1, "DBDriver of the records (default sqlite3)" },
    { "set", OPT_SET, 1, "the new password, - for standard input" },
    { "generate", OPT_GENERATE, 0, "a new random password" },
    { "length", OPT_LENGTH, 1, "bytes of randomness of --generate" },
    { "show", OPT_SHOW, 0, "print the password" },
    { "help", OPT_HELP, 0, "this text" },
    { NULL, 0, 0, NULL }
};

#define DB_OPTIONS \
    { "db", OPT_DB, 1, "DBDParams of the records" }, \
    { \
        "db-driver", OPT_DB_DRIVER, 1, "DBDriver of the records (default sqlite3)" \
    }

static const apr_getopt_option_t list_options[] = {
    DB_OPTIONS,
    { "status", OPT_STATUS, 1, "pending, approved, issued, rejected, expired or all" },
    { "certs", OPT_CERTS, 0, "issued certificates instead of requests" },
    { "search", OPT_SEARCH, 1, "part of a subject or serial number (--certs)" },
    { "limit", OPT_LIMIT, 1, "at most this many lines (default 1000)" },
    { "help", OPT_HELP, 0, "this text" },
    { NULL, 0, 0, NULL }
};

static const apr_getopt_option_t decide_options[] = {
    DB_OPTIONS,
    { "by", OPT_BY, 1, "who decides (default: the user running scepctl)" },
    { "reason", OPT_REASON, 1, "why (deny: required; revoke: a CRLReason)" },
    { "audit-log", OPT_AUDIT_LOG, 1, "audit log file the decision's JSON line is appended to" },
    { "help", OPT_HELP, 0, "this text" },
    { NULL, 0, 0, NULL }
};

static const apr_getopt_option_t service_options[] = {
    DB_OPTIONS,
    { "ca-cert", OPT_CA_CERT, 1, "the CA certificate (SCEPCACertificateFile)" },
    { "sign-cert", OPT_SIGN_CERT, 1, "the RA signing certificate in use" },
    { "enc-cert", OPT_ENC_CERT, 1, "the RA encryption certificate in use" },
    { "record", OPT_RECORD, 0, "record them as the service" },
    { "help", OPT_HELP, 0, "this text" },
    { NULL, 0, 0, NULL }
};

static const apr_getopt_option_t thumbprint_options[] = { { "help", OPT_HELP, 0, "this text" },
                                                          { NULL, 0, 0, NULL } };

typedef struct ctl_t {
    apr_pool_t *p;
    const char *dir;
    const char *ca_subject;
    const char *ra_subject;
    scep_key_type_t key_type;
    int key_bits; /* 0: the default of key_type */
    int ca_days;
    int ra_days;
    int external;
    const char *ca_cert;
    const char *sign_cert;
    const char *enc_cert;
    const char *file;     /* thumbprint */
    const char *key_file; /* single-password */
    const char *password_file;
    const char *new_password; /* --set */
    int generate;
    int length; /* --length, 0 if not given */
    int show;
    const char *db_params; /* list, approve, deny, revoke */
    const char *db_driver;
    const char *status;
    int certs;
    const char *search;
    int limit;
    const char *by;
    const char *reason;
    int record;            /* service --record */
    const char *ca_helper; /* --ca-helper as given */
    char **helper_argv;    /* its words */
    const char *ca_profile;
    const char *cmp_server; /* check-ca --cmp-server and its options */
    const char *cmp_trust;
    const char *cmp_secret_file;
    const char *cmp_reference;
    const char *cmp_tls_ca;
    const char *audit_log;     /* approve, deny, revoke: --audit-log */
    apr_file_t *audit_file;    /* opened before the records (as the user who runs scepctl) */
    const char *audit_user;    /* the login name, read before the records too */
    const char *pkcs11_module; /* setup's keys in a token */
    const char *pin_file;
    const char *pin;
    const char *ca_key;        /* pkcs11: URI, or NULL: DIR/ca.key */
    const char *ra_key_prefix; /* pkcs11: URI, or NULL: DIR/ra-*.key */
    apr_hash_t *token_had;     /* URI -> "" for the keys the token held before setup */
    scep_problem_t prob;
} ctl_t;

typedef struct command_t {
    const char *name;
    const apr_getopt_option_t *options;
    int nargs; /* arguments after the options */
    /* Says what is missing or wrong, NULL when the options fit the command. */
    const char *(*check)(ctl_t *ctl);
    apr_status_t (*run)(ctl_t *ctl);
} command_t;

/* The files of one RA certificate. */
typedef struct ra_files_t {
    scep_ra_role_t role;
    const char *name; /* for messages */
    const char *cert;
    const char *key;
    const char *csr;
} ra_files_t;

/* The messages of the store and of the CA backends: failures on stderr,
 * the rest is the server's business. */
static void log_to_stderr(void *baton, const char *file, int line, int level, const char *msg)
{
    (void)baton;
    (void)file;
    (void)line;
    if (level <= SCEP_LOG_WARNING) {
        fprintf(stderr, "scepctl: %s\n", msg);
    }
}

/* Returns rv itself, visibly: the analyzer then knows that an error path
 * (open_records() leaving its store NULL) never returns APR_SUCCESS. */
static apr_status_t ctl_error(ctl_t *ctl, apr_status_t rv, const char *text)
{
    scep_problem(&ctl->prob, rv, SCEP_FAIL_NONE, SCEP_EVENT_NONE, text);
    return rv;
}

static const char *ctl_path(ctl_t *ctl, const char *name)
{
    return apr_pstrcat(ctl->p, ctl->dir, "/", name, NULL);
}

/* The RA key of a role in the token: --ra-key-prefix with -sign or -enc
 * appended to its object label (check_setup() made sure it has one). */
static const char *ra_key_uri(ctl_t *ctl, scep_ra_role_t role)
{
    const char *uri = ctl->ra_key_prefix;
    const char *object = strstr(uri, ":object=");
    apr_size_t end;

    if (!object) {
        object = strstr(uri, ";object=");
    }
    end = (apr_size_t)(object - uri) + 1 + strcspn(object + 1, ";?");

    return apr_pstrcat(ctl->p, apr_pstrmemdup(ctl->p, uri, end),
                       role == SCEP_RA_SIGN ? "-sign" : "-enc", uri + end, NULL);
}

/* The CA key's location: the token's or DIR/ca.key. */
static const char *ca_key_location(ctl_t *ctl)
{
    return ctl->ca_key ? ctl->ca_key : ctl_path(ctl, "ca.key");
}

static ra_files_t ra_files(ctl_t *ctl, scep_ra_role_t role)
{
    const char *base = role == SCEP_RA_SIGN ? "ra-sign" : "ra-enc";
    ra_files_t files;

    files.role = role;
    files.name = role == SCEP_RA_SIGN ? "RA signing" : "RA encryption";
    files.cert = ctl_path(ctl, apr_pstrcat(ctl->p, base, ".crt", NULL));
    files.key = ctl->ra_key_prefix ? ra_key_uri(ctl, role)
                                   : ctl_path(ctl, apr_pstrcat(ctl->p, base, ".key", NULL));
    files.csr = ctl_path(ctl, apr_pstrcat(ctl->p, base, ".csr", NULL));
    return files;
}

/* Whether file exists; errors other than "does not exist" are errors. */
static apr_status_t probe(ctl_t *ctl, const char *file, int *exists)
{
    apr_finfo_t finfo;
    apr_status_t rv = apr_stat(&finfo, file, APR_FINFO_TYPE, ctl->p);

    *exists = rv == APR_SUCCESS;
    if (rv == APR_SUCCESS || APR_STATUS_IS_ENOENT(rv)) {
        return APR_SUCCESS;
    }
    return ctl_error(ctl, rv, scep_file_error(ctl->p, file, rv));
}

static apr_status_t ensure_dir(ctl_t *ctl)
{
    apr_status_t rv = apr_dir_make(ctl->dir, DIR_PERMS, ctl->p);

    if (rv == APR_SUCCESS || APR_STATUS_IS_EEXIST(rv)) {
        return APR_SUCCESS;
    }
    return ctl_error(ctl, rv, scep_file_error(ctl->p, ctl->dir, rv));
}

static void print_file(const char *what, const char *file, int created)
{
    printf("%-22s %s (%s)\n", what, file, created ? "created" : "kept");
}

/* Whether a key exists: a file, or a key the token held before setup
 * (prepare_token_keys() made the missing ones since). */
static apr_status_t probe_key(ctl_t *ctl, const char *location, int *exists)
{
    if (scep_key_is_pkcs11(location)) {
        *exists = ctl->token_had && apr_hash_get(ctl->token_had, location, APR_HASH_KEY_STRING);
        return APR_SUCCESS;
    }
    return probe(ctl, location, exists);
}

/* Loads the key in file, or makes and writes a new one when there is none;
 * a key in a token is loaded (prepare_token_keys() made it when missing). */
static apr_status_t key_load_or_make(ctl_t *ctl, const char *file, scep_key_type_t type, int bits,
                                     EVP_PKEY **key, int *created)
{
    int exists = 0;
    apr_status_t rv = probe_key(ctl, file, &exists);

    if (rv == APR_SUCCESS && scep_key_is_pkcs11(file)) {
        *created = !exists;
        return scep_read_private_key(ctl->p, file, key, &ctl->prob);
    }

    *created = rv == APR_SUCCESS && !exists;
    if (rv == APR_SUCCESS && exists) {
        rv = scep_read_private_key(ctl->p, file, key, &ctl->prob);
    }
    else if (rv == APR_SUCCESS) {
        rv = scep_x509_key_generate(ctl->p, type, bits, key, &ctl->prob);
        if (rv == APR_SUCCESS) {
            rv = scep_x509_write_key(ctl->p, file, *key, &ctl->prob);
        }
    }
    return rv;
}

/* Reads the certificate in cert_file and checks it belongs to key. */
static apr_status_t cert_load_for_key(ctl_t *ctl, const char *cert_file, const char *key_file,
                                      EVP_PKEY *key, X509 **cert)
{
    apr_status_t rv = scep_read_cert(ctl->p, cert_file, cert, &ctl->prob);

    if (rv == APR_SUCCESS && !X509_check_private_key(*cert, key)) {
        rv = ctl_error(
            ctl, APR_EINVAL,
            apr_psprintf(ctl->p, "%s does not belong to the key %s", cert_file, key_file));
    }
    return rv;
}

static int key_bits_for(const ctl_t *ctl, scep_key_type_t type)
{
    if (type != ctl->key_type) {
        return DEFAULT_RSA_BITS;
    }
    if (ctl->key_bits) {
        return ctl->key_bits;
    }
    return type == SCEP_KEY_EC ? DEFAULT_EC_BITS : DEFAULT_RSA_BITS;
}

static apr_status_t ca_make(ctl_t *ctl, const char *cert_file, EVP_PKEY *key, X509 **cert)
{
    X509_NAME *subject = NULL;
    apr_status_t rv;

    rv = scep_x509_name_parse(ctl->p, ctl->ca_subject, &subject, &ctl->prob);
    if (rv == APR_SUCCESS) {
        rv = scep_x509_ca_create(ctl->p, key, subject, ctl->ca_days, cert, &ctl->prob);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_x509_write_cert(ctl->p, cert_file, *cert, &ctl->prob);
    }
    return rv;
}

/* The CA: kept when ca.key exists (with its ca.crt), made otherwise. */
static apr_status_t setup_ca(ctl_t *ctl, X509 **cert, EVP_PKEY **key)
{
    const char *cert_file = ctl_path(ctl, "ca.crt");
    const char *key_file = ca_key_location(ctl);
    int has_cert = 0, has_key = 0, created = 0;
    apr_status_t rv;

    rv = probe(ctl, cert_file, &has_cert);
    if (rv == APR_SUCCESS) {
        rv = probe_key(ctl, key_file, &has_key);
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (has_key != has_cert) {
        /* A new certificate for an old key, or a key for a foreign
         * certificate, would silently change the CA devices trust. */
        rv = ctl_error(ctl, APR_EEXIST,
                       apr_psprintf(ctl->p,
                                    "%s exists but %s does not: restore it or move "
                                    "%s away",
                                    has_key ? key_file : cert_file, has_key ? cert_file : key_file,
                                    has_key ? key_file : cert_file));
        goto leave;
    }
    rv = key_load_or_make(ctl, key_file, ctl->key_type, key_bits_for(ctl, ctl->key_type), key,
                          &created);
    if (rv == APR_SUCCESS) {
        rv = created ? ca_make(ctl, cert_file, *key, cert)
                     : cert_load_for_key(ctl, cert_file, key_file, *key, cert);
    }
    if (rv == APR_SUCCESS) {
        print_file("CA certificate:", cert_file, created);
        print_file("CA key:", key_file, created);
    }
leave:
    return rv;
}

/* A kept RA certificate must still be one of this CA for its role. */
static apr_status_t ra_check_kept(ctl_t *ctl, const ra_files_t *files, X509 *cert, X509 *ca)
{
    const char *unfit = scep_x509_ra_unfit(cert, files->role);

    if (!unfit && X509_check_issued(ca, cert) != X509_V_OK) {
        unfit = "it is not issued by this CA";
    }
    if (unfit) {
        return ctl_error(ctl, APR_EINVAL,
                         apr_psprintf(ctl->p, "%s: %s (move it away to have a new one made)",
                                      files->cert, unfit));
    }
    return APR_SUCCESS;
}

static apr_status_t ra_make(ctl_t *ctl, const ra_files_t *files, X509 *ca, EVP_PKEY *ca_key,
                            EVP_PKEY *key)
{
    X509_NAME *subject = NULL;
    X509 *cert = NULL;
    apr_status_t rv;

    rv = scep_x509_name_parse(ctl->p, ctl->ra_subject, &subject, &ctl->prob);
    if (rv == APR_SUCCESS) {
        rv = scep_x509_ra_create(ctl->p, ca, ca_key, key, subject, files->role, ctl->ra_days, &cert,
                                 &ctl->prob);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_x509_write_cert(ctl->p, files->cert, cert, &ctl->prob);
    }
    return rv;
}

static scep_key_type_t ra_key_type(const ctl_t *ctl, scep_ra_role_t role)
{
    return role == SCEP_RA_ENCRYPT ? SCEP_KEY_RSA : ctl->key_type;
}

/* One RA certificate: kept when it exists, issued for its (possibly kept)
 * key otherwise. */
static apr_status_t setup_ra(ctl_t *ctl, scep_ra_role_t role, X509 *ca, EVP_PKEY *ca_key)
{
    ra_files_t files = ra_files(ctl, role);
    scep_key_type_t type = ra_key_type(ctl, role);
    int has_cert = 0, has_key = 0, created_key = 0;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    apr_status_t rv;

    rv = probe(ctl, files.cert, &has_cert);
    if (rv == APR_SUCCESS) {
        rv = probe_key(ctl, files.key, &has_key);
    }
    if (rv == APR_SUCCESS && has_cert && !has_key) {
        rv = ctl_error(ctl, APR_EINVAL,
                       apr_psprintf(ctl->p, "%s exists without its key %s: move it away",
                                    files.cert, files.key));
    }
    if (rv == APR_SUCCESS) {
        rv = key_load_or_make(ctl, files.key, type, key_bits_for(ctl, type), &key, &created_key);
    }
    if (rv == APR_SUCCESS && has_cert) {
        rv = cert_load_for_key(ctl, files.cert, files.key, key, &cert);
        if (rv == APR_SUCCESS) {
            rv = ra_check_kept(ctl, &files, cert, ca);
        }
    }
    else if (rv == APR_SUCCESS) {
        rv = ra_make(ctl, &files, ca, ca_key, key);
    }
    if (rv == APR_SUCCESS) {
        print_file(apr_pstrcat(ctl->p, files.name, " cert:", NULL), files.cert, !has_cert);
        print_file(apr_pstrcat(ctl->p, files.name, " key:", NULL), files.key, created_key);
    }
    return rv;
}

static apr_status_t print_thumbprint(ctl_t *ctl, X509 *cert)
{
    const char *thumbprint = scep_cert_thumbprint(ctl->p, cert);

    if (!thumbprint) {
        return ctl_error(ctl, APR_EGENERAL, "cannot compute the thumbprint");
    }
    printf("CA thumbprint: %s\n", thumbprint);
    return APR_SUCCESS;
}

/* RA key and CSR of one role for an external CA. */
static apr_status_t external_csr(ctl_t *ctl, scep_ra_role_t role, X509_REQ **csr)
{
    ra_files_t files = ra_files(ctl, role);
    scep_key_type_t type = ra_key_type(ctl, role);
    X509_NAME *subject = NULL;
    EVP_PKEY *key = NULL;
    int created = 0;
    apr_status_t rv;

    rv = key_load_or_make(ctl, files.key, type, key_bits_for(ctl, type), &key, &created);
    if (rv == APR_SUCCESS) {
        rv = scep_x509_name_parse(ctl->p, ctl->ra_subject, &subject, &ctl->prob);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_x509_csr_create(ctl->p, key, subject, scep_x509_ra_exts(role), NULL, csr,
                                  &ctl->prob);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_x509_write_csr(ctl->p, files.csr, *csr, &ctl->prob);
    }
    if (rv == APR_SUCCESS) {
        print_file(apr_pstrcat(ctl->p, files.name, " key:", NULL), files.key, created);
        print_file(apr_pstrcat(ctl->p, files.name, " CSR:", NULL), files.csr, 1);
    }
    return rv;
}

/* A returned RA certificate (origin: where it came from, for messages):
 * matches our key, fits its role, chains to the CA (which need not be a
 * root). */
static apr_status_t check_ra_cert(ctl_t *ctl, X509 *ca, const char *origin, const ra_files_t *files,
                                  X509 *cert)
{
    STACK_OF(X509) *anchors = NULL;
    const char *unfit, *reason = NULL;
    EVP_PKEY *key = NULL;
    apr_status_t rv;

    rv = scep_read_private_key(ctl->p, files->key, &key, &ctl->prob);
    if (rv == APR_SUCCESS && !X509_check_private_key(cert, key)) {
        rv =
            ctl_error(ctl, APR_EINVAL,
                      apr_psprintf(ctl->p, "%s does not belong to the key %s", origin, files->key));
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    unfit = scep_x509_ra_unfit(cert, files->role);
    if (unfit) {
        rv = ctl_error(ctl, APR_EINVAL,
                       apr_psprintf(ctl->p, "%s cannot be the %s certificate: %s", origin,
                                    files->name, unfit));
        goto leave;
    }
    anchors = sk_X509_new_null();
    if (!anchors || !sk_X509_push(anchors, ca)) {
        rv = ctl_error(ctl, APR_ENOMEM, "out of memory");
        goto leave;
    }
    if (scep_x509_verify(cert, anchors, NULL, 1, NULL, &reason) != APR_SUCCESS) {
        rv = ctl_error(ctl, APR_EINVAL,
                       apr_psprintf(ctl->p, "%s does not verify against the CA %s: %s", origin,
                                    scep_name_text(ctl->p, X509_get_subject_name(ca)), reason));
    }
leave:
    sk_X509_free(anchors);
    return rv;
}

static apr_status_t check_returned(ctl_t *ctl, X509 *ca, const char *cert_file,
                                   const ra_files_t *files, X509 **cert)
{
    apr_status_t rv = scep_read_cert(ctl->p, cert_file, cert, &ctl->prob);

    return rv == APR_SUCCESS ? check_ra_cert(ctl, ca, cert_file, files, *cert) : rv;
}

static apr_status_t check_is_ca(ctl_t *ctl, X509 *ca, const char *origin)
{
    if (!X509_check_ca(ca)) {
        return ctl_error(ctl, APR_EINVAL,
                         apr_psprintf(ctl->p, "%s is not a CA certificate", origin));
    }
    return APR_SUCCESS;
}

/* With a CA key in DIR, only its own certificate may be installed. */
static apr_status_t check_ca_matches_key(ctl_t *ctl, X509 *ca)
{
    const char *key_file = ctl_path(ctl, "ca.key");
    EVP_PKEY *key = NULL;
    int has_key = 0;
    apr_status_t rv = probe(ctl, key_file, &has_key);

    if (rv == APR_SUCCESS && has_key) {
        rv = scep_read_private_key(ctl->p, key_file, &key, &ctl->prob);
        if (rv == APR_SUCCESS && !X509_check_private_key(ca, key)) {
            rv = ctl_error(ctl, APR_EINVAL,
                           apr_psprintf(ctl->p,
                                        "the CA certificate %s does not belong to the CA "
                                        "key %s already in %s",
                                        scep_name_text(ctl->p, X509_get_subject_name(ca)), key_file,
                                        ctl->dir));
        }
    }
    return rv;
}

/* Writes what was checked: the CA (with chain, the certificates above it,
 * when not NULL) and the two RA certificates (NULL: kept as they are). */
static apr_status_t install_checked(ctl_t *ctl, X509 *ca, STACK_OF(X509) *chain, X509 *sign_cert,
                                    X509 *enc_cert)
{
    ra_files_t sign = ra_files(ctl, SCEP_RA_SIGN);
    ra_files_t enc = ra_files(ctl, SCEP_RA_ENCRYPT);
    const char *chain_file = ctl_path(ctl, "ca-chain.crt");
    apr_status_t rv;

    rv = scep_x509_write_cert(ctl->p, ctl_path(ctl, "ca.crt"), ca, &ctl->prob);
    if (rv == APR_SUCCESS && chain) {
        rv = scep_x509_write_certs(ctl->p, chain_file, chain, &ctl->prob);
    }
    if (rv == APR_SUCCESS && sign_cert) {
        rv = scep_x509_write_cert(ctl->p, sign.cert, sign_cert, &ctl->prob);
    }
    if (rv == APR_SUCCESS && enc_cert) {
        rv = scep_x509_write_cert(ctl->p, enc.cert, enc_cert, &ctl->prob);
    }
    if (rv == APR_SUCCESS) {
        print_file("CA certificate:", ctl_path(ctl, "ca.crt"), 1);
        if (chain) {
            print_file("CA chain:", chain_file, 1);
        }
        if (sign_cert) {
            print_file("RA signing cert:", sign.cert, 1);
        }
        if (enc_cert) {
            print_file("RA encryption cert:", enc.cert, 1);
        }
        rv = print_thumbprint(ctl, ca);
    }
    return rv;
}

static apr_status_t cmd_install_ra(ctl_t *ctl)
{
    ra_files_t sign = ra_files(ctl, SCEP_RA_SIGN);
    ra_files_t enc = ra_files(ctl, SCEP_RA_ENCRYPT);
    X509 *ca = NULL, *sign_cert = NULL, *enc_cert = NULL;
    apr_status_t rv;

    rv = scep_read_cert(ctl->p, ctl->ca_cert, &ca, &ctl->prob);
    if (rv == APR_SUCCESS) {
        rv = check_is_ca(ctl, ca, ctl->ca_cert);
    }
    if (rv == APR_SUCCESS) {
        rv = check_ca_matches_key(ctl, ca);
    }
    if (rv == APR_SUCCESS) {
        rv = check_returned(ctl, ca, ctl->sign_cert, &sign, &sign_cert);
    }
    if (rv == APR_SUCCESS) {
        rv = check_returned(ctl, ca, ctl->enc_cert, &enc, &enc_cert);
    }
    /* All checked before anything is written. */
    return rv == APR_SUCCESS ? install_checked(ctl, ca, NULL, sign_cert, enc_cert) : rv;
}

/* ----------------------------------------------------------------------
 * An external CA behind a certmonger CA helper (setup --ca-helper,
 * check-ca --ca-helper): the helper runs as it will in the server, without
 * a shell, with a clean environment, bounded in time; what it returns is
 * checked as install-ra checks files.
 */

static scep_ca_backend_t *helper_ca(ctl_t *ctl, STACK_OF(X509) *chain)
{
    scep_ca_helper_conf_t conf = { 0 };

    conf.argv = (const char *const *)ctl->helper_argv;
    conf.time_limit = apr_time_from_sec(CA_TIMEOUT);
    conf.ca_chain = chain;
    conf.log = log_to_stderr;
    return scep_ca_helper(ctl->p, &conf);
}

static apr_status_t fetch_roots(ctl_t *ctl, STACK_OF(X509) **roots)
{
    if (scep_ca_helper_fetch_roots(helper_ca(ctl, NULL), ctl->p, roots) != APR_SUCCESS) {
        return ctl_error(
            ctl, APR_EGENERAL,
            apr_psprintf(ctl->p, "%s gave no CA certificate (see above)", ctl->helper_argv[0]));
    }
    return APR_SUCCESS;
}

/* The certificate of certs that issued cert, NULL if none. */
static X509 *issuer_among(STACK_OF(X509) *certs, X509 *cert)
{
    int i;

    for (i = 0; i < sk_X509_num(certs); i++) {
        if (X509_check_issued(sk_X509_value(certs, i), cert) == X509_V_OK) {
            return sk_X509_value(certs, i);
        }
    }
    return NULL;
}

static void stack_free(STACK_OF(X509) *certs)
{
    sk_X509_free(certs);
}

/* The certificates of roots above ca, nearest first, up to a self-issued
 * one; NULL when ca is a root. */
static STACK_OF(X509) *chain_above(ctl_t *ctl, STACK_OF(X509) *roots, X509 *ca)
{
    STACK_OF(X509) *chain = NULL;
    X509 *cert = ca, *up;
    int n;

    /* at most as many steps as certificates: a loop of names ends */
    for (n = 0; n < sk_X509_num(roots) && X509_check_issued(cert, cert) != X509_V_OK; n++) {
        up = issuer_among(roots, cert);
        if (!up || up == ca) {
            break;
        }
        if (!chain && (chain = sk_X509_new_null()) != NULL) {
            SCEP_OWN(ctl->p, chain, stack_free);
        }
        if (!chain || !sk_X509_push(chain, up)) {
            return NULL;
        }
        cert = up;
    }
    return chain;
}

/* An RA certificate kept from an earlier run: it exists, belongs to its
 * key, fits its role and verifies against one of roots. NULL otherwise. */
static X509 *ra_kept(ctl_t *ctl, const ra_files_t *files, STACK_OF(X509) *roots)
{
    X509 *cert = NULL, *ca;
    int exists = 0;

    if (probe(ctl, files->cert, &exists) != APR_SUCCESS || !exists ||
        scep_read_cert(ctl->p, files->cert, &cert, &ctl->prob) != APR_SUCCESS) {
        return NULL;
    }
    ca = issuer_among(roots, cert);
    if (!ca || check_ra_cert(ctl, ca, files->cert, files, cert) != APR_SUCCESS) {
        printf("%s does not fit the CA any more (%s): a new one is requested\n", files->cert,
               ca ? ctl->prob.text : "another issuer");
        return NULL;
    }
    print_file(apr_pstrcat(ctl->p, files->name, " cert:", NULL), files->cert, 0);
    return cert;
}

/* SUBMIT of one RA request; the helper backend checks the answer's key and
 * its chain to roots. */
static apr_status_t ra_submit(ctl_t *ctl, scep_ca_backend_t *ca, const ra_files_t *files,
                              X509_REQ *csr, X509 **cert)
{
    scep_template_t profile = { 0 };
    scep_ca_ticket_t ticket = { NULL, 0 };
    scep_problem_t prob = { SCEP_FAIL_NONE, SCEP_EVENT_NONE, NULL };
    apr_status_t rv;

    profile.name = ctl->ca_profile;
    rv = ca->issue(ca, ctl->p, csr, ctl->ca_profile ? &profile : NULL, cert, &ticket, &prob);
    if (rv == APR_EINCOMPLETE) {
        return ctl_error(
            ctl, rv,
            apr_psprintf(ctl->p,
                         "the CA holds the %s request (its cookie: \"%s\"): once the CA "
                         "has issued it, install its answer with scepctl install-ra (setup "
                         "again would submit new requests)",
                         files->name, scep_escape_text(ctl->p, ticket.text, 0)));
    }
    if (rv != APR_SUCCESS) {
        return ctl_error(ctl, rv,
                         apr_psprintf(ctl->p, "the CA did not issue the %s certificate: %s",
                                      files->name, prob.text ? prob.text : "see above"));
    }
    return APR_SUCCESS;
}

/* The RA certificate of one role: kept, or issued through the helper
 * (*issued: the new one, else NULL). */
static apr_status_t ra_from_helper(ctl_t *ctl, scep_ca_backend_t *ca, STACK_OF(X509) *roots,
                                   scep_ra_role_t role, X509_REQ *csr, X509 **cert, X509 **issued)
{
    ra_files_t files = ra_files(ctl, role);
    apr_status_t rv = APR_SUCCESS;

    *issued = NULL;
    *cert = ra_kept(ctl, &files, roots);
    if (!*cert) {
        rv = ra_submit(ctl, ca, &files, csr, cert);
        *issued = *cert;
    }
    return rv;
}

/* The issuing CA is the one that issued the RA certificates: FETCH-ROOTS
 * names the root first, then other roots and the chain. */
static apr_status_t install_from_helper(ctl_t *ctl, STACK_OF(X509) *roots, X509 *sign_cert,
                                        X509 *enc_cert, X509 *sign_new, X509 *enc_new)
{
    ra_files_t sign = ra_files(ctl, SCEP_RA_SIGN);
    ra_files_t enc = ra_files(ctl, SCEP_RA_ENCRYPT);
    X509 *ca = issuer_among(roots, sign_cert);
    apr_status_t rv;

    if (!ca) {
        return ctl_error(ctl, APR_EINVAL,
                         apr_psprintf(ctl->p,
                                      "the CA helper's certificates do not name the "
                                      "issuer %s of the RA signing certificate",
                                      scep_name_text(ctl->p, X509_get_issuer_name(sign_cert))));
    }
    rv = check_is_ca(ctl, ca, scep_name_text(ctl->p, X509_get_subject_name(ca)));
    if (rv == APR_SUCCESS) {
        rv = check_ca_matches_key(ctl, ca);
    }
    if (rv == APR_SUCCESS) {
        rv = check_ra_cert(ctl, ca, "the CA's RA signing certificate", &sign, sign_cert);
    }
    if (rv == APR_SUCCESS) {
        rv = check_ra_cert(ctl, ca, "the CA's RA encryption certificate", &enc, enc_cert);
    }
    return rv == APR_SUCCESS
               ? install_checked(ctl, ca, chain_above(ctl, roots, ca), sign_new, enc_new)
               : rv;
}

static apr_status_t setup_from_helper(ctl_t *ctl, X509_REQ *sign_csr, X509_REQ *enc_csr)
{
    STACK_OF(X509) *roots = NULL;
    X509 *sign_cert = NULL, *enc_cert = NULL, *sign_new = NULL, *enc_new = NULL;
    scep_ca_backend_t *ca;
    apr_status_t rv = fetch_roots(ctl, &roots);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    ca = helper_ca(ctl, roots);
    rv = ra_from_helper(ctl, ca, roots, SCEP_RA_SIGN, sign_csr, &sign_cert, &sign_new);
    if (rv == APR_SUCCESS) {
        rv = ra_from_helper(ctl, ca, roots, SCEP_RA_ENCRYPT, enc_csr, &enc_cert, &enc_new);
    }
    return rv == APR_SUCCESS
               ? install_from_helper(ctl, roots, sign_cert, enc_cert, sign_new, enc_new)
               : rv;
}

static apr_status_t setup_external(ctl_t *ctl)
{
    X509_REQ *sign_csr = NULL, *enc_csr = NULL;
    apr_status_t rv = external_csr(ctl, SCEP_RA_SIGN, &sign_csr);

    if (rv == APR_SUCCESS) {
        rv = external_csr(ctl, SCEP_RA_ENCRYPT, &enc_csr);
    }
    if (rv == APR_SUCCESS && ctl->helper_argv) {
        return setup_from_helper(ctl, sign_csr, enc_csr);
    }
    if (rv == APR_SUCCESS) {
        printf("Have the CA issue both CSRs with the extensions they request (keyUsage,\n"
               "EKU Certificate Request Agent), then run:\n"
               "  scepctl install-ra -d %s --ca-cert CA.crt --sign-cert SIGN.crt "
               "--enc-cert ENC.crt\n",
               ctl->dir);
    }
    return rv;
}

/* One key of setup in the token: noted when the token holds it, made
 * when it does not and its certificate does not exist either (a
 * certificate without its key is setup_ca()'s and setup_ra()'s refusal,
 * and the CA's key without its certificate too: nothing is made then). */
static apr_status_t prepare_token_key(ctl_t *ctl, const char *uri, const char *cert_file, int bits)
{
    const char *err = NULL;
    int exists = 0, has_cert = 0;
    apr_status_t rv;

    rv = scepctl_pkcs11_has_key(ctl->p, ctl->pkcs11_module, ctl->pin, uri, &exists, &err);
    if (rv == APR_SUCCESS && exists) {
        apr_hash_set(ctl->token_had, uri, APR_HASH_KEY_STRING, "");
    }
    if (rv == APR_SUCCESS) {
        rv = probe(ctl, cert_file, &has_cert);
    }
    if (rv == APR_SUCCESS && !exists && !has_cert) {
        rv = scepctl_pkcs11_make_key(ctl->p, ctl->pkcs11_module, ctl->pin, uri, bits, &err);
    }
    return err && rv != APR_SUCCESS ? ctl_error(ctl, rv, err) : rv;
}

/* The keys of setup that live in the token, all made before OpenSSL's
 * engine opens the module (scepctl_pkcs11.h); then the engine's module
 * and PIN for loading them like files. */
static apr_status_t prepare_token_keys(ctl_t *ctl)
{
    apr_status_t rv;

    if (!ctl->pkcs11_module) {
        return APR_SUCCESS;
    }
    ctl->token_had = apr_hash_make(ctl->p);
    rv = ctl->pin_file ? scep_key_pkcs11_read_pin(ctl->p, ctl->pin_file, &ctl->pin, &ctl->prob)
                       : APR_SUCCESS;
    if (rv == APR_SUCCESS && ctl->ca_key) {
        rv = prepare_token_key(ctl, ctl->ca_key, ctl_path(ctl, "ca.crt"),
                               key_bits_for(ctl, ctl->key_type));
    }
    if (rv == APR_SUCCESS && ctl->ra_key_prefix) {
        ra_files_t sign = ra_files(ctl, SCEP_RA_SIGN), enc = ra_files(ctl, SCEP_RA_ENCRYPT);

        rv = prepare_token_key(ctl, sign.key, sign.cert, key_bits_for(ctl, ctl->key_type));
        if (rv == APR_SUCCESS) {
            rv = prepare_token_key(ctl, enc.key, enc.cert, DEFAULT_RSA_BITS);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = scep_key_pkcs11_configure(ctl->p, ctl->pkcs11_module, ctl->pin, &ctl->prob);
    }
    return rv;
}

static apr_status_t cmd_setup(ctl_t *ctl)
{
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    apr_status_t rv = ensure_dir(ctl);

    if (rv == APR_SUCCESS && ctl->external) {
        return setup_external(ctl);
    }
    if (rv == APR_SUCCESS) {
        rv = prepare_token_keys(ctl);
    }
    if (rv == APR_SUCCESS) {
        rv = setup_ca(ctl, &ca, &ca_key);
    }
    if (rv == APR_SUCCESS) {
        rv = setup_ra(ctl, SCEP_RA_SIGN, ca, ca_key);
    }
    if (rv == APR_SUCCESS) {
        rv = setup_ra(ctl, SCEP_RA_ENCRYPT, ca, ca_key);
    }
    if (rv == APR_SUCCESS) {
        rv = print_thumbprint(ctl, ca);
    }
    return rv;
}

static apr_status_t cmd_thumbprint(ctl_t *ctl)
{
    X509 *cert = NULL;
    const char *thumbprint;
    apr_status_t rv = scep_read_cert(ctl->p, ctl->file, &cert, &ctl->prob);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    thumbprint = scep_cert_thumbprint(ctl->p, cert);
    if (!thumbprint) {
        return ctl_error(ctl, APR_EGENERAL, "cannot compute the thumbprint");
    }
    printf("%s\n", thumbprint);
    return APR_SUCCESS;
}

/* The secret key, made when its file does not exist. */
static apr_status_t secret_key_load_or_make(ctl_t *ctl, unsigned char *key, int *created)
{
    int exists = 0;
    apr_status_t rv = probe(ctl, ctl->key_file, &exists);

    *created = rv == APR_SUCCESS && !exists;
    if (*created) {
        rv = scep_secret_key_create(ctl->p, ctl->key_file, &ctl->prob);
    }
    if (rv == APR_SUCCESS) {
        rv = scep_secret_key_read(ctl->p, ctl->key_file, key, &ctl->prob);
    }
    return rv;
}

/* "--set -": the first line of standard input, without its line end. */
static apr_status_t password_from_stdin(ctl_t *ctl, const char **password)
{
    char line[PASSWORD_LINE_MAX] = "";
    apr_size_t len;
    apr_status_t rv = APR_SUCCESS;

    if (!fgets(line, sizeof(line), stdin)) {
        rv = ctl_error(ctl, APR_EINVAL, "--set -: no password on standard input");
        goto leave;
    }
    len = strcspn(line, "\r\n");
    if (line[len] == '\0' && len == sizeof(line) - 1) {
        rv = ctl_error(ctl, APR_EINVAL, "--set -: the password is too long");
        goto leave;
    }
    line[len] = '\0';
    *password = apr_pstrdup(ctl->p, line);
leave:
    OPENSSL_cleanse(line, sizeof(line));
    return rv;
}

/* The password to write: --set, --generate, or NULL to check the file. */
static apr_status_t new_single_password(ctl_t *ctl, const char **password)
{
    int length = ctl->length ? ctl->length : DEFAULT_PASSWORD_BYTES;

    *password = NULL;
    if (ctl->generate) {
        return scep_password_generate(ctl->p, length, password) == APR_SUCCESS
                   ? APR_SUCCESS
                   : ctl_error(ctl, APR_EGENERAL, "cannot draw random bytes for the password");
    }
    if (ctl->new_password && strcmp(ctl->new_password, "-") == 0) {
        return password_from_stdin(ctl, password);
    }
    *password = ctl->new_password;
    return APR_SUCCESS;
}

static apr_status_t open_records(ctl_t *ctl, scep_store_t **store);

/* The password written to (password set) or read from the file or the
 * records. */
static apr_status_t single_password_at_rest(ctl_t *ctl, const unsigned char *key,
                                            const char **password)
{
    scep_store_t *store = NULL;
    int length = ctl->length ? ctl->length : DEFAULT_PASSWORD_BYTES;
    apr_status_t rv;

    if (!ctl->db_params) {
        return *password ? scep_single_password_write(ctl->p, ctl->password_file, key, *password,
                                                      &ctl->prob)
                         : scep_single_password_read(ctl->p, ctl->password_file, key, password,
                                                     &ctl->prob);
    }
    if ((rv = open_records(ctl, &store)) != APR_SUCCESS) {
        return rv;
    }
    return *password ? scep_single_password_sql_set(ctl->p, store, key, *password, &ctl->prob)
                     : scep_single_password_sql(ctl->p, store, key, length, password, &ctl->prob);
}

static apr_status_t cmd_single_password(ctl_t *ctl)
{
    unsigned char key[SCEP_SECRET_KEY_LEN];
    const char *password = NULL;
    int key_created = 0, written;
    apr_status_t rv;

    rv = secret_key_load_or_make(ctl, key, &key_created);
    if (rv == APR_SUCCESS) {
        rv = new_single_password(ctl, &password);
    }
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    written = password != NULL;
    rv = single_password_at_rest(ctl, key, &password);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    if (ctl->show) {
        printf("%s\n", password);
    }
    else {
        print_file("Secret key:", ctl->key_file, key_created);
        printf("%-22s %s (%s)\n",
               "Single password:", ctl->db_params ? ctl->db_params : ctl->password_file,
               written ? "written" : "decrypts with the key");
    }
leave:
    OPENSSL_cleanse(key, sizeof(key));
    return rv;
}

/* ----------------------------------------------------------------------
 * The records: list, approve, deny, revoke (the CA manager page's work,
 * for scripts), on the database the server uses, through the same store.
 */

#define DEFAULT_LIST_LIMIT 1000

/* Run as root on a SQLite database, act as the file's owner: files SQLite
 * makes beside it (the WAL) must stay writable for Apache's children. */
static apr_status_t become_db_owner(ctl_t *ctl)
{
    struct stat st;

    if (geteuid() != 0 || strcmp(ctl->db_driver, "sqlite3") != 0 ||
        stat(ctl->db_params, &st) != 0 || st.st_uid == 0) {
        return APR_SUCCESS;
    }
    if (setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) {
        return ctl_error(ctl, APR_EGENERAL,
                         apr_psprintf(ctl->p, "cannot act as the owner (uid %ld) of %s",
                                      (long)st.st_uid, ctl->db_params));
    }
    return APR_SUCCESS;
}

/* apr_dbd leaves closing to its caller. Registered before the store prepares
 * its statements, this cleanup runs after theirs. */
static apr_status_t close_records(void *data)
{
    const scep_sql_conn_t *conn = data;

    return apr_dbd_close(conn->driver, conn->handle);
}

static apr_status_t open_records(ctl_t *ctl, scep_store_t **store)
{
    scep_sql_conn_t conn = { NULL, NULL, apr_hash_make(ctl->p) };
    const char *error = NULL;
    apr_status_t rv;

    *store = NULL;
    if ((rv = become_db_owner(ctl)) != APR_SUCCESS) {
        return rv;
    }
    if (apr_dbd_init(ctl->p) != APR_SUCCESS ||
        apr_dbd_get_driver(ctl->p, ctl->db_driver, &conn.driver) != APR_SUCCESS) {
        return ctl_error(ctl, APR_EGENERAL,
                         apr_psprintf(ctl->p,
                                      "no apr_dbd driver \"%s\" (Debian: "
                                      "libaprutil1-dbd-%s)",
                                      ctl->db_driver, ctl->db_driver));
    }
    if (apr_dbd_open_ex(conn.driver, ctl->p, ctl->db_params, &conn.handle, &error) != APR_SUCCESS) {
        return ctl_error(ctl, APR_EGENERAL,
                         apr_psprintf(ctl->p, "cannot open the database %s: %s", ctl->db_params,
                                      error ? error : "unknown error"));
    }
    apr_pool_cleanup_register(ctl->p, apr_pmemdup(ctl->p, &conn, sizeof(conn)), close_records,
                              apr_pool_cleanup_null);
    if (scep_store_sql(ctl->p, &conn, log_to_stderr, NULL, store) != APR_SUCCESS) {
        return ctl_error(ctl, APR_EGENERAL, "the records cannot be used (see above)");
    }
    return APR_SUCCESS;
}

static const char *or_dash(const char *text)
{
    return text && *text ? text : "-";
}

/* As the records keep times. */
static const char *time_text(apr_pool_t *p, apr_time_t when)
{
    apr_time_exp_t tm;

    if (!when) {
        return "-";
    }
    apr_time_exp_gmt(&tm, when);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* A column of a list: the records hold what devices sent (and whatever an
 * older version or another server wrote), so a tab or a newline must not
 * make a row of its own nor a terminal escape reach the terminal; escaped
 * so that a script can restore the text. */
static const char *field(ctl_t *ctl, const char *text)
{
    return scep_escape_text(ctl->p, or_dash(text), SCEP_ESCAPE_BACKSLASH);
}

/* Who a pending request waits for: "CA" when the external CA holds it
 * (a ticket), "manager" otherwise; "-" for a request that is not held. */
static const char *waiting_for(const scep_txn_t *txn)
{
    if (strcmp(txn->status, SCEP_TXN_PENDING) != 0) {
        return "-";
    }
    return txn->ca_ticket ? "CA" : "manager";
}

/* The last column is the newest (waiting-for): scripts reading the
 * earlier ones by position keep working. */
static void print_requests(ctl_t *ctl, const apr_array_header_t *txns)
{
    const scep_txn_t *txn;
    int i;

    puts("# transaction-id\tstatus\tcreated\tsubject\tsubjectAltName\tkey\ttemplate\t"
         "address\tdecided-by\treason\twaiting-for");
    for (i = 0; i < txns->nelts; i++) {
        txn = APR_ARRAY_IDX(txns, i, const scep_txn_t *);
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", field(ctl, txn->transaction_id),
               field(ctl, txn->status), time_text(ctl->p, txn->created), field(ctl, txn->subject),
               field(ctl, txn->san), field(ctl, txn->key_desc), field(ctl, txn->template_name),
               field(ctl, txn->client_addr), field(ctl, txn->decided_by), field(ctl, txn->reason),
               waiting_for(txn));
    }
}

static void print_certs(ctl_t *ctl, const apr_array_header_t *certs)
{
    const scep_cert_record_t *rec;
    const char *reason;
    int i;

    puts("# serial\tsubject\tnot-after\trevoked\treason\ttransaction-id");
    for (i = 0; i < certs->nelts; i++) {
        rec = APR_ARRAY_IDX(certs, i, const scep_cert_record_t *);
        reason = rec->revoked_at ? scep_crl_reason_name(rec->reason) : NULL;
        printf("%s\t%s\t%s\t%s\t%s\t%s\n", field(ctl, rec->serial), field(ctl, rec->subject),
               time_text(ctl->p, rec->not_after), time_text(ctl->p, rec->revoked_at),
               field(ctl, reason), field(ctl, rec->transaction_id));
    }
}

static apr_status_t cmd_list(ctl_t *ctl)
{
    apr_array_header_t *rows;
    scep_store_t *store;
    apr_status_t rv;

    if ((rv = open_records(ctl, &store)) != APR_SUCCESS) {
        return rv;
    }
    if (ctl->certs) {
        rv = store->list_certs(store, ctl->p, ctl->search, ctl->limit, &rows);
    }
    else {
        rv = store->list_requests(store, ctl->p, strcmp(ctl->status, "all") ? ctl->status : NULL,
                                  ctl->limit, &rows);
    }
    if (rv != APR_SUCCESS) {
        return ctl_error(ctl, rv, "cannot read the records (see above)");
    }
    if (ctl->certs) {
        print_certs(ctl, rows);
    }
    else {
        print_requests(ctl, rows);
    }
    return APR_SUCCESS;
}

/* 1 when the transaction is a request the external CA holds. */
static int held_by_ca(ctl_t *ctl, scep_store_t *store, const char *transaction_id)
{
    scep_txn_t *txn;

    return store->find_transaction(store, ctl->p, transaction_id, &txn) == APR_SUCCESS &&
           strcmp(txn->status, SCEP_TXN_PENDING) == 0 && txn->ca_ticket;
}

/* Why a decision on a transaction changed nothing. */
static apr_status_t decision_error(ctl_t *ctl, scep_store_t *store, apr_status_t rv,
                                   const char *what)
{
    if (rv == APR_NOTFOUND) {
        return ctl_error(ctl, rv, apr_psprintf(ctl->p, "no request %s", what));
    }
    if (rv == APR_EEXIST && held_by_ca(ctl, store, what)) {
        return ctl_error(ctl, rv,
                         apr_psprintf(ctl->p,
                                      "request %s waits for the CA, which decides it (deny "
                                      "rejects it here)",
                                      what));
    }
    if (rv == APR_EEXIST) {
        return ctl_error(ctl, rv, apr_psprintf(ctl->p, "request %s is not pending", what));
    }
    return ctl_error(ctl, rv, "cannot change the records (see above)");
}

/* Who decides when --by is not given: the user behind sudo, else the
 * user running scepctl. */
static const char *who_runs(apr_pool_t *p)
{
    char *name = NULL;

    if (apr_env_get(&name, "SUDO_USER", p) == APR_SUCCESS && *name) {
        return name;
    }
    if (apr_env_get(&name, "USER", p) == APR_SUCCESS && *name) {
        return name;
    }
    return "scepctl";
}

/* Who runs scepctl, for the audit log: the user behind sudo, else the
 * name of the real user id (not $USER, which anyone sets), else who_runs(). */
static const char *login_name(apr_pool_t *p)
{
    char *name = NULL;

    if (getuid() == 0 && apr_env_get(&name, "SUDO_USER", p) == APR_SUCCESS && *name) {
        return name;
    }
    if (apr_uid_name_get(&name, getuid(), p) == APR_SUCCESS && name && *name) {
        return name;
    }
    return who_runs(p);
}

/* --audit-log's file, opened (appended to, made 0640) before the records
 * are: opening them may make scepctl the database's owner, who need not
 * write the audit log (and whose name is not the login name). */
static apr_status_t open_audit_log(ctl_t *ctl)
{
    apr_status_t rv;

    if (!ctl->audit_log) {
        return APR_SUCCESS;
    }
    ctl->audit_user = login_name(ctl->p);
    rv = apr_file_open(&ctl->audit_file, ctl->audit_log,
                       APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE | APR_FOPEN_LARGEFILE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD, ctl->p);
    return rv == APR_SUCCESS ? rv : ctl_error(ctl, rv, scep_file_error(ctl->p, ctl->audit_log, rv));
}

/* The decision's line in --audit-log (none without): its time, this host,
 * the login name. An error once the decision is made: the records have it,
 * the audit log does not (the exit status tells the script). */
static apr_status_t audit(ctl_t *ctl, scep_audit_record_t *rec)
{
    char host[APRMAXHOSTLEN + 1];
    const char *line;
    apr_size_t len = 0;
    apr_status_t rv;

    if (!ctl->audit_file) {
        return APR_SUCCESS;
    }
    rec->time = apr_time_now();
    rec->server = apr_gethostname(host, sizeof(host), ctl->p) == APR_SUCCESS
                      ? apr_pstrdup(ctl->p, host)
                      : NULL;
    rec->user = ctl->audit_user;
    if (!(line = scep_audit_line(ctl->p, rec, &len))) {
        return ctl_error(ctl, APR_ENOMEM, "decided, but its audit line cannot be made");
    }
    rv = scep_audit_append(ctl->audit_file, line, len);
    if (rv != APR_SUCCESS) {
        return ctl_error(ctl, rv,
                         apr_psprintf(ctl->p, "decided, but its audit line was not written: %s",
                                      scep_file_error(ctl->p, ctl->audit_log, rv)));
    }
    return APR_SUCCESS;
}

/* The audit line of a decision on a request: its names as found before
 * (a denial wipes the CSR), or after when it was not found. */
static apr_status_t audit_decision(ctl_t *ctl, scep_store_t *store, scep_audit_event_t event,
                                   const scep_txn_t *before, const char *reason)
{
    scep_audit_record_t rec = { 0 };
    scep_txn_t *after = NULL;

    if (!before && store->find_transaction(store, ctl->p, ctl->file, &after) == APR_SUCCESS) {
        before = after;
    }
    if (before) {
        scep_audit_of_txn(ctl->p, before, &rec);
    }
    else {
        rec.fail_info = SCEP_FAIL_NONE;
        rec.transaction_id = ctl->file;
    }
    rec.event = event;
    rec.reason = reason;
    return audit(ctl, &rec);
}

static apr_status_t decide(ctl_t *ctl, const char *to, const char *reason)
{
    const char *who = ctl->by ? ctl->by : who_runs(ctl->p);
    scep_store_t *store;
    scep_txn_t *before = NULL;
    apr_status_t rv;

    if ((rv = open_audit_log(ctl)) != APR_SUCCESS ||
        (rv = open_records(ctl, &store)) != APR_SUCCESS) {
        return rv;
    }
    if (ctl->audit_file &&
        store->find_transaction(store, ctl->p, ctl->file, &before) != APR_SUCCESS) {
        before = NULL;
    }
    rv = store->decide(store, ctl->p, ctl->file, SCEP_TXN_PENDING, to, who, reason);
    if (rv != APR_SUCCESS) {
        return decision_error(ctl, store, rv, ctl->file);
    }
    printf("%s: %s by %s\n", ctl->file, to, who);
    return audit_decision(ctl, store,
                          strcmp(to, SCEP_TXN_APPROVED) ? SCEP_AUDIT_DENIED : SCEP_AUDIT_APPROVED,
                          before, reason);
}

static apr_status_t cmd_approve(ctl_t *ctl)
{
    return decide(ctl, SCEP_TXN_APPROVED, NULL);
}

static apr_status_t cmd_deny(ctl_t *ctl)
{
    return decide(ctl, SCEP_TXN_REJECTED, ctl->reason);
}

/* The audit line of a revocation: the certificate's names as recorded,
 * its request's template. */
static apr_status_t audit_revocation(ctl_t *ctl, scep_store_t *store, const char *reason)
{
    scep_audit_record_t rec = { 0 };
    scep_cert_record_t *cert = NULL;
    scep_txn_t *txn = NULL;

    if (!ctl->audit_file) {
        return APR_SUCCESS;
    }
    rec.fail_info = SCEP_FAIL_NONE;
    rec.serial = ctl->file;
    if (store->find_cert(store, ctl->p, ctl->file, &cert) == APR_SUCCESS) {
        scep_audit_of_cert(ctl->p, cert, &rec);
        if (cert->transaction_id &&
            store->find_transaction(store, ctl->p, cert->transaction_id, &txn) == APR_SUCCESS) {
            rec.template_name = txn->template_name;
        }
    }
    rec.event = SCEP_AUDIT_REVOKED;
    rec.reason = reason;
    return audit(ctl, &rec);
}

static apr_status_t cmd_revoke(ctl_t *ctl)
{
    int reason = ctl->reason ? scep_crl_reason_of(ctl->reason) : 0;
    scep_store_t *store;
    apr_status_t rv;

    if ((rv = open_audit_log(ctl)) != APR_SUCCESS ||
        (rv = open_records(ctl, &store)) != APR_SUCCESS) {
        return rv;
    }
    rv = store->revoke(store, ctl->p, ctl->file, reason);
    if (rv == APR_NOTFOUND) {
        return ctl_error(ctl, rv, apr_psprintf(ctl->p, "no certificate %s", ctl->file));
    }
    if (rv == APR_EEXIST) {
        return ctl_error(ctl, rv,
                         apr_psprintf(ctl->p, "certificate %s was revoked before", ctl->file));
    }
    if (rv != APR_SUCCESS) {
        return ctl_error(ctl, rv, "cannot change the records (see above)");
    }
    printf("%s: revoked (%s)\n", ctl->file, scep_crl_reason_name(reason));
    return audit_revocation(ctl, store, scep_crl_reason_name(reason));
}

/* ----------------------------------------------------------------------
 * service: the CA and RA certificates every server on the database must
 * present (scep_service.c), compared or recorded anew after a rollover.
 */

/* The certificate of an optional file: the CA's when not given. */
static apr_status_t cert_or_ca(ctl_t *ctl, const char *file, X509 *ca, X509 **cert)
{
    *cert = ca;
    return file ? scep_read_cert(ctl->p, file, cert, &ctl->prob) : APR_SUCCESS;
}

static apr_status_t files_service(ctl_t *ctl, scep_service_t **svc)
{
    X509 *ca, *sign, *enc;
    apr_status_t rv;

    if ((rv = scep_read_cert(ctl->p, ctl->ca_cert, &ca, &ctl->prob)) != APR_SUCCESS ||
        (rv = cert_or_ca(ctl, ctl->sign_cert, ca, &sign)) != APR_SUCCESS ||
        (rv = cert_or_ca(ctl, ctl->enc_cert, ca, &enc)) != APR_SUCCESS) {
        return rv;
    }
    if (!(*svc = scep_service_of(ctl->p, ca, sign, enc))) {
        return ctl_error(ctl, APR_EGENERAL, "cannot digest the certificates");
    }
    return APR_SUCCESS;
}

static void print_service(ctl_t *ctl, const char *what, const scep_service_t *svc)
{
    printf("%s: CA %s\n  CA SHA-256 %s\n  RA SHA-256 (signing encryption) %s\n", what,
           field(ctl, svc->issuer), svc->ca_sha256, svc->ra_sha256);
    if (svc->recorded) {
        printf("  recorded %s\n", time_text(ctl->p, svc->recorded));
    }
}

static apr_status_t cmd_service(ctl_t *ctl)
{
    scep_service_t *ours, *theirs = NULL;
    scep_store_t *store;
    apr_status_t rv;

    if ((rv = files_service(ctl, &ours)) != APR_SUCCESS ||
        (rv = open_records(ctl, &store)) != APR_SUCCESS) {
        return rv;
    }
    print_service(ctl, "these files", ours);
    if (ctl->record) {
        if ((rv = store->record_service(store, ctl->p, ours, 1)) != APR_SUCCESS) {
            return ctl_error(ctl, rv, "cannot change the records (see above)");
        }
        puts("recorded: every server on this database must present these certificates");
        return APR_SUCCESS;
    }
    rv = store->find_service(store, ctl->p, ours->issuer, &theirs);
    if (rv == APR_NOTFOUND) {
        return ctl_error(ctl, rv,
                         "no service is recorded for this CA (the first server "
                         "to start records its own)");
    }
    if (rv != APR_SUCCESS) {
        return ctl_error(ctl, rv, "cannot read the records (see above)");
    }
    print_service(ctl, "the records", theirs);
    if (!scep_service_same(ours, theirs)) {
        return ctl_error(ctl, APR_EMISMATCH,
                         apr_pstrcat(ctl->p, "not the service: ",
                                     scep_service_difference(ctl->p, ours, theirs), NULL));
    }
    puts("the same service");
    return APR_SUCCESS;
}

/* ----------------------------------------------------------------------
 * check-ca: does the external CA answer? Through the backend the server
 * would use, with the same checks.
 */

static void print_ca_cert(ctl_t *ctl, X509 *cert)
{
    apr_time_t until = 0;

    if (scep_x509_time_get(X509_get0_notAfter(cert), &until) != APR_SUCCESS) {
        until = 0;
    }
    printf("CA certificate:  %s\n",
           field(ctl, scep_name_text(ctl->p, X509_get_subject_name(cert))));
    printf("  issuer:        %s\n", field(ctl, scep_name_text(ctl->p, X509_get_issuer_name(cert))));
    printf("  not after:     %s\n", time_text(ctl->p, until));
    printf("  thumbprint:    %s\n", or_dash(scep_cert_thumbprint(ctl->p, cert)));
}

/* IDENTIFY when the helper knows it, then FETCH-ROOTS, which decides. */
static apr_status_t check_helper(ctl_t *ctl)
{
    STACK_OF(X509) *roots = NULL;
    const char *text = NULL;
    apr_status_t rv = scep_ca_helper_identify(helper_ca(ctl, NULL), ctl->p, &text);
    int i;

    if (rv == APR_SUCCESS) {
        printf("CA helper:       %s\n", text);
    }
    else if (rv == APR_ENOTIMPL) {
        printf("CA helper:       %s (does not know IDENTIFY)\n", ctl->helper_argv[0]);
    }
    rv = fetch_roots(ctl, &roots);
    for (i = 0; i < sk_X509_num(roots); i++) {
        print_ca_cert(ctl, sk_X509_value(roots, i));
    }
    return rv;
}

/* The CMP secret: the first line of a private file. */
static apr_status_t read_secret(ctl_t *ctl, char **secret)
{
    apr_size_t len = 0;
    const char *why = NULL;
    apr_status_t rv;

    rv = scep_read_private_file(ctl->p, ctl->cmp_secret_file, SECRET_FILE_MAX, secret, &len, &why);
    if (rv != APR_SUCCESS) {
        return ctl_error(ctl, rv, why);
    }
    (*secret)[strcspn(*secret, "\r\n")] = '\0';
    if (!**secret) {
        return ctl_error(ctl, APR_EINVAL,
                         apr_psprintf(ctl->p, "%s has an empty first line", ctl->cmp_secret_file));
    }
    return APR_SUCCESS;
}

/* The protection of the CMP messages: the MAC secret, else the RA signing
 * certificate and key of DIR. */
static apr_status_t cmp_protection(ctl_t *ctl, scep_ca_cmp_conf_t *conf, char **secret)
{
    ra_files_t sign = ra_files(ctl, SCEP_RA_SIGN);
    apr_status_t rv;

    if (ctl->cmp_secret_file) {
        rv = read_secret(ctl, secret);
        conf->mac_secret = *secret;
        conf->mac_ref = ctl->cmp_reference;
        return rv;
    }
    rv = scep_read_private_key(ctl->p, sign.key, &conf->ra_key, &ctl->prob);
    return rv == APR_SUCCESS
               ? cert_load_for_key(ctl, sign.cert, sign.key, conf->ra_key, &conf->ra_cert)
               : rv;
}

/* The CA of DIR (ca.crt, ca-chain.crt when there is one) and the options. */
static apr_status_t cmp_conf(ctl_t *ctl, scep_ca_cmp_conf_t *conf, char **secret)
{
    const char *chain_file = ctl_path(ctl, "ca-chain.crt");
    int has_chain = 0;
    apr_status_t rv;

    conf->server_url = ctl->cmp_server;
    conf->tls_ca_file = ctl->cmp_tls_ca;
    conf->trust_file = ctl->cmp_trust;
    conf->msg_timeout = CA_TIMEOUT;
    conf->log = log_to_stderr;
    rv = scep_read_cert(ctl->p, ctl_path(ctl, "ca.crt"), &conf->ca_cert, &ctl->prob);
    if (rv == APR_SUCCESS) {
        rv = probe(ctl, chain_file, &has_chain);
    }
    if (rv == APR_SUCCESS && has_chain) {
        rv = scep_read_certs(ctl->p, chain_file, &conf->ca_chain, &ctl->prob);
    }
    return rv == APR_SUCCESS ? cmp_protection(ctl, conf, secret) : rv;
}

/* A general message (genm) through the backend the server would build. */
static apr_status_t check_cmp(ctl_t *ctl)
{
    scep_ca_cmp_conf_t conf = { 0 };
    scep_ca_backend_t *ca;
    const char *err = NULL, *text = NULL;
    char *secret = NULL;
    apr_status_t rv = cmp_conf(ctl, &conf, &secret);

    if (rv != APR_SUCCESS) {
        goto leave;
    }
    ca = scep_ca_cmp(ctl->p, &conf, &err);
    if (!ca) {
        rv = ctl_error(ctl, APR_EINVAL,
                       apr_psprintf(ctl->p, "the CMP configuration cannot work: %s", err));
        goto leave;
    }
    rv = scep_ca_cmp_check(ca, ctl->p, &text);
    if (rv != APR_SUCCESS) {
        rv = ctl_error(ctl, rv,
                       apr_psprintf(ctl->p, "the CMP server %s did not answer as it must: %s",
                                    ctl->cmp_server, text ? text : "see above"));
        goto leave;
    }
    printf("CMP server:      %s\n", ctl->cmp_server);
    printf("  answer:        %s\n", field(ctl, text));
    print_ca_cert(ctl, conf.ca_cert);
leave:
    if (secret) {
        OPENSSL_cleanse(secret, strlen(secret));
    }
    return rv;
}

static apr_status_t cmd_check_ca(ctl_t *ctl)
{
    return ctl->helper_argv ? check_helper(ctl) : check_cmp(ctl);
}

/* --ca-helper's words, without a shell: the helper's absolute path first.
 * Says what is wrong, NULL if nothing. */
static const char *helper_words(ctl_t *ctl)
{
    if (apr_tokenize_to_argv(ctl->ca_helper, &ctl->helper_argv, ctl->p) != APR_SUCCESS ||
        !ctl->helper_argv[0] || ctl->helper_argv[0][0] != '/') {
        return "--ca-helper starts with the helper's absolute path";
    }
    return NULL;
}

/* A URI of setup's keys in a token: fit for a key, with token= and
 * object= (the key is made with that label); NULL when it is. */
static const char *check_token_uri(ctl_t *ctl, const char *option, const char *uri)
{
    const char *unfit = scep_key_pkcs11_unfit(ctl->p, uri);
    const char *token = NULL, *object = NULL, *id = NULL;

    if (!unfit &&
        (scep_pkcs11_uri_attr(ctl->p, uri, "token", &token) != APR_SUCCESS ||
         scep_pkcs11_uri_attr(ctl->p, uri, "object", &object) != APR_SUCCESS ||
         scep_pkcs11_uri_attr(ctl->p, uri, "id", &id) != APR_SUCCESS || !token || !object)) {
        unfit = "a key made in a token needs token= and object= in its URI";
    }
    if (!unfit && id) {
        unfit = "the key is found by its object label: leave id= out";
    }
    return unfit ? apr_psprintf(ctl->p, "%s: %s", option, unfit) : NULL;
}

static const char *check_setup_pkcs11(ctl_t *ctl)
{
    int keys = ctl->ca_key || ctl->ra_key_prefix;

    if (!ctl->pkcs11_module != !keys || (ctl->pin_file && !ctl->pkcs11_module)) {
        return "--pkcs11-module and --pin-file go with --ca-key or --ra-key-prefix, and the "
               "reverse";
    }
    if (keys && ctl->external) {
        return "--ca-key and --ra-key-prefix do not go with --external";
    }
    if (keys && ctl->key_type == SCEP_KEY_EC) {
        return "keys made in a token are RSA (libp11 0.4): leave --key-type ec out";
    }
    if (ctl->ca_key) {
        const char *unfit = check_token_uri(ctl, "--ca-key", ctl->ca_key);

        if (unfit) {
            return unfit;
        }
    }
    return ctl->ra_key_prefix ? check_token_uri(ctl, "--ra-key-prefix", ctl->ra_key_prefix) : NULL;
}

static const char *check_setup(ctl_t *ctl)
{
    if (!ctl->dir) {
        return "setup needs -d DIR";
    }
    if (ctl->ca_helper && !ctl->external) {
        return "--ca-helper goes with --external";
    }
    if (ctl->ca_profile && !ctl->ca_helper) {
        return "--ca-profile goes with --ca-helper";
    }
    if (ctl->key_type == SCEP_KEY_EC && ctl->key_bits && ctl->key_bits != 256 &&
        ctl->key_bits != 384) {
        return "--key-type ec takes --key-bits 256 or 384";
    }
    if (ctl->key_type == SCEP_KEY_RSA && ctl->key_bits &&
        (ctl->key_bits < DEFAULT_RSA_BITS || ctl->key_bits > MAX_RSA_BITS)) {
        return "--key-type rsa takes --key-bits from 2048 to 16384";
    }
    if (check_setup_pkcs11(ctl)) {
        return check_setup_pkcs11(ctl);
    }
    return ctl->ca_helper ? helper_words(ctl) : NULL;
}

static const char *check_check_ca(ctl_t *ctl)
{
    int cmp_options =
        ctl->cmp_trust || ctl->cmp_secret_file || ctl->cmp_reference || ctl->cmp_tls_ca;

    if (!ctl->ca_helper == !ctl->cmp_server) {
        return "check-ca needs either --ca-helper or --cmp-server";
    }
    if (ctl->ca_helper) {
        return cmp_options || ctl->dir ? "--ca-helper takes neither -d nor --cmp-* options"
                                       : helper_words(ctl);
    }
    if (!ctl->dir) {
        return "--cmp-server needs -d DIR (its ca.crt, and ra-sign.crt without a secret)";
    }
    if (!ctl->cmp_secret_file != !ctl->cmp_reference) {
        return "--cmp-secret-file and --cmp-reference go together";
    }
    return NULL;
}

static const char *check_install(ctl_t *ctl)
{
    if (!ctl->dir || !ctl->ca_cert || !ctl->sign_cert || !ctl->enc_cert) {
        return "install-ra needs -d DIR, --ca-cert, --sign-cert and --enc-cert";
    }
    return NULL;
}

static const char *check_secret_key(ctl_t *ctl)
{
    return ctl->key_file ? NULL : "secret-key needs --key KEYFILE";
}

static apr_status_t cmd_secret_key(ctl_t *ctl)
{
    apr_status_t rv = scep_secret_key_create(ctl->p, ctl->key_file, &ctl->prob);

    if (rv == APR_SUCCESS) {
        print_file("Secret key:", ctl->key_file, 1);
    }
    return rv;
}

static const char *check_single_password(ctl_t *ctl)
{
    if (!ctl->key_file || !ctl->password_file == !ctl->db_params) {
        return "single-password needs --key KEYFILE and either --file FILE or --db PARAMS";
    }
    if (ctl->generate && ctl->new_password) {
        return "--set and --generate exclude each other";
    }
    if (ctl->length && !ctl->generate) {
        return "--length goes with --generate";
    }
    return NULL;
}

static const char *check_thumbprint(ctl_t *ctl)
{
    (void)ctl;
    return NULL;
}

static const char *check_db(ctl_t *ctl)
{
    return ctl->db_params ? NULL : "the records need --db PARAMS (the server's DBDParams)";
}

static int is_state(const char *text)
{
    static const char *const states[] = { SCEP_TXN_PENDING,  SCEP_TXN_APPROVED, SCEP_TXN_ISSUED,
                                          SCEP_TXN_REJECTED, SCEP_TXN_EXPIRED,  "all" };
    apr_size_t i;

    for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        if (strcmp(states[i], text) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *check_list(ctl_t *ctl)
{
    if (!is_state(ctl->status)) {
        return "--status is pending, approved, issued, rejected, expired or all";
    }
    if (ctl->search && !ctl->certs) {
        return "--search goes with --certs";
    }
    return check_db(ctl);
}

/* A reason or a name goes into the log and the device's failInfoText: one
 * line of printable text, as the manager page takes it. */
static int is_one_line(const char *text)
{
    for (; *text; text++) {
        if (apr_iscntrl(*text)) {
            return 0;
        }
    }
    return 1;
}

static const char *check_by(ctl_t *ctl)
{
    return ctl->by && !is_one_line(ctl->by) ? "--by is one line of text" : check_db(ctl);
}

static const char *check_approve(ctl_t *ctl)
{
    return ctl->reason ? "approve takes no --reason" : check_by(ctl);
}

static const char *check_deny(ctl_t *ctl)
{
    if (!ctl->reason || !*ctl->reason) {
        return "deny needs --reason TEXT";
    }
    return is_one_line(ctl->reason) ? check_by(ctl) : "--reason is one line of text";
}

static const char *check_revoke(ctl_t *ctl)
{
    if (ctl->reason && !scep_crl_reason_final(scep_crl_reason_of(ctl->reason))) {
        return "--reason is a CRLReason code or name: unspecified, keyCompromise, "
               "cACompromise, affiliationChanged, superseded, cessationOfOperation, "
               "privilegeWithdrawn";
    }
    return ctl->by ? "revoke takes no --by" : check_db(ctl);
}

static const char *check_service(ctl_t *ctl)
{
    if (!ctl->ca_cert) {
        return "service needs --ca-cert FILE";
    }
    if (!ctl->sign_cert != !ctl->enc_cert) {
        return "--sign-cert and --enc-cert go together (neither: the CA acts as RA)";
    }
    return check_db(ctl);
}

static const command_t commands[] = {
    { "setup", setup_options, 0, check_setup, cmd_setup },
    { "install-ra", install_options, 0, check_install, cmd_install_ra },
    { "check-ca", check_ca_options, 0, check_check_ca, cmd_check_ca },
    { "thumbprint", thumbprint_options, 1, check_thumbprint, cmd_thumbprint },
    { "single-password", single_password_options, 0, check_single_password, cmd_single_password },
    { "secret-key", secret_key_options, 0, check_secret_key, cmd_secret_key },
    { "list", list_options, 0, check_list, cmd_list },
    { "approve", decide_options, 1, check_approve, cmd_approve },
    { "deny", decide_options, 1, check_deny, cmd_deny },
    { "revoke", decide_options, 1, check_revoke, cmd_revoke },
    { "service", service_options, 0, check_service, cmd_service },
};

static const command_t *find_command(const char *name)
{
    apr_size_t i;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

/* A whole number in [min, max], or -1. */
static int parse_number(const char *text, int min, int max)
{
    int n;

    return scep_parse_int(text, min, max, &n) ? n : -1;
}

/* The options of single-password; says what is wrong, NULL if nothing. */
static const char *apply_password_option(ctl_t *ctl, int optch, const char *arg)
{
    switch (optch) {
    case OPT_KEY:
        ctl->key_file = arg;
        return NULL;
    case OPT_FILE:
        ctl->password_file = arg;
        return NULL;
    case OPT_SET:
        ctl->new_password = arg;
        return NULL;
    case OPT_GENERATE:
        ctl->generate = 1;
        return NULL;
    case OPT_LENGTH:
        ctl->length = parse_number(arg, SCEP_PASSWORD_BYTES_MIN, SCEP_PASSWORD_BYTES_MAX);
        return ctl->length < 0 ? "--length takes a number from 4 to 64" : NULL;
    default: /* OPT_SHOW */
        ctl->show = 1;
        return NULL;
    }
}

/* The options of the records' commands; says what is wrong, NULL if nothing. */
static const char *apply_records_option(ctl_t *ctl, int optch, const char *arg)
{
    switch (optch) {
    case OPT_DB:
        ctl->db_params = arg;
        return NULL;
    case OPT_DB_DRIVER:
        ctl->db_driver = arg;
        return NULL;
    case OPT_STATUS:
        ctl->status = arg;
        return NULL;
    case OPT_CERTS:
        ctl->certs = 1;
        return NULL;
    case OPT_SEARCH:
        ctl->search = arg;
        return NULL;
    case OPT_LIMIT:
        ctl->limit = parse_number(arg, 1, 1000000);
        return ctl->limit < 0 ? "--limit takes a number from 1 to 1000000" : NULL;
    case OPT_BY:
        ctl->by = arg;
        return NULL;
    case OPT_RECORD:
        ctl->record = 1;
        return NULL;
    case OPT_AUDIT_LOG:
        ctl->audit_log = arg;
        return NULL;
    default: /* OPT_REASON */
        ctl->reason = arg;
        return NULL;
    }
}

/* The options naming an external CA; says what is wrong, NULL if nothing. */
static const char *apply_ca_option(ctl_t *ctl, int optch, const char *arg)
{
    switch (optch) {
    case OPT_CA_HELPER:
        ctl->ca_helper = arg;
        return NULL;
    case OPT_CA_PROFILE:
        ctl->ca_profile = arg;
        return NULL;
    case OPT_CMP_SERVER:
        ctl->cmp_server = arg;
        return NULL;
    case OPT_CMP_TRUST:
        ctl->cmp_trust = arg;
        return NULL;
    case OPT_CMP_SECRET_FILE:
        ctl->cmp_secret_file = arg;
        return NULL;
    case OPT_CMP_REFERENCE:
        ctl->cmp_reference = arg;
        return NULL;
    default: /* OPT_CMP_TLS_CA */
        ctl->cmp_tls_ca = arg;
        return NULL;
    }
}

/* The options of setup's keys in a token. */
static const char *apply_pkcs11_option(ctl_t *ctl, int optch, const char *arg)
{
    switch (optch) {
    case OPT_PKCS11_MODULE:
        ctl->pkcs11_module = arg;
        return NULL;
    case OPT_PIN_FILE:
        ctl->pin_file = arg;
        return NULL;
    case OPT_CA_KEY:
        ctl->ca_key = arg;
        return NULL;
    default: /* OPT_RA_KEY_PREFIX */
        ctl->ra_key_prefix = arg;
        return NULL;
    }
}

/* Stores one option; says what is wrong with its value, NULL if nothing. */
static const char *apply_option(ctl_t *ctl, int optch, const char *arg)
{
    switch (optch) {
    case OPT_DIR:
        ctl->dir = arg;
        return NULL;
    case OPT_CA_SUBJECT:
        ctl->ca_subject = arg;
        return NULL;
    case OPT_RA_SUBJECT:
        ctl->ra_subject = arg;
        return NULL;
    case OPT_KEY_TYPE:
        if (strcmp(arg, "rsa") != 0 && strcmp(arg, "ec") != 0) {
            return "--key-type is rsa or ec";
        }
        ctl->key_type = strcmp(arg, "ec") == 0 ? SCEP_KEY_EC : SCEP_KEY_RSA;
        return NULL;
    case OPT_KEY_BITS:
        ctl->key_bits = parse_number(arg, 1, MAX_RSA_BITS);
        return ctl->key_bits < 0 ? "--key-bits takes a number" : NULL;
    case OPT_CA_DAYS:
        ctl->ca_days = parse_number(arg, 1, MAX_DAYS);
        return ctl->ca_days < 0 ? "--ca-days takes a number from 1 to 36500" : NULL;
    case OPT_RA_DAYS:
        ctl->ra_days = parse_number(arg, 1, MAX_DAYS);
        return ctl->ra_days < 0 ? "--ra-days takes a number from 1 to 36500" : NULL;
    case OPT_EXTERNAL:
        ctl->external = 1;
        return NULL;
    case OPT_CA_CERT:
        ctl->ca_cert = arg;
        return NULL;
    case OPT_SIGN_CERT:
        ctl->sign_cert = arg;
        return NULL;
    case OPT_ENC_CERT:
        ctl->enc_cert = arg;
        return NULL;
    case OPT_KEY:
    case OPT_FILE:
    case OPT_SET:
    case OPT_GENERATE:
    case OPT_LENGTH:
    case OPT_SHOW:
        return apply_password_option(ctl, optch, arg);
    case OPT_CA_HELPER:
    case OPT_CA_PROFILE:
    case OPT_CMP_SERVER:
    case OPT_CMP_TRUST:
    case OPT_CMP_SECRET_FILE:
    case OPT_CMP_REFERENCE:
    case OPT_CMP_TLS_CA:
        return apply_ca_option(ctl, optch, arg);
    case OPT_PKCS11_MODULE:
    case OPT_PIN_FILE:
    case OPT_CA_KEY:
    case OPT_RA_KEY_PREFIX:
        return apply_pkcs11_option(ctl, optch, arg);
    default:
        return apply_records_option(ctl, optch, arg);
    }
}

static void option_error(void *arg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* APR's option errors, with our name in front. */
static void option_error(void *arg, const char *fmt, ...)
{
    va_list ap;

    (void)arg;
    fputs("scepctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static int usage_error(const char *text)
{
    if (text) {
        fprintf(stderr, "scepctl: %s\n", text);
    }
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* Parses the options of cmd (argv[0] is the command name); returns -1 when
 * they are fine, else the exit code. */
static int parse_options(ctl_t *ctl, const command_t *cmd, int argc, const char *const *argv)
{
    apr_getopt_t *opt;
    const char *arg, *wrong;
    int optch;
    apr_status_t rv;

    if (apr_getopt_init(&opt, ctl->p, argc, argv) != APR_SUCCESS) {
        return usage_error("cannot read the options");
    }
    opt->errfn = option_error;
    while ((rv = apr_getopt_long(opt, cmd->options, &optch, &arg)) == APR_SUCCESS) {
        if (optch == OPT_HELP) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        }
        wrong = apply_option(ctl, optch, arg);
        if (wrong) {
            return usage_error(wrong);
        }
    }
    if (rv != APR_EOF) {
        return usage_error(NULL);
    }
    if (argc - opt->ind != cmd->nargs) {
        return usage_error(apr_psprintf(ctl->p, "%s takes %d argument(s) after the options",
                                        cmd->name, cmd->nargs));
    }
    ctl->file = cmd->nargs ? argv[opt->ind] : NULL;
    wrong = cmd->check(ctl);
    return wrong ? usage_error(wrong) : -1;
}

static int run(apr_pool_t *p, int argc, const char *const *argv)
{
    const command_t *cmd = argc > 1 ? find_command(argv[1]) : NULL;
    ctl_t ctl = { 0 };
    int code;

    if (argc == 2 && !strcmp(argv[1], "--version")) {
        puts("scepctl (mod_scep) " MOD_SCEP_VERSION);
        return EXIT_OK;
    }
    if (!cmd) {
        return usage_error(argc > 1 ? apr_psprintf(p, "unknown command \"%s\"", argv[1]) : NULL);
    }
    ctl.p = p;
    ctl.ca_subject = DEFAULT_CA_SUBJECT;
    ctl.ra_subject = DEFAULT_RA_SUBJECT;
    ctl.key_type = SCEP_KEY_RSA;
    ctl.ca_days = DEFAULT_CA_DAYS;
    ctl.ra_days = DEFAULT_RA_DAYS;
    ctl.db_driver = "sqlite3";
    ctl.status = SCEP_TXN_PENDING;
    ctl.limit = DEFAULT_LIST_LIMIT;
    code = parse_options(&ctl, cmd, argc - 1, argv + 1);
    if (code >= 0) {
        return code;
    }
    if (cmd->run(&ctl) != APR_SUCCESS) {
        fprintf(stderr, "scepctl: %s\n", ctl.prob.text ? ctl.prob.text : "failed");
        return EXIT_ERROR;
    }
    return EXIT_OK;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p = NULL;
    int code;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fputs("scepctl: cannot initialize APR\n", stderr);
        return EXIT_ERROR;
    }
    atexit(apr_terminate);
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        fputs("scepctl: out of memory\n", stderr);
        return EXIT_ERROR;
    }
    code = run(p, argc, argv);
    apr_pool_destroy(p);
    return code;
}
