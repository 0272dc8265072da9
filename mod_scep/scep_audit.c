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

/* The audit log's lines (scep_audit.h). */

#include <apr_strings.h>
#include <apr_time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "scep_audit.h"
#include "scep_json.h"

const char *scep_audit_event_name(scep_audit_event_t event)
{
    switch (event) {
    case SCEP_AUDIT_ISSUED:
        return "issued";
    case SCEP_AUDIT_REFUSED:
        return "refused";
    case SCEP_AUDIT_HELD:
        return "held";
    case SCEP_AUDIT_APPROVED:
        return "approved";
    case SCEP_AUDIT_DENIED:
        return "denied";
    case SCEP_AUDIT_REVOKED:
        return "revoked";
    default:
        return "password_issued";
    }
}

/* RFC 8894's names of the message types; others by their number. */
static const char *message_type_name(apr_pool_t *p, int type)
{
    const char *name = scep_message_type_name(type);

    return name ? name : apr_itoa(p, type);
}

/* One name as GENERAL_NAME_print() writes it, on p; NULL on failure. */
static const char *general_name_text(apr_pool_t *p, GENERAL_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    const char *text = NULL;

    if (bio && GENERAL_NAME_print(bio, name) == 1 && (len = BIO_get_mem_data(bio, &data)) >= 0) {
        text = apr_pstrmemdup(p, data ? data : "", (apr_size_t)len);
    }
    BIO_free(bio);
    return text;
}

apr_array_header_t *scep_audit_san_of_exts(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts)
{
    int pos = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
    GENERAL_NAMES *names = NULL;
    apr_array_header_t *list = apr_array_make(p, 2, sizeof(const char *));
    const char *text;
    int i;

    if (pos < 0) {
        return list;
    }
    names = X509V3_EXT_d2i(X509v3_get_ext(exts, pos));
    for (i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        if (!(text = general_name_text(p, sk_GENERAL_NAME_value(names, i)))) {
            break;
        }
        APR_ARRAY_PUSH(list, const char *) = scep_utf8_text(p, text);
    }
    if (!names || i < sk_GENERAL_NAME_num(names)) {
        list = NULL;
    }
    GENERAL_NAMES_free(names);
    return list;
}

/* The names of what was decided on: the issued certificate's, else the
 * CSR's, else (CertPoll) the subject the device polls for. */
static void names_of(apr_pool_t *p, const scep_request_t *req, const scep_outcome_t *outcome,
                     scep_audit_record_t *rec)
{
    STACK_OF(X509_EXTENSION) *exts;

    if (outcome->kind == SCEP_OUTCOME_ISSUED && outcome->cert) {
        rec->subject = scep_name_text(p, X509_get_subject_name(outcome->cert));
        rec->san = scep_audit_san_of_exts(p, X509_get0_extensions(outcome->cert));
        rec->serial = scep_serial_hex(p, X509_get0_serialNumber(outcome->cert));
    }
    else if (req->csr) {
        rec->subject = scep_name_text(p, X509_REQ_get_subject_name(req->csr));
        exts = X509_REQ_get_extensions(req->csr);
        rec->san = scep_audit_san_of_exts(p, exts);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    else if (req->subject) {
        rec->subject = scep_name_text(p, req->subject);
    }
}

int scep_audit_of_outcome(apr_pool_t *p, const scep_request_t *req, const scep_outcome_t *outcome,
                          const scep_reply_t *reply, scep_audit_record_t *rec)
{
    if (req->message_type == SCEP_MSG_GETCERT || req->message_type == SCEP_MSG_GETCRL ||
        outcome->kind == SCEP_OUTCOME_FAULT) {
        return 0;
    }
    rec->fail_info = SCEP_FAIL_NONE;
    rec->event = outcome->kind == SCEP_OUTCOME_ISSUED ? SCEP_AUDIT_ISSUED
                 : outcome->kind == SCEP_OUTCOME_HELD ? SCEP_AUDIT_HELD
                                                      : SCEP_AUDIT_REFUSED;
    rec->transaction_id = req->transaction_id;
    rec->message_type = message_type_name(p, req->message_type);
    rec->template_name = outcome->template_name;
    names_of(p, req, outcome, rec);
    if (rec->event == SCEP_AUDIT_REFUSED) {
        rec->fail_info = reply->fail_info;
        rec->fail_info_text = reply->fail_text;
    }
    return 1;
}

/* The subjectAltName entries of a PEM certificate or CSR; NULL when there
 * is none or it does not decode. */
static apr_array_header_t *san_of_pem(apr_pool_t *p, const char *pem, int is_csr)
{
    BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509 *cert = NULL;
    X509_REQ *csr = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    apr_array_header_t *san = NULL;

    if (!bio) {
        return NULL;
    }
    if (is_csr && (csr = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL)) != NULL) {
        exts = X509_REQ_get_extensions(csr);
        san = scep_audit_san_of_exts(p, exts);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    else if (!is_csr && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        san = scep_audit_san_of_exts(p, X509_get0_extensions(cert));
    }
    X509_REQ_free(csr);
    X509_free(cert);
    BIO_free(bio);
    /* what a PEM of the records fails to give is no reason to fail the line */
    ERR_clear_error();
    return san;
}

/* "DNS:a, IP Address:10.0.0.1" as the records keep it, split again. */
static apr_array_header_t *san_of_text(apr_pool_t *p, const char *text)
{
    apr_array_header_t *list = apr_array_make(p, 2, sizeof(const char *));
    const char *sep;

    while (text && *text) {
        sep = strstr(text, ", ");
        APR_ARRAY_PUSH(list, const char *) =
            sep ? apr_pstrmemdup(p, text, (apr_size_t)(sep - text)) : text;
        text = sep ? sep + 2 : NULL;
    }
    return list;
}

void scep_audit_of_txn(apr_pool_t *p, const scep_txn_t *txn, scep_audit_record_t *rec)
{
    rec->fail_info = SCEP_FAIL_NONE;
    rec->transaction_id = txn->transaction_id;
    rec->message_type = txn->message_type ? message_type_name(p, txn->message_type) : NULL;
    rec->subject = txn->subject;
    rec->serial = txn->serial;
    rec->template_name = txn->template_name;
    rec->san = san_of_pem(p, txn->cert_pem, 0);
    if (!rec->san) {
        rec->san = san_of_pem(p, txn->csr_pem, 1);
    }
    if (!rec->san) {
        rec->san = san_of_text(p, txn->san);
    }
}

void scep_audit_of_cert(apr_pool_t *p, const scep_cert_record_t *cert, scep_audit_record_t *rec)
{
    rec->fail_info = SCEP_FAIL_NONE;
    rec->transaction_id = cert->transaction_id;
    rec->subject = cert->subject;
    rec->serial = cert->serial;
    rec->san = san_of_pem(p, cert->cert_pem, 0);
}

/* RFC 3339 in UTC with milliseconds: lines of one second keep their order
 * for a reader that sorts. */
static const char *time_text(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_usec / 1000);
}

