/* proxy.h - a connection through a command (OpenSSH's ProxyCommand).
 *
 * kb_proxy_start() runs `/bin/sh -c COMMAND` (%h, %p and %% expanded) in
 * its own process group, with one end of a socketpair as its stdin and
 * stdout: the caller gets the other end as the connection's fd and speaks
 * the channel over it exactly as over TCP (no TCP options apply to it). The
 * command's stderr is read by a small thread and handed line by line to the
 * log callback. That thread also reaps the command when it exits, so a
 * proxy that dies on its own leaves no zombie.
 *
 * kb_proxy_stop() ends it: SIGTERM to the process group (while the command
 * is not yet reaped), SIGKILL after 2 s, then joins the thread. Close the
 * connection's fd first: most commands (ssh -W, socat) exit at EOF anyway.
 *
 * Threads: one kb_proxy is started and stopped by one thread; the log
 * callback runs on the proxy's own thread.
 */
#ifndef KB_PROXY_H
#define KB_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct kb_proxy; /* opaque */

typedef void (*kb_proxy_log_fn)(void *arg, const char *line);

/* COMMAND with %h -> host, %p -> port, %% -> %. Returns the length, or
 * -EINVAL for another escape (message in err) or -ENAMETOOLONG. */
int kb_proxy_expand(char *out, size_t cap, const char *cmd, const char *host, const char *port,
		    char *err, size_t errlen);
/* A host name fit to be pasted into a shell command: letters, digits and
 * . - _ : (IPv6) only, as OpenSSH requires for %h. */
bool kb_proxy_host_ok(const char *host);

/* Start the command; *fd is our end of the socketpair (blocking,
 * close-on-exec). log may be NULL (stderr lines are dropped). 0, or a
 * negative errno with a one-line message in err. */
int kb_proxy_start(struct kb_proxy **out, int *fd, const char *cmd, const char *host,
		   const char *port, kb_proxy_log_fn log, void *log_arg, char *err, size_t errlen);
/* Kill (if still running), reap, join, free. NULL-safe. */
void kb_proxy_stop(struct kb_proxy *p);
/* The command's pid (its process group); tests. */
pid_t kb_proxy_pid(const struct kb_proxy *p);
/* True once the command has exited and was reaped. */
bool kb_proxy_exited(struct kb_proxy *p);

#endif
