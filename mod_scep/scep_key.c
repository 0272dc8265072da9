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
 * Public keys a device sends: the server-wide limits every key must meet
 * before anything is computed with it, the named curve of an EC key, and
 * whether a reply can be encrypted to a key.
 *
 * Everything here reads only the SubjectPublicKeyInfo and the numbers
 * OpenSSL decoded from it, never uses the key: a message signed with a
 * 65536-bit modulus or a 3000-bit exponent costs no more to refuse than a
 * normal one. The templates' finer rules (scep_policy.c) come later.
 */

#include <apr_strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "scep.h"

/* The SPKI's algorithm OID as a NID, and the parameters' type and value. */
static int spki_algorithm(const X509_PUBKEY *spki, int *ptype, const void **pval)
{
    ASN1_OBJECT *oid = NULL;
    X509_ALGOR *alg = NULL;
    const ASN1_OBJECT *ignored;

    *ptype = V_ASN1_UNDEF;
    *pval = NULL;
    if (!spki || !X509_PUBKEY_get0_param(&oid, NULL, NULL, &alg, spki)) {
        return NID_undef;
    }
    if (alg) {
        X509_ALGOR_get0(&ignored, ptype, pval, alg);
    }
    return OBJ_obj2nid(oid);
}

static const char *algorithm_name(apr_pool_t *p, const X509_PUBKEY *spki)
{
    ASN1_OBJECT *oid = NULL;
    char buf[80];

    if (!spki || !X509_PUBKEY_get0_param(&oid, NULL, NULL, NULL, spki) ||
        OBJ_obj2txt(buf, sizeof(buf), oid, 0) <= 0) {
        return "unknown";
    }
    return apr_pstrdup(p, buf);
}

int scep_key_curve(const X509_PUBKEY *spki)
{
    int ptype;
    const void *pval;

    if (spki_algorithm(spki, &ptype, &pval) != NID_X9_62_id_ecPublicKey || ptype != V_ASN1_OBJECT) {
        return NID_undef;
    }
    return OBJ_obj2nid(pval);
}

int scep_curve_nid(const char *name)
{
    int nid = EC_curve_nist2nid(name);
    EC_GROUP *group;

    if (nid == NID_undef) {
        nid = OBJ_sn2nid(name);
    }
    if (nid == NID_undef) {
        nid = OBJ_ln2nid(name);
    }
    /* Only the curves OpenSSL can compute on. */
    group = nid != NID_undef ? EC_GROUP_new_by_curve_name(nid) : NULL;
    EC_GROUP_free(group);
    return group ? nid : NID_undef;
}

const char *scep_curve_name(int nid)
{
    const char *nist = EC_curve_nid2nist(nid);

    return nist ? nist : OBJ_nid2sn(nid);
}

/* The RSA public exponent's size in bits, -1 when it cannot be read. */
static int rsa_exponent_bits(EVP_PKEY *key)
{
    BIGNUM *e = NULL;
    int bits = -1;

    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e)) {
        bits = BN_num_bits(e);
    }
    BN_free(e);
    return bits;
}

static const char *rsa_unusable(apr_pool_t *p, EVP_PKEY *key)
{
    int bits = EVP_PKEY_get_bits(key), e_bits;

    if (bits > SCEP_MAX_RSA_BITS) {
        return apr_psprintf(p,
                            "an RSA modulus of %d bits is larger than the %d this server accepts",
                            bits, SCEP_MAX_RSA_BITS);
    }
    e_bits = rsa_exponent_bits(key);
    if (e_bits < 0 || e_bits > SCEP_MAX_RSA_EXPONENT_BITS) {
        return apr_psprintf(p,
                            "an RSA public exponent of %d bits is larger than the %d this server "
                            "accepts",
                            e_bits, SCEP_MAX_RSA_EXPONENT_BITS);
    }
    return NULL;
}

const char *scep_key_unusable(apr_pool_t *p, const X509_PUBKEY *spki)
{
    int ptype;
    const void *pval;
    int nid = spki_algorithm(spki, &ptype, &pval);
    EVP_PKEY *key = spki ? X509_PUBKEY_get0(spki) : NULL;

    if (!key) {
        return apr_psprintf(p, "the %s public key cannot be decoded", algorithm_name(p, spki));
    }
    switch (nid) {
    case NID_rsaEncryption:
    case NID_rsassaPss:
        return rsa_unusable(p, key);
    case NID_X9_62_id_ecPublicKey:
        /* RFC 5480 section 2.1.1: namedCurve only. Explicit parameters
         * would let a key pose as another on the same point (and cost a
         * group check each). */
        return scep_key_curve(spki) == NID_undef
                   ? "EC keys with explicit curve parameters are not accepted (RFC 5480: "
                     "named curves only)"
                   : NULL;
    default:
        return EVP_PKEY_get_bits(key) > SCEP_MAX_RSA_BITS
                   ? apr_psprintf(p, "a %s key of %d bits is larger than this server accepts",
                                  algorithm_name(p, spki), EVP_PKEY_get_bits(key))
                   : NULL;
    }
}

const char *scep_key_undeliverable(apr_pool_t *p, const X509_PUBKEY *spki)
{
    int ptype;
    const void *pval;

    /* What CMS_encrypt() can do with a recipient certificate: RSA key
     * transport (PKCS#1 v1.5, which every SCEP client decrypts) and EC
     * key agreement. An RSASSA-PSS key may only sign (RFC 4055); DSA,
     * Ed25519 and Ed448 keys only sign too. */
    switch (spki_algorithm(spki, &ptype, &pval)) {
    case NID_rsaEncryption:
    case NID_X9_62_id_ecPublicKey:
        return NULL;
    default:
        return apr_psprintf(p,
                            "a reply cannot be encrypted to a key of type %s (only RSA and EC "
                            "keys can receive one)",
                            algorithm_name(p, spki));
    }
}
