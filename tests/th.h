/* th.h - test harness shared by every suite: paths, processes, cleanup.
 *
 * Every process a test starts and every mount it makes is recorded in the
 * run's state directory; the runner (parent process) stops those processes
 * by PID and unmounts those mounts when the run ends, even when a test
 * failed or crashed in its forked child. Tests still clean up themselves.
 */
#ifndef KB_TH_H
#define KB_TH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Directory of built binaries ($KB_BUILD) and of the source tree. */
const char *th_build(void);
const char *th_srcdir(void);
/* Path of a built program: th_bin("keibifsd") -> "$KB_BUILD/keibifsd". */
const char *th_bin(const char *name);

/* A fresh directory under the run's temp base; caller frees. */
char *th_tmpdir(const char *tag);
/* Write `len` bytes of deterministic pseudo-random data (seed) to path. */
int th_write_pattern(const char *path, size_t len, unsigned seed, mode_t mode);
/* Run a shell command, return its exit status (or -1). */
int th_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run a shell command and capture stdout+stderr (caller frees). */
int th_sh_out(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Start argv (argv[0] a path) with stdout/stderr appended to logfile; the
 * pid is recorded for the runner's final cleanup. Returns pid or -errno. */
pid_t th_spawn(char *const argv[], const char *logfile);
/* Record a process the test did not spawn itself (e.g. a daemon) for the
 * runner's final cleanup. */
void th_track_pid(pid_t pid);
/* SIGTERM, wait up to timeout_ms, then SIGKILL; reaps. Returns exit status
 * (as from waitpid) or -1 if it had to be killed. */
int th_stop(pid_t pid, int timeout_ms);
/* Wait up to timeout_ms until `path` exists (a name made on the server
 * shows in the mount once its push arrives: kbfs_list.h). */
bool th_wait_exists(const char *path, int timeout_ms);
/* Wait up to timeout_ms until `path` contains `needle`. */
bool th_wait_file_contains(const char *path, const char *needle, int timeout_ms);
/* The pid of a running keibifs (a process whose argv[0] is keibifs or
 * ends in /keibifs) with `arg` among its arguments, or 0. Read from /proc
 * directly: a shell loop would find itself, its own command line holding
 * the same words. */
pid_t th_find_keibifs(const char *arg);
/* An unused TCP port on 127.0.0.1. */
int th_free_port(void);

/* Wait until every mount this test made has sent its write-behind queue
 * (the keibifs.drain attribute): the server's tree is then what the mounts
 * did. th_server_path calls it, so a test looks at the share after its
 * mounts' changes reached it, as write-behind keeps it about one round
 * trip behind. */
void th_mounts_drain(void);
/* Record a mountpoint for the runner's final cleanup / drop the record. */
void th_track_mount(const char *mnt);
/* Unmount (fusermount3 -u, then lazy umount) if mounted. */
void th_umount(const char *mnt);
bool th_is_mounted(const char *mnt);
/* True when FUSE mounts can work here; prints a loud SKIP line otherwise. */
bool th_fuse_available(const char *what);

/* Called by the runner only. */
void th_run_begin(void);
void th_run_end(void);

#endif
