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
 * The audit log (SCEPAuditLog, scepctl --audit-log): one JSON line per
 * decision, for a log pipeline (a SIEM) rather than for people. This file
 * makes the line (jansson: every string, above all what a device sent, is
 * escaped by the encoder, and written as ASCII) and appends it to a file
 * with one write(); the module's adapter (mod_scep_audit.c) opens the
 * files and piped loggers and says what was decided.
 *
 * Never a password nor a challenge: a line has no field that could hold
 * one (a password_issued line says who got one, not which).
 */
#ifndef mod_scep_scep_audit_h
#define mod_scep_scep_audit_h

#include <apr_file_io.h>

#include "scep.h"
#include "scep_enroll.h"

/* What was decided; scep_audit_event_name() is the line's "event". */
typedef enum {
    SCEP_AUDIT_ISSUED,         /* a certificate went to a device (PKIOperation) */
    SCEP_AUDIT_REFUSED,        /* a device's message got FAILURE */
    SCEP_AUDIT_HELD,           /* a device's request waits (PENDING) */
    SCEP_AUDIT_APPROVED,       /* a manager approved a held request */
    SCEP_AUDIT_DENIED,         /* a manager denied a held request */
    SCEP_AUDIT_REVOKED,        /* a manager revoked a certificate */
    SCEP_AUDIT_PASSWORD_ISSUED /* a challenge password was handed out (never its value) */
} scep_audit_event_t;

/* One line. NULL (and SCEP_FAIL_NONE) members are written as null, so that
 * every line has every key and a reader need not guess. */
typedef struct scep_audit_record_t {
    scep_audit_event_t event;
    apr_time_t time;             /* of the decision */
    const char *server;          /* the server's name (ServerName) */
    const char *transaction_id;  /* the device's transactionID */
    const char *message_type;    /* "PKCSReq", "RenewalReq", "CertPoll", ... */
    const char *subject;         /* as the records write it (scep_name_text()) */
    apr_array_header_t *san;     /* of const char *: "DNS:a.example", ...; NULL: unknown */
    const char *serial;          /* upper-case hex, as the records */
    const char *template_name;   /* the certificate template */
    const char *client_address;  /* the device's, or the administrator's */
    const char *user;            /* who acted: a manager, an administrator */
    scep_fail_info_t fail_info;  /* refused: the CertRep's failInfo */
    const char *fail_info_text;  /* refused: its failInfoText */
    const char *reason;          /* denied, revoked (the CRLReason's name) */
    const char *device;          /* password_issued: the device an MDM named */
    apr_time_t password_expires; /* password_issued: 0 for the single password */
} scep_audit_record_t;

/* "issued", "refused", "held", "approved", "denied", "revoked",
 * "password_issued". */
const char *scep_audit_event_name(scep_audit_event_t event);

/* The subjectAltName entries of a certificate's or a CSR's extensions,
 * each as OpenSSL prints one ("DNS:a.example", "IP Address:10.0.0.1",
 * what the records join with ", "), on p; an empty array when there is no
 * subjectAltName, NULL when it does not decode. */
apr_array_header_t *scep_audit_san_of_exts(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts);

/* A record (zeroed but for the event and time) of a PKIOperation's
 * outcome: the message's transaction and type, the names it asked for
 * (the certificate's when one was issued), the serial, the template,
 * failInfo and text. 0 when the outcome is no decision to audit: GetCert
 * and GetCRL (reads), and a FAULT (nothing was decided, the device is told
 * to try again; the error log has it). */
int scep_audit_of_outcome(apr_pool_t *p, const scep_request_t *req, const scep_outcome_t *outcome,
                          const scep_reply_t *reply, scep_audit_record_t *rec);

/* The names, serial, template and transaction of a request in the
 * records (a manager's decision on it): the subject as recorded, the
 * subjectAltName entries of its certificate when issued, else of its CSR
 * at rest, else of the recorded text split at ", " (a decided request
 * keeps no CSR); message_type from the record. Fills rec but for the
 * event, time, server, client_address, user, reason. */
void scep_audit_of_txn(apr_pool_t *p, const scep_txn_t *txn, scep_audit_record_t *rec);

/* The same of a certificate in the records (a revocation): its subject,
 * serial, transaction, subjectAltName entries. */
void scep_audit_of_cert(apr_pool_t *p, const scep_cert_record_t *cert, scep_audit_record_t *rec);

/* The record as one line of JSON (ASCII: everything else escaped as
 * \uXXXX, text that is not UTF-8 as U+FFFD) ending in a newline, on p;
 * keys in this order: time (RFC 3339 UTC, milliseconds), event, server,
 * transaction_id, message_type, subject, subject_alt_names, serial,
 * template, client_address, user, fail_info, fail_info_text, reason; a
 * password_issued line adds device and expires. NULL when jansson has no
 * memory. */
const char *scep_audit_line(apr_pool_t *p, const scep_audit_record_t *rec, apr_size_t *len);

/* Appends line to f, opened with APR_FOPEN_APPEND and unbuffered, in one
 * write(): with O_APPEND the kernel puts each write whole at the end of a
 * regular file, so processes and threads sharing it never interleave
 * lines. APR_INCOMPLETE when the system wrote part of it (a full disk);
 * other errors as apr_file_write(). */
apr_status_t scep_audit_append(apr_file_t *f, const char *line, apr_size_t len);

#endif /* mod_scep_scep_audit_h */
