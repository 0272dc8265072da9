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

/* Small helpers shared by the whole core. */

#include <errno.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_global_mutex.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
/* after pem.h: its PEM functions of CMS come with it */
#include <openssl/cms.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep.h"
#include "scep_algs.h"
#include "scep_oids.h"

apr_status_t scep_problem(scep_problem_t *prob, apr_status_t rv, scep_fail_info_t fail_info,
                          int event, const char *text)
{
    if (prob) {
        prob->fail_info = fail_info;
        prob->event = event;
        prob->text = text;
    }
    return rv;
}

const char *scep_fail_info_name(scep_fail_info_t fail_info)
{
    switch (fail_info) {
    case SCEP_FAIL_NONE:
        return NULL;
    case SCEP_FAIL_BAD_ALG:
        return "badAlg";
    case SCEP_FAIL_BAD_MESSAGE_CHECK:
        return "badMessageCheck";
    case SCEP_FAIL_BAD_TIME:
        return "badTime";
    case SCEP_FAIL_BAD_CERT_ID:
        return "badCertId";
    default:
        return "badRequest";
    }
}

const char *scep_message_type_name(int type)
{
    switch (type) {
    case SCEP_MSG_CERTREP:
        return "CertRep";
    case SCEP_MSG_RENEWALREQ:
        return "RenewalReq";
    case SCEP_MSG_PKCSREQ:
        return "PKCSReq";
    case SCEP_MSG_CERTPOLL:
        return "CertPoll";
    case SCEP_MSG_GETCERT:
        return "GetCert";
    case SCEP_MSG_GETCRL:
        return "GetCRL";
    default:
        return NULL;
    }
}

typedef struct owned_t {
    void *obj;
    void (*free_fn)(void *);
} owned_t;

static apr_status_t free_owned(void *data)
{
    owned_t *owned = data;
    owned->free_fn(owned->obj);
    return APR_SUCCESS;
}

void scep_pool_own(apr_pool_t *p, void *obj, void (*free_fn)(void *))
{
    owned_t *owned;

    if (!obj) {
        return;
    }
    owned = apr_palloc(p, sizeof(*owned));
    owned->obj = obj;
    owned->free_fn = free_fn;
    apr_pool_cleanup_register(p, owned, free_owned, apr_pool_cleanup_null);
}

const char *scep_hex(apr_pool_t *p, const unsigned char *buf, apr_size_t len)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, len * 2 + 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[buf[i] >> 4];
        out[2 * i + 1] = digits[buf[i] & 0x0f];
    }
    out[len * 2] = '\0';
    return out;
}

/* A digest of a certificate's DER in hex, NULL on failure. */
static const char *cert_digest_hex(apr_pool_t *p, X509 *cert, const EVP_MD *type)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (!X509_digest(cert, type, md, &len)) {
        return NULL;
    }
    return scep_hex(p, md, len);
}

const char *scep_cert_thumbprint(apr_pool_t *p, X509 *cert)
{
    return cert_digest_hex(p, cert, scep_md(NID_sha1));
}

const char *scep_cert_sha256(apr_pool_t *p, X509 *cert)
{
    return cert_digest_hex(p, cert, scep_md(NID_sha256));
}

/* SHA-256 in hex of what an i2d function or a getter gave (len <= 0: it
 * failed, NULL). */
static const char *sha256_hex(apr_pool_t *p, const unsigned char *data, int len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (len <= 0 || !EVP_Digest(data, (size_t)len, md, &md_len, scep_md(NID_sha256), NULL)) {
        return NULL;
    }
    return scep_hex(p, md, md_len);
}

/* rsaEncryption's parameters are NULL (RFC 3279), but some encoders leave
 * them out: a device's self-signed certificate and its CSR may write one RSA
 * key both ways. Such an SPKI is digested as if it had the NULL; no other
 * difference in the AlgorithmIdentifier is forgiven. */
