/* kbfs_log.c - the mount's log lines: the rpc's (reconnect, new session,
 * silent peer...) and ours (mounted, unmounted, why a mount failed). They
 * go to stderr in the foreground and, once detached, to -o log= (a file,
 * stderr) or else syslog (daemon facility); see log.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "kbfs.h"
#include "log.h"

void kbfs_log_detach(struct kbfs *fs)
{
	atomic_store(&fs->log_detached, true);
}

void kbfs_log(void *arg, const char *line)
{
	struct kbfs *fs = arg;
	bool detached = fs && atomic_load(&fs->log_detached);

	/* Before detaching the terminal sees every line; the log (a file or
	 * syslog) gets them too, so that it tells the whole story. */
	if (!detached && kb_log_dest() != KB_LOG_STDERR)
		fprintf(stderr, "%s\n", line);
	kb_log_line(LOG_NOTICE, line);
}

void kbfs_logf(struct kbfs *fs, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n = snprintf(line, sizeof(line), "keibifs: ");

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	kbfs_log(fs, line);
}
