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

/* The SCEP attribute OIDs (RFC 8894 section 3.2.1), created once per process. */
#ifndef mod_scep_scep_oids_h
#define mod_scep_scep_oids_h

#include <openssl/asn1.h>

typedef struct scep_oids_t {
    ASN1_OBJECT *message_type;    /* 2.16.840.1.113733.1.9.2 */
    ASN1_OBJECT *pki_status;      /* 2.16.840.1.113733.1.9.3 */
    ASN1_OBJECT *fail_info;       /* 2.16.840.1.113733.1.9.4 */
    ASN1_OBJECT *sender_nonce;    /* 2.16.840.1.113733.1.9.5 */
    ASN1_OBJECT *recipient_nonce; /* 2.16.840.1.113733.1.9.6 */
    ASN1_OBJECT *transaction_id;  /* 2.16.840.1.113733.1.9.7 */
    ASN1_OBJECT *fail_info_text;  /* 1.3.6.1.5.5.7.24.1 */
} scep_oids_t;

/* The OIDs; thread-safe, built on first use and kept for the process. */
const scep_oids_t *scep_oids(void);

#endif /* mod_scep_scep_oids_h */
