/* proxy.c - a connection through a command: socketpair, posix_spawn of
 * /bin/sh -c, stderr to the log, reaping (proxy.h).
 *
 * Locks: `lock` guards `reaped` and `stopping`, so that the process group
 * is signalled only while its leader has not been reaped (its pid cannot
 * have been reused). Everything else is set before the thread starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy.h"
#include "util.h"

#define PROXY_CMD_MAX 4096
#define PROXY_LINE_MAX 512
#define PROXY_KILL_NS (2000ull * 1000000u) /* SIGTERM -> SIGKILL */

extern char **environ;

struct kb_proxy {
	pid_t pid; /* leader of its own process group */
	int errfd; /* owned: read end of the command's stderr */
	kb_proxy_log_fn log;
	void *log_arg;
	pthread_t th;
	pthread_mutex_t lock;
	bool reaped;   /* lock */
	bool stopping; /* lock */
	int status;    /* wait status once reaped */
};

bool kb_proxy_host_ok(const char *host)
{
	if (!*host || *host == '-')
		return false;
	for (const char *s = host; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(".-_:", *s)))
			return false;
	return true;
}

int kb_proxy_expand(char *out, size_t cap, const char *cmd, const char *host, const char *port,
		    char *err, size_t errlen)
{
	size_t n = 0;

	for (const char *s = cmd; *s; s++) {
		const char *add = s;
		size_t len = 1;

		if (*s == '%') {
			s++;
			add = s; /* %% */
			if (*s == 'h')
				add = host;
			else if (*s == 'p')
				add = port;
			else if (*s != '%') {
				snprintf(err, errlen,
					 "proxy_command: unknown escape %%%.1s (only %%h, %%p, "
					 "%%%%)",
					 s);
				return -EINVAL;
			}
			len = add == s ? 1 : strlen(add);
		}
		if (len >= cap - n) {
			snprintf(err, errlen, "proxy_command: too long");
			return -ENAMETOOLONG;
		}
		memcpy(out + n, add, len);
		n += len;
	}
	out[n] = '\0';
	return (int)n;
}

/* Hand each complete line of buf[0..*len) to the log; keep the rest. A
 * line longer than the buffer is cut. */
static void log_lines(struct kb_proxy *p, char *buf, size_t *len, bool all)
{
	char *start = buf, *nl;

	buf[*len] = '\0';
	while ((nl = memchr(start, '\n', *len - (size_t)(start - buf)))) {
		*nl = '\0';
		if (p->log && *start)
			p->log(p->log_arg, start);
		start = nl + 1;
	}
	*len -= (size_t)(start - buf);
	memmove(buf, start, *len);
	if (*len && (all || *len == PROXY_LINE_MAX - 1)) {
		buf[*len] = '\0';
		if (p->log)
			p->log(p->log_arg, buf);
		*len = 0;
	}
}

/* Reap without blocking; true once reaped. Escalates to SIGKILL when a
 * stop's SIGTERM was ignored for PROXY_KILL_NS. */
static bool try_reap(struct kb_proxy *p, uint64_t *term_at)
{
	bool done;
	int st;

	pthread_mutex_lock(&p->lock);
	if (!p->reaped && waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->reaped = true;
		p->status = st;
	}
	if (!p->reaped && p->stopping) {
		if (!*term_at)
			*term_at = kb_now_ns();
		else if (kb_now_ns() - *term_at > PROXY_KILL_NS)
			kill(-p->pid, SIGKILL);
	}
	done = p->reaped;
	pthread_mutex_unlock(&p->lock);
	return done;
}

static void log_exit(struct kb_proxy *p)
{
	char line[96];
	bool stopping;

	pthread_mutex_lock(&p->lock);
	stopping = p->stopping;
	pthread_mutex_unlock(&p->lock);
	if (stopping || !p->log)
		return;
	if (WIFEXITED(p->status))
		snprintf(line, sizeof(line), "proxy_command exited with status %d",
			 WEXITSTATUS(p->status));
	else
		snprintf(line, sizeof(line), "proxy_command killed by signal %d",
			 WTERMSIG(p->status));
	p->log(p->log_arg, line);
}

