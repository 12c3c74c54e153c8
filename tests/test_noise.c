/* test_noise.c - Noise handshake: published vectors (binary and in
 * process, both AEAD backends), live handshakes with random keys, failures
 * (wrong static, tampering, wrong psk), rekey, X25519 known answers. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "noise.h"
#include "noise_int.h"
#include "noise_vec.h"
#include "th.h"
#include "th_aead.h"
#include "util.h"

#define VEC "tests/vectors/cacophony-25519-aesgcm-sha256.json"
#define XX "Noise_XX_25519_AESGCM_SHA256"

START_TEST(test_vectors_binary)
{
	char *out = NULL;
	int st = th_sh_out(&out, "%s %s/" VEC, th_bin("noise-vectors"), th_srcdir());

	ck_assert_msg(st == 0, "noise-vectors failed: %s", out);
	ck_assert_ptr_nonnull(strstr(out, "6 passed, 0 failed"));
	free(out);
}
END_TEST

START_TEST(test_vectors_inproc)
{
	struct kb_noise_vec_result res;
	char path[4096];

	snprintf(path, sizeof(path), "%s/" VEC, th_srcdir());
	ck_assert_int_eq(kb_noise_vec_run_file(path, backends[_i], stderr, &res), 0);
	ck_assert_uint_eq(res.passed, 6);
	ck_assert_uint_eq(res.failed, 0);
	ck_assert_uint_eq(res.skipped, 0);
}
END_TEST

/* The runner must notice one changed ciphertext digit (handshake message of
 * XK, a transport message of IK), and refuse a malformed file. */
START_TEST(test_vectors_detect_mismatch)
{
	char *dir = th_tmpdir("noisevec"), *out = NULL;
	int st;

	/* XK message 0's ciphertext: one byte after the ephemeral changed */
	ck_assert_int_eq(th_sh("sed -e 's/4c7944e11634/4c7944e11635/' %s/" VEC " > %s/v.json",
			       th_srcdir(), dir),
			 0);
	st = th_sh_out(&out, "%s %s/v.json", th_bin("noise-vectors"), dir);
	ck_assert_msg(st != 0 && strstr(out, "5 passed, 1 failed") &&
			      strstr(out, "FAIL Noise_XK_25519_AESGCM_SHA256"),
		      "%s", out);
	free(out);
	ck_assert_int_eq(th_sh("head -c 500 %s/" VEC " > %s/t.json", th_srcdir(), dir), 0);
	st = th_sh_out(&out, "%s %s/t.json", th_bin("noise-vectors"), dir);
	ck_assert_msg(st != 0 && strstr(out, "line "), "%s", out);
	free(out);
	th_sh("rm -rf %s", dir);
	free(dir);
}
END_TEST

struct pair {
	struct kb_noise_rng *rng;
	uint8_t is[32], is_pub[32], rsk[32], rs_pub[32];
	struct kb_noise_hs *i, *r;
	struct kb_noise_cs isend, irecv, rsend, rrecv;
};

static void pair_new(struct pair *p, const char *proto, enum kb_aead_backend bi,
		     enum kb_aead_backend br, const uint8_t *i_rs, const uint8_t *r_rs,
		     const uint8_t *psk_i, const uint8_t *psk_r)
{
	struct kb_noise_hs_cfg ci = {.protocol = proto, .initiator = true, .backend = bi};
	struct kb_noise_hs_cfg cr = {.protocol = proto, .backend = br};

	ci.prologue = cr.prologue = (const uint8_t *)"keibifs/1";
	ci.prologue_len = cr.prologue_len = 9;
	ci.s = p->is;
	cr.s = p->rsk;
	ci.rs = i_rs;
	cr.rs = r_rs;
	ci.psk = psk_i;
	cr.psk = psk_r;
	ci.rng = cr.rng = p->rng;
	ck_assert_int_eq(kb_noise_hs_new(&p->i, &ci), 0);
	ck_assert_int_eq(kb_noise_hs_new(&p->r, &cr), 0);
}

static void pair_keys(struct pair *p)
{
	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(kb_noise_rng_new(&p->rng), 0);
	ck_assert_int_eq(kb_x25519_keygen(p->rng, p->is, p->is_pub), 0);
	ck_assert_int_eq(kb_x25519_keygen(p->rng, p->rsk, p->rs_pub), 0);
	ck_assert_mem_ne(p->is_pub, p->rs_pub, 32);
}

