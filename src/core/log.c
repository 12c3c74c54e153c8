/* log.c - one log destination per process (see log.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Set once by kb_log_open, before any thread logs; read-only afterwards. */
static enum kb_log_to dest = KB_LOG_SYSLOG;
static int log_fd = -1;
static char ident[32] = "keibifs";
static char name[512] = "syslog";

int kb_log_open(const char *spec, const char *id, char *err, size_t errlen)
{
	snprintf(ident, sizeof(ident), "%s", id);
	if (!spec || !strcmp(spec, "syslog")) {
		dest = KB_LOG_SYSLOG;
		snprintf(name, sizeof(name), "syslog");
		openlog(ident, LOG_PID, LOG_DAEMON);
		return 0;
	}
	if (!strcmp(spec, "stderr")) {
		dest = KB_LOG_STDERR;
		snprintf(name, sizeof(name), "stderr");
		return 0;
	}
	if (!*spec) {
		snprintf(err, errlen, "log: want FILE, stderr or syslog");
		return -EINVAL;
	}
	log_fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (log_fd < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot open log file %s: %s", spec, strerror(e));
		return -e;
	}
	dest = KB_LOG_FILE;
	snprintf(name, sizeof(name), "%s", spec);
	return 0;
}

enum kb_log_to kb_log_dest(void)
{
	return dest;
}

const char *kb_log_name(void)
{
	return name;
}

int kb_log_fd(void)
{
	return log_fd;
}

void kb_log_line(int prio, const char *line)
{
	size_t il = strlen(ident);
	char head[96];
	struct timespec ts;
	struct tm tm;

	if (!strncmp(line, ident, il) && line[il] == ':' && line[il + 1] == ' ')
		line += il + 2;
	if (dest == KB_LOG_STDERR) {
		fprintf(stderr, "%s: %s\n", ident, line);
		return;
	}
	if (dest == KB_LOG_SYSLOG) {
		syslog(prio, "%s", line);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02dZ %s[%d]: ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ident, (int)getpid());
	{
		struct iovec iov[3] = {
			{.iov_base = head, .iov_len = strlen(head)},
			{.iov_base = (void *)line, .iov_len = strlen(line)},
			{.iov_base = "\n", .iov_len = 1},
		};

		/* one writev on an O_APPEND file: lines from threads do not mix */
		if (writev(log_fd, iov, 3) < 0) {
			/* nowhere left to say so */
		}
	}
}

void kb_logf(int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	kb_log_line(prio, line);
}
