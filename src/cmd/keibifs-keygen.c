/* keibifs-keygen - create a keibifs X25519 identity, or show a key's
 * fingerprint (like ssh-keygen -f / -l -f). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "keys.h"
#include "noise.h"
#include "version.h"

#define DEFAULT_KEY ".config/keibifs/id_x25519"

static void usage(FILE *f)
{
	fprintf(f, "usage: keibifs-keygen [-y] [-C comment] [-f file]\n"
		   "       keibifs-keygen -l -f file[.pub]\n"
		   "       keibifs-keygen --version\n"
		   "  -f FILE     private key file (default ~/" DEFAULT_KEY "); public key in FILE.pub\n"
		   "  -C COMMENT  comment in FILE.pub (default user@host)\n"
		   "  -y          overwrite an existing key\n"
		   "  -l          print the fingerprint of FILE or FILE.pub\n");
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

/* ~/.config/keibifs, created 0700 when missing (only for the default path). */
static int default_path(char *out, size_t cap)
{
	const char *home = getenv("HOME");

	if (!home || !*home)
		return -ENOENT;
	snprintf(out, cap, "%s/.config", home);
	mkdir(out, 0700);
	snprintf(out, cap, "%s/.config/keibifs", home);
	if (mkdir(out, 0700) && errno != EEXIST)
		return -errno;
	snprintf(out, cap, "%s/" DEFAULT_KEY, home);
	return 0;
}

static int generate(const char *path, const char *comment, bool force)
{
	struct kb_noise_rng *rng = NULL;
	uint8_t pub[KB_KEY_LEN];
	char err[512], fpr[KB_FPR_LEN];
	int ret;

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
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL, *comment = NULL;
	bool force = false, lst = false;
	char defpath[4096];
	int opt;

	while ((opt = getopt_long(argc, argv, "f:C:ylh", lopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			file = optarg;
			break;
		case 'C':
			comment = optarg;
			break;
		case 'y':
			force = true;
			break;
		case 'l':
			lst = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			kb_print_version(stdout, "keibifs-keygen");
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!file && !lst && default_path(defpath, sizeof(defpath)) == 0)
		file = defpath;
	if (!file) {
		fprintf(stderr, "keibifs-keygen: -f FILE is required\n");
		return 2;
	}
	return lst ? list(file) : generate(file, comment, force);
}