static int rsa_without_null(const X509_PUBKEY *spki)
{
    const ASN1_OBJECT *alg = NULL;
    X509_ALGOR *algor = NULL;
    int ptype = V_ASN1_UNDEF;

    if (!X509_PUBKEY_get0_param(NULL, NULL, NULL, &algor, spki)) {
        return 0;
    }
    X509_ALGOR_get0(&alg, &ptype, NULL, algor);
    return OBJ_obj2nid(alg) == NID_rsaEncryption && ptype == V_ASN1_UNDEF;
}

/* The DER of an SPKI as it came, or as rsa_without_null() reads it. On an
 * SPKI decoded from a message i2d_X509_PUBKEY() writes the fields it holds
 * again (cheap, and the bytes that came), never the EVP_PKEY through OpenSSL
 * 3's encoders. */
static int spki_der(const X509_PUBKEY *spki, unsigned char **der)
{
    X509_PUBKEY *with_null = NULL;
    X509_ALGOR *algor = NULL;
    int len = -1;

    if (!rsa_without_null(spki)) {
        return i2d_X509_PUBKEY(spki, der);
    }
    if ((with_null = X509_PUBKEY_dup(spki)) != NULL &&
        X509_PUBKEY_get0_param(NULL, NULL, NULL, &algor, with_null) &&
        X509_ALGOR_set0(algor, OBJ_nid2obj(NID_rsaEncryption), V_ASN1_NULL, NULL)) {
        len = i2d_X509_PUBKEY(with_null, der);
    }
    X509_PUBKEY_free(with_null);
    return len;
}

/* The digest of the whole SubjectPublicKeyInfo: the algorithm and its
 * parameters bind as much as the key bits, since the same bits are another
 * key under other domain parameters (an EC point on another curve). */
const char *scep_key_id(apr_pool_t *p, const X509_PUBKEY *spki)
{
    unsigned char *der = NULL;
    const char *id = NULL;
    int len;

    if (!spki) {
        return NULL;
    }
    len = spki_der(spki, &der);
    id = sha256_hex(p, der, len);
    OPENSSL_free(der);
    return id;
}

const char *scep_key_bits_id(apr_pool_t *p, const X509_PUBKEY *spki)
{
    const unsigned char *bits = NULL;
    int len = 0;

    if (!spki || !X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, spki)) {
        return NULL;
    }
    return sha256_hex(p, bits, len);
}

/* Adds an encoding that an i2d function returned (len) to a digest, and
 * frees it. */
static int digest_der(EVP_MD_CTX *ctx, unsigned char *der, int len)
{
    int ok = len > 0 && EVP_DigestUpdate(ctx, der, (size_t)len);

    OPENSSL_free(der);
    return ok;
}

/* The CertificationRequestInfo's key, subject and attributes as DER, one
 * after the other (DER delimits itself). Left out: the signature, so that a
 * device that signs the same request again (ECDSA signatures differ every
 * time) still sends the same request, and the challenge password, so that
 * the digest in the records says nothing about it. */
static int digest_csr(EVP_MD_CTX *ctx, const X509_REQ *csr)
{
    unsigned char *der = NULL;
    X509_ATTRIBUTE *attr;
    int len, i;

    len = spki_der(X509_REQ_get_X509_PUBKEY((X509_REQ *)csr), &der);
    if (!digest_der(ctx, der, len)) {
        return 0;
    }
    der = NULL;
    len = i2d_X509_NAME(X509_REQ_get_subject_name(csr), &der);
    if (!digest_der(ctx, der, len)) {
        return 0;
    }
    for (i = 0; i < X509_REQ_get_attr_count(csr); i++) {
        attr = X509_REQ_get_attr(csr, i);
        if (OBJ_obj2nid(X509_ATTRIBUTE_get0_object(attr)) == NID_pkcs9_challengePassword) {
            continue;
        }
        der = NULL;
        len = i2d_X509_ATTRIBUTE(attr, &der);
        if (!digest_der(ctx, der, len)) {
            return 0;
        }
    }
    return 1;
}

