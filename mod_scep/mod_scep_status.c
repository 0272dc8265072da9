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
 * The SCEP section of mod_status (/server-status), and its lines for
 * machines (/server-status?auto), through mod_status's optional
 * status_hook: the password cache (waiting, limit, validity), the
 * enrollments issued, refused and held and the faults since the start
 * (mod_scep_stats.c), the CA and RA certificates' days to expiry, and the
 * state of the records.
 *
 * The first lines are the whole server's: counts summed, the fewest days,
 * the records at fault when any server's are. With more than one server
 * with SCEP, each one's lines follow, their keys naming it
 * ("SCEPIssued[scep.example.com/443]"). Reading them takes no lock but the
 * password cache's, once, to count the waiting passwords.
 */

#include <apr_strings.h>

#include <httpd.h>
#include <apr_optional_hooks.h>
#include <http_config.h>
#include <http_main.h>
#include <http_protocol.h>
#include <mod_status.h>

#include <openssl/x509.h>

#include "mod_scep_private.h"
#include "scep_stats.h"
#include "scep_x509.h"

/* One server's figures. */
typedef struct server_figures_t {
    const char *name;
    scep_stats_view_t view;
    int ca_days;
    int ra_days; /* when has_ra: the RA certificates in use, the earlier */
    int has_ra;
} server_figures_t;

/* One line: the key's what, the page's words, the whole server's value
 * (NULL: none), each server's (NULL: none). */
typedef struct figure_t {
    const char *what;
    const char *label;
    const char *all;
    const char **each;
} figure_t;

static int cert_days(X509 *cert, apr_time_t now, int *days)
{
    apr_time_t not_after = 0;

    if (!cert || scep_x509_time_get(X509_get0_notAfter(cert), &not_after) != APR_SUCCESS) {
        return 0;
    }
    *days = scep_stats_days_left(not_after, now);
    return 1;
}

static void figures_of(server_rec *s, apr_time_t now, server_figures_t *f)
{
    const scep_pki_t *pki = mod_scep_srv_conf(s)->pki;
    apr_time_t started = 0;

    mod_scep_stats_read(s, &f->view, &started);
    f->name = f->view.name ? f->view.name : s->server_hostname;
    f->ca_days = 0;
    cert_days(pki ? pki->ca_cert : NULL, now, &f->ca_days);
    f->has_ra = pki && pki->separate_ra && pki->ra_not_after;
    f->ra_days = f->has_ra ? scep_stats_days_left(pki->ra_not_after, now) : 0;
}

/* The servers with SCEP, in the configuration's order. */
static apr_array_header_t *all_figures(request_rec *r, apr_time_t now)
{
    apr_array_header_t *all = apr_array_make(r->pool, 4, sizeof(server_figures_t));
    server_rec *s;

    for (s = ap_server_conf; s; s = s->next) {
        if (mod_scep_srv_conf(s)->enabled) {
            figures_of(s, now, apr_array_push(all));
        }
    }
    return all;
}

#define FIG(all, i) (&APR_ARRAY_IDX((all), (i), server_figures_t))

static const char *number(apr_pool_t *p, long n)
{
    return apr_ltoa(p, n);
}

static figure_t *add_figure(apr_array_header_t *figs, const char *what, const char *label,
                            int servers)
{
    figure_t *f = apr_array_push(figs);

    f->what = what;
    f->label = label;
    f->all = NULL;
    f->each = apr_pcalloc(figs->pool, sizeof(const char *) * (apr_size_t)(servers + 1));
    return f;
}

static void add_counter(apr_array_header_t *figs, const apr_array_header_t *all,
                        scep_stats_counter_t c, const char *what, const char *label)
{
    figure_t *f = add_figure(figs, what, label, all->nelts);
    long sum = 0;
    int i;

    for (i = 0; i < all->nelts; i++) {
        sum += (long)FIG(all, i)->view.counters[c];
        f->each[i] = number(figs->pool, (long)FIG(all, i)->view.counters[c]);
    }
    f->all = number(figs->pool, sum);
}

