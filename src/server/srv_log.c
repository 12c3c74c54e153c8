/* srv_log.c - the server's log lines, and the rate limit on the lines of
 * its resource limits (one per kind every 10 s, "and N more like it"; at
 * stop one line counts every kind).
 */
#include <stdarg.h>
#include <stdio.h>

#include "srv_impl.h"
#include "util.h"

#define LIMIT_LOG_NS 10000000000ull

void kb_srv_limit_log(struct kb_srv *s, enum kb_srv_lim kind, const char *fmt, ...)
{
	uint64_t now = kb_now_ns();
	unsigned quiet = 0;
	bool say = false;
	char line[400];
	va_list ap;

	pthread_mutex_lock(&s->lim_lock);
	s->lim_count[kind]++;
	if (!s->lim_last_ns[kind] || now - s->lim_last_ns[kind] >= LIMIT_LOG_NS) {
		say = true;
		quiet = s->lim_quiet[kind];
		s->lim_quiet[kind] = 0;
		s->lim_last_ns[kind] = now;
	} else {
		s->lim_quiet[kind]++;
	}
	pthread_mutex_unlock(&s->lim_lock);
	if (!say)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (quiet)
		kb_srv_logf(s, KB_SRV_LOG_INFO, "%s (and %u more like it)", line, quiet);
	else
		kb_srv_logf(s, KB_SRV_LOG_INFO, "%s", line);
}

/* One line at stop: how often each limit bit. */
void kb_srv_limit_totals(struct kb_srv *s)
{
	static const char *const name[KB_SRV_LIM_N] = {
		"handshakes",
		"handshakes-per-addr",
		"handshakes-accept",
		"handshake-timeout",
		"conns",
		"conns-per-key",
		"hello-timeout",
		"frame-timeout",
		"idle-timeout",
		"queued",
		"queued-cut",
		"fds",
		"pushes-dropped",
	};
	char line[512];
	size_t n = 0;

	pthread_mutex_lock(&s->lim_lock);
	for (int i = 0; i < KB_SRV_LIM_N && n < sizeof(line); i++)
		if (s->lim_count[i])
			n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%llu", name[i],
					      (unsigned long long)s->lim_count[i]);
	pthread_mutex_unlock(&s->lim_lock);
	if (n)
		kb_srv_logf(s, KB_SRV_LOG_INFO, "limits hit since start:%s", line);
}

void kb_srv_logf(const struct kb_srv *s, int prio, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->log)
		s->log(s->log_arg, prio, line);
	else
		fprintf(stderr, "keibifsd: %s\n", line);
}