/* The names as a JSON array; null when unknown. */
static json_t *san_value(apr_pool_t *p, const apr_array_header_t *san)
{
    json_t *list;
    int i;

    if (!san) {
        return json_null();
    }
    list = json_array();
    for (i = 0; list && i < san->nelts; i++) {
        if (json_array_append_new(list, scep_json_text(p, APR_ARRAY_IDX(san, i, const char *))) !=
            0) {
            json_decref(list);
            list = NULL;
        }
    }
    return list;
}

/* A password_issued line's own keys: the device an MDM named, and when
 * the password expires (null: the single password, which does not). */
static int add_password_keys(apr_pool_t *p, const scep_audit_record_t *rec, json_t *doc)
{
    return json_object_set_new(doc, "device", scep_json_text(p, rec->device)) == 0 &&
           json_object_set_new(doc, "expires",
                               rec->password_expires
                                   ? scep_json_text(p, scep_time_text(p, rec->password_expires))
                                   : json_null()) == 0;
}

/* Measured first, then written with the newline after it. */
static const char *dump_line(apr_pool_t *p, const json_t *doc, apr_size_t *len)
{
    const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER;
    size_t need = json_dumpb(doc, NULL, 0, flags);
    char *text = need ? apr_palloc(p, need + 2) : NULL;

    if (!text || json_dumpb(doc, text, need, flags) != need) {
        return NULL;
    }
    text[need] = '\n';
    text[need + 1] = '\0';
    *len = need + 1;
    return text;
}

const char *scep_audit_line(apr_pool_t *p, const scep_audit_record_t *rec, apr_size_t *len)
{
    json_t *doc = json_pack(
        "{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "time",
        scep_json_text(p, time_text(p, rec->time)), "event", scep_audit_event_name(rec->event),
        "server", scep_json_text(p, rec->server), "transaction_id",
        scep_json_text(p, rec->transaction_id), "message_type",
        scep_json_text(p, rec->message_type), "subject", scep_json_text(p, rec->subject),
        "subject_alt_names", san_value(p, rec->san), "serial", scep_json_text(p, rec->serial),
        "template", scep_json_text(p, rec->template_name), "client_address",
        scep_json_text(p, rec->client_address), "user", scep_json_text(p, rec->user), "fail_info",
        scep_json_text(p, scep_fail_info_name(rec->fail_info)), "fail_info_text",
        scep_json_text(p, rec->fail_info_text), "reason", scep_json_text(p, rec->reason));
    const char *line = NULL;

    if (doc && (rec->event != SCEP_AUDIT_PASSWORD_ISSUED || add_password_keys(p, rec, doc))) {
        line = dump_line(p, doc, len);
    }
    json_decref(doc);
    return line;
}

apr_status_t scep_audit_append(apr_file_t *f, const char *line, apr_size_t len)
{
    apr_size_t written = len;
    apr_status_t rv = apr_file_write(f, line, &written);

    if (rv == APR_SUCCESS && written != len) {
        rv = APR_INCOMPLETE;
    }
    return rv;
}