static void add_days(apr_array_header_t *figs, const apr_array_header_t *all, int ra)
{
    figure_t *f = add_figure(figs, ra ? "RACertificateDays" : "CACertificateDays",
                             ra ? "Days until the RA certificates expire"
                                : "Days until the CA certificate expires",
                             all->nelts);
    int i, days, least = 0, any = 0;

    for (i = 0; i < all->nelts; i++) {
        if (ra && !FIG(all, i)->has_ra) {
            continue;
        }
        days = ra ? FIG(all, i)->ra_days : FIG(all, i)->ca_days;
        f->each[i] = number(figs->pool, days);
        least = any && least < days ? least : days;
        any = 1;
    }
    f->all = any ? number(figs->pool, least) : NULL;
}

/* The records' state: at fault when any server's is, since the earliest
 * of those faults; else ok since the latest recovery. */
static void add_records(apr_array_header_t *figs, const apr_array_header_t *all)
{
    apr_pool_t *p = figs->pool;
    figure_t *state = add_figure(figs, "RecordStore", "Records", all->nelts);
    figure_t *since =
        add_figure(figs, "RecordStoreSince", "Records in that state since", all->nelts);
    figure_t *last =
        add_figure(figs, "RecordStoreLastFault", "Last fault of the records", all->nelts);
    apr_time_t fault_since = 0, ok_since = 0, latest = 0;
    const scep_stats_view_t *v;
    int i;

    for (i = 0; i < all->nelts; i++) {
        v = &FIG(all, i)->view;
        state->each[i] = v->store_fault ? "fault" : "ok";
        since->each[i] = scep_time_text(p, v->store_since);
        last->each[i] = v->last_fault ? scep_time_text(p, v->last_fault) : NULL;
        if (v->store_fault && (!fault_since || v->store_since < fault_since)) {
            fault_since = v->store_since;
        }
        ok_since = !v->store_fault && v->store_since > ok_since ? v->store_since : ok_since;
        latest = v->last_fault > latest ? v->last_fault : latest;
    }
    state->all = fault_since ? "fault" : "ok";
    since->all = scep_time_text(p, fault_since ? fault_since : ok_since);
    last->all = latest ? scep_time_text(p, latest) : NULL;
    add_counter(figs, all, SCEP_STATS_STORE_FAULTS, "RecordStoreFaults",
                "Failed uses of the records");
}

/* The password cache is the main server's (its directives are). */
static void add_passwords(request_rec *r, apr_array_header_t *figs, int servers)
{
    const mod_scep_srv_conf_t *conf = mod_scep_srv_conf(ap_server_conf);
    figure_t *f;
    int waiting = 0;

    /* an error leaves the line out (logged there) */
    if (mod_scep_passwords_waiting(r->pool, ap_server_conf, &waiting) == APR_SUCCESS) {
        f = add_figure(figs, "PasswordsWaiting", "One-time passwords waiting", servers);
        f->all = number(figs->pool, waiting);
    }
    f = add_figure(figs, "PasswordLimit", "One-time passwords at most (SCEPPasswordMax)", servers);
    f->all = number(figs->pool, conf->password_max);
    f = add_figure(figs, "PasswordValidityMinutes",
                   "Minutes a password lives (SCEPPasswordValidity)", servers);
    f->all = number(figs->pool, conf->password_validity);
}