static void pair_free(struct pair *p)
{
	kb_noise_hs_free(p->i);
	kb_noise_hs_free(p->r);
	kb_noise_cs_destroy(&p->isend);
	kb_noise_cs_destroy(&p->irecv);
	kb_noise_cs_destroy(&p->rsend);
	kb_noise_cs_destroy(&p->rrecv);
	kb_noise_rng_free(p->rng);
}

/* Runs the handshake to its end; returns the first error (0 if none). */
static int pair_run(struct pair *p)
{
	uint8_t msg[KB_NOISE_MAX_MSG], pl[64];
	size_t n, got;
	int ret = 0;

	while (!ret && !(kb_noise_hs_done(p->i) && kb_noise_hs_done(p->r))) {
		bool iw = kb_noise_hs_my_turn(p->i);
		struct kb_noise_hs *w = iw ? p->i : p->r, *rd = iw ? p->r : p->i;

		ret = kb_noise_hs_write(w, (const uint8_t *)"hello", 5, msg, sizeof(msg), &n);
		if (!ret)
			ret = kb_noise_hs_read(rd, msg, n, pl, sizeof(pl), &got);
		if (!ret)
			ck_assert_mem_eq(pl, "hello", 5);
	}
	return ret;
}

static void transport_roundtrip(struct kb_noise_cs *s, struct kb_noise_cs *r)
{
	uint8_t pt[300], ct[316], back[316];

	for (size_t k = 0; k < sizeof(pt); k++)
		pt[k] = (uint8_t)(k * 7);
	ck_assert_int_eq(kb_noise_cs_encrypt(s, NULL, 0, pt, sizeof(pt), ct), 0);
	ck_assert_mem_ne(ct, pt, 32);
	ck_assert_int_eq(kb_noise_cs_decrypt(r, NULL, 0, ct, sizeof(ct), back), 0);
	ck_assert_mem_eq(back, pt, sizeof(pt));
}

START_TEST(test_xx_live)
{
	enum kb_aead_backend bi = backends[_i % NBE], br = backends[(_i / NBE) % NBE];
	struct pair p;
	uint8_t rs[32], hi[32], hr[32];

	pair_keys(&p);
	pair_new(&p, XX, bi, br, NULL, NULL, NULL, NULL);
	ck_assert_int_eq(kb_noise_hs_remote_static(p.i, rs), -ENOENT);
	ck_assert(kb_noise_hs_my_turn(p.i));
	ck_assert(!kb_noise_hs_my_turn(p.r));
	ck_assert_int_eq(pair_run(&p), 0);
	ck_assert_int_eq(kb_noise_hs_remote_static(p.i, rs), 0);
	ck_assert_mem_eq(rs, p.rs_pub, 32);
	ck_assert_int_eq(kb_noise_hs_remote_static(p.r, rs), 0);
	ck_assert_mem_eq(rs, p.is_pub, 32);
	kb_noise_hs_hash(p.i, hi);
	kb_noise_hs_hash(p.r, hr);
	ck_assert_mem_eq(hi, hr, 32);
	ck_assert_int_eq(kb_noise_hs_split(p.i, &p.isend, &p.irecv), 0);
	ck_assert_int_eq(kb_noise_hs_split(p.r, &p.rsend, &p.rrecv), 0);
	ck_assert_int_eq(kb_aead_backend_of(p.isend.aead), bi);
	ck_assert_int_eq(kb_aead_backend_of(p.rsend.aead), br);
	for (int k = 0; k < 3; k++) {
		transport_roundtrip(&p.isend, &p.rrecv);
		transport_roundtrip(&p.rsend, &p.irecv);
	}
	ck_assert_uint_eq(p.isend.n, 3);
	pair_free(&p);
}
END_TEST

