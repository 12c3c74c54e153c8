/* log.h - where a program's log lines go: syslog, standard error, or a
 * file (appended, one timestamped line each), chosen by a --log / -o log=
 * value. One destination per process; lines may come from any thread.
 */
#ifndef KB_LOG_H
#define KB_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum kb_log_to {
	KB_LOG_SYSLOG,
	KB_LOG_STDERR,
	KB_LOG_FILE
};

/* Parses "syslog", "stderr" or a file name (opened now, O_APPEND, mode
 * 0640, so that an unwritable file is reported before a daemon forks).
 * ident: the program name (syslog ident, prefix of stderr lines). 0, or
 * -errno with one line in err. */
int kb_log_open(const char *spec, const char *ident, char *err, size_t errlen);
/* Where lines go now (KB_LOG_SYSLOG until kb_log_open). */
enum kb_log_to kb_log_dest(void);
/* A description for messages: "syslog", "stderr" or the file name. */
const char *kb_log_name(void);
/* One line (no newline; a leading "IDENT: " is dropped for syslog and
 * files, which name the program themselves). prio: syslog's LOG_*. */
void kb_log_line(int prio, const char *line);
void kb_logf(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The log file's descriptor (-1 when not a file): kept across daemonizing. */
int kb_log_fd(void);

#endif