static apr_array_header_t *figures(request_rec *r, const apr_array_header_t *all,
                                   apr_time_t started)
{
    apr_array_header_t *figs = apr_array_make(r->pool, 16, sizeof(figure_t));
    figure_t *f = add_figure(figs, "Since", "Counting since", all->nelts);

    f->all = scep_time_text(r->pool, started);
    add_counter(figs, all, SCEP_STATS_ISSUED, "Issued", "Certificates issued");
    add_counter(figs, all, SCEP_STATS_REFUSED, "Refused", "Requests refused or denied");
    add_counter(figs, all, SCEP_STATS_HELD, "Held", "Requests held for a decision");
    add_counter(figs, all, SCEP_STATS_FAULTS, "Faults", "Answered \"try again later\"");
    add_passwords(r, figs, all->nelts);
    add_days(figs, all, 0);
    add_days(figs, all, 1);
    add_records(figs, all);
    return figs;
}

static void print_auto(request_rec *r, const apr_array_header_t *figs,
                       const apr_array_header_t *all)
{
    const figure_t *f;
    int i, k;

    for (i = 0; i < figs->nelts; i++) {
        f = &APR_ARRAY_IDX(figs, i, figure_t);
        if (f->all) {
            ap_rprintf(r, "%s: %s\n", scep_stats_key(r->pool, f->what, NULL), f->all);
        }
    }
    /* each server's, when there are several */
    for (k = 0; all->nelts > 1 && k < all->nelts; k++) {
        for (i = 0; i < figs->nelts; i++) {
            f = &APR_ARRAY_IDX(figs, i, figure_t);
            if (f->each[k]) {
                ap_rprintf(r, "%s: %s\n", scep_stats_key(r->pool, f->what, FIG(all, k)->name),
                           f->each[k]);
            }
        }
    }
}

static const char *cell(apr_pool_t *p, const char *value)
{
    return value ? ap_escape_html2(p, value, 1) : "";
}

static void print_html(request_rec *r, const apr_array_header_t *figs,
                       const apr_array_header_t *all)
{
    int several = all->nelts > 1;
    const figure_t *f;
    int i, k;

    ap_rputs("<hr />\n<h2>SCEP</h2>\n<table border=\"0\">\n<tr><th></th><th>all</th>", r);
    for (k = 0; several && k < all->nelts; k++) {
        ap_rprintf(r, "<th>%s</th>", cell(r->pool, FIG(all, k)->name));
    }
    ap_rputs("</tr>\n", r);
    for (i = 0; i < figs->nelts; i++) {
        f = &APR_ARRAY_IDX(figs, i, figure_t);
        if (!f->all) {
            continue;
        }
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td>", cell(r->pool, f->label), cell(r->pool, f->all));
        for (k = 0; several && k < all->nelts; k++) {
            ap_rprintf(r, "<td>%s</td>", cell(r->pool, f->each[k]));
        }
        ap_rputs("</tr>\n", r);
    }
    ap_rputs("</table>\n", r);
}

/* ?notable: the whole server's figures as lines, no table. */
static void print_lines(request_rec *r, const apr_array_header_t *figs)
{
    const figure_t *f;
    int i;

    ap_rputs("<hr />\n<h2>SCEP</h2>\n", r);
    for (i = 0; i < figs->nelts; i++) {
        f = &APR_ARRAY_IDX(figs, i, figure_t);
        if (f->all) {
            ap_rprintf(r, "%s: %s<br />\n", cell(r->pool, f->label), cell(r->pool, f->all));
        }
    }
}

static int status_hook(request_rec *r, int flags)
{
    apr_time_t now = apr_time_now(), started = 0;
    scep_stats_view_t first;
    apr_array_header_t *all;

    /* no figures without a server with SCEP */
    if (mod_scep_stats_read(ap_server_conf, &first, &started) == APR_ENOTIMPL) {
        return OK;
    }
    all = all_figures(r, now);
    if (all->nelts == 0) {
        return OK;
    }
    if (flags & AP_STATUS_SHORT) {
        print_auto(r, figures(r, all, started), all);
    }
    else if (flags & AP_STATUS_NOTABLE) {
        print_lines(r, figures(r, all, started));
    }
    else {
        print_html(r, figures(r, all, started), all);
    }
    return OK;
}

void mod_scep_status_register_hooks(void)
{
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}
