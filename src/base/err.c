/* One-line error messages carried back to the caller, and stderr logging. */
#include "soju/base.h"

#include <stdio.h>
#include <string.h>

int soju_errf(soju_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int soju_err_prefix(soju_err *err, int code, const char *fmt, ...) {
    if (!err) return code;
    char prefix[SOJU_ERR_MSG], old[SOJU_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return code;
}

static void vlog(const char *tag, const char *fmt, va_list ap) {
    char line[4096];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "[soju]%s %s\n", tag, line);
}

void soju_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void soju_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(" warning:", fmt, ap);
    va_end(ap);
}
