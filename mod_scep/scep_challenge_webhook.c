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
 * The "webhook" challenge method (scep_challenge_webhook.h): the request's
 * JSON in step-ca's shape (jansson), posted through scep_webhook.c, the
 * answer read strictly: a validator that answers something else has not
 * decided, and nothing is issued on a guess.
 */

#include <arpa/inet.h>
#include <string.h>

#include <apr_strings.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "scep_challenge_webhook.h"
#include "scep_names.h"

typedef struct challenge_webhook_t {
    scep_webhook_t *wh;
    const char *provisioner_name;
    scep_log_fn *log;
    void *log_baton;
} challenge_webhook_t;

/* A device's or the configuration's text as a JSON string (jansson refuses
 * what is not UTF-8); null when there is none. */
static json_t *json_text(apr_pool_t *p, const char *text)
{
    return text ? json_string(scep_utf8_text(p, text)) : json_null();
}

static json_t *json_base64(apr_pool_t *p, const unsigned char *der, int len)
{
    char *b64;

    if (len <= 0) {
        return NULL;
    }
    b64 = apr_palloc(p, (apr_size_t)(len + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)b64, der, len);
    return json_string(b64);
}

static json_t *csr_raw(apr_pool_t *p, X509_REQ *csr)
{
    unsigned char *der = NULL;
    int len = i2d_X509_REQ(csr, &der);
    json_t *raw = json_base64(p, der, len);

    OPENSSL_free(der);
    return raw;
}

static json_t *csr_public_key(apr_pool_t *p, X509_REQ *csr)
{
    unsigned char *der = NULL;
    int len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(csr), &der);
    json_t *key = json_base64(p, der, len);

    OPENSSL_free(der);
    return key;
}

/* Go's x509.PublicKeyAlgorithm names, as step-ca sends them; OpenSSL's
 * short name for the others. */
static const char *key_algorithm(X509_REQ *csr)
{
    EVP_PKEY *key = X509_REQ_get0_pubkey(csr);
    int id = key ? EVP_PKEY_get_base_id(key) : NID_undef;

    switch (id) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        return "RSA";
    case EVP_PKEY_EC:
        return "ECDSA";
    case EVP_PKEY_ED25519:
        return "Ed25519";
    case EVP_PKEY_DSA:
        return "DSA";
    default:
        return id == NID_undef ? "unknown" : OBJ_nid2sn(id);
    }
}

/* Go's x509.SignatureAlgorithm names; OpenSSL's long name for others. */
static const char *signature_algorithm(X509_REQ *csr)
{
    static const struct {
        int nid;
        const char *name;
    } names[] = {
        { NID_md5WithRSAEncryption, "MD5-RSA" },
        { NID_sha1WithRSAEncryption, "SHA1-RSA" },
        { NID_sha256WithRSAEncryption, "SHA256-RSA" },
        { NID_sha384WithRSAEncryption, "SHA384-RSA" },
        { NID_sha512WithRSAEncryption, "SHA512-RSA" },
        { NID_ecdsa_with_SHA1, "ECDSA-SHA1" },
        { NID_ecdsa_with_SHA256, "ECDSA-SHA256" },
        { NID_ecdsa_with_SHA384, "ECDSA-SHA384" },
        { NID_ecdsa_with_SHA512, "ECDSA-SHA512" },
        { NID_ED25519, "Ed25519" },
    };
    int nid = X509_REQ_get_signature_nid(csr);
    apr_size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].nid == nid) {
            return names[i].name;
        }
    }
    return nid == NID_undef ? "unknown" : OBJ_nid2ln(nid);
}

/* The key of a subject attribute in step-ca's x509util.Subject, and
 * whether it holds a list; NULL for the attributes it has no key for. */
static const char *subject_key(int nid, int *list)
{
    *list = 1;
    switch (nid) {
    case NID_commonName:
        *list = 0;
        return "commonName";
    case NID_serialNumber:
        *list = 0;
        return "serialNumber";
    case NID_countryName:
        return "country";
    case NID_organizationName:
        return "organization";
    case NID_organizationalUnitName:
        return "organizationalUnit";
    case NID_localityName:
        return "locality";
    case NID_stateOrProvinceName:
        return "province";
    case NID_streetAddress:
        return "streetAddress";
    case NID_postalCode:
        return "postalCode";
    default:
        return NULL;
    }
}