const char *scep_csr_digest(apr_pool_t *p, const X509_REQ *csr)
{
    EVP_MD_CTX *ctx = csr ? EVP_MD_CTX_new() : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    const char *digest = NULL;

    if (ctx && EVP_DigestInit_ex(ctx, scep_md(NID_sha256), NULL) && digest_csr(ctx, csr) &&
        EVP_DigestFinal_ex(ctx, md, &md_len)) {
        digest = scep_hex(p, md, md_len);
    }
    EVP_MD_CTX_free(ctx);
    return digest;
}

/* The text of what a BIO collected, NULL when nothing was written. */
static const char *bio_text(apr_pool_t *p, BIO *bio)
{
    char *data;
    long len = BIO_get_mem_data(bio, &data);

    return len > 0 ? apr_pstrmemdup(p, data, (apr_size_t)len) : NULL;
}

const char *scep_cert_pem(apr_pool_t *p, X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *pem = bio && PEM_write_bio_X509(bio, cert) ? bio_text(p, bio) : NULL;

    BIO_free(bio);
    return pem;
}

const char *scep_crl_pem(apr_pool_t *p, X509_CRL *crl)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *pem = bio && PEM_write_bio_X509_CRL(bio, crl) ? bio_text(p, bio) : NULL;

    BIO_free(bio);
    return pem;
}

const char *scep_csr_pem(apr_pool_t *p, X509_REQ *csr)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *pem = bio && PEM_write_bio_X509_REQ(bio, csr) ? bio_text(p, bio) : NULL;

    BIO_free(bio);
    return pem;
}

/* The signature goes too: it was checked when the request came, and with
 * the rest of the request it would let whoever reads the records test
 * guesses of the password offline. Approval never verifies it again. */
const char *scep_csr_pem_at_rest(apr_pool_t *p, X509_REQ *csr)
{
    X509_REQ *copy = X509_REQ_dup(csr);
    ASN1_BIT_STRING *no_signature = ASN1_BIT_STRING_new();
    const char *pem = NULL;
    int pos;

    if (!copy || !no_signature) {
        goto leave;
    }
    while ((pos = X509_REQ_get_attr_by_NID(copy, NID_pkcs9_challengePassword, -1)) >= 0) {
        X509_ATTRIBUTE_free(X509_REQ_delete_attr(copy, pos));
    }
    X509_REQ_set0_signature(copy, no_signature);
    no_signature = NULL;
    /* re-encoded from the parsed fields, not the DER received */
    if (i2d_re_X509_REQ_tbs(copy, NULL) > 0) {
        pem = scep_csr_pem(p, copy);
    }
leave:
    ASN1_BIT_STRING_free(no_signature);
    X509_REQ_free(copy);
    return pem;
}

/* Authenticated (GCM): a sealed CSR that was altered does not open. The
 * recipient is the RA encryption certificate; opening takes its key alone
 * (a certificate renewed with the same key opens what its predecessor
 * sealed). */
const char *scep_csr_seal(apr_pool_t *p, X509_REQ *csr, X509 *to)
{
    STACK_OF(X509) *recipients = sk_X509_new_null();
    BIO *der = BIO_new(BIO_s_mem());
    BIO *pem = BIO_new(BIO_s_mem());
    CMS_ContentInfo *cms = NULL;
    const char *sealed = NULL;

    /* i2d_X509_REQ_bio() writes what was received: OpenSSL keeps the
     * encoding of a parsed CSR's signed part */
    if (!recipients || !der || !pem || !sk_X509_push(recipients, to) ||
        i2d_X509_REQ_bio(der, csr) != 1) {
        goto leave;
    }
    cms = CMS_encrypt(recipients, der, scep_cipher(NID_aes_256_gcm), CMS_BINARY);
    if (cms && PEM_write_bio_CMS(pem, cms)) {
        sealed = bio_text(p, pem);
    }
leave:
    CMS_ContentInfo_free(cms);
    BIO_free(pem);
    BIO_free(der);
    sk_X509_free(recipients);
    return sealed;
}

