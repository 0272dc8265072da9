/* Fixture of t/check_lognos_test.sh: what t/check_lognos.sh accepts and
 * what it refuses. Never compiled. SCEPLOGNO(900) in a comment is no tag. */

#define helper_here(...) helper_at(APLOG_MARK, __VA_ARGS__)

static void helper_at(const char *file, int line, int mi, request_rec *r, const char *tag,
                      int x);
static void old_helper(request_rec *r, int logno, const char *text);
static void printf_like(request_rec *r, const char *fmt, ...);

static void accepted(request_rec *r, const char *tag, const char *msg)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(901) "literal");
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(902) "an event%s",
                  scep_event_text(SCEP_EVENT_INVALID_PASSWORD));
    helper_here(r, SCEPLOGNO(903), 1);
    printf_like(r, SCEPLOGNO(904) "%d", 1);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "%s%s", tag, "passed on");
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "%s", msg);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "%s", st->setup_error);
}

static void refused(request_rec *r, int n)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(905) "once");
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, r->server, SCEPLOGNO(905) "twice");
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "no tag");
    helper_here(r, "no tag", 1);
    old_helper(r, 213, "a bare number");
    printf_like(r, "SCEP%03d: formatted", n);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(906) "by hand (NDES event 29)");
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(907) "(NDES event %d)", n);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, SCEPLOGNO(9) "short");
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "%s", r->uri);
}