static void subject_add(apr_pool_t *p, json_t *subject, const X509_NAME_ENTRY *entry)
{
    unsigned char *utf8 = NULL;
    const char *key;
    json_t *list;
    int is_list;

    key = subject_key(OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry)), &is_list);
    if (!key || ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry)) < 0) {
        return;
    }
    if (!is_list) {
        json_object_set_new(subject, key, json_text(p, (const char *)utf8));
    }
    else {
        list = json_object_get(subject, key);
        if (!list) {
            list = json_array();
            json_object_set_new(subject, key, list);
        }
        json_array_append_new(list, json_text(p, (const char *)utf8));
    }
    OPENSSL_free(utf8);
}

static json_t *csr_subject(apr_pool_t *p, X509_REQ *csr)
{
    const X509_NAME *name = X509_REQ_get_subject_name(csr);
    json_t *subject = json_object();
    int i;

    for (i = 0; i < X509_NAME_entry_count(name); i++) {
        subject_add(p, subject, X509_NAME_get_entry(name, i));
    }
    return subject;
}

static json_t *ip_text(apr_pool_t *p, const ASN1_OCTET_STRING *ip)
{
    char text[INET6_ADDRSTRLEN];
    int len = ASN1_STRING_length(ip);
    int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;

    if (!family || !inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof(text))) {
        return json_null();
    }
    return json_string(text);
}

static json_t *ia5_text(apr_pool_t *p, const ASN1_IA5STRING *s)
{
    return json_text(p, apr_pstrmemdup(p, (const char *)ASN1_STRING_get0_data(s),
                                       (apr_size_t)ASN1_STRING_length(s)));
}

/* dnsNames, emailAddresses, ipAddresses, uris of the CSR's subjectAltName,
 * added to request (empty lists when it has none or cannot be read: the
 * raw CSR says the rest). */
static void csr_san(apr_pool_t *p, X509_REQ *csr, json_t *request)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    GENERAL_NAMES *san = NULL;
    json_t *dns = json_array(), *email = json_array(), *ip = json_array(), *uri = json_array();
    int i;

    if (exts && scep_names_requested_san(p, exts, &san, NULL) == APR_SUCCESS && san) {
        for (i = 0; i < sk_GENERAL_NAME_num(san); i++) {
            const GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, i);

            switch (gn->type) {
            case GEN_DNS:
                json_array_append_new(dns, ia5_text(p, gn->d.dNSName));
                break;
            case GEN_EMAIL:
                json_array_append_new(email, ia5_text(p, gn->d.rfc822Name));
                break;
            case GEN_IPADD:
                json_array_append_new(ip, ip_text(p, gn->d.iPAddress));
                break;
            case GEN_URI:
                json_array_append_new(uri, ia5_text(p, gn->d.uniformResourceIdentifier));
                break;
            default:
                break;
            }
        }
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    json_object_set_new(request, "dnsNames", dns);
    json_object_set_new(request, "emailAddresses", email);
    json_object_set_new(request, "ipAddresses", ip);
    json_object_set_new(request, "uris", uri);
}

static json_t *certificate_request(apr_pool_t *p, X509_REQ *csr)
{
    json_t *raw = csr_raw(p, csr), *request;

    if (!raw) {
        return NULL;
    }
    request = json_object();
    json_object_set_new(request, "raw", raw);
    json_object_set_new(request, "publicKey", csr_public_key(p, csr));
    json_object_set_new(request, "publicKeyAlgorithm", json_string(key_algorithm(csr)));
    json_object_set_new(request, "signatureAlgorithm", json_string(signature_algorithm(csr)));
    json_object_set_new(request, "subject", csr_subject(p, csr));
    csr_san(p, csr, request);
    return request;
}

static json_t *timestamp(apr_pool_t *p)
{
    apr_time_exp_t t;
    char text[32];
    apr_size_t len = 0;

    apr_time_exp_gmt(&t, apr_time_now());
    apr_strftime(text, &len, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &t);
    return json_string(text);
}

char *scep_challenge_webhook_body(apr_pool_t *p, const char *provisioner_name,
                                  const scep_challenge_facts_t *facts)
{
    json_t *doc, *request = certificate_request(p, facts->csr);
    char *dumped, *body = NULL;

    if (!request) {
        return NULL;
    }
    doc = json_object();
    json_object_set_new(doc, "timestamp", timestamp(p));
    json_object_set_new(doc, "provisionerName", json_text(p, provisioner_name));
    json_object_set_new(doc, "x509CertificateRequest", request);
    /* step-ca sends "" for a CSR without a challenge. */
    json_object_set_new(doc, "scepChallenge",
                        json_text(p, facts->challenge ? facts->challenge : ""));
    json_object_set_new(doc, "scepTransactionID", json_text(p, facts->transaction_id));
    json_object_set_new(doc, "scepMessageType", json_text(p, facts->message_type));
    json_object_set_new(doc, "template", json_text(p, facts->template_name));
    json_object_set_new(doc, "clientAddress", json_text(p, facts->client_addr));
    dumped = json_dumps(doc, JSON_COMPACT);
    if (dumped) {
        body = apr_pstrdup(p, dumped);
        /* It holds the challenge. */
        OPENSSL_cleanse(dumped, strlen(dumped));
        free(dumped);
    }
    json_decref(doc);
    return body;
}

