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
 * The values every JSON document of the module is made of (jansson): the
 * webhooks' requests, the notifications, the pages' answers (whose glue
 * helpers call these).
 */
#ifndef mod_scep_scep_json_h
#define mod_scep_scep_json_h

#include <jansson.h>

#include "scep.h"

/* text (a device's, the records', the configuration's) as a JSON string, a
 * new reference: bytes that are not UTF-8 become U+FFFD (jansson refuses
 * them, scep_utf8_text()); NULL text is null. */
json_t *scep_json_text(apr_pool_t *p, const char *text);

/* Standard base64 of der, padded, without line breaks (how Go's JSON
 * writes a []byte: step-ca's raw fields); NULL when len <= 0. */
json_t *scep_json_base64(apr_pool_t *p, const unsigned char *der, int len);

/* doc written compact on one line into p (NUL-terminated after its *len
 * bytes); NULL when jansson cannot write it. */
const char *scep_json_dump(apr_pool_t *p, const json_t *doc, apr_size_t *len);

#endif /* mod_scep_scep_json_h */
