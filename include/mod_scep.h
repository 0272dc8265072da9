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
 * The public face of mod_scep for other httpd modules, in the manner of
 * mod_ssl.h: what another module may rely on without including the
 * module's private headers.
 *
 * Optional functions and hooks for other modules (for instance challenge
 * password validation by an MDM connector, or notification of issued
 * certificates) will be declared here with APR_DECLARE_OPTIONAL_FN /
 * APR_DECLARE_EXTERNAL_HOOK once they exist; a module then finds them with
 * APR_RETRIEVE_OPTIONAL_FN and keeps working when mod_scep is not loaded.
 */
#ifndef mod_scep_mod_scep_h
#define mod_scep_mod_scep_h

/* The name other modules see in `httpd -M` and in the Server header. */
#define MOD_SCEP_NAME "mod_scep"

/* The release of this module (semantic versioning). The build passes the
 * configure version on the command line; this is the fallback for apxs. */
#ifndef MOD_SCEP_VERSION
#define MOD_SCEP_VERSION "0.1.0"
#endif

#endif /* mod_scep_mod_scep_h */