/* KK and IK: the initiator believes in the wrong responder key. */
START_TEST(test_wrong_remote_static)
{
	const char *proto = _i ? "Noise_IK_25519_AESGCM_SHA256" : "Noise_KK_25519_AESGCM_SHA256";
	uint8_t other[32], other_pub[32];
	struct pair p;

	pair_keys(&p);
	ck_assert_int_eq(kb_x25519_keygen(p.rng, other, other_pub), 0);
	pair_new(&p, proto, KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, other_pub, _i ? NULL : p.is_pub, NULL,
		 NULL);
	ck_assert_int_eq(pair_run(&p), -KB_EHANDSHAKE);
	pair_free(&p);
	/* and with the right key both patterns complete */
	pair_keys(&p);
	pair_new(&p, proto, KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, p.rs_pub, _i ? NULL : p.is_pub, NULL,
		 NULL);
	ck_assert_int_eq(pair_run(&p), 0);
	pair_free(&p);
}
END_TEST

START_TEST(test_psk_mismatch)
{
	uint8_t k1[32] = {1}, k2[32] = {2};
	struct pair p;

	pair_keys(&p);
	pair_new(&p, "Noise_XXpsk3_25519_AESGCM_SHA256", KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, NULL,
		 NULL, k1, k2);
	ck_assert_int_eq(pair_run(&p), -KB_EHANDSHAKE);
	pair_free(&p);
	pair_keys(&p);
	pair_new(&p, "Noise_XXpsk3_25519_AESGCM_SHA256", KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, NULL,
		 NULL, k1, k1);
	ck_assert_int_eq(pair_run(&p), 0);
	pair_free(&p);
}
END_TEST

/* Flip one bit anywhere in XX message 1, 2 or 3: the handshake must fail by
 * the end (message 1 is unencrypted, so its tampering shows up later), and
 * a failed state stays failed. */
START_TEST(test_tamper_handshake)
{
	int which = _i % 3;
	uint8_t msg[512], pl[64];
	size_t n, got;
	struct pair p;
	int ret = 0, idx = 0;
	uint32_t seed = (uint32_t)_i * 2654435761u;

	pair_keys(&p);
	pair_new(&p, XX, KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, NULL, NULL, NULL, NULL);
	for (; !ret && !kb_noise_hs_done(p.r); idx++) {
		bool iw = kb_noise_hs_my_turn(p.i);
		struct kb_noise_hs *w = iw ? p.i : p.r, *rd = iw ? p.r : p.i;

		ck_assert_int_eq(
			kb_noise_hs_write(w, (const uint8_t *)"x", 1, msg, sizeof(msg), &n), 0);
		if (idx == which)
			msg[seed % n] ^= (uint8_t)(1u << (seed >> 8) % 8);
		ret = kb_noise_hs_read(rd, msg, n, pl, sizeof(pl), &got);
		if (ret) {
			ck_assert_int_eq(ret, -KB_EHANDSHAKE);
			ck_assert_int_eq(kb_noise_hs_read(rd, msg, n, pl, sizeof(pl), &got),
					 -KB_EHANDSHAKE);
		}
	}
	ck_assert_int_eq(ret, -KB_EHANDSHAKE);
	ck_assert(!kb_noise_hs_done(p.r) || !kb_noise_hs_done(p.i));
	ck_assert_int_eq(kb_noise_hs_split(p.r, &p.rsend, &p.rrecv), -EINVAL);
	pair_free(&p);
}
END_TEST

static struct kb_noise_hs *hs_simple(bool initiator, const uint8_t *sk, struct kb_noise_rng *rng)
{
	struct kb_noise_hs_cfg c = {.protocol = XX, .initiator = initiator, .s = sk, .rng = rng};
	struct kb_noise_hs *hs = NULL;

	ck_assert_int_eq(kb_noise_hs_new(&hs, &c), 0);
	return hs;
}