X509_REQ *scep_csr_unseal(apr_pool_t *p, const char *sealed, EVP_PKEY *key)
{
    BIO *pem = BIO_new_mem_buf(sealed, -1);
    BIO *der = BIO_new(BIO_s_mem());
    CMS_ContentInfo *cms = pem ? PEM_read_bio_CMS(pem, NULL, NULL, NULL) : NULL;
    X509_REQ *csr = NULL;

    /* no certificate: every recipient is tried with key */
    if (cms && der && CMS_decrypt(cms, key, NULL, NULL, der, CMS_BINARY) == 1) {
        csr = d2i_X509_REQ_bio(der, NULL);
    }
    SCEP_OWN(p, csr, X509_REQ_free);
    CMS_ContentInfo_free(cms);
    BIO_free(der);
    BIO_free(pem);
    return csr;
}

const char *scep_name_text(apr_pool_t *p, const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *text = NULL;

    if (!bio) {
        return NULL;
    }
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        /* the empty name prints nothing: "" as before */
        text = bio_text(p, bio);
        text = text ? text : "";
    }
    BIO_free(bio);
    return text;
}

const char *scep_key_desc(apr_pool_t *p, EVP_PKEY *key)
{
    const char *type = EVP_PKEY_get0_type_name(key);
    char group[80];
    size_t len = 0;

    if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_group_name(key, group, sizeof(group), &len)) {
        return apr_psprintf(p, "EC %s", group);
    }
    return apr_psprintf(p, "%s %d", type ? type : "unknown", EVP_PKEY_get_bits(key));
}

const char *scep_csr_san_text(apr_pool_t *p, X509_REQ *csr)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
    int pos = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
    GENERAL_NAMES *names = pos >= 0 ? X509V3_EXT_d2i(X509v3_get_ext(exts, pos)) : NULL;
    BIO *bio = names ? BIO_new(BIO_s_mem()) : NULL;
    const char *text = NULL;
    int i;

    for (i = 0; bio && i < sk_GENERAL_NAME_num(names); i++) {
        if (i > 0) {
            BIO_puts(bio, ", ");
        }
        GENERAL_NAME_print(bio, sk_GENERAL_NAME_value(names, i));
    }
    if (bio) {
        text = bio_text(p, bio);
    }
    BIO_free(bio);
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return text;
}

static scep_oids_t oids;
static CRYPTO_ONCE oids_once = CRYPTO_ONCE_STATIC_INIT;

static void create_oids(void)
{
    oids.message_type = OBJ_txt2obj("2.16.840.1.113733.1.9.2", 1);
    oids.pki_status = OBJ_txt2obj("2.16.840.1.113733.1.9.3", 1);
    oids.fail_info = OBJ_txt2obj("2.16.840.1.113733.1.9.4", 1);
    oids.sender_nonce = OBJ_txt2obj("2.16.840.1.113733.1.9.5", 1);
    oids.recipient_nonce = OBJ_txt2obj("2.16.840.1.113733.1.9.6", 1);
    oids.transaction_id = OBJ_txt2obj("2.16.840.1.113733.1.9.7", 1);
    oids.fail_info_text = OBJ_txt2obj("1.3.6.1.5.5.7.24.1", 1);
}

const scep_oids_t *scep_oids(void)
{
    return CRYPTO_THREAD_run_once(&oids_once, create_oids) ? &oids : NULL;
}

