/* net.h - TCP client sockets: resolve (name, IPv4, IPv6), connect with a
 * deadline, and tune the socket for a bulk, latency-sensitive stream.
 */
#ifndef KB_NET_H
#define KB_NET_H

#include <stddef.h>

#define KB_DEFAULT_PORT "26431" /* keibifsd's TCP port */

struct kb_net_opts {
	int timeout_ms;      /* bound on resolve-and-connect (<= 0: 15 s) */
	int sndbuf, rcvbuf;  /* bytes; 0 keeps Linux's autotuning (best by far) */
	int user_timeout_ms; /* TCP_USER_TIMEOUT: unacked data -> dead (0: off) */
};

/* Connect to host:port over TCP (every address getaddrinfo returns, in
 * order, within one overall deadline); *fd is blocking, close-on-exec, with
 * TCP_NODELAY and keepalive. Returns 0, -ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH (name did not resolve) or another -errno, with a one-line
 * message in err ("connection refused by HOST:PORT"). */
int kb_net_connect(int *fd, const char *host, const char *port, const struct kb_net_opts *o,
		   char *err, size_t errlen);

/* Apply the options that matter after connect (buffers, nodelay, user
 * timeout). Also used by the server on accepted sockets. */
int kb_net_tune(int fd, const struct kb_net_opts *o);

/* Bound every blocking send on fd to ms (SO_SNDTIMEO; 0: no bound). */
int kb_net_send_timeout(int fd, int ms);

/* "HOST:PORT", or "[HOST]:PORT" when HOST is an IPv6 literal. */
void kb_net_format(char *out, size_t cap, const char *host, const char *port);

/* A socket address as kb_net_format does it, numeric; an IPv4 peer of a
 * dual-stack socket (::ffff:a.b.c.d) is shown as a.b.c.d. */
struct sockaddr;
void kb_net_format_sockaddr(char *out, size_t cap, const struct sockaddr *sa, unsigned int len);

#endif