START_TEST(test_truncated_and_turns)
{
	uint8_t msg[512], pl[64];
	size_t n, got;
	struct pair p;

	pair_keys(&p);
	pair_new(&p, XX, KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, NULL, NULL, NULL, NULL);
	/* out of turn */
	ck_assert_int_eq(kb_noise_hs_write(p.r, NULL, 0, msg, sizeof(msg), &n), -EINVAL);
	ck_assert_int_eq(kb_noise_hs_read(p.i, msg, 32, pl, sizeof(pl), &got), -EINVAL);
	/* too small an output buffer poisons the writer */
	ck_assert_int_eq(kb_noise_hs_write(p.i, NULL, 0, msg, 31, &n), -EMSGSIZE);
	ck_assert_int_eq(kb_noise_hs_write(p.i, NULL, 0, msg, sizeof(msg), &n), -KB_EHANDSHAKE);
	kb_noise_hs_free(p.i);
	p.i = hs_simple(true, p.is, p.rng);
	ck_assert_int_eq(
		kb_noise_hs_write(p.i, (const uint8_t *)"0123456789", 10, msg, sizeof(msg), &n), 0);
	ck_assert_uint_eq(n, 42);
	/* truncated: no room for the ephemeral */
	ck_assert_int_eq(kb_noise_hs_read(p.r, msg, 31, pl, sizeof(pl), &got), -KB_EHANDSHAKE);
	/* payload bigger than the reader's buffer */
	kb_noise_hs_free(p.r);
	p.r = hs_simple(false, p.rsk, p.rng);
	ck_assert_int_eq(kb_noise_hs_read(p.r, msg, n, pl, 5, &got), -KB_EHANDSHAKE);
	/* the same message is fine with room */
	kb_noise_hs_free(p.r);
	p.r = hs_simple(false, p.rsk, p.rng);
	ck_assert_int_eq(kb_noise_hs_read(p.r, msg, n, pl, 10, &got), 0);
	ck_assert_uint_eq(got, 10);
	/* an oversized message is refused before anything else */
	ck_assert_int_eq(kb_noise_hs_read(p.i, msg, KB_NOISE_MAX_MSG + 1, pl, sizeof(pl), &got),
			 -KB_EHANDSHAKE);
	pair_free(&p);
}
END_TEST

START_TEST(test_rekey)
{
	struct pair p;
	uint8_t pt[40] = "rekey me", c1[56], c2[56], back[56];

	pair_keys(&p);
	pair_new(&p, XX, backends[_i], backends[NBE - 1 - _i], NULL, NULL, NULL, NULL);
	ck_assert_int_eq(pair_run(&p), 0);
	ck_assert_int_eq(kb_noise_hs_split(p.i, &p.isend, &p.irecv), 0);
	ck_assert_int_eq(kb_noise_hs_split(p.r, &p.rsend, &p.rrecv), 0);
	transport_roundtrip(&p.isend, &p.rrecv);
	/* same nonce, before and after rekey: different ciphertext */
	ck_assert_int_eq(kb_noise_cs_encrypt(&p.isend, NULL, 0, pt, sizeof(pt), c1), 0);
	p.isend.n--;
	ck_assert_int_eq(kb_noise_cs_rekey(&p.isend), 0);
	ck_assert_int_eq(kb_noise_cs_encrypt(&p.isend, NULL, 0, pt, sizeof(pt), c2), 0);
	ck_assert_mem_ne(c1, c2, sizeof(c2));
	ck_assert_uint_eq(p.isend.n, 2); /* rekey keeps the nonce */
	/* the receiver still on the old key rejects it; after rekey, accepts */
	ck_assert_int_eq(kb_noise_cs_decrypt(&p.rrecv, NULL, 0, c2, sizeof(c2), back), -KB_EBADTAG);
	ck_assert_int_eq(kb_noise_cs_rekey(&p.rrecv), 0);
	ck_assert_int_eq(kb_noise_cs_decrypt(&p.rrecv, NULL, 0, c2, sizeof(c2), back), 0);
	ck_assert_mem_eq(back, pt, sizeof(pt));
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(kb_noise_cs_rekey(&p.isend), 0);
		ck_assert_int_eq(kb_noise_cs_rekey(&p.rrecv), 0);
		transport_roundtrip(&p.isend, &p.rrecv);
	}
	transport_roundtrip(&p.rsend, &p.irecv); /* other direction untouched */
	/* nonce exhaustion */
	p.isend.n = UINT64_MAX;
	ck_assert_int_eq(kb_noise_cs_encrypt(&p.isend, NULL, 0, pt, sizeof(pt), c1), -KB_ENONCE);
	pair_free(&p);
}
END_TEST