const char *scep_time_text(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int scep_parse_int(const char *text, int min, int max, int *value)
{
    const char *digits = text && *text == '-' ? text + 1 : text;
    char *end;
    apr_int64_t n;

    if (!digits || !apr_isdigit(*digits)) {
        return 0;
    }
    errno = 0;
    n = apr_strtoi64(text, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max) {
        return 0;
    }
    *value = (int)n;
    return 1;
}

const char *scep_file_error(apr_pool_t *p, const char *file, apr_status_t rv)
{
    char buf[256];

    return apr_psprintf(p, "%s: %s", file, apr_strerror(rv, buf, sizeof(buf)));
}

/* Every permission bit of group and others. */
#define GROUP_OTHER_ACCESS \
    (APR_FPROT_GREAD | APR_FPROT_GWRITE | APR_FPROT_GEXECUTE | APR_FPROT_WREAD | \
     APR_FPROT_WWRITE | APR_FPROT_WEXECUTE)

/* APR keeps one hex digit per class (user 0x700, group 0x070, world 0x007). */
static unsigned int unix_mode(apr_fileperms_t perms)
{
    return (((perms >> 8) & 7) << 6) | (((perms >> 4) & 7) << 3) | (perms & 7);
}

/* APR_SUCCESS when the open file's type, size and (private_only) mode
 * allow reading it, else the status and *why. */
static apr_status_t check_file(apr_pool_t *p, const char *file, const apr_finfo_t *finfo,
                               apr_size_t max, int private_only, const char **why)
{
    if (finfo->filetype != APR_REG) {
        *why = apr_psprintf(p, "%s is not a regular file", file);
        return APR_EINVAL;
    }
    if (finfo->size < 0 || (apr_uint64_t)finfo->size > (apr_uint64_t)max) {
        *why = apr_psprintf(p, "%s is larger than %" APR_SIZE_T_FMT " bytes", file, max);
        return APR_EINVAL;
    }
    if (private_only && (finfo->protection & GROUP_OTHER_ACCESS)) {
        *why = apr_psprintf(p,
                            "%s is open to group or others (mode %04o): a file holding a key or "
                            "a password must be mode 0600 (chmod 600 %s)",
                            file, unix_mode(finfo->protection), file);
        return APR_EACCES;
    }
    return APR_SUCCESS;
}

static apr_status_t read_whole_file(apr_pool_t *p, const char *file, apr_size_t max,
                                    int private_only, char **data, apr_size_t *len,
                                    const char **why)
{
    apr_file_t *f = NULL;
    apr_finfo_t finfo;
    char *buf = NULL;
    apr_status_t rv;

    *data = NULL;
    *len = 0;
    *why = NULL;
    rv = apr_file_open(&f, file, APR_FOPEN_READ | APR_FOPEN_BINARY, APR_FPROT_OS_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&finfo, APR_FINFO_TYPE | APR_FINFO_SIZE | APR_FINFO_PROT, f);
    }
    if (rv != APR_SUCCESS) {
        *why = scep_file_error(p, file, rv);
        goto leave;
    }
    rv = check_file(p, file, &finfo, max, private_only, why);
    if (rv != APR_SUCCESS) {
        goto leave;
    }
    buf = apr_palloc(p, (apr_size_t)finfo.size + 1);
    rv = apr_file_read_full(f, buf, (apr_size_t)finfo.size, len);
    if (rv != APR_SUCCESS) {
        OPENSSL_cleanse(buf, (apr_size_t)finfo.size);
        *len = 0;
        *why = scep_file_error(p, file, rv);
        goto leave;
    }
    buf[*len] = '\0';
    *data = buf;
leave:
    if (f) {
        apr_file_close(f);
    }
    return rv;
}

apr_status_t scep_read_file(apr_pool_t *p, const char *file, apr_size_t max, char **data,
                            apr_size_t *len, const char **why)
{
    return read_whole_file(p, file, max, 0, data, len, why);
}

apr_status_t scep_read_private_file(apr_pool_t *p, const char *file, apr_size_t max, char **data,
                                    apr_size_t *len, const char **why)
{
    return read_whole_file(p, file, max, 1, data, len, why);
}

/* How often a lock is tried again after a false deadlock: each wait ends
 * when the other process lets go of its mutex, after a statement or a
 * cache lookup. */
#define FALSE_DEADLOCK_TRIES 10000
#define FALSE_DEADLOCK_PAUSE apr_time_from_msec(1)

/* fcntl locks (the mechanism of `Mutex file:`, Debian's default) detect
 * deadlocks by process, not by thread: when a thread of process A waits for
 * a mutex that process B holds while a thread of B waits for another that a
 * thread of A holds, the kernel answers EDEADLK although each holder lets
 * go without waiting for anything. apr_global_mutex_lock has then released
 * its thread mutex, so trying again is safe; a real deadlock cannot occur
 * as long as no caller holds one of these mutexes while it takes another
 * (the module never does). */
