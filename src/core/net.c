/* net.c - TCP client sockets: resolve, connect with a deadline, tune. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "util.h"

#define KB_NET_DEFAULT_TIMEOUT_MS 15000

void kb_net_format(char *out, size_t cap, const char *host, const char *port)
{
	if (strchr(host, ':'))
		snprintf(out, cap, "[%s]:%s", host, port);
	else
		snprintf(out, cap, "%s:%s", host, port);
}

void kb_net_format_sockaddr(char *out, size_t cap, const struct sockaddr *sa, unsigned int len)
{
	char h[NI_MAXHOST], p[NI_MAXSERV];
	struct sockaddr_in v4;

	if (sa->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;

		memset(&v4, 0, sizeof(v4));
		v4.sin_family = AF_INET;
		v4.sin_port = v6->sin6_port;
		memcpy(&v4.sin_addr, v6->sin6_addr.s6_addr + 12, 4);
		sa = (const struct sockaddr *)&v4;
		len = sizeof(v4);
	}
	if (getnameinfo(sa, len, h, sizeof(h), p, sizeof(p), NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(out, cap, "?");
	else
		kb_net_format(out, cap, h, p);
}

int kb_net_send_timeout(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

int kb_net_tune(int fd, const struct kb_net_opts *o)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)))
		return -errno;
	/* Setting a buffer size turns autotuning off for that direction, so
	 * only do it when asked. Failures to get the size asked are fine. */
	if (o && o->sndbuf > 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf, sizeof(o->sndbuf));
	if (o && o->rcvbuf > 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof(o->rcvbuf));
	if (o && o->user_timeout_ms > 0) {
		unsigned ut = (unsigned)o->user_timeout_ms;

		(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
	}
	return 0;
}

static int remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = kb_now_ns();

	return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

/* One address: non-blocking connect, wait for it within the deadline. */
static int connect_one(const struct addrinfo *ai, uint64_t deadline_ns, int *out)
{
	int fd, rc = 0, soerr = 0;
	socklen_t len = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int n;

		if (errno != EINPROGRESS) {
			rc = -errno;
			goto out;
		}
		do
			n = poll(&pfd, 1, remaining_ms(deadline_ns));
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0) {
			rc = -ETIMEDOUT;
			goto out;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr) {
			rc = -soerr;
			goto out;
		}
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		rc = -errno;
out:
	if (rc)
		close(fd);
	else
		*out = fd;
	return rc;
}

static void connect_error(char *err, size_t errlen, const char *where, int rc)
{
	if (rc == -ECONNREFUSED)
		snprintf(err, errlen, "connection refused by %s", where);
	else if (rc == -ETIMEDOUT)
		snprintf(err, errlen, "timed out connecting to %s", where);
	else
		snprintf(err, errlen, "cannot connect to %s: %s", where, strerror(-rc));
}

int kb_net_connect(int *fd, const char *host, const char *port, const struct kb_net_opts *o,
		   char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}; /* no AI_ADDRCONFIG: ::1 */
	struct addrinfo *res = NULL;
	int timeout = o && o->timeout_ms > 0 ? o->timeout_ms : KB_NET_DEFAULT_TIMEOUT_MS;
	uint64_t deadline = kb_now_ns() + (uint64_t)timeout * 1000000u;
	char where[320];
	int rc, g;

	kb_net_format(where, sizeof(where), host, port);
	g = getaddrinfo(host, port, &hints, &res);
	if (g) {
		snprintf(err, errlen, "cannot resolve %s: %s", where,
			 g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return -EHOSTUNREACH;
	}
	rc = -EHOSTUNREACH;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		rc = connect_one(ai, deadline, fd);
		if (!rc || rc == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (!rc) {
		rc = kb_net_tune(*fd, o);
		if (rc)
			close(*fd);
	}
	if (rc)
		connect_error(err, errlen, where, rc);
	return rc;
}
