/* keibifs-keygen - create a keibifs X25519 identity, or show a key's
 * fingerprint (like ssh-keygen -f / -l -f), or make a pre-shared key (like
 * wg genpsk). FILE may be given with -f or as the argument; missing parent
 * directories are created with mode 0700. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "keys.h"
#include "noise.h"
#include "version.h"

#define DEFAULT_KEY ".config/keibifs/id_x25519"

static void usage(FILE *f)
{
	fprintf(f, "usage: keibifs-keygen [-y] [-C comment] [[-f] FILE]\n"
		   "       keibifs-keygen -l [-f] FILE[.pub]\n"
		   "       keibifs-keygen --psk [-y] FILE\n"
		   "       keibifs-keygen --version\n"
		   "  -f FILE     private key file (default ~/" DEFAULT_KEY "); public key in\n"
		   "              FILE.pub; missing directories are created (0700)\n"
		   "  -C COMMENT  comment in FILE.pub (default user@host)\n"
		   "  -y          overwrite an existing key\n"
		   "  -l          print the fingerprint of FILE or FILE.pub\n"
		   "  --psk       write a random 32-byte pre-shared key to FILE (0600), for\n"
		   "              keibifsd --psk FILE and keibifs -o psk=FILE\n");
}

static int list(const char *path)
{
	uint8_t pub[KB_KEY_LEN];
	char err[512], comment[300], fpr[KB_FPR_LEN];

	if (kb_key_load_public_comment(path, pub, comment, sizeof(comment), err, sizeof(err))) {
		fprintf(stderr, "keibifs-keygen: %s\n", err);
		return 1;
	}
	kb_key_fingerprint(pub, fpr);
	printf("%s%s%s\n", fpr, *comment ? " " : "", comment);
	return 0;
}

/* ~/.config/keibifs/id_x25519 ($HOME, else the user's home directory). */
static int default_path(char *out, size_t cap)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (!home || !*home) {
		pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home)
		return -ENOENT;
	snprintf(out, cap, "%s/" DEFAULT_KEY, home);
	return 0;
}

/* mkdir -p of path's parent directory, each new one with mode 0700. */
static int make_parents(const char *path)
{
	char dir[4096];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, 0700) && errno != EEXIST) {
			int e = errno;

			fprintf(stderr, "keibifs-keygen: cannot create directory %s: %s\n", dir,
				strerror(e));
			return -e;
		}
		*p = c;
		if (!c)
			break;
	}
	return 0;
}

static int gen_psk(const char *path, bool force)
{
	struct kb_noise_rng *rng = NULL;
	char err[512];
	int ret;

	if (make_parents(path))
		return 1;
	ret = kb_noise_rng_new(&rng);
	if (!ret)
		ret = kb_psk_generate(path, force, rng, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "random generator: %s", kb_strerror(ret));
	kb_noise_rng_free(rng);
	if (ret) {
		fprintf(stderr, "keibifs-keygen: %s\n", err);
		return 1;
	}
	printf("Your pre-shared key has been saved in %s (give it to both sides: keibifsd "
	       "--psk FILE, keibifs -o psk=FILE)\n",
	       path);
	return 0;
}

static int generate(const char *path, const char *comment, bool force)
{
	struct kb_noise_rng *rng = NULL;
	uint8_t pub[KB_KEY_LEN];
	char err[512], fpr[KB_FPR_LEN];
	int ret;

	if (make_parents(path))
		return 1;
	ret = kb_noise_rng_new(&rng);
	if (!ret)
		ret = kb_key_generate_comment(path, comment, force, rng, pub, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "random generator: %s", kb_strerror(ret));
	kb_noise_rng_free(rng);
	if (ret) {
		fprintf(stderr, "keibifs-keygen: %s\n", err);
		return 1;
	}
	kb_key_fingerprint(pub, fpr);
	printf("Your identification has been saved in %s\n", path);
	printf("Your public key has been saved in %s.pub\n", path);
	printf("The key fingerprint is:\n%s\n", fpr);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"psk", no_argument, NULL, 'P'},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL, *comment = NULL;
	bool force = false, lst = false, psk = false;
	char defpath[4096];
	int opt;

	while ((opt = getopt_long(argc, argv, "f:C:ylh", lopts, NULL)) != -1) {
		switch (opt) {
		case 'f': file = optarg; break;
		case 'C': comment = optarg; break;
		case 'y': force = true; break;
		case 'l': lst = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': kb_print_version(stdout, "keibifs-keygen"); return 0;
		case 'P': psk = true; break;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc && !file)
		file = argv[optind++]; /* keibifs-keygen FILE, as ssh-keygen -f FILE */
	if (optind != argc) {
		fprintf(stderr, "keibifs-keygen: one FILE only (-f FILE or FILE), not '%s'\n",
			argv[optind]);
		return 2;
	}
	if (psk && (lst || comment)) {
		fprintf(stderr, "keibifs-keygen: --psk takes only [-y] FILE\n");
		return 2;
	}
	if (!file && !lst && !psk && default_path(defpath, sizeof(defpath)) == 0)
		file = defpath;
	if (!file) {
		fprintf(stderr, "keibifs-keygen: FILE is required (keibifs-keygen %sFILE)\n",
			lst   ? "-l "
			: psk ? "--psk "
			      : "");
		return 2;
	}
	if (psk)
		return gen_psk(file, force);
	return lst ? list(file) : generate(file, comment, force);
}