START_TEST(test_protocol_names)
{
	static const struct {
		const char *name;
		int ret;
	} cases[] = {
		{"Noise_XX_25519_ChaChaPoly_SHA256", -ENOTSUP},
		{"Noise_XX_448_AESGCM_SHA256", -ENOTSUP},
		{"Noise_NK_25519_AESGCM_SHA256", -ENOTSUP},
		{"Noise_XXfallback_25519_AESGCM_SHA256", -ENOTSUP},
		{"Noise_XXpsk4_25519_AESGCM_SHA256", -EINVAL},
		{"Noise_XXpsk3+psk3_25519_AESGCM_SHA256", -EINVAL},
		{"Noise_XXpsk3+_25519_AESGCM_SHA256", -EINVAL},
		{"Noise__25519_AESGCM_SHA256", -EINVAL},
		{"Noise_XX", -EINVAL},
		{"noise_XX_25519_AESGCM_SHA256", -EINVAL},
		{"Noise_XXpsk3_25519_AESGCM_SHA256", -EINVAL}, /* no psk given */
		{"Noise_XXpsk0+psk3_25519_AESGCM_SHA256", -EINVAL},
		{"Noise_KK_25519_AESGCM_SHA256", -EINVAL}, /* no rs given */
		{"Noise_XX_25519_AESGCM_SHA256", 0},
		{"Noise_NN_25519_AESGCM_SHA256", 0},
	};
	struct kb_noise_rng *rng;
	uint8_t s[32] = {9};

	ck_assert_int_eq(kb_noise_rng_new(&rng), 0);
	for (size_t k = 0; k < KB_ARRAY_SIZE(cases); k++) {
		struct kb_noise_hs_cfg c = {
			.protocol = cases[k].name, .s = s, .rng = rng, .initiator = true};
		struct kb_noise_hs *hs = NULL;

		ck_assert_msg(kb_noise_hs_new(&hs, &c) == cases[k].ret, "%s", cases[k].name);
		kb_noise_hs_free(hs);
	}
	{
		uint8_t psk[32] = {0};
		struct kb_noise_hs_cfg c = {.protocol = "Noise_XXpsk0+psk3_25519_AESGCM_SHA256",
					    .s = s,
					    .rng = rng,
					    .psk = psk};
		struct kb_noise_hs *hs = NULL;

		ck_assert_int_eq(kb_noise_hs_new(&hs, &c), 0);
		kb_noise_hs_free(hs);
	}
	kb_noise_rng_free(rng);
}
END_TEST

START_TEST(test_x25519)
{
	/* RFC 7748 section 6.1 */
	uint8_t a[32], bpub[32], pub[32], want[32], shared[32], zero[32] = {0};
	struct kb_noise_rng *rng;

	kb_hex_decode(a, 32, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
	kb_hex_decode(bpub, 32, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
	ck_assert_int_eq(kb_x25519_pub(a, pub), 0);
	kb_hex_decode(want, 32, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	ck_assert_mem_eq(pub, want, 32);
	ck_assert_int_eq(kb_x25519(shared, a, bpub), 0);
	kb_hex_decode(want, 32, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
	ck_assert_mem_eq(shared, want, 32);
	/* low-order point */
	ck_assert_int_eq(kb_x25519(shared, a, zero), -KB_EHANDSHAKE);
	/* random bytes differ between calls */
	ck_assert_int_eq(kb_noise_rng_new(&rng), 0);
	ck_assert_int_eq(kb_noise_rng_bytes(rng, a, 32), 0);
	ck_assert_int_eq(kb_noise_rng_bytes(rng, pub, 32), 0);
	ck_assert_mem_ne(a, pub, 32);
	kb_noise_rng_free(rng);
}
END_TEST

Suite *suite_noise(void);
Suite *suite_noise(void)
{
	Suite *s = suite_create("noise");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_vectors_binary);
	tcase_add_loop_test(tc, test_vectors_inproc, 0, NBE);
	tcase_add_test(tc, test_vectors_detect_mismatch);
	tcase_add_loop_test(tc, test_xx_live, 0, NBE * NBE);
	tcase_add_loop_test(tc, test_wrong_remote_static, 0, 2);
	tcase_add_test(tc, test_psk_mismatch);
	tcase_add_loop_test(tc, test_tamper_handshake, 0, 30);
	tcase_add_test(tc, test_truncated_and_turns);
	tcase_add_loop_test(tc, test_rekey, 0, NBE);
	tcase_add_test(tc, test_protocol_names);
	tcase_add_test(tc, test_x25519);
	suite_add_tcase(s, tc);
	return s;
}