apr_status_t scep_global_mutex_lock(apr_global_mutex_t *mutex)
{
    apr_status_t rv;
    int tries = 0;

    while ((rv = apr_global_mutex_lock(mutex)) == APR_FROM_OS_ERROR(EDEADLK) &&
           ++tries < FALSE_DEADLOCK_TRIES) {
        apr_sleep(FALSE_DEADLOCK_PAUSE);
    }
    return rv;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
apr_size_t scep_utf8_char(const char *text, unsigned long *code)
{
    const unsigned char *s = (const unsigned char *)text;
    static const unsigned long least[] = { 0, 0, 0x80, 0x800, 0x10000 };
    apr_size_t len, i;
    unsigned long c;

    if (s[0] < 0x80) {
        len = 1, c = s[0];
    }
    else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2, c = s[0] & 0x1f;
    }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3, c = s[0] & 0x0f;
    }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4, c = s[0] & 0x07;
    }
    else {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0; /* the NUL at the end stops here too */
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < least[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    *code = c;
    return len;
}

const char *scep_utf8_text(apr_pool_t *p, const char *text)
{
    unsigned long code = 0;
    const char *t;
    char *out, *o;
    apr_size_t len;

    for (t = text; t && *t && (len = scep_utf8_char(t, &code)) > 0; t += len) {
    }
    if (!t || !*t) {
        return text; /* UTF-8 already (or NULL) */
    }
    out = o = apr_palloc(p, 3 * strlen(text) + 1);
    for (t = text; *t; t += len) {
        len = scep_utf8_char(t, &code);
        if (len == 0) {
            memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD, for one stray byte */
            o += 3;
            len = 1;
        }
        else {
            memcpy(o, t, len);
            o += len;
        }
    }
    *o = '\0';
    return out;
}

int scep_char_is_control(unsigned long code)
{
    return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

/* The letter of the two-character escape of code ("\\t"), 0 for none. */
static char short_escape(unsigned long code, int flags)
{
    switch (code) {
    case '\t':
        return 't';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\\':
        return flags & SCEP_ESCAPE_BACKSLASH ? '\\' : 0;
    default:
        return 0;
    }
}

const char *scep_escape_text(apr_pool_t *p, const char *text, int flags)
{
    /* at most 4 characters ("\xNN") for each byte */
    char *out = apr_palloc(p, 4 * strlen(text) + 1), *o = out;
    unsigned long code = 0;
    apr_size_t len, i;
    char letter;

    for (; *text; text += len) {
        len = scep_utf8_char(text, &code);
        if (len == 1 && (letter = short_escape(code, flags))) {
            *o++ = '\\';
            *o++ = letter;
        }
        else if (len > 0 && !scep_char_is_control(code)) {
            memcpy(o, text, len);
            o += len;
        }
        else {
            len = len > 0 ? len : 1; /* a control's bytes, or one stray byte */
            for (i = 0; i < len; i++) {
                o += apr_snprintf(o, 5, "\\x%02X", (unsigned char)text[i]);
            }
        }
    }
    *o = '\0';
    return out;
}

const char *scep_event_text(int event)
{
    switch (event) {
#define SCEP_EVENT_TEXT(name, id) \
    case name: \
        return " (NDES event " #id ")";
        SCEP_EVENTS(SCEP_EVENT_TEXT)
#undef SCEP_EVENT_TEXT
    default:
        return "";
    }
}

/* One entry of the OpenSSL error queue as text, 0 when the queue is empty. */
static int next_openssl_error(char *text, apr_size_t size, const char **data)
{
    int flags = 0;
    unsigned long e = ERR_get_error_all(NULL, NULL, NULL, data, &flags);

    if (!e) {
        return 0;
    }
    ERR_error_string_n(e, text, size);
    if (!(flags & ERR_TXT_STRING) || !*data) {
        *data = "";
    }
    return 1;
}

void scep_log_openssl(scep_log_fn *log, void *baton, const char *file, int line, int level)
{
    char text[256], msg[1024];
    const char *data;

    while (next_openssl_error(text, sizeof(text), &data)) {
        apr_snprintf(msg, sizeof(msg), SCEPLOGNO(090) "OpenSSL: %s%s%s", text, *data ? ": " : "",
                     data);
        log(baton, file, line, level, msg);
    }
}