static void *proxy_main(void *arg)
{
	struct kb_proxy *p = arg;
	char buf[PROXY_LINE_MAX];
	size_t len = 0;
	uint64_t term_at = 0;
	bool eof = false;

	for (;;) {
		struct pollfd pfd = {.fd = p->errfd, .events = POLLIN};
		int n = poll(&pfd, eof ? 0 : 1, 100);

		if (n > 0) {
			ssize_t r = read(p->errfd, buf + len, sizeof(buf) - 1 - len);

			if (r > 0) {
				len += (size_t)r;
				log_lines(p, buf, &len, false);
				continue; /* drain before looking at the process */
			}
			if (r == 0 || errno != EINTR)
				eof = true;
		}
		if (try_reap(p, &term_at))
			break;
	}
	log_lines(p, buf, &len, true);
	log_exit(p);
	return NULL;
}

/* Our fds are close-on-exec; the child's must not land on 0..2 before the
 * dup2s (dup2 onto itself would keep close-on-exec). */
static int above_stdio(int fd)
{
	int nfd;

	if (fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd < 0 ? -errno : nfd;
}

static int spawn(struct kb_proxy *p, const char *cmd, int child_sock, int errw)
{
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	int rc;

	sigemptyset(&none);
	sigemptyset(&def);
	for (int s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaddset(&def, s);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_adddup2(&fa, child_sock, 0);
	posix_spawn_file_actions_adddup2(&fa, child_sock, 1);
	posix_spawn_file_actions_adddup2(&fa, errw, 2);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	rc = -posix_spawn(&p->pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

int kb_proxy_start(struct kb_proxy **out, int *fd, const char *cmd, const char *host,
		   const char *port, kb_proxy_log_fn log, void *log_arg, char *err, size_t errlen)
{
	char line[PROXY_CMD_MAX];
	struct kb_proxy *p = NULL;
	int sv[2] = {-1, -1}, ep[2] = {-1, -1}, rc;

	if (!kb_proxy_host_ok(host)) {
		snprintf(err, errlen, "proxy_command: host name %s is not fit for a shell command",
			 host);
		return -EINVAL;
	}
	rc = kb_proxy_expand(line, sizeof(line), cmd, host, port, err, errlen);
	if (rc < 0)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p)
		goto fail_errno;
	p->errfd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || pipe2(ep, O_CLOEXEC))
		goto fail_errno;
	sv[1] = above_stdio(sv[1]);
	ep[1] = sv[1] < 0 ? ep[1] : above_stdio(ep[1]);
	if (sv[1] < 0 || ep[1] < 0) {
		rc = sv[1] < 0 ? sv[1] : ep[1];
		sv[1] = sv[1] < 0 ? -1 : sv[1];
		ep[1] = ep[1] < 0 ? -1 : ep[1];
		goto fail;
	}
	rc = spawn(p, line, sv[1], ep[1]);
	if (rc)
		goto fail;
	close(sv[1]);
	close(ep[1]);
	sv[1] = ep[1] = -1;
	p->errfd = ep[0];
	p->log = log;
	p->log_arg = log_arg;
	pthread_mutex_init(&p->lock, NULL);
	rc = -pthread_create(&p->th, NULL, proxy_main, p);
	if (rc) {
		kill(-p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		pthread_mutex_destroy(&p->lock);
		goto fail;
	}
	pthread_setname_np(p->th, "kb-proxy");
	*fd = sv[0];
	*out = p;
	return 0;
fail_errno:
	rc = -errno;
fail:
	snprintf(err, errlen, "cannot run proxy_command: %s", strerror(-rc));
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	free(p);
	return rc;
}

void kb_proxy_stop(struct kb_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	if (!p->reaped)
		kill(-p->pid, SIGTERM);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->th, NULL);
	close(p->errfd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

pid_t kb_proxy_pid(const struct kb_proxy *p)
{
	return p->pid;
}

bool kb_proxy_exited(struct kb_proxy *p)
{
	bool r;

	pthread_mutex_lock(&p->lock);
	r = p->reaped;
	pthread_mutex_unlock(&p->lock);
	return r;
}
