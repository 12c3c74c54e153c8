/* noise_vec.h - runs cacophony-format Noise test vectors (JSON) against
 * kb_noise. Used by build/noise-vectors and by tests/test_noise.c. */
#ifndef KB_NOISE_VEC_H
#define KB_NOISE_VEC_H

#include <stdio.h>

#include "aead.h"

struct kb_noise_vec_result {
	unsigned passed, failed, skipped; /* skipped: unsupported protocol */
};

/* Runs every supported vector in the file with the given AEAD backend,
 * printing one line per failure to log. 0, or -errno / -EINVAL when the file
 * cannot be read or parsed (reason printed to log). */
int kb_noise_vec_run_file(const char *path, enum kb_aead_backend be, FILE *log,
			  struct kb_noise_vec_result *res);

#endif
