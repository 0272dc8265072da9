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
 * What a CSR asks to be named and to be used for, checked and decoded
 * (scep_names.c): the policy check refuses with these functions' problems,
 * and the CA encodes the issued certificate from their results, never from
 * the CSR's bytes. Every refusal is badRequest: event 42 when the CSR is
 * malformed (undecodable, an extension twice, a string not valid in its
 * ASN.1 type), else event 23.
 */

#ifndef SCEP_NAMES_H
#define SCEP_NAMES_H

#include <openssl/x509v3.h>

#include "scep.h"

/* scep_names_from_csr() flags. */
#define SCEP_NAMES_WILDCARD 0x01 /* a dNSName may start with one "*." */

typedef struct scep_names_t {
    X509_NAME *subject; /* the CSR's subject in our encoding, owned by the pool */
    GENERAL_NAMES *san; /* its subjectAltName in our encoding; NULL when it has none */
} scep_names_t;

/* The subject and subjectAltName of csr, each value decoded, checked and
 * encoded again: PrintableString where the value fits, else UTF8String;
 * countryName PrintableString of 2 letters; emailAddress and
 * domainComponent IA5String; serialNumber and dnQualifier PrintableString.
 * Refused: values that are not valid in their ASN.1 type, NUL or control
 * characters, lengths beyond RFC 5280's upper bounds, an empty subject
 * without subjectAltName, an empty subjectAltName, a dNSName that is not a
 * host name (wildcards only with SCEP_NAMES_WILDCARD), an iPAddress of other
 * than 4 or 16 octets, and subjectAltName types other than dNSName,
 * iPAddress, rfc822Name, URI and the Microsoft UPN otherName. */
apr_status_t scep_names_from_csr(apr_pool_t *p, X509_REQ *csr, unsigned int flags,
                                 scep_names_t *names, scep_problem_t *prob);

/* The subjectAltName of a CSR's extensions as it came, *san NULL when
 * there is none (owned by p); refused when present twice or undecodable. */
apr_status_t scep_names_requested_san(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts,
                                      GENERAL_NAMES **san, scep_problem_t *prob);

/* The keyUsage a CSR's extensions ask for as X509v3_KU_* bits, -1 when
 * none. keyCertSign and cRLSign are refused: an end entity (basicConstraints
 * CA:FALSE) never gets them. */
apr_status_t scep_requested_key_usage(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts,
                                      int *bits, scep_problem_t *prob);

/* The extendedKeyUsage OIDs a CSR's extensions ask for (ASN1_OBJECT *,
 * owned by p), NULL when none. anyExtendedKeyUsage and OCSPSigning are
 * refused: only a template that names them grants them. */
apr_status_t scep_requested_eku(apr_pool_t *p, const STACK_OF(X509_EXTENSION) *exts,
                                apr_array_header_t **oids, scep_problem_t *prob);

#endif /* SCEP_NAMES_H */
