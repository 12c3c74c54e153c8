/* th_proc.c - test harness: paths, processes, mounts, and final cleanup. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "th.h"

static char th_base[PATH_MAX]; /* run state dir; inherited via $KB_TEST_STATE */

static const char *state_dir(void)
{
	const char *s = getenv("KB_TEST_STATE");

	return s ? s : th_base;
}

const char *th_build(void)
{
	const char *b = getenv("KB_BUILD");

	return b ? b : "build";
}

const char *th_srcdir(void)
{
	const char *s = getenv("KB_SRCDIR");

	return s ? s : ".";
}

const char *th_bin(const char *name)
{
	static __thread char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", th_build(), name);
	return path;
}

char *th_tmpdir(const char *tag)
{
	char *p;

	if (asprintf(&p, "%s/%s.XXXXXX", state_dir(), tag) < 0)
		return NULL;
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

int th_write_pattern(const char *path, size_t len, unsigned seed, mode_t mode)
{
	static __thread unsigned char chunk[1 << 16];
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	int ret = 0;

	if (fd < 0)
		return -errno;
	while (len > 0) {
		size_t n = len < sizeof(chunk) ? len : sizeof(chunk);

		for (size_t i = 0; i < n; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(chunk + i, &x, n - i < 8 ? n - i : 8);
		}
		if (write(fd, chunk, n) != (ssize_t)n) {
			ret = -EIO;
			break;
		}
		len -= n;
	}
	close(fd);
	return ret;
}

static int run_sh(char **out, const char *fmt, va_list ap)
{
	char *cmd, *full;
	FILE *f;
	int st;

	if (vasprintf(&cmd, fmt, ap) < 0)
		return -1;
	if (asprintf(&full, "(%s) 2>&1", cmd) < 0) {
		free(cmd);
		return -1;
	}
	free(cmd);
	f = popen(full, "r");
	free(full);
	if (!f)
		return -1;
	{
		size_t cap = 4096, len = 0;
		char *buf = malloc(cap);
		size_t n;

		while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
			len += n;
			if (cap - len < 2048) {
				char *nb = realloc(buf, cap *= 2);

				if (!nb)
					break;
				buf = nb;
			}
		}
		if (buf)
			buf[len] = '\0';
		if (out)
			*out = buf;
		else
			free(buf);
	}
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_sh(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;
	int r;

	va_start(ap, fmt);
	r = run_sh(&out, fmt, ap);
	va_end(ap);
	if (r != 0 && out)
		fprintf(stderr, "th_sh: exit %d: %s\n", r, out);
	free(out);
	return r;
}

int th_sh_out(char **out, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = run_sh(out, fmt, ap);
	va_end(ap);
	return r;
}

static void record(const char *file, const char *line)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", state_dir(), file);
	f = fopen(path, "a");
	if (f) {
		fprintf(f, "%s\n", line);
		fclose(f);
	}
}

pid_t th_spawn(char *const argv[], const char *logfile)
{
	pid_t pid = fork();
	char buf[32];

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		setpgid(0, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	record("pids", buf);
	return pid;
}

void th_track_pid(pid_t pid)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d", (int)pid);
	record("pids", buf);
}

int th_stop(pid_t pid, int timeout_ms)
{
	int st;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r < 0) /* not our child (daemonized): poll for its exit */
			if (kill(pid, 0) < 0 && errno == ESRCH)
				return 0;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

bool th_wait_exists(const char *path, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		if (access(path, F_OK) == 0)
			return true;
		usleep(20000);
	}
	return false;
}

bool th_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		FILE *f = fopen(path, "r");

		if (f) {
			char line[4096];
			bool found = false;

			while (!found && fgets(line, sizeof(line), f))
				found = strstr(line, needle) != NULL;
			fclose(f);
			if (found)
				return true;
		}
		usleep(20000);
	}
	return false;
}

pid_t th_find_keibifs(const char *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t pid = 0;

	while (d && !pid && (e = readdir(d))) {
		char path[300], buf[8192];
		const char *base;
		ssize_t n;
		int fd;

		if (atoi(e->d_name) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
		if (strcmp(base, "keibifs"))
			continue;
		for (char *a = buf; a < buf + n; a += strlen(a) + 1)
			if (!strcmp(a, arg))
				pid = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return pid;
}

int th_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

bool th_is_mounted(const char *mnt)
{
	char real[PATH_MAX], line[8192];
	bool found = false;
	FILE *f;

	if (!realpath(mnt, real))
		snprintf(real, sizeof(real), "%s", mnt);
	f = fopen("/proc/self/mounts", "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *sp = strchr(line, ' '), *ep;

		if (!sp)
			continue;
		ep = strchr(sp + 1, ' ');
		if (ep && (size_t)(ep - sp - 1) == strlen(real) &&
		    !strncmp(sp + 1, real, ep - sp - 1))
			found = true;
	}
	fclose(f);
	return found;
}

void th_track_mount(const char *mnt)
{
	record("mounts", mnt);
}

void th_umount(const char *mnt)
{
	if (!th_is_mounted(mnt))
		return;
	th_sh("fusermount3 -u '%s' 2>/dev/null || umount '%s' 2>/dev/null || umount -l '%s'", mnt,
	      mnt, mnt);
}

bool th_fuse_available(const char *what)
{
	if (access("/dev/fuse", R_OK | W_OK) == 0 && access("/usr/bin/fusermount3", X_OK) == 0)
		return true;
	fprintf(stderr, "\n*** SKIP: %s: /dev/fuse or fusermount3 unusable: cannot mount ***\n\n",
		what);
	return false;
}

void th_run_begin(void)
{
	snprintf(th_base, sizeof(th_base), "/tmp/kbtest.XXXXXX");
	if (!mkdtemp(th_base)) {
		perror("mkdtemp");
		exit(1);
	}
	setenv("KB_TEST_STATE", th_base, 1);
}

static void for_each_line(const char *file, void (*fn)(const char *))
{
	char path[PATH_MAX + 64], line[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", th_base, file);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		fn(line);
	}
	fclose(f);
}

static void cleanup_mount(const char *mnt)
{
	if (th_is_mounted(mnt)) {
		fprintf(stderr, "runner: unmounting leftover %s\n", mnt);
		th_umount(mnt);
	}
}

static void cleanup_pid(const char *s)
{
	pid_t pid = (pid_t)atoi(s);

	if (pid > 0 && kill(pid, 0) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, WNOHANG);
	}
}

void th_run_end(void)
{
	for_each_line("mounts", cleanup_mount);
	for_each_line("pids", cleanup_pid);
	if (!getenv("KB_KEEP_TMP"))
		th_sh("rm -rf '%s'", th_base);
}
