/* th_aead.h - the AEAD backends built in, for tests looping over them
 * (tcase_add_loop_test ... NBE). */
#ifndef KB_TH_AEAD_H
#define KB_TH_AEAD_H

#include "aead.h"
#include "util.h"

static const enum kb_aead_backend backends[] = {
	KB_AEAD_MBEDTLS,
#ifdef KB_HAVE_OPENSSL
	KB_AEAD_OPENSSL,
#endif
};
#define NBE ((int)KB_ARRAY_SIZE(backends))

#endif