int scep_challenge_webhook_verdict(apr_pool_t *p, const scep_webhook_answer_t *answer,
                                   const char **why)
{
    json_error_t error;
    json_t *doc, *allow;
    int verdict = -1;

    if (answer->status < 200 || answer->status > 299) {
        *why = apr_psprintf(p, "answered HTTP %d", answer->status);
        return -1;
    }
    doc = json_loadb(answer->body, answer->len, 0, &error);
    allow = json_is_object(doc) ? json_object_get(doc, "allow") : NULL;
    if (!doc) {
        *why = apr_psprintf(p, "its answer is not JSON (%s, at byte %d)",
                            scep_escape_text(p, error.text, 0), error.position);
    }
    else if (!json_is_boolean(allow)) {
        *why = "its answer is not a JSON object with a boolean \"allow\"";
    }
    else {
        verdict = json_is_true(allow);
    }
    json_decref(doc);
    return verdict;
}

static void check_log(const challenge_webhook_t *cw, const char *file, int line, const char *msg)
{
    if (cw->log) {
        cw->log(cw->log_baton, file, line, SCEP_LOG_ERR, msg);
    }
}

/* A fault: no verdict, nothing issued (the engine fails closed). */
static apr_status_t no_verdict(scep_problem_t *prob)
{
    return scep_problem(prob, APR_EGENERAL, SCEP_FAIL_NONE, SCEP_EVENT_NONE,
                        "the challenge could not be checked (webhook)");
}

static apr_status_t webhook_check(scep_challenge_check_t *cc, apr_pool_t *p,
                                  const scep_challenge_facts_t *facts, scep_problem_t *prob)
{
    challenge_webhook_t *cw = cc->baton;
    const char *txn = scep_escape_text(p, facts->transaction_id ? facts->transaction_id : "-", 0);
    scep_webhook_answer_t answer;
    const char *why = NULL;
    char *body = scep_challenge_webhook_body(p, cw->provisioner_name, facts);
    int verdict;

    if (!body) {
        check_log(cw, SCEP_LOG_MARK,
                  apr_psprintf(p,
                               SCEPLOGNO(030) "challenge webhook %s: the request of transaction "
                                              "%s cannot be encoded: nothing is issued",
                               scep_webhook_url(cw->wh), txn));
        return no_verdict(prob);
    }
    /* The post logs its own faults (SCEP650-659). */
    if (scep_webhook_post(cw->wh, p, body, strlen(body), &answer) != APR_SUCCESS) {
        OPENSSL_cleanse(body, strlen(body));
        return no_verdict(prob);
    }
    OPENSSL_cleanse(body, strlen(body));
    verdict = scep_challenge_webhook_verdict(p, &answer, &why);
    if (verdict < 0) {
        check_log(cw, SCEP_LOG_MARK,
                  apr_psprintf(p,
                               SCEPLOGNO(031) "challenge webhook %s, transaction %s: %s: no "
                                              "verdict, nothing is issued",
                               scep_webhook_url(cw->wh), txn, why));
        return no_verdict(prob);
    }
    if (!verdict) {
        return scep_problem(prob, APR_EACCES, SCEP_FAIL_BAD_REQUEST, SCEP_EVENT_INVALID_PASSWORD,
                            "the challenge webhook refused the challenge");
    }
    return APR_SUCCESS;
}

scep_challenge_check_t *scep_challenge_webhook(apr_pool_t *p, scep_webhook_t *wh,
                                               const char *provisioner_name, scep_log_fn *log,
                                               void *log_baton)
{
    scep_challenge_check_t *cc = apr_pcalloc(p, sizeof(*cc));
    challenge_webhook_t *cw = apr_pcalloc(p, sizeof(*cw));

    cw->wh = wh;
    cw->provisioner_name = apr_pstrdup(p, provisioner_name);
    cw->log = log;
    cw->log_baton = log_baton;
    cc->name = "webhook";
    cc->baton = cw;
    cc->check = webhook_check;
    return cc;
}
