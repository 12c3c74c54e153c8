/* noise-vectors - run a cacophony-format Noise test vector file.
 *
 *   noise-vectors [-b mbedtls|openssl] FILE
 *
 * Prints one line per failing vector, then "N passed, M failed"; exits 0
 * only when nothing failed and at least one vector ran. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "noise_vec.h"
#include "version.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: noise-vectors [-b mbedtls|openssl] FILE\n");
}

int main(int argc, char **argv)
{
	enum kb_aead_backend be = KB_AEAD_DEFAULT;
	struct kb_noise_vec_result res;
	int opt;

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		kb_print_version(stdout, "noise-vectors");
		return 0;
	}
	while ((opt = getopt(argc, argv, "b:h")) != -1) {
		if (opt == 'b' && !strcmp(optarg, "mbedtls"))
			be = KB_AEAD_MBEDTLS;
		else if (opt == 'b' && !strcmp(optarg, "openssl"))
			be = KB_AEAD_OPENSSL;
		else {
			usage(opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (kb_noise_vec_run_file(argv[optind], be, stdout, &res))
		return 1;
	if (res.skipped)
		printf("%u skipped (unsupported protocol)\n", res.skipped);
	printf("%u passed, %u failed\n", res.passed, res.failed);
	return res.failed == 0 && res.passed > 0 ? 0 : 1;
}
